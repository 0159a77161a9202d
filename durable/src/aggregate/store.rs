//! The SQLite event store of one aggregate.
//!
//! `events` is the log: a dense `seq` from 1, the event's id, type, schema version, its
//! payload as MessagePack, the recording time and the command's metadata. Each row also
//! carries the `Idempotency-Key` of the command that appended it, so the idempotency
//! record and the events are one write. An append is a single `INSERT … SELECT FROM
//! json_each(…)` statement over the rows bound in chunks of at most 1 MiB of JSON and
//! 1 MiB of payload bytes each (`sql::RowChunks`): SQLite applies a statement entirely or
//! not at all, so a failure can never leave half a command in the log, no bound string or
//! BLOB comes near the 2 MB a SQLite-backed object allows, and a few bound parameters keep
//! us far below the runtime's limit on parameters per statement.

use domain::codec;
use domain::envelope::Metadata;
use domain::store::{
    Direction, EventStore, Idempotency, IdempotentResult, ReadQuery, Snapshot, StoreError,
    StoredEvent,
};
use worker::{SqlStorage, SqlStorageValue};

use crate::sql::{
    CHUNK_BYTES, RowChunks, chunked_rows, int, integer, migrate, plain_columns, row_values, scalar,
    text,
};

/// The schema, as migrations: entry `i` brings a database from version `i` to `i + 1`.
/// Append new entries; never edit a released one. Objects migrate themselves when they
/// open their store, before any request is served.
const MIGRATIONS: &[&str] = &["
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         BLOB    NOT NULL,
    recorded_at     INTEGER NOT NULL,
    command_id      TEXT,
    correlation_id  TEXT,
    causation_id    TEXT,
    actor           TEXT,
    idempotency_key TEXT,
    request_hash    TEXT
);
CREATE INDEX events_by_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_time ON events (recorded_at, seq);
CREATE TABLE idempotent_noops (
    idempotency_key TEXT    PRIMARY KEY,
    request_hash    TEXT    NOT NULL,
    version         INTEGER NOT NULL
);
CREATE TABLE snapshots (
    seq   INTEGER PRIMARY KEY,
    state BLOB    NOT NULL
);
",
    // The log is its own outbox (ARCHITECTURE.md, "Forwarding"): events with seq above
    // `forwarded_through` are committed and not yet acknowledged by the stream partition.
    // Existing logs start at 0, so their history is forwarded too.
    "
CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    forwarded_through INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox (id, forwarded_through) VALUES (1, 0);
"];

/// The event columns every read returns, in this one order: the statements below are
/// generated from it, and [`decode_row`] and [`push_event_row`] (which writes the payload
/// apart, as a BLOB) are the only code that depends on the order.
const EVENT_COLUMNS: [&str; 10] = [
    "seq",
    "event_id",
    "type",
    "schema_version",
    "payload",
    "recorded_at",
    "command_id",
    "correlation_id",
    "causation_id",
    "actor",
];

/// `seq, event_id, …`: the select list of every read.
fn select_list() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| EVENT_COLUMNS.join(", "))
}

/// The append statement: inserts the rows of `chunks` [`RowChunks`] of
/// [`push_event_row`]s (`?4`…) with the idempotency key (`?1`) and request fingerprint
/// (`?2`), only if the log ends at `?3`. One statement, so all rows or none.
fn append_statement(chunks: usize) -> String {
    format!(
        "INSERT INTO events ({}, payload, idempotency_key, request_hash)
         SELECT {}, ?1, ?2
         FROM {}
         WHERE (SELECT coalesce(max(seq), 0) FROM events) = ?3",
        plain_columns(&EVENT_COLUMNS, &["payload"]),
        row_values(EVENT_COLUMNS.len() - 1, 1, 4, chunks),
        chunked_rows(4, chunks)
    )
}

/// Payload bytes (MessagePack) after which a read stops adding events. JSON envelopes
/// are about twice that, which keeps a page's answer within a few MiB.
pub const READ_BUDGET_BYTES: u64 = 4 * 1024 * 1024;

/// How many snapshots to keep: older ones only serve time travel far back, which the
/// log serves anyway.
const SNAPSHOTS_KEPT: i64 = 3;

pub struct SqliteStore {
    sql: SqlStorage,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens the store, migrating the schema to the current version if needed. Runs with
    /// no `.await`, so a migration and its version record commit together.
    pub fn open(sql: SqlStorage) -> Result<Self, StoreError> {
        migrate(&sql, MIGRATIONS).map_err(StoreError)?;
        Ok(Self { sql })
    }

    fn query_events(
        &self,
        sql: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let cursor = self.sql.exec(sql, bindings).map_err(store_err)?;
        cursor
            .raw()
            .map(|row| row.map_err(store_err).and_then(|row| decode_row(&row)))
            .collect()
    }

    /// The rows `sql` selects (with [`select_list`]), each through `f`, until the payloads
    /// read reach [`READ_BUDGET_BYTES`]: a row is taken while the payloads before it total
    /// less, so the first always is. The cursor is read lazily, so rows past the budget
    /// never leave SQLite. (A window function summing `length(payload)` did the same inside
    /// the statement, at the cost of SQLite's window machinery on every read.)
    fn query_within_budget<T>(
        &self,
        sql: &str,
        bindings: Vec<SqlStorageValue>,
        mut f: impl FnMut(StoredEvent, &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let cursor = self.sql.exec(sql, bindings).map_err(store_err)?;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for row in cursor.raw() {
            if bytes >= READ_BUDGET_BYTES {
                break;
            }
            let row = row.map_err(store_err)?;
            let (event, payload) = decode_columns(&row)?;
            bytes += payload.len() as u64;
            out.push(f(event, payload)?);
        }
        Ok(out)
    }

    fn scalar(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Option<i64>, StoreError> {
        scalar(&self.sql, query, bindings).map_err(StoreError)
    }
}

/// Adds an event to an append's rows: the [`EVENT_COLUMNS`] but `payload`, serialized
/// straight from a tuple, then its payload's MessagePack as a BLOB.
fn push_event_row(rows: &mut RowChunks, e: &StoredEvent) -> Result<(), StoreError> {
    let plain = serde_json::to_string(&(
        e.seq,
        &e.event_id,
        &e.event_type,
        e.schema_version,
        e.recorded_at_ms,
        &e.metadata.command_id,
        &e.metadata.correlation_id,
        &e.metadata.causation_id,
        &e.metadata.actor,
    ))
    .map_err(store_err)?;
    rows.push(&plain, &[Some(&codec::encode(&e.data))]);
    Ok(())
}

/// A row selected with [`select_list`] back into an event.
fn decode_row(row: &[SqlStorageValue]) -> Result<StoredEvent, StoreError> {
    let (mut event, payload) = decode_columns(row)?;
    event.data = codec::decode(payload)?;
    Ok(event)
}

/// A row selected with [`select_list`]: the event with its `data` still `null`, and its
/// payload bytes (MessagePack) as stored.
fn decode_columns(row: &[SqlStorageValue]) -> Result<(StoredEvent, &[u8]), StoreError> {
    let [
        seq,
        event_id,
        event_type,
        schema_version,
        payload,
        recorded_at,
        command_id,
        correlation_id,
        causation_id,
        actor,
    ] = row
    else {
        return Err(StoreError(format!(
            "expected {} columns, got {}",
            EVENT_COLUMNS.len(),
            row.len()
        )));
    };
    let SqlStorageValue::Blob(payload) = payload else {
        return Err(StoreError("payload is not a blob".into()));
    };
    let event = StoredEvent {
        seq: integer(seq).map_err(StoreError)? as u64,
        event_id: text(event_id).unwrap_or_default(),
        event_type: text(event_type).unwrap_or_default(),
        schema_version: integer(schema_version).map_err(StoreError)? as u32,
        data: serde_json::Value::Null,
        recorded_at_ms: integer(recorded_at).map_err(StoreError)?,
        metadata: Metadata {
            command_id: text(command_id),
            correlation_id: text(correlation_id),
            causation_id: text(causation_id),
            actor: text(actor),
        },
    };
    Ok((event, payload))
}

/// The outbox: what forwarding to the stream partition needs from the log.
impl SqliteStore {
    /// Records the partition's acknowledgement through `seq` (and resets the retry count).
    pub fn set_forwarded_through(&mut self, seq: u64) -> Result<(), StoreError> {
        self.sql
            .exec(
                "UPDATE outbox SET forwarded_through = ?, attempts = 0",
                vec![int(seq)],
            )
            .map_err(store_err)?;
        Ok(())
    }

    /// Counts a failed forwarding attempt; returns how many failed in a row.
    pub fn forward_failed(&mut self) -> Result<u32, StoreError> {
        self.sql
            .exec("UPDATE outbox SET attempts = attempts + 1", None)
            .map_err(store_err)?;
        Ok(self
            .scalar("SELECT attempts FROM outbox", vec![])?
            .unwrap_or(1) as u32)
    }

    /// Up to `limit` events the partition has not acknowledged (after the outbox's
    /// `forwarded_through`), as they are forwarded: payloads as the stored MessagePack
    /// bytes, untouched. Bounded by [`READ_BUDGET_BYTES`] like every read. One statement:
    /// the outbox's mark is read inside it.
    pub fn read_unforwarded(
        &self,
        limit: usize,
    ) -> Result<Vec<stream::ForwardedEvent>, StoreError> {
        self.query_within_budget(
            &format!(
                "SELECT {} FROM events
                 WHERE seq > (SELECT forwarded_through FROM outbox)
                 ORDER BY seq LIMIT ?",
                select_list()
            ),
            vec![int(limit as u64)],
            |event, payload| {
                Ok(stream::ForwardedEvent {
                    seq: event.seq,
                    event_id: event.event_id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    data_msgpack: payload.to_vec(),
                    recorded_at_ms: event.recorded_at_ms,
                    metadata: event.metadata,
                })
            },
        )
    }
}

impl EventStore for SqliteStore {
    fn version(&self) -> Result<u64, StoreError> {
        Ok(self
            .scalar("SELECT max(seq) FROM events", vec![])?
            .unwrap_or(0) as u64)
    }

    fn append(
        &mut self,
        events: &[StoredEvent],
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError> {
        let (key, hash) = idempotency.map(|i| (i.key, i.fingerprint)).unzip();
        if events.is_empty() {
            // A command that decided nothing: remember its key, so a retry after the
            // state has moved on still answers the original (empty) result.
            if let (Some(key), Some(hash)) = (key, hash) {
                self.sql
                    .exec(
                        "INSERT INTO idempotent_noops (idempotency_key, request_hash, version)
                         VALUES (?, ?, (SELECT coalesce(max(seq), 0) FROM events))",
                        vec![key.into(), hash.into()],
                    )
                    .map_err(store_err)?;
            }
            return Ok(());
        }
        let mut rows = RowChunks::new(CHUNK_BYTES);
        for event in events {
            push_event_row(&mut rows, event)?;
        }
        // One statement: all rows, with their idempotency record, or none. It inserts only
        // if the log still ends right before the first new seq, so the store itself keeps
        // the log dense even if a caller's idea of the version were stale; the primary key
        // refuses a taken seq.
        let first = events[0].seq;
        let cursor = self
            .sql
            .exec(&append_statement(rows.len()), {
                let mut bindings = vec![key.into(), hash.into(), int(first - 1)];
                bindings.extend(rows.into_bindings());
                bindings
            })
            .map_err(store_err)?;
        // The guard holds for every row or for none, so nothing written means the log did
        // not end where the caller thought. (`rows_written` also counts index entries, so
        // it is compared with zero, not with the number of events.)
        if cursor.rows_written() == 0 {
            return Err(StoreError(format!(
                "append at seq {first} refused: the log does not end at seq {}",
                first - 1
            )));
        }
        Ok(())
    }

    fn read(&self, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError> {
        // Both bounds always apply: after < seq < before. A page also stops once its
        // payloads pass READ_BUDGET_BYTES (it always holds at least one event), so a
        // listing of 10,000 large events cannot exhaust the object's memory; callers page
        // on from the last seq they got.
        let before = int(query.before.unwrap_or(crate::params::MAX_SAFE_INTEGER));
        let order = match query.direction {
            Direction::Forward => "ASC",
            Direction::Backward => "DESC",
        };
        self.query_within_budget(
            &format!(
                "SELECT {} FROM events WHERE seq > ? AND seq < ? ORDER BY seq {order} LIMIT ?",
                select_list()
            ),
            vec![int(query.after), before, int(query.limit as u64)],
            |mut event, payload| {
                event.data = codec::decode(payload)?;
                Ok(event)
            },
        )
    }

    fn idempotent_result(&self, key: &str) -> Result<Option<IdempotentResult>, StoreError> {
        let events = self.query_events(
            &format!(
                "SELECT {} FROM events WHERE idempotency_key = ? ORDER BY seq",
                select_list()
            ),
            vec![key.into()],
        )?;
        let (sql, version) = match events.last() {
            Some(last) => (
                "SELECT request_hash, NULL FROM events WHERE idempotency_key = ? LIMIT 1",
                Some(last.seq),
            ),
            None => (
                "SELECT request_hash, version FROM idempotent_noops WHERE idempotency_key = ?",
                None,
            ),
        };
        let cursor = self.sql.exec(sql, vec![key.into()]).map_err(store_err)?;
        let Some(row) = cursor.raw().next() else {
            return Ok(None);
        };
        let row = row.map_err(store_err)?;
        let version = match (version, row.get(1)) {
            (Some(version), _) => version,
            (None, Some(value)) => integer(value).map_err(StoreError)? as u64,
            (None, None) => return Ok(None),
        };
        Ok(Some(IdempotentResult {
            fingerprint: row.first().and_then(text).unwrap_or_default(),
            version,
            events,
        }))
    }

    fn seq_at_time(&self, unix_ms: i64) -> Result<u64, StoreError> {
        Ok(self
            .scalar(
                "SELECT max(seq) FROM events WHERE recorded_at <= ?",
                vec![unix_ms.into()],
            )?
            .unwrap_or(0) as u64)
    }

    fn latest_snapshot(&self, at_or_below: u64) -> Result<Option<Snapshot>, StoreError> {
        let cursor = self
            .sql
            .exec(
                "SELECT seq, state FROM snapshots WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                vec![int(at_or_below)],
            )
            .map_err(store_err)?;
        match cursor.raw().next() {
            Some(row) => match row.map_err(store_err)?.as_slice() {
                [seq, SqlStorageValue::Blob(state)] => Ok(Some(Snapshot {
                    seq: integer(seq).map_err(StoreError)? as u64,
                    state: state.clone(),
                })),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO snapshots (seq, state) VALUES (?, ?)",
                vec![int(snapshot.seq), snapshot.state.into()],
            )
            .map_err(store_err)?;
        self.sql
            .exec(
                "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
                vec![SNAPSHOTS_KEPT.into()],
            )
            .map_err(store_err)?;
        Ok(())
    }
}
