//! The fuzz corpora on stable: every file of `fuzz/corpus/<target>/` goes through the same
//! check its fuzz target runs (`fuzz/checks.rs`), so `cargo test` keeps the seeds and every
//! regression input passing without nightly. `make fuzz` is what searches for new inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_passes_its_targets_check() {
    let mut failures = Vec::new();
    for (target, check) in checks::TARGETS {
        let files = corpus_files(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} has no seeds");
        for file in files {
            let data = fs::read(&file).unwrap();
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "corpus files failing their check (panics above): {failures:#?}");
}

/// Each check has its fuzz target, and the fuzz crate builds each one.
#[test]
fn every_check_has_a_fuzz_target() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (target, _) in checks::TARGETS {
        let source = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{target}.rs"))).unwrap();
        assert!(source.contains(&format!("checks::{target}(data)")), "fuzz_targets/{target}.rs");
        assert!(manifest.contains(&format!("name = \"{target}\"")), "fuzz/Cargo.toml lacks {target}");
    }
}

/// The config check is not vacuous: a message that quotes a configured string fails it.
#[test]
fn the_config_check_catches_an_echo() {
    let json = br#"{"applications": [{"consumer_key": "demo-app", "consumer_secret": "hunter2-secret"}]}"#;
    let echo = "applications[0].consumer_secret: hunter2-secret is too short";
    assert!(catch_unwind(|| checks::assert_no_echo(json, echo)).is_err(), "an echo went unnoticed");
    // Config errors no longer quote an unknown variant either.
    let variant =
        "applications[0].grant_types[0]: unknown variant `hunter2-secret`, expected one of `password`";
    assert!(
        catch_unwind(|| checks::assert_no_echo(json, variant)).is_err(),
        "a quoted variant went unnoticed"
    );
    for fine in [
        "applications[0].consumer_secret: too short",
        "applications[0].grant_types[0]: unknown variant at line 1 column 9, expected one of `password`",
        "applications[0]: unknown field `consumer_secret`, expected one of `consumer_key`",
    ] {
        assert!(catch_unwind(|| checks::assert_no_echo(json, fine)).is_ok(), "{fine}");
    }
}

/// The records corpus is binary: generated from real records, not written by hand.
/// `cargo test --test fuzz_corpus -- --ignored` rewrites it after a change of format.
#[test]
#[ignore]
fn write_record_seeds() {
    let dir = fuzz_dir().join("corpus/records");
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in checks::record_seeds() {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The generated record seeds pass their check too (whether or not they were rewritten).
#[test]
fn record_seeds_pass_their_check() {
    for (name, bytes) in checks::record_seeds() {
        assert!(catch_unwind(|| checks::records(&bytes)).is_ok(), "record seed {name}");
    }
}
