//! The crate's errors: why a request is not authenticated (401), why it is not allowed (403),
//! and why a value is not a valid scope, tenant or actor.
//!
//! Every message here is written for the client: fixed text naming at most a claim or a scope,
//! never the secret, the token, or a library's internal error.

use crate::Scope;

/// Why a request's credentials were refused. Every variant maps to HTTP **401**
/// with code `unauthorized` ([`AuthError::STATUS`], [`AuthError::CODE`]); `Display` is the
/// client-safe message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented (no `Authorization` header, an empty token, …). The API builds
    /// this itself when it finds no credentials; [`crate::verify`] returns it for `""`.
    #[error("missing bearer token")]
    Missing,
    /// Not a JWT: wrong number of parts, bad base64url, bad JSON, an over-long token, or a
    /// header we cannot honour (`crit`).
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not `HS256` (`none`, `RS256`, `HS512`, …).
    #[error("unsupported token algorithm (expected HS256)")]
    UnsupportedAlgorithm,
    /// The HS256 signature does not match: tampered, or signed with another secret.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` is in the past (beyond [`crate::LEEWAY_SECS`]).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond [`crate::LEEWAY_SECS`]).
    #[error("token is not yet valid")]
    NotYetValid,
    /// A required claim (`exp`, `sub`, `tenant`, `scope`) is absent or null.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim is present but of the wrong type or syntax (for example a tenant with a `/`,
    /// an unknown scope, an empty scope, or an `aud` claim, which no Edgeloop token carries).
    #[error("token has an invalid `{0}` claim")]
    InvalidClaim(&'static str),
    /// The server has no secret to check tokens with. A deployment mistake, not the client's,
    /// but it must fail closed: an empty HMAC key would accept tokens anyone can forge.
    /// Also returned if the crate's HS256 crypto provider could not be installed because
    /// something else in the process installed another one first (a programming error).
    /// The API may log this one loudly.
    #[error("authentication is not configured")]
    Unconfigured,
}

impl AuthError {
    /// HTTP status for every `AuthError`.
    pub const STATUS: u16 = 401;
    /// The `error.code` of the response body.
    pub const CODE: &'static str = "unauthorized";
}

/// The token is valid but lacks the scope a route needs. Maps to HTTP **403** with code
/// `forbidden`; the message names the missing scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token lacks the `{missing}` scope")]
pub struct Forbidden {
    /// The scope the route requires.
    pub missing: Scope,
}

impl Forbidden {
    /// HTTP status for `Forbidden`.
    pub const STATUS: u16 = 403;
    /// The `error.code` of the response body.
    pub const CODE: &'static str = "forbidden";
}

/// A value is not a valid scope, tenant or actor. Used where such values are parsed outside
/// a token (the CLI's arguments, serde); inside [`crate::verify`] it becomes
/// [`AuthError::InvalidClaim`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A scope name that is not one of `commands read replay consume admin` (echoed, truncated).
    #[error("unknown scope `{0}` (expected: commands, read, replay, consume, admin)")]
    UnknownScope(String),
    /// A tenant outside `[A-Za-z0-9_-]{1,64}`.
    #[error("tenant must be 1-64 characters, each a letter, digit, `_` or `-`")]
    Tenant,
    /// An actor (`sub`) that is empty, too long or contains control characters.
    #[error("sub must be 1-256 characters with no control characters")]
    Actor,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_claim_or_scope() {
        assert_eq!(
            AuthError::MissingClaim("exp").to_string(),
            "token has no `exp` claim"
        );
        assert_eq!(
            AuthError::InvalidClaim("tenant").to_string(),
            "token has an invalid `tenant` claim"
        );
        assert_eq!(
            Forbidden {
                missing: Scope::Replay
            }
            .to_string(),
            "token lacks the `replay` scope"
        );
    }
}
