//! Given/when/then tests for folds, and envelopes as the stream delivers them:
//!
//! ```
//! use domain::board::BoardEvent;
//! use projections::board_summary::BoardSummary;
//! use projections::testing::{envelope, given, history};
//!
//! let created = BoardEvent::BoardCreated { title: "B".into(), columns: vec!["Todo".into()] };
//! let archived = BoardEvent::CardArchived { card_id: "c1".into(), column: "Todo".into() };
//! given(&BoardSummary, &history("board", "b1", &[created]))
//!     .when(&envelope("board", "b1", 2, &archived))
//!     .then_fault();
//! ```
//!
//! Event `seq` is recorded `seq` minutes after [`T0_MS`] (`2026-11-29T10:00:00.000Z`), so
//! a test can write the times it expects ([`recorded_at`]).
//!
//! Besides the comparison it is asked for, [`When::then_document`] checks that the same event
//! delivered again changes nothing: the projections here follow one aggregate each and
//! skip seqs they have folded ([`crate::projection::sequence`]). The assertions panic with the
//! caller's location. A public module without test-only dependencies, so the projector's
//! tests can use it too.

use std::collections::BTreeMap;

use domain::EventEnvelope;
use domain::aggregate::{DomainEvent, encode_event};
use domain::envelope::format_timestamp;
use serde_json::Value;

use crate::projection::{DocChange, FoldError, Projection, fold_all, fold_event};

/// When seq 0 would have been recorded: `2026-11-29T10:00:00.000Z`.
pub const T0_MS: i64 = 1_795_946_400_000;

/// The `recorded_at` of the event at `seq`: `seq` minutes after [`T0_MS`].
pub fn recorded_at(seq: u64) -> String {
    let minutes = i64::try_from(seq).unwrap_or(i64::MAX);
    format_timestamp(T0_MS.saturating_add(minutes.saturating_mul(60_000)))
}

/// The envelope of a typed event, stored at its current schema version.
pub fn envelope<E: DomainEvent>(
    aggregate_type: &str,
    aggregate_id: &str,
    seq: u64,
    event: &E,
) -> EventEnvelope {
    let encoded = encode_event(event).expect("a test event encodes");
    stored(
        aggregate_type,
        aggregate_id,
        seq,
        encoded.event_type,
        encoded.schema_version,
        encoded.data,
    )
}

/// The envelope of a payload as it sits in a log, of any schema version (an old one, or one
/// that does not decode).
pub fn stored(
    aggregate_type: &str,
    aggregate_id: &str,
    seq: u64,
    event_type: &str,
    schema_version: u32,
    data: Value,
) -> EventEnvelope {
    EventEnvelope {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        seq,
        event_id: format!("{aggregate_type}:{aggregate_id}:{seq}"),
        event_type: event_type.to_owned(),
        schema_version,
        data,
        recorded_at: recorded_at(seq),
        command_id: None,
        correlation_id: None,
        causation_id: None,
        actor: None,
        position: None,
    }
}

/// One aggregate's events as envelopes with seqs from 1.
pub fn history<E: DomainEvent>(
    aggregate_type: &str,
    aggregate_id: &str,
    events: &[E],
) -> Vec<EventEnvelope> {
    events
        .iter()
        .zip(1..)
        .map(|(event, seq)| envelope(aggregate_type, aggregate_id, seq, event))
        .collect()
}

/// Starts a test from the documents `history` folds into (it must fold).
#[track_caller]
pub fn given<'a>(projection: &'a dyn Projection, history: &[EventEnvelope]) -> Given<'a> {
    let documents = fold_all(projection, history)
        .unwrap_or_else(|e| panic!("the given history does not fold: {e}"));
    Given {
        projection,
        documents,
    }
}

/// A projection's documents after a history, ready for one event.
#[derive(Debug)]
pub struct Given<'a> {
    projection: &'a dyn Projection,
    documents: BTreeMap<String, Value>,
}

impl<'a> Given<'a> {
    pub fn documents(&self) -> &BTreeMap<String, Value> {
        &self.documents
    }

    /// Folds one more event against the documents.
    pub fn when(self, event: &EventEnvelope) -> When<'a> {
        let outcome = fold_event(self.projection, event, |id| self.documents.get(id).cloned());
        When {
            projection: self.projection,
            event: event.clone(),
            outcome,
        }
    }
}

/// The outcome of folding one event.
#[derive(Debug)]
pub struct When<'a> {
    projection: &'a dyn Projection,
    event: EventEnvelope,
    outcome: Result<Vec<DocChange>, FoldError>,
}

impl When<'_> {
    /// Asserts the event changed exactly one document, `doc_id`, into `expected`, and that
    /// delivering the event again leaves that body unchanged. Returns the body.
    #[track_caller]
    pub fn then_document(self, doc_id: &str, expected: Value) -> Value {
        let changes = match self.outcome {
            Ok(changes) => changes,
            Err(e) => panic!("expected document `{doc_id}`, the fold failed: {e}"),
        };
        let [DocChange { doc_id: id, body }] = changes.as_slice() else {
            panic!("expected one change, to `{doc_id}`; got {changes:?}");
        };
        assert_eq!(id, doc_id, "the changed document");
        let Some(body) = body else {
            panic!("expected document `{doc_id}`, it was deleted");
        };
        assert_eq!(*body, expected, "the body of `{doc_id}`");
        let again = self.projection.apply(doc_id, Some(body), &self.event);
        assert_eq!(
            again.as_ref().map(Option::as_ref),
            Ok(Some(body)),
            "delivering seq {} again changed `{doc_id}`",
            self.event.seq
        );
        expected
    }

    /// Asserts the projection ignores the event: no document is touched.
    #[track_caller]
    pub fn then_ignored(self) {
        assert_eq!(self.outcome, Ok(vec![]), "expected the event to be ignored");
    }

    /// Asserts the projection cannot fold the event. Returns the error.
    #[track_caller]
    pub fn then_fault(self) -> FoldError {
        match self.outcome {
            Err(e) => e,
            Ok(changes) => panic!("expected a fault, got {changes:?}"),
        }
    }
}
