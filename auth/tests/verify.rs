//! `verify` at its boundary: real tokens in, `Principal` or `AuthError` out.
//!
//! Bad tokens are crafted byte by byte (header JSON, payload JSON, an HMAC over whatever header
//! we like), because the attacks that matter — `alg: none`, alg confusion, tampering — are
//! tokens no well-behaved library would mint.
//!
//! The MACs are computed with `hmac` + `sha2` directly, not with `jsonwebtoken`: the crate
//! installs its own HS256-only crypto provider on first use, and `jsonwebtoken` called first,
//! from here, would lock in its own (panicking) fallback for the whole test process. It also
//! keeps the test oracle independent of the code under test.

use auth::{
    AuthError, Claims, LEEWAY_SECS, MAX_TOKEN_LEN, Principal, Scope, Scopes, Tenant, mint, verify,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &[u8] = b"test-secret-0123456789abcdef-0123456789";
const NOW: u64 = 1_750_000_000;

fn claims() -> Claims {
    Claims {
        sub: "alice".into(),
        tenant: Tenant::parse("acme").unwrap(),
        scope: Scopes::parse("commands read").unwrap(),
        exp: NOW + 3600,
        nbf: None,
        iat: Some(NOW),
    }
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

/// A token with exactly this header and payload, MACed with HS256 under `secret` — whatever
/// the header claims the algorithm is.
fn hs256_signed(header: Value, payload: Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(&header), b64(&payload));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(message.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{signature}")
}

/// A correctly signed HS256 token with this payload.
fn signed(payload: Value) -> String {
    hs256_signed(json!({"alg": "HS256", "typ": "JWT"}), payload, SECRET)
}

fn valid_payload() -> Value {
    serde_json::to_value(claims()).unwrap()
}

/// `valid_payload()` with `edit` applied to its JSON object.
fn payload_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut payload = valid_payload();
    edit(payload.as_object_mut().unwrap());
    payload
}

fn err(token: &str) -> AuthError {
    verify(token, SECRET, NOW).expect_err("token must be refused")
}

// ---- accepted --------------------------------------------------------------------------------

#[test]
fn minted_token_verifies_into_its_principal() {
    let principal = verify(&mint(&claims(), SECRET), SECRET, NOW).unwrap();
    assert_eq!(
        principal,
        Principal {
            actor: "alice".into(),
            tenant: Tenant::parse("acme").unwrap(),
            scopes: Scopes::parse("read commands").unwrap(),
            expires_at: NOW + 3600,
        }
    );
    assert!(principal.require(Scope::Commands).is_ok());
    assert_eq!(
        principal.require(Scope::Replay).unwrap_err().missing,
        Scope::Replay
    );
}

#[test]
fn minted_payload_uses_the_documented_claim_names() {
    let token = mint(&claims(), SECRET);
    let payload = token.split('.').nth(1).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"sub": "alice", "tenant": "acme", "scope": "commands read",
               "exp": NOW + 3600, "iat": NOW})
    );
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
}

#[test]
fn nbf_and_iat_are_optional_and_nbf_in_the_past_is_fine() {
    assert!(
        verify(
            &signed(payload_with(|p| {
                p.remove("iat");
            })),
            SECRET,
            NOW
        )
        .is_ok()
    );
    let nbf_past = payload_with(|p| {
        p.insert("nbf".into(), json!(NOW - 10));
    });
    assert!(verify(&signed(nbf_past), SECRET, NOW).is_ok());
}

#[test]
fn unknown_extra_claims_are_ignored() {
    let payload = payload_with(|p| {
        p.insert("jti".into(), json!("abc"));
        p.insert("iss".into(), json!("edgeloop-cli"));
    });
    assert!(verify(&signed(payload), SECRET, NOW).is_ok());
}

// ---- malformed -------------------------------------------------------------------------------

#[test]
fn empty_token_is_missing() {
    assert_eq!(err(""), AuthError::Missing);
}

#[test]
fn garbage_is_malformed() {
    let valid = mint(&claims(), SECRET);
    let two_parts = valid.rsplit_once('.').unwrap().0.to_owned();
    for token in [
        "garbage",
        "a.b",
        "a.b.c",
        "..",
        "...",
        "a.b.c.d",
        "Bearer x.y.z",
        "%%%.%%%.%%%",
        &two_parts,
        &format!("{valid}.extra"),
        &format!(" {valid}"),
        &format!("{valid}\n"),
    ] {
        assert_eq!(err(token), AuthError::Malformed, "{token:?}");
    }
}

#[test]
fn header_that_is_not_a_json_object_is_malformed() {
    for header in [json!("HS256"), json!(["HS256"]), json!(null), json!({})] {
        let token = hs256_signed(header.clone(), valid_payload(), SECRET);
        assert_eq!(err(&token), AuthError::Malformed, "{header}");
    }
}

#[test]
fn signed_payload_that_is_not_a_json_object_is_malformed() {
    for payload in [json!([1, 2]), json!("alice"), json!(42)] {
        assert_eq!(
            err(&signed(payload.clone())),
            AuthError::Malformed,
            "{payload}"
        );
    }
}

#[test]
fn critical_header_extensions_are_refused() {
    let token = hs256_signed(
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        valid_payload(),
        SECRET,
    );
    assert_eq!(err(&token), AuthError::Malformed);
}

#[test]
fn oversized_token_is_malformed_before_any_work() {
    let huge = payload_with(|p| {
        p.insert("pad".into(), json!("x".repeat(MAX_TOKEN_LEN)));
    });
    assert_eq!(err(&signed(huge)), AuthError::Malformed);
}

// ---- signature -------------------------------------------------------------------------------

#[test]
fn tampered_payload_fails_the_signature() {
    let token = mint(&claims(), SECRET);
    let mut forged = claims();
    forged.tenant = Tenant::parse("victim").unwrap();
    forged.scope = Scopes::all();
    let forged_payload = mint(&forged, b"whatever")
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();

    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(err(&tampered), AuthError::BadSignature);
}

#[test]
fn tampered_header_fails_the_signature() {
    let token = mint(&claims(), SECRET);
    let (_, rest) = token.split_once('.').unwrap();
    let other_header = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "x"}));
    assert_eq!(
        err(&format!("{other_header}.{rest}")),
        AuthError::BadSignature
    );
}

#[test]
fn wrong_secret_fails_the_signature() {
    let token = mint(&claims(), b"some-other-secret-0123456789abcdef");
    assert_eq!(err(&token), AuthError::BadSignature);
}

#[test]
fn stripped_or_altered_signature_fails() {
    let token = mint(&claims(), SECRET);
    let (message, signature) = token.rsplit_once('.').unwrap();
    assert_eq!(err(&format!("{message}.")), AuthError::BadSignature);
    let other = if signature.starts_with('A') { "B" } else { "A" };
    let altered = format!("{message}.{other}{}", &signature[1..]);
    assert_eq!(err(&altered), AuthError::BadSignature);
}

#[test]
fn empty_secret_fails_closed() {
    // A Worker deployed without AUTH_SECRET must not accept tokens MACed with the empty key.
    let token = mint(&claims(), b"");
    assert_eq!(verify(&token, b"", NOW), Err(AuthError::Unconfigured));
}

// ---- algorithm -------------------------------------------------------------------------------

#[test]
fn alg_none_is_refused_with_or_without_a_signature() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let unsigned = format!("{}.{}.", b64(&header), b64(&valid_payload()));
        assert_eq!(err(&unsigned), AuthError::UnsupportedAlgorithm, "{alg}");
        // Even with a signature that would be valid for HS256.
        let signed = hs256_signed(header, valid_payload(), SECRET);
        assert_eq!(err(&signed), AuthError::UnsupportedAlgorithm, "{alg}");
    }
}

#[test]
fn alg_confusion_rs256_header_with_hs256_mac_is_refused() {
    // The classic attack: take the server's key (here the secret itself, as a verifier that
    // treats it as an RSA public key would), MAC with HS256, but label it RS256.
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = hs256_signed(json!({"alg": alg, "typ": "JWT"}), valid_payload(), SECRET);
        assert_eq!(err(&token), AuthError::UnsupportedAlgorithm, "{alg}");
    }
}

#[test]
fn other_hmac_algorithms_are_refused_even_when_correctly_signed() {
    let message = format!(
        "{}.{}",
        b64(&json!({"alg": "HS512", "typ": "JWT"})),
        b64(&valid_payload())
    );
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(SECRET).unwrap();
    mac.update(message.as_bytes());
    let token = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(err(&token), AuthError::UnsupportedAlgorithm);
}

#[test]
fn alg_must_be_the_exact_string() {
    for alg in [
        json!("hs256"),
        json!("HS256 "),
        json!(256),
        json!(["HS256"]),
        json!(null),
    ] {
        let token = hs256_signed(json!({"alg": alg}), valid_payload(), SECRET);
        assert_eq!(err(&token), AuthError::UnsupportedAlgorithm, "{alg}");
    }
    let no_alg = hs256_signed(json!({"typ": "JWT"}), valid_payload(), SECRET);
    assert_eq!(err(&no_alg), AuthError::Malformed);
}

// ---- time ------------------------------------------------------------------------------------

#[test]
fn expired_beyond_the_leeway_is_refused() {
    let mut c = claims();
    c.exp = NOW - LEEWAY_SECS;
    assert_eq!(err(&mint(&c, SECRET)), AuthError::Expired);
    c.exp = NOW - 3600;
    assert_eq!(err(&mint(&c, SECRET)), AuthError::Expired);
    c.exp = 0;
    assert_eq!(err(&mint(&c, SECRET)), AuthError::Expired);
}

#[test]
fn expiry_within_the_leeway_is_tolerated() {
    let mut c = claims();
    c.exp = NOW - LEEWAY_SECS + 1;
    assert!(verify(&mint(&c, SECRET), SECRET, NOW).is_ok());
}

#[test]
fn the_same_token_expires_as_time_passes() {
    let token = mint(&claims(), SECRET);
    assert!(verify(&token, SECRET, NOW + 3600).is_ok());
    assert_eq!(
        verify(&token, SECRET, NOW + 3600 + LEEWAY_SECS),
        Err(AuthError::Expired)
    );
    assert_eq!(verify(&token, SECRET, u64::MAX), Err(AuthError::Expired));
}

#[test]
fn not_yet_valid_beyond_the_leeway_is_refused() {
    let mut c = claims();
    c.nbf = Some(NOW + LEEWAY_SECS + 1);
    let token = mint(&c, SECRET);
    assert_eq!(err(&token), AuthError::NotYetValid);
    // It becomes valid once its time comes (less the leeway).
    assert!(verify(&token, SECRET, NOW + 1).is_ok());
    c.nbf = Some(NOW + LEEWAY_SECS);
    assert!(verify(&mint(&c, SECRET), SECRET, NOW).is_ok());
}

#[test]
fn far_future_exp_does_not_overflow() {
    let mut c = claims();
    c.exp = u64::MAX;
    assert!(verify(&mint(&c, SECRET), SECRET, NOW).is_ok());
}

// ---- claims ----------------------------------------------------------------------------------

#[test]
fn missing_exp_is_refused() {
    let token = signed(payload_with(|p| {
        p.remove("exp");
    }));
    assert_eq!(err(&token), AuthError::MissingClaim("exp"));
    let null_exp = signed(payload_with(|p| {
        p.insert("exp".into(), Value::Null);
    }));
    assert_eq!(err(&null_exp), AuthError::MissingClaim("exp"));
}

#[test]
fn non_integer_times_are_invalid() {
    for (claim, value) in [
        ("exp", json!("1750003600")),
        ("exp", json!(1_750_003_600.5)),
        ("exp", json!(-1)),
        ("nbf", json!("soon")),
        ("iat", json!(true)),
    ] {
        let token = signed(payload_with(|p| {
            p.insert(claim.into(), value.clone());
        }));
        assert_eq!(
            err(&token),
            AuthError::InvalidClaim(claim),
            "{claim}={value}"
        );
    }
}

#[test]
fn missing_identity_claims_are_refused() {
    for claim in ["sub", "tenant", "scope"] {
        let token = signed(payload_with(|p| {
            p.remove(claim);
        }));
        assert_eq!(err(&token), AuthError::MissingClaim(claim), "{claim}");
    }
}

#[test]
fn invalid_identity_claims_are_refused() {
    let cases = [
        ("sub", json!("")),
        ("sub", json!("bad\nactor")),
        ("sub", json!("x".repeat(auth::MAX_ACTOR_LEN + 1))),
        ("sub", json!(42)),
        ("tenant", json!("")),
        ("tenant", json!("acme/board")),
        ("tenant", json!("acme:1")),
        ("tenant", json!("t".repeat(Tenant::MAX_LEN + 1))),
        ("tenant", json!(["acme"])),
        ("scope", json!("")),
        ("scope", json!("read write")),
        ("scope", json!("Commands")),
        ("scope", json!(["commands", "read"])),
    ];
    for (claim, value) in cases {
        let token = signed(payload_with(|p| {
            p.insert(claim.into(), value.clone());
        }));
        assert_eq!(
            err(&token),
            AuthError::InvalidClaim(claim),
            "{claim}={value}"
        );
    }
}

#[test]
fn audience_restricted_tokens_are_refused() {
    let token = signed(payload_with(|p| {
        p.insert("aud".into(), json!("some-other-service"));
    }));
    assert_eq!(err(&token), AuthError::InvalidClaim("aud"));
}

#[test]
fn every_auth_error_is_a_401_with_a_client_safe_message() {
    assert_eq!(AuthError::STATUS, 401);
    assert_eq!(AuthError::CODE, "unauthorized");
    let token = mint(&claims(), SECRET);
    let secret_text = std::str::from_utf8(SECRET).unwrap();
    for error in [
        err(""),
        err("garbage"),
        err(&mint(&claims(), b"other-secret")),
        verify(&token, SECRET, u64::MAX).unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(
            !message.contains(secret_text) && !message.contains(&token),
            "{message}"
        );
        assert!(message.len() < 80, "{message}");
    }
}
