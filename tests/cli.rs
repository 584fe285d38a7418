//! The operator CLI (`src/bin/tokengate.rs`), run as a process: what it prints, what it
//! refuses and its exit codes. Its hashes must be ones the filter's own code accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use tokengate::config::Config;
use tokengate::oauth::credentials::SecretVerifier;

const SECRET: &str = "correct horse battery staple";

fn tokengate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI may refuse before reading: a closed pipe is no failure here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

struct HashCase {
    name: &'static str,
    args: &'static [&'static str],
    prefix: &'static str,
}

#[test]
fn hash_secret_prints_hashes_the_filter_accepts() {
    let cases = [
        HashCase { name: "default", args: &[], prefix: "sha256$" },
        HashCase { name: "pbkdf2", args: &["--pbkdf2"], prefix: "pbkdf2-sha256$100000$" },
        HashCase {
            name: "pbkdf2 1000",
            args: &["--pbkdf2", "--iterations", "1000"],
            prefix: "pbkdf2-sha256$1000$",
        },
    ];
    for case in cases {
        let mut args = vec!["hash-secret"];
        args.extend(case.args);
        let out = tokengate(&args, &format!("{SECRET}\n"));
        assert!(out.status.success(), "{}: {}", case.name, text(&out.stderr));
        let stdout = text(&out.stdout);
        let hash = stdout.trim_end();
        assert!(hash.starts_with(case.prefix) && !stdout.contains(SECRET), "{}: {stdout}", case.name);
        let verifier = SecretVerifier::parse(hash).unwrap();
        assert!(verifier.verify(SECRET) && !verifier.verify("wrong"), "{}", case.name);
        // And a configuration holding it loads.
        let config = format!(
            r#"{{"applications": [{{"consumer_key": "app", "consumer_secret_hash": "{hash}"}}],
                 "users": [{{"username": "u", "password_hash": "{hash}"}}]}}"#
        );
        assert!(Config::from_json(config.as_bytes()).is_ok(), "{}", case.name);
    }
}

#[test]
fn two_hashes_of_one_secret_differ_by_their_salt() {
    let one = text(&tokengate(&["hash-secret"], SECRET).stdout);
    let two = text(&tokengate(&["hash-secret"], SECRET).stdout);
    assert_ne!(one, two);
}

#[test]
fn hash_secret_refusals() {
    let cases: &[(&str, &[&str], &str, i32, &str)] = &[
        ("secret as an argument", &["hash-secret", "hunter2"], SECRET, 2, "never an argument"),
        ("empty secret", &["hash-secret"], "\n", 1, "the secret is empty"),
        ("two lines", &["hash-secret"], "a\nb\n", 1, "one line"),
        ("too few iterations", &["hash-secret", "--pbkdf2", "--iterations", "10"], SECRET, 1, "between 1000"),
        ("iterations alone", &["hash-secret", "--iterations", "5000"], SECRET, 2, "goes with --pbkdf2"),
        ("unknown option", &["hash-secret", "--md5"], SECRET, 2, "unknown option"),
        ("no command", &[], "", 2, "a command is needed"),
    ];
    for (name, args, stdin, code, says) in cases {
        let out = tokengate(args, stdin);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(out.stdout.is_empty() && !stderr.contains("hunter2"), "{name}");
    }
}

#[test]
fn check_config_takes_the_demo_yaml_files_and_json() {
    // Every demo (fleet mode's too, whose code-flow tables are in etcd) has the public client
    // demo-spa.
    for (file, applications) in
        [("envoy/envoy.yaml", 3), ("envoy/fleet/envoy.yaml", 3), ("envoy/dynamic/lds.yaml", 3)]
    {
        let out = tokengate(&["check-config", file], "");
        assert!(out.status.success(), "{file}: {}{}", text(&out.stdout), text(&out.stderr));
        let expected = format!("valid: {applications} applications, 1 users, 4 resources");
        assert!(text(&out.stdout).contains(&expected), "{file}");
    }
    let json = temp_file("ok.json", r#"{"applications": [{"consumer_key": "a", "consumer_secret": "s"}]}"#);
    let out = tokengate(&["check-config", json.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn check_config_prints_the_filters_own_line_and_fails() {
    let bad =
        r#"{"applications": [{"consumer_key": "a", "consumer_secret": "s", "grant_types": ["implicit"]}]}"#;
    let expected = Config::from_json(bad.as_bytes()).err().unwrap().to_string();
    let cases = [
        ("bad.json", bad.to_owned(), expected),
        ("empty.json", String::new(), "the plugin configuration is empty".to_owned()),
        (
            "bad.yaml",
            "config:\n  configuration:\n    \"@type\": type.googleapis.com/google.protobuf.StringValue\n    value: |\n      {\"bogus\": 1}\n".to_owned(),
            "bogus: unknown field `bogus`".to_owned(),
        ),
    ];
    for (name, contents, says) in cases {
        let path = temp_file(name, &contents);
        let out = tokengate(&["check-config", path.to_str().unwrap()], "");
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        assert!(stdout.contains("invalid configuration: ") && stdout.contains(&says), "{name}: {stdout}");
    }
    let yaml = temp_file("nothing.yaml", "static_resources: {}\n");
    let out = tokengate(&["check-config", yaml.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no plugin configuration found"));
    let out = tokengate(&["check-config", "no/such/file.json"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn routes_lists_one_method_and_path_a_line() {
    let out = tokengate(&["routes", "envoy/envoy.yaml"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Vec<String>> = text(&out.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    let expected = [
        ["GET", "/api/orders", "orders:read"],
        ["GET", "/api/orders/{id}", "orders:read"],
        ["POST", "/api/orders", "orders:write"],
        ["GET", "/api/public/ping", "public"],
    ];
    assert_eq!(lines, expected.map(|row| row.map(str::to_owned).to_vec()).to_vec());
    let two = temp_file(
        "two.json",
        r#"{"applications": [{"consumer_key": "a", "consumer_secret": "s", "scopes": ["x", "y"]}],
            "resources": [{"methods": ["GET", "HEAD"], "path": "/x/*", "scopes": ["y", "x"]}]}"#,
    );
    let out = text(&tokengate(&["routes", two.to_str().unwrap()], "").stdout);
    assert!(out.contains("GET     /x/*  x y\nHEAD    /x/*  x y\n"), "{out}");
}

/// `keygen` prints a private JWK that a configuration's `signing.keys` loads, whose key signs
/// a token that verifies with the key set (and so the JWKS) built from that configuration.
#[test]
fn keygen_prints_a_key_the_configuration_loads_and_signs_with() {
    for (args, alg, kid) in [
        (&["keygen"][..], "EdDSA", None),
        (&["keygen", "--alg", "ES256", "--kid", "2026-12"][..], "ES256", Some("2026-12")),
    ] {
        let out = tokengate(args, "");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let jwk: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(jwk["alg"], alg);
        assert!(jwk["d"].is_string(), "{jwk}");
        let config = format!(
            r#"{{"applications": [{{"consumer_key": "app", "consumer_secret": "s"}}],
                 "signing": {{"keys": [{stdout}]}}}}"#
        );
        let config = Config::from_json(config.as_bytes()).unwrap();
        let signing = config.signing.unwrap();
        let key = signing.active_key().unwrap();
        match kid {
            Some(kid) => assert_eq!(key.kid(), kid),
            None => assert_eq!(key.kid(), key.verifying_key().thumbprint(), "RFC 7638 thumbprint by default"),
        }
        let token = tokengate::jose::sign(key, Some("at+jwt"), &serde_json::json!({"sub": "a"})).unwrap();
        let verified =
            tokengate::jose::verify(&signing.key_set, &token, &tokengate::jose::Algorithm::ALL).unwrap();
        assert_eq!(verified.claims["sub"], "a");
        assert!(!signing.jwks.contains(jwk["d"].as_str().unwrap()), "the JWKS never holds d");
    }
    // Two runs, two keys.
    assert_ne!(text(&tokengate(&["keygen"], "").stdout), text(&tokengate(&["keygen"], "").stdout));
}

#[test]
fn keygen_refusals() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("RS256 is not offered", &["keygen", "--alg", "RS256"], "is not EdDSA or ES256"),
        ("a kid with a quote", &["keygen", "--kid", "a\"b"], "--kid: must be"),
        ("an option without its value", &["keygen", "--alg"], "--alg needs"),
        ("an unknown option", &["keygen", "--bits", "256"], "unknown option"),
    ];
    for (name, args, says) in cases {
        let out = tokengate(args, "");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(says) && out.stdout.is_empty(), "{name}: {stderr}");
    }
}
