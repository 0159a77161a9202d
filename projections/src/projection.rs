//! The projection abstraction: [`Projection`], what a fold produces ([`DocChange`],
//! [`ListIndex`]), why it can fail ([`FoldError`]), and the two ways to run one
//! ([`fold_event`] for one event against stored documents, [`fold_all`] for a whole history).

use std::collections::BTreeMap;

use domain::EventEnvelope;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// A change to one document: its new body, or `None` = delete.
#[derive(Debug, Clone, PartialEq)]
pub struct DocChange {
    pub doc_id: String,
    pub body: Option<Value>,
}

/// What a searchable projection's document puts in the full-text index: its kind (a
/// filter) and two weighted columns, the title (weighs more) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    pub kind: String,
    pub title: String,
    pub text: String,
}

/// What a list of documents is filtered and sorted by. The projector stores these in indexed
/// columns beside the body, so a list query never parses bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListIndex {
    /// Lists are served newest (largest) first.
    pub sort_key: i64,
    /// `(filter name, value)`, one per name in [`Projection::list_filters`], in that order.
    pub filters: Vec<(&'static str, String)>,
}

/// A pure fold from events to read-model documents keyed by id, named and versioned
/// (`board_summary@1`). Bump [`Projection::version`] whenever the same events would give
/// other documents: the projector rebuilds the new version from offset 0 while the old one
/// keeps serving.
pub trait Projection: Sync {
    /// The name in routes and storage, snake_case: `board_summary`.
    fn name(&self) -> &'static str;

    /// The version of the fold; documents of two versions are never mixed.
    fn version(&self) -> u32;

    /// The one aggregate type whose events this projection folds, if it folds only one:
    /// the projector then reads its partitions filtered to that type (`aggregate_type`, as
    /// `GET /v1/stream` takes it), so events of other types are neither sent nor decoded.
    /// [`Projection::document_ids`] must be empty for every event of another type.
    /// Default `None`: every event is read.
    fn aggregate_type(&self) -> Option<&'static str> {
        None
    }

    /// The documents `event` touches (empty: the projection ignores it).
    fn document_ids(&self, event: &EventEnvelope) -> Vec<String>;

    /// The document's new body after `event` (`None`: deleted). `current` is the stored body
    /// (`None`: none yet). An error means this projection cannot fold the event: the projector
    /// marks it faulted.
    fn apply(
        &self,
        doc_id: &str,
        current: Option<&Value>,
        event: &EventEnvelope,
    ) -> Result<Option<Value>, FoldError>;

    /// The document's body after `events`, folded in order: exactly what
    /// [`Projection::apply`] gives for each in turn (the default does that). The projector
    /// folds a page's events document by document through it, so a projection whose documents
    /// grow large (a board with all its cards) overrides it to decode and encode the body
    /// once per page instead of once per event. The error is the first event's that cannot be
    /// folded; the projector then folds that page event by event to fault at it.
    fn apply_events(
        &self,
        doc_id: &str,
        current: Option<Value>,
        events: &[&EventEnvelope],
    ) -> Result<Option<Value>, FoldError> {
        let mut body = current;
        for event in events {
            body = self.apply(doc_id, body.as_ref(), event)?;
        }
        Ok(body)
    }

    /// The list index of a body this projection produced.
    fn index(&self, body: &Value) -> ListIndex;

    /// The filter names a list query accepts (e.g. `["status", "severity"]`).
    fn list_filters(&self) -> &'static [&'static str];

    /// Whether the projector keeps a full-text index (SQLite FTS5) of this projection's
    /// documents, from [`Projection::search_text`]. Default: no.
    fn searchable(&self) -> bool {
        false
    }

    /// What of a body the full-text index holds (`None`: the document is not searchable).
    /// Only asked when [`Projection::searchable`].
    fn search_text(&self, _body: &Value) -> Option<SearchText> {
        None
    }

    /// Whether the Convex mirror copies this projection's documents into Convex (when
    /// `CONVEX_URL` is set). Convex needs a home for them, a table and an entry in the
    /// `projections` of `convex/mirror.ts`, or it refuses every batch
    /// (`unknown_projection`). Default: yes.
    fn mirrored(&self) -> bool {
        true
    }

    /// `name@version`, e.g. `board_summary@1`.
    fn versioned_name(&self) -> String {
        format!("{}@{}", self.name(), self.version())
    }
}

/// Shows `name@version`, so `Option<&dyn Projection>` can be asserted on and logged.
impl std::fmt::Debug for dyn Projection + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.versioned_name())
    }
}

/// A projection cannot fold an event: the event does not decode, or it does not fit the
/// document (a gap in the aggregate's seqs, a card the board does not have). Either the log
/// holds something the fold does not understand or the fold has a bug; the projector marks
/// the projection faulted rather than serve a document that quietly disagrees with the log.
/// An internal error (HTTP 500, logged), never a client's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot fold {event_type} v{schema_version} of {aggregate_type}:{aggregate_id} at seq {seq}: {reason}"
)]
pub struct FoldError {
    pub event_type: String,
    pub schema_version: u32,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub seq: u64,
    pub reason: String,
}

impl FoldError {
    /// An error about `event`.
    pub fn new(event: &EventEnvelope, reason: impl Into<String>) -> Self {
        Self {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            seq: event.seq,
            reason: reason.into(),
        }
    }
}

/// Folds one event into the documents it touches: reads each one's stored body with `load`
/// and answers the changes to write, in [`Projection::document_ids`] order. The projector's
/// step; [`fold_all`] is made of it.
pub fn fold_event(
    projection: &dyn Projection,
    event: &EventEnvelope,
    mut load: impl FnMut(&str) -> Option<Value>,
) -> Result<Vec<DocChange>, FoldError> {
    projection
        .document_ids(event)
        .into_iter()
        .map(|doc_id| {
            let current = load(&doc_id);
            let body = projection.apply(&doc_id, current.as_ref(), event)?;
            Ok(DocChange { doc_id, body })
        })
        .collect()
}

/// Folds events, in order, into a map doc id → body: the reference the projector must agree
/// with (tests, rebuild checks).
pub fn fold_all(
    projection: &dyn Projection,
    events: &[EventEnvelope],
) -> Result<BTreeMap<String, Value>, FoldError> {
    let mut documents = BTreeMap::new();
    for event in events {
        for change in fold_event(projection, event, |id| documents.get(id).cloned())? {
            match change.body {
                Some(body) => documents.insert(change.doc_id, body),
                None => documents.remove(&change.doc_id),
            };
        }
    }
    Ok(documents)
}

/// Where an event stands against a document that follows one aggregate and has folded its
/// events up to `version` (0: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// `seq == version + 1`: fold it.
    Next,
    /// `seq <= version`: already folded in (a redelivery); the document stays as it is.
    AlreadyFolded,
}

/// The stream delivers each aggregate's events once each, densely, in seq order (its
/// partition's watermark rule), so a later seq means events were lost on the way: a
/// [`FoldError`], not a document that silently skipped them. An earlier one is a redelivery
/// and changes nothing, which makes every fold built on this idempotent.
pub fn sequence(version: u64, event: &EventEnvelope) -> Result<Sequence, FoldError> {
    if event.seq <= version {
        Ok(Sequence::AlreadyFolded)
    } else if event.seq == version + 1 {
        Ok(Sequence::Next)
    } else {
        Err(FoldError::new(
            event,
            format!(
                "the document has folded up to seq {version}; seq {} is missing",
                version + 1
            ),
        ))
    }
}

/// Decodes a stored body into a projection's document type.
pub(crate) fn decode_body<T: DeserializeOwned>(
    body: &Value,
    event: &EventEnvelope,
) -> Result<T, FoldError> {
    T::deserialize(body)
        .map_err(|e| FoldError::new(event, format!("the stored document does not decode: {e}")))
}

/// [`Projection::apply_events`] for a projection whose documents are the serde type `D`:
/// decodes the stored body once, then for each event checks that it belongs to the document
/// (`check`), skips it if the document has folded it already (`folded`), else folds it
/// (`fold`); encodes once at the end, and hands `current` back untouched if no event
/// changed it — exactly what `apply` gives event by event, errors included.
pub(crate) fn apply_events_typed<D: Serialize + DeserializeOwned>(
    current: Option<Value>,
    events: &[&EventEnvelope],
    check: impl Fn(&EventEnvelope) -> Result<(), FoldError>,
    folded: impl Fn(Option<&D>, &EventEnvelope) -> Result<bool, FoldError>,
    fold: impl Fn(Option<D>, &EventEnvelope) -> Result<D, FoldError>,
) -> Result<Option<Value>, FoldError> {
    let Some(first) = events.first() else {
        return Ok(current);
    };
    check(first)?;
    let mut document: Option<D> = current
        .as_ref()
        .map(|b| decode_body(b, first))
        .transpose()?;
    let mut changed = false;
    for event in events {
        check(event)?;
        if folded(document.as_ref(), event)? {
            continue;
        }
        document = Some(fold(document, event)?);
        changed = true;
    }
    Ok(match (changed, document) {
        (true, Some(document)) => Some(encode_body(&document)),
        _ => current,
    })
}

/// Encodes a document into its body. Our document types are plain structs of strings,
/// numbers, lists and options, which serde_json always encodes.
pub(crate) fn encode_body<T: Serialize>(document: &T) -> Value {
    serde_json::to_value(document).unwrap_or(Value::Null)
}

/// Milliseconds since the epoch of an envelope's `recorded_at`, which a sort key is made of.
pub(crate) fn recorded_at_ms(event: &EventEnvelope) -> Result<i64, FoldError> {
    domain::envelope::parse_timestamp(&event.recorded_at).ok_or_else(|| {
        FoldError::new(
            event,
            format!(
                "`recorded_at` {:?} is not an RFC 3339 time",
                event.recorded_at
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::stored;

    /// Counts each aggregate's events; `Deleted` deletes the count, `Touched` also touches a
    /// shared `all` document. The folds of the real projections never delete.
    struct Counter;

    impl Projection for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn version(&self) -> u32 {
            1
        }
        fn document_ids(&self, event: &EventEnvelope) -> Vec<String> {
            match event.event_type.as_str() {
                "Ignored" => vec![],
                "Touched" => vec![event.aggregate_id.clone(), "all".to_owned()],
                _ => vec![event.aggregate_id.clone()],
            }
        }
        fn apply(
            &self,
            _doc_id: &str,
            current: Option<&Value>,
            event: &EventEnvelope,
        ) -> Result<Option<Value>, FoldError> {
            match event.event_type.as_str() {
                "Deleted" => Ok(None),
                "Broken" => Err(FoldError::new(event, "broken")),
                _ => Ok(Some(json!(
                    current.and_then(Value::as_u64).unwrap_or(0) + 1
                ))),
            }
        }
        fn index(&self, body: &Value) -> ListIndex {
            ListIndex {
                sort_key: body.as_i64().unwrap_or(0),
                filters: vec![],
            }
        }
        fn list_filters(&self) -> &'static [&'static str] {
            &[]
        }
    }

    fn event(aggregate_id: &str, seq: u64, event_type: &str) -> EventEnvelope {
        stored("thing", aggregate_id, seq, event_type, 1, json!({}))
    }

    #[test]
    fn fold_event_answers_one_change_per_document_in_order() {
        let changes = fold_event(&Counter, &event("a", 1, "Touched"), |id| {
            (id == "all").then(|| json!(41))
        });
        assert_eq!(
            changes,
            Ok(vec![
                DocChange {
                    doc_id: "a".to_owned(),
                    body: Some(json!(1))
                },
                DocChange {
                    doc_id: "all".to_owned(),
                    body: Some(json!(42))
                },
            ])
        );
        assert_eq!(
            fold_event(&Counter, &event("a", 2, "Ignored"), |_| None),
            Ok(vec![])
        );
    }

    #[test]
    fn fold_all_applies_deletes_and_stops_at_the_first_fault() {
        let events = [
            event("a", 1, "Touched"),
            event("b", 1, "Touched"),
            event("a", 2, "Counted"),
            event("b", 2, "Deleted"),
            event("a", 3, "Ignored"),
        ];
        let documents = fold_all(&Counter, &events).unwrap();
        assert_eq!(
            documents.into_iter().collect::<Vec<_>>(),
            [("a".to_owned(), json!(2)), ("all".to_owned(), json!(2))]
        );
        let mut broken = events.to_vec();
        broken.insert(2, event("a", 2, "Broken"));
        let error = fold_all(&Counter, &broken).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot fold Broken v1 of thing:a at seq 2: broken"
        );
    }

    #[test]
    fn sequence_takes_the_next_seq_skips_folded_ones_and_refuses_gaps() {
        let at = |seq| event("a", seq, "Counted");
        assert_eq!(sequence(0, &at(1)), Ok(Sequence::Next));
        assert_eq!(sequence(4, &at(5)), Ok(Sequence::Next));
        assert_eq!(sequence(4, &at(4)), Ok(Sequence::AlreadyFolded));
        assert_eq!(sequence(4, &at(1)), Ok(Sequence::AlreadyFolded));
        let error = sequence(4, &at(6)).unwrap_err();
        assert_eq!(
            error.reason,
            "the document has folded up to seq 4; seq 5 is missing"
        );
        assert_eq!(format!("{:?}", &Counter as &dyn Projection), "counter@1");
    }
}
