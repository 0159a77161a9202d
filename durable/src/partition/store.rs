//! The SQLite side of a stream partition: the hot table of events by offset, each
//! aggregate's watermark, the partition's head and pause switch, and the index of
//! archived segments.
//!
//! Every method is synchronous, so an append — watermark check, insert, watermark and
//! head update — runs with no `.await` and commits as one unit.

use domain::Metadata;
use serde_json::json;
use stream::{
    Admission, ForwardAck, ForwardBatch, ForwardRefusal, ForwardedEvent, SegmentEvent, StreamFilter,
};
use worker::{SqlStorage, SqlStorageValue};

use crate::sql::{SqlError, int, integer, migrate, scalar, text};

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE events (
    stream_offset   INTEGER PRIMARY KEY,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         BLOB    NOT NULL,
    recorded_at     INTEGER NOT NULL,
    command_id      TEXT,
    correlation_id  TEXT,
    causation_id    TEXT,
    actor           TEXT
);
CREATE TABLE watermarks (
    aggregate TEXT    PRIMARY KEY,
    seq       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE partition_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    head   INTEGER NOT NULL,
    paused INTEGER NOT NULL
);
INSERT INTO partition_state (id, head, paused) VALUES (1, 0, 0);
CREATE TABLE segments (
    first_offset INTEGER PRIMARY KEY,
    last_offset  INTEGER NOT NULL,
    bytes        INTEGER NOT NULL
);
",
    // Traces (`GET /v1/trace/{correlation_id}`): a causal chain is its root event and the
    // events correlated to it.
    "
CREATE INDEX events_by_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_by_event_id ON events (event_id);
",
];

/// The columns of `events`, in the one order the statements, [`row_json`] and
/// [`JsonRow`] use.
const COLUMNS: [&str; 13] = [
    "stream_offset",
    "aggregate_type",
    "aggregate_id",
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

fn select_list() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| COLUMNS.join(", "))
}

fn insert_statement() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let values: Vec<String> = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| match *column {
                "payload" => format!("unhex(value ->> {i})"),
                _ => format!("value ->> {i}"),
            })
            .collect();
        format!(
            "INSERT INTO events ({}) SELECT {} FROM json_each(?1)",
            select_list(),
            values.join(", ")
        )
    })
}

fn row_json(offset: u64, batch: &ForwardBatch, e: &ForwardedEvent) -> serde_json::Value {
    json!([
        offset,
        batch.aggregate_type,
        batch.aggregate_id,
        e.seq,
        e.event_id,
        e.event_type,
        e.schema_version,
        hex::encode(&e.data_msgpack),
        e.recorded_at_ms,
        e.metadata.command_id,
        e.metadata.correlation_id,
        e.metadata.causation_id,
        e.metadata.actor,
    ])
}

/// The columns as `json_array` arguments, in [`COLUMNS`] order; the payload as hex (JSON has
/// no bytes).
fn json_list() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        COLUMNS
            .iter()
            .map(|c| if *c == "payload" { "hex(payload)" } else { c })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// One row of the hot table as `json_array(json_list())` gives it.
#[derive(serde::Deserialize)]
struct JsonRow(
    u64,
    String,
    String,
    u64,
    String,
    String,
    u32,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl JsonRow {
    fn into_event(self) -> Result<SegmentEvent, SqlError> {
        let JsonRow(
            offset,
            aggregate_type,
            aggregate_id,
            seq,
            event_id,
            event_type,
            schema_version,
            payload,
            recorded_at_ms,
            command_id,
            correlation_id,
            causation_id,
            actor,
        ) = self;
        Ok(SegmentEvent {
            offset,
            aggregate_type,
            aggregate_id,
            event: ForwardedEvent {
                seq,
                event_id,
                event_type,
                schema_version,
                data_msgpack: hex::decode(payload).map_err(err)?,
                recorded_at_ms,
                metadata: Metadata {
                    command_id,
                    correlation_id,
                    causation_id,
                    actor,
                },
            },
        })
    }
}

/// Payload bytes after which a read page stops (it always holds at least one event).
pub const READ_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// How many offsets a filtered read scans at most per page: a filter that matches
/// little still answers quickly, with a page that may be empty and a cursor that moves.
pub const SCAN_WINDOW: u64 = 10_000;

/// What a partition reports about itself (`GET /v1/stream/partitions`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// The newest offset (0 while empty).
    pub head: u64,
    /// The oldest offset still in the hot table; `null` when nothing is hot.
    pub oldest_hot: Option<u64>,
    /// The oldest offset that can be read (archive or hot); `null` while empty.
    pub oldest_retained: Option<u64>,
    /// Events in the hot table, and archived segments.
    pub hot_events: u64,
    pub archived_segments: u64,
    /// Whether forwarding into this partition is paused (operational control).
    pub paused: bool,
}

/// One page read from the hot table.
pub struct HotPage {
    pub events: Vec<SegmentEvent>,
    /// The cursor to read on from: the last offset looked at; `None` when the page
    /// reached the head.
    pub next_after: Option<u64>,
}

pub struct PartitionStore {
    sql: SqlStorage,
}

impl std::fmt::Debug for PartitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionStore").finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> SqlError {
    e.to_string()
}

impl PartitionStore {
    pub fn open(sql: SqlStorage) -> Result<Self, SqlError> {
        migrate(&sql, MIGRATIONS)?;
        Ok(Self { sql })
    }

    fn scalar(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Option<i64>, SqlError> {
        scalar(&self.sql, query, bindings)
    }

    pub fn head(&self) -> Result<u64, SqlError> {
        Ok(self
            .scalar("SELECT head FROM partition_state", vec![])?
            .unwrap_or(0) as u64)
    }

    pub fn paused(&self) -> Result<bool, SqlError> {
        Ok(self
            .scalar("SELECT paused FROM partition_state", vec![])?
            .unwrap_or(0)
            != 0)
    }

    pub fn set_paused(&mut self, paused: bool) -> Result<(), SqlError> {
        self.sql
            .exec(
                "UPDATE partition_state SET paused = ?",
                vec![int(u64::from(paused))],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The oldest offset in the hot table, if any.
    pub fn oldest_hot(&self) -> Result<Option<u64>, SqlError> {
        Ok(self
            .scalar("SELECT min(stream_offset) FROM events", vec![])?
            .map(|o| o as u64))
    }

    pub fn status(&self, partition: u32) -> Result<PartitionStatus, SqlError> {
        let head = self.head()?;
        let oldest_hot = self.oldest_hot()?;
        let oldest_archived = self
            .scalar("SELECT min(first_offset) FROM segments", vec![])?
            .map(|o| o as u64);
        Ok(PartitionStatus {
            partition,
            head,
            oldest_hot,
            oldest_retained: oldest_archived.or(oldest_hot),
            hot_events: self
                .scalar("SELECT count(*) FROM events", vec![])?
                .unwrap_or(0) as u64,
            archived_segments: self
                .scalar("SELECT count(*) FROM segments", vec![])?
                .unwrap_or(0) as u64,
            paused: self.paused()?,
        })
    }

    /// Takes a batch forwarded by an aggregate: refused while paused or after a gap;
    /// otherwise the events past the aggregate's watermark get the next offsets. Returns
    /// the acknowledgement and the events appended (for the live feed).
    pub fn append(
        &mut self,
        batch: &ForwardBatch,
    ) -> Result<Result<(ForwardAck, Vec<SegmentEvent>), ForwardRefusal>, SqlError> {
        if self.paused()? {
            return Ok(Err(ForwardRefusal::Paused));
        }
        let aggregate = format!("{}:{}", batch.aggregate_type, batch.aggregate_id);
        let watermark = self
            .scalar(
                "SELECT seq FROM watermarks WHERE aggregate = ?",
                vec![aggregate.as_str().into()],
            )?
            .unwrap_or(0) as u64;
        let skip = match batch.admit(watermark) {
            Admission::Gap { expected } => return Ok(Err(ForwardRefusal::Gap { expected })),
            Admission::Append { skip } => skip,
        };
        let accepted_through = batch.accepted_through(watermark);
        let fresh = &batch.events[skip.min(batch.events.len())..];
        if fresh.is_empty() {
            return Ok(Ok((ForwardAck { accepted_through }, Vec::new())));
        }
        let head = self.head()?;
        let rows: Vec<_> = fresh
            .iter()
            .enumerate()
            .map(|(i, e)| row_json(head + 1 + i as u64, batch, e))
            .collect();
        self.sql
            .exec(
                insert_statement(),
                vec![serde_json::to_string(&rows).map_err(err)?.into()],
            )
            .map_err(err)?;
        self.sql
            .exec(
                "INSERT INTO watermarks (aggregate, seq) VALUES (?, ?)
                 ON CONFLICT (aggregate) DO UPDATE SET seq = excluded.seq",
                vec![aggregate.as_str().into(), int(accepted_through)],
            )
            .map_err(err)?;
        let new_head = head + fresh.len() as u64;
        self.sql
            .exec("UPDATE partition_state SET head = ?", vec![int(new_head)])
            .map_err(err)?;
        let appended = fresh
            .iter()
            .enumerate()
            .map(|(i, e)| SegmentEvent {
                offset: head + 1 + i as u64,
                aggregate_type: batch.aggregate_type.clone(),
                aggregate_id: batch.aggregate_id.clone(),
                event: e.clone(),
            })
            .collect();
        Ok(Ok((ForwardAck { accepted_through }, appended)))
    }

    /// Reads the hot table after `after`: at most `limit` events matching `filter`,
    /// stopping after [`READ_BUDGET_BYTES`] of payload and, when filtered, after
    /// [`SCAN_WINDOW`] offsets.
    pub fn read(
        &self,
        after: u64,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<HotPage, SqlError> {
        let head = self.head()?;
        let window = if filter.is_everything() {
            limit as u64
        } else {
            SCAN_WINDOW.max(limit as u64)
        };
        let scan_end = after.saturating_add(window).min(head);
        let mut conditions = vec![
            "stream_offset > ?1".to_owned(),
            "stream_offset <= ?2".to_owned(),
        ];
        let mut bindings = vec![int(after), int(scan_end), int(limit as u64)];
        if let Some(aggregate_type) = &filter.aggregate_type {
            bindings.push(aggregate_type.as_str().into());
            conditions.push(format!("aggregate_type = ?{}", bindings.len()));
        }
        if let Some(types) = &filter.event_types {
            bindings.push(serde_json::to_string(types).map_err(err)?.into());
            conditions.push(format!(
                "type IN (SELECT value FROM json_each(?{}))",
                bindings.len()
            ));
        }
        if let Some(since) = filter.since_ms {
            bindings.push(since.into());
            conditions.push(format!("recorded_at >= ?{}", bindings.len()));
        }
        if let Some(until) = filter.until_ms {
            bindings.push(until.into());
            conditions.push(format!("recorded_at < ?{}", bindings.len()));
        }
        if let Some(chain) = &filter.correlation_id {
            bindings.push(chain.as_str().into());
            let n = bindings.len();
            conditions.push(format!("(correlation_id = ?{n} OR event_id = ?{n})"));
        }
        // One row out of SQLite for the whole page (a JSON array of rows), not 13 values per
        // event: each value crossing from the runtime into the Worker's wasm costs more than
        // parsing it (the CPU profile of a projector's catch-up had 20% in row iteration).
        // The payload budget is applied in SQL too: an event is in the page while the
        // payload bytes before it are under READ_BUDGET_BYTES.
        let query = format!(
            "SELECT json_group_array(json_array({})) FILTER (WHERE before < {READ_BUDGET_BYTES}),
                    count(*) FILTER (WHERE before >= {READ_BUDGET_BYTES})
             FROM (SELECT *, sum(length(payload)) OVER (ORDER BY stream_offset) - length(payload) AS before
                   FROM events WHERE {} ORDER BY stream_offset LIMIT ?3)",
            json_list(),
            conditions.join(" AND ")
        );
        let (events, left_out) = self.page_of_rows(&query, bindings)?;
        let cut_short = left_out > 0;
        let last_looked_at = match events.last() {
            Some(last) if cut_short || events.len() >= limit => last.offset,
            _ => scan_end,
        };
        Ok(HotPage {
            events,
            next_after: (last_looked_at < head).then_some(last_looked_at),
        })
    }

    /// The events `first..=last` of the hot table, for sealing into a segment.
    pub fn range(&self, first: u64, last: u64) -> Result<Vec<SegmentEvent>, SqlError> {
        let query = format!(
            "SELECT json_group_array(json_array({})), 0
             FROM (SELECT * FROM events WHERE stream_offset BETWEEN ? AND ? ORDER BY stream_offset)",
            json_list()
        );
        Ok(self.page_of_rows(&query, vec![int(first), int(last)])?.0)
    }

    /// Runs a query answering one row `(JSON array of rows as [`json_list`] lists them,
    /// a count)` and decodes the rows, in the order the array holds them.
    fn page_of_rows(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<(Vec<SegmentEvent>, u64), SqlError> {
        let cursor = self.sql.exec(query, bindings).map_err(err)?;
        let Some(row) = cursor.raw().next() else {
            return Err("an aggregate query answered no row".into());
        };
        let row = row.map_err(err)?;
        let [rows, count] = row.as_slice() else {
            return Err(format!("expected 2 columns, got {}", row.len()));
        };
        let count = integer(count)? as u64;
        let rows = text(rows).unwrap_or_else(|| "[]".to_owned());
        let rows: Vec<JsonRow> = serde_json::from_str(&rows).map_err(err)?;
        let events = rows
            .into_iter()
            .map(JsonRow::into_event)
            .collect::<Result<_, _>>()?;
        Ok((events, count))
    }

    /// Records a segment written to R2 and drops its events from the hot table — one
    /// synchronous step, so a reader sees them either hot or archived, never neither.
    pub fn sealed(&mut self, first: u64, last: u64, bytes: usize) -> Result<(), SqlError> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO segments (first_offset, last_offset, bytes) VALUES (?, ?, ?)",
                vec![int(first), int(last), int(bytes as u64)],
            )
            .map_err(err)?;
        self.sql
            .exec(
                "DELETE FROM events WHERE stream_offset BETWEEN ? AND ?",
                vec![int(first), int(last)],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The archived segment holding `offset`, as `(first, last)`.
    pub fn segment_holding(&self, offset: u64) -> Result<Option<(u64, u64)>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT first_offset, last_offset FROM segments
                 WHERE first_offset <= ?1 AND last_offset >= ?1",
                vec![int(offset)],
            )
            .map_err(err)?;
        match cursor.raw().next() {
            Some(row) => match row.map_err(err)?.as_slice() {
                [first, last] => Ok(Some((integer(first)? as u64, integer(last)? as u64))),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }
}
