//! Bearer tokens and `Authorization` headers the Worker must refuse with 401.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

pub(super) fn sign(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// An `Authorization` value (or values) that must be refused with 401, and what it is.
pub(super) fn bad_authorization(
    rng: &mut fastrand::Rng,
    fixture: &Fixture,
) -> (Vec<Vec<u8>>, String) {
    let now = unix_now();
    let claims = json!({"sub": ACTOR, "tenant": TENANT, "scope": ALL_SCOPES, "exp": now + 3600});
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let bearer = |token: &str| format!("Bearer {token}").into_bytes();
    let valid = &fixture.token;
    let (header, payload, signature) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    match rng.u8(..4) {
        // Claims the Worker must refuse, correctly signed with its own secret.
        0 => {
            let mut forged = claims.clone();
            let what = match rng.u8(..22) {
                0 => {
                    forged.as_object_mut().unwrap().remove("exp");
                    "no exp"
                }
                1 => {
                    forged["exp"] = json!("tomorrow");
                    "exp a string"
                }
                2 => {
                    forged["exp"] = json!(now as f64 + 3600.5);
                    "exp a fraction"
                }
                3 => {
                    forged["exp"] = json!(-1);
                    "exp negative"
                }
                4 => {
                    forged["exp"] = json!(now - 3600);
                    "expired"
                }
                5 => {
                    forged["nbf"] = json!(now + 3600);
                    "not yet valid"
                }
                6 => {
                    forged["nbf"] = json!("now");
                    "nbf a string"
                }
                7 => {
                    forged["iat"] = json!(-5);
                    "iat negative"
                }
                8 => {
                    forged.as_object_mut().unwrap().remove("tenant");
                    "no tenant"
                }
                9 => {
                    forged["tenant"] = json!(pick(rng, &["", "bad tenant", "a/b", "a:b", "é"]));
                    "a bad tenant"
                }
                10 => {
                    forged["tenant"] = json!("t".repeat(65));
                    "a 65-character tenant"
                }
                11 => {
                    forged["tenant"] = json!(5);
                    "tenant a number"
                }
                12 => {
                    forged.as_object_mut().unwrap().remove("scope");
                    "no scope"
                }
                13 => {
                    forged["scope"] = json!(pick(rng, &["", " ", "root", "commands root", "READ"]));
                    "a bad scope"
                }
                14 => {
                    forged["scope"] = json!(["read", "commands"]);
                    "scope a list"
                }
                15 => {
                    forged.as_object_mut().unwrap().remove("sub");
                    "no sub"
                }
                16 => {
                    forged["sub"] = json!(pick(rng, &["", "a\u{7}b", "\n", "x\u{0}"]));
                    "a bad sub"
                }
                17 => {
                    forged["sub"] = json!("s".repeat(300));
                    "a 300-character sub"
                }
                18 => {
                    forged["aud"] = json!("edgeloop");
                    "an audience"
                }
                19 => {
                    forged["exp"] = Value::Null;
                    "exp null"
                }
                20 => {
                    forged = json!(["not", "an", "object"]);
                    "claims not an object"
                }
                _ => {
                    forged["sub"] = json!(5);
                    "sub a number"
                }
            };
            (
                vec![bearer(&sign(&hs256, &forged, &fixture.secret))],
                format!("signed token with {what}"),
            )
        }
        // Headers the Worker must refuse, also correctly signed.
        1 => {
            let (header, what) = match rng.u8(..8) {
                0 => (json!({"alg": "HS512", "typ": "JWT"}), "alg HS512"),
                1 => (json!({"alg": "none"}), "alg none"),
                2 => (json!({"alg": "hs256"}), "alg hs256"),
                3 => (json!({"alg": "RS256"}), "alg RS256"),
                4 => (json!({"typ": "JWT"}), "no alg"),
                5 => (json!({"alg": "HS256", "crit": ["exp"]}), "crit"),
                6 => (json!({"alg": 256}), "alg a number"),
                _ => (json!("HS256"), "header not an object"),
            };
            (
                vec![bearer(&sign(&header, &claims, &fixture.secret))],
                format!("signed token with {what}"),
            )
        }
        // Tampering with a valid token.
        2 => {
            let (token, what): (String, &str) = match rng.u8(..10) {
                0 => {
                    let mut sig = signature.clone().into_bytes();
                    let i = rng.usize(..sig.len());
                    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
                    (
                        format!("{header}.{payload}.{}", String::from_utf8(sig).unwrap()),
                        "a changed signature",
                    )
                }
                1 => {
                    let other = sign(
                        &hs256,
                        &json!({"sub": "mallory", "tenant": TENANT, "scope": ALL_SCOPES, "exp": now + 3600}),
                        b"another-secret",
                    );
                    let forged_payload = other.split('.').nth(1).unwrap().to_owned();
                    (
                        format!("{header}.{forged_payload}.{signature}"),
                        "a swapped payload",
                    )
                }
                2 => (format!("{header}.{payload}."), "no signature"),
                3 => (format!("{header}.{payload}"), "two parts"),
                4 => (format!("{valid}.{signature}"), "four parts"),
                5 => (
                    format!(
                        "{}.{payload}.{signature}",
                        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)
                    ),
                    "alg none over a real signature",
                ),
                6 => (format!("{header}=.{payload}.{signature}"), "base64 padding"),
                7 => (
                    format!("{header}.{payload}.{signature}{signature}"),
                    "a doubled signature",
                ),
                8 => ("x".repeat(9000), "9000 bytes"),
                _ => (
                    format!("{valid}{}", "A".repeat(8 * 1024)),
                    "a valid token with 8 KiB more",
                ),
            };
            (vec![bearer(&token)], format!("token with {what}"))
        }
        // The header itself is wrong.
        _ => {
            let (values, what): (Vec<Vec<u8>>, &str) = match rng.u8(..13) {
                0 => (vec![b"".to_vec()], "empty"),
                1 => (vec![b"Bearer".to_vec()], "scheme only"),
                2 => (vec![b"Bearer    ".to_vec()], "scheme and spaces"),
                3 => (vec![valid.clone().into_bytes()], "token without scheme"),
                4 => (vec![format!("Basic {valid}").into_bytes()], "Basic scheme"),
                5 => (vec![format!("Token {valid}").into_bytes()], "Token scheme"),
                6 => (vec![format!("Bearer{valid}").into_bytes()], "no space"),
                7 => (vec![b"Bearer \xff\xfe\x80".to_vec()], "non-ASCII bytes"),
                8 => (vec![b"Bearer a.b.c".to_vec()], "a.b.c"),
                9 => (vec![b"Bearer ...".to_vec()], "dots"),
                10 => (
                    vec![bearer(valid), b"Bearer x".to_vec()],
                    "two Authorization headers",
                ),
                11 => (
                    vec![format!("Bearer {valid} extra").into_bytes()],
                    "trailing words",
                ),
                _ => (vec![b"Bearer \"quoted\"".to_vec()], "a quoted token"),
            };
            (values, format!("Authorization: {what}"))
        }
    }
}
