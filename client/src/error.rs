//! The one error type of the crate.
//!
//! Every variant's message is complete on its own (causes included), so `to_string()` is
//! enough to log an error. Decisions go through the helpers rather than string matching:
//! [`Error::is_transient`] (worth retrying), [`Error::code`] (the server's stable name),
//! [`Error::version_conflict`], [`Error::rejection_rule`].

use std::time::Duration;

use domain::{ExpectedVersion, VersionConflict};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Any error type, boxed: what [`Error::Network`] carries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Longest body excerpt kept in [`Error::Unexpected`], in characters.
const BODY_EXCERPT_CHARS: usize = 512;

/// What went wrong talking to Edgeloop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request with its documented error body
    /// `{"error":{"code":…,"message":…,…details}}`.
    ///
    /// `status` is the HTTP status; `code` the stable machine-readable name
    /// (`bad_request` 400, `unauthorized` 401, `forbidden` 403, `not_found` 404,
    /// `version_conflict` 409, `payload_too_large` 413, `rejected` and
    /// `idempotency_key_reused` 422, `rate_limited` 429, `internal` 500, …); `message`
    /// is for people; `details` holds every other field of the error object — for
    /// example `rule` for `rejected`, `expected`/`actual` for `version_conflict`,
    /// `required_scope` for `forbidden`, `limit` for `payload_too_large`.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Map<String, Value>,
    },

    /// A non-success HTTP answer without the documented error body (a proxy's HTML page,
    /// a load balancer's 502). `body` is the start of the body, lossily decoded.
    #[error("unexpected HTTP {status} answer: {body}")]
    Unexpected { status: u16, body: String },

    /// No complete answer: the connection was refused or reset, the request timed out,
    /// or the connection closed before the answer was read. The request may or may not
    /// have reached the server. Holds the underlying `reqwest` or `tungstenite` error.
    #[error("network error: {}", chain(.0.as_ref()))]
    Network(BoxError),

    /// A success answer or a socket frame that is not what the API documents.
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),

    /// The server closed a subscription for a reason reconnecting cannot fix:
    /// `close_code` 4001 (`token_expired`: give the subscription a fresh token with
    /// `Subscription::set_token` and call `next` again), 1008 (`bad_request`: the server
    /// refused a client frame), 4029 (`rate_limited`: the client sent too many frames).
    /// `code` and `message` come from the error frame sent before the close, or the
    /// close reason when there was none.
    #[error("subscription closed by the server ({close_code}) {code}: {message}")]
    Closed {
        close_code: u16,
        code: String,
        message: String,
    },

    /// The server broke a guarantee of the protocol (a gap in an aggregate's event
    /// sequence, an answer that contradicts the request). Never expected; worth a bug report.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// A bad argument, refused before anything was sent: a base URL that is not
    /// `http(s)://…`, a token or idempotency key that cannot be an HTTP header value, an
    /// ack of an event the subscription has not delivered.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Retries ran out — `attempts` attempts over `elapsed` — on a transient failure;
    /// `last` is the last one. A command may or may not have been applied: sending it
    /// again with the same `idempotency_key` is safe (it is applied at most once).
    #[error("gave up after {attempts} attempts in {elapsed:.1?}: {last}")]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        idempotency_key: Option<String>,
        last: Box<Error>,
    },
}

/// An error and everything it was caused by, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        // Wrappers often repeat their cause's message; say it once.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

impl Error {
    /// The error a failed HTTP answer stands for: [`Error::Api`] when the body is the
    /// documented error object, [`Error::Unexpected`] otherwise.
    pub fn from_answer(status: u16, body: &[u8]) -> Error {
        #[derive(Deserialize)]
        struct Body {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
            #[serde(flatten)]
            details: Map<String, Value>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(Body { error }) => Error::Api {
                status,
                code: error.code,
                message: error.message,
                details: error.details,
            },
            Err(_) => Error::Unexpected {
                status,
                body: String::from_utf8_lossy(body)
                    .chars()
                    .take(BODY_EXCERPT_CHARS)
                    .collect(),
            },
        }
    }

    pub(crate) fn network(error: impl Into<BoxError>) -> Error {
        Error::Network(error.into())
    }

    /// The error the retries ended with, looking through [`Error::GaveUp`].
    pub fn last(&self) -> &Error {
        match self {
            Error::GaveUp { last, .. } => last.last(),
            other => other,
        }
    }

    /// The HTTP status of an HTTP answer ([`Error::Api`], [`Error::Unexpected`]),
    /// looking through [`Error::GaveUp`].
    pub fn status(&self) -> Option<u16> {
        match self.last() {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's stable error name: an [`Error::Api`] `code`, or the `code` of the
    /// error frame that closed a subscription ([`Error::Closed`]).
    pub fn code(&self) -> Option<&str> {
        match self.last() {
            Error::Api { code, .. } | Error::Closed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The `details` of an [`Error::Api`].
    pub fn details(&self) -> Option<&Map<String, Value>> {
        match self.last() {
            Error::Api { details, .. } => Some(details),
            _ => None,
        }
    }

    /// Whether trying again later can succeed: a network failure, or an HTTP status that
    /// means "not now" — 429 (rate limited), 502, 503, 504 (the server or a gateway in
    /// front of it is overloaded or restarting). Everything else (a 4xx about the request,
    /// a 500, a decode error) fails the same way every time. [`Error::GaveUp`] is not
    /// transient: its retries are spent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network(_) => true,
            Error::Api { status, .. } | Error::Unexpected { status, .. } => {
                is_transient_status(*status)
            }
            _ => false,
        }
    }

    /// A 404 `not_found`: unknown route or aggregate type, an aggregate with no events, a
    /// version that does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("not_found")
    }

    /// A subscription closed because its token expired (close code 4001).
    pub fn is_token_expired(&self) -> bool {
        matches!(
            self.last(),
            Error::Closed {
                close_code: 4001,
                ..
            }
        )
    }

    /// For a 409 `version_conflict`: what the command expected (as sent) and the version
    /// the aggregate is actually at.
    pub fn version_conflict(&self) -> Option<VersionConflict> {
        if self.code() != Some("version_conflict") {
            return None;
        }
        let details = self.details()?;
        let expected = ExpectedVersion::deserialize(details.get("expected")?).ok()?;
        let actual = details.get("actual")?.as_u64()?;
        Some(VersionConflict { expected, actual })
    }

    /// For a 422 `rejected`: the stable name of the domain rule that refused the command
    /// (for example `wip_limit_reached`).
    pub fn rejection_rule(&self) -> Option<&str> {
        if self.code() != Some("rejected") {
            return None;
        }
        self.details()?.get("rule")?.as_str()
    }
}

/// Statuses that mean "not now": worth retrying after a wait.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(status: u16, body: Value) -> Error {
        Error::from_answer(status, body.to_string().as_bytes())
    }

    #[test]
    fn the_documented_error_body_becomes_an_api_error_with_its_details() {
        let error = answer(
            403,
            json!({"error": {"code": "forbidden", "message": "needs scope", "required_scope": "commands"}}),
        );
        let Error::Api {
            status,
            code,
            message,
            details,
        } = &error
        else {
            panic!("not an API error: {error:?}");
        };
        assert_eq!(
            (*status, code.as_str(), message.as_str()),
            (403, "forbidden", "needs scope")
        );
        assert_eq!(
            details.len(),
            1,
            "code and message are not details: {details:?}"
        );
        assert_eq!(details["required_scope"], "commands");
        assert_eq!(error.to_string(), "403 forbidden: needs scope");
    }

    #[test]
    fn a_version_conflict_exposes_expected_and_actual() {
        let exact = answer(
            409,
            json!({"error": {"code": "version_conflict", "message": "m", "expected": 3, "actual": 5}}),
        );
        assert_eq!(
            exact.version_conflict(),
            Some(VersionConflict {
                expected: ExpectedVersion::Exact(3),
                actual: 5
            })
        );
        let none = answer(
            409,
            json!({"error": {"code": "version_conflict", "message": "m", "expected": "none", "actual": 1}}),
        );
        assert_eq!(
            none.version_conflict().map(|c| c.expected),
            Some(ExpectedVersion::None)
        );
        let other = answer(
            422,
            json!({"error": {"code": "rejected", "message": "m", "rule": "wip_limit_reached"}}),
        );
        assert_eq!(other.version_conflict(), None);
        assert_eq!(other.rejection_rule(), Some("wip_limit_reached"));
    }

    #[test]
    fn a_body_that_is_not_the_error_object_is_unexpected_and_truncated() {
        let html = format!("<html>{}</html>", "x".repeat(2000));
        let error = Error::from_answer(502, html.as_bytes());
        match &error {
            Error::Unexpected { status: 502, body } => {
                assert_eq!(body.chars().count(), BODY_EXCERPT_CHARS);
                assert!(body.starts_with("<html>"));
            }
            other => panic!("expected Unexpected, got {other:?}"),
        }
        // The right status with the wrong shape is still not an API error.
        let shapeless = answer(400, json!({"error": "bad"}));
        assert!(matches!(shapeless, Error::Unexpected { status: 400, .. }));
        let no_message = answer(400, json!({"error": {"code": "bad_request"}}));
        assert!(matches!(no_message, Error::Unexpected { .. }));
    }

    #[test]
    fn transient_means_network_or_not_now_statuses() {
        assert!(Error::network("connection refused").is_transient());
        for status in [429, 502, 503, 504] {
            assert!(Error::from_answer(status, b"").is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 422, 500] {
            assert!(!Error::from_answer(status, b"").is_transient(), "{status}");
        }
        assert!(!Error::Decode("x".into()).is_transient());
        let gave_up = Error::GaveUp {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            idempotency_key: None,
            last: Box::new(Error::network("reset")),
        };
        assert!(
            !gave_up.is_transient(),
            "spent retries are not retried again"
        );
    }

    #[test]
    fn helpers_look_through_gave_up() {
        let error = Error::GaveUp {
            attempts: 5,
            elapsed: Duration::from_secs(3),
            idempotency_key: Some("k".into()),
            last: Box::new(answer(
                429,
                json!({"error": {"code": "rate_limited", "message": "slow down"}}),
            )),
        };
        assert_eq!(error.status(), Some(429));
        assert_eq!(error.code(), Some("rate_limited"));
        assert!(
            error.to_string().contains("429 rate_limited: slow down"),
            "{error}"
        );
    }

    #[test]
    fn network_messages_include_their_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let error = Error::network(Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )));
        assert_eq!(
            error.to_string(),
            "network error: error sending request: connection refused"
        );
    }

    #[test]
    fn closed_4001_is_token_expired() {
        let closed = |close_code| Error::Closed {
            close_code,
            code: "x".into(),
            message: "m".into(),
        };
        assert!(closed(4001).is_token_expired());
        assert!(!closed(1008).is_token_expired());
    }
}
