//! [`PayloadError`]: the one error of this crate's parsers — a telemetry body or a webhook
//! delivery that is refused as a whole. (A webhook whose signature does not hold is a
//! [`crate::github::SignatureError`]: that is authentication, answered before any parsing.)
//!
//! Messages are written for the client that sent the payload: they name the field by its
//! path (`errors[3].message`, `pull_request.user.login`) and the limit it broke, and never
//! echo a long value back.

/// Why a payload was refused. Nothing of a refused payload is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is over the limit. HTTP 413 `payload_too_large`.
    #[error("the body is {got} bytes; at most {limit} are accepted")]
    TooLarge { limit: usize, got: usize },
    /// The body is not of a content type the parser reads. HTTP 415 `unsupported_media_type`,
    /// like every other route of the API.
    #[error("content type `{0}` is not accepted; send application/json or text/plain")]
    UnsupportedContentType(String),
    /// The body is not JSON (or is empty). HTTP 400 `bad_request`.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// A field is missing, of the wrong type, unknown or out of its bounds.
    /// HTTP 400 `bad_request`.
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl PayloadError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        PayloadError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The HTTP status it maps to.
    pub fn status(&self) -> u16 {
        match self {
            PayloadError::TooLarge { .. } => 413,
            PayloadError::UnsupportedContentType(_) => 415,
            _ => 400,
        }
    }

    /// The `error.code` of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "payload_too_large",
            PayloadError::UnsupportedContentType(_) => "unsupported_media_type",
            _ => "bad_request",
        }
    }
}

/// Refuses a body over `limit` bytes, before anything reads it.
pub(crate) fn check_size(body: &[u8], limit: usize) -> Result<(), PayloadError> {
    if body.len() > limit {
        return Err(PayloadError::TooLarge {
            limit,
            got: body.len(),
        });
    }
    Ok(())
}

/// Parses JSON, with serde's position in the message (it helps find a stray comma).
pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, PayloadError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::NotJson("the body is empty".into()));
    }
    serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))
}
