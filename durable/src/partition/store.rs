//! The SQLite side of a stream partition: the hot table of events by offset, each
//! aggregate's watermark, the partition's head and pause switch, and the index of
//! archived segments.
//!
//! Every method is synchronous, so an append — watermark check, insert, watermark and
//! head update — runs with no `.await` and commits as one unit.

use domain::Metadata;
use stream::{
    Admission, ForwardAck, ForwardBatch, ForwardRefusal, ForwardedEvent, SegmentEvent, StreamFilter,
};
use worker::{SqlStorage, SqlStorageValue};

use crate::sql::{
    CHUNK_BYTES, RowChunks, SqlError, chunked_rows, int, integer, migrate, plain_columns,
    row_values, scalar, text,
};

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
    // Each event's envelope as MessagePack pages carry it, encoded once when the event is
    // appended: a MessagePack page is then the stored bytes spliced together
    // (`PartitionStore::read_packed`), with no decoding and re-encoding per event and per
    // read. Rows appended before this migration have none and are read the slow way.
    "
ALTER TABLE events ADD COLUMN envelope BLOB;
",
];

/// The columns of `events`, in the one order reads select, [`decode_row`] reads and
/// [`push_row`] writes (the payload apart, as a BLOB).
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

/// One `INSERT` of the rows in `chunks` [`RowChunks`] (`?1`…): one statement, so the rows
/// go in all or none, while no bound string or BLOB has to hold them all.
fn insert_statement(chunks: usize) -> String {
    format!(
        "INSERT INTO events ({}, payload, envelope) SELECT {} FROM {}",
        plain_columns(&COLUMNS, &["payload"]),
        row_values(COLUMNS.len() - 1, 2, 1, chunks),
        chunked_rows(1, chunks)
    )
}

/// Adds an event to an append's rows: the [`COLUMNS`] but `payload`, serialized straight
/// from a tuple, then as BLOBs its payload and its envelope's MessagePack (NULL if the payload
/// does not decode, so that reading the event reports it).
fn push_row(
    rows: &mut RowChunks,
    partition: u32,
    offset: u64,
    batch: &ForwardBatch,
    e: &ForwardedEvent,
) -> Result<(), SqlError> {
    let position = domain::Position { partition, offset };
    let envelope = e
        .envelope(&batch.aggregate_type, &batch.aggregate_id, Some(position))
        .ok()
        .map(|envelope| domain::codec::encode(&envelope));
    let plain = (
        offset,
        &batch.aggregate_type,
        &batch.aggregate_id,
        e.seq,
        &e.event_id,
        &e.event_type,
        e.schema_version,
        e.recorded_at_ms,
        &e.metadata.command_id,
        &e.metadata.correlation_id,
        &e.metadata.causation_id,
        &e.metadata.actor,
    );
    let plain = serde_json::to_string(&plain).map_err(err)?;
    rows.push(&plain, &[Some(&e.data_msgpack), envelope.as_deref()]);
    Ok(())
}

/// A row selected with [`select_list`] back into an event.
fn decode_row(row: &[SqlStorageValue]) -> Result<SegmentEvent, SqlError> {
    let [
        offset,
        aggregate_type,
        aggregate_id,
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
        return Err(format!(
            "expected {} columns, got {}",
            COLUMNS.len(),
            row.len()
        ));
    };
    let SqlStorageValue::Blob(payload) = payload else {
        return Err("payload is not a blob".into());
    };
    Ok(SegmentEvent {
        offset: integer(offset)? as u64,
        aggregate_type: text(aggregate_type).unwrap_or_default(),
        aggregate_id: text(aggregate_id).unwrap_or_default(),
        event: ForwardedEvent {
            seq: integer(seq)? as u64,
            event_id: text(event_id).unwrap_or_default(),
            event_type: text(event_type).unwrap_or_default(),
            schema_version: integer(schema_version)? as u32,
            data_msgpack: payload.clone(),
            recorded_at_ms: integer(recorded_at)?,
            metadata: Metadata {
                command_id: text(command_id),
                correlation_id: text(correlation_id),
                causation_id: text(causation_id),
                actor: text(actor),
            },
        },
    })
}

/// Payload bytes after which a read page stops (it always holds at least one event).
pub const READ_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Rows a MessagePack page reads per statement ([`PartitionStore::read_packed`]), their
/// envelopes concatenated inside SQLite.
const PACKED_CHUNK_ROWS: usize = 1024;

/// The largest envelope concatenated with others ([`PartitionStore::read_packed`]): a
/// chunk of [`PACKED_CHUNK_ROWS`] such envelopes (1.5 MiB) stays under SQLite-backed
/// objects' 2 MB limit on a string or BLOB. A chunk holding a larger one is read row by row.
const PACKED_ROW_BYTES: usize = 1536;

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

/// A page of a partition as stored MessagePack envelopes ([`PartitionStore::read_packed`]).
pub struct PackedPage {
    /// The envelopes' MessagePack, concatenated in offset order: the body of an array of
    /// `count` envelopes.
    pub envelopes: Vec<u8>,
    pub count: usize,
    /// As in [`HotPage`].
    pub next_after: Option<u64>,
}

/// A range of the hot table about to be sealed: its events and, beside each, its stored
/// envelope if it has one.
#[derive(Default)]
pub struct SealedRange {
    pub events: Vec<SegmentEvent>,
    pub envelopes: Vec<Option<Vec<u8>>>,
}

/// A hot page's cursor: the last offset the page looked at — its last event if the page
/// is `full` (it reached its limit or its byte budget), else the end of the scan — or
/// `None` once that is the head (nothing more to read now).
fn page_cursor(last: Option<u64>, full: bool, scan_end: u64, head: u64) -> Option<u64> {
    let looked_at = match last {
        Some(last) if full => last,
        _ => scan_end,
    };
    (looked_at < head).then_some(looked_at)
}

/// Whether a chunk's concatenated envelopes are in offset order: `offsets` is the same
/// pass's `group_concat(stream_offset, ',')` (a SQLite TEXT value), and it must hold
/// `rows` offsets, each above the one before, the first above `after`. Anything else
/// (another value, a count that differs, a number that does not parse) is `false`, and
/// the chunk is then read row by row.
fn ascending_offsets(offsets: &SqlStorageValue, after: u64, rows: usize) -> bool {
    let SqlStorageValue::String(offsets) = offsets else {
        return false;
    };
    ascending(offsets, after, rows)
}

/// [`ascending_offsets`] on the text itself: `rows` comma-separated decimal offsets, each
/// above the one before, the first above `after`.
fn ascending(offsets: &str, after: u64, rows: usize) -> bool {
    let mut previous = after;
    let mut seen = 0;
    for offset in offsets.split(',') {
        match offset.parse::<u64>() {
            Ok(offset) if offset > previous => previous = offset,
            _ => return false,
        }
        seen += 1;
    }
    seen == rows
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
        partition: u32,
        batch: &ForwardBatch,
    ) -> Result<Result<(ForwardAck, Vec<SegmentEvent>), ForwardRefusal>, SqlError> {
        let aggregate = format!("{}:{}", batch.aggregate_type, batch.aggregate_id);
        // The switch, the head and the aggregate's watermark in one statement.
        let cursor = self
            .sql
            .exec(
                "SELECT paused, head, (SELECT seq FROM watermarks WHERE aggregate = ?)
                 FROM partition_state",
                vec![aggregate.as_str().into()],
            )
            .map_err(err)?;
        let row = cursor
            .raw()
            .next()
            .ok_or("the partition has no state row")?
            .map_err(err)?;
        let [paused, head, watermark] = row.as_slice() else {
            return Err(format!("expected 3 columns, got {}", row.len()));
        };
        if integer(paused)? != 0 {
            return Ok(Err(ForwardRefusal::Paused));
        }
        let head = integer(head)? as u64;
        let watermark = match watermark {
            SqlStorageValue::Null => 0,
            seq => integer(seq)? as u64,
        };
        let skip = match batch.admit(watermark) {
            Admission::Gap { expected } => return Ok(Err(ForwardRefusal::Gap { expected })),
            Admission::Append { skip } => skip,
        };
        let accepted_through = batch.accepted_through(watermark);
        let fresh = &batch.events[skip.min(batch.events.len())..];
        if fresh.is_empty() {
            return Ok(Ok((ForwardAck { accepted_through }, Vec::new())));
        }
        // The rows are bound in chunks of at most CHUNK_BYTES of JSON and of BLOB each
        // (SQLite-backed objects refuse a string or BLOB over 2 MB) to one statement, so
        // the batch goes in whole or not at all.
        let mut rows = RowChunks::new(CHUNK_BYTES);
        for (i, e) in fresh.iter().enumerate() {
            push_row(&mut rows, partition, head + 1 + i as u64, batch, e)?;
        }
        self.sql
            .exec(&insert_statement(rows.len()), rows.into_bindings())
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
        let (head, scan_end, conditions, bindings) = self.page_conditions(after, limit, filter)?;
        // Row by row, each event's columns crossing into wasm: a page as one value (a JSON
        // array or a concatenated BLOB) would cost fewer crossings, but SQLite-backed objects
        // refuse strings and BLOBs over 2 MB, and a page can be far larger.
        let query = format!(
            "SELECT {} FROM events WHERE {} ORDER BY stream_offset LIMIT ?3",
            select_list(),
            conditions.join(" AND ")
        );
        let cursor = self.sql.exec(&query, bindings).map_err(err)?;
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut cut_short = false;
        for row in cursor.raw() {
            if bytes >= READ_BUDGET_BYTES {
                cut_short = true;
                break;
            }
            let event = decode_row(&row.map_err(err)?)?;
            bytes += event.event.data_msgpack.len();
            events.push(event);
        }
        let full = cut_short || events.len() >= limit;
        let next_after = page_cursor(events.last().map(|e| e.offset), full, scan_end, head);
        Ok(HotPage { events, next_after })
    }

    /// [`Self::read`]'s page as MessagePack envelopes spliced from the stored bytes: the
    /// events' envelopes concatenated (a MessagePack array's body), their count, and the
    /// cursor. `None` if a row of the page has no stored envelope (appended before the
    /// column existed, or its payload did not decode): then read it with [`Self::read`].
    pub fn read_packed(
        &self,
        after: u64,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<Option<PackedPage>, SqlError> {
        let (head, scan_end, conditions, mut bindings) =
            self.page_conditions(after, limit, filter)?;
        let row_query = format!(
            "SELECT stream_offset, envelope, length(payload) AS payload_bytes FROM events \
             WHERE {} ORDER BY stream_offset LIMIT ?3",
            conditions.join(" AND ")
        );
        // A chunk of rows concatenated inside SQLite: one value crosses into wasm instead
        // of a JS array and an ArrayBuffer per row, which were most of a page's time. Only
        // envelopes of at most PACKED_ROW_BYTES are concatenated, so the value stays under
        // the 2 MB that SQLite-backed objects allow a string or BLOB; a chunk with a larger
        // one, or whose payloads would reach the page's budget, is read row by row.
        // `group_concat` keeps a BLOB's bytes (the database is UTF-8, so nothing is
        // transcoded) and the CAST takes them back as a BLOB. SQLite documents the order
        // of a concatenation as arbitrary unless it has its own `ORDER BY`, whatever the
        // subquery's order; but that `ORDER BY` runs every chunk through a sorter, which
        // doubled the chunk's time (rusqlite, 250,000 rows of 330 bytes: 0.20–0.34 s
        // against 0.10 s). So the order is checked instead of imposed: the same pass
        // concatenates the offsets, one aggregate step per row for both, and a chunk whose
        // offsets do not ascend is read row by row ([`ascending_offsets`]).
        let chunk = format!(
            "SELECT count(*), count(envelope), \
                    count(CASE WHEN length(envelope) > {PACKED_ROW_BYTES} THEN 1 END), \
                    max(stream_offset), coalesce(sum(payload_bytes), 0), \
                    CAST(group_concat(CASE WHEN length(envelope) <= {PACKED_ROW_BYTES} \
                                      THEN envelope END, '') AS BLOB), \
                    group_concat(stream_offset, ',') \
             FROM ({row_query})"
        );
        let mut envelopes = Vec::new();
        let mut count = 0;
        let mut last = None;
        let mut bytes = 0;
        let mut cut_short = false;
        'page: while count < limit {
            let want = (limit - count).min(PACKED_CHUNK_ROWS);
            bindings[0] = int(last.unwrap_or(after));
            bindings[2] = int(want as u64);
            let summary = self
                .sql
                .exec(&chunk, bindings.clone())
                .map_err(err)?
                .raw()
                .next()
                .ok_or("a chunk's summary has no row")?
                .map_err(err)?;
            let [
                rows,
                with_envelope,
                large,
                chunk_last,
                payload_bytes,
                concatenated,
                offsets,
            ] = summary.as_slice()
            else {
                return Err(format!("expected 7 columns, got {}", summary.len()));
            };
            let rows = integer(rows)? as usize;
            if rows == 0 {
                break;
            }
            if integer(with_envelope)? as usize != rows {
                return Ok(None); // appended before envelopes were stored: the slow way
            }
            let payload_bytes = integer(payload_bytes)? as usize;
            match concatenated {
                SqlStorageValue::Blob(concatenated)
                    if integer(large)? == 0
                        && bytes + payload_bytes < READ_BUDGET_BYTES
                        && ascending_offsets(offsets, last.unwrap_or(after), rows) =>
                {
                    envelopes.extend_from_slice(concatenated);
                    count += rows;
                    bytes += payload_bytes;
                    last = Some(integer(chunk_last)? as u64);
                }
                _ => {
                    for row in self
                        .sql
                        .exec(&row_query, bindings.clone())
                        .map_err(err)?
                        .raw()
                    {
                        if bytes >= READ_BUDGET_BYTES {
                            cut_short = true;
                            break 'page;
                        }
                        let row = row.map_err(err)?;
                        let [offset, envelope, payload_bytes] = row.as_slice() else {
                            return Err(format!("expected 3 columns, got {}", row.len()));
                        };
                        let SqlStorageValue::Blob(envelope) = envelope else {
                            return Ok(None);
                        };
                        envelopes.extend_from_slice(envelope);
                        count += 1;
                        last = Some(integer(offset)? as u64);
                        bytes += integer(payload_bytes)? as usize;
                    }
                }
            }
            if rows < want {
                break; // the scan window is exhausted
            }
        }
        let next_after = page_cursor(last, cut_short || count >= limit, scan_end, head);
        Ok(Some(PackedPage {
            envelopes,
            count,
            next_after,
        }))
    }

    /// The head, the end of the scan window, and the `WHERE` conditions with their bindings
    /// (`?1` after, `?2` scan end, `?3` limit, then the filter's) of a page read.
    fn page_conditions(
        &self,
        after: u64,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<(u64, u64, Vec<String>, Vec<SqlStorageValue>), SqlError> {
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
        Ok((head, scan_end, conditions, bindings))
    }

    /// The events `first..=last` of the hot table, for sealing into a segment, each with
    /// its stored envelope (`None` for rows appended before envelopes were stored).
    pub fn range(&self, first: u64, last: u64) -> Result<SealedRange, SqlError> {
        let cursor = self
            .sql
            .exec(
                &format!(
                    "SELECT {}, envelope FROM events WHERE stream_offset BETWEEN ? AND ? ORDER BY stream_offset",
                    select_list()
                ),
                vec![int(first), int(last)],
            )
            .map_err(err)?;
        let mut range = SealedRange::default();
        for row in cursor.raw() {
            let mut row = row.map_err(err)?;
            let envelope = match row.pop() {
                Some(SqlStorageValue::Blob(bytes)) => Some(bytes),
                _ => None,
            };
            range.events.push(decode_row(&row)?);
            range.envelopes.push(envelope);
        }
        Ok(range)
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

#[cfg(test)]
mod tests {
    use super::ascending;

    #[test]
    fn a_chunk_is_spliced_only_when_its_offsets_ascend_from_the_cursor() {
        assert!(ascending("5,6,9", 4, 3));
        assert!(ascending("1", 0, 1));
        // Out of order, repeated, at or below the cursor: read row by row.
        assert!(!ascending("5,9,6", 4, 3));
        assert!(!ascending("5,5,6", 4, 3));
        assert!(!ascending("4,5,6", 4, 3));
        // Not the chunk's row count, or not numbers.
        assert!(!ascending("5,6", 4, 3));
        assert!(!ascending("5,6,7,8", 4, 3));
        assert!(!ascending("", 4, 1));
        assert!(!ascending("5,x,7", 4, 3));
    }
}
