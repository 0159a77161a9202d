//! The repository interface: what the domain needs from storage.
//!
//! [`EventStore`] is everything the command service needs from storage: the log's version,
//! an atomic append, range reads, idempotency look-ups and snapshots. It is synchronous on
//! purpose: a Durable Object's SQLite calls are synchronous, and keeping the whole
//! check–decide–append path free of `.await` is what makes it atomic there.
//! [`crate::memory::InMemoryStore`] implements it for native tests; `durable` implements it
//! on SQLite. The command service that drives it is [`crate::command_service`].

use serde::Deserialize;
use serde_json::Value;

use crate::codec::CodecError;
use crate::envelope::{EventEnvelope, Metadata, format_timestamp};

// moved to command_service.rs; re-exported until callers switch
pub use crate::command_service::{
    CommandInputs, CommandOutcome, CommandRequest, ExecuteError, LoadError, Loaded,
    MAX_METADATA_CHARS,
};

/// A storage failure (not a client mistake). HTTP 500 `internal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<CodecError> for StoreError {
    fn from(e: CodecError) -> Self {
        StoreError(e.to_string())
    }
}

/// One event as stored in an aggregate's log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Dense, starting at 1.
    pub seq: u64,
    /// UUID v7, as text.
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub recorded_at_ms: i64,
    pub metadata: Metadata,
}

impl StoredEvent {
    pub fn envelope(&self, aggregate_type: &str, aggregate_id: &str) -> EventEnvelope {
        EventEnvelope {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            seq: self.seq,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            data: self.data.clone(),
            recorded_at: format_timestamp(self.recorded_at_ms),
            command_id: self.metadata.command_id.clone(),
            correlation_id: self.metadata.correlation_id.clone(),
            causation_id: self.metadata.causation_id.clone(),
            actor: self.metadata.actor.clone(),
            position: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// A range of one log: the events with `after < seq < before` (`before: None` = no upper
/// bound), at most `limit` of them, taken from the oldest end ascending (forward) or from
/// the newest end descending (backward). Forward reads normally set only `after`, backward
/// reads only `before`; both bounds always apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadQuery {
    pub direction: Direction,
    pub after: u64,
    pub before: Option<u64>,
    pub limit: usize,
}

impl ReadQuery {
    pub fn forward(after: u64, limit: usize) -> Self {
        Self {
            direction: Direction::Forward,
            after,
            before: None,
            limit,
        }
    }

    /// Newest first, below `before` (`None`: from the newest event).
    pub fn backward(before: Option<u64>, limit: usize) -> Self {
        Self {
            direction: Direction::Backward,
            after: 0,
            before,
            limit,
        }
    }
}

/// An idempotency key and the fingerprint of the request it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
}

/// The remembered outcome of a command sent with an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResult {
    /// [`CommandRequest::fingerprint`](crate::command_service::CommandRequest::fingerprint)
    /// of the original request.
    pub fingerprint: String,
    /// The aggregate's version right after the command.
    pub version: u64,
    /// The events it appended (none for a command that decided nothing).
    pub events: Vec<StoredEvent>,
}

/// A saved state at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub state: Vec<u8>,
}

/// Storage for one aggregate's event log.
pub trait EventStore {
    /// The highest seq (0 when the log is empty).
    fn version(&self) -> Result<u64, StoreError>;
    /// Appends events that continue the log densely, all or nothing, remembering the
    /// idempotency key (when given) with the events, in the same write. With no events and
    /// a key, records that the key's command decided nothing at the current version.
    fn append(
        &mut self,
        events: &[StoredEvent],
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError>;
    /// Reads a range of the log: at most `query.limit` events, and possibly fewer (a store
    /// may bound a page by size), but at least one when the range holds any. Callers page
    /// on from the last seq they got.
    fn read(&self, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// What the command sent with an idempotency key did, if that key was used.
    fn idempotent_result(&self, key: &str) -> Result<Option<IdempotentResult>, StoreError>;
    /// The highest seq recorded at or before `unix_ms` (0 when none).
    fn seq_at_time(&self, unix_ms: i64) -> Result<u64, StoreError>;
    /// The newest snapshot with seq <= `at_or_below`.
    fn latest_snapshot(&self, at_or_below: u64) -> Result<Option<Snapshot>, StoreError>;
    fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError>;
}
