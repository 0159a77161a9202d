//! The token itself: [`Claims`], [`mint`] and [`verify`].
//!
//! Signature checking is delegated to `jsonwebtoken`, which calls our HS256-only crypto provider
//! (`crate::crypto`: RustCrypto HMAC-SHA256, constant-time comparison); everything that involves
//! policy — which `alg` is acceptable, which claims are required, what time it is — is decided
//! here, so that it is visible in one place and testable without a clock.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{AuthError, ParseError, Principal, Scopes, Tenant, crypto};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
///
/// The minting machine (a developer's laptop, a CI runner, another service) and the Worker do not
/// share a clock. 30 s absorbs ordinary NTP drift while keeping an expired token's afterlife
/// short; it is half of `jsonwebtoken`'s default of 60 s because tokens here are minted for
/// minutes to hours, not seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest token [`verify`] will look at, in bytes. Ours are a few hundred bytes; anything near
/// this is garbage or an attack, and refusing it up front bounds the work done per request.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Longest accepted `sub`, in characters. The actor is stored in every event envelope.
pub const MAX_ACTOR_LEN: usize = 256;

/// What an Edgeloop token asserts. Serialized as the JWT payload.
///
/// Times are NumericDate: whole seconds since the Unix epoch. [`verify`] accepts only
/// non-negative integers there (no fractions), which is what [`mint`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The actor: who is acting. Recorded as `actor` in the envelope of every event the
    /// request causes. 1–[`MAX_ACTOR_LEN`] characters, no control characters.
    pub sub: String,
    /// The tenant whose data the token may touch.
    pub tenant: Tenant,
    /// What the token may do; serialized as the space-separated OAuth `scope` string.
    pub scope: Scopes,
    /// Expiry (required).
    pub exp: u64,
    /// Not before (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (optional; informational, not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Validates an actor (`sub`): 1–[`MAX_ACTOR_LEN`] characters, none of them a control
/// character (it ends up in logs and JSON envelopes, where those cause mischief).
/// Returns it owned, so it can serve as a `clap` value parser.
pub fn parse_actor(s: &str) -> Result<String, ParseError> {
    let len = s.chars().count();
    if (1..=MAX_ACTOR_LEN).contains(&len) && !s.chars().any(char::is_control) {
        Ok(s.to_owned())
    } else {
        Err(ParseError::Actor)
    }
}

/// Signs `claims` with HS256 under `secret` and returns the compact JWT.
///
/// Does not validate the claims beyond what their types guarantee (a `sub` that
/// [`parse_actor`] refuses, an empty scope or an `exp` in the past make a token that [`verify`]
/// rejects); callers that take user input — the CLI — validate it first.
///
/// # Panics
///
/// If something else in the process installed its own `jsonwebtoken` crypto provider before this
/// crate could (see "Crypto backend" in the crate documentation): a programming error.
pub fn mint(claims: &Claims, secret: &[u8]) -> String {
    assert!(
        crypto::install(),
        "another jsonwebtoken CryptoProvider was installed before auth's HS256 provider"
    );
    // `encode` can fail only if the key family and algorithm disagree (both HMAC here), if the
    // crypto provider refuses the algorithm or the key (ours takes HS256 with an HMAC key of any
    // length), or if serializing fails (`Claims` is strings and integers). None of these can
    // happen, so a failure is a bug.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of Claims is infallible")
}

/// Verifies an HS256 `token` against `secret` at time `now_unix_secs` and returns who is asking.
///
/// Time is an input (the Worker passes `Date.now()`, tests pass anything): `jsonwebtoken`'s own
/// `exp`/`nbf` checks read the system clock, so they are switched off and done here instead,
/// with [`LEEWAY_SECS`] of tolerance.
///
/// Refuses, with the [`AuthError`] named:
/// * an empty secret → [`AuthError::Unconfigured`] (fail closed); the same if something else in
///   the process installed its own `jsonwebtoken` crypto provider before this crate could (see
///   "Crypto backend" in the crate documentation);
/// * `""` → [`AuthError::Missing`];
/// * not three base64url JSON parts, or longer than [`MAX_TOKEN_LEN`], or a `crit` header
///   → [`AuthError::Malformed`];
/// * any `alg` but exactly `"HS256"` — `none`, `RS256`, `HS512`… → [`AuthError::UnsupportedAlgorithm`].
///   Checked before the signature, so an RS256 header over an HS256 MAC made with the secret
///   as "public key" (alg confusion) never reaches a verifier;
/// * a signature that does not match → [`AuthError::BadSignature`];
/// * `exp` absent → [`AuthError::MissingClaim`], `now ≥ exp + leeway` → [`AuthError::Expired`];
/// * `nbf > now + leeway` → [`AuthError::NotYetValid`];
/// * `sub`, `tenant`, `scope` absent → [`AuthError::MissingClaim`]; of the wrong type or
///   syntax, an empty `scope`, or any `aud` claim (Edgeloop tokens have no audience, and a token
///   meant for another audience must not be accepted here) → [`AuthError::InvalidClaim`].
///
/// Claims are only looked at after the signature checks out.
pub fn verify(token: &str, secret: &[u8], now_unix_secs: u64) -> Result<Principal, AuthError> {
    if !crypto::install() || secret.is_empty() {
        return Err(AuthError::Unconfigured);
    }
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    check_header(token)?;
    let claims = decode_verified(token, secret)?;
    principal_from(&claims, now_unix_secs)
}

/// Our own look at the header, before any cryptography: `alg` must be the exact string `HS256`,
/// and there must be no `crit` (we implement no JWS extensions, and RFC 7515 §4.1.11 says a
/// recipient that does not understand a critical extension must reject the token).
/// `jsonwebtoken` checks the algorithm too; this makes the policy explicit and independent of
/// how that crate spells or orders its checks.
fn check_header(token: &str) -> Result<(), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(_) => return Err(AuthError::UnsupportedAlgorithm),
        None => return Err(AuthError::Malformed),
    }
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    Ok(())
}

/// Checks the signature with `jsonwebtoken` and returns the payload as a JSON object.
/// All of its claim validation is off; [`principal_from`] does that against the given time.
fn decode_verified(token: &str, secret: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;

    jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|err| match err.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => AuthError::UnsupportedAlgorithm,
        // Base64, JSON, UTF-8 and shape errors; nothing else can arise with an HMAC key and our
        // HS256 provider.
        _ => AuthError::Malformed,
    })
}

/// Applies Edgeloop's claim policy to a payload whose signature has been verified.
fn principal_from(claims: &Map<String, Value>, now: u64) -> Result<Principal, AuthError> {
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    let nbf = numeric_date(claims, "nbf")?;
    numeric_date(claims, "iat")?;
    if claims.contains_key("aud") {
        return Err(AuthError::InvalidClaim("aud"));
    }

    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(AuthError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
        return Err(AuthError::NotYetValid);
    }

    let actor = parse_actor(string(claims, "sub")?).map_err(|_| AuthError::InvalidClaim("sub"))?;
    let tenant =
        Tenant::parse(string(claims, "tenant")?).map_err(|_| AuthError::InvalidClaim("tenant"))?;
    let scopes = Scopes::parse(string(claims, "scope")?)
        .ok()
        .filter(|scopes| !scopes.is_empty())
        .ok_or(AuthError::InvalidClaim("scope"))?;

    Ok(Principal {
        actor,
        tenant,
        scopes,
        expires_at: exp,
    })
}

/// A NumericDate claim: `Ok(None)` if absent or null, an error unless a non-negative integer.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(AuthError::InvalidClaim(name)),
    }
}

/// A required string claim.
fn string<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(AuthError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}
