//! Properties of `verify` over inputs nobody would write by hand: it never panics, and no
//! single-character change to a valid token gets through. Native only (proptest).
#![cfg(not(target_arch = "wasm32"))]

use auth::{Claims, Scopes, Tenant, mint, verify};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

const SECRET: &[u8] = b"prop-secret-0123456789abcdef-0123456789";
const NOW: u64 = 1_750_000_000;

fn valid_token() -> String {
    mint(
        &Claims {
            sub: "alice".into(),
            tenant: Tenant::parse("acme").unwrap(),
            scope: Scopes::parse("read").unwrap(),
            exp: NOW + 60,
            nbf: None,
            iat: None,
        },
        SECRET,
    )
}

/// Three base64url parts of arbitrary bytes: gets past the "is it a JWT at all" checks far more
/// often than arbitrary strings do.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let part =
        || proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b));
    (part(), part(), part()).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
}

/// JSON header and payload objects with arbitrary values under the names that matter.
fn json_shaped() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("HS256")),
        Just(serde_json::Value::from("none")),
    ];
    let names = prop_oneof![
        Just("alg"),
        Just("typ"),
        Just("crit"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("sub"),
        Just("tenant"),
        Just("scope"),
        Just("aud"),
    ];
    let object = move || {
        proptest::collection::btree_map(names.clone(), value.clone(), 0..8).prop_map(|m| {
            let m: serde_json::Map<_, _> = m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&m).unwrap())
        })
    };
    (object(), object(), "[A-Za-z0-9_-]{0,60}").prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_strings(token in any::<String>(), now in any::<u64>()) {
        let _ = verify(&token, SECRET, now);
    }

    #[test]
    fn never_panics_on_jwt_shaped_input(token in jwt_shaped(), now in any::<u64>()) {
        prop_assert!(verify(&token, SECRET, now).is_err());
    }

    #[test]
    fn never_panics_on_json_shaped_input(token in json_shaped(), now in any::<u64>()) {
        // Unsigned under SECRET (the signature part is random), so never accepted either.
        prop_assert!(verify(&token, SECRET, now).is_err());
    }

    #[test]
    fn never_panics_with_arbitrary_secrets(
        secret in proptest::collection::vec(any::<u8>(), 0..80),
        now in any::<u64>(),
    ) {
        let _ = verify(&valid_token(), &secret, now);
    }

    #[test]
    fn any_single_character_change_is_refused(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.-]") {
        let token = valid_token();
        let i = index.index(token.len());
        let original = &token[i..=i];
        prop_assume!(original != replacement);
        let tampered = format!("{}{}{}", &token[..i], replacement, &token[i + 1..]);
        prop_assert!(verify(&tampered, SECRET, NOW).is_err(), "accepted {tampered}");
    }
}
