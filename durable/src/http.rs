//! The HTTP edge shared by the Worker and the objects: one error type with the
//! documented JSON body, listing query parsing, and listing encodings.

use domain::aggregate::CommandError;
use domain::store::{Direction, ExecuteError, LoadError};
use domain::{EventEnvelope, VersionConflict};
use serde::Serialize;
use serde_json::{Map, Value, json};
use worker::{Headers, Response};

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
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
        }
    }
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
    /// 400: the request's shape is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    /// 401: missing or invalid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
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
    /// 413: body (or the events one command produces) over the limit.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }
    /// 415: a body in a content type we do not read.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "unsupported_media_type", message)
    }
    /// 422: a domain rule refused the command.
    pub fn rejected(rule: &str, message: impl Into<String>) -> Self {
        Self::new(422, "rejected", message).with_detail("rule", rule)
    }
    /// 429: slow down.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(429, "rate_limited", message)
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
            e @ ExecuteError::TooManyEvents { .. } => ApiError::payload_too_large(e.to_string()),
            ExecuteError::Store(s) => ApiError::internal(s),
        }
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

impl ApiError {
    /// 413 for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        ApiError::payload_too_large(format!(
            "the request body is over the limit of {limit} bytes"
        ))
        .with_detail("limit", limit)
    }
}

/// Decodes a MessagePack request body into the JSON value it stands for. Refuses what has
/// no JSON form — NaN and infinite floats, binary and extension values, non-string map
/// keys — and trailing bytes, instead of letting them turn silently into `null` (a NaN
/// `expected_version` would otherwise read as "any").
pub fn msgpack_to_json(body: &[u8]) -> Result<Value, String> {
    let mut reader = body;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, domain::codec::MAX_DEPTH)
        .map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes after the value", reader.len()));
    }
    to_json(value)
}

fn to_json(value: rmpv::Value) -> Result<Value, String> {
    use rmpv::Value as Mp;
    Ok(match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(n)) => Value::from(n),
            _ => return Err("an integer out of range".into()),
        },
        Mp::F32(f) => finite(f64::from(f))?,
        Mp::F64(f) => finite(f)?,
        Mp::String(s) => Value::String(s.into_str().ok_or("a string that is not UTF-8")?),
        Mp::Array(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Mp::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| match k {
                    Mp::String(k) => {
                        Ok((k.into_str().ok_or("a key that is not UTF-8")?, to_json(v)?))
                    }
                    _ => Err("a map key that is not a string".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        Mp::Binary(_) => return Err("a binary value (JSON has none)".into()),
        Mp::Ext(..) => return Err("an extension value".into()),
    })
}

fn finite(f: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "a NaN or infinite number".to_owned())
}

/// A JSON response with a status. Serializing our own types cannot fail; if it somehow
/// did, the client still gets a JSON body.
pub fn json_response(value: &impl Serialize, status: u16) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec()
    });
    bytes_response(body, "application/json", status)
}

pub fn bytes_response(body: Vec<u8>, content_type: &str, status: u16) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    // Building a response from bytes cannot fail in the runtime; the fallback only keeps
    // this function total.
    Response::from_bytes(body)
        .or_else(|_| Response::empty())
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::builder().with_status(500).empty())
}

/// The representation a listing is answered in, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Ndjson,
    MessagePack,
}

impl Encoding {
    /// Picks the supported media type with the highest quality in `Accept` (ties: the
    /// first listed). No header, `*/*`, or nothing supported means JSON: a listing is
    /// always answerable. A type offered with `q=0` is never chosen.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Encoding::Json;
        };
        let mut best: Option<(f32, Encoding)> = None;
        for part in accept.split(',') {
            let mut fields = part.split(';');
            let media = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let encoding = match media.as_str() {
                "application/x-ndjson" | "application/ndjson" => Encoding::Ndjson,
                "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
                    Encoding::MessagePack
                }
                "application/json" => Encoding::Json,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, encoding));
            }
        }
        best.map_or(Encoding::Json, |(_, encoding)| encoding)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::MessagePack => "application/msgpack",
        }
    }
}

/// One page of events and the cursor to the next page.
#[derive(Debug, Serialize)]
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Option<u64>>,
}

/// Renders a page in the chosen encoding. NDJSON carries one envelope per line and the
/// cursor in the `x-next-after` / `x-next-before` header.
pub fn page_response(page: &EventPage, encoding: Encoding) -> Response {
    let mut response = match encoding {
        Encoding::Json => json_response(page, 200),
        Encoding::MessagePack => {
            bytes_response(domain::codec::encode(page), encoding.content_type(), 200)
        }
        Encoding::Ndjson => {
            let mut body = Vec::new();
            for event in &page.events {
                if serde_json::to_writer(&mut body, event).is_ok() {
                    body.push(b'\n');
                }
            }
            bytes_response(body, encoding.content_type(), 200)
        }
    };
    let cursor = |c: Option<u64>| c.map_or_else(|| "null".to_owned(), |n| n.to_string());
    if let Some(next) = page.next_after {
        let _ = response.headers_mut().set("x-next-after", &cursor(next));
    }
    if let Some(next) = page.next_before {
        let _ = response.headers_mut().set("x-next-before", &cursor(next));
    }
    response
}

/// Default and maximum page sizes of listings.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// Parsed `?after=&before=&limit=&direction=` of an event listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingParams {
    pub direction: Direction,
    pub after: u64,
    pub before: Option<u64>,
    pub limit: usize,
}

/// Query parameters as name/value pairs (from `Url::query_pairs`).
pub type Query = Vec<(String, String)>;

pub fn query_pairs(url: &url::Url) -> Query {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Rejects any parameter not in `allowed` and any repeated parameter: a typo must not
/// silently change what a client reads.
pub fn check_params(query: &Query, allowed: &[&str]) -> ApiResult<()> {
    for (i, (name, _)) in query.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{name}`; allowed: {}",
                allowed.join(", ")
            )));
        }
        if query[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is repeated"
            )));
        }
    }
    Ok(())
}

pub fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A non-negative integer parameter.
pub fn u64_param(query: &Query, name: &str) -> ApiResult<Option<u64>> {
    param(query, name)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_SAFE_INTEGER)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{name}` must be a non-negative integer, got `{v}`"
                    ))
                })
        })
        .transpose()
}

/// Largest integer JavaScript (and so SQLite through the runtime) represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub fn listing_params(query: &Query) -> ApiResult<ListingParams> {
    check_params(query, &["after", "before", "limit", "direction"])?;
    let direction = match param(query, "direction") {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`direction` must be `forward` or `backward`, got `{other}`"
            )));
        }
    };
    let after = u64_param(query, "after")?;
    let before = u64_param(query, "before")?;
    match (direction, after, before) {
        (Direction::Forward, _, Some(_)) => {
            return Err(ApiError::bad_request(
                "`before` goes with `direction=backward`",
            ));
        }
        (Direction::Backward, Some(_), _) => {
            return Err(ApiError::bad_request(
                "`after` goes with `direction=forward`",
            ));
        }
        _ => {}
    }
    let limit = match u64_param(query, "limit")? {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        // Compare as u64: on wasm32 `usize` is 32 bits, and a cast first would wrap 2^32 to 0.
        Some(n) if n > MAX_LIMIT as u64 => {
            return Err(ApiError::bad_request(format!(
                "`limit` must be at most {MAX_LIMIT}, got {n}"
            )));
        }
        Some(n) => n as usize, // at most MAX_LIMIT here
    };
    Ok(ListingParams {
        direction,
        after: after.unwrap_or(0),
        before,
        limit,
    })
}

impl ApiError {
    /// 426: a WebSocket route called without an upgrade.
    pub fn upgrade_required() -> Self {
        Self::new(
            426,
            "upgrade_required",
            "this route is a WebSocket: send `Upgrade: websocket`",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn listing_defaults_and_bounds() {
        let p = listing_params(&q(&[])).unwrap();
        assert_eq!(
            (p.direction, p.after, p.before, p.limit),
            (Direction::Forward, 0, None, 100)
        );
        assert!(listing_params(&q(&[("limit", "10000")])).is_ok());
        assert_eq!(
            listing_params(&q(&[("limit", "10001")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("limit", "0")])).unwrap_err().status,
            400
        );
        // 2^32 would wrap to 0 on wasm32 if cast before the comparison.
        assert_eq!(
            listing_params(&q(&[("limit", "4294967296")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "-1")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "1e3")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("direction", "sideways")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("before", "3")])).unwrap_err().status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("after", "1"), ("after", "2")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            listing_params(&q(&[("afterr", "1")])).unwrap_err().status,
            400
        );
        let b = listing_params(&q(&[("direction", "backward"), ("before", "7")])).unwrap();
        assert_eq!((b.direction, b.before), (Direction::Backward, Some(7)));
    }

    #[test]
    fn msgpack_bodies_without_a_json_form_are_refused() {
        let encode = |v: &Value| rmp_serde::to_vec_named(v).unwrap();
        let ok = json!({"type": "AddCard", "data": {"n": 1.5, "k": [1, -2, null, true]}});
        assert_eq!(msgpack_to_json(&encode(&ok)), Ok(ok.clone()));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut body = std::collections::BTreeMap::new();
            body.insert("expected_version", bad);
            let bytes = rmp_serde::to_vec_named(&body).unwrap();
            assert!(msgpack_to_json(&bytes).is_err(), "{bad} accepted");
        }
        let mut trailing = encode(&ok);
        trailing.push(0xc0);
        assert!(msgpack_to_json(&trailing).is_err());
        assert!(
            msgpack_to_json(&[0xc4, 0x01, 0x00]).is_err(),
            "binary accepted"
        );
        assert!(
            msgpack_to_json(&[0x81, 0x01, 0x02]).is_err(),
            "integer key accepted"
        );
        assert!(
            msgpack_to_json(&[0x92, 0x01]).is_err(),
            "truncated accepted"
        );
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(Encoding::from_accept(None), Encoding::Json);
        assert_eq!(
            Encoding::from_accept(Some("application/x-ndjson")),
            Encoding::Ndjson
        );
        assert_eq!(
            Encoding::from_accept(Some("text/html, application/msgpack;q=0.9")),
            Encoding::MessagePack
        );
        assert_eq!(Encoding::from_accept(Some("*/*")), Encoding::Json);
        assert_eq!(
            Encoding::from_accept(Some("application/json;q=0, application/x-ndjson")),
            Encoding::Ndjson
        );
        assert_eq!(
            Encoding::from_accept(Some("application/json;q=0.5, application/msgpack;q=0.9")),
            Encoding::MessagePack
        );
    }

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
