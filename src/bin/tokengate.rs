//! `tokengate`: the operator's command line, native only (`cargo run --bin tokengate -- …`,
//! or `make cli` for `target/release/tokengate`). It links the crate's pure modules, so a
//! hash it prints is one the filter accepts and a configuration it passes is one the filter
//! loads, with the same one-line errors.
//!
//! ```text
//! tokengate hash-secret [--pbkdf2 [--iterations N]]   the secret from stdin or a no-echo prompt
//! tokengate check-config FILE                         FILE: the plugin JSON, or an Envoy YAML
//! tokengate routes FILE                               the resource table, one method and path a line
//! tokengate keygen [--alg EdDSA|ES256] [--kid K]      a new signing key, as `signing.keys` takes it
//! ```
//!
//! An Envoy YAML is not parsed as YAML (that would take a YAML crate): the configurations
//! are the `value: |` block scalars that follow a `"@type": type.googleapis.com/
//! google.protobuf.StringValue` line at the same indentation, as every file in `envoy/`
//! writes them. Anything else: give the JSON itself.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};

use tokengate::config::Config;
use tokengate::jose::{self, Algorithm, KeySet, SigningKey};
use tokengate::oauth::credentials::SecretVerifier;
use tokengate::oauth::routes::Access;

const USAGE: &str = "usage:
  tokengate hash-secret [--pbkdf2 [--iterations N]]
      reads a secret from stdin (or asks for it without echo) and prints its hash for the
      configuration: sha256$<salt>$<digest> (consumer_secret_hash) or, with --pbkdf2,
      pbkdf2-sha256$<iterations>$<salt>$<digest> (password_hash; default 100000 iterations)
  tokengate check-config FILE
      checks the plugin configuration in FILE (the JSON, or an Envoy YAML holding it as a
      `value: |` block); exit code 0 when valid, 1 when not
  tokengate routes FILE
      prints the resource table the filter enforces: method, path, scopes or \"public\"
  tokengate keygen [--alg EdDSA|ES256] [--kid K]
      makes a signing key from the OS's randomness and prints it as a private JWK, one line,
      for the configuration's signing.keys (default EdDSA; kid: its RFC 7638 thumbprint)";

const DEFAULT_PBKDF2_ITERATIONS: u32 = 100_000;
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

enum Failure {
    /// Wrong arguments: the usage follows, exit code 2.
    Usage(String),
    /// Exit code 1.
    Error(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("tokengate: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Error(message)) => {
            eprintln!("tokengate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, Failure> {
    let (command, rest) = args.split_first().ok_or_else(|| Failure::Usage("a command is needed".into()))?;
    match command.as_str() {
        "hash-secret" => hash_secret(rest),
        "check-config" => check_config(one_file(rest)?),
        "routes" => routes(one_file(rest)?),
        "keygen" => keygen(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

fn one_file(rest: &[String]) -> Result<&str, Failure> {
    match rest {
        [file] => Ok(file),
        _ => Err(Failure::Usage("exactly one FILE is needed".into())),
    }
}

// ---------------------------------------------------------------------------- hash-secret

fn hash_secret(options: &[String]) -> Result<ExitCode, Failure> {
    let mut pbkdf2 = false;
    let mut iterations = None;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "--pbkdf2" => pbkdf2 = true,
            "--iterations" => {
                let value =
                    options.next().ok_or_else(|| Failure::Usage("--iterations needs a number".into()))?;
                let number: u32 =
                    value.parse().map_err(|_| Failure::Usage("--iterations needs a number".into()))?;
                iterations = Some(number);
            }
            other if other.starts_with('-') => {
                return Err(Failure::Usage(format!("unknown option {other:?}")))
            }
            _ => {
                return Err(Failure::Usage(
                    "the secret is never an argument (shell history, ps): give it on stdin".into(),
                ))
            }
        }
    }
    if iterations.is_some() && !pbkdf2 {
        return Err(Failure::Usage("--iterations goes with --pbkdf2".into()));
    }
    let secret = read_secret()?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| Failure::Error("no randomness for the salt".into()))?;
    let verifier = if pbkdf2 {
        SecretVerifier::hash_pbkdf2(&secret, &salt, iterations.unwrap_or(DEFAULT_PBKDF2_ITERATIONS))
            .map_err(|error| Failure::Error(format!("--iterations: {}", error.0)))?
    } else {
        SecretVerifier::hash_sha256(&secret, &salt)
    };
    let hash = verifier.to_config_hash();
    // What the filter will do with it: parse it, and accept the secret.
    let accepted = SecretVerifier::parse(&hash).map(|parsed| parsed.verify(&secret)).unwrap_or(false);
    if !accepted {
        return Err(Failure::Error("the hash made does not verify; nothing printed".into()));
    }
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// One line from stdin, or from the terminal without echo when stdin is one.
fn read_secret() -> Result<String, Failure> {
    let secret = if std::io::stdin().is_terminal() {
        let first = prompt("secret: ")?;
        let again = prompt("again: ")?;
        if first != again {
            return Err(Failure::Error("the two secrets differ".into()));
        }
        first
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|_| Failure::Error("cannot read the secret from stdin (UTF-8 expected)".into()))?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        line.strip_suffix('\r').unwrap_or(line).to_owned()
    };
    if secret.is_empty() {
        return Err(Failure::Error("the secret is empty".into()));
    }
    if secret.contains(['\n', '\r']) {
        return Err(Failure::Error("the secret is one line".into()));
    }
    Ok(secret)
}

/// Asks on the terminal with echo off (`stty -echo`), echo restored whatever happens.
fn prompt(label: &str) -> Result<String, Failure> {
    let no_tty = |_| Failure::Error("cannot open the terminal; give the secret on stdin".into());
    let mut tty = OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(no_tty)?;
    let echo = |on: bool| {
        File::open("/dev/tty")
            .ok()
            .and_then(|input| {
                Command::new("stty")
                    .arg(if on { "echo" } else { "-echo" })
                    .stdin(input)
                    .stderr(Stdio::null())
                    .status()
                    .ok()
            })
            .is_some_and(|status| status.success())
    };
    if !echo(false) {
        return Err(Failure::Error(
            "cannot turn the terminal's echo off (stty); give the secret on stdin".into(),
        ));
    }
    let mut line = String::new();
    let written = tty.write_all(label.as_bytes()).and_then(|()| tty.flush());
    let read = written.and_then(|()| BufReader::new(&tty).read_line(&mut line));
    let restored = echo(true);
    let _ = tty.write_all(b"\n");
    read.map_err(|_| Failure::Error("cannot read the secret from the terminal".into()))?;
    if !restored {
        return Err(Failure::Error("cannot turn the terminal's echo back on: run `stty echo`".into()));
    }
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

// ---------------------------------------------------------------------------- keygen

fn keygen(options: &[String]) -> Result<ExitCode, Failure> {
    let mut alg = Algorithm::EdDSA;
    let mut kid = None;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value =
            |what: &str| options.next().ok_or_else(|| Failure::Usage(format!("{option} needs {what}")));
        match option.as_str() {
            "--alg" => {
                let name = value("EdDSA or ES256")?;
                alg = Algorithm::from_name(name)
                    .ok_or_else(|| Failure::Usage(format!("--alg: {name:?} is not EdDSA or ES256")))?;
            }
            "--kid" => kid = Some(value("a key id")?.clone()),
            other => return Err(Failure::Usage(format!("unknown option {other:?}"))),
        }
    }
    let key = new_key(alg, kid.as_deref())?;
    // What the filter will do with it: load the printed JWK, sign, and verify with its
    // public half (the JWKS's).
    let jwk = key.to_private_jwk();
    let reloaded =
        SigningKey::from_jwk(&jwk).map_err(|error| Failure::Error(format!("the key made: {error}")))?;
    let keys = KeySet::new(vec![key.verifying_key().clone()])
        .map_err(|error| Failure::Error(format!("the key made: {error}")))?;
    let token = jose::sign(&reloaded, None, &serde_json::json!({"check": true}))
        .map_err(|error| Failure::Error(format!("the key made cannot sign: {error}")))?;
    if jose::verify(&keys, &token, &[alg]).is_err() {
        return Err(Failure::Error("the key made does not verify its own signature; nothing printed".into()));
    }
    let text = serde_json::to_string(&jwk).map_err(|_| Failure::Error("cannot write the key".into()))?;
    println!("{text}");
    eprintln!(
        "tokengate: a private key: add it to \"signing\": {{\"keys\": [...]}} in the plugin configuration, \
         and keep it as secret as that configuration"
    );
    Ok(ExitCode::SUCCESS)
}

/// A key from the OS's randomness; for ES256, 32 bytes above P-256's order (about one draw in
/// 2^32) are drawn again.
fn new_key(alg: Algorithm, kid: Option<&str>) -> Result<SigningKey, Failure> {
    let mut last_error = None;
    for _ in 0..4 {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|_| Failure::Error("no randomness for the key".into()))?;
        match SigningKey::generate(alg, kid, &random) {
            Ok(key) => return Ok(key),
            Err(error) if error.member == "kid" => {
                return Err(Failure::Usage(format!("--kid: {}", error.problem)))
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(Failure::Error(format!("no key made: {}", last_error.map(|e| e.to_string()).unwrap_or_default())))
}

// ---------------------------------------------------------------------------- configurations

/// A plugin configuration found in a file, and where.
struct Found {
    /// "" for a JSON file, " (configuration at line N)" in a YAML one.
    place: String,
    json: String,
}

fn configurations(file: &str) -> Result<Vec<Found>, Failure> {
    let text = std::fs::read_to_string(file).map_err(|error| Failure::Error(format!("{file}: {error}")))?;
    if text.trim_start().starts_with('{') || text.trim().is_empty() {
        return Ok(vec![Found { place: String::new(), json: text }]);
    }
    let found = yaml_configuration_values(&text);
    if found.is_empty() {
        return Err(Failure::Error(format!(
            "{file}: no plugin configuration found: neither JSON nor an Envoy YAML with a `value: |` \
             block after a \"@type\": {STRING_VALUE_TYPE} line"
        )));
    }
    Ok(found)
}

/// The `value: |` block scalars right after a StringValue `@type` line at the same indentation.
fn yaml_configuration_values(text: &str) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut found = Vec::new();
    for (index, pair) in lines.windows(2).enumerate() {
        let [typed, value] = pair else { continue };
        let value_key = value.trim_start();
        let is_block =
            value_key.strip_prefix("value:").is_some_and(|rest| rest.trim_start().starts_with('|'));
        if !typed.contains(STRING_VALUE_TYPE) || !is_block || indent(typed) != indent(value) {
            continue;
        }
        let key_indent = indent(value);
        let body: Vec<&str> = lines
            .iter()
            .skip(index + 2)
            .take_while(|line| line.trim().is_empty() || indent(line) > key_indent)
            .copied()
            .collect();
        let body_indent = body.iter().find(|line| !line.trim().is_empty()).map_or(0, |line| indent(line));
        let json: Vec<&str> = body.iter().map(|line| line.get(body_indent..).unwrap_or("")).collect();
        found.push(Found { place: format!(" (configuration at line {})", index + 3), json: json.join("\n") });
    }
    found
}

fn load(found: &Found) -> Result<Config, String> {
    if found.json.trim().is_empty() {
        return Err("invalid configuration: the plugin configuration is empty".into());
    }
    Config::from_json(found.json.as_bytes()).map_err(|error| format!("invalid configuration: {error}"))
}

fn check_config(file: &str) -> Result<ExitCode, Failure> {
    let mut valid = true;
    for found in configurations(file)? {
        match load(&found) {
            Ok(config) => println!(
                "{file}{}: valid: {} applications, {} users, {} resources, store capacity {}",
                found.place,
                config.applications.len(),
                config.users.len(),
                config.routes.len(),
                config.store_capacity
            ),
            Err(problem) => {
                valid = false;
                println!("{file}{}: {problem}", found.place);
            }
        }
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn routes(file: &str) -> Result<ExitCode, Failure> {
    let all = configurations(file)?;
    let several = all.len() > 1;
    for found in &all {
        let config =
            load(found).map_err(|problem| Failure::Error(format!("{file}{}: {problem}", found.place)))?;
        if several {
            println!("# {file}{}", found.place);
        }
        let rules = config.routes.rules();
        let width = rules.iter().map(|rule| rule.template.to_string().len()).max().unwrap_or(0);
        for rule in rules {
            let access = match &rule.access {
                Access::Public => "public".to_owned(),
                Access::Scopes { names } if names.is_empty() => "any valid token".to_owned(),
                Access::Scopes { names } => names.join(" "),
            };
            for method in &rule.methods {
                println!("{method:<7} {:<width$}  {access}", rule.template.to_string());
            }
        }
        println!("# first match wins; any other path: 404, a listed path with another method: 405");
    }
    Ok(ExitCode::SUCCESS)
}
