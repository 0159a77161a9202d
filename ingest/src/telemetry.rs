//! `POST /v1/ingest/telemetry`: the body, parsed strictly, and its errors coalesced into
//! `error_group` commands.
//!
//! ```json
//! {"errors": [{"type": "TypeError", "message": "x is undefined", "stack": "…",
//!              "url": "https://app.example.com/board/7", "release": "web@1.4.0",
//!              "user_agent": "Mozilla/5.0 …", "timestamp_ms": 1700000000000}],
//!  "counters": [{"name": "board.render_ms", "value": 12.5, "tags": {"page": "board"}}]}
//! ```
//!
//! * **Content types** ([`accepts_content_type`]): `application/json`, and `text/plain` —
//!   what `navigator.sendBeacon(url, JSON.stringify(batch))` sends, and what a page can POST
//!   cross-origin without a CORS preflight — with no charset or `charset=utf-8`; also no
//!   `Content-Type` at all (a beacon of an untyped `Blob`). The body is JSON in every case.
//! * **All or nothing**: [`parse`] answers the whole batch or one [`PayloadError`] naming
//!   the first field at fault (`errors[3].message`); nothing of a refused batch is applied.
//! * **Strict**, like commands: unknown fields are refused, and so is `null` for an optional
//!   field (leave it out); `errors` and `counters` may each be left out (an empty batch is
//!   valid and does nothing).
//! * **Bounded**: the body ([`MAX_BODY_BYTES`]), the batch ([`MAX_ERRORS`],
//!   [`MAX_COUNTERS`]) and every field (the `MAX_*_BYTES` constants, in bytes of UTF-8, each
//!   within the `error_group` aggregate's character limit so a parsed report always makes
//!   a valid command). Text fields other than `message` and `stack` must not be blank.
//! * **Coalescing** ([`coalesce`]): reports are grouped by ([`fingerprint`], window) into
//!   one [`Occurrences`] each — one `RecordOccurrences` command — so a batch of 100 reports
//!   of one bug is one event, not 100.
//! * Counters are parsed and bounded here; what records them is the route's business.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use domain::error_group::{self, ErrorGroupCommand};
use serde_json::Value;

use crate::error::{self, PayloadError};
use crate::fingerprint::{fingerprint, top_frame};
use crate::json::At;

/// A telemetry body is at most this many bytes (the API's default body limit).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A batch holds at most this many error reports.
pub const MAX_ERRORS: usize = 100;
/// A batch holds at most this many counters.
pub const MAX_COUNTERS: usize = 100;
/// An error type is 1..=this many bytes.
pub const MAX_TYPE_BYTES: usize = error_group::MAX_ERROR_TYPE_CHARS;
/// A message is 0..=this many bytes (2 KiB).
pub const MAX_MESSAGE_BYTES: usize = error_group::MAX_MESSAGE_CHARS;
/// A stack is 0..=this many bytes (16 KiB). Only its top frame is kept.
pub const MAX_STACK_BYTES: usize = 16 * 1024;
/// A URL is 1..=this many bytes.
pub const MAX_URL_BYTES: usize = error_group::MAX_URL_CHARS;
/// A release is 1..=this many bytes.
pub const MAX_RELEASE_BYTES: usize = error_group::MAX_RELEASE_CHARS;
/// A user agent is 1..=this many bytes.
pub const MAX_USER_AGENT_BYTES: usize = error_group::MAX_USER_AGENT_CHARS;
/// A counter name is 1..=this many bytes.
pub const MAX_COUNTER_NAME_BYTES: usize = 200;
/// A counter has at most this many tags.
pub const MAX_TAGS: usize = 20;
/// A tag key is 1..=this many bytes.
pub const MAX_TAG_KEY_BYTES: usize = 100;
/// A tag value is 0..=this many bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 200;
/// A report's `timestamp_ms` is trusted back to this long before the request arrived (one
/// hour); older ones, and any in the future, are clamped (see [`coalesce`]).
pub const MAX_REPORT_AGE_MS: u64 = 60 * 60 * 1000;
/// The window reports are coalesced in unless the route says otherwise: one minute.
pub const DEFAULT_WINDOW_MS: NonZeroU64 = NonZeroU64::new(60_000).unwrap();

/// One client-side error, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// `type` on the wire (`TypeError`).
    pub error_type: String,
    pub message: String,
    pub stack: Option<String>,
    pub url: Option<String>,
    pub release: Option<String>,
    pub user_agent: Option<String>,
    /// When it happened, by the client's clock (milliseconds since the Unix epoch).
    pub timestamp_ms: Option<u64>,
}

/// One counter sample: a named number with tags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counter {
    pub name: String,
    /// Finite (JSON has no NaN or infinity).
    pub value: f64,
    pub tags: BTreeMap<String, String>,
}

/// A parsed telemetry body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryBatch {
    pub errors: Vec<ErrorReport>,
    pub counters: Vec<Counter>,
}

/// Whether the parser reads a body of this `Content-Type` (`None`: the header is absent).
pub fn accepts_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let mut parts = content_type.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    if media_type != "application/json" && media_type != "text/plain" {
        return false;
    }
    parts.filter(|p| !p.is_empty()).all(|parameter| {
        match parameter.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                let value = value.trim().trim_matches('"');
                value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
            }
            // Other parameters mean nothing to JSON; ignore them.
            _ => true,
        }
    })
}

/// Parses a telemetry body of the given `Content-Type` (see the module docs).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<TelemetryBatch, PayloadError> {
    error::check_size(body, MAX_BODY_BYTES)?;
    if !accepts_content_type(content_type) {
        return Err(PayloadError::UnsupportedContentType(
            content_type.unwrap_or_default().chars().take(100).collect(),
        ));
    }
    let document = error::parse_json(body)?;
    let root = At::root(&document);
    root.object_of(&["errors", "counters"])?;
    let errors = list(&root.field("errors"), MAX_ERRORS, error_report)?;
    let counters = list(&root.field("counters"), MAX_COUNTERS, counter)?;
    Ok(TelemetryBatch { errors, counters })
}

/// An optional array of at most `max` items, each read by `read`.
fn list<T>(
    at: &At<'_>,
    max: usize,
    read: impl Fn(&At<'_>) -> Result<T, PayloadError>,
) -> Result<Vec<T>, PayloadError> {
    let Some(at) = at.absent_or()? else {
        return Ok(Vec::new());
    };
    let items = at.array()?;
    if items.len() > max {
        return Err(at.error(format!(
            "at most {max} items are accepted in one batch (got {}); send the rest in another",
            items.len()
        )));
    }
    (0..items.len()).map(|i| read(&at.item(items, i))).collect()
}

/// Whether a text field may be empty or only whitespace.
#[derive(Clone, Copy)]
enum Blank {
    Allowed,
    /// Refused, with the message to give (a required field cannot be "left out").
    Refused(&'static str),
}

/// What a blank optional field is told.
const LEAVE_IT_OUT: Blank = Blank::Refused("must not be empty; leave the field out instead");

/// A string of at most `max` bytes.
fn text(at: &At<'_>, max: usize, blank: Blank) -> Result<String, PayloadError> {
    let value = at.str()?;
    if value.len() > max {
        return Err(at.error(format!(
            "at most {max} bytes are accepted (got {})",
            value.len()
        )));
    }
    if let Blank::Refused(message) = blank
        && value.trim().is_empty()
    {
        return Err(at.error(message));
    }
    Ok(value.to_owned())
}

fn optional_text(at: &At<'_>, max: usize, blank: Blank) -> Result<Option<String>, PayloadError> {
    at.absent_or()?.map(|at| text(&at, max, blank)).transpose()
}

fn error_report(at: &At<'_>) -> Result<ErrorReport, PayloadError> {
    at.object_of(&[
        "type",
        "message",
        "stack",
        "url",
        "release",
        "user_agent",
        "timestamp_ms",
    ])?;
    Ok(ErrorReport {
        error_type: text(
            &at.field("type"),
            MAX_TYPE_BYTES,
            Blank::Refused("the error type must not be empty"),
        )?,
        message: text(&at.field("message"), MAX_MESSAGE_BYTES, Blank::Allowed)?,
        stack: optional_text(&at.field("stack"), MAX_STACK_BYTES, Blank::Allowed)?,
        url: optional_text(&at.field("url"), MAX_URL_BYTES, LEAVE_IT_OUT)?,
        release: optional_text(&at.field("release"), MAX_RELEASE_BYTES, LEAVE_IT_OUT)?,
        user_agent: optional_text(&at.field("user_agent"), MAX_USER_AGENT_BYTES, LEAVE_IT_OUT)?,
        timestamp_ms: at
            .field("timestamp_ms")
            .absent_or()?
            .map(|at| at.u64())
            .transpose()?,
    })
}

fn counter(at: &At<'_>) -> Result<Counter, PayloadError> {
    at.object_of(&["name", "value", "tags"])?;
    let name = text(
        &at.field("name"),
        MAX_COUNTER_NAME_BYTES,
        Blank::Refused("the counter name must not be empty"),
    )?;
    let value_at = at.field("value");
    let value = match value_at.value() {
        Some(Value::Number(number)) => number.as_f64(),
        _ => None,
    }
    .filter(|value| value.is_finite())
    .ok_or_else(|| value_at.error("expected a number"))?;
    let mut tags = BTreeMap::new();
    if let Some(tags_at) = at.field("tags").absent_or()? {
        let object = tags_at.object()?;
        if object.len() > MAX_TAGS {
            return Err(tags_at.error(format!(
                "at most {MAX_TAGS} tags are accepted (got {})",
                object.len()
            )));
        }
        for key in object.keys() {
            if key.trim().is_empty() || key.len() > MAX_TAG_KEY_BYTES {
                return Err(tags_at.error(format!(
                    "tag keys are 1 to {MAX_TAG_KEY_BYTES} bytes and not blank"
                )));
            }
            let value = text(&tags_at.field(key), MAX_TAG_VALUE_BYTES, Blank::Allowed)?;
            tags.insert(key.clone(), value);
        }
    }
    Ok(Counter { name, value, tags })
}

/// The reports of one group seen in one window: one `RecordOccurrences` command for the
/// `error_group` aggregate whose id is [`Occurrences::fingerprint`]. Serialized (JSON, the
/// field names below) when the Worker hands a batch to the tenant's ingestion object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrences {
    /// The group's fingerprint: the aggregate id.
    pub fingerprint: String,
    pub window_start_ms: u64,
    /// How many reports.
    pub count: u32,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The representative: the first report of the group in the window, in batch order.
    pub error_type: String,
    pub message: String,
    /// The representative's top frame as reported (trimmed, cut to the aggregate's limit);
    /// the fingerprint uses the normalized form.
    pub top_frame: Option<String>,
    pub release: Option<String>,
    pub url: Option<String>,
    pub user_agent: Option<String>,
}

impl Occurrences {
    /// Adds the reports of `other` — the same group and window, say from a later request —
    /// to these, keeping this representative. Counts saturate at `u32::MAX` (four billion
    /// reports of one group in one window).
    pub fn absorb(&mut self, other: &Occurrences) {
        debug_assert_eq!(
            (&self.fingerprint, self.window_start_ms),
            (&other.fingerprint, other.window_start_ms)
        );
        self.count = self.count.saturating_add(other.count);
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
    }

    /// Adds the reports of `other` — the same group, any window — to these: how the
    /// ingestion object buffers a group across requests until it flushes one record. Counts
    /// add up (saturating), the time range widens (`window_start_ms` is the earliest window,
    /// so `window_start_ms ≤ first_seen_ms ≤ last_seen_ms` still holds), the representative
    /// stays, and the newest release wins (the one a regression came back in).
    pub fn merge(&mut self, other: &Occurrences) {
        debug_assert_eq!(self.fingerprint, other.fingerprint);
        self.count = self.count.saturating_add(other.count);
        self.window_start_ms = self.window_start_ms.min(other.window_start_ms);
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        if other.release.is_some() {
            self.release.clone_from(&other.release);
        }
    }

    /// The `RecordOccurrences` command.
    pub fn command(&self) -> ErrorGroupCommand {
        ErrorGroupCommand::RecordOccurrences {
            error_type: self.error_type.clone(),
            message: self.message.clone(),
            top_frame: self.top_frame.clone(),
            release: self.release.clone(),
            url: self.url.clone(),
            user_agent: self.user_agent.clone(),
            count: self.count,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            window_start_ms: self.window_start_ms,
        }
    }

    /// The command as the command route takes it: `{"type": "RecordOccurrences", "data": …}`.
    pub fn command_json(&self) -> Value {
        // A derived Serialize of strings and integers into a Value cannot fail.
        serde_json::to_value(self.command()).unwrap_or(Value::Null)
    }
}

/// Groups `errors` by ([`fingerprint`], window) into one [`Occurrences`] each, ordered by
/// window, then fingerprint. `received_at_ms` is when the request arrived (the server's
/// clock); `window_ms` the window length (windows start at multiples of it).
///
/// A report is placed by its own `timestamp_ms`, clamped to `[received_at_ms −
/// MAX_REPORT_AGE_MS, received_at_ms]`: a page that batches reports (or sends them as it
/// unloads) keeps their times, while a client clock far off — or a forged timestamp —
/// cannot date reports in the future or spread a batch beyond the last hour's windows. A report
/// without a timestamp is placed at `received_at_ms`. So `window_start_ms ≤ first_seen_ms
/// ≤ last_seen_ms` always holds, and the counts add up to `errors.len()`.
pub fn coalesce(
    errors: &[ErrorReport],
    received_at_ms: u64,
    window_ms: NonZeroU64,
) -> Vec<Occurrences> {
    let window_ms = window_ms.get();
    let oldest = received_at_ms.saturating_sub(MAX_REPORT_AGE_MS);
    let mut groups: BTreeMap<(u64, String), Occurrences> = BTreeMap::new();
    for report in errors {
        let at = report
            .timestamp_ms
            .map_or(received_at_ms, |t| t.clamp(oldest, received_at_ms));
        let window_start_ms = at - at % window_ms;
        let occurrences = Occurrences {
            fingerprint: fingerprint(report),
            window_start_ms,
            count: 1,
            first_seen_ms: at,
            last_seen_ms: at,
            error_type: report.error_type.clone(),
            message: report.message.clone(),
            top_frame: report.stack.as_deref().and_then(top_frame).map(|frame| {
                frame
                    .chars()
                    .take(error_group::MAX_TOP_FRAME_CHARS)
                    .collect()
            }),
            release: report.release.clone(),
            url: report.url.clone(),
            user_agent: report.user_agent.clone(),
        };
        groups
            .entry((window_start_ms, occurrences.fingerprint.clone()))
            .and_modify(|group| group.absorb(&occurrences))
            .or_insert(occurrences);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use domain::aggregate::Aggregate;
    use domain::error_group::ErrorGroup;
    use serde_json::json;

    use super::*;

    fn parse_json(value: Value) -> Result<TelemetryBatch, PayloadError> {
        parse(Some("application/json"), value.to_string().as_bytes())
    }

    fn refused(value: Value) -> String {
        match parse_json(value) {
            Err(error) => error.to_string(),
            Ok(batch) => panic!("accepted: {batch:?}"),
        }
    }

    fn report(message: &str, timestamp_ms: Option<u64>) -> ErrorReport {
        ErrorReport {
            error_type: "TypeError".into(),
            message: message.into(),
            stack: Some(
                "TypeError: x\n    at renderCard (https://app.example.com/app.js:1:2)".into(),
            ),
            url: Some("https://app.example.com/board/7".into()),
            release: Some("web@1.4.0".into()),
            user_agent: None,
            timestamp_ms,
        }
    }

    #[test]
    fn a_full_batch_parses() {
        let batch = parse_json(json!({
            "errors": [{
                "type": "TypeError", "message": "x is undefined", "stack": "at f (a.js:1:1)",
                "url": "https://app.example.com/", "release": "web@1.4.0",
                "user_agent": "Mozilla/5.0", "timestamp_ms": 1_700_000_000_000_u64
            }, {"type": "Error", "message": ""}],
            "counters": [{"name": "board.render_ms", "value": 12.5, "tags": {"page": "board"}},
                         {"name": "signups", "value": 1}]
        }))
        .unwrap();
        assert_eq!(batch.errors.len(), 2);
        assert_eq!(batch.errors[0].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(batch.errors[1].stack, None);
        assert_eq!(batch.counters[0].tags["page"], "board");
        assert_eq!(batch.counters[1].value, 1.0);
        assert_eq!(parse_json(json!({})).unwrap(), TelemetryBatch::default());
    }

    #[test]
    fn content_types_json_and_beacon_text() {
        for accepted in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("text/plain;charset=UTF-8"),
            Some("Text/Plain"),
            Some("text/plain; charset=\"utf-8\""),
        ] {
            assert!(accepts_content_type(accepted), "{accepted:?}");
            assert!(
                parse(accepted, br#"{"errors": []}"#).is_ok(),
                "{accepted:?}"
            );
        }
        for refused in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain; charset=latin1",
            "",
        ] {
            assert!(!accepts_content_type(Some(refused)), "{refused}");
            let error = parse(Some(refused), b"{}").unwrap_err();
            assert_eq!(
                (error.status(), error.code()),
                (415, "unsupported_media_type")
            );
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused() {
        let error = parse(None, b"").unwrap_err();
        assert_eq!(error.to_string(), "the body is not JSON: the body is empty");
        let error = parse(None, b"{\"errors\": [}").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the body is not JSON: expected value at line 1"),
            "{error}"
        );
        assert_eq!(
            parse(None, b"[]").unwrap_err().to_string(),
            "`(body)`: expected an object, got an array"
        );
    }

    #[test]
    fn an_oversized_body_is_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let error = parse(None, &body).unwrap_err();
        assert_eq!((error.status(), error.code()), (413, "payload_too_large"));
        assert_eq!(
            error.to_string(),
            "the body is 1048577 bytes; at most 1048576 are accepted"
        );
    }

    #[test]
    fn the_whole_batch_or_nothing_with_the_field_named() {
        let good = json!({"type": "Error", "message": "m"});
        let mut errors = vec![good.clone(); 3];
        errors.push(json!({"type": "Error", "message": "m".repeat(MAX_MESSAGE_BYTES + 1)}));
        assert_eq!(
            refused(json!({ "errors": errors })),
            "`errors[3].message`: at most 2048 bytes are accepted (got 2049)"
        );
        let cases = [
            (
                json!({"errors": vec![good.clone(); MAX_ERRORS + 1]}),
                "`errors`: at most 100 items are accepted in one batch (got 101); send the rest in another",
            ),
            (
                json!({"errors": null}),
                "`errors`: null is not allowed; leave the field out instead",
            ),
            (
                json!({"errors": {}}),
                "`errors`: expected an array, got an object",
            ),
            (
                json!({"errors": [1]}),
                "`errors[0]`: expected an object, got a number",
            ),
            (
                json!({"errors": [{"message": "m"}]}),
                "`errors[0].type`: missing; expected a string",
            ),
            (
                json!({"errors": [{"type": " ", "message": "m"}]}),
                "`errors[0].type`: the error type must not be empty",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "release": ""}]}),
                "`errors[0].release`: must not be empty; leave the field out instead",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "url": null}]}),
                "`errors[0].url`: null is not allowed; leave the field out instead",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "stack": "s".repeat(MAX_STACK_BYTES + 1)}]}),
                "`errors[0].stack`: at most 16384 bytes are accepted (got 16385)",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "timestamp_ms": -5}]}),
                "`errors[0].timestamp_ms`: expected a whole number ≥ 0, got a number",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "timestamp_ms": 1.5}]}),
                "`errors[0].timestamp_ms`: expected a whole number ≥ 0, got a number",
            ),
            (
                json!({"errors": [{"type": "E", "message": "m", "level": "warn"}]}),
                "`errors[0].level`: unknown field; expected one of `type`, `message`, `stack`, `url`, `release`, `user_agent`, `timestamp_ms`",
            ),
            (
                json!({"errors": [], "logs": []}),
                "`logs`: unknown field; expected one of `errors`, `counters`",
            ),
            (
                json!({"counters": [{"name": "n", "value": "1"}]}),
                "`counters[0].value`: expected a number",
            ),
            (
                json!({"counters": [{"name": "", "value": 1}]}),
                "`counters[0].name`: the counter name must not be empty",
            ),
            (
                json!({"counters": [{"name": "n", "value": 1, "tags": {"k": 1}}]}),
                "`counters[0].tags.k`: expected a string, got a number",
            ),
            (
                json!({"counters": [{"name": "n", "value": 1, "tags": {"": "v"}}]}),
                "`counters[0].tags`: tag keys are 1 to 100 bytes and not blank",
            ),
            (
                json!({"counters": vec![json!({"name": "n", "value": 1}); MAX_COUNTERS + 1]}),
                "`counters`: at most 100 items are accepted in one batch (got 101); send the rest in another",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(refused(body.clone()), message, "{body}");
        }
        let tags: serde_json::Map<String, Value> = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        assert_eq!(
            refused(json!({"counters": [{"name": "n", "value": 1, "tags": tags}]})),
            "`counters[0].tags`: at most 20 tags are accepted (got 21)"
        );
    }

    #[test]
    fn limits_are_bytes_and_within_the_aggregate_s() {
        // 683 three-byte characters are 2049 bytes: over the limit, though 683 characters.
        let message = "界".repeat(683);
        assert_eq!(
            refused(json!({"errors": [{"type": "E", "message": message}]})),
            "`errors[0].message`: at most 2048 bytes are accepted (got 2049)"
        );
        // A report at every limit makes a command the aggregate accepts.
        let report = ErrorReport {
            error_type: "E".repeat(MAX_TYPE_BYTES),
            message: "m".repeat(MAX_MESSAGE_BYTES),
            stack: Some(format!("at {}", "f".repeat(MAX_STACK_BYTES - 3))),
            url: Some("u".repeat(MAX_URL_BYTES)),
            release: Some("r".repeat(MAX_RELEASE_BYTES)),
            user_agent: Some("a".repeat(MAX_USER_AGENT_BYTES)),
            timestamp_ms: None,
        };
        let occurrences = coalesce(&[report], 1_000_000, DEFAULT_WINDOW_MS);
        let decided = ErrorGroup::default().decide(occurrences[0].command());
        assert!(decided.is_ok(), "{decided:?}");
    }

    #[test]
    fn coalescing_groups_by_fingerprint_and_window() {
        let received = 10 * 60_000 + 30_000;
        let errors = [
            report("card 1 not found", Some(10 * 60_000 + 5_000)),
            report("card 2 not found", Some(10 * 60_000 + 1_000)),
            report("column 'x' is full", Some(10 * 60_000 + 2_000)),
            // The previous minute.
            report("card 3 not found", Some(9 * 60_000 + 59_000)),
            // No timestamp: when it arrived.
            report("card 4 not found", None),
        ];
        let occurrences = coalesce(&errors, received, DEFAULT_WINDOW_MS);
        let summary: Vec<_> = occurrences
            .iter()
            .map(|o| {
                (
                    o.window_start_ms,
                    o.count,
                    o.first_seen_ms,
                    o.last_seen_ms,
                    o.message.as_str(),
                )
            })
            .collect();
        let card = fingerprint(&errors[0]);
        let column = fingerprint(&errors[2]);
        let mut this_minute = vec![
            (&card, (600_000, 3, 601_000, 630_000, "card 1 not found")),
            (
                &column,
                (600_000, 1, 602_000, 602_000, "column 'x' is full"),
            ),
        ];
        this_minute.sort();
        let expected: Vec<_> = std::iter::once((540_000, 1, 599_000, 599_000, "card 3 not found"))
            .chain(this_minute.into_iter().map(|(_, o)| o))
            .collect();
        assert_eq!(summary, expected);
        assert_eq!(occurrences[0].fingerprint, card);
        assert_eq!(occurrences.iter().map(|o| o.count).sum::<u32>(), 5);
    }

    #[test]
    fn client_times_are_clamped_to_the_last_hour() {
        let received = 5 * MAX_REPORT_AGE_MS;
        let errors = [
            report("a", Some(received + 1_000_000)),
            report("a", Some(0)),
            report("a", Some(received - 10)),
        ];
        let occurrences = coalesce(&errors, received, NonZeroU64::new(1).unwrap());
        let seen: Vec<_> = occurrences
            .iter()
            .map(|o| (o.window_start_ms, o.count))
            .collect();
        assert_eq!(
            seen,
            [
                (received - MAX_REPORT_AGE_MS, 1),
                (received - 10, 1),
                (received, 1)
            ]
        );
    }

    #[test]
    fn the_command_is_what_the_aggregate_takes() {
        let occurrences = coalesce(&[report("boom 7", Some(61_000))], 62_000, DEFAULT_WINDOW_MS);
        assert_eq!(
            occurrences[0].command_json(),
            json!({"type": "RecordOccurrences", "data": {
                "error_type": "TypeError", "message": "boom 7",
                "top_frame": "at renderCard (https://app.example.com/app.js:1:2)",
                "release": "web@1.4.0", "url": "https://app.example.com/board/7",
                "count": 1, "first_seen_ms": 61_000, "last_seen_ms": 61_000,
                "window_start_ms": 60_000
            }})
        );
        let mut merged = occurrences[0].clone();
        merged.absorb(&coalesce(&[report("boom 8", Some(90_000))], 95_000, DEFAULT_WINDOW_MS)[0]);
        assert_eq!(
            (
                merged.count,
                merged.first_seen_ms,
                merged.last_seen_ms,
                merged.message.as_str()
            ),
            (2, 61_000, 90_000, "boom 7")
        );
    }

    #[test]
    fn merged_windows_keep_the_counts_and_a_valid_time_range() {
        let window = NonZeroU64::new(1_000).unwrap();
        let first = coalesce(&[report("a", Some(10_500))], 20_000, window);
        let mut later = report("a", Some(12_200));
        later.release = Some("web@1.5.0".into());
        let second = coalesce(&[later.clone(), later], 20_000, window);
        let mut merged = first[0].clone();
        merged.merge(&second[0]);
        assert_eq!(merged.count, 3);
        assert_eq!(
            (
                merged.window_start_ms,
                merged.first_seen_ms,
                merged.last_seen_ms
            ),
            (10_000, 10_500, 12_200)
        );
        assert_eq!(merged.release.as_deref(), Some("web@1.5.0"));
        assert_eq!(merged.message, first[0].message);
        // The merged record is one the aggregate accepts.
        let group = ErrorGroup::default();
        let events = group.decide(merged.command()).unwrap();
        assert_eq!(events.len(), 1);
        let mut reversed = second[0].clone();
        reversed.merge(&first[0]);
        assert_eq!(
            (
                reversed.count,
                reversed.window_start_ms,
                reversed.first_seen_ms
            ),
            (3, 10_000, 10_500)
        );
    }
}
