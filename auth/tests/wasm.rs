//! Token verification on its production target: the Worker runs `auth` on
//! wasm32-unknown-unknown, where there is no OS clock and no OS randomness and `usize` is
//! 32 bits. Run under Node by `wasm-bindgen-test-runner`
//! (`cargo test -p auth --target wasm32-unknown-unknown`); natively this file compiles to
//! nothing.
#![cfg(target_arch = "wasm32")]

use auth::{AuthError, Claims, Scope, Scopes, Tenant, mint, verify};
use wasm_bindgen_test::wasm_bindgen_test;

const SECRET: &[u8] = b"wasm-secret-0123456789abcdef-0123456789";
const NOW: u64 = 1_750_000_000;

fn claims(exp: u64) -> Claims {
    Claims {
        sub: "alice".into(),
        tenant: Tenant::parse("acme").unwrap(),
        scope: Scopes::parse("commands read").unwrap(),
        exp,
        nbf: None,
        iat: Some(NOW),
    }
}

#[wasm_bindgen_test]
fn a_minted_token_verifies_and_carries_the_principal() {
    let principal = verify(&mint(&claims(NOW + 60), SECRET), SECRET, NOW).unwrap();
    assert_eq!(principal.actor, "alice");
    assert_eq!(principal.tenant.as_str(), "acme");
    assert!(principal.require(Scope::Commands).is_ok());
    assert!(principal.require(Scope::Admin).is_err());
}

#[wasm_bindgen_test]
fn bad_tokens_are_refused() {
    let token = mint(&claims(NOW + 60), SECRET);
    assert_eq!(
        verify(&token, b"another-secret-0123456789abcdef", NOW),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        verify(&mint(&claims(NOW - 3600), SECRET), SECRET, NOW),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify("not.a.token", SECRET, NOW),
        Err(AuthError::Malformed)
    );
    assert_eq!(verify(&token, b"", NOW), Err(AuthError::Unconfigured));
}
