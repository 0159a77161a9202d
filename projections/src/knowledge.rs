//! `knowledge@1`: the knowledge base — one small, searchable document per thing a person or an
//! agent may look for: a feedback item, a card, an error group, a push, a pull request, a CI
//! run, a release. The projector indexes each document's [`search_text`] in an SQLite FTS5
//! table for `GET /v1/knowledge/search`; this module produces the documents and the pure
//! helpers around the search ([`fts_query`], [`fuse`], [`similarity`]).
//!
//! Every body has one shape ([`Document`]):
//!
//! ```json
//! {"kind": "error_group", "title": "TypeError: x is undefined", "text": "TypeError\n…",
//!  "status": "regressed", "source": {"aggregate_type": "error_group", "aggregate_id": "fp1"},
//!  "link": "/v1/aggregates/error_group/fp1", "updated_at_ms": 1795946460000, "version": 4,
//!  "attributes": {"count": 7, "error_type": "TypeError", "…": "…"}}
//! ```
//!
//! * `updated_at_ms` is the `recorded_at` of the last event folded in (Unix milliseconds),
//!   `version` that event's seq in its aggregate.
//! * `title` is at most [`MAX_TITLE_CHARS`] characters and `text` at most [`MAX_TEXT_BYTES`]
//!   bytes (UTF-8), both cut with a final `…`: however long the history, a document stays
//!   small. Where a text is rebuilt from its own lines (cards, error groups, pushes), each
//!   line is one field with its whitespace collapsed to single spaces.
//!
//! | doc id | kind | from | status |
//! |---|---|---|---|
//! | `feedback:{feedback_id}` | `feedback` | the feedback | `open`, `triaged`, `closed` |
//! | `card:{board_id}:{card_id}` | `card` | the card's events on its board | `open`, `archived` |
//! | `error_group:{fingerprint}` | `error_group` | the group | `open`, `ignored`, `resolved`, `regressed` |
//! | `push:{repo}:{after}` | `push` | `PushRecorded` | `pushed` |
//! | `pull_request:{repo}:{number}` | `pull_request` | `PullRequest*` | `opened`, `reopened`, `merged`, `closed` |
//! | `ci_run:{repo}:{run_id}` | `ci_run` | `WorkflowRun*` | `failed`, `succeeded` |
//! | `release:{repo}:{tag}` | `release` | `ReleasePublished` | `published` |
//!
//! (`{repo}` is the repository's aggregate id, `{owner}~{name}`.) The kinds in detail:
//!
//! * **feedback** — title: the first non-blank line of the text, cut to
//!   [`FEEDBACK_TITLE_CHARS`]; text: the feedback's text, then a line with its source.
//!   Attributes: `severity`; once triaged also `board_id`, `card_id`, `labels` (kept after
//!   closing).
//! * **card** — title: the card's title; text: the title, a line of labels (`a, b`), then one
//!   line `author: text` per comment, oldest first, dropping the oldest comments when the
//!   text would pass [`MAX_TEXT_BYTES`]. Board cards have no description (neither
//!   `CardAdded` nor `CardEdited` carries one). Attributes: `board_id`, `card_id`, `column`
//!   (where the card is, or was when archived), `labels`, `comments` (every comment, kept in
//!   the text or not).
//! * **error_group** — title: `{error_type}: {message}` (`{error_type}` alone for an empty
//!   message); text: five lines — type, message, top frame, URL, last release (empty when
//!   absent). Status: `regressed` from `ErrorGroupRegressed` until the next resolution (the
//!   occurrences that follow keep it), `ignored` after `ErrorGroupIgnored` (a person's later
//!   decision wins over a regression). Attributes: `count` (the sum of `count` over
//!   `ErrorGroupOpened` and `ErrorGroupRecurred`, which is every occurrence once — see
//!   [`domain::error_group`]), `error_type`, `last_release` (of the latest record naming
//!   one), `first_seen_ms`/`last_seen_ms` (minimum and maximum over the records),
//!   `regressions`, `ignored_until_ms` (recorded, not enforced: compare with your clock).
//! * **push** — title: `{branch}: {head commit's first line}`; text: the branch, the
//!   pusher, then one line `message (author)` per listed commit, oldest first, dropping the
//!   oldest beyond [`MAX_TEXT_BYTES`]. The head is the last listed commit (GitHub lists a
//!   push's commits oldest first). A later push of the same `after` (the same commit pushed
//!   to another branch) replaces the document, keeping the earlier commit lines when it
//!   lists none. A push whose `after` is all zeros deletes a branch: no code to find, no
//!   document. Attributes: `branch`, `ref`, `pusher`, `before`, `after`, `commit_count`.
//! * **pull_request** — the latest event about it: title, text (title, `#number by
//!   author`), status from the event type. Attributes: `number`, `author`, `url`. The
//!   events carry no body.
//! * **ci_run** — title: `{workflow} failed|succeeded on {branch}`; text: workflow, branch,
//!   head SHA, conclusion (the events carry no commit message). A re-run replaces the
//!   document. Attributes: `run_id`, `conclusion` (GitHub's, e.g. `timed_out`), `workflow`,
//!   `branch` (`null` when the run had none), `head_sha`, `url`.
//! * **release** — title: the release name (the tag when the name is blank); text: tag and
//!   name. Attributes: `tag`, `name`, `url`.
//!
//! **Idempotence.** Feedback and error group documents follow their aggregate seq by seq
//! ([`crate::projection::sequence`]: a gap is a fault). A card document only changes on its
//! own card's events, so it keeps the seq of the last *board* event it folded and skips any
//! event at or below it; pull requests, CI runs, pushes and releases do the same with their
//! repository's seq. Gaps cannot be seen there; a redelivery changes nothing.
//!
//! **What is ignored, what faults.** Events of other aggregate types, the board's own
//! events (`BoardCreated`, `ColumnAdded`, `WipLimitSet`) and event types this fold does not
//! know (a newer writer's) touch no document. A known event that does not decode, or does
//! not fit (a card event before its `CardAdded`, a second `FeedbackSubmitted`, a gap in a
//! feedback's seqs), is a [`FoldError`], as in every fold here. No business rule is
//! enforced: the aggregates decided those.
//!
//! List index: most recently updated first; filters `kind` and `status`.

use std::collections::{BTreeMap, BTreeSet};

use domain::EventEnvelope;
use domain::aggregate::{Aggregate, decode_event};
use domain::board::{Board, BoardEvent};
use domain::error_group::{ErrorGroup, ErrorGroupEvent};
use domain::feedback::{Feedback, FeedbackEvent};
use domain::repository::{PullRequestRecorded, Repository, RepositoryEvent, WorkflowRunRecorded};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::projection::SearchText;
use crate::projection::{
    FoldError, ListIndex, Projection, Sequence, apply_events_typed, decode_body, encode_body,
    recorded_at_ms, sequence,
};

/// The projection's name.
pub const NAME: &str = "knowledge";
/// The fold's version.
pub const VERSION: u32 = 1;
/// The filters of a list query, in [`ListIndex::filters`] order.
pub const FILTERS: &[&str] = &["kind", "status"];
/// A document's `title` is at most this many characters (Unicode scalar values).
pub const MAX_TITLE_CHARS: usize = 200;
/// A feedback's title (its text's first line) is cut to this many characters.
pub const FEEDBACK_TITLE_CHARS: usize = 120;
/// A document's `text` is at most this many bytes of UTF-8 (8 KiB).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// The `k` of reciprocal-rank fusion ([`fuse`]): 60, the value of the original paper
/// (Cormack, Clarke & Büttcher, SIGIR 2009), which damps the weight of the first ranks.
pub const RRF_K: f64 = 60.0;
/// [`fts_query`] keeps at most this many terms (words or phrases).
pub const MAX_QUERY_TERMS: usize = 32;
/// [`fts_query`] cuts a term to this many characters.
pub const MAX_TERM_CHARS: usize = 100;

/// A line of labels, a comment line, a commit line: at most this many bytes each, so that a
/// text always has room for its header and several of them.
const LINE_BYTES: usize = 2 * 1024;
/// The byte caps of an error group's five text lines (type, message, top frame, URL,
/// release): 7.5 KiB together, within [`MAX_TEXT_BYTES`] with the line breaks.
const ERROR_LINE_BYTES: [usize; 5] = [1024, 3072, 1536, 1536, 512];
/// A repository's events that name a branch deletion have this `after`.
const ZERO_SHAS: [&str; 2] = [
    "0000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
];

/// The feedback events this fold knows.
const FEEDBACK_EVENTS: &[&str] = &["FeedbackSubmitted", "FeedbackTriaged", "FeedbackClosed"];
/// The board events about one card; the board's other events are ignored.
const CARD_EVENTS: &[&str] = &[
    "CardAdded",
    "CardMoved",
    "CardEdited",
    "CardCommented",
    "CardArchived",
];
/// The error group events this fold knows.
const ERROR_GROUP_EVENTS: &[&str] = &[
    "ErrorGroupOpened",
    "ErrorGroupRecurred",
    "ErrorGroupRegressed",
    "ErrorGroupResolved",
    "ErrorGroupIgnored",
];
const PULL_REQUEST_EVENTS: &[&str] = &[
    "PullRequestOpened",
    "PullRequestReopened",
    "PullRequestMerged",
    "PullRequestClosed",
];
const WORKFLOW_RUN_EVENTS: &[&str] = &["WorkflowRunSucceeded", "WorkflowRunFailed"];

/// The `knowledge` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knowledge;

/// A knowledge document, the body of every kind (see the module docs for each kind's
/// title, text, status and attributes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// `feedback`, `card`, `error_group`, `push`, `pull_request`, `ci_run` or `release`.
    pub kind: String,
    /// At most [`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// At most [`MAX_TEXT_BYTES`] bytes.
    pub text: String,
    /// The kind's own statuses (module docs).
    pub status: String,
    /// The aggregate the document comes from.
    pub source: Source,
    /// `/v1/aggregates/{aggregate_type}/{aggregate_id}`: where its events are read.
    pub link: String,
    /// The `recorded_at` of the last event folded in, in Unix milliseconds.
    pub updated_at_ms: i64,
    /// The source aggregate's seq of the last event folded in.
    pub version: u64,
    /// The kind's own fields (module docs).
    pub attributes: Map<String, Value>,
}

/// The aggregate a document comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `feedback`, `board` (for a card), `error_group` or `repository`.
    pub aggregate_type: String,
    /// The feedback id, board id, fingerprint or `{owner}~{name}`.
    pub aggregate_id: String,
}

/// Every kind of document, the values `GET /v1/knowledge/search?kinds=` accepts.
pub const KINDS: &[&str] = &[
    "feedback",
    "card",
    "error_group",
    "push",
    "pull_request",
    "ci_run",
    "release",
];

/// The searchable part of a body this projection produced: `None` when `kind`, `title` or
/// `text` is missing or not a string (not one of ours).
pub fn search_text(body: &Value) -> Option<SearchText> {
    let field = |name: &str| body.get(name)?.as_str().map(str::to_owned);
    Some(SearchText {
        kind: field("kind")?,
        title: field("title")?,
        text: field("text")?,
    })
}

impl Projection for Knowledge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn searchable(&self) -> bool {
        true
    }

    /// Agents read the knowledge base through the Worker's search (full text, and hybrid
    /// with Vectorize); Convex clients have no use for it, and Convex has no table for it.
    fn mirrored(&self) -> bool {
        false
    }

    fn search_text(&self, body: &Value) -> Option<SearchText> {
        search_text(body)
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn document_ids(&self, event: &EventEnvelope) -> Vec<String> {
        document_id(event).into_iter().collect()
    }

    fn apply(
        &self,
        doc_id: &str,
        current: Option<&Value>,
        event: &EventEnvelope,
    ) -> Result<Option<Value>, FoldError> {
        check_document(doc_id, event)?;
        let document: Option<Document> = current.map(|b| decode_body(b, event)).transpose()?;
        if already_folded(document.as_ref(), event)? {
            return Ok(current.cloned());
        }
        Ok(Some(encode_body(&fold_document(doc_id, document, event)?)))
    }

    /// Decodes the document once, folds every event into it, encodes it once (a card's
    /// document carries up to 8 KiB of comments).
    fn apply_events(
        &self,
        doc_id: &str,
        current: Option<Value>,
        events: &[&EventEnvelope],
    ) -> Result<Option<Value>, FoldError> {
        apply_events_typed(
            current,
            events,
            |event| check_document(doc_id, event),
            already_folded,
            |document, event| fold_document(doc_id, document, event),
        )
    }

    fn index(&self, body: &Value) -> ListIndex {
        // Bodies are ours: `updated_at_ms` is a number, `kind` and `status` strings.
        ListIndex {
            sort_key: body["updated_at_ms"].as_i64().unwrap_or(0),
            filters: FILTERS
                .iter()
                .map(|&name| (name, body[name].as_str().unwrap_or_default().to_owned()))
                .collect(),
        }
    }

    fn list_filters(&self) -> &'static [&'static str] {
        FILTERS
    }
}

/// The error of an event that does not fold into the document `doc_id`.
fn check_document(doc_id: &str, event: &EventEnvelope) -> Result<(), FoldError> {
    match document_id(event) {
        Some(id) if id == doc_id => Ok(()),
        _ => Err(FoldError::new(
            event,
            format!("knowledge document `{doc_id}` does not fold this event"),
        )),
    }
}

/// Whether `document` has folded `event` already. Feedback and error groups are followed
/// event by event (a gap is a fault); a card sees only its own events of its board's
/// sequence, so it only skips what it has seen.
fn already_folded(document: Option<&Document>, event: &EventEnvelope) -> Result<bool, FoldError> {
    let version = document.map_or(0, |d| d.version);
    let follows_whole_aggregate =
        event.aggregate_type == Feedback::TYPE || event.aggregate_type == ErrorGroup::TYPE;
    Ok(if follows_whole_aggregate {
        sequence(version, event)? == Sequence::AlreadyFolded
    } else {
        event.seq <= version
    })
}

/// Folds an event the document has not seen yet (`None`: no document yet).
fn fold_document(
    doc_id: &str,
    document: Option<Document>,
    event: &EventEnvelope,
) -> Result<Document, FoldError> {
    let updated_at_ms = recorded_at_ms(event)?;
    let source = (event.aggregate_type.as_str(), event.aggregate_id.as_str());
    let folded = match source.0 {
        Feedback::TYPE => fold_feedback(document, source, doc_id, decode::<Feedback>(event)?),
        Board::TYPE => fold_card(document, source, doc_id, decode::<Board>(event)?),
        ErrorGroup::TYPE => {
            fold_error_group(document, source, doc_id, decode::<ErrorGroup>(event)?)
        }
        _ => Ok(fold_repository(
            document,
            source,
            decode::<Repository>(event)?,
        )),
    };
    let mut document = folded.map_err(|reason| FoldError::new(event, reason))?;
    document.updated_at_ms = updated_at_ms;
    document.version = event.seq;
    Ok(document)
}

/// The document `event` touches, if any. Read from the raw payload (every schema version of
/// these events has the field at the top of `data`), so that an event which does not decode
/// still reaches [`Projection::apply`] and faults there instead of being skipped.
fn document_id(event: &EventEnvelope) -> Option<String> {
    let id = &event.aggregate_id;
    let event_type = event.event_type.as_str();
    let field = |name: &str| match event.data.get(name) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    let known = |types: &[&str]| types.contains(&event_type);
    match event.aggregate_type.as_str() {
        Feedback::TYPE if known(FEEDBACK_EVENTS) => Some(format!("feedback:{id}")),
        Board::TYPE if known(CARD_EVENTS) => Some(format!("card:{id}:{}", field("card_id"))),
        ErrorGroup::TYPE if known(ERROR_GROUP_EVENTS) => Some(format!("error_group:{id}")),
        Repository::TYPE => match event_type {
            "PushRecorded" => {
                let after = field("after");
                (!ZERO_SHAS.contains(&after.as_str())).then(|| format!("push:{id}:{after}"))
            }
            "ReleasePublished" => Some(format!("release:{id}:{}", field("tag"))),
            _ if known(PULL_REQUEST_EVENTS) => {
                Some(format!("pull_request:{id}:{}", field("number")))
            }
            _ if known(WORKFLOW_RUN_EVENTS) => Some(format!("ci_run:{id}:{}", field("run_id"))),
            _ => None,
        },
        _ => None,
    }
}

/// Decodes `event` with `A`'s own upcasters.
fn decode<A: Aggregate>(event: &EventEnvelope) -> Result<A::Event, FoldError> {
    decode_event::<A>(&event.event_type, event.schema_version, event.data.clone())
        .map_err(|e| FoldError::new(event, e.0))
}

impl Document {
    /// An empty document of `kind` about the aggregate `source` (type, id).
    fn new(kind: &str, source: (&str, &str)) -> Self {
        let (aggregate_type, aggregate_id) = source;
        Document {
            kind: kind.to_owned(),
            title: String::new(),
            text: String::new(),
            status: String::new(),
            source: Source {
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            },
            link: format!("/v1/aggregates/{aggregate_type}/{aggregate_id}"),
            updated_at_ms: 0,
            version: 0,
            attributes: Map::new(),
        }
    }

    fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.attributes.insert(name.to_owned(), value.into());
    }

    fn number(&self, name: &str) -> u64 {
        self.attributes
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.attributes
            .get(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text's lines from `from` on (the lines after a fixed header).
    fn lines_from(&self, from: usize) -> Vec<String> {
        self.text
            .split('\n')
            .skip(from)
            .map(str::to_owned)
            .collect()
    }
}

/// A value as JSON (our domain enums serialize to their wire strings).
fn wire<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

// ---- the kinds ----

fn fold_feedback(
    document: Option<Document>,
    source: (&str, &str),
    doc_id: &str,
    event: FeedbackEvent,
) -> Result<Document, String> {
    Ok(match (document, event) {
        (
            None,
            FeedbackEvent::FeedbackSubmitted {
                text,
                source: origin,
                severity,
            },
        ) => {
            let mut document = Document::new("feedback", source);
            let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            document.title = cut_chars(&clean(first_line), FEEDBACK_TITLE_CHARS);
            let origin = cut_bytes(&clean(&origin), LINE_BYTES);
            // The source line always fits: the feedback's text gives way.
            let body = cut_bytes(&text, MAX_TEXT_BYTES - origin.len() - 1);
            document.text = format!("{body}\n{origin}");
            document.status = "open".to_owned();
            document.set("severity", wire(&severity));
            document
        }
        (None, _) => {
            return Err(format!(
                "`{doc_id}` has no document yet: its first event must be FeedbackSubmitted"
            ));
        }
        (Some(_), FeedbackEvent::FeedbackSubmitted { .. }) => {
            return Err("the feedback was already submitted".to_owned());
        }
        (
            Some(mut document),
            FeedbackEvent::FeedbackTriaged {
                board_id,
                card_id,
                labels,
                ..
            },
        ) => {
            document.status = "triaged".to_owned();
            document.set("board_id", board_id);
            document.set("card_id", card_id);
            document.set("labels", labels);
            document
        }
        (Some(mut document), FeedbackEvent::FeedbackClosed { .. }) => {
            document.status = "closed".to_owned();
            document
        }
    })
}

fn fold_card(
    document: Option<Document>,
    source: (&str, &str),
    doc_id: &str,
    event: BoardEvent,
) -> Result<Document, String> {
    let mut document = match (document, event) {
        (
            None,
            BoardEvent::CardAdded {
                card_id,
                title,
                column,
                labels,
            },
        ) => {
            let mut document = Document::new("card", source);
            document.title = cut_chars(&clean(&title), MAX_TITLE_CHARS);
            document.status = "open".to_owned();
            document.set("board_id", source.1);
            document.set("card_id", card_id);
            document.set("column", column);
            document.set("labels", labels);
            document.set("comments", 0);
            document
        }
        (None, _) => {
            return Err(format!(
                "`{doc_id}` has no document yet: its first event must be CardAdded"
            ));
        }
        (Some(_), BoardEvent::CardAdded { .. }) => {
            return Err(format!("`{doc_id}` was already added"));
        }
        (Some(mut document), BoardEvent::CardMoved { to_column, .. }) => {
            document.set("column", to_column);
            document
        }
        (Some(mut document), BoardEvent::CardEdited { title, labels, .. }) => {
            if let Some(title) = title {
                document.title = cut_chars(&clean(&title), MAX_TITLE_CHARS);
            }
            if let Some(labels) = labels {
                document.set("labels", labels);
            }
            document
        }
        (Some(mut document), BoardEvent::CardCommented { author, text, .. }) => {
            let comments = document.number("comments").saturating_add(1);
            document.set("comments", comments);
            let line = cut_bytes(&clean(&format!("{author}: {text}")), LINE_BYTES);
            document.text = with_newest_line(&document.text, &line);
            return Ok(document);
        }
        (Some(mut document), BoardEvent::CardArchived { column, .. }) => {
            document.status = "archived".to_owned();
            document.set("column", column);
            document
        }
        (
            Some(_),
            BoardEvent::BoardCreated { .. }
            | BoardEvent::ColumnAdded { .. }
            | BoardEvent::WipLimitSet { .. },
        ) => return Err("not an event about a card".to_owned()),
    };
    // The title or labels may have changed: rebuild the header, keep the comment lines.
    let comments = document.lines_from(2);
    document.text = card_text(&document, comments);
    Ok(document)
}

/// A card's text: its title, its labels, then the newest `comments` that fit.
fn card_text(document: &Document, comments: Vec<String>) -> String {
    let labels = cut_bytes(&clean(&document.strings("labels").join(", ")), LINE_BYTES);
    lines_within(vec![document.title.clone(), labels], comments)
}

fn fold_error_group(
    document: Option<Document>,
    source: (&str, &str),
    doc_id: &str,
    event: ErrorGroupEvent,
) -> Result<Document, String> {
    Ok(match (document, event) {
        (
            None,
            ErrorGroupEvent::ErrorGroupOpened {
                error_type,
                message,
                top_frame,
                release,
                url,
                count,
                first_seen_ms,
                last_seen_ms,
                ..
            },
        ) => {
            let mut document = Document::new("error_group", source);
            let title = if message.trim().is_empty() {
                error_type.clone()
            } else {
                format!("{error_type}: {message}")
            };
            document.title = cut_chars(&clean(&title), MAX_TITLE_CHARS);
            document.text = error_text(&[
                error_type.clone(),
                message,
                top_frame.unwrap_or_default(),
                url.unwrap_or_default(),
                release.clone().unwrap_or_default(),
            ]);
            document.status = "open".to_owned();
            document.set("count", count);
            document.set("error_type", error_type);
            document.set("last_release", release);
            document.set("first_seen_ms", first_seen_ms);
            document.set("last_seen_ms", last_seen_ms);
            document.set("regressions", 0);
            document.set("ignored_until_ms", Value::Null);
            document
        }
        (None, _) => {
            return Err(format!(
                "`{doc_id}` has no document yet: its first event must be ErrorGroupOpened"
            ));
        }
        (Some(_), ErrorGroupEvent::ErrorGroupOpened { .. }) => {
            return Err("the error group was already opened".to_owned());
        }
        (
            Some(mut document),
            ErrorGroupEvent::ErrorGroupRecurred {
                count,
                first_seen_ms,
                last_seen_ms,
                release,
                ..
            },
        ) => {
            let total = document.number("count").saturating_add(u64::from(count));
            document.set("count", total);
            let first = document.number("first_seen_ms").min(first_seen_ms);
            document.set("first_seen_ms", first);
            let last = document.number("last_seen_ms").max(last_seen_ms);
            document.set("last_seen_ms", last);
            if let Some(release) = release {
                let mut lines = document.lines_from(0);
                lines.resize(5, String::new());
                lines[4] = release.clone();
                document.text = error_text(&lines);
                document.set("last_release", release);
            }
            document
        }
        (Some(mut document), ErrorGroupEvent::ErrorGroupRegressed { .. }) => {
            document.status = "regressed".to_owned();
            let regressions = document.number("regressions").saturating_add(1);
            document.set("regressions", regressions);
            document
        }
        (Some(mut document), ErrorGroupEvent::ErrorGroupResolved { .. }) => {
            document.status = "resolved".to_owned();
            document.set("ignored_until_ms", Value::Null);
            document
        }
        (Some(mut document), ErrorGroupEvent::ErrorGroupIgnored { until_ms }) => {
            document.status = "ignored".to_owned();
            document.set("ignored_until_ms", until_ms);
            document
        }
    })
}

/// An error group's five text lines, each within its cap ([`ERROR_LINE_BYTES`]).
fn error_text(fields: &[String]) -> String {
    let lines: Vec<String> = fields
        .iter()
        .zip(ERROR_LINE_BYTES)
        .map(|(field, cap)| cut_bytes(&clean(field), cap))
        .collect();
    lines.join("\n").trim_end_matches('\n').to_owned()
}

/// A repository event's document: the latest event about the thing (a push keeps the
/// earlier commit lines when the later one lists none). Never fails once decoded.
fn fold_repository(
    previous: Option<Document>,
    source: (&str, &str),
    event: RepositoryEvent,
) -> Document {
    match event {
        RepositoryEvent::PushRecorded {
            git_ref,
            before,
            after,
            commits,
            commit_count,
            pusher,
            ..
        } => {
            let mut document = Document::new("push", source);
            let branch = git_ref.strip_prefix("refs/heads/").unwrap_or(&git_ref);
            let mut lines: Vec<String> = commits
                .iter()
                .map(|c| cut_bytes(&clean(&format!("{} ({})", c.message, c.author)), LINE_BYTES))
                .collect();
            if lines.is_empty() {
                lines = previous.map(|p| p.lines_from(2)).unwrap_or_default();
            }
            let title = match commits.last() {
                Some(head) => format!("{branch}: {}", head.message.lines().next().unwrap_or("")),
                None => format!("{pusher} pushed to {branch}"),
            };
            document.title = cut_chars(&clean(&title), MAX_TITLE_CHARS);
            document.text = lines_within(
                vec![
                    cut_bytes(&clean(branch), LINE_BYTES),
                    cut_bytes(&clean(&pusher), LINE_BYTES),
                ],
                lines,
            );
            document.status = "pushed".to_owned();
            document.set("branch", branch);
            document.set("ref", git_ref.clone());
            document.set("pusher", pusher);
            document.set("before", before);
            document.set("after", after);
            document.set("commit_count", commit_count);
            document
        }
        RepositoryEvent::PullRequestOpened(pr) => pull_request(source, pr, "opened"),
        RepositoryEvent::PullRequestReopened(pr) => pull_request(source, pr, "reopened"),
        RepositoryEvent::PullRequestMerged(pr) => pull_request(source, pr, "merged"),
        RepositoryEvent::PullRequestClosed(pr) => pull_request(source, pr, "closed"),
        RepositoryEvent::WorkflowRunSucceeded(run) => ci_run(source, run, "succeeded"),
        RepositoryEvent::WorkflowRunFailed(run) => ci_run(source, run, "failed"),
        RepositoryEvent::ReleasePublished { tag, name, url, .. } => {
            let mut document = Document::new("release", source);
            let title = if name.trim().is_empty() { &tag } else { &name };
            document.title = cut_chars(&clean(title), MAX_TITLE_CHARS);
            document.text = lines_within(
                vec![
                    cut_bytes(&clean(&tag), LINE_BYTES),
                    cut_bytes(&clean(&name), LINE_BYTES),
                ],
                Vec::new(),
            );
            document.status = "published".to_owned();
            document.set("tag", tag);
            document.set("name", name);
            document.set("url", url);
            document
        }
    }
}

fn pull_request(source: (&str, &str), pr: PullRequestRecorded, status: &str) -> Document {
    let mut document = Document::new("pull_request", source);
    document.title = cut_chars(&clean(&pr.title), MAX_TITLE_CHARS);
    document.text = lines_within(
        vec![
            cut_bytes(&clean(&pr.title), LINE_BYTES),
            cut_bytes(
                &clean(&format!("#{} by {}", pr.number, pr.author)),
                LINE_BYTES,
            ),
        ],
        Vec::new(),
    );
    document.status = status.to_owned();
    document.set("number", pr.number);
    document.set("author", pr.author);
    document.set("url", pr.url);
    document
}

fn ci_run(source: (&str, &str), run: WorkflowRunRecorded, status: &str) -> Document {
    let mut document = Document::new("ci_run", source);
    let title = match &run.branch {
        Some(branch) => format!("{} {status} on {branch}", run.name),
        None => format!("{} {status} at {}", run.name, run.head_sha),
    };
    document.title = cut_chars(&clean(&title), MAX_TITLE_CHARS);
    let conclusion = wire(&run.conclusion);
    document.text = lines_within(
        [
            run.name.as_str(),
            run.branch.as_deref().unwrap_or_default(),
            run.head_sha.as_str(),
            conclusion.as_str().unwrap_or_default(),
        ]
        .iter()
        .map(|field| cut_bytes(&clean(field), LINE_BYTES))
        .collect(),
        Vec::new(),
    );
    document.status = status.to_owned();
    document.set("run_id", run.run_id);
    document.set("conclusion", conclusion);
    document.set("workflow", run.name);
    document.set("branch", run.branch);
    document.set("head_sha", run.head_sha);
    document.set("url", run.url);
    document
}

// ---- bounding text ----

/// A card's `text` (its two header lines, then comment lines) with `line` added as the newest
/// comment: exactly `lines_within([title, labels], comments + [line])`, without splitting the
/// whole text into lines — the oldest comments are dropped from the front until the text
/// fits. (A card collects comments one event at a time, so this is the hot path.)
fn with_newest_line(text: &str, line: &str) -> String {
    let mut parts = text.splitn(3, '\n');
    let title = parts.next().unwrap_or_default();
    let labels = parts.next().unwrap_or_default();
    let comments = parts.next();
    let header_bytes = title.len() + 1 + labels.len();
    let budget = MAX_TEXT_BYTES.saturating_sub(header_bytes);
    let mut kept = match comments {
        Some(comments) => format!("{comments}\n{line}"),
        None => line.to_owned(),
    };
    // The comment lines kept cost their bytes plus a newline each: `kept.len() + 1`.
    let mut start = 0;
    while kept.len() - start + 1 > budget {
        match kept[start..].find('\n') {
            Some(at) => start += at + 1,
            None => {
                start = kept.len();
                break;
            }
        }
    }
    kept.drain(..start);
    let mut text = String::with_capacity(header_bytes + 1 + kept.len());
    text.push_str(title);
    text.push('\n');
    text.push_str(labels);
    if !kept.is_empty() {
        text.push('\n');
        text.push_str(&kept);
    }
    let end = text.trim_end_matches('\n').len();
    text.truncate(end);
    text
}

/// `header` lines, then the last of `lines` (newest, in order) that fit in
/// [`MAX_TEXT_BYTES`]. Every line is at most [`LINE_BYTES`] and the headers are one or two
/// lines, so the header always fits. Trailing empty lines are dropped.
fn lines_within(header: Vec<String>, lines: Vec<String>) -> String {
    let mut text = header.join("\n");
    let mut budget = MAX_TEXT_BYTES.saturating_sub(text.len());
    let mut kept = Vec::new();
    for line in lines.iter().rev() {
        let cost = line.len() + 1;
        if cost > budget {
            break;
        }
        budget -= cost;
        kept.push(line);
    }
    for line in kept.into_iter().rev() {
        text.push('\n');
        text.push_str(line);
    }
    let end = text.trim_end_matches('\n').len();
    text.truncate(end);
    text
}

/// `text` with every run of whitespace (line breaks included) made one space, trimmed: one
/// field on one line.
fn clean(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut to at most `max` characters, the last being `…` when cut.
fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text[end..].chars().nth(1).is_some() => format!("{}…", &text[..end]),
        _ => text.to_owned(),
    }
}

/// `text` cut to at most `max` bytes (`max` ≥ 3) on a character boundary, ending in `…`
/// (3 bytes) when cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

// ---- search helpers ----

/// Turns what a user typed into a safe SQLite FTS5 `MATCH` expression, or `None` when
/// nothing searchable remains.
///
/// * Text between double quotes stays a phrase (`"checkout button"`); an unbalanced last
///   quote is ignored and what follows it read as words.
/// * Every other whitespace-separated word becomes one quoted token (`"word"`).
/// * A term with no letter or digit (Unicode: `char::is_alphanumeric`) is dropped — FTS5's
///   `unicode61` tokenizer would find nothing in it. Control characters become spaces.
/// * Terms are cut to [`MAX_TERM_CHARS`] characters, repeats dropped, and at most
///   [`MAX_QUERY_TERMS`] kept, in input order.
/// * Terms are joined with ` AND ` when `match_all`, otherwise ` OR `.
///
/// Every term is an FTS5 string (a `"` inside is doubled), and nothing else is emitted but
/// ` AND ` / ` OR ` between them, so no FTS5 syntax in user text — `NEAR(…)`, prefix `*`,
/// column filters `col:`, `^`, `+`, `-`, parentheses, bare `AND`/`OR`/`NOT` — can act:
/// inside a string they are characters the tokenizer splits on or indexes as words.
pub fn fts_query(q: &str, match_all: bool) -> Option<String> {
    let segments: Vec<&str> = q.split('"').collect();
    // An odd number of quotes leaves the last segment unclosed: words, not a phrase.
    let balanced = segments.len() % 2 == 1;
    let mut terms: Vec<String> = Vec::new();
    let mut push = |term: &str| {
        let term = cut_chars_plain(&clean(&without_controls(term)), MAX_TERM_CHARS);
        if term.chars().any(char::is_alphanumeric)
            && !terms.contains(&term)
            && terms.len() < MAX_QUERY_TERMS
        {
            terms.push(term);
        }
    };
    for (index, segment) in segments.iter().enumerate() {
        let is_phrase = index % 2 == 1 && (balanced || index + 1 < segments.len());
        if is_phrase {
            push(segment);
        } else {
            without_controls(segment)
                .split_whitespace()
                .for_each(&mut push);
        }
    }
    if terms.is_empty() {
        return None;
    }
    let quoted: Vec<String> = terms
        .iter()
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect();
    Some(quoted.join(if match_all { " AND " } else { " OR " }))
}

/// `text` with control characters (NUL, line breaks, …) made spaces.
fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to at most `max` characters, without a mark (a search term, not a display).
fn cut_chars_plain(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Reciprocal-rank fusion of two ranked lists of doc ids (best first) for hybrid search:
/// each doc scores `Σ 1 / (k + rank)` over the lists it is in, rank counted from 1 (a doc
/// listed twice in one list counts at its first place). Answers `(doc id, score)` best
/// first, at most `limit`; equal scores are ordered by keyword rank (a doc the keyword
/// search found before one it did not), then by doc id. Use `k` = [`RRF_K`]; `k` ≥ 0.
pub fn fuse(keyword: &[String], vector: &[String], k: f64, limit: usize) -> Vec<(String, f64)> {
    let mut fused: BTreeMap<&str, (f64, Option<usize>)> = BTreeMap::new();
    for (list, is_keyword) in [(keyword, true), (vector, false)] {
        let mut seen = BTreeSet::new();
        for (index, id) in list.iter().enumerate() {
            if !seen.insert(id.as_str()) {
                continue;
            }
            let rank = index + 1;
            let entry = fused.entry(id.as_str()).or_insert((0.0, None));
            entry.0 += 1.0 / (k + rank as f64);
            if is_keyword {
                entry.1 = Some(rank);
            }
        }
    }
    let mut ranked: Vec<(&str, (f64, Option<usize>))> = fused.into_iter().collect();
    ranked.sort_by(|(a_id, (a_score, a_rank)), (b_id, (b_score, b_rank))| {
        b_score
            .total_cmp(a_score)
            .then_with(|| {
                a_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b_rank.unwrap_or(usize::MAX))
            })
            .then_with(|| a_id.cmp(b_id))
    });
    ranked
        .into_iter()
        .take(limit)
        .map(|(id, (score, _))| (id.to_owned(), score))
        .collect()
}

/// How close two short texts are, in [0, 1], for "is this feedback a near-duplicate of
/// that card": the Dice coefficient `2|A ∩ B| / (|A| + |B|)` of their token sets, where a
/// text's tokens are its runs of Unicode letters and digits, lowercased, without English
/// stopwords ([`STOPWORDS`]), lightly stemmed (plural `s`/`es`, then `ing`/`ed`/`ly`, a
/// doubled final consonant, a final `e`: `crashes` ~ `crash`, `working` ~ `work`, `saved` ~
/// `save`). Symmetric; 1 for texts with the same tokens; 0 when either has none.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (tokens(a), tokens(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(&b).count();
    (2 * shared) as f64 / (a.len() + b.len()) as f64
}

/// English words too common to tell two texts apart (a short list in the spirit of NLTK's),
/// plus the pieces contractions split into (`doesn't` → `doesn`, `t`). Sorted.
pub const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn",
    "d",
    "did",
    "didn",
    "do",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "got",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "she",
    "should",
    "shouldn",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "wasn",
    "we",
    "were",
    "weren",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "won",
    "would",
    "wouldn",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// A text's distinct, stemmed, non-stopword tokens.
fn tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .filter(|word| STOPWORDS.binary_search(&word.as_str()).is_err())
        .map(|word| stem(&word))
        .collect()
}

/// A light English suffix stripper; every step leaves at least 3 characters.
fn stem(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let ends = |chars: &[char], suffix: &str| {
        let suffix: Vec<char> = suffix.chars().collect();
        chars.len() >= suffix.len() + 3 && chars.ends_with(&suffix)
    };
    // Plurals: `es` after s, x, z, ch, sh (`crashes`); otherwise `s`, but not after s, u or
    // i (`class`, `status`, `analysis`).
    let before_es = |chars: &[char]| {
        let stem = &chars[..chars.len() - 2];
        matches!(stem.last(), Some('s' | 'x' | 'z'))
            || stem.ends_with(&['c', 'h'])
            || stem.ends_with(&['s', 'h'])
    };
    if ends(&chars, "es") && before_es(&chars) {
        chars.truncate(chars.len() - 2);
    } else if ends(&chars, "s") && !matches!(chars[chars.len() - 2], 's' | 'u' | 'i') {
        chars.pop();
    }
    let mut stripped = false;
    for suffix in ["ing", "ed", "ly"] {
        if ends(&chars, suffix) {
            chars.truncate(chars.len() - suffix.chars().count());
            stripped = true;
            break;
        }
    }
    // `stopped` → `stop`, but `falling` → `fall`, `passed` → `pass`.
    let n = chars.len();
    if stripped && n > 3 && chars[n - 1] == chars[n - 2] && !matches!(chars[n - 1], 'l' | 's' | 'z')
    {
        chars.pop();
    }
    if chars.len() > 3 && chars.last() == Some(&'e') {
        chars.pop();
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use domain::feedback::Severity;
    use domain::repository::{Commit, Conclusion};
    use serde_json::json;

    use super::*;
    use crate::fold_all;
    use crate::projection::fold_event;
    use crate::testing::{T0_MS, envelope, given, history, stored};

    fn s(text: &str) -> String {
        text.to_owned()
    }

    /// The `updated_at_ms` of an event at `seq` ([`crate::testing::recorded_at`]).
    fn ms(seq: u64) -> i64 {
        T0_MS + 60_000 * seq as i64
    }

    // ---- feedback ----

    fn submitted(text: &str) -> FeedbackEvent {
        FeedbackEvent::FeedbackSubmitted {
            text: s(text),
            source: s("web widget"),
            severity: Severity::High,
        }
    }

    fn triaged() -> FeedbackEvent {
        FeedbackEvent::FeedbackTriaged {
            board_id: s("b1"),
            card_id: s("c7"),
            labels: vec![s("checkout"), s("mobile")],
            evidence: None,
        }
    }

    fn feedback(seq: u64, event: &FeedbackEvent) -> EventEnvelope {
        envelope("feedback", "f1", seq, event)
    }

    #[test]
    fn submitted_feedback_is_an_open_document_titled_by_its_first_line() {
        let text = "\n  Checkout button does nothing on mobile Safari\nTried twice, iPhone 15.";
        given(&Knowledge, &[])
            .when(&feedback(1, &submitted(text)))
            .then_document(
                "feedback:f1",
                json!({
                    "kind": "feedback",
                    "title": "Checkout button does nothing on mobile Safari",
                    "text": format!("{text}\nweb widget"),
                    "status": "open",
                    "source": {"aggregate_type": "feedback", "aggregate_id": "f1"},
                    "link": "/v1/aggregates/feedback/f1",
                    "updated_at_ms": ms(1),
                    "version": 1,
                    "attributes": {"severity": "high"},
                }),
            );
    }

    #[test]
    fn triaged_feedback_names_its_card_and_keeps_it_when_closed() {
        let history = history("feedback", "f1", &[submitted("Login is slow")]);
        let body = given(&Knowledge, &history)
            .when(&feedback(2, &triaged()))
            .then_document("feedback:f1", {
                let mut expected = fold_all(&Knowledge, &history).unwrap()["feedback:f1"].clone();
                expected["status"] = json!("triaged");
                expected["updated_at_ms"] = json!(ms(2));
                expected["version"] = json!(2);
                expected["attributes"] = json!({
                    "severity": "high", "board_id": "b1", "card_id": "c7",
                    "labels": ["checkout", "mobile"],
                });
                expected
            });
        let mut events = history.clone();
        events.push(feedback(2, &triaged()));
        let closed = FeedbackEvent::FeedbackClosed {
            reason: s("fixed in 1.2"),
        };
        given(&Knowledge, &events)
            .when(&feedback(3, &closed))
            .then_document("feedback:f1", {
                let mut expected = body.clone();
                expected["status"] = json!("closed");
                expected["updated_at_ms"] = json!(ms(3));
                expected["version"] = json!(3);
                expected
            });
    }

    #[test]
    fn long_feedback_is_cut_but_keeps_its_source() {
        let line = "é".repeat(300);
        let text = format!("{line}\n{}", "word ".repeat(3000));
        let documents = fold_all(&Knowledge, &[feedback(1, &submitted(&text))]).unwrap();
        let document = &documents["feedback:f1"];
        let title = document["title"].as_str().unwrap();
        assert_eq!(title.chars().count(), FEEDBACK_TITLE_CHARS);
        assert!(title.ends_with("é…"), "{title}");
        let text = document["text"].as_str().unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES, "{}", text.len());
        assert!(text.len() > MAX_TEXT_BYTES - 8, "{}", text.len());
        assert!(
            text.ends_with("…\nweb widget"),
            "{}",
            &text[text.len() - 20..]
        );
    }

    #[test]
    fn feedback_events_that_do_not_fit_are_faults() {
        let closed = FeedbackEvent::FeedbackClosed { reason: s("dup") };
        let error = given(&Knowledge, &[])
            .when(&feedback(1, &closed))
            .then_fault();
        assert_eq!(
            error.reason,
            "`feedback:f1` has no document yet: its first event must be FeedbackSubmitted"
        );
        let history = history("feedback", "f1", &[submitted("x")]);
        let error = given(&Knowledge, &history)
            .when(&feedback(2, &submitted("y")))
            .then_fault();
        assert_eq!(error.reason, "the feedback was already submitted");
        let error = given(&Knowledge, &history)
            .when(&feedback(3, &triaged()))
            .then_fault();
        assert_eq!(
            error.reason,
            "the document has folded up to seq 1; seq 2 is missing"
        );
    }

    // ---- cards ----

    fn board(seq: u64, event: &BoardEvent) -> EventEnvelope {
        envelope("board", "b1", seq, event)
    }

    fn created() -> BoardEvent {
        BoardEvent::BoardCreated {
            title: s("Roadmap"),
            columns: vec![s("Inbox"), s("Doing")],
        }
    }

    fn card_added(card_id: &str, title: &str) -> BoardEvent {
        BoardEvent::CardAdded {
            card_id: s(card_id),
            title: s(title),
            column: s("Inbox"),
            labels: vec![s("bug"), s("mobile")],
        }
    }

    fn comment(card_id: &str, text: &str) -> BoardEvent {
        BoardEvent::CardCommented {
            card_id: s(card_id),
            author: s("ana"),
            text: s(text),
        }
    }

    fn card_body(seq: u64, text: &str, column: &str, comments: u64, status: &str) -> Value {
        json!({
            "kind": "card",
            "title": "Checkout broken on Safari",
            "text": text,
            "status": status,
            "source": {"aggregate_type": "board", "aggregate_id": "b1"},
            "link": "/v1/aggregates/board/b1",
            "updated_at_ms": ms(seq),
            "version": seq,
            "attributes": {
                "board_id": "b1", "card_id": "c1", "column": column,
                "labels": ["bug", "mobile"], "comments": comments,
            },
        })
    }

    #[test]
    fn an_added_card_is_an_open_document_with_its_title_and_labels() {
        let history = history("board", "b1", &[created()]);
        given(&Knowledge, &history)
            .when(&board(2, &card_added("c1", "Checkout broken on Safari")))
            .then_document(
                "card:b1:c1",
                card_body(
                    2,
                    "Checkout broken on Safari\nbug, mobile",
                    "Inbox",
                    0,
                    "open",
                ),
            );
    }

    #[test]
    fn comments_moves_and_archiving_shape_the_card() {
        let mut events = history(
            "board",
            "b1",
            &[created(), card_added("c1", "Checkout broken on Safari")],
        );
        let first = "Reproduced on\n iOS 17.";
        given(&Knowledge, &events)
            .when(&board(3, &comment("c1", first)))
            .then_document(
                "card:b1:c1",
                card_body(
                    3,
                    "Checkout broken on Safari\nbug, mobile\nana: Reproduced on iOS 17.",
                    "Inbox",
                    1,
                    "open",
                ),
            );
        events.push(board(3, &comment("c1", first)));
        let moved = BoardEvent::CardMoved {
            card_id: s("c1"),
            from_column: s("Inbox"),
            to_column: s("Doing"),
        };
        let text = "Checkout broken on Safari\nbug, mobile\nana: Reproduced on iOS 17.";
        given(&Knowledge, &events)
            .when(&board(4, &moved))
            .then_document("card:b1:c1", card_body(4, text, "Doing", 1, "open"));
        events.push(board(4, &moved));
        let archived = BoardEvent::CardArchived {
            card_id: s("c1"),
            column: s("Doing"),
        };
        given(&Knowledge, &events)
            .when(&board(5, &archived))
            .then_document("card:b1:c1", card_body(5, text, "Doing", 1, "archived"));
    }

    #[test]
    fn an_edit_rebuilds_the_header_and_keeps_the_comments() {
        let events = history(
            "board",
            "b1",
            &[
                created(),
                card_added("c1", "Checkout broken"),
                comment("c1", "Seen on Safari"),
            ],
        );
        let edited = BoardEvent::CardEdited {
            card_id: s("c1"),
            title: Some(s("Checkout broken on Safari")),
            labels: Some(vec![]),
        };
        let body = given(&Knowledge, &events)
            .when(&board(4, &edited))
            .then_document("card:b1:c1", {
                let mut expected = card_body(
                    4,
                    "Checkout broken on Safari\n\nana: Seen on Safari",
                    "Inbox",
                    1,
                    "open",
                );
                expected["attributes"]["labels"] = json!([]);
                expected
            });
        assert_eq!(
            search_text(&body).unwrap().title,
            "Checkout broken on Safari"
        );
    }

    #[test]
    fn a_card_keeps_its_newest_comments_within_8_kib_and_counts_them_all() {
        let mut events = vec![
            board(1, &created()),
            board(2, &card_added("c1", "Checkout broken on Safari")),
        ];
        for n in 0..40_u64 {
            let text = format!("comment {n} {}", "ü".repeat(1500));
            events.push(board(3 + n, &comment("c1", &text)));
        }
        let documents = fold_all(&Knowledge, &events).unwrap();
        let document = &documents["card:b1:c1"];
        let text = document["text"].as_str().unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES, "{}", text.len());
        assert_eq!(document["attributes"]["comments"], 40);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[..2], ["Checkout broken on Safari", "bug, mobile"]);
        // Each comment line is cut to 2 KiB, so three of the newest fit, in order.
        let kept: Vec<&str> = lines[2..]
            .iter()
            .map(|line| line.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(kept, ["37", "38", "39"]);
        assert!(lines[2..].iter().all(|line| line.len() <= 2048));
    }

    #[test]
    fn a_card_document_follows_only_its_own_cards_events() {
        let events = history(
            "board",
            "b1",
            &[
                created(),
                card_added("c1", "Checkout broken on Safari"),
                card_added("c2", "Dark mode"),
                comment("c2", "also on Android"),
            ],
        );
        let documents = fold_all(&Knowledge, &events).unwrap();
        assert_eq!(
            documents.keys().collect::<Vec<_>>(),
            ["card:b1:c1", "card:b1:c2"]
        );
        assert_eq!(documents["card:b1:c1"]["version"], 2);
        assert_eq!(documents["card:b1:c2"]["version"], 4);
        // The board's own events touch no document; a redelivered card event changes
        // nothing although the card document's version skips the board's other seqs.
        let wip = BoardEvent::WipLimitSet {
            column: s("Doing"),
            limit: Some(2),
        };
        given(&Knowledge, &events)
            .when(&board(5, &wip))
            .then_ignored();
        for event in &events[1..] {
            let [doc_id] = Knowledge.document_ids(event).try_into().unwrap();
            assert_eq!(
                Knowledge.apply(&doc_id, Some(&documents[&doc_id]), event),
                Ok(Some(documents[&doc_id].clone())),
                "seq {}",
                event.seq
            );
        }
        given(&Knowledge, &events)
            .when(&board(5, &comment("c1", "+1")))
            .then_document("card:b1:c1", {
                let mut expected = documents["card:b1:c1"].clone();
                expected["version"] = json!(5);
                expected["updated_at_ms"] = json!(ms(5));
                expected["text"] = json!("Checkout broken on Safari\nbug, mobile\nana: +1");
                expected["attributes"]["comments"] = json!(1);
                expected
            });
    }

    #[test]
    fn card_events_that_do_not_fit_are_faults() {
        let error = given(&Knowledge, &[board(1, &created())])
            .when(&board(2, &comment("c9", "hello")))
            .then_fault();
        assert_eq!(
            error.reason,
            "`card:b1:c9` has no document yet: its first event must be CardAdded"
        );
        let events = history("board", "b1", &[created(), card_added("c1", "t")]);
        let error = given(&Knowledge, &events)
            .when(&board(3, &card_added("c1", "again")))
            .then_fault();
        assert_eq!(error.reason, "`card:b1:c1` was already added");
        // v1 labels claimed as v2 do not decode: the event still reaches its document.
        let bad = stored(
            "board",
            "b1",
            3,
            "CardAdded",
            2,
            json!({"card_id": "c3", "title": "t", "column": "Inbox", "labels": "bug"}),
        );
        assert_eq!(Knowledge.document_ids(&bad), ["card:b1:c3"]);
        given(&Knowledge, &events).when(&bad).then_fault();
    }

    #[test]
    fn a_v1_card_added_folds_through_the_boards_upcaster() {
        let v1 = stored(
            "board",
            "b1",
            2,
            "CardAdded",
            1,
            json!({"card_id": "c1", "title": "Checkout broken on Safari", "column": "Inbox",
                   "labels": "bug, mobile"}),
        );
        given(&Knowledge, &[board(1, &created())])
            .when(&v1)
            .then_document(
                "card:b1:c1",
                card_body(
                    2,
                    "Checkout broken on Safari\nbug, mobile",
                    "Inbox",
                    0,
                    "open",
                ),
            );
    }

    // ---- error groups ----

    fn opened() -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupOpened {
            error_type: s("TypeError"),
            message: s("Cannot read properties of undefined (reading 'id')"),
            top_frame: Some(s("at renderCard (/assets/app.js:10:5)")),
            release: Some(s("web@1.4.0")),
            url: Some(s("https://app.example.com/board/7")),
            user_agent: Some(s("Mozilla/5.0")),
            count: 3,
            first_seen_ms: 61_000,
            last_seen_ms: 119_000,
            window_start_ms: 60_000,
        }
    }

    fn recurred(count: u32, window_start_ms: u64, release: Option<&str>) -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupRecurred {
            count,
            window_start_ms,
            first_seen_ms: window_start_ms + 1_000,
            last_seen_ms: window_start_ms + 59_000,
            release: release.map(s),
        }
    }

    fn resolved() -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupResolved {
            release: Some(s("web@1.4.1")),
            note: Some(s("guarded the lookup")),
        }
    }

    fn regressed() -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupRegressed {
            release: Some(s("web@1.5.0")),
            resolved_release: Some(s("web@1.4.1")),
            first_seen_ms: 600_000,
        }
    }

    fn group(seq: u64, event: &ErrorGroupEvent) -> EventEnvelope {
        envelope("error_group", "fp1", seq, event)
    }

    const ERROR_TEXT: &str = "TypeError\nCannot read properties of undefined (reading 'id')\n\
                              at renderCard (/assets/app.js:10:5)\n\
                              https://app.example.com/board/7\n";

    #[test]
    fn an_opened_error_group_is_an_open_document() {
        given(&Knowledge, &[])
            .when(&group(1, &opened()))
            .then_document(
                "error_group:fp1",
                json!({
                    "kind": "error_group",
                    "title": "TypeError: Cannot read properties of undefined (reading 'id')",
                    "text": format!("{ERROR_TEXT}web@1.4.0"),
                    "status": "open",
                    "source": {"aggregate_type": "error_group", "aggregate_id": "fp1"},
                    "link": "/v1/aggregates/error_group/fp1",
                    "updated_at_ms": ms(1),
                    "version": 1,
                    "attributes": {
                        "count": 3, "error_type": "TypeError", "last_release": "web@1.4.0",
                        "first_seen_ms": 61_000, "last_seen_ms": 119_000, "regressions": 0,
                        "ignored_until_ms": null,
                    },
                }),
            );
    }

    #[test]
    fn recurrences_sum_counts_widen_the_seen_range_and_track_the_release() {
        let history = history("error_group", "fp1", &[opened()]);
        let late = ErrorGroupEvent::ErrorGroupRecurred {
            count: 2,
            window_start_ms: 0,
            first_seen_ms: 5_000,
            last_seen_ms: 6_000,
            release: None,
        };
        let body = given(&Knowledge, &history)
            .when(&group(2, &late))
            .then_document("error_group:fp1", {
                let mut expected =
                    fold_all(&Knowledge, &history).unwrap()["error_group:fp1"].clone();
                expected["version"] = json!(2);
                expected["updated_at_ms"] = json!(ms(2));
                expected["attributes"]["count"] = json!(5);
                expected["attributes"]["first_seen_ms"] = json!(5_000);
                expected
            });
        let mut events = history.clone();
        events.push(group(2, &late));
        let body = given(&Knowledge, &events)
            .when(&group(3, &recurred(4, 180_000, Some("web@1.4.2"))))
            .then_document("error_group:fp1", {
                let mut expected = body.clone();
                expected["version"] = json!(3);
                expected["updated_at_ms"] = json!(ms(3));
                expected["text"] = json!(format!("{ERROR_TEXT}web@1.4.2"));
                expected["attributes"]["count"] = json!(9);
                expected["attributes"]["last_seen_ms"] = json!(239_000);
                expected["attributes"]["last_release"] = json!("web@1.4.2");
                expected
            });
        assert_eq!(body["status"], "open");
    }

    #[test]
    fn a_resolved_group_regresses_stays_regressed_until_resolved_again() {
        let statuses = |events: &[ErrorGroupEvent]| -> Vec<(String, u64, u64)> {
            let envelopes = history("error_group", "fp1", events);
            (1..=envelopes.len())
                .map(|n| {
                    let documents = fold_all(&Knowledge, &envelopes[..n]).unwrap();
                    let document = &documents["error_group:fp1"];
                    (
                        document["status"].as_str().unwrap().to_owned(),
                        document["attributes"]["count"].as_u64().unwrap(),
                        document["attributes"]["regressions"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        let life = statuses(&[
            opened(),
            resolved(),
            regressed(),
            recurred(2, 600_000, Some("web@1.5.0")),
            recurred(1, 660_000, None),
            resolved(),
            regressed(),
            recurred(5, 900_000, None),
        ]);
        let expected = [
            ("open", 3, 0),
            ("resolved", 3, 0),
            ("regressed", 3, 1),
            ("regressed", 5, 1),
            ("regressed", 6, 1),
            ("resolved", 6, 1),
            ("regressed", 6, 2),
            ("regressed", 11, 2),
        ];
        let expected: Vec<(String, u64, u64)> =
            expected.iter().map(|&(st, c, r)| (s(st), c, r)).collect();
        assert_eq!(life, expected);
    }

    #[test]
    fn an_ignored_group_records_until_when_and_a_resolution_clears_it() {
        let history = history("error_group", "fp1", &[opened(), regressed()]);
        let ignored = ErrorGroupEvent::ErrorGroupIgnored {
            until_ms: Some(1_800_000_000_000),
        };
        let body = given(&Knowledge, &history)
            .when(&group(3, &ignored))
            .then_document("error_group:fp1", {
                let mut expected =
                    fold_all(&Knowledge, &history).unwrap()["error_group:fp1"].clone();
                expected["status"] = json!("ignored");
                expected["version"] = json!(3);
                expected["updated_at_ms"] = json!(ms(3));
                expected["attributes"]["ignored_until_ms"] = json!(1_800_000_000_000_u64);
                expected
            });
        let mut events = history.clone();
        events.push(group(3, &ignored));
        events.push(group(4, &recurred(1, 700_000, None)));
        let documents = fold_all(&Knowledge, &events).unwrap();
        assert_eq!(documents["error_group:fp1"]["status"], "ignored");
        given(&Knowledge, &events)
            .when(&group(5, &resolved()))
            .then_document("error_group:fp1", {
                let mut expected = documents["error_group:fp1"].clone();
                expected["status"] = json!("resolved");
                expected["version"] = json!(5);
                expected["updated_at_ms"] = json!(ms(5));
                expected["attributes"]["ignored_until_ms"] = Value::Null;
                expected
            });
        assert_eq!(body["attributes"]["count"], 3);
    }

    #[test]
    fn an_error_group_with_huge_fields_stays_small_and_keeps_its_five_lines() {
        let huge = ErrorGroupEvent::ErrorGroupOpened {
            error_type: "E".repeat(200),
            message: "ß".repeat(2048),
            top_frame: Some("f".repeat(1024)),
            release: Some("r".repeat(200)),
            url: Some(format!("https://x/{}", "u".repeat(2030))),
            user_agent: None,
            count: 1,
            first_seen_ms: 1,
            last_seen_ms: 1,
            window_start_ms: 0,
        };
        let events = history(
            "error_group",
            "fp1",
            &[huge, recurred(1, 60_000, Some("web@2.0.0"))],
        );
        let documents = fold_all(&Knowledge, &events).unwrap();
        let document = &documents["error_group:fp1"];
        assert_eq!(
            document["title"].as_str().unwrap().chars().count(),
            MAX_TITLE_CHARS
        );
        let text = document["text"].as_str().unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES, "{}", text.len());
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4], "web@2.0.0");
        assert!(lines[1].ends_with("ß…") && lines[3].ends_with("u…"));
    }

    #[test]
    fn error_group_events_that_do_not_fit_are_faults() {
        let error = given(&Knowledge, &[])
            .when(&group(1, &resolved()))
            .then_fault();
        assert_eq!(
            error.reason,
            "`error_group:fp1` has no document yet: its first event must be ErrorGroupOpened"
        );
        let error = given(&Knowledge, &history("error_group", "fp1", &[opened()]))
            .when(&group(2, &opened()))
            .then_fault();
        assert_eq!(error.reason, "the error group was already opened");
        given(&Knowledge, &history("error_group", "fp1", &[opened()]))
            .when(&group(3, &resolved()))
            .then_fault();
    }

    // ---- repositories ----

    const REPO: &str = "octo-org~app";
    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn repo(seq: u64, event: &RepositoryEvent) -> EventEnvelope {
        envelope("repository", REPO, seq, event)
    }

    fn commit(message: &str) -> Commit {
        Commit {
            id: s(SHA_B),
            message: s(message),
            author: s("Mona"),
        }
    }

    fn push(git_ref: &str, after: &str, commits: Vec<Commit>) -> RepositoryEvent {
        RepositoryEvent::PushRecorded {
            delivery_id: format!("d-{git_ref}"),
            git_ref: s(git_ref),
            before: s(SHA_A),
            after: s(after),
            commit_count: commits.len() as u32,
            commits,
            pusher: s("mona"),
        }
    }

    fn pr(number: u64, title: &str) -> PullRequestRecorded {
        PullRequestRecorded {
            delivery_id: format!("d-pr-{title}"),
            number,
            title: s(title),
            author: s("mona"),
            url: format!("https://github.com/octo-org/app/pull/{number}"),
        }
    }

    fn run(conclusion: Conclusion) -> WorkflowRunRecorded {
        WorkflowRunRecorded {
            delivery_id: format!("d-run-{conclusion:?}"),
            run_id: 9001,
            name: s("CI"),
            conclusion,
            head_sha: s(SHA_B),
            branch: Some(s("main")),
            url: s("https://github.com/octo-org/app/actions/runs/9001"),
        }
    }

    fn repo_body(
        kind: &str,
        seq: u64,
        title: &str,
        text: &str,
        status: &str,
        attributes: Value,
    ) -> Value {
        json!({
            "kind": kind, "title": title, "text": text, "status": status,
            "source": {"aggregate_type": "repository", "aggregate_id": REPO},
            "link": "/v1/aggregates/repository/octo-org~app",
            "updated_at_ms": ms(seq), "version": seq, "attributes": attributes,
        })
    }

    #[test]
    fn a_push_is_a_document_of_its_commit_messages() {
        let event = push(
            "refs/heads/main",
            SHA_B,
            vec![
                commit("Guard the card lookup\n\nFixes the TypeError on /board"),
                commit("Fix checkout button on Safari"),
            ],
        );
        given(&Knowledge, &[]).when(&repo(1, &event)).then_document(
            &format!("push:{REPO}:{SHA_B}"),
            repo_body(
                "push",
                1,
                "main: Fix checkout button on Safari",
                "main\nmona\nGuard the card lookup Fixes the TypeError on /board (Mona)\n\
                     Fix checkout button on Safari (Mona)",
                "pushed",
                json!({
                    "branch": "main", "ref": "refs/heads/main", "pusher": "mona",
                    "before": SHA_A, "after": SHA_B, "commit_count": 2,
                }),
            ),
        );
    }

    #[test]
    fn the_same_commit_pushed_to_a_new_branch_keeps_its_messages() {
        let first = push("refs/heads/fix", SHA_B, vec![commit("Fix checkout")]);
        let branch = push("refs/heads/release", SHA_B, vec![]);
        let body = given(&Knowledge, &[repo(1, &first)])
            .when(&repo(2, &branch))
            .then_document(
                &format!("push:{REPO}:{SHA_B}"),
                repo_body(
                    "push",
                    2,
                    "mona pushed to release",
                    "release\nmona\nFix checkout (Mona)",
                    "pushed",
                    json!({
                        "branch": "release", "ref": "refs/heads/release", "pusher": "mona",
                        "before": SHA_A, "after": SHA_B, "commit_count": 0,
                    }),
                ),
            );
        assert!(search_text(&body).unwrap().text.contains("Fix checkout"));
    }

    #[test]
    fn a_branch_deletion_is_ignored_and_a_big_push_stays_small() {
        let deleted = push("refs/heads/old", ZERO_SHAS[0], vec![]);
        given(&Knowledge, &[])
            .when(&repo(1, &deleted))
            .then_ignored();
        let commits = (0..100)
            .map(|n| commit(&format!("commit {n} {}", "x".repeat(990))))
            .collect();
        let documents = fold_all(
            &Knowledge,
            &[repo(1, &push("refs/heads/main", SHA_B, commits))],
        )
        .unwrap();
        let text = documents[&format!("push:{REPO}:{SHA_B}")]["text"]
            .as_str()
            .unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES, "{}", text.len());
        assert!(text.ends_with(&format!("commit 99 {} (Mona)", "x".repeat(990))));
        assert!(!text.contains("commit 0 "));
    }

    #[test]
    fn a_pull_request_shows_its_latest_event() {
        let doc_id = format!("pull_request:{REPO}:42");
        let attributes = json!({
            "number": 42, "author": "mona", "url": "https://github.com/octo-org/app/pull/42",
        });
        // Merged without an "opened" on record: the source says so, the document follows.
        given(&Knowledge, &[])
            .when(&repo(
                1,
                &RepositoryEvent::PullRequestMerged(pr(42, "Guard card lookup")),
            ))
            .then_document(
                &doc_id,
                repo_body(
                    "pull_request",
                    1,
                    "Guard card lookup",
                    "Guard card lookup\n#42 by mona",
                    "merged",
                    attributes.clone(),
                ),
            );
        let life = [
            RepositoryEvent::PullRequestOpened(pr(42, "WIP: guard")),
            RepositoryEvent::PullRequestClosed(pr(42, "WIP: guard")),
            RepositoryEvent::PullRequestReopened(pr(42, "Guard card lookup")),
        ];
        let mut events = Vec::new();
        for (event, (seq, status)) in
            life.iter()
                .zip([(1, "opened"), (2, "closed"), (3, "reopened")])
        {
            let body = given(&Knowledge, &events)
                .when(&repo(seq, event))
                .then_document(&doc_id, {
                    let (RepositoryEvent::PullRequestOpened(pr)
                    | RepositoryEvent::PullRequestClosed(pr)
                    | RepositoryEvent::PullRequestReopened(pr)) = event
                    else {
                        unreachable!()
                    };
                    let text = format!("{}\n#42 by mona", pr.title);
                    repo_body(
                        "pull_request",
                        seq,
                        &pr.title,
                        &text,
                        status,
                        attributes.clone(),
                    )
                });
            assert_eq!(body["status"], status);
            events.push(repo(seq, event));
        }
    }

    #[test]
    fn a_ci_run_is_failed_or_succeeded_and_a_rerun_replaces_it() {
        let doc_id = format!("ci_run:{REPO}:9001");
        let attributes = |conclusion: &str| {
            json!({
                "run_id": 9001, "conclusion": conclusion, "workflow": "CI", "branch": "main",
                "head_sha": SHA_B, "url": "https://github.com/octo-org/app/actions/runs/9001",
            })
        };
        let failed = RepositoryEvent::WorkflowRunFailed(run(Conclusion::TimedOut));
        given(&Knowledge, &[])
            .when(&repo(1, &failed))
            .then_document(
                &doc_id,
                repo_body(
                    "ci_run",
                    1,
                    "CI failed on main",
                    &format!("CI\nmain\n{SHA_B}\ntimed_out"),
                    "failed",
                    attributes("timed_out"),
                ),
            );
        let succeeded = RepositoryEvent::WorkflowRunSucceeded(run(Conclusion::Success));
        given(&Knowledge, &[repo(1, &failed)])
            .when(&repo(2, &succeeded))
            .then_document(
                &doc_id,
                repo_body(
                    "ci_run",
                    2,
                    "CI succeeded on main",
                    &format!("CI\nmain\n{SHA_B}\nsuccess"),
                    "succeeded",
                    attributes("success"),
                ),
            );
        let mut detached = run(Conclusion::Failure);
        detached.branch = None;
        let documents = fold_all(
            &Knowledge,
            &[repo(1, &RepositoryEvent::WorkflowRunFailed(detached))],
        )
        .unwrap();
        assert_eq!(documents[&doc_id]["title"], format!("CI failed at {SHA_B}"));
        assert_eq!(documents[&doc_id]["attributes"]["branch"], Value::Null);
    }

    #[test]
    fn a_release_is_titled_by_its_name_or_its_tag() {
        let published = |name: &str| RepositoryEvent::ReleasePublished {
            delivery_id: s("d-rel"),
            tag: s("v1.5.0"),
            name: s(name),
            url: s("https://github.com/octo-org/app/releases/tag/v1.5.0"),
        };
        given(&Knowledge, &[])
            .when(&repo(1, &published("Spring release")))
            .then_document(
                &format!("release:{REPO}:v1.5.0"),
                repo_body(
                    "release",
                    1,
                    "Spring release",
                    "v1.5.0\nSpring release",
                    "published",
                    json!({
                        "tag": "v1.5.0", "name": "Spring release",
                        "url": "https://github.com/octo-org/app/releases/tag/v1.5.0",
                    }),
                ),
            );
        let documents = fold_all(&Knowledge, &[repo(1, &published(" "))]).unwrap();
        assert_eq!(
            documents[&format!("release:{REPO}:v1.5.0")]["title"],
            "v1.5.0"
        );
    }

    // ---- the whole projection ----

    /// A realistic day: feedback, the card triage made for it, an error group, and the
    /// repository events that fixed it — interleaved as the global stream delivers them.
    fn a_day() -> Vec<EventEnvelope> {
        vec![
            group(1, &opened()),
            feedback(
                1,
                &submitted("Checkout button does nothing on mobile Safari"),
            ),
            board(1, &created()),
            board(2, &card_added("c1", "Checkout broken on Safari")),
            feedback(2, &triaged()),
            repo(
                1,
                &RepositoryEvent::PullRequestOpened(pr(42, "Guard card lookup")),
            ),
            group(2, &recurred(4, 120_000, Some("web@1.4.0"))),
            board(3, &comment("c1", "Fix in #42")),
            repo(
                2,
                &RepositoryEvent::WorkflowRunFailed(run(Conclusion::Failure)),
            ),
            repo(
                3,
                &RepositoryEvent::WorkflowRunSucceeded(run(Conclusion::Success)),
            ),
            repo(
                4,
                &RepositoryEvent::PullRequestMerged(pr(42, "Guard card lookup")),
            ),
            repo(
                5,
                &push(
                    "refs/heads/main",
                    SHA_B,
                    vec![commit("Guard card lookup (#42)")],
                ),
            ),
            group(3, &resolved()),
            board(
                4,
                &BoardEvent::CardArchived {
                    card_id: s("c1"),
                    column: s("Inbox"),
                },
            ),
            feedback(3, &FeedbackEvent::FeedbackClosed { reason: s("fixed") }),
            group(4, &regressed()),
            group(5, &recurred(1, 600_000, Some("web@1.5.0"))),
        ]
    }

    #[test]
    fn a_projector_delivering_at_least_once_agrees_with_fold_all() {
        let events = a_day();
        let expected = fold_all(&Knowledge, &events).unwrap();
        // The projector's step, with every event delivered twice and then the whole
        // history again (a replay after a lost checkpoint).
        let mut stored: BTreeMap<String, Value> = BTreeMap::new();
        let deliveries = events
            .iter()
            .flat_map(|event| [event, event])
            .chain(events.iter());
        for event in deliveries {
            for change in fold_event(&Knowledge, event, |id| stored.get(id).cloned()).unwrap() {
                stored.insert(change.doc_id, change.body.unwrap());
            }
        }
        assert_eq!(stored, expected);
        let summary: Vec<(&str, &str)> = expected
            .iter()
            .map(|(id, body)| (id.as_str(), body["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ("card:b1:c1", "archived"),
                (&*format!("ci_run:{REPO}:9001"), "succeeded"),
                ("error_group:fp1", "regressed"),
                ("feedback:f1", "closed"),
                (&*format!("pull_request:{REPO}:42"), "merged"),
                (&*format!("push:{REPO}:{SHA_B}"), "pushed"),
            ]
        );
        for body in expected.values() {
            assert!(body["title"].as_str().unwrap().chars().count() <= MAX_TITLE_CHARS);
            assert!(body["text"].as_str().unwrap().len() <= MAX_TEXT_BYTES);
            let document: Document = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(serde_json::to_value(&document).unwrap(), *body);
        }
    }

    #[test]
    fn documents_are_listed_by_last_update_and_filtered_by_kind_and_status() {
        let documents = fold_all(&Knowledge, &a_day()).unwrap();
        assert_eq!(
            Knowledge.index(&documents["error_group:fp1"]),
            ListIndex {
                sort_key: ms(5),
                filters: vec![("kind", s("error_group")), ("status", s("regressed"))],
            }
        );
        assert_eq!(Knowledge.list_filters(), ["kind", "status"]);
        assert_eq!(Knowledge.versioned_name(), "knowledge@1");
    }

    #[test]
    fn search_text_reads_the_kind_title_and_text_of_a_body() {
        let documents = fold_all(&Knowledge, &a_day()).unwrap();
        assert_eq!(
            search_text(&documents["feedback:f1"]),
            Some(SearchText {
                kind: s("feedback"),
                title: s("Checkout button does nothing on mobile Safari"),
                text: s("Checkout button does nothing on mobile Safari\nweb widget"),
            })
        );
        assert_eq!(search_text(&json!({"kind": "card", "title": "t"})), None);
        assert_eq!(
            search_text(&json!({"kind": 1, "title": "t", "text": "x"})),
            None
        );
        assert_eq!(search_text(&json!("text")), None);
    }

    #[test]
    fn other_aggregates_and_unknown_event_types_are_ignored() {
        let cases = [
            stored("invoice", "i1", 1, "InvoicePaid", 1, json!({})),
            stored(
                "board",
                "b1",
                1,
                "BoardRenamed",
                1,
                json!({"card_id": "c1"}),
            ),
            stored("feedback", "f1", 1, "FeedbackReopened", 1, json!({})),
            stored("error_group", "fp1", 1, "ErrorGroupMerged", 1, json!({})),
            stored("repository", REPO, 1, "StarAdded", 1, json!({})),
            board(1, &created()),
            board(
                2,
                &BoardEvent::ColumnAdded {
                    name: s("Review"),
                    wip_limit: None,
                },
            ),
        ];
        for event in &cases {
            given(&Knowledge, &[]).when(event).then_ignored();
        }
        // An ignored event cannot be forced on a document either.
        let error = Knowledge.apply("card:b1:c1", None, &cases[1]).unwrap_err();
        assert_eq!(
            error.reason,
            "knowledge document `card:b1:c1` does not fold this event"
        );
        let error = Knowledge
            .apply("feedback:f2", None, &feedback(1, &submitted("x")))
            .unwrap_err();
        assert_eq!(
            error.reason,
            "knowledge document `feedback:f2` does not fold this event"
        );
    }

    #[test]
    fn every_domain_event_type_is_folded_or_deliberately_ignored() {
        use domain::aggregate::DomainEvent;
        fn typed<E: DomainEvent>(
            aggregate_type: &str,
            aggregate_id: &str,
            events: &[E],
        ) -> Vec<EventEnvelope> {
            history(aggregate_type, aggregate_id, events)
        }
        let moved = BoardEvent::CardMoved {
            card_id: s("c1"),
            from_column: s("Inbox"),
            to_column: s("Doing"),
        };
        let edited = BoardEvent::CardEdited {
            card_id: s("c1"),
            title: None,
            labels: None,
        };
        let archived = BoardEvent::CardArchived {
            card_id: s("c1"),
            column: s("Doing"),
        };
        let column = BoardEvent::ColumnAdded {
            name: s("Review"),
            wip_limit: None,
        };
        let wip = BoardEvent::WipLimitSet {
            column: s("Review"),
            limit: Some(1),
        };
        let release = RepositoryEvent::ReleasePublished {
            delivery_id: s("d"),
            tag: s("v1"),
            name: s("One"),
            url: s("u"),
        };
        // One event of every variant of the four aggregates' event enums.
        let mut every = Vec::new();
        every.extend(typed(
            "board",
            "b1",
            &[
                created(),
                column,
                wip,
                card_added("c1", "t"),
                moved,
                edited,
                comment("c1", "x"),
                archived,
            ],
        ));
        every.extend(typed(
            "feedback",
            "f1",
            &[
                submitted("x"),
                triaged(),
                FeedbackEvent::FeedbackClosed { reason: s("r") },
            ],
        ));
        every.extend(typed(
            "error_group",
            "fp1",
            &[
                opened(),
                recurred(1, 0, None),
                regressed(),
                resolved(),
                ErrorGroupEvent::ErrorGroupIgnored { until_ms: None },
            ],
        ));
        every.extend(typed(
            "repository",
            REPO,
            &[
                push("refs/heads/main", SHA_B, vec![]),
                RepositoryEvent::PullRequestOpened(pr(1, "t")),
                RepositoryEvent::PullRequestReopened(pr(1, "t")),
                RepositoryEvent::PullRequestMerged(pr(1, "t")),
                RepositoryEvent::PullRequestClosed(pr(1, "t")),
                RepositoryEvent::WorkflowRunSucceeded(run(Conclusion::Success)),
                RepositoryEvent::WorkflowRunFailed(run(Conclusion::Failure)),
                release,
            ],
        ));
        let (folded, ignored): (Vec<&EventEnvelope>, Vec<&EventEnvelope>) = every
            .iter()
            .partition(|event| !Knowledge.document_ids(event).is_empty());
        let ignored: Vec<&str> = ignored.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(ignored, ["BoardCreated", "ColumnAdded", "WipLimitSet"]);
        assert_eq!(folded.len(), every.len() - 3);
        // And the whole lot folds (the events are in an order each aggregate allows).
        let documents = fold_all(&Knowledge, &every).unwrap();
        let kinds: BTreeSet<&str> = documents
            .values()
            .map(|body| body["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "card",
                "ci_run",
                "error_group",
                "feedback",
                "pull_request",
                "push",
                "release"
            ]
        );
    }

    #[test]
    fn undecodable_payloads_and_bad_bodies_are_faults() {
        let bad = stored(
            "repository",
            REPO,
            1,
            "PullRequestOpened",
            1,
            json!({"number": 7}),
        );
        assert_eq!(
            Knowledge.document_ids(&bad),
            [format!("pull_request:{REPO}:7")]
        );
        let error = given(&Knowledge, &[]).when(&bad).then_fault();
        assert!(
            error.to_string().starts_with(&format!(
                "cannot fold PullRequestOpened v1 of repository:{REPO} at seq 1: "
            )),
            "{error}"
        );
        let error = Knowledge
            .apply(
                "feedback:f1",
                Some(&json!({"kind": "feedback"})),
                &feedback(1, &submitted("x")),
            )
            .unwrap_err();
        assert!(
            error
                .reason
                .starts_with("the stored document does not decode: "),
            "{error}"
        );
        let mut late = feedback(1, &submitted("x"));
        late.recorded_at = s("yesterday");
        given(&Knowledge, &[]).when(&late).then_fault();
    }

    // ---- fts_query ----

    #[test]
    fn fts_query_quotes_every_word_and_keeps_phrases() {
        assert_eq!(
            fts_query("checkout  safari", false).as_deref(),
            Some(r#""checkout" OR "safari""#)
        );
        assert_eq!(
            fts_query(r#"login "checkout button" mobile"#, true).as_deref(),
            Some(r#""login" AND "checkout button" AND "mobile""#)
        );
        assert_eq!(
            fts_query(r#""  checkout   button ""#, true).as_deref(),
            Some(r#""checkout button""#)
        );
        // Repeats count once; case is the tokenizer's business.
        assert_eq!(
            fts_query("crash crash Crash", true).as_deref(),
            Some(r#""crash" AND "Crash""#)
        );
    }

    #[test]
    fn fts_query_lets_no_fts5_syntax_through() {
        let cases = [
            (
                "NEAR(checkout safari, 2)",
                r#""NEAR(checkout" OR "safari," OR "2)""#,
            ),
            ("check*", r#""check*""#),
            ("title:checkout", r#""title:checkout""#),
            ("^start", r#""^start""#),
            ("a OR b", r#""a" OR "OR" OR "b""#),
            ("NOT secret", r#""NOT" OR "secret""#),
            ("-excluded +required", r#""-excluded" OR "+required""#),
            ("{title text}: x", r#""{title" OR "text}:" OR "x""#),
            (r#"x" OR title:*"#, r#""x" OR "OR" OR "title:*""#),
            (r#"say "hi"" there"#, r#""say" OR "hi" OR "there""#),
        ];
        for (input, expected) in cases {
            assert_eq!(
                fts_query(input, false).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        // Every emitted term is one FTS5 string: quotes come in pairs, and between terms
        // there is only the operator.
        let hostile = r#"a"b"c" "d ""e" f"g:"h NEAR("#;
        let query = fts_query(hostile, true).unwrap();
        for term in query.split(" AND ") {
            assert!(term.starts_with('"') && term.ends_with('"'), "{term}");
            let inner = &term[1..term.len() - 1];
            assert!(!inner.replace("\"\"", "").contains('"'), "{term}");
        }
    }

    #[test]
    fn fts_query_drops_what_is_not_searchable() {
        assert_eq!(fts_query("", true), None);
        assert_eq!(fts_query("   \t\n ", false), None);
        assert_eq!(fts_query(r#"*** () : ^ "" "!!" - 🚀"#, false), None);
        assert_eq!(fts_query(r#"""#, false), None);
        assert_eq!(
            fts_query("(crash) ***", false).as_deref(),
            Some(r#""(crash)""#)
        );
        // NUL and other control characters cannot cut or break the expression.
        assert_eq!(
            fts_query("bad\0input\u{7}", true).as_deref(),
            Some(r#""bad" AND "input""#)
        );
    }

    #[test]
    fn fts_query_keeps_unicode_words() {
        assert_eq!(
            fts_query("café naïve 東京 ошибка", true).as_deref(),
            Some(r#""café" AND "naïve" AND "東京" AND "ошибка""#)
        );
        assert_eq!(
            fts_query("«ошибка» 🚀launch", false).as_deref(),
            Some(r#""«ошибка»" OR "🚀launch""#)
        );
    }

    #[test]
    fn fts_query_bounds_the_terms() {
        let many: Vec<String> = (0..50).map(|n| format!("w{n}")).collect();
        let query = fts_query(&many.join(" "), false).unwrap();
        let terms: Vec<&str> = query.split(" OR ").collect();
        assert_eq!(terms.len(), MAX_QUERY_TERMS);
        assert_eq!((terms[0], terms[31]), (r#""w0""#, r#""w31""#));
        let long = "é".repeat(500);
        let query = fts_query(&long, true).unwrap();
        assert_eq!(query.chars().count(), MAX_TERM_CHARS + 2);
    }

    // ---- fuse ----

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| s(id)).collect()
    }

    #[test]
    fn fuse_ranks_documents_found_by_both_searches_first() {
        let fused = fuse(&ids(&["a", "b", "c"]), &ids(&["d", "b", "e"]), RRF_K, 10);
        let order: Vec<&str> = fused.iter().map(|(id, _)| id.as_str()).collect();
        // b is second in both lists; a and d are first in one list only.
        assert_eq!(order, ["b", "a", "d", "c", "e"]);
        assert_eq!(fused[0].1, 2.0 / 62.0);
        assert_eq!(fused[1].1, 1.0 / 61.0);
        assert_eq!(fused[1].1, fused[2].1, "a tie, broken by keyword rank");
        assert_eq!(RRF_K, 60.0);
    }

    #[test]
    fn fuse_breaks_ties_by_keyword_rank_then_id_and_honours_the_limit() {
        let fused = fuse(&[], &ids(&["z", "y"]), 1.0, 10);
        assert_eq!(fused, [(s("z"), 0.5), (s("y"), 1.0 / 3.0)]);
        // In both lists beats first in one: 1/1 + 1/2 against 1/1.
        let fused = fuse(&ids(&["k"]), &ids(&["m", "k"]), 0.0, 10);
        assert_eq!(fused[0], (s("k"), 1.5));
        let fused = fuse(&ids(&["x", "q"]), &ids(&["p", "x"]), RRF_K, 10);
        let order: Vec<&str> = fused.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["x", "p", "q"]);
        assert!(fuse(&[], &[], RRF_K, 3).is_empty());
        let fused = fuse(&ids(&["a", "b", "c"]), &ids(&["c", "b", "a"]), RRF_K, 2);
        // All three score 1/61 + 1/63 or 2/62: a and c tie, a is first by keyword rank.
        let order: Vec<&str> = fused.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["a", "c"]);
        assert!(fuse(&ids(&["a"]), &ids(&["a"]), RRF_K, 0).is_empty());
    }

    #[test]
    fn fuse_counts_a_repeated_id_at_its_first_place() {
        let fused = fuse(&ids(&["a", "a", "b"]), &[], RRF_K, 10);
        assert_eq!(fused, [(s("a"), 1.0 / 61.0), (s("b"), 1.0 / 63.0)]);
    }

    // ---- similarity ----

    #[test]
    fn near_duplicates_are_similar() {
        let pairs = [
            (
                "The checkout button does nothing on mobile Safari",
                "Checkout button not working in Safari on my phone",
            ),
            (
                "App crashes when uploading a large photo",
                "The app crashed while I was uploading big photos",
            ),
            (
                "Export to CSV is missing the last row",
                "CSV exports are missing rows at the end",
            ),
            (
                "Login page keeps loading forever",
                "login keeps loading and never finishes",
            ),
        ];
        for (a, b) in pairs {
            let score = similarity(a, b);
            assert!(score >= 0.4, "{score}: {a} / {b}");
            assert_eq!(score, similarity(b, a), "symmetric");
        }
    }

    #[test]
    fn distinct_texts_are_not_similar() {
        let pairs = [
            (
                "The checkout button does nothing on mobile Safari",
                "Dark mode colours are wrong in the settings page",
            ),
            (
                "App crashes when uploading a large photo",
                "Please add an export to CSV for invoices",
            ),
            (
                "Login page keeps loading forever",
                "Typo in the pricing table: 'anual' plan",
            ),
        ];
        for (a, b) in pairs {
            let score = similarity(a, b);
            assert!(score <= 0.15, "{score}: {a} / {b}");
            assert_eq!(score, similarity(b, a), "symmetric");
        }
    }

    #[test]
    fn similarity_is_one_for_the_same_words_and_zero_without_any() {
        let text = "Checkout button does nothing on mobile Safari";
        assert_eq!(similarity(text, text), 1.0);
        assert_eq!(
            similarity(text, "safari MOBILE checkout, button: nothing!"),
            1.0
        );
        assert_eq!(similarity("", text), 0.0);
        assert_eq!(similarity(text, ""), 0.0);
        assert_eq!(similarity("the and of", "the and of"), 0.0);
        assert_eq!(similarity("東京 エラー", "東京 エラー"), 1.0);
    }

    #[test]
    fn the_stemmer_joins_inflections_and_leaves_short_words() {
        let pairs = [
            ("crashes", "crash"),
            ("crashed", "crash"),
            ("working", "work"),
            ("works", "work"),
            ("quickly", "quick"),
            ("pages", "page"),
            ("saved", "save"),
            ("stopped", "stop"),
            ("boxes", "box"),
        ];
        for (a, b) in pairs {
            assert_eq!(stem(a), stem(b), "{a} ~ {b}");
        }
        for word in ["bus", "class", "status", "thing", "need", "falling", "fall"] {
            assert!(stem(word).chars().count() >= 3, "{word}");
        }
        assert_eq!(stem("falling"), stem("fall"));
        assert_ne!(stem("class"), stem("clas"));
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOPWORDS, "sorted, for binary_search");
    }

    // ---- apply_events: a page folded at once ----

    /// Every cut of a history into what is stored and a page folded by `apply_events` gives,
    /// per document, what `apply` gives one event at a time, redeliveries included.
    #[test]
    fn a_page_folded_at_once_equals_its_events_folded_one_by_one() {
        let mut events = vec![
            feedback(1, &submitted("Checkout fails")),
            board(1, &created()),
            board(2, &card_added("c7", "Checkout")),
            board(3, &comment("c7", "seen on iOS")),
            feedback(2, &triaged()),
            board(4, &comment("c7", "and Android")),
        ];
        events.insert(4, events[3].clone()); // a redelivery inside the page
        for cut in 0..events.len() {
            let stored = fold_all(&Knowledge, &events[..cut]).unwrap();
            let mut doc_ids: Vec<String> = events
                .iter()
                .flat_map(|e| Knowledge.document_ids(e))
                .collect();
            doc_ids.dedup();
            for doc_id in doc_ids {
                let page: Vec<&EventEnvelope> = events[cut..]
                    .iter()
                    .filter(|e| Knowledge.document_ids(e).contains(&doc_id))
                    .collect();
                let mut one_by_one = stored.get(&doc_id).cloned();
                for event in &page {
                    one_by_one = Knowledge
                        .apply(&doc_id, one_by_one.as_ref(), event)
                        .unwrap();
                }
                let at_once = Knowledge
                    .apply_events(&doc_id, stored.get(&doc_id).cloned(), &page)
                    .unwrap();
                assert_eq!(at_once, one_by_one, "{doc_id}, cut after {cut} events");
            }
        }
    }

    /// Adding a comment line in place keeps exactly the lines that rebuilding the text from
    /// all its lines keeps, at every length around the 8 KiB budget (and empty labels).
    #[test]
    fn a_comment_added_in_place_equals_the_text_rebuilt_from_its_lines() {
        for labels in ["", "bug, mobile"] {
            let header = vec![s("A title"), s(labels)];
            let mut lines: Vec<String> = Vec::new();
            let mut text = lines_within(header.clone(), Vec::new());
            for i in 0..400usize {
                let line = "x".repeat(1 + (i * 37) % 700) + &format!(" {i}");
                let line = if i % 97 == 5 {
                    "y".repeat(MAX_TEXT_BYTES)
                } else {
                    line
                };
                text = with_newest_line(&text, &line);
                lines.push(line);
                assert_eq!(
                    text,
                    lines_within(header.clone(), lines.clone()),
                    "after {i}"
                );
            }
        }
    }
}
