use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use super::*;

/// RFC 8037 Appendix A.1: the Ed25519 private key.
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// RFC 8037 Appendix A.3: its JWK thumbprint (RFC 7638).
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
/// RFC 8037 Appendix A.4: the JWS of "Example of Ed25519 signing" under `{"alg":"EdDSA"}`.
const RFC8037_SIGNING_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// RFC 7515 Appendix A.3: the ES256 key and example.
const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const RFC7515_A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
const RFC7515_A3_SIGNING_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC7515_A3_SIGNATURE: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// The order of P-256's group (SEC 2 §2.4.2), big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc,
    0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn private_jwk(alg: &str, kid: &str, x: &str, y: Option<&str>, d: &str) -> PrivateJwk {
    let (kty, crv) = Algorithm::from_name(alg).map_or(("OKP", "Ed25519"), Algorithm::key_type);
    PrivateJwk {
        kty: kty.to_owned(),
        crv: crv.to_owned(),
        kid: kid.to_owned(),
        alg: alg.to_owned(),
        key_use: "sig".to_owned(),
        x: x.to_owned(),
        y: y.map(str::to_owned),
        d: d.to_owned(),
    }
}

fn rfc8037_key() -> SigningKey {
    SigningKey::from_jwk(&private_jwk("EdDSA", "rfc8037", RFC8037_X, None, RFC8037_D)).unwrap()
}

fn rfc7515_key() -> SigningKey {
    SigningKey::from_jwk(&private_jwk("ES256", "rfc7515", RFC7515_A3_X, Some(RFC7515_A3_Y), RFC7515_A3_D))
        .unwrap()
}

fn key_set(keys: &[&SigningKey]) -> KeySet {
    KeySet::new(keys.iter().map(|key| key.verifying_key().clone()).collect()).unwrap()
}

/// A token with any header and claims, signed with `key` (so only what the test changed is
/// wrong with it).
fn signed(key: &SigningKey, header: &serde_json::Value, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.as_bytes()));
    let signature = key.signature(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// `n - s`: the other valid ECDSA `S` for the same `R` (the "high-S twin").
fn negate_mod_order(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    out
}

/// `R || S` as an ASN.1 DER `ECDSA-Sig-Value`, the encoding other APIs produce.
fn der(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let mut value: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if value.first().is_some_and(|b| b & 0x80 != 0) {
            value.insert(0, 0);
        }
        [vec![0x02, value.len() as u8], value].concat()
    };
    let body = [integer(&raw[..32]), integer(&raw[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn rfc8037_a1_private_key_loads_and_its_x_is_the_public_key_of_d() {
    let key = rfc8037_key();
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    let public = key.verifying_key().to_jwk();
    assert_eq!((public.kty.as_str(), public.crv.as_str(), public.x.as_str()), ("OKP", "Ed25519", RFC8037_X));
    assert_eq!(key.to_private_jwk().d, RFC8037_D);
}

#[test]
fn rfc8037_a3_thumbprint() {
    assert_eq!(rfc8037_key().verifying_key().thumbprint(), RFC8037_THUMBPRINT);
}

#[test]
fn rfc8037_a4_signature_is_reproduced_and_a5_verifies() {
    let key = rfc8037_key();
    let signature = key.signature(RFC8037_SIGNING_INPUT.as_bytes());
    assert_eq!(b64(&signature), RFC8037_SIGNATURE);
    let public = key.verifying_key();
    assert_eq!(public.check(RFC8037_SIGNING_INPUT.as_bytes(), &unb64(RFC8037_SIGNATURE)), Ok(()));
    let other_input = RFC8037_SIGNING_INPUT.replace("RXhh", "RXhi");
    assert_eq!(public.check(other_input.as_bytes(), &unb64(RFC8037_SIGNATURE)), Err(JwtError::BadSignature));
}

#[test]
fn rfc7515_a3_es256_example_verifies_with_its_key_in_its_low_s_form() {
    let public = rfc7515_key();
    let public = public.verifying_key();
    let raw = unb64(RFC7515_A3_SIGNATURE);
    let high = negate_mod_order(&raw[32..]) < raw[32..].to_vec();
    // ECDSA accepts S and n - S alike; we accept the low one only (see the module docs), so
    // whichever of the pair the RFC printed, its low-S form verifies and the other does not.
    let low_s = if high { [&raw[..32], &negate_mod_order(&raw[32..])].concat() } else { raw.clone() };
    let high_s = [&low_s[..32], &negate_mod_order(&low_s[32..])].concat();
    assert_eq!(public.check(RFC7515_A3_SIGNING_INPUT.as_bytes(), &low_s), Ok(()));
    assert_eq!(public.check(RFC7515_A3_SIGNING_INPUT.as_bytes(), &high_s), Err(JwtError::BadSignature));
}

#[test]
fn rfc7515_a3_key_thumbprint_is_the_sha256_of_its_required_members() {
    let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{RFC7515_A3_X}","y":"{RFC7515_A3_Y}"}}"#);
    use sha2::Digest;
    let expected = b64(&sha2::Sha256::digest(members.as_bytes()));
    assert_eq!(rfc7515_key().verifying_key().thumbprint(), expected);
}

#[test]
fn signed_tokens_verify_with_their_claims_kid_and_typ() {
    for key in [rfc8037_key(), rfc7515_key()] {
        let claims = json!({"iss": "https://gateway.example", "sub": "alice", "exp": 2_000_000_000u64});
        let token = sign(&key, Some("at+jwt"), &claims).unwrap();
        let verified = verify(&key_set(&[&key]), &token, &Algorithm::ALL).unwrap();
        assert_eq!(verified.algorithm, key.algorithm());
        assert_eq!(verified.kid, key.kid());
        assert_eq!(verified.typ.as_deref(), Some("at+jwt"));
        assert_eq!(serde_json::Value::Object(verified.claims), claims);
        let unverified = decode_unverified(&token).unwrap();
        assert_eq!(unverified.header.alg, key.algorithm().name());
    }
}

#[test]
fn es256_signing_is_deterministic_and_low_s() {
    let key = rfc7515_key();
    let claims = json!({"sub": "alice"});
    let first = sign(&key, None, &claims).unwrap();
    assert_eq!(first, sign(&key, None, &claims).unwrap(), "RFC 6979: the same input, the same signature");
    // Many inputs: about half of plain ECDSA signatures are high-S; none of ours is.
    for n in 0..64 {
        let token = sign(&key, None, &json!({ "n": n })).unwrap();
        let raw = unb64(token.rsplit('.').next().unwrap());
        assert!(negate_mod_order(&raw[32..]) > raw[32..].to_vec(), "high S in {token}");
    }
}

#[test]
fn claims_that_are_not_an_object_are_not_signed() {
    assert_eq!(sign(&rfc8037_key(), None, &json!(["a"])), Err(JwtError::ClaimsNotAnObject));
    let huge = json!({ "pad": "x".repeat(MAX_TOKEN_BYTES) });
    assert_eq!(sign(&rfc8037_key(), None, &huge), Err(JwtError::TooLarge));
}

struct Refusal {
    name: &'static str,
    token: String,
    accepted: &'static [Algorithm],
    expect: JwtError,
}

#[test]
fn forged_reencoded_and_malformed_tokens_are_refused() {
    let ed = rfc8037_key();
    let es = rfc7515_key();
    let keys = key_set(&[&ed, &es]);
    let claims = r#"{"sub":"alice","scope":"read"}"#;
    let good_ed = signed(&ed, &json!({"alg": "EdDSA", "kid": "rfc8037"}), claims);
    let good_es = signed(&es, &json!({"alg": "ES256", "kid": "rfc7515"}), claims);
    let [ed_header, ed_claims, ed_signature]: [&str; 3] =
        good_ed.split('.').collect::<Vec<_>>().try_into().unwrap();
    let [es_header, es_claims, es_signature]: [&str; 3] =
        good_es.split('.').collect::<Vec<_>>().try_into().unwrap();
    let es_raw = unb64(es_signature);
    let es_high_s = [&es_raw[..32], &negate_mod_order(&es_raw[32..])].concat();
    let tampered_claims = b64(br#"{"sub":"admin","scope":"read"}"#);
    let tampered_header = b64(br#"{"alg":"EdDSA","kid":"rfc8037","typ":"JWT"}"#);
    // The last of a 64-byte signature's 86 characters carries 2 bits of it and 4 bits that
    // must be zero: setting one spells the same bytes a second way.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut trailing_bits = ed_signature.to_owned();
    let last = trailing_bits.pop().unwrap();
    let index = ALPHABET.iter().position(|c| char::from(*c) == last).unwrap();
    trailing_bits.push(char::from(ALPHABET[index | 1]));
    let all = &Algorithm::ALL;

    let cases = [
        Refusal {
            name: "alg none with an empty signature",
            token: format!("{}.{ed_claims}.", b64(br#"{"alg":"none","kid":"rfc8037"}"#)),
            accepted: all,
            expect: JwtError::AlgNone,
        },
        Refusal {
            name: "alg none over a signature made with the key",
            token: signed(&ed, &json!({"alg": "none", "kid": "rfc8037"}), claims),
            accepted: all,
            expect: JwtError::AlgNone,
        },
        Refusal {
            name: "an alg we do not implement (HS256 keyed with a public key is the classic confusion)",
            token: signed(&ed, &json!({"alg": "HS256", "kid": "rfc8037"}), claims),
            accepted: all,
            expect: JwtError::UnsupportedAlgorithm,
        },
        Refusal {
            name: "alg swapped to ES256 on the Ed25519 key",
            token: signed(&ed, &json!({"alg": "ES256", "kid": "rfc8037"}), claims),
            accepted: all,
            expect: JwtError::AlgorithmMismatch,
        },
        Refusal {
            name: "alg swapped to EdDSA on the P-256 key",
            token: signed(&es, &json!({"alg": "EdDSA", "kid": "rfc7515"}), claims),
            accepted: all,
            expect: JwtError::AlgorithmMismatch,
        },
        Refusal {
            name: "an alg the caller does not accept",
            token: good_es.clone(),
            accepted: &[Algorithm::EdDSA],
            expect: JwtError::AlgorithmNotAccepted,
        },
        Refusal {
            name: "an unknown kid",
            token: signed(&ed, &json!({"alg": "EdDSA", "kid": "retired-long-ago"}), claims),
            accepted: all,
            expect: JwtError::UnknownKid,
        },
        Refusal {
            name: "a kid naming the other key",
            token: signed(&ed, &json!({"alg": "EdDSA", "kid": "rfc7515"}), claims),
            accepted: all,
            expect: JwtError::AlgorithmMismatch,
        },
        Refusal {
            name: "no kid",
            token: signed(&ed, &json!({"alg": "EdDSA"}), claims),
            accepted: all,
            expect: JwtError::MissingKid,
        },
        Refusal {
            name: "a crit header",
            token: signed(&ed, &json!({"alg": "EdDSA", "kid": "rfc8037", "crit": ["exp"], "exp": 1}), claims),
            accepted: all,
            expect: JwtError::CriticalHeader,
        },
        Refusal {
            name: "a tampered claim",
            token: format!("{ed_header}.{tampered_claims}.{ed_signature}"),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "a tampered claim, ES256",
            token: format!("{es_header}.{tampered_claims}.{es_signature}"),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "a tampered header",
            token: format!("{tampered_header}.{ed_claims}.{ed_signature}"),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "the high-S twin of an ES256 signature",
            token: format!("{es_header}.{es_claims}.{}", b64(&es_high_s)),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "an ES256 signature re-encoded as DER",
            token: format!("{es_header}.{es_claims}.{}", b64(&der(&es_raw))),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "a signature with base64 padding",
            token: format!("{good_ed}=="),
            accepted: all,
            expect: JwtError::Malformed("a part is not canonical unpadded base64url"),
        },
        Refusal {
            name: "a signature with non-zero trailing bits (a second spelling of the same bytes)",
            token: format!("{ed_header}.{ed_claims}.{trailing_bits}"),
            accepted: all,
            expect: JwtError::Malformed("a part is not canonical unpadded base64url"),
        },
        Refusal {
            name: "a signature in the standard base64 alphabet",
            token: format!("{ed_header}.{ed_claims}.{}", ed_signature.replace('-', "+").replace('_', "/")),
            accepted: all,
            expect: if ed_signature.contains(['-', '_']) {
                JwtError::Malformed("a part is not canonical unpadded base64url")
            } else {
                JwtError::BadSignature
            },
        },
        Refusal {
            name: "a truncated signature (63 bytes, canonical base64url)",
            token: format!("{ed_header}.{ed_claims}.{}", &ed_signature[..ed_signature.len() - 2]),
            accepted: all,
            expect: JwtError::BadSignature,
        },
        Refusal {
            name: "no signature part",
            token: format!("{ed_header}.{ed_claims}"),
            accepted: all,
            expect: JwtError::Malformed("a JWS has three parts"),
        },
        Refusal {
            name: "four parts",
            token: format!("{good_ed}.{ed_signature}"),
            accepted: all,
            expect: JwtError::Malformed("a JWS has three parts"),
        },
        Refusal {
            name: "a huge token",
            token: format!("{ed_header}.{}.{ed_signature}", "A".repeat(MAX_TOKEN_BYTES)),
            accepted: all,
            expect: JwtError::TooLarge,
        },
        Refusal {
            name: "claims with a repeated member (readers could disagree on which counts)",
            token: signed(
                &ed,
                &json!({"alg": "EdDSA", "kid": "rfc8037"}),
                r#"{"sub":"alice","sub":"admin"}"#,
            ),
            accepted: all,
            expect: JwtError::Malformed("the claims are not a JSON object"),
        },
        Refusal {
            name: "claims that are not JSON (a JWS, not a JWT)",
            token: signed(&ed, &json!({"alg": "EdDSA", "kid": "rfc8037"}), "Example of Ed25519 signing"),
            accepted: all,
            expect: JwtError::Malformed("the claims are not a JSON object"),
        },
        Refusal {
            name: "a header that is not an object",
            token: format!("{}.{ed_claims}.{ed_signature}", b64(b"\"EdDSA\"")),
            accepted: all,
            expect: JwtError::Malformed("the header is not a JSON object"),
        },
    ];
    for case in cases {
        assert_eq!(verify(&keys, &case.token, case.accepted), Err(case.expect), "{}", case.name);
    }
    // The untouched tokens verify, so each refusal above is the change the row made.
    assert!(verify(&keys, &good_ed, all).is_ok());
    assert!(verify(&keys, &good_es, all).is_ok());
}

#[test]
fn decode_unverified_reads_a_tampered_token_but_not_a_malformed_one() {
    let key = rfc8037_key();
    let token = sign(&key, None, &json!({"sub": "alice"})).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = input.split_once('.').unwrap();
    let forged = format!("{header}.{}.{signature}", b64(br#"{"sub":"admin"}"#));
    assert_eq!(decode_unverified(&forged).unwrap().claims["sub"], "admin");
    assert!(verify(&key_set(&[&key]), &forged, &Algorithm::ALL).is_err());
    assert!(decode_unverified(&format!("{forged}==")).is_err());
    assert!(decode_unverified(&"A".repeat(MAX_TOKEN_BYTES + 1)).is_err());
}

#[test]
fn a_private_jwk_whose_public_part_is_not_that_of_d_is_refused() {
    let other = SigningKey::generate(Algorithm::EdDSA, Some("other"), &[7; 32]).unwrap();
    let other_x = other.verifying_key().to_jwk().x;
    let refused = SigningKey::from_jwk(&private_jwk("EdDSA", "k", &other_x, None, RFC8037_D)).err();
    assert_eq!(refused.map(|error| error.member), Some("x"));
    let other_es = SigningKey::generate(Algorithm::Es256, Some("other"), &[7; 32]).unwrap();
    let other_es = other_es.verifying_key().to_jwk();
    let es_jwk = private_jwk("ES256", "k", &other_es.x, other_es.y.as_deref(), RFC7515_A3_D);
    assert_eq!(
        SigningKey::from_jwk(&es_jwk).err().map(|error| error.member),
        Some("x"),
        "another key's point"
    );
    let off_curve = private_jwk("ES256", "k", RFC7515_A3_X, Some(RFC8037_X), RFC7515_A3_D);
    assert_eq!(SigningKey::from_jwk(&off_curve).err().map(|error| error.member), Some("y"), "not a point");
}

#[test]
fn malformed_jwks_name_the_member_and_never_its_value() {
    let cases: [(&str, PrivateJwk, &str); 7] = [
        ("unknown alg", private_jwk("RS256", "k", RFC8037_X, None, RFC8037_D), "alg"),
        (
            "kty of another alg",
            PrivateJwk { kty: "EC".to_owned(), ..private_jwk("EdDSA", "k", RFC8037_X, None, RFC8037_D) },
            "kty",
        ),
        ("an OKP key with y", private_jwk("EdDSA", "k", RFC8037_X, Some(RFC8037_X), RFC8037_D), "y"),
        ("a P-256 key without y", private_jwk("ES256", "k", RFC7515_A3_X, None, RFC7515_A3_D), "y"),
        ("d padded", private_jwk("EdDSA", "k", RFC8037_X, None, &format!("{RFC8037_D}=")), "d"),
        ("empty kid", private_jwk("EdDSA", "", RFC8037_X, None, RFC8037_D), "kid"),
        (
            "use enc",
            PrivateJwk { key_use: "enc".to_owned(), ..private_jwk("EdDSA", "k", RFC8037_X, None, RFC8037_D) },
            "use",
        ),
    ];
    for (name, jwk, member) in cases {
        let error = SigningKey::from_jwk(&jwk).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(error.member, member, "{name}");
        let text = error.to_string();
        assert!(
            !text.contains(RFC8037_D) && !text.contains(RFC7515_A3_D) && !text.contains(RFC8037_X),
            "{name}: {text}"
        );
    }
}

#[test]
fn a_key_set_refuses_two_keys_with_one_kid() {
    let first = SigningKey::generate(Algorithm::EdDSA, Some("same"), &[1; 32]).unwrap();
    let second = SigningKey::generate(Algorithm::Es256, Some("same"), &[2; 32]).unwrap();
    let keys = vec![first.verifying_key().clone(), second.verifying_key().clone()];
    assert_eq!(KeySet::new(keys).err().map(|error| error.member), Some("kid"));
}

#[test]
fn the_jwks_holds_public_members_only() {
    let jwks = key_set(&[&rfc8037_key(), &rfc7515_key()]).to_jwks_json();
    let parsed: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(
        parsed["keys"][0],
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "rfc8037", "alg": "EdDSA", "use": "sig", "x": RFC8037_X})
    );
    assert_eq!(
        parsed["keys"][1],
        json!({"kty": "EC", "crv": "P-256", "kid": "rfc7515", "alg": "ES256", "use": "sig",
               "x": RFC7515_A3_X, "y": RFC7515_A3_Y})
    );
    assert!(!jwks.contains(RFC8037_D) && !jwks.contains(RFC7515_A3_D) && !jwks.contains("\"d\""));
}

#[test]
fn generated_keys_round_trip_through_their_jwk_and_default_to_their_thumbprint() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, None, &[42; 32]).unwrap();
        assert_eq!(key.kid(), key.verifying_key().thumbprint());
        let reloaded = SigningKey::from_jwk(&key.to_private_jwk()).unwrap();
        let token = sign(&reloaded, None, &json!({"sub": "a"})).unwrap();
        assert!(verify(&key_set(&[&key]), &token, &[alg]).is_ok());
    }
    // 2^256 - 1 is above P-256's order: not a private key, the caller draws again.
    assert_eq!(SigningKey::generate(Algorithm::Es256, None, &[0xff; 32]).err().map(|e| e.member), Some("d"));
}
