//! The layout's one rule, checked on every `cargo test`: no module imports a module that
//! imports it back (directly or around a longer circle).
//!
//! Reads `src/` as text. A module's imports are the `crate::…`, `super::…` and child-module
//! paths in its code (comments aside) before its `#[cfg(test)]` part; each path counts as an edge to the
//! deepest module it names. Tests are left out: a test module importing its parent is how
//! Rust tests are written, and nothing imports a test module back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` is the crate root "".
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> =
        relative.iter().map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every `a::b::c` path in `code` that starts with `root::`, as its segments after `root`.
fn paths_after<'a>(code: &'a str, root: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let needle = format!("{root}::");
    let mut rest = code;
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

/// The deepest known module that `segments` (relative to `base`) names.
fn target(base: &str, segments: &[&str], modules: &BTreeSet<String>) -> Option<String> {
    let mut best = None;
    let mut current = base.to_owned();
    for segment in segments {
        current = if current.is_empty() { (*segment).to_owned() } else { format!("{current}::{segment}") };
        if modules.contains(&current) {
            best = Some(current.clone());
        } else {
            break;
        }
    }
    best
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map(|(parent, _)| parent.to_owned()).unwrap_or_default()
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .filter(|path| path.file_name().is_some_and(|name| name != "tests.rs"))
        .map(|path| {
            let text = fs::read_to_string(path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // Comments may name any module; only code imports.
            let code =
                code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>();
            (module_of(path.strip_prefix(&src).unwrap()), code.join("\n"))
        })
        .collect();
    let modules: BTreeSet<String> = sources.iter().map(|(module, _)| module.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &sources {
        let mut edges = BTreeSet::new();
        for segments in paths_after(code, "crate") {
            edges.extend(target("", &segments, &modules));
        }
        for segments in paths_after(code, "super") {
            edges.extend(target(&parent(module), &segments, &modules).or_else(|| Some(parent(module))));
        }
        // `use child::X;` and `pub use child::X;` in a parent.
        for line in code.lines().map(str::trim_start) {
            let Some(path) = line.strip_prefix("pub use ").or_else(|| line.strip_prefix("use ")) else {
                continue;
            };
            let first = path.split("::").next().unwrap_or_default();
            let segments: Vec<&str> = path.split("::").take_while(|s| !s.starts_with('{')).collect();
            if !["crate", "super", "self", "std", "core"].contains(&first) {
                edges.extend(target(module, &segments, &modules));
            }
        }
        edges.remove(module);
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A circle through `start`, if the graph has one, as the modules along it.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let graph = import_graph();
    assert!(graph.len() > 20, "the scan found too few modules: {:?}", graph.keys());
    let circles: Vec<String> =
        graph.keys().filter_map(|module| circle_from(&graph, module)).map(|c| c.join(" -> ")).collect();
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_scan_sees_a_circle_when_there_is_one() {
    let mut graph = import_graph();
    // The gateway imports the config; make the config import the gateway back.
    assert!(graph["gateway"].contains("config"), "{:?}", graph["gateway"]);
    graph.get_mut("config").unwrap().insert("gateway".to_owned());
    assert!(circle_from(&graph, "config").is_some());
}
