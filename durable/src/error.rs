//! The one error type of the HTTP edge, shared by the Worker and the objects: every
//! error a client can see, with the documented status and JSON body
//! `{"error": {"code", "message", ...details}}` (README, "Errors").

use domain::VersionConflict;
use domain::aggregate::CommandError;
use domain::command_service::{ExecuteError, LoadError};
use serde_json::{Map, Value, json};
use worker::Response;

use crate::encoding::json_response;

/// Every error a client can see. Rendered as `{"error": {"code", "message", ...details}}`
/// with the status documented in the README's error table. Internal failures are logged
/// and answered with a generic message: no internal detail reaches a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
    pub retry_after_secs: Option<u32>,
    /// Response headers the status calls for (`Allow` on a 405, `WWW-Authenticate` on a 401).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
            headers: Vec::new(),
        }
    }
    /// An error with a status and code mapped from elsewhere (e.g. a consumer group's
    /// refusals, which name their own). The status must be a documented 4xx.
    pub fn with_status(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, message)
    }
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
    /// 400: the request's shape is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    /// 401: missing or invalid credentials (with `WWW-Authenticate: Bearer`, RFC 9110).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut error = Self::new(401, "unauthorized", message);
        error
            .headers
            .push(("www-authenticate", "Bearer".to_owned()));
        error
    }
    /// 403: valid credentials without the needed scope.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
    /// 404: unknown route, aggregate type, or an aggregate with no events.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    /// 405: known route, wrong method.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("this route accepts {allowed}"),
        )
        .with_detail("allowed", allowed)
        .with_header("allow", allowed)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// 409: `expected_version` does not hold.
    pub fn version_conflict(conflict: VersionConflict) -> Self {
        Self::new(409, "version_conflict", conflict.to_string())
            .with_detail(
                "expected",
                serde_json::to_value(conflict.expected).unwrap_or(Value::Null),
            )
            .with_detail("actual", conflict.actual)
    }
    /// 413: a body, or the events one command produces, over `limit` (bytes or events,
    /// as the message says); the limit is in the `limit` detail.
    pub fn payload_too_large(message: impl Into<String>, limit: usize) -> Self {
        Self::new(413, "payload_too_large", message).with_detail("limit", limit)
    }
    /// 413 for a request body over `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::payload_too_large(
            format!("the request body is over the limit of {limit} bytes"),
            limit,
        )
    }
    /// 415: a body in a content type we do not read.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "unsupported_media_type", message)
    }
    /// 422: a domain rule refused the command.
    pub fn rejected(rule: &str, message: impl Into<String>) -> Self {
        Self::new(422, "rejected", message).with_detail("rule", rule)
    }
    /// 426: a WebSocket route called without an upgrade.
    pub fn upgrade_required() -> Self {
        Self::new(
            426,
            "upgrade_required",
            "this route is a WebSocket: send `Upgrade: websocket`",
        )
    }
    /// 429: slow down.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(429, "rate_limited", message)
        }
    }
    /// 503: not now (a read model behind a consistency token, an overloaded object);
    /// retry after `retry_after_secs`.
    pub fn overloaded(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(503, "overloaded", message)
        }
    }
    /// 500: our fault. The detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        worker::console_error!("internal error: {detail}");
        Self::new(500, "internal", "internal error")
    }

    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        error.extend(self.details.clone());
        json!({ "error": error })
    }

    pub fn into_response(self) -> Response {
        let mut response = json_response(&self.body(), self.status);
        if let Some(secs) = self.retry_after_secs {
            let _ = response.headers_mut().set("retry-after", &secs.to_string());
        }
        for (name, value) in &self.headers {
            let _ = response.headers_mut().set(name, value);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<ExecuteError> for ApiError {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Command(CommandError::BadCommand(m)) => ApiError::bad_request(m),
            ExecuteError::Command(CommandError::Rejected(r)) => {
                ApiError::rejected(r.rule, r.message)
            }
            ExecuteError::Command(CommandError::Encoding(e)) => ApiError::internal(e),
            ExecuteError::Conflict(c) => ApiError::version_conflict(c),
            e @ ExecuteError::IdempotencyKeyReused { .. } => {
                ApiError::new(422, "idempotency_key_reused", e.to_string())
            }
            e @ ExecuteError::TooManyEvents { limit, .. } => {
                ApiError::payload_too_large(e.to_string(), limit)
            }
            ExecuteError::Store(s) => ApiError::internal(s),
        }
    }
}

impl From<domain::store::StoreError> for ApiError {
    fn from(e: domain::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::UnknownType(t) => {
                ApiError::not_found(format!("unknown aggregate type `{t}`"))
            }
            LoadError::Store(s) => ApiError::internal(s),
        }
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_body_has_expected_as_sent_and_actual() {
        let e = ApiError::version_conflict(VersionConflict {
            expected: domain::ExpectedVersion::None,
            actual: 4,
        });
        let body = e.body();
        assert_eq!(body["error"]["code"], "version_conflict");
        assert_eq!(body["error"]["expected"], "none");
        assert_eq!(body["error"]["actual"], 4);
    }
}
