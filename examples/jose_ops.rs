//! Signing and verifying one JWT natively, N times, so callgrind can count the instructions
//! each costs (a run of 0 subtracted from a run of N, as `make profile` does):
//!
//! ```sh
//! cargo build --release --example jose_ops
//! valgrind --tool=callgrind target/release/examples/jose_ops verify-eddsa 1000
//! ```
//!
//! `jose_ops <sign|verify>-<eddsa|es256> N`. The claims are an RFC 9068-sized access token's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tokengate::jose::{sign, verify, Algorithm, KeySet, SigningKey};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (operation, count) = match args.as_slice() {
        [operation, count] => (operation.as_str(), count.parse::<u32>().expect("N: a number")),
        _ => panic!("usage: jose_ops <sign|verify>-<eddsa|es256> N"),
    };
    let (action, alg) = operation.split_once('-').expect("<sign|verify>-<eddsa|es256>");
    let alg = match alg {
        "eddsa" => Algorithm::EdDSA,
        "es256" => Algorithm::Es256,
        other => panic!("unknown algorithm {other}"),
    };
    let key = SigningKey::generate(alg, Some("bench"), &[7; 32]).unwrap();
    let keys = KeySet::new(vec![key.verifying_key().clone()]).unwrap();
    let claims = serde_json::json!({
        "iss": "https://gateway.example", "sub": "bench-user", "aud": "orders", "client_id": "bench-client",
        "azp": "bench-client", "iat": 1_800_000_000u64, "nbf": 1_800_000_000u64, "exp": 1_800_003_600u64,
        "jti": "0123456789abcdef0123456789abcdef", "scope": "orders:read orders:write", "aut": "APPLICATION_USER"
    });
    let token = sign(&key, Some("at+jwt"), &claims).unwrap();
    let mut total = 0usize;
    for _ in 0..count {
        total += match action {
            "sign" => sign(&key, Some("at+jwt"), std::hint::black_box(&claims)).unwrap().len(),
            "verify" => verify(&keys, std::hint::black_box(&token), &[alg]).unwrap().claims.len(),
            other => panic!("unknown operation {other}"),
        };
    }
    println!("{operation} x{count}: {total}");
}
