//! Commands: [`CommandBody`], [`CommandResult`], and [`Client::command`], which retries
//! safely because every attempt carries the same `Idempotency-Key`.

use domain::{EventEnvelope, ExpectedVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error};

/// A command: `{"type": "AddCard", "data": {…}, "expected_version": 3, …}`.
///
/// ```
/// use client::CommandBody;
/// use domain::ExpectedVersion;
/// use serde_json::json;
///
/// let body = CommandBody::new("AddCard", json!({"card_id": "c1", "title": "Ship it"}))
///     .expecting(ExpectedVersion::Exact(1))
///     .correlation_id("release-42");
/// assert_eq!(
///     serde_json::to_value(&body).unwrap(),
///     json!({"type": "AddCard", "data": {"card_id": "c1", "title": "Ship it"},
///            "expected_version": 1, "correlation_id": "release-42"})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandBody {
    /// The command's name in the aggregate's vocabulary, e.g. `AddCard`.
    #[serde(rename = "type")]
    pub command_type: String,
    /// The command's fields (`null` when it has none).
    pub data: Value,
    /// What the aggregate's version must be for the command to run; `Any` (the default)
    /// is not sent. A mismatch is a 409 `version_conflict` ([`Error::version_conflict`]).
    #[serde(skip_serializing_if = "is_any")]
    pub expected_version: ExpectedVersion,
    /// The caller's id for this command (at most 256 characters); the server makes one
    /// when absent. Recorded on every event the command produces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The flow the command belongs to (at most 256 characters), recorded on its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event that caused the command (at most 256 characters), recorded on its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

fn is_any(version: &ExpectedVersion) -> bool {
    *version == ExpectedVersion::Any
}

impl CommandBody {
    /// A command of `command_type` with `data`, any version, no metadata.
    pub fn new(command_type: impl Into<String>, data: Value) -> CommandBody {
        CommandBody {
            command_type: command_type.into(),
            data,
            expected_version: ExpectedVersion::Any,
            command_id: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// Runs only if the aggregate's version matches.
    pub fn expecting(mut self, version: ExpectedVersion) -> CommandBody {
        self.expected_version = version;
        self
    }

    pub fn command_id(mut self, id: impl Into<String>) -> CommandBody {
        self.command_id = Some(id.into());
        self
    }

    pub fn correlation_id(mut self, id: impl Into<String>) -> CommandBody {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn causation_id(mut self, id: impl Into<String>) -> CommandBody {
        self.causation_id = Some(id.into());
        self
    }

    /// Marks the command as a reaction to `event` (what an agent does): caused by the
    /// event's id, in the event's flow — its correlation id, or the event itself when it
    /// started the flow.
    pub fn caused_by(mut self, event: &EventEnvelope) -> CommandBody {
        self.causation_id = Some(event.event_id.clone());
        self.correlation_id = Some(
            event
                .correlation_id
                .clone()
                .unwrap_or_else(|| event.event_id.clone()),
        );
        self
    }
}

/// A command's outcome: the aggregate's version after it, and the events it appended (none
/// when the command decided nothing needed to change).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommandResult {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's version after the command: the `seq` of its last event.
    pub version: u64,
    /// The appended events, oldest first; empty when the client asked for minimal answers
    /// ([`crate::Client::with_minimal_answers`]).
    #[serde(default)]
    pub events: Vec<EventEnvelope>,
    /// The answer came from the idempotency record (`Idempotent-Replayed: true`): an
    /// earlier attempt with the same key had already applied the command, and nothing was
    /// appended this time.
    #[serde(skip)]
    pub replayed: bool,
    /// The `Idempotency-Key` the command was sent with.
    #[serde(skip)]
    pub idempotency_key: String,
}

/// A fresh idempotency key: a random UUID v4.
pub fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Client {
    /// Runs a command on the aggregate `aggregate_type`/`id`:
    /// `POST /v1/aggregates/{type}/{id}/commands`. `body` is a [`CommandBody`] or any JSON
    /// of that shape (`serde_json::json!({"type": …, "data": …})`).
    ///
    /// Sent with a fresh `Idempotency-Key` (a UUID v4) that every retry reuses, so retrying
    /// a lost answer never applies the command twice (a repeat answers the original result,
    /// [`CommandResult::replayed`]). Transient failures are retried under the client's
    /// [`crate::RetryPolicy`].
    ///
    /// Errors: [`Error::Api`] for a refusal — `bad_request` 400, `unauthorized` 401,
    /// `forbidden` 403, `not_found` 404 (unknown type), `version_conflict` 409,
    /// `payload_too_large` 413, `rejected` 422 (a domain rule; see
    /// [`Error::rejection_rule`]); [`Error::GaveUp`] when retries ran out (the command may
    /// or may not have been applied; resend it with the key the error names);
    /// [`Error::Network`] only with retries off; [`Error::Decode`] for an answer not shaped
    /// as documented.
    pub async fn command(
        &self,
        aggregate_type: &str,
        id: &str,
        body: &impl Serialize,
    ) -> Result<CommandResult, Error> {
        self.command_with_key(aggregate_type, id, body, &new_idempotency_key())
            .await
    }

    /// As [`Client::command`], with the caller's `Idempotency-Key` (1–255 printable ASCII
    /// characters, scoped to the aggregate): keep it with a command that must survive a
    /// restart of the caller, and send it again with the same key until it succeeds. The
    /// same key with a different command is a 422 `idempotency_key_reused`.
    pub async fn command_with_key(
        &self,
        aggregate_type: &str,
        id: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<CommandResult, Error> {
        // Serialized once: every attempt sends the same bytes with the same key.
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidArgument(format!("the command is not JSON: {e}")))?;
        let url = self.endpoint(&["v1", "aggregates", aggregate_type, id, "commands"], &[]);
        let reply = self
            .call(Some(idempotency_key), || {
                let request = self
                    .http()
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("idempotency-key", idempotency_key)
                    .body(bytes.clone());
                if self.minimal_answers() {
                    request.header("prefer", "return=minimal")
                } else {
                    request
                }
            })
            .await?;
        let mut result: CommandResult = reply.json()?;
        result.replayed = reply.replayed();
        result.idempotency_key = idempotency_key.to_owned();
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(event_id: &str, correlation_id: Option<&str>) -> EventEnvelope {
        serde_json::from_value(json!({
            "aggregate_type": "feedback", "aggregate_id": "f1", "seq": 1,
            "event_id": event_id, "type": "FeedbackSubmitted", "schema_version": 1,
            "data": {}, "recorded_at": "2026-01-01T00:00:00.000Z",
            "command_id": null, "correlation_id": correlation_id,
            "causation_id": null, "actor": "a"
        }))
        .unwrap()
    }

    #[test]
    fn a_plain_command_sends_only_type_and_data() {
        let body = CommandBody::new("CreateBoard", json!({"title": "t"}));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"type": "CreateBoard", "data": {"title": "t"}})
        );
        let none = body.expecting(ExpectedVersion::None).command_id("cmd-1");
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            json!({"type": "CreateBoard", "data": {"title": "t"}, "expected_version": "none", "command_id": "cmd-1"})
        );
    }

    #[test]
    fn caused_by_continues_the_events_flow_or_starts_one() {
        let reaction = CommandBody::new("TriageFeedback", json!({}))
            .caused_by(&envelope("e1", Some("flow-9")));
        assert_eq!(reaction.causation_id.as_deref(), Some("e1"));
        assert_eq!(reaction.correlation_id.as_deref(), Some("flow-9"));
        let first = CommandBody::new("TriageFeedback", json!({})).caused_by(&envelope("e2", None));
        assert_eq!(first.correlation_id.as_deref(), Some("e2"));
    }

    #[test]
    fn generated_keys_are_uuid_v4_and_distinct() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_ne!(a, b);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }

    #[test]
    fn a_result_decodes_from_the_documented_answer() {
        let answer = json!({
            "aggregate_type": "feedback", "aggregate_id": "f1", "version": 1,
            "events": [serde_json::to_value(envelope("e1", None)).unwrap()]
        });
        let result: CommandResult = serde_json::from_value(answer).unwrap();
        assert_eq!((result.version, result.events.len()), (1, 1));
        assert!(!result.replayed);
    }
}
