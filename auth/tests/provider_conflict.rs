//! What happens when something else in the process installs a `jsonwebtoken` crypto provider
//! before `auth` can install its HS256-only one. A test binary of its own: the provider is
//! process-wide and can be installed only once.

use auth::{AuthError, Claims, Scopes, Tenant, mint, verify};
use jsonwebtoken::crypto::{CryptoProvider, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, new_error};

/// A provider that refuses everything.
static OTHER: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(new_error(ErrorKind::UnsupportedAlgorithm)),
    verifier_factory: |_, _| Err(new_error(ErrorKind::UnsupportedAlgorithm)),
    key_utils: KeyUtils::new_unimplemented(),
};

const SECRET: &[u8] = b"test-secret-0123456789abcdef-0123456789";
const NOW: u64 = 1_750_000_000;

#[test]
fn a_foreign_provider_makes_verify_fail_closed_and_mint_panic() {
    assert!(OTHER.install_default().is_ok());

    let token = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl";
    assert_eq!(verify(token, SECRET, NOW), Err(AuthError::Unconfigured));

    let claims = Claims {
        sub: "alice".into(),
        tenant: Tenant::parse("acme").unwrap(),
        scope: Scopes::parse("read").unwrap(),
        exp: NOW + 60,
        nbf: None,
        iat: None,
    };
    let minted = std::panic::catch_unwind(|| mint(&claims, SECRET));
    assert!(
        minted.is_err(),
        "mint must not sign with a provider it does not know"
    );
}
