//! Consumer groups: the typed calls of `/v1/consumers/…` (scope `consume`) — create, status,
//! delete; poll, ack, nack, renew, release; parked events and their replay.
//!
//! A consumer group is a named reader of the tenant's global stream shared by several
//! consumers (agent processes). It keeps a durable cursor per partition and hands out events
//! in *batches*: one partition's events in offset order, under one *lease* that its consumer
//! holds until it answers every event (ack or nack), releases the lease, or lets it expire.
//! Un-acked events of an expired lease are delivered again (`attempt + 1`); after the group's
//! `max_attempts` an event is *parked* until an operator replays it.
//!
//! These are the building blocks. [`crate::agent::Agent`] is the loop most callers want:
//! poll, handle in order, ack, nack, renew, release, stop cleanly.
//!
//! Retries: every call but [`Client::poll`] is retried under the client's
//! [`crate::RetryPolicy`] — answering an event the same way twice is accepted by the server,
//! so a retried ack or nack is harmless. A poll is sent once: a lost poll answer may hold a
//! lease nobody knows about (its events come back when it expires), and the loop that polls
//! is the one that should decide when to poll again.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, Position};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Client, Error};

/// The longest long-poll the server holds a poll open for, in ms.
pub const MAX_POLL_WAIT_MS: u64 = 20_000;

/// Longest group name, in characters.
pub const MAX_GROUP_CHARS: usize = 64;

/// Checks a group name the way the server does: 1–64 of `[a-z0-9_-]`, not starting with
/// `_` (names starting with `_` are the system's own). [`Error::InvalidArgument`] otherwise,
/// so a bad name is refused before anything is sent.
pub fn check_group_name(group: &str) -> Result<(), Error> {
    let valid = !group.is_empty()
        && group.chars().count() <= MAX_GROUP_CHARS
        && !group.starts_with('_')
        && group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "consumer group name `{}`: expected 1–{MAX_GROUP_CHARS} of [a-z0-9_-], not starting with `_`",
            crate::excerpt(group)
        )))
    }
}

/// Where a new group starts reading each partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Start {
    /// Every event, from offset 1 (`"beginning"`).
    #[default]
    Beginning,
    /// Only events appended after the group is created (`"end"`).
    End,
    /// After the given offset of each listed partition (`{"offsets":{"0":12}}`); partitions
    /// not listed start from the beginning.
    Offsets(BTreeMap<u32, u64>),
}

impl Serialize for Start {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Start::Beginning => serializer.serialize_str("beginning"),
            Start::End => serializer.serialize_str("end"),
            Start::Offsets(offsets) => {
                let offsets: BTreeMap<String, u64> =
                    offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
                json!({ "offsets": offsets }).serialize(serializer)
            }
        }
    }
}

/// The settings of `PUT /v1/consumers/{group}`. Every field is optional: what is left out
/// takes the server's default (start at the beginning, 30 s leases, 5 attempts, 1 s retry
/// backoff, every event).
///
/// ```
/// use client::GroupSettings;
///
/// let settings = GroupSettings::default()
///     .aggregate_type("feedback")
///     .types(["FeedbackSubmitted"])
///     .lease_ms(10_000);
/// assert_eq!(
///     serde_json::to_value(&settings).unwrap(),
///     serde_json::json!({"lease_ms": 10000, "aggregate_type": "feedback",
///                        "types": ["FeedbackSubmitted"]})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GroupSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// How long a batch's lease lasts from its delivery or last renewal, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Deliveries of an event without an ack before it is parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The wait before redelivering an event nacked with `retry`, doubling per delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff_ms: Option<u64>,
    /// Only events of this aggregate type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// Only events of these types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
}

impl GroupSettings {
    pub fn start(mut self, start: Start) -> Self {
        self.start = Some(start);
        self
    }

    pub fn lease_ms(mut self, lease_ms: u64) -> Self {
        self.lease_ms = Some(lease_ms);
        self
    }

    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    pub fn retry_backoff_ms(mut self, retry_backoff_ms: u64) -> Self {
        self.retry_backoff_ms = Some(retry_backoff_ms);
        self
    }

    pub fn aggregate_type(mut self, aggregate_type: impl Into<String>) -> Self {
        self.aggregate_type = Some(aggregate_type.into());
        self
    }

    pub fn types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.types = Some(types.into_iter().map(Into::into).collect());
        self
    }
}

/// A group's settings as its status reports them. The documented fields are typed; anything
/// else the server adds (`start`, a newer server's fields) is kept in `other`. The numbers
/// may come at the top level or under `config` (how the Worker stores them); both read the
/// same.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub lease_ms: u64,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub max_backoff_ms: Option<u64>,
    pub max_batch: Option<u32>,
    pub aggregate_type: Option<String>,
    pub types: Option<Vec<String>>,
    pub other: Map<String, Value>,
}

impl<'de> Deserialize<'de> for GroupConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Flat {
            lease_ms: u64,
            max_attempts: u32,
            retry_backoff_ms: u64,
            #[serde(default)]
            max_backoff_ms: Option<u64>,
            #[serde(default)]
            max_batch: Option<u32>,
            #[serde(default)]
            aggregate_type: Option<String>,
            #[serde(default)]
            types: Option<Vec<String>>,
            #[serde(flatten)]
            other: Map<String, Value>,
        }
        let mut map = Map::deserialize(deserializer)?;
        if let Some(Value::Object(config)) = map.remove("config") {
            for (name, value) in config {
                map.entry(name).or_insert(value);
            }
        }
        let flat: Flat =
            serde_json::from_value(Value::Object(map)).map_err(serde::de::Error::custom)?;
        Ok(GroupConfig {
            lease_ms: flat.lease_ms,
            max_attempts: flat.max_attempts,
            retry_backoff_ms: flat.retry_backoff_ms,
            max_backoff_ms: flat.max_backoff_ms,
            max_batch: flat.max_batch,
            aggregate_type: flat.aggregate_type,
            types: flat.types,
            other: flat.other,
        })
    }
}

/// One partition of a group's status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupPartition {
    pub partition: u32,
    /// Every event up to this offset is settled (acked, skipped or parked).
    pub cursor: u64,
    /// The partition's newest offset.
    pub head: u64,
    /// `head - cursor`.
    pub lag: u64,
    /// Events delivered and not yet answered.
    pub in_flight: u64,
    /// Events waiting for a delivery (a retry's backoff, a replayed event).
    #[serde(default)]
    pub waiting: u64,
    /// Parked events of this partition.
    #[serde(default)]
    pub parked: u64,
    /// The consumer holding the partition's live lease, if any.
    pub leased_by: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// `GET /v1/consumers/{group}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GroupStatus {
    pub group: String,
    pub settings: GroupConfig,
    pub partitions: Vec<GroupPartition>,
    /// How many events are parked.
    pub parked: u64,
}

impl GroupStatus {
    /// The sum of every partition's lag.
    pub fn lag(&self) -> u64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// A lease id, exactly as the server sent it (sent back the same way in ack, nack, renew and
/// release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(Value);

impl LeaseId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(Value::String(id.into()))
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::String(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}

/// The lease a poll granted: one partition, until `expires_at` unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lease {
    pub id: LeaseId,
    pub partition: u32,
    pub expires_at: DateTime<Utc>,
}

/// One event of a batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Delivery {
    /// 1 for a first delivery, 2 for the first redelivery, … (since the last replay).
    pub attempt: u32,
    /// The envelope, with its stream `position`.
    pub event: EventEnvelope,
}

impl Delivery {
    /// The event's place in the stream (the server always sends it on a delivery).
    pub fn position(&self) -> Result<Position, Error> {
        self.event.position.ok_or_else(|| {
            Error::Protocol(format!(
                "delivered event {} has no position",
                self.event.event_id
            ))
        })
    }
}

/// What a poll answered: a batch under a lease, or nothing (`lease` is `None`, `events` empty).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Batch {
    pub lease: Option<Lease>,
    pub events: Vec<Delivery>,
}

/// `POST …/poll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollRequest {
    /// Who is asking: the name the lease is held by.
    pub consumer: String,
    /// At most this many events in the batch.
    pub max_events: u32,
    /// How long the server may hold the poll open when nothing is deliverable, in ms (at
    /// most [`MAX_POLL_WAIT_MS`]).
    pub wait_ms: u64,
}

/// What to do with an event that was not handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackAction {
    /// Deliver it again after the group's backoff (parked once its attempts are used up).
    Retry,
    /// Set it aside for an operator; it stops blocking its partition.
    Park,
    /// Drop it: settled like an ack, without having been handled.
    Skip,
}

impl fmt::Display for NackAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NackAction::Retry => "retry",
            NackAction::Park => "park",
            NackAction::Skip => "skip",
        })
    }
}

/// What a nack did to the event (`outcome.fate` of the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered again from `at` on.
    Retry { at: Option<DateTime<Utc>> },
    /// Parked: by the nack, or because a retry had no attempt left.
    Parked,
    /// Settled without being handled.
    Skipped,
}

/// One parked event of `GET …/parked`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParkedEvent {
    pub partition: u32,
    pub offset: u64,
    /// Deliveries before it was parked.
    pub attempts: u32,
    /// The reason the last nack gave, if any.
    pub reason: Option<String>,
    #[serde(default)]
    pub parked_at: Option<DateTime<Utc>>,
    /// Why it was parked (`{"nacked":{"consumer":…}}` or `"max_attempts"`).
    #[serde(default)]
    pub cause: Option<Value>,
    /// The event (`None` if the stream could not be read for it).
    pub event: Option<EventEnvelope>,
}

/// Which parked events `POST …/parked/replay` hands back to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    All,
    Events(Vec<Position>),
}

impl Serialize for Replay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Replay::All => json!({ "all": true }).serialize(serializer),
            Replay::Events(positions) => json!({ "offsets": positions }).serialize(serializer),
        }
    }
}

impl Error {
    /// A 409 `lease_lost` (or `lease_expired`): the lease is no longer this consumer's. Its
    /// unanswered events go out again; poll for a new batch.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self.code(), Some("lease_lost" | "lease_expired"))
    }
}

/// Extra time a poll request may take beyond the server's long-poll wait.
const POLL_MARGIN: Duration = Duration::from_secs(10);

impl Client {
    /// `PUT /v1/consumers/{group}`: creates the group, or checks that it exists with these
    /// settings. `Ok(true)` when created (201), `Ok(false)` when it already existed the same
    /// way (200).
    ///
    /// Errors: [`Error::Api`] `conflict` 409 when the group exists with other settings,
    /// `bad_request` 400 for settings out of bounds, `forbidden` 403 without `consume`;
    /// [`Error::InvalidArgument`] for a bad group name.
    pub async fn create_group(&self, group: &str, settings: &GroupSettings) -> Result<bool, Error> {
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group], &[]);
        let reply = self
            .call(None, || self.http().put(url.clone()).json(settings))
            .await?;
        Ok(reply.status == 201)
    }

    /// `GET /v1/consumers`: every group of the tenant.
    pub async fn groups(&self) -> Result<Vec<GroupStatus>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            groups: Vec<GroupStatus>,
        }
        let url = self.endpoint(&["v1", "consumers"], &[]);
        let answer: Answer = self
            .call(None, || self.http().get(url.clone()))
            .await?
            .json()?;
        Ok(answer.groups)
    }

    /// `GET /v1/consumers/{group}`: settings, cursors, lag, leases, parked count.
    /// Errors: `not_found` 404 when there is no such group.
    pub async fn group(&self, group: &str) -> Result<GroupStatus, Error> {
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group], &[]);
        self.call(None, || self.http().get(url.clone()))
            .await?
            .json()
    }

    /// `DELETE /v1/consumers/{group}`.
    pub async fn delete_group(&self, group: &str) -> Result<(), Error> {
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group], &[]);
        self.call(None, || self.http().delete(url.clone()))
            .await
            .map(|_| ())
    }

    /// `POST /v1/consumers/{group}/poll`: the next batch for `request.consumer`, waiting up
    /// to `request.wait_ms` when nothing is deliverable. Sent once, never retried (see the
    /// module docs); the request may take `wait_ms` plus the client's request timeout.
    ///
    /// Errors: [`Error::Api`] `not_found` 404 for an unknown group; [`Error::Network`] and
    /// the transient statuses as they came; [`Error::Protocol`] for a batch that is not one
    /// partition's events in offset order.
    pub async fn poll(&self, group: &str, request: &PollRequest) -> Result<Batch, Error> {
        check_group_name(group)?;
        let wait = Duration::from_millis(request.wait_ms.min(MAX_POLL_WAIT_MS));
        // The name is checked above: `[a-z0-9_-]` needs no escaping in a path.
        let builder = self
            .request(Method::POST, &format!("/v1/consumers/{group}/poll"))
            .timeout(self.request_timeout().max(wait + POLL_MARGIN))
            .json(request);
        let reply = self.send(builder).await?.error_for_status()?;
        let batch: Batch = reply.json()?;
        check_batch(&batch)?;
        Ok(batch)
    }

    /// `POST …/ack`: the events at `offsets` (of the lease's partition) were handled.
    /// Answers the partition's cursor afterwards.
    ///
    /// Errors: [`Error::is_lease_lost`] (409) when the lease is no longer this consumer's.
    pub async fn ack(
        &self,
        group: &str,
        consumer: &str,
        lease: &LeaseId,
        offsets: &[u64],
    ) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct Answer {
            cursor: u64,
        }
        let body = json!({"consumer": consumer, "lease": lease, "offsets": offsets});
        let answer: Answer = self.consumer_call(group, "ack", &body).await?.json()?;
        Ok(answer.cursor)
    }

    /// `POST …/nack`: the event at `offset` was not handled; `action` says what the group
    /// does with it, `reason` is kept with a parked event (at most 1,000 characters: longer
    /// reasons are cut here rather than refused). Answers the event's [`Fate`] when the
    /// server says it.
    pub async fn nack(
        &self,
        group: &str,
        consumer: &str,
        lease: &LeaseId,
        offset: u64,
        action: NackAction,
        reason: &str,
    ) -> Result<Option<Fate>, Error> {
        let reason: String = reason.chars().take(1000).collect();
        let body = json!({
            "consumer": consumer, "lease": lease, "offset": offset,
            "action": action, "reason": reason,
        });
        let answer: Value = self.consumer_call(group, "nack", &body).await?.json()?;
        let outcome = &answer["outcome"];
        Ok(match outcome["fate"].as_str() {
            Some("retry") => Some(Fate::Retry {
                at: outcome["at"].as_str().and_then(|t| t.parse().ok()),
            }),
            Some("parked") => Some(Fate::Parked),
            Some("skipped") => Some(Fate::Skipped),
            _ => None,
        })
    }

    /// `POST …/renew`: extends the lease by the group's `lease_ms` from now; answers the new
    /// expiry.
    pub async fn renew(
        &self,
        group: &str,
        consumer: &str,
        lease: &LeaseId,
    ) -> Result<DateTime<Utc>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            expires_at: DateTime<Utc>,
        }
        let body = json!({"consumer": consumer, "lease": lease});
        let answer: Answer = self.consumer_call(group, "renew", &body).await?.json()?;
        Ok(answer.expires_at)
    }

    /// `POST …/release`: hands the lease's unanswered events back at once (not counted as
    /// attempts).
    pub async fn release(&self, group: &str, consumer: &str, lease: &LeaseId) -> Result<(), Error> {
        let body = json!({"consumer": consumer, "lease": lease});
        self.consumer_call(group, "release", &body)
            .await
            .map(|_| ())
    }

    /// `GET /v1/consumers/{group}/parked`: every parked event.
    pub async fn parked(&self, group: &str) -> Result<Vec<ParkedEvent>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            parked: Vec<ParkedEvent>,
        }
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group, "parked"], &[]);
        let answer: Answer = self
            .call(None, || self.http().get(url.clone()))
            .await?
            .json()?;
        Ok(answer.parked)
    }

    /// `POST /v1/consumers/{group}/parked/replay`: parked events rejoin their partitions
    /// with a fresh set of attempts. Answers how many were replayed.
    pub async fn replay_parked(&self, group: &str, which: &Replay) -> Result<usize, Error> {
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group, "parked", "replay"], &[]);
        let answer: Value = self
            .call(None, || self.http().post(url.clone()).json(which))
            .await?
            .json()?;
        Ok(answer["replayed"].as_array().map_or(0, Vec::len))
    }

    async fn consumer_call(
        &self,
        group: &str,
        call: &str,
        body: &Value,
    ) -> Result<crate::Reply, Error> {
        check_group_name(group)?;
        let url = self.endpoint(&["v1", "consumers", group, call], &[]);
        self.call(None, || self.http().post(url.clone()).json(body))
            .await
    }
}

/// A batch is one partition's events, in offset order, under its lease — and no events
/// without a lease. Anything else would make the caller ack the wrong events.
fn check_batch(batch: &Batch) -> Result<(), Error> {
    let Some(lease) = &batch.lease else {
        return if batch.events.is_empty() {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "a poll answered {} events without a lease",
                batch.events.len()
            )))
        };
    };
    let mut previous = 0;
    for delivery in &batch.events {
        let position = delivery.position()?;
        if position.partition != lease.partition || position.offset <= previous {
            return Err(Error::Protocol(format!(
                "a batch of partition {} holds {}:{} after offset {previous}",
                lease.partition, position.partition, position.offset
            )));
        }
        previous = position.offset;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(partition: u32, offset: u64) -> Value {
        json!({"attempt": 1, "event": {
            "aggregate_type": "feedback", "aggregate_id": "f1", "seq": 1,
            "event_id": format!("e{offset}"), "type": "FeedbackSubmitted", "schema_version": 1,
            "data": {}, "recorded_at": "2026-01-01T00:00:00.000Z", "command_id": null,
            "correlation_id": null, "causation_id": null, "actor": "a",
            "position": {"partition": partition, "offset": offset}
        }})
    }

    #[test]
    fn group_names_follow_the_server_rules() {
        for good in ["triage", "a", "agent_1-b", &"x".repeat(64)] {
            assert!(check_group_name(good).is_ok(), "{good}");
        }
        for bad in ["", "_system", "Triage", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(
                matches!(check_group_name(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn start_and_replay_serialize_as_documented() {
        assert_eq!(serde_json::to_value(Start::End).unwrap(), json!("end"));
        let offsets = Start::Offsets([(0, 12), (3, 0)].into_iter().collect());
        assert_eq!(
            serde_json::to_value(offsets).unwrap(),
            json!({"offsets": {"0": 12, "3": 0}})
        );
        assert_eq!(
            serde_json::to_value(Replay::All).unwrap(),
            json!({"all": true})
        );
        let one = Replay::Events(vec![Position {
            partition: 2,
            offset: 7,
        }]);
        assert_eq!(
            serde_json::to_value(one).unwrap(),
            json!({"offsets": [{"partition": 2, "offset": 7}]})
        );
        assert_eq!(
            serde_json::to_value(GroupSettings::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn a_batch_decodes_and_lease_ids_go_back_as_they_came() {
        for id in [json!("l-17"), json!(17)] {
            let batch: Batch = serde_json::from_value(json!({
                "lease": {"id": id, "partition": 2, "expires_at": "2026-01-01T00:00:30.000Z"},
                "events": [delivery(2, 5), delivery(2, 6)]
            }))
            .unwrap();
            check_batch(&batch).unwrap();
            let lease = batch.lease.unwrap();
            assert_eq!(serde_json::to_value(&lease.id).unwrap(), id);
        }
        let empty: Batch = serde_json::from_value(json!({"lease": null, "events": []})).unwrap();
        check_batch(&empty).unwrap();
    }

    #[test]
    fn a_batch_out_of_order_or_of_two_partitions_is_a_protocol_error() {
        let lease = json!({"id": "l", "partition": 2, "expires_at": "2026-01-01T00:00:30Z"});
        for events in [
            vec![delivery(2, 6), delivery(2, 5)],
            vec![delivery(2, 5), delivery(1, 6)],
            vec![delivery(2, 5), delivery(2, 5)],
        ] {
            let batch: Batch =
                serde_json::from_value(json!({"lease": lease, "events": events})).unwrap();
            assert!(matches!(check_batch(&batch), Err(Error::Protocol(_))));
        }
        let leaseless: Batch =
            serde_json::from_value(json!({"lease": null, "events": [delivery(0, 1)]})).unwrap();
        assert!(matches!(check_batch(&leaseless), Err(Error::Protocol(_))));
    }

    #[test]
    fn lease_lost_and_expired_are_both_lease_lost() {
        for code in ["lease_lost", "lease_expired"] {
            let body = json!({"error": {"code": code, "message": "m"}}).to_string();
            assert!(Error::from_answer(409, body.as_bytes()).is_lease_lost());
        }
        let other = json!({"error": {"code": "conflict", "message": "m"}}).to_string();
        assert!(!Error::from_answer(409, other.as_bytes()).is_lease_lost());
    }

    #[test]
    fn a_status_decodes_with_unknown_settings_kept() {
        let status: GroupStatus = serde_json::from_value(json!({
            "group": "triage",
            "settings": {"start": "beginning", "lease_ms": 30000, "max_attempts": 5,
                         "retry_backoff_ms": 1000, "aggregate_type": "feedback",
                         "types": ["FeedbackSubmitted"]},
            "partitions": [
                {"partition": 0, "cursor": 3, "head": 5, "lag": 2, "in_flight": 1,
                 "leased_by": "agent-1", "lease_expires_at": "2026-01-01T00:00:30.000Z"},
                {"partition": 1, "cursor": 0, "head": 0, "lag": 0, "in_flight": 0,
                 "leased_by": null, "lease_expires_at": null}
            ],
            "parked": 1
        }))
        .unwrap();
        assert_eq!(status.lag(), 2);
        assert_eq!(status.settings.other["start"], "beginning");
        // The Worker nests the numbers under `config`.
        let nested: GroupConfig = serde_json::from_value(json!({
            "start": "end", "aggregate_type": null, "types": ["A"],
            "config": {"lease_ms": 5000, "max_attempts": 3, "retry_backoff_ms": 100,
                       "max_backoff_ms": 60000, "max_batch": 100}
        }))
        .unwrap();
        assert_eq!(
            (nested.lease_ms, nested.max_attempts, nested.max_batch),
            (5000, 3, Some(100))
        );
        assert_eq!(nested.types, Some(vec!["A".to_owned()]));
        assert_eq!(status.partitions[0].leased_by.as_deref(), Some("agent-1"));
    }
}
