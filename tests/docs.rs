//! The docs keep up with the code: every configuration field, stat, default endpoint and CLI
//! subcommand the source declares is named on its page under `docs/`. Each list is read from
//! the file that declares it, so a new field, stat, endpoint or subcommand fails here until its
//! page says what it is.

#![allow(clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// One field of a serde struct: its JSON name and the struct it holds, if any.
struct Field {
    name: String,
    holds: Option<String>,
    many: bool,
}

/// The `Raw*` structs of `src/config/raw.rs`, field by field, in declaration order.
fn raw_structs(source: &str) -> BTreeMap<String, Vec<Field>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<Field>)> = None;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub(super) struct ") {
            let name = rest.trim_end_matches(" {").trim().to_owned();
            current = Some((name, Vec::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut() {
            let Some(rest) = line.strip_prefix("pub(super) ") else { continue };
            let Some((name, kind)) = rest.split_once(": ") else { continue };
            let holds = kind
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .find(|word| word.starts_with("Raw"))
                .map(str::to_owned);
            fields.push(Field { name: name.to_owned(), holds, many: kind.starts_with("Vec<") });
        }
    }
    structs
}

/// Every field by its dotted path (`store.capacity`, `applications[].sandbox.consumer_key`).
/// A struct reached twice (`resources[]` and `apis[].resources[]`) is documented once, at
/// the first path that reaches it.
fn config_paths(structs: &BTreeMap<String, Vec<Field>>) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = vec![(String::new(), "RawConfig".to_owned())];
    while !queue.is_empty() {
        let (prefix, name) = queue.remove(0);
        if !seen.insert(name.clone()) {
            continue;
        }
        let fields = structs.get(&name).unwrap_or_else(|| panic!("no struct {name} in raw.rs"));
        for field in fields {
            let path = format!("{prefix}{}", field.name);
            paths.push((prefix.clone(), field.name.clone()));
            if let Some(inner) = &field.holds {
                let suffix = if field.many { "[]." } else { "." };
                queue.push((format!("{path}{suffix}"), inner.clone()));
            }
        }
    }
    paths
}

/// The first cell of each table row, with the whole row.
fn table_rows(page: &str) -> Vec<(&str, &str)> {
    page.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.trim_start_matches('|').split_once('|').map(|(first, _)| (first, line)))
        .collect()
}

/// A field is documented by a row of its own (`` `store.capacity` ``), or by name in its
/// parent's row (`lockout`'s row lists `"max_failures"`, `applications[]`'s `consumer_key`).
fn documented(rows: &[(&str, &str)], prefix: &str, name: &str) -> bool {
    let own = [format!("`{prefix}{name}`"), format!("`{prefix}{name}[]`")];
    if rows.iter().any(|(first, _)| own.iter().any(|cell| first.contains(cell.as_str()))) {
        return true;
    }
    // A section documented field by field (`store.capacity`, `store.max_grants_per_application`).
    let children = format!("`{prefix}{name}.");
    if rows.iter().any(|(first, _)| first.contains(children.as_str())) {
        return true;
    }
    if prefix.is_empty() {
        return false;
    }
    let parent = format!("`{}`", prefix.trim_end_matches('.'));
    let mentions = [format!("`{name}`"), format!("\"{name}\"")];
    rows.iter().any(|(first, row)| {
        first.contains(parent.as_str()) && mentions.iter().any(|m| row.contains(m.as_str()))
    })
}

#[test]
fn every_configuration_field_is_in_the_configuration_reference() {
    let page = read("docs/configuration.md");
    let rows = table_rows(&page);
    let paths = config_paths(&raw_structs(&read("src/config/raw.rs")));
    assert!(paths.len() > 50, "raw.rs was not read: {} fields", paths.len());
    let missing: Vec<String> = paths
        .iter()
        .filter(|(prefix, name)| !documented(&rows, prefix, name))
        .map(|(prefix, name)| format!("{prefix}{name}"))
        .collect();
    assert!(missing.is_empty(), "docs/configuration.md does not document {missing:?}");
}

/// The stat names `src/host/metrics.rs` defines, without `tokengate.`; a numbered family
/// (`tier_window.7`, or its format string) by its pattern, `tier_window.<n>`.
fn stat_names(source: &str) -> Vec<String> {
    let mut names: Vec<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|literal| literal.strip_prefix("tokengate."))
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .map(|name| match name.rsplit_once('.') {
            Some((family, last)) if last.starts_with('{') || last.chars().all(|c| c.is_ascii_digit()) => {
                format!("{family}.<n>")
            }
            _ => name.to_owned(),
        })
        .collect();
    names.dedup();
    names
}

#[test]
fn every_stat_is_in_the_stats_page() {
    let page = read("docs/stats.md");
    let names = stat_names(&read("src/host/metrics.rs"));
    assert!(names.len() > 20, "metrics.rs was not read: {names:?}");
    // A row may abbreviate a family: `tokens_issued.client_credentials`, `.password`.
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            let last = name.rsplit('.').next().unwrap_or(name);
            !page.contains(&format!("`{name}")) && !page.contains(&format!("`.{last}`"))
        })
        .collect();
    assert!(missing.is_empty(), "docs/stats.md does not name {missing:?}");
}

#[test]
fn every_default_endpoint_is_on_its_page() {
    let raw = read("src/config/raw.rs");
    let mut endpoints: Vec<String> = raw
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(endpoints.len() >= 6, "raw.rs was not read: {endpoints:?}");
    endpoints.push("/.well-known/oauth-authorization-server".to_owned());
    assert!(read("src/oauth/mod.rs").contains("\"/.well-known/oauth-authorization-server\""));
    endpoints.push("/.well-known/openid-configuration".to_owned());
    assert!(read("src/oauth/mod.rs").contains("\"/.well-known/openid-configuration\""));
    let pages = [
        ("/token", "docs/token-endpoint.md"),
        ("/revoke", "docs/revocation-introspection.md"),
        ("/introspect", "docs/revocation-introspection.md"),
        ("/authorize", "docs/sign-in.md"),
        ("/client-registration/v0.17/register", "docs/registration.md"),
        ("/register", "docs/registration.md"),
        ("/.well-known/oauth-authorization-server", "docs/metadata.md"),
        ("/oauth2/jwks", "docs/tokens-and-keys.md"),
        ("/oauth2/userinfo", "docs/openid-connect.md"),
        ("/.well-known/openid-configuration", "docs/openid-connect.md"),
    ];
    for endpoint in &endpoints {
        let (_, page) = pages
            .iter()
            .find(|(path, _)| path == endpoint)
            .unwrap_or_else(|| panic!("{endpoint} has no docs page in this test's table: add one"));
        let text = read(page);
        let named = text.contains(&format!("`{endpoint}")) || text.contains(&format!(" {endpoint}`"));
        assert!(named, "{page} does not name {endpoint}");
        let configurable = !endpoint.starts_with("/.well-known/");
        let in_reference = read("docs/configuration.md").contains(endpoint.as_str());
        assert!(in_reference || !configurable, "the configuration reference lacks {endpoint}");
    }
}

#[test]
fn every_cli_subcommand_is_in_the_cli_page() {
    let source = read("src/bin/tokengate.rs");
    let commands: Vec<&str> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix('"')?.split_once("\" =>").map(|(name, _)| name))
        .filter(|name| !name.starts_with('-') && *name != "help")
        .collect();
    assert!(commands.len() >= 3, "tokengate.rs was not read: {commands:?}");
    let page = read("docs/cli.md");
    let missing: Vec<&&str> =
        commands.iter().filter(|name| !page.contains(&format!("`tokengate {name}"))).collect();
    assert!(missing.is_empty(), "docs/cli.md does not describe {missing:?}");
}
