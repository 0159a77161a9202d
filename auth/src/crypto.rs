//! The cryptography behind `jsonwebtoken`: an HS256-only [`CryptoProvider`] on RustCrypto's
//! `hmac` + `sha2`. Why this exists instead of `jsonwebtoken`'s `rust_crypto` feature is told
//! under "Crypto backend" in the crate documentation.
//!
//! `jsonwebtoken` 11 looks its provider up in a process-wide `OnceLock` on every `encode` and
//! `decode`, and with no crypto feature enabled its fallback (what the first `encode`/`decode`
//! locks in when nobody installed a provider) panics. [`install`] puts [`PROVIDER`] there;
//! [`crate::verify`] and [`crate::mint`] call it before anything else, so no caller needs an
//! initialisation step. The catch: nothing in the process may use `jsonwebtoken` before this
//! crate does (nothing in the workspace uses it at all except this crate — keep it that way; the
//! tests craft their tokens with `hmac` directly for this reason).

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result, new_error};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::Sha256;
use signature::{Signer, Verifier};

type HmacSha256 = Hmac<Sha256>;

/// HS256 and nothing else. Every other algorithm is refused with
/// [`ErrorKind::UnsupportedAlgorithm`], a non-HMAC key with [`ErrorKind::InvalidKeyFormat`], and
/// every JWK helper with [`ErrorKind::UnsupportedAlgorithm`] — errors, never panics.
pub(crate) static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    // Not `KeyUtils::new_unimplemented()`: that one panics. This crate never touches JWKs
    // (`jsonwebtoken::jwk` is the only caller of these), but a refusal is cheap insurance.
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: no_rsa_components,
        rsa_pub_components_from_public_key: no_rsa_components,
        ec_pub_components_from_private_key: no_ec_components,
        ed_pub_components_from_private_key: no_ed_components,
        compute_digest: no_digest,
    },
};

/// Makes [`PROVIDER`] `jsonwebtoken`'s process-wide provider if no provider is installed yet,
/// and tells whether it is the installed one.
///
/// Called at the top of [`crate::verify`] and [`crate::mint`] rather than once from some
/// initialisation routine, because this crate has none and its callers (the Worker, which has no
/// `main`; the CLI; tests) should not need to know. Only the first call tries to install; later
/// calls are one atomic load. Thread-safe on native targets; on `wasm32-unknown-unknown` there
/// are no threads, and the first request in an isolate installs it.
///
/// `false` means something else got there first — another provider, or `jsonwebtoken`'s
/// panicking fallback because something called `jsonwebtoken` before this crate. `jsonwebtoken`
/// allows one provider per process, so that cannot be repaired; [`crate::verify`] then fails
/// closed with [`crate::AuthError::Unconfigured`] rather than panic or trust a provider it does
/// not know.
pub(crate) fn install() -> bool {
    static OURS: OnceLock<bool> = OnceLock::new();
    *OURS.get_or_init(|| PROVIDER.install_default().is_ok())
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::HS256 {
        return Err(new_error(ErrorKind::UnsupportedAlgorithm));
    }
    if key.family() != AlgorithmFamily::Hmac {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(Hs256(hmac_key(key.as_bytes())?)))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::HS256 {
        return Err(new_error(ErrorKind::UnsupportedAlgorithm));
    }
    if key.family() != AlgorithmFamily::Hmac {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(Hs256(hmac_key(key.try_get_as_bytes()?)?)))
}

/// HMAC accepts keys of any length, so this does not fail in practice; `verify` refuses an
/// empty secret before getting here.
fn hmac_key(secret: &[u8]) -> Result<HmacSha256> {
    HmacSha256::new_from_slice(secret).map_err(|_| new_error(ErrorKind::InvalidKeyFormat))
}

/// HMAC-SHA256 keyed with the secret, ready to be cloned for each message.
struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison (`subtle`), and the length must be exactly 32 bytes.
        mac.verify_slice(signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn no_rsa_components(_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(new_error(ErrorKind::UnsupportedAlgorithm))
}

fn no_ec_components(_der: &[u8], _alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    Err(new_error(ErrorKind::UnsupportedAlgorithm))
}

fn no_ed_components(_der: &[u8], _curve: &EllipticCurve) -> Result<Vec<u8>> {
    Err(new_error(ErrorKind::UnsupportedAlgorithm))
}

fn no_digest(_data: &[u8], _hash: ThumbprintHash) -> Result<Vec<u8>> {
    Err(new_error(ErrorKind::UnsupportedAlgorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"dev-secret-at-least-32-bytes-long!!";

    const NOT_HS256: [Algorithm; 11] = [
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::EdDSA,
    ];

    fn is_unsupported(err: &jsonwebtoken::errors::Error) -> bool {
        matches!(err.kind(), ErrorKind::UnsupportedAlgorithm)
    }

    #[test]
    fn provider_refuses_every_algorithm_but_hs256_without_panicking() {
        // Keys of every family, so that the refusal is about the algorithm, not the key.
        let decoding_keys = [
            DecodingKey::from_secret(SECRET),
            DecodingKey::from_rsa_der(b"not really DER"),
            DecodingKey::from_ec_der(b"not really DER"),
            DecodingKey::from_ed_der(b"not really DER"),
        ];
        let encoding_keys = [
            EncodingKey::from_secret(SECRET),
            EncodingKey::from_rsa_der(b"not really DER"),
            EncodingKey::from_ec_der(b"not really DER"),
            EncodingKey::from_ed_der(b"not really DER"),
        ];
        for alg in NOT_HS256 {
            for key in &decoding_keys {
                let err = (PROVIDER.verifier_factory)(&alg, key).err();
                assert!(err.as_ref().is_some_and(is_unsupported), "{alg:?}: {err:?}");
            }
            for key in &encoding_keys {
                let err = (PROVIDER.signer_factory)(&alg, key).err();
                assert!(err.as_ref().is_some_and(is_unsupported), "{alg:?}: {err:?}");
            }
        }
    }

    #[test]
    fn provider_refuses_a_non_hmac_key_for_hs256() {
        let err = (PROVIDER.verifier_factory)(&Algorithm::HS256, &DecodingKey::from_rsa_der(b"x"))
            .err()
            .map(|e| e.into_kind());
        assert!(matches!(err, Some(ErrorKind::InvalidKeyFormat)), "{err:?}");
        let err = (PROVIDER.signer_factory)(&Algorithm::HS256, &EncodingKey::from_ec_der(b"x"))
            .err()
            .map(|e| e.into_kind());
        assert!(matches!(err, Some(ErrorKind::InvalidKeyFormat)), "{err:?}");
    }

    #[test]
    fn jwk_helpers_refuse_instead_of_panicking() {
        let utils = &PROVIDER.key_utils;
        assert!((utils.rsa_pub_components_from_private_key)(b"x").is_err());
        assert!((utils.rsa_pub_components_from_public_key)(b"x").is_err());
        assert!((utils.ec_pub_components_from_private_key)(b"x", Algorithm::ES256).is_err());
        assert!((utils.ed_pub_components_from_private_key)(b"x", &EllipticCurve::Ed25519).is_err());
        assert!((utils.compute_digest)(b"x", ThumbprintHash::SHA256).is_err());
    }

    /// The well-known jwt.io example token (secret `your-256-bit-secret`), checked by the
    /// provider directly and through `jsonwebtoken::decode`.
    #[test]
    fn hs256_matches_a_known_signature() {
        const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9\
            .eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ\
            .SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let secret = b"your-256-bit-secret";
        let (message, signature) = TOKEN.rsplit_once('.').unwrap();
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .unwrap();

        let signer =
            (PROVIDER.signer_factory)(&Algorithm::HS256, &EncodingKey::from_secret(secret))
                .unwrap();
        assert_eq!(signer.try_sign(message.as_bytes()).unwrap(), signature);

        let verifier =
            (PROVIDER.verifier_factory)(&Algorithm::HS256, &DecodingKey::from_secret(secret))
                .unwrap();
        assert!(verifier.verify(message.as_bytes(), &signature).is_ok());
        let mut flipped = signature.clone();
        flipped[31] ^= 1;
        assert!(verifier.verify(message.as_bytes(), &flipped).is_err());
        assert!(
            verifier
                .verify(message.as_bytes(), &signature[..31].to_vec())
                .is_err()
        );
        assert!(verifier.verify(message.as_bytes(), &Vec::new()).is_err());

        assert!(install());
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            TOKEN,
            &DecodingKey::from_secret(secret),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["name"], "John Doe");
    }

    /// Past our own header check, `jsonwebtoken` itself asking the installed provider for
    /// another algorithm gets an error back, not a panic.
    #[test]
    fn jsonwebtoken_with_our_provider_refuses_rs256() {
        assert!(install());
        let token = "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"; // {"alg":"RS256"} . {} . "signature"
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let err = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_rsa_der(b"not really DER"),
            &validation,
        )
        .unwrap_err();
        assert!(is_unsupported(&err), "{err:?}");

        let err = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::RS256),
            &serde_json::json!({}),
            &EncodingKey::from_rsa_der(b"not really DER"),
        )
        .unwrap_err();
        assert!(is_unsupported(&err), "{err:?}");
    }
}
