//! `feedback_inbox@1`: one document per feedback item (doc id = feedback id), what a triage
//! inbox lists and filters.
//!
//! ```json
//! {"feedback_id": "f1", "text": "Login is slow", "source": "web", "severity": "high",
//!  "status": "triaged", "card": {"board_id": "b1", "card_id": "c1"}, "labels": ["perf"],
//!  "closed_reason": null, "submitted_at": "2026-11-29T10:01:00.000Z",
//!  "updated_at": "2026-11-29T10:02:00.000Z", "version": 2}
//! ```
//!
//! * `severity` (`low`, `medium`, `high`, `critical`) and `status` (`open`, `triaged`,
//!   `closed`) are the domain's own JSON strings ([`domain::feedback::Severity`],
//!   [`domain::feedback::Status`]).
//! * `card` and `labels` are where triage put the work (`null` and `[]` until triaged, kept
//!   after closing); `closed_reason` is `null` until closed.
//! * `submitted_at` is the `recorded_at` of `FeedbackSubmitted`, `updated_at` that of the last
//!   event; `version` that event's seq.
//!
//! Like every fold here it enforces no business rule (a second triage, a triage after
//! closing are the aggregate's to refuse) but faults on an event that does not fit: a gap
//! in the seqs, or any event before `FeedbackSubmitted`.
//!
//! List index: newest submission first; filters `status` and `severity`.

use domain::EventEnvelope;
use domain::aggregate::{Aggregate, decode_event};
use domain::envelope::{format_timestamp, parse_timestamp};
use domain::feedback::{Feedback, FeedbackEvent, Severity, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::{
    FoldError, ListIndex, Projection, Sequence, decode_body, encode_body, recorded_at_ms, sequence,
};

/// The projection's name.
pub const NAME: &str = "feedback_inbox";
/// The fold's version.
pub const VERSION: u32 = 1;
/// The filters of a list query, in [`ListIndex::filters`] order.
pub const FILTERS: &[&str] = &["status", "severity"];

/// The `feedback_inbox` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedbackInbox;

/// One feedback item in the inbox, the document's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub feedback_id: String,
    pub text: String,
    pub source: String,
    pub severity: Severity,
    pub status: Status,
    /// The card triage put the work on; `None` until triaged.
    pub card: Option<CardRef>,
    /// Triage's labels; empty until triaged.
    pub labels: Vec<String>,
    pub closed_reason: Option<String>,
    pub submitted_at: String,
    pub updated_at: String,
    /// The seq of the last event folded in.
    pub version: u64,
}

/// A card on a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRef {
    pub board_id: String,
    pub card_id: String,
}

impl Projection for FeedbackInbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn aggregate_type(&self) -> Option<&'static str> {
        Some(Feedback::TYPE)
    }

    fn document_ids(&self, event: &EventEnvelope) -> Vec<String> {
        if event.aggregate_type == Feedback::TYPE {
            vec![event.aggregate_id.clone()]
        } else {
            Vec::new()
        }
    }

    fn apply(
        &self,
        doc_id: &str,
        current: Option<&Value>,
        event: &EventEnvelope,
    ) -> Result<Option<Value>, FoldError> {
        if event.aggregate_type != Feedback::TYPE || event.aggregate_id != doc_id {
            return Err(FoldError::new(
                event,
                format!("feedback_inbox document `{doc_id}` folds only that feedback's events"),
            ));
        }
        let document: Option<Document> = current.map(|b| decode_body(b, event)).transpose()?;
        let version = document.as_ref().map_or(0, |d| d.version);
        if sequence(version, event)? == Sequence::AlreadyFolded {
            return Ok(current.cloned());
        }
        let at = format_timestamp(recorded_at_ms(event)?);
        let decoded =
            decode_event::<Feedback>(&event.event_type, event.schema_version, event.data.clone())
                .map_err(|e| FoldError::new(event, e.0))?;
        let mut document = match (document, decoded) {
            (
                None,
                FeedbackEvent::FeedbackSubmitted {
                    text,
                    source,
                    severity,
                },
            ) => Document {
                feedback_id: doc_id.to_owned(),
                text,
                source,
                severity,
                status: Status::Open,
                card: None,
                labels: Vec::new(),
                closed_reason: None,
                submitted_at: at.clone(),
                updated_at: String::new(),
                version: 0,
            },
            (None, _) => {
                return Err(FoldError::new(
                    event,
                    "the feedback has no document yet: its first event must be FeedbackSubmitted",
                ));
            }
            (Some(_), FeedbackEvent::FeedbackSubmitted { .. }) => {
                return Err(FoldError::new(event, "the feedback was already submitted"));
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
                document.card = Some(CardRef { board_id, card_id });
                document.labels = labels;
                document.status = Status::Triaged;
                document
            }
            (Some(mut document), FeedbackEvent::FeedbackClosed { reason }) => {
                document.closed_reason = Some(reason);
                document.status = Status::Closed;
                document
            }
        };
        document.updated_at = at;
        document.version = event.seq;
        Ok(Some(encode_body(&document)))
    }

    fn index(&self, body: &Value) -> ListIndex {
        // Bodies are ours: every field below is present and a string. Filter values are the
        // body's own JSON strings, so a query says `status=open` as the body does.
        let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
        ListIndex {
            sort_key: parse_timestamp(&text("submitted_at")).unwrap_or(0),
            filters: FILTERS.iter().map(|&name| (name, text(name))).collect(),
        }
    }

    fn list_filters(&self) -> &'static [&'static str] {
        FILTERS
    }
}

#[cfg(test)]
mod tests {
    use domain::board::BoardEvent;
    use serde_json::json;

    use super::*;
    use crate::fold_all;
    use crate::testing::{T0_MS, envelope, given, history, recorded_at, stored};

    fn s(text: &str) -> String {
        text.to_owned()
    }

    fn submitted(severity: Severity) -> FeedbackEvent {
        FeedbackEvent::FeedbackSubmitted {
            text: s("Login is slow"),
            source: s("web"),
            severity,
        }
    }

    fn triaged() -> FeedbackEvent {
        FeedbackEvent::FeedbackTriaged {
            board_id: s("b1"),
            card_id: s("c1"),
            labels: vec![s("perf")],
            evidence: None,
        }
    }

    fn closed() -> FeedbackEvent {
        FeedbackEvent::FeedbackClosed {
            reason: s("fixed in 1.2"),
        }
    }

    fn feedback(events: &[FeedbackEvent]) -> Vec<EventEnvelope> {
        history("feedback", "f1", events)
    }

    fn at(seq: u64, event: &FeedbackEvent) -> EventEnvelope {
        envelope("feedback", "f1", seq, event)
    }

    #[test]
    fn submitted_feedback_is_open_with_its_severity() {
        given(&FeedbackInbox, &[])
            .when(&at(1, &submitted(Severity::High)))
            .then_document(
                "f1",
                json!({
                    "feedback_id": "f1", "text": "Login is slow", "source": "web",
                    "severity": "high", "status": "open", "card": null, "labels": [],
                    "closed_reason": null,
                    "submitted_at": "2026-11-29T10:01:00.000Z",
                    "updated_at": "2026-11-29T10:01:00.000Z", "version": 1,
                }),
            );
    }

    #[test]
    fn triage_records_the_card_and_its_labels() {
        given(&FeedbackInbox, &feedback(&[submitted(Severity::Medium)]))
            .when(&at(2, &triaged()))
            .then_document(
                "f1",
                json!({
                    "feedback_id": "f1", "text": "Login is slow", "source": "web",
                    "severity": "medium", "status": "triaged",
                    "card": {"board_id": "b1", "card_id": "c1"}, "labels": ["perf"],
                    "closed_reason": null,
                    "submitted_at": recorded_at(1), "updated_at": recorded_at(2), "version": 2,
                }),
            );
    }

    #[test]
    fn closing_keeps_the_triage_and_records_the_reason() {
        given(
            &FeedbackInbox,
            &feedback(&[submitted(Severity::Low), triaged()]),
        )
        .when(&at(3, &closed()))
        .then_document(
            "f1",
            json!({
                "feedback_id": "f1", "text": "Login is slow", "source": "web",
                "severity": "low", "status": "closed",
                "card": {"board_id": "b1", "card_id": "c1"}, "labels": ["perf"],
                "closed_reason": "fixed in 1.2",
                "submitted_at": recorded_at(1), "updated_at": recorded_at(3), "version": 3,
            }),
        );
    }

    #[test]
    fn feedback_closed_without_triage_has_no_card() {
        given(&FeedbackInbox, &feedback(&[submitted(Severity::Critical)]))
            .when(&at(2, &closed()))
            .then_document(
                "f1",
                json!({
                    "feedback_id": "f1", "text": "Login is slow", "source": "web",
                    "severity": "critical", "status": "closed", "card": null, "labels": [],
                    "closed_reason": "fixed in 1.2",
                    "submitted_at": recorded_at(1), "updated_at": recorded_at(2), "version": 2,
                }),
            );
    }

    #[test]
    fn the_inbox_is_listed_by_submission_and_filtered_by_status_and_severity() {
        let documents = fold_all(
            &FeedbackInbox,
            &feedback(&[submitted(Severity::Critical), triaged()]),
        )
        .unwrap();
        assert_eq!(
            FeedbackInbox.index(&documents["f1"]),
            ListIndex {
                // Submitted at seq 1: later events do not move it in the list.
                sort_key: T0_MS + 60_000,
                filters: vec![("status", s("triaged")), ("severity", s("critical"))],
            }
        );
        assert_eq!(FeedbackInbox.list_filters(), ["status", "severity"]);
    }

    #[test]
    fn each_feedback_is_its_own_document() {
        let mut events = feedback(&[submitted(Severity::High)]);
        events.extend(history(
            "feedback",
            "f2",
            &[submitted(Severity::Low), closed()],
        ));
        events.push(at(2, &triaged()));
        let documents = fold_all(&FeedbackInbox, &events).unwrap();
        assert_eq!(documents.keys().collect::<Vec<_>>(), ["f1", "f2"]);
        assert_eq!(
            (&documents["f1"]["status"], &documents["f2"]["status"]),
            (&json!("triaged"), &json!("closed"))
        );
        assert_eq!(documents["f2"]["feedback_id"], "f2");
    }

    #[test]
    fn other_aggregates_are_ignored() {
        let created = BoardEvent::BoardCreated {
            title: s("B"),
            columns: vec![],
        };
        given(&FeedbackInbox, &feedback(&[submitted(Severity::High)]))
            .when(&envelope("board", "f1", 1, &created))
            .then_ignored();
    }

    #[test]
    fn events_that_do_not_fit_are_faults() {
        let error = given(&FeedbackInbox, &[])
            .when(&at(1, &closed()))
            .then_fault();
        assert_eq!(
            error.to_string(),
            "cannot fold FeedbackClosed v1 of feedback:f1 at seq 1: \
             the feedback has no document yet: its first event must be FeedbackSubmitted"
        );
        let error = given(&FeedbackInbox, &feedback(&[submitted(Severity::High)]))
            .when(&at(2, &submitted(Severity::Low)))
            .then_fault();
        assert_eq!(error.reason, "the feedback was already submitted");
        let error = given(&FeedbackInbox, &feedback(&[submitted(Severity::High)]))
            .when(&at(3, &closed()))
            .then_fault();
        assert_eq!(
            error.reason,
            "the document has folded up to seq 1; seq 2 is missing"
        );
        let bad_severity = stored(
            "feedback",
            "f1",
            1,
            "FeedbackSubmitted",
            1,
            json!({"text": "t", "source": "web", "severity": "urgent"}),
        );
        given(&FeedbackInbox, &[]).when(&bad_severity).then_fault();
        let error = FeedbackInbox
            .apply("f2", None, &at(1, &submitted(Severity::High)))
            .unwrap_err();
        assert_eq!(
            error.reason,
            "feedback_inbox document `f2` folds only that feedback's events"
        );
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let events = feedback(&[submitted(Severity::High), triaged(), closed()]);
        let documents = fold_all(&FeedbackInbox, &events).unwrap();
        for event in &events {
            assert_eq!(
                FeedbackInbox.apply("f1", Some(&documents["f1"]), event),
                Ok(Some(documents["f1"].clone())),
                "seq {}",
                event.seq
            );
        }
    }
}
