//! The command service: the one place where a command becomes events.
//!
//! [`CommandRequest`] is a command as a client sends it; [`CommandRequest::from_json`]
//! decodes one from the JSON value of a body (MessagePack bodies are turned into the same
//! JSON value first, so both decode here). [`Loaded`] is an aggregate instance in memory
//! (state + version), rebuilt from an [`EventStore`] by [`Loaded::load`] and
//! [`Loaded::at_version`]; [`Loaded::execute`] runs one command against it: idempotency
//! look-up, version check, decide, append, apply, snapshot.
//!
//! Every field of a request is either absent or of its documented type; anything else,
//! `null` included, is a [`CommandError::BadCommand`] (HTTP 400) naming the field.
//! Unknown fields are refused too, in the body and in `data`: a misspelt optional field
//! (`expected_verison`, `wip_limt`) would otherwise be dropped without a word.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{AggregateState, CommandError, Decision};
use crate::envelope::Metadata;
use crate::fields;
use crate::registry;
use crate::store::{EventStore, Idempotency, ReadQuery, Snapshot, StoreError, StoredEvent};
use crate::version::{ExpectedVersion, VersionConflict};

/// A command as sent by a client: `{"type": "AddCard", "data": {...}, "expected_version": 3}`.
///
/// Absent fields take their documented defaults (`data`: no fields, `expected_version`:
/// `"any"`, metadata ids: none); `null` is never read as absent. Serializing gives back a
/// body that decodes to the same request (absent ids are left out, not written as `null`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    #[serde(rename = "type")]
    pub command_type: String,
    /// The command's fields; an object (absent: none).
    #[serde(default)]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub expected_version: ExpectedVersion,
    /// The client's id for this command; generated when absent.
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub command_id: Option<String>,
    /// The flow this command belongs to (e.g. the feedback that started a triage loop).
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
    /// The event that caused this command, when an agent reacts to one.
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub causation_id: Option<String>,
}

/// Longest `command_id`, `correlation_id` or `causation_id`, in characters. They are copied
/// onto every event of the command, so they are kept short.
pub const MAX_METADATA_CHARS: usize = 256;

impl CommandRequest {
    /// Decodes a command body (already parsed into JSON). Anything but an object with the
    /// documented fields is a [`CommandError::BadCommand`] (HTTP 400) whose message names
    /// the field at fault. serde alone would also take the fields as a positional array,
    /// which is not part of the contract.
    pub fn from_json(body: &Value) -> Result<Self, CommandError> {
        if !body.is_object() {
            return Err(CommandError::BadCommand(
                r#"a command is an object: {"type": …, "data": {…}, "expected_version": …}"#
                    .to_owned(),
            ));
        }
        fields::decode(body, Value::as_object, |prefix| prefix)
            .map_err(|e| CommandError::BadCommand(format!("invalid command: {}", e.message(""))))
    }

    /// `command_id`, `correlation_id`, `causation_id`, in that order.
    pub fn metadata_ids(&self) -> [Option<String>; 3] {
        [
            self.command_id.clone(),
            self.correlation_id.clone(),
            self.causation_id.clone(),
        ]
    }

    /// Refuses metadata ids longer than [`MAX_METADATA_CHARS`] (HTTP 400).
    pub fn check_metadata(&self) -> Result<(), CommandError> {
        let fields = [
            ("command_id", &self.command_id),
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
        ];
        for (name, value) in fields {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > MAX_METADATA_CHARS)
            {
                return Err(CommandError::BadCommand(format!(
                    "`{name}` must be at most {MAX_METADATA_CHARS} characters"
                )));
            }
        }
        Ok(())
    }

    /// A digest of what the command asks for (its type and data), to tell a retry from a
    /// different command reusing an idempotency key. The expected version and metadata are
    /// left out: a retry may carry a stale version or a fresh command id and is still the
    /// same intent. serde_json sorts object keys, so equal JSON gives equal fingerprints
    /// whatever the key order on the wire.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let canonical = serde_json::json!([self.command_type, self.data]);
        let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One command of a batch: `{"type": "AddCard", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCommand {
    #[serde(rename = "type")]
    pub command_type: String,
    #[serde(default)]
    pub data: Map<String, Value>,
}

/// Several commands to one aggregate, decided in order against the state each leaves and
/// appended together, all or none: `{"commands": [{"type","data"}…], "expected_version": …}`
/// plus the metadata ids of a single command (recorded on every event). The expected
/// version is checked once, before the first command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub commands: Vec<BatchCommand>,
    #[serde(default)]
    pub expected_version: ExpectedVersion,
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub command_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::never_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub causation_id: Option<String>,
}

/// Most commands in one batch.
pub const MAX_BATCH_COMMANDS: usize = 1000;

impl BatchRequest {
    /// Decodes a batch body like [`CommandRequest::from_json`]: every field absent or of its
    /// type, 1 to [`MAX_BATCH_COMMANDS`] commands, metadata ids within bounds.
    pub fn from_json(body: &Value) -> Result<Self, CommandError> {
        if !body.is_object() {
            return Err(CommandError::BadCommand(
                r#"a batch is an object: {"commands": [{"type": …, "data": {…}}, …], "expected_version": …}"#
                    .to_owned(),
            ));
        }
        let batch: Self = fields::decode(body, Value::as_object, |prefix| prefix)
            .map_err(|e| CommandError::BadCommand(format!("invalid batch: {}", e.message(""))))?;
        if batch.commands.is_empty() || batch.commands.len() > MAX_BATCH_COMMANDS {
            return Err(CommandError::BadCommand(format!(
                "a batch holds 1 to {MAX_BATCH_COMMANDS} commands, not {}",
                batch.commands.len()
            )));
        }
        batch.as_request().check_metadata()?;
        Ok(batch)
    }

    /// `command_id`, `correlation_id`, `causation_id`, in that order.
    pub fn metadata_ids(&self) -> [Option<String>; 3] {
        self.as_request().metadata_ids()
    }

    /// The batch's metadata and expected version as a single command's (checks, ids).
    fn as_request(&self) -> CommandRequest {
        CommandRequest {
            command_type: "batch".into(),
            data: Map::new(),
            expected_version: self.expected_version,
            command_id: self.command_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
        }
    }

    /// What the batch asks for (every command's type and data, in order), as
    /// [`CommandRequest::fingerprint`] does for one command.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let canonical: Vec<Value> = self
            .commands
            .iter()
            .map(|c| serde_json::json!([c.command_type, c.data]))
            .collect();
        let digest = sha2::Sha256::digest(
            serde_json::json!(["batch", canonical])
                .to_string()
                .as_bytes(),
        );
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the runtime supplies to a command: the clock, id generation, metadata.
pub struct CommandInputs<'a> {
    pub now_ms: i64,
    pub metadata: Metadata,
    pub idempotency_key: Option<&'a str>,
    /// Produces one fresh event id (UUID v7 in production) per call.
    pub next_event_id: &'a mut dyn FnMut() -> String,
    /// At most this many events per command (a bound on one write).
    pub max_events: usize,
}

/// The result of a command: the new version and the events it appended.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome {
    pub version: u64,
    pub events: Vec<StoredEvent>,
    /// True when this is the stored result of an earlier command with the same idempotency key.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// The idempotency key was used before with a different request. HTTP 422
    /// `idempotency_key_reused`.
    #[error("the Idempotency-Key `{key}` was already used with a different request")]
    IdempotencyKeyReused { key: String },
    /// The command decided more events than the configured bound. HTTP 413.
    #[error("the command produced {produced} events; at most {limit} are allowed per command")]
    TooManyEvents { produced: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A batch command's refusal, saying which command of the batch it was.
fn at_index(index: usize, error: CommandError) -> ExecuteError {
    match error {
        CommandError::BadCommand(message) => {
            CommandError::BadCommand(format!("commands[{index}]: {message}")).into()
        }
        CommandError::Rejected(mut rejection) => {
            rejection.message = format!("commands[{index}]: {}", rejection.message);
            CommandError::Rejected(rejection).into()
        }
        other => other.into(),
    }
}

/// Loading an aggregate failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// No aggregate type of that name. HTTP 404.
    #[error("unknown aggregate type `{0}`")]
    UnknownType(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An aggregate instance in memory: its state and the version it reflects. The command
/// service's entry points are its methods.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub state: Box<dyn AggregateState>,
}

/// How many events to fold per read while rebuilding state.
const REPLAY_PAGE: usize = 1000;

impl Loaded {
    /// Loads the current state: the newest snapshot, then the tail of the log.
    pub fn load(
        store: &impl EventStore,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Self, LoadError> {
        let version = store.version()?;
        Self::at_version(store, aggregate_type, aggregate_id, version)
    }

    /// The state as of `version` (clamped to the log's version).
    pub fn at_version(
        store: &impl EventStore,
        aggregate_type: &str,
        aggregate_id: &str,
        version: u64,
    ) -> Result<Self, LoadError> {
        let unknown = || LoadError::UnknownType(aggregate_type.to_owned());
        let target = version.min(store.version()?);
        // A snapshot that no longer decodes (the state's shape changed) is ignored: the log
        // is the truth and a full replay rebuilds the state.
        let restored = match store.latest_snapshot(target)? {
            Some(snapshot) => registry::restore_state(aggregate_type, &snapshot.state)
                .ok_or_else(unknown)?
                .ok()
                .map(|state| (snapshot.seq, state)),
            None => None,
        };
        let (mut seq, mut state) = match restored {
            Some(found) => found,
            None => (0, registry::new_state(aggregate_type).ok_or_else(unknown)?),
        };
        while seq < target {
            // `try_from` rather than `as`: on wasm32 a huge gap would otherwise wrap to a tiny page.
            let remaining = usize::try_from(target - seq).unwrap_or(usize::MAX);
            let page = store.read(&ReadQuery::forward(seq, REPLAY_PAGE.min(remaining)))?;
            if page.is_empty() {
                break;
            }
            for event in page {
                state
                    .apply(&event.event_type, event.schema_version, event.data)
                    .map_err(StoreError::from)?;
                seq = event.seq;
            }
        }
        Ok(Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version: seq,
            state,
        })
    }

    /// Runs one command: idempotency look-up, version check, decide, append, apply, and a
    /// snapshot every `snapshot_every` events. On any error nothing is written and `self`
    /// is unchanged.
    pub fn execute(
        &mut self,
        store: &mut impl EventStore,
        request: CommandRequest,
        inputs: CommandInputs<'_>,
        snapshot_every: u64,
    ) -> Result<CommandOutcome, ExecuteError> {
        let fingerprint = inputs.idempotency_key.map(|_| request.fingerprint());
        let idempotency = inputs
            .idempotency_key
            .zip(fingerprint.as_deref())
            .map(|(key, fingerprint)| Idempotency { key, fingerprint });
        if let Some(idempotency) = idempotency
            && let Some(earlier) = store.idempotent_result(idempotency.key)?
        {
            if earlier.fingerprint != idempotency.fingerprint {
                return Err(ExecuteError::IdempotencyKeyReused {
                    key: idempotency.key.to_owned(),
                });
            }
            return Ok(CommandOutcome {
                version: earlier.version,
                events: earlier.events,
                replayed: true,
            });
        }
        request.check_metadata()?;
        request.expected_version.check(self.version)?;
        let Decision {
            events: decided,
            typed,
        } = self
            .state
            .decide_typed(&request.command_type, Value::Object(request.data))?;
        if decided.len() > inputs.max_events {
            return Err(ExecuteError::TooManyEvents {
                produced: decided.len(),
                limit: inputs.max_events,
            });
        }
        let events: Vec<StoredEvent> = decided
            .into_iter()
            .zip(self.version + 1..)
            .map(|(event, seq)| StoredEvent {
                seq,
                event_id: (inputs.next_event_id)(),
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version,
                data: event.data,
                recorded_at_ms: inputs.now_ms,
                metadata: inputs.metadata.clone(),
            })
            .collect();
        store.append(&events, idempotency)?;
        let previous = self.version;
        self.version += events.len() as u64;
        // The events are applied as `decide` made them (it checked that each decodes back
        // to itself, so they equal what a replay of the log applies), after the append:
        // no copy of the state is needed (cloning it would cost O(state) per command).
        // Should it fail anyway, the cache is rebuilt from the log, which holds the truth.
        if let Err(error) = self.state.apply_decided(typed) {
            *self = Loaded::load(store, &self.aggregate_type, &self.aggregate_id)
                .map_err(|_| StoreError::from(error.clone()))?;
            return Err(StoreError::from(error).into());
        }
        if snapshot_every > 0 && self.version / snapshot_every > previous / snapshot_every {
            // A snapshot is an optimisation: failing to write one loses nothing.
            let _ = store.save_snapshot(Snapshot {
                seq: self.version,
                state: self.state.to_snapshot(),
            });
        }
        Ok(CommandOutcome {
            version: self.version,
            events,
            replayed: false,
        })
    }

    /// Runs a batch: idempotency look-up (one key for the whole batch), the version check,
    /// then each command decided against the state the previous ones left (on a scratch
    /// copy of the state), one append of all their events, and a snapshot every
    /// `snapshot_every` events. A command refused anywhere in the batch refuses all of it,
    /// naming its index; nothing is written and `self` is unchanged.
    pub fn execute_batch(
        &mut self,
        store: &mut impl EventStore,
        batch: BatchRequest,
        inputs: CommandInputs<'_>,
        snapshot_every: u64,
    ) -> Result<CommandOutcome, ExecuteError> {
        let fingerprint = inputs.idempotency_key.map(|_| batch.fingerprint());
        let idempotency = inputs
            .idempotency_key
            .zip(fingerprint.as_deref())
            .map(|(key, fingerprint)| Idempotency { key, fingerprint });
        if let Some(idempotency) = idempotency
            && let Some(earlier) = store.idempotent_result(idempotency.key)?
        {
            if earlier.fingerprint != idempotency.fingerprint {
                return Err(ExecuteError::IdempotencyKeyReused {
                    key: idempotency.key.to_owned(),
                });
            }
            return Ok(CommandOutcome {
                version: earlier.version,
                events: earlier.events,
                replayed: true,
            });
        }
        batch.as_request().check_metadata()?;
        batch.expected_version.check(self.version)?;
        let snapshot = self.state.to_snapshot();
        let mut scratch = registry::restore_state(&self.aggregate_type, &snapshot)
            .ok_or_else(|| StoreError(format!("unknown aggregate type `{}`", self.aggregate_type)))?
            .map_err(StoreError::from)?;
        let mut events = Vec::new();
        for (index, command) in batch.commands.into_iter().enumerate() {
            let decision = scratch
                .decide_typed(&command.command_type, Value::Object(command.data))
                .map_err(|e| at_index(index, e))?;
            scratch
                .apply_decided(decision.typed)
                .map_err(StoreError::from)?;
            events.extend(decision.events);
            if events.len() > inputs.max_events {
                return Err(ExecuteError::TooManyEvents {
                    produced: events.len(),
                    limit: inputs.max_events,
                });
            }
        }
        let events: Vec<StoredEvent> = events
            .into_iter()
            .zip(self.version + 1..)
            .map(|(event, seq)| StoredEvent {
                seq,
                event_id: (inputs.next_event_id)(),
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version,
                data: event.data,
                recorded_at_ms: inputs.now_ms,
                metadata: inputs.metadata.clone(),
            })
            .collect();
        store.append(&events, idempotency)?;
        let previous = self.version;
        self.version += events.len() as u64;
        self.state = scratch;
        if snapshot_every > 0 && self.version / snapshot_every > previous / snapshot_every {
            let _ = store.save_snapshot(Snapshot {
                seq: self.version,
                state: self.state.to_snapshot(),
            });
        }
        Ok(CommandOutcome {
            version: self.version,
            events,
            replayed: false,
        })
    }
}
