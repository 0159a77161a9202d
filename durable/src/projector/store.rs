//! The SQLite side of a projector: generations of one projection (the live one and, during
//! a rebuild, the next), each with a checkpoint per partition, its documents, and the
//! per-aggregate watermarks that answer read-your-writes; plus how far the Convex mirror
//! has got in each partition.
//!
//! Every method is synchronous: a page of events — documents, watermarks and the
//! checkpoint — is applied with no `.await` and commits as one unit, so each event is
//! applied exactly once whatever crashes.

use std::collections::BTreeMap;

use domain::EventEnvelope;
use projections::{DocChange, Projection};
use serde::Serialize;
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use crate::sql::{SqlError, int, integer, migrate, scalar, text};

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE generations (
    generation INTEGER PRIMARY KEY,
    version    INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    fault      TEXT,
    started_at INTEGER NOT NULL
);
CREATE TABLE checkpoints (
    generation    INTEGER NOT NULL,
    partition     INTEGER NOT NULL,
    stream_offset INTEGER NOT NULL,
    head          INTEGER NOT NULL,
    PRIMARY KEY (generation, partition)
) WITHOUT ROWID;
CREATE TABLE documents (
    generation INTEGER NOT NULL,
    doc_id     TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    sort_key   INTEGER NOT NULL,
    filters    TEXT    NOT NULL,
    PRIMARY KEY (generation, doc_id)
) WITHOUT ROWID;
CREATE INDEX documents_newest_first ON documents (generation, sort_key DESC, doc_id DESC);
CREATE TABLE watermarks (
    generation INTEGER NOT NULL,
    aggregate  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (generation, aggregate)
) WITHOUT ROWID;
CREATE TABLE mirror_cursors (
    partition     INTEGER PRIMARY KEY,
    stream_offset INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    TEXT
);
",
    "
CREATE VIRTUAL TABLE search USING fts5(title, text, tokenize = 'porter unicode61');
CREATE TABLE search_rows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    generation INTEGER NOT NULL,
    doc_id     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    UNIQUE (generation, doc_id)
);
CREATE INDEX search_rows_by_kind ON search_rows (generation, kind);
",
];

/// FTS5's `bm25()` weights of the `search` columns: a word in a title counts 4× one in
/// the text.
const BM25_WEIGHTS: &str = "4.0, 1.0";

/// A page folded in memory: doc id → (offset of the last event folded into it, body or
/// `None` if deleted); aggregate → highest seq applied; the last offset applied.
type FoldedPage = (
    BTreeMap<String, (u64, Option<Value>)>,
    BTreeMap<String, u64>,
    u64,
);

/// One search hit, best first.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub doc_id: String,
    pub kind: String,
    /// −bm25 (higher is better); comparable within one answer only.
    pub score: f64,
    /// The title with matched terms in `<mark>…</mark>`.
    pub title: String,
    /// Up to ~24 tokens of the text around the matches, matches in `<mark>…</mark>`,
    /// cuts shown as `…`.
    pub snippet: String,
    pub body: Value,
}

/// A generation is `building` (a rebuild catching up beside the live one) or `active`
/// (serving). Either may be *faulted*: a fold failed and it stopped, with the event and
/// the error recorded, until a rebuild replaces it.
pub const ACTIVE: &str = "active";
pub const BUILDING: &str = "building";

fn err(e: impl std::fmt::Display) -> SqlError {
    e.to_string()
}

/// One generation, as the status route shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub generation: u64,
    pub version: u32,
    pub state: String,
    /// `{"error", "event": {type, aggregate_type, aggregate_id, seq, position}}` when a
    /// fold failed.
    pub fault: Option<Value>,
    /// Partition → last offset applied.
    pub checkpoints: BTreeMap<u32, u64>,
    /// Partition → the head it had when last read.
    pub heads: BTreeMap<u32, u64>,
    /// Events seen in partitions but not applied yet (sum over partitions).
    pub lag: u64,
}

/// A stored document.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub doc_id: String,
    pub revision: u64,
    pub body: Value,
}

/// What [`ProjectorStore::apply_page`] did.
pub struct Applied {
    /// The documents changed: (offset of the last event folded into each, the change, its
    /// revision), in offset order, for live sockets and the vector index.
    pub changes: Vec<(u64, DocChange, u64)>,
    /// Whether the checkpoint moved (a filtered page may move it with no event in it).
    pub moved: bool,
}

/// A page read from a partition, as [`ProjectorStore::apply_page`] takes it.
pub struct ReadPage<'a> {
    /// The events the read returned, in offset order.
    pub events: &'a [EventEnvelope],
    /// The last offset the read looked at: the page's cursor (`next_after`), or the head
    /// when it reached it. A filtered read looks at more offsets than it returns.
    pub scanned_through: u64,
    /// The partition's head when it was read.
    pub head: u64,
}

pub struct ProjectorStore {
    sql: SqlStorage,
}

impl std::fmt::Debug for ProjectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectorStore").finish_non_exhaustive()
    }
}

impl ProjectorStore {
    /// Opens the store; a new projector starts with generation 1 active at `version`.
    pub fn open(sql: SqlStorage, version: u32, now_ms: i64) -> Result<Self, SqlError> {
        migrate(&sql, MIGRATIONS)?;
        let store = Self { sql };
        if store
            .scalar("SELECT count(*) FROM generations", vec![])?
            .unwrap_or(0)
            == 0
        {
            store.start_generation(1, version, ACTIVE, now_ms)?;
        }
        Ok(store)
    }

    fn scalar(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Option<i64>, SqlError> {
        scalar(&self.sql, query, bindings)
    }

    fn start_generation(
        &self,
        generation: u64,
        version: u32,
        state: &str,
        now_ms: i64,
    ) -> Result<(), SqlError> {
        self.sql
            .exec(
                "INSERT INTO generations (generation, version, state, started_at) VALUES (?, ?, ?, ?)",
                vec![int(generation), int(u64::from(version)), state.into(), now_ms.into()],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The serving generation and its version.
    pub fn active(&self) -> Result<(u64, u32), SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT generation, version FROM generations WHERE state = 'active' ORDER BY generation DESC LIMIT 1",
                None,
            )
            .map_err(err)?;
        match cursor.raw().next() {
            Some(row) => match row.map_err(err)?.as_slice() {
                [g, v] => Ok((integer(g)? as u64, integer(v)? as u32)),
                _ => Err("bad generations row".into()),
            },
            None => Err("no serving generation".into()),
        }
    }

    /// The generations still fed events: the active one and one being built, unless a
    /// fold error stopped them.
    pub fn fed_generations(&self) -> Result<Vec<u64>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT generation FROM generations WHERE state IN ('active', 'building') AND fault IS NULL ORDER BY generation",
                None,
            )
            .map_err(err)?;
        cursor
            .raw()
            .map(|row| integer(row.map_err(err)?.first().ok_or("no column")?).map(|g| g as u64))
            .collect()
    }

    /// Starts building the next generation at `version` from offset 0, replacing any
    /// build in progress. Returns its number.
    pub fn begin_rebuild(&mut self, version: u32, now_ms: i64) -> Result<u64, SqlError> {
        for building in self.generations_in(BUILDING)? {
            self.drop_generation(building)?;
        }
        let next = self
            .scalar("SELECT max(generation) FROM generations", vec![])?
            .unwrap_or(0) as u64
            + 1;
        self.start_generation(next, version, BUILDING, now_ms)?;
        Ok(next)
    }

    fn generations_in(&self, state: &str) -> Result<Vec<u64>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT generation FROM generations WHERE state = ?",
                vec![state.into()],
            )
            .map_err(err)?;
        cursor
            .raw()
            .map(|row| integer(row.map_err(err)?.first().ok_or("no column")?).map(|g| g as u64))
            .collect()
    }

    /// A built generation takes over: one synchronous step, so every read sees either the
    /// old documents or the new ones. The old generation's rows are dropped.
    pub fn take_over(&mut self, generation: u64) -> Result<(), SqlError> {
        let old: Vec<u64> = self
            .all_generations()?
            .into_iter()
            .filter(|g| *g != generation)
            .collect();
        self.sql
            .exec(
                "UPDATE generations SET state = 'active' WHERE generation = ?",
                vec![int(generation)],
            )
            .map_err(err)?;
        for g in old {
            self.drop_generation(g)?;
        }
        // The mirror follows the serving generation: send it every document again.
        self.sql
            .exec("DELETE FROM mirror_cursors", None)
            .map_err(err)?;
        Ok(())
    }

    fn all_generations(&self) -> Result<Vec<u64>, SqlError> {
        let cursor = self
            .sql
            .exec("SELECT generation FROM generations", None)
            .map_err(err)?;
        cursor
            .raw()
            .map(|row| integer(row.map_err(err)?.first().ok_or("no column")?).map(|g| g as u64))
            .collect()
    }

    fn drop_generation(&mut self, generation: u64) -> Result<(), SqlError> {
        self.sql
            .exec(
                "DELETE FROM search WHERE rowid IN (SELECT id FROM search_rows WHERE generation = ?)",
                vec![int(generation)],
            )
            .map_err(err)?;
        for table in [
            "search_rows",
            "documents",
            "watermarks",
            "checkpoints",
            "generations",
        ] {
            self.sql
                .exec(
                    &format!("DELETE FROM {table} WHERE generation = ?"),
                    vec![int(generation)],
                )
                .map_err(err)?;
        }
        Ok(())
    }

    /// The last offset applied from `partition` by `generation`.
    pub fn checkpoint(&self, generation: u64, partition: u32) -> Result<u64, SqlError> {
        Ok(self
            .scalar(
                "SELECT stream_offset FROM checkpoints WHERE generation = ? AND partition = ?",
                vec![int(generation), int(u64::from(partition))],
            )?
            .unwrap_or(0) as u64)
    }

    /// Whether `generation` has stopped on a fold error.
    pub fn faulted(&self, generation: u64) -> Result<bool, SqlError> {
        Ok(self
            .scalar(
                "SELECT fault IS NOT NULL FROM generations WHERE generation = ?",
                vec![int(generation)],
            )?
            .unwrap_or(1)
            != 0)
    }

    /// Applies a page read from `partition` to `generation`: each event with an offset past
    /// the checkpoint is folded, its documents written, its aggregate's watermark raised,
    /// and the checkpoint moved — all in this one synchronous step. A fold error stops the
    /// generation (`faulted`, with the event and error); what came before it stays applied.
    /// Once every event is applied the checkpoint moves to the page's
    /// [`ReadPage::scanned_through`], past the events a filtered read
    /// ([`Projection::aggregate_type`]) left out.
    /// Returns what changed ([`Applied`]).
    pub fn apply_page(
        &mut self,
        projection: &dyn Projection,
        generation: u64,
        partition: u32,
        page: ReadPage<'_>,
        max_document_bytes: usize,
    ) -> Result<Applied, SqlError> {
        let ReadPage {
            events,
            scanned_through,
            head,
        } = page;
        let checkpoint = self.checkpoint(generation, partition)?;
        // The page is folded in memory first: each document touched is read from storage
        // once, folded through every event of the page, and written once at the end (with
        // its search entry); watermarks likewise. Still one synchronous step with the
        // checkpoint, so the page applies entirely or not at all. Document by document
        // first (`Projection::apply_events`: one decode and encode of a body per page); if
        // an event cannot be folded or a document outgrows the limit, event by event, so
        // the generation faults at that exact event with everything before it applied.
        // Sizes are checked on the bodies written: a document that passes the limit only
        // in the middle of a page and is back under it at the end is written, not a fault
        // (only written bodies reach readers and Convex).
        let (folded_docs, watermarks, applied_through) = match self.fold_by_document(
            projection,
            generation,
            events,
            checkpoint,
            max_document_bytes,
        )? {
            Some(folded) => folded,
            None => self.fold_by_event(
                projection,
                generation,
                events,
                checkpoint,
                max_document_bytes,
            )?,
        };
        // Every event of the page applied (none faulted): the checkpoint moves to the end
        // of what the partition looked at, past events a filtered read left out.
        let last = events.last().and_then(|e| e.position).map(|p| p.offset);
        let applied_through = if last.is_none_or(|last| applied_through >= last) {
            applied_through.max(scanned_through)
        } else {
            applied_through
        };
        let mut changes = Vec::with_capacity(folded_docs.len());
        for (doc_id, (offset, body)) in folded_docs {
            let change = DocChange { doc_id, body };
            let revision = self.write(projection, generation, &change)?;
            changes.push((offset, change, revision));
        }
        changes.sort_by_key(|(offset, _, _)| *offset);
        for (aggregate, seq) in watermarks {
            self.sql
                .exec(
                    "INSERT INTO watermarks (generation, aggregate, seq) VALUES (?, ?, ?)
                     ON CONFLICT (generation, aggregate) DO UPDATE SET seq = max(seq, excluded.seq)",
                    vec![int(generation), aggregate.into(), int(seq)],
                )
                .map_err(err)?;
        }
        self.sql
            .exec(
                "INSERT INTO checkpoints (generation, partition, stream_offset, head) VALUES (?, ?, ?, ?)
                 ON CONFLICT (generation, partition) DO UPDATE SET stream_offset = excluded.stream_offset, head = max(head, excluded.head)",
                vec![int(generation), int(u64::from(partition)), int(applied_through), int(head)],
            )
            .map_err(err)?;
        Ok(Applied {
            changes,
            moved: applied_through > checkpoint,
        })
    }

    /// The page folded event by event up to the first event that cannot be folded (which
    /// faults the generation): documents (offset of the last event folded into each, body),
    /// watermarks per aggregate, and the last offset applied.
    fn fold_by_event(
        &mut self,
        projection: &dyn Projection,
        generation: u64,
        events: &[EventEnvelope],
        checkpoint: u64,
        max_document_bytes: usize,
    ) -> Result<FoldedPage, SqlError> {
        let mut folded_docs: BTreeMap<String, (u64, Option<Value>)> = BTreeMap::new();
        let mut watermarks: BTreeMap<String, u64> = BTreeMap::new();
        let mut applied_through = checkpoint;
        for event in events {
            let Some(offset) = event.position.map(|p| p.offset) else {
                return Err("an event from the stream without a position".into());
            };
            if offset <= applied_through {
                continue; // already applied (a concurrent catch-up got here first)
            }
            let folded = projections::fold_event(projection, event, |doc_id| {
                match folded_docs.get(doc_id) {
                    Some((_, body)) => body.clone(),
                    None => self.document(generation, doc_id).ok().flatten().map(|d| d.body),
                }
            })
            .and_then(|changes| {
                // A document must fit where read models go (Convex: 1 MiB per document).
                match changes.iter().find_map(|c| {
                    let size = c.body.as_ref()?.to_string().len();
                    (size > max_document_bytes).then_some((c.doc_id.clone(), size))
                }) {
                    Some((doc_id, size)) => Err(projections::FoldError::new(
                        event,
                        format!(
                            "document `{doc_id}` would be {size} bytes, over the limit of {max_document_bytes} (PROJECTION_MAX_DOCUMENT_BYTES)"
                        ),
                    )),
                    None => Ok(changes),
                }
            });
            let folded = match folded {
                Ok(folded) => folded,
                Err(error) => {
                    let fault = serde_json::json!({
                        "error": error.to_string(),
                        "event": {
                            "type": event.event_type,
                            "aggregate_type": event.aggregate_type,
                            "aggregate_id": event.aggregate_id,
                            "seq": event.seq,
                            "position": event.position,
                        },
                    });
                    self.sql
                        .exec(
                            "UPDATE generations SET fault = ? WHERE generation = ?",
                            vec![fault.to_string().into(), int(generation)],
                        )
                        .map_err(err)?;
                    break;
                }
            };
            for change in folded {
                folded_docs.insert(change.doc_id, (offset, change.body));
            }
            let mark = watermarks
                .entry(format!("{}/{}", event.aggregate_type, event.aggregate_id))
                .or_default();
            *mark = (*mark).max(event.seq);
            applied_through = offset;
        }
        Ok((folded_docs, watermarks, applied_through))
    }

    /// The page folded document by document, each through all of its events at once
    /// ([`Projection::apply_events`]); `None` if an event cannot be folded or a document
    /// would be over `max_document_bytes` (then [`Self::fold_by_event`] finds which).
    fn fold_by_document(
        &self,
        projection: &dyn Projection,
        generation: u64,
        events: &[EventEnvelope],
        checkpoint: u64,
        max_document_bytes: usize,
    ) -> Result<Option<FoldedPage>, SqlError> {
        let mut pages: BTreeMap<String, (u64, Vec<&EventEnvelope>)> = BTreeMap::new();
        let mut watermarks: BTreeMap<String, u64> = BTreeMap::new();
        let mut applied_through = checkpoint;
        for event in events {
            let Some(offset) = event.position.map(|p| p.offset) else {
                return Err("an event from the stream without a position".into());
            };
            if offset <= applied_through {
                continue; // already applied (a concurrent catch-up got here first)
            }
            for doc_id in projection.document_ids(event) {
                let (last, page) = pages.entry(doc_id).or_default();
                *last = offset;
                page.push(event);
            }
            let mark = watermarks
                .entry(format!("{}/{}", event.aggregate_type, event.aggregate_id))
                .or_default();
            *mark = (*mark).max(event.seq);
            applied_through = offset;
        }
        let mut folded_docs = BTreeMap::new();
        for (doc_id, (last, page)) in pages {
            let current = self
                .document(generation, &doc_id)
                .ok()
                .flatten()
                .map(|d| d.body);
            let Ok(body) = projection.apply_events(&doc_id, current, &page) else {
                return Ok(None);
            };
            if body
                .as_ref()
                .is_some_and(|b| b.to_string().len() > max_document_bytes)
            {
                return Ok(None);
            }
            folded_docs.insert(doc_id, (last, body));
        }
        Ok(Some((folded_docs, watermarks, applied_through)))
    }

    /// Writes one change; returns the document's new revision (0 for a delete).
    fn write(
        &mut self,
        projection: &dyn Projection,
        generation: u64,
        change: &DocChange,
    ) -> Result<u64, SqlError> {
        self.index_search(projection, generation, change)?;
        match &change.body {
            Some(body) => {
                let index = projection.index(body);
                let filters: serde_json::Map<String, Value> = index
                    .filters
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                    .collect();
                self.sql
                    .exec(
                        "INSERT INTO documents (generation, doc_id, body, revision, sort_key, filters) VALUES (?, ?, ?, 1, ?, ?)
                         ON CONFLICT (generation, doc_id) DO UPDATE SET body = excluded.body, revision = revision + 1,
                             sort_key = excluded.sort_key, filters = excluded.filters",
                        vec![
                            int(generation),
                            change.doc_id.as_str().into(),
                            body.to_string().into(),
                            index.sort_key.into(),
                            Value::Object(filters).to_string().into(),
                        ],
                    )
                    .map_err(err)?;
                Ok(self
                    .scalar(
                        "SELECT revision FROM documents WHERE generation = ? AND doc_id = ?",
                        vec![int(generation), change.doc_id.as_str().into()],
                    )?
                    .unwrap_or(1) as u64)
            }
            None => {
                self.sql
                    .exec(
                        "DELETE FROM documents WHERE generation = ? AND doc_id = ?",
                        vec![int(generation), change.doc_id.as_str().into()],
                    )
                    .map_err(err)?;
                Ok(0)
            }
        }
    }

    /// Keeps the full-text index in step with one change (same synchronous step as the
    /// document): the old entry goes, the new one comes if the projection makes the body
    /// searchable ([`Projection::search_text`]).
    fn index_search(
        &mut self,
        projection: &dyn Projection,
        generation: u64,
        change: &DocChange,
    ) -> Result<(), SqlError> {
        if !projection.searchable() {
            return Ok(());
        }
        let text = change
            .body
            .as_ref()
            .and_then(|body| projection.search_text(body));
        if let Some(id) = self.scalar(
            "SELECT id FROM search_rows WHERE generation = ? AND doc_id = ?",
            vec![int(generation), change.doc_id.as_str().into()],
        )? {
            self.sql
                .exec("DELETE FROM search WHERE rowid = ?", vec![id.into()])
                .map_err(err)?;
            self.sql
                .exec("DELETE FROM search_rows WHERE id = ?", vec![id.into()])
                .map_err(err)?;
        }
        let Some(text) = text else {
            return Ok(());
        };
        self.sql
            .exec(
                "INSERT INTO search_rows (generation, doc_id, kind) VALUES (?, ?, ?)",
                vec![
                    int(generation),
                    change.doc_id.as_str().into(),
                    text.kind.into(),
                ],
            )
            .map_err(err)?;
        let id = self
            .scalar(
                "SELECT id FROM search_rows WHERE generation = ? AND doc_id = ?",
                vec![int(generation), change.doc_id.as_str().into()],
            )?
            .ok_or("the search row just written is missing")?;
        self.sql
            .exec(
                "INSERT INTO search (rowid, title, text) VALUES (?, ?, ?)",
                vec![id.into(), text.title.into(), text.text.into()],
            )
            .map_err(err)?;
        Ok(())
    }

    /// Full-text search over `generation`'s searchable documents: `query` is an FTS5 MATCH
    /// expression (built by `projections::knowledge::fts_query`, never raw user text),
    /// `kinds` narrows by kind (empty: all), best `limit` first by bm25.
    pub fn search(
        &self,
        generation: u64,
        query: &str,
        kinds: &[String],
        limit: usize,
    ) -> Result<Vec<SearchHit>, SqlError> {
        let mut bindings = vec![query.into(), int(generation), int(limit as u64)];
        let mut kind_filter = String::new();
        if !kinds.is_empty() {
            let mut placeholders = Vec::new();
            for kind in kinds {
                bindings.push(kind.as_str().into());
                placeholders.push(format!("?{}", bindings.len()));
            }
            kind_filter = format!(" AND r.kind IN ({})", placeholders.join(", "));
        }
        let cursor = self
            .sql
            .exec(
                &format!(
                    "SELECT r.doc_id, r.kind, -bm25(search, {BM25_WEIGHTS}) AS score,
                            highlight(search, 0, '<mark>', '</mark>'),
                            snippet(search, 1, '<mark>', '</mark>', '…', 24),
                            d.body
                     FROM search JOIN search_rows r ON r.id = search.rowid
                     JOIN documents d ON d.generation = r.generation AND d.doc_id = r.doc_id
                     WHERE search MATCH ?1 AND r.generation = ?2{kind_filter}
                     ORDER BY score DESC, r.doc_id LIMIT ?3"
                ),
                bindings,
            )
            .map_err(err)?;
        let mut hits = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(err)?;
            let [doc_id, kind, score, title, snippet, body] = row.as_slice() else {
                return Err("a search row with the wrong columns".into());
            };
            hits.push(SearchHit {
                doc_id: text(doc_id).unwrap_or_default(),
                kind: text(kind).unwrap_or_default(),
                score: match score {
                    SqlStorageValue::Float(f) => *f,
                    SqlStorageValue::Integer(i) => *i as f64,
                    _ => 0.0,
                },
                title: text(title).unwrap_or_default(),
                snippet: text(snippet).unwrap_or_default(),
                body: serde_json::from_str(&text(body).unwrap_or_default()).map_err(err)?,
            });
        }
        Ok(hits)
    }

    /// The stored bodies of `doc_ids` in `generation` (those that exist), in that order:
    /// how vector-search hits get their documents.
    pub fn documents(
        &self,
        generation: u64,
        doc_ids: &[String],
    ) -> Result<Vec<Document>, SqlError> {
        let mut found = Vec::new();
        for doc_id in doc_ids {
            if let Some(document) = self.document(generation, doc_id)? {
                found.push(document);
            }
        }
        Ok(found)
    }

    pub fn document(&self, generation: u64, doc_id: &str) -> Result<Option<Document>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT doc_id, revision, body FROM documents WHERE generation = ? AND doc_id = ?",
                vec![int(generation), doc_id.into()],
            )
            .map_err(err)?;
        cursor
            .raw()
            .next()
            .map(|row| decode_document(&row.map_err(err)?))
            .transpose()
    }

    /// A page of documents newest first, matching `filters` (name → value), after the
    /// cursor `after` (`"{sort_key}:{doc_id}"` of the last document of the previous page).
    pub fn list(
        &self,
        generation: u64,
        filters: &[(String, String)],
        limit: usize,
        after: Option<(i64, String)>,
    ) -> Result<(Vec<Document>, Option<String>), SqlError> {
        let mut conditions = vec!["generation = ?1".to_owned()];
        let mut bindings = vec![int(generation), int(limit as u64 + 1)];
        if let Some((sort_key, doc_id)) = &after {
            bindings.push((*sort_key).into());
            bindings.push(doc_id.as_str().into());
            let (k, d) = (bindings.len() - 1, bindings.len());
            conditions.push(format!(
                "(sort_key < ?{k} OR (sort_key = ?{k} AND doc_id < ?{d}))"
            ));
        }
        for (name, value) in filters {
            bindings.push(format!("$.{name}").into());
            bindings.push(value.as_str().into());
            let (p, v) = (bindings.len() - 1, bindings.len());
            conditions.push(format!("json_extract(filters, ?{p}) = ?{v}"));
        }
        let cursor = self
            .sql
            .exec(
                &format!(
                    "SELECT doc_id, revision, body, sort_key FROM documents WHERE {}
                     ORDER BY sort_key DESC, doc_id DESC LIMIT ?2",
                    conditions.join(" AND ")
                ),
                bindings,
            )
            .map_err(err)?;
        let mut documents = Vec::new();
        let mut keys = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(err)?;
            keys.push(row.get(3).map(integer).transpose()?.unwrap_or(0));
            documents.push(decode_document(&row[..3])?);
        }
        let next = if documents.len() > limit {
            documents.truncate(limit);
            documents
                .last()
                .map(|d| format!("{}:{}", keys[limit - 1], d.doc_id))
        } else {
            None
        };
        Ok((documents, next))
    }

    /// The highest seq of `aggregate` (`"{type}/{id}"`) folded into `generation`.
    pub fn watermark(&self, generation: u64, aggregate: &str) -> Result<u64, SqlError> {
        Ok(self
            .scalar(
                "SELECT seq FROM watermarks WHERE generation = ? AND aggregate = ?",
                vec![int(generation), aggregate.into()],
            )?
            .unwrap_or(0) as u64)
    }

    /// Every generation with its checkpoints, heads and lag.
    pub fn generations(&self) -> Result<Vec<Generation>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT generation, version, state, fault FROM generations ORDER BY generation",
                None,
            )
            .map_err(err)?;
        let rows: Vec<Vec<SqlStorageValue>> = cursor
            .raw()
            .map(|r| r.map_err(err))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for row in rows {
            let [g, v, state, fault] = row.as_slice() else {
                return Err("bad generations row".into());
            };
            let generation = integer(g)? as u64;
            let cursor = self
                .sql
                .exec(
                    "SELECT partition, stream_offset, head FROM checkpoints WHERE generation = ?",
                    vec![int(generation)],
                )
                .map_err(err)?;
            let mut checkpoints = BTreeMap::new();
            let mut heads = BTreeMap::new();
            for row in cursor.raw() {
                let row = row.map_err(err)?;
                if let [p, o, h] = row.as_slice() {
                    checkpoints.insert(integer(p)? as u32, integer(o)? as u64);
                    heads.insert(integer(p)? as u32, integer(h)? as u64);
                }
            }
            let lag = heads
                .iter()
                .map(|(p, h)| h.saturating_sub(*checkpoints.get(p).unwrap_or(&0)))
                .sum();
            out.push(Generation {
                generation,
                version: integer(v)? as u32,
                state: text(state).unwrap_or_default(),
                fault: text(fault).and_then(|f| serde_json::from_str(&f).ok()),
                checkpoints,
                heads,
                lag,
            });
        }
        Ok(out)
    }

    /// Whether `generation` has applied everything up to the heads it last saw, for every
    /// partition in `partitions`.
    pub fn caught_up(
        &self,
        generation: u64,
        partitions: std::ops::Range<u32>,
    ) -> Result<bool, SqlError> {
        for partition in partitions {
            let cursor = self
                .sql
                .exec(
                    "SELECT stream_offset, head FROM checkpoints WHERE generation = ? AND partition = ?",
                    vec![int(generation), int(u64::from(partition))],
                )
                .map_err(err)?;
            match cursor.raw().next() {
                Some(row) => {
                    let row = row.map_err(err)?;
                    if let [o, h] = row.as_slice()
                        && integer(o)? < integer(h)?
                    {
                        return Ok(false);
                    }
                }
                None => return Ok(false), // never read
            }
        }
        Ok(true)
    }

    pub fn mirror_cursor(&self, partition: u32) -> Result<u64, SqlError> {
        Ok(self
            .scalar(
                "SELECT stream_offset FROM mirror_cursors WHERE partition = ?",
                vec![int(u64::from(partition))],
            )?
            .unwrap_or(0) as u64)
    }

    /// Convex holds everything through `offset` of `partition` (its cursor).
    pub fn mirror_acknowledged(&mut self, partition: u32, offset: u64) -> Result<(), SqlError> {
        self.sql
            .exec(
                "INSERT INTO mirror_cursors (partition, stream_offset, attempts, last_error) VALUES (?, ?, 0, NULL)
                 ON CONFLICT (partition) DO UPDATE SET stream_offset = excluded.stream_offset, attempts = 0, last_error = NULL",
                vec![int(u64::from(partition)), int(offset)],
            )
            .map_err(err)?;
        Ok(())
    }

    /// A failed mirror attempt; returns how many failed in a row.
    pub fn mirror_failed(&mut self, partition: u32, error: &str) -> Result<u32, SqlError> {
        self.sql
            .exec(
                "INSERT INTO mirror_cursors (partition, stream_offset, attempts, last_error) VALUES (?, 0, 1, ?)
                 ON CONFLICT (partition) DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error",
                vec![int(u64::from(partition)), error.into()],
            )
            .map_err(err)?;
        Ok(self
            .scalar(
                "SELECT attempts FROM mirror_cursors WHERE partition = ?",
                vec![int(u64::from(partition))],
            )?
            .unwrap_or(1) as u32)
    }

    /// Per partition: Convex's cursor, failures in a row, the last error.
    pub fn mirror_status(&self) -> Result<Vec<Value>, SqlError> {
        let cursor = self
            .sql
            .exec(
                "SELECT partition, stream_offset, attempts, last_error FROM mirror_cursors ORDER BY partition",
                None,
            )
            .map_err(err)?;
        let mut partitions = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(err)?;
            if let [p, o, a, e] = row.as_slice() {
                partitions.push(serde_json::json!({
                    "partition": integer(p)?,
                    "cursor": integer(o)?,
                    "failures": integer(a)?,
                    "last_error": text(e),
                }));
            }
        }
        Ok(partitions)
    }
}

fn decode_document(row: &[SqlStorageValue]) -> Result<Document, SqlError> {
    let [doc_id, revision, body] = row else {
        return Err("bad documents row".into());
    };
    Ok(Document {
        doc_id: text(doc_id).unwrap_or_default(),
        revision: integer(revision)? as u64,
        body: serde_json::from_str(&text(body).unwrap_or_default()).map_err(err)?,
    })
}
