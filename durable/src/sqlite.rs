//! The SQLite event store of one aggregate.
//!
//! `events` is the log: a dense `seq` from 1, the event's id, type, schema version, its
//! payload as MessagePack, the recording time and the command's metadata. Each row also
//! carries the `Idempotency-Key` of the command that appended it, so the idempotency
//! record and the events are one write. An append is a single `INSERT … SELECT FROM
//! json_each(?)` statement: SQLite applies a statement entirely or not at all, so a
//! failure can never leave half a command in the log (and one bound parameter keeps
//! us far below the runtime's limit on parameters per statement).

use domain::codec;
use domain::envelope::Metadata;
use domain::store::{
    Direction, EventStore, Idempotency, IdempotentResult, ReadQuery, Snapshot, StoreError,
    StoredEvent,
};
use serde_json::json;
use worker::{SqlStorage, SqlStorageValue};

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
"];

/// The event columns every read returns and every append writes, in this one order: the
/// statements below are generated from it, and [`event_row`] / [`decode_row`] (next to
/// each other, below) are the only code that depends on the order.
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

/// The append statement: inserts the rows of a JSON array of [`event_row`]s (`?1`) with
/// the idempotency key (`?2`) and request fingerprint (`?3`), only if the log ends at
/// `?4`. One statement, so all rows or none.
fn append_statement() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let values: Vec<String> = EVENT_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| match *column {
                "payload" => format!("unhex(value ->> {i})"),
                _ => format!("value ->> {i}"),
            })
            .collect();
        format!(
            "INSERT INTO events ({}, idempotency_key, request_hash)
             SELECT {}, ?2, ?3
             FROM json_each(?1)
             WHERE (SELECT coalesce(max(seq), 0) FROM events) = ?4",
            select_list(),
            values.join(", ")
        )
    })
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

fn int(v: u64) -> SqlStorageValue {
    // seqs and times stay far below 2^53 (checked at the edge), so this is exact.
    SqlStorageValue::Integer(v as i64)
}

impl SqliteStore {
    /// Opens the store, migrating the schema to the current version if needed. Runs with
    /// no `.await`, so a migration and its version record commit together.
    pub fn open(sql: SqlStorage) -> Result<Self, StoreError> {
        let store = Self { sql };
        store
            .sql
            .exec(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
                None,
            )
            .map_err(store_err)?;
        let current = store
            .scalar("SELECT max(version) FROM schema_migrations", vec![])?
            .unwrap_or(0) as usize;
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(current) {
            store.sql.exec(migration, None).map_err(store_err)?;
            store
                .sql
                .exec(
                    "INSERT INTO schema_migrations (version) VALUES (?)",
                    vec![int(version as u64 + 1)],
                )
                .map_err(store_err)?;
        }
        Ok(store)
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

    fn scalar(&self, sql: &str, bindings: Vec<SqlStorageValue>) -> Result<Option<i64>, StoreError> {
        let cursor = self.sql.exec(sql, bindings).map_err(store_err)?;
        match cursor.raw().next() {
            Some(row) => match row.map_err(store_err)?.first() {
                Some(SqlStorageValue::Integer(n)) => Ok(Some(*n)),
                Some(SqlStorageValue::Float(f)) => Ok(Some(*f as i64)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }
}

fn text(v: &SqlStorageValue) -> Option<String> {
    match v {
        SqlStorageValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn integer(v: &SqlStorageValue) -> Result<i64, StoreError> {
    match v {
        SqlStorageValue::Integer(n) => Ok(*n),
        SqlStorageValue::Float(f) => Ok(*f as i64),
        other => Err(StoreError(format!(
            "expected an integer column, got {other:?}"
        ))),
    }
}

/// An event as one JSON array in [`EVENT_COLUMNS`] order (the payload as hex, which
/// the append statement turns back into a BLOB).
fn event_row(e: &StoredEvent) -> serde_json::Value {
    json!([
        e.seq,
        e.event_id,
        e.event_type,
        e.schema_version,
        hex::encode(codec::encode(&e.data)),
        e.recorded_at_ms,
        e.metadata.command_id,
        e.metadata.correlation_id,
        e.metadata.causation_id,
        e.metadata.actor,
    ])
}

/// A row selected with [`select_list`] back into an event.
fn decode_row(row: &[SqlStorageValue]) -> Result<StoredEvent, StoreError> {
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
    Ok(StoredEvent {
        seq: integer(seq)? as u64,
        event_id: text(event_id).unwrap_or_default(),
        event_type: text(event_type).unwrap_or_default(),
        schema_version: integer(schema_version)? as u32,
        data: codec::decode(payload)?,
        recorded_at_ms: integer(recorded_at)?,
        metadata: Metadata {
            command_id: text(command_id),
            correlation_id: text(correlation_id),
            causation_id: text(causation_id),
            actor: text(actor),
        },
    })
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
        let rows: Vec<_> = events.iter().map(event_row).collect();
        // One statement: all rows, with their idempotency record, or none. It inserts only
        // if the log still ends right before the first new seq, so the store itself keeps
        // the log dense even if a caller's idea of the version were stale; the primary key
        // refuses a taken seq.
        let first = events[0].seq;
        let cursor = self
            .sql
            .exec(
                append_statement(),
                vec![
                    serde_json::to_string(&rows).map_err(store_err)?.into(),
                    key.into(),
                    hash.into(),
                    int(first - 1),
                ],
            )
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
        self.query_events(
            &format!(
                "SELECT {columns} FROM (
                     SELECT *, sum(length(payload)) OVER (ORDER BY seq {order} ROWS UNBOUNDED PRECEDING)
                               - length(payload) AS bytes_before
                     FROM (SELECT * FROM events WHERE seq > ? AND seq < ? ORDER BY seq {order} LIMIT ?)
                 )
                 WHERE bytes_before < ?
                 ORDER BY seq {order}",
                columns = select_list()
            ),
            vec![int(query.after), before, int(query.limit as u64), int(READ_BUDGET_BYTES)],
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
            (None, Some(value)) => integer(value)? as u64,
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
                    seq: integer(seq)? as u64,
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
