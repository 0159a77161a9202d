//! The `feedback` aggregate: one piece of user feedback from production, from submission
//! through triage (a card on a board) to closing.
//!
//! Its life: submitted (open) → optionally triaged once → closed once. Triage is what the
//! triage agent does after reading `FeedbackSubmitted`; it records where the work went
//! (`board_id`, `card_id`) but does not check that board — aggregates decide alone, and
//! the agent sends `AddCard` to the board itself, correlated to the same event.
//!
//! Decisions:
//! * `severity` defaults to `medium` when absent: feedback that nobody graded is
//!   neither ignorable nor urgent, and the triage agent can still read the text.
//!   `FeedbackSubmitted.severity` always holds the resolved value.
//! * Closing is allowed from open or triaged (not everything becomes a card); a closed
//!   feedback takes no further command, so a late triage cannot reopen it.
//! * Text is 1..=[`MAX_TEXT_CHARS`] characters, counted as characters, not bytes; a value of
//!   only whitespace counts as empty (as everywhere in the reference domain).
//! * A triage may carry its [`TriageEvidence`]: whether the feedback got a new card or was
//!   linked to an existing one, the knowledge-base documents that decision was made on, and
//!   the documents found related (error groups, failed CI runs), each with its similarity.
//!   It is a record, not a claim the aggregate checks against anything (it cannot see the
//!   knowledge base); only its size and shape are ruled ([`rules::INVALID_EVIDENCE`]).
//!   Absent means none: triages and events from before evidence existed stay valid.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent, Rejection};
use crate::board::MAX_CARD_ID_CHARS;
use crate::fields;
use crate::validate;

/// Feedback text is 1..=this many characters.
pub const MAX_TEXT_CHARS: usize = 5000;
/// A source (e.g. `web`, `ios`, `support-email`) is 1..=this many characters.
pub const MAX_SOURCE_CHARS: usize = 100;
/// A board id in a triage is 1..=this many characters.
pub const MAX_BOARD_ID_CHARS: usize = 100;
/// A closing reason is 1..=this many characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// A triage's evidence lists at most this many matches, and at most this many related
/// documents.
pub const MAX_EVIDENCE_ITEMS: usize = 10;
/// A document id in a triage's evidence is 1..=this many characters.
pub const MAX_EVIDENCE_ID_CHARS: usize = 600;
/// A document's kind or status in a triage's evidence is 1..=this many characters.
pub const MAX_EVIDENCE_WORD_CHARS: usize = 50;

/// The stable names of the feedback's rules ([`Rejection::rule`]).
pub mod rules {
    /// Triage or close of feedback that was never submitted.
    pub const FEEDBACK_NOT_FOUND: &str = "feedback_not_found";
    /// A second `SubmitFeedback`.
    pub const FEEDBACK_ALREADY_SUBMITTED: &str = "feedback_already_submitted";
    /// A second `TriageFeedback`.
    pub const FEEDBACK_ALREADY_TRIAGED: &str = "feedback_already_triaged";
    /// Triage or close of closed feedback.
    pub const FEEDBACK_CLOSED: &str = "feedback_closed";
    /// Text that is empty (or whitespace) or over [`super::MAX_TEXT_CHARS`].
    pub const INVALID_TEXT: &str = "invalid_text";
    /// A source that is empty (or whitespace) or over [`super::MAX_SOURCE_CHARS`].
    pub const INVALID_SOURCE: &str = "invalid_source";
    /// A board id that is empty (or whitespace) or over [`super::MAX_BOARD_ID_CHARS`].
    pub const INVALID_BOARD_ID: &str = "invalid_board_id";
    /// A card id that is empty (or whitespace) or over [`crate::board::MAX_CARD_ID_CHARS`].
    pub const INVALID_CARD_ID: &str = "invalid_card_id";
    /// Labels: more than [`crate::board::MAX_LABELS`], an empty or too long one, or a repeat.
    pub const INVALID_LABELS: &str = "invalid_labels";
    /// A reason that is empty (or whitespace) or over [`super::MAX_REASON_CHARS`].
    pub const INVALID_REASON: &str = "invalid_reason";
    /// Triage evidence out of bounds: more than [`super::MAX_EVIDENCE_ITEMS`] matches or
    /// related documents, an id empty or over [`super::MAX_EVIDENCE_ID_CHARS`], a kind or
    /// status empty or over [`super::MAX_EVIDENCE_WORD_CHARS`], a similarity outside
    /// `[0, 1]`, a rank of 0, or a link to an existing card that names no match.
    pub const INVALID_EVIDENCE: &str = "invalid_evidence";

    /// Every rule above.
    pub const ALL: &[&str] = &[
        FEEDBACK_NOT_FOUND,
        FEEDBACK_ALREADY_SUBMITTED,
        FEEDBACK_ALREADY_TRIAGED,
        FEEDBACK_CLOSED,
        INVALID_TEXT,
        INVALID_SOURCE,
        INVALID_BOARD_ID,
        INVALID_CARD_ID,
        INVALID_LABELS,
        INVALID_REASON,
        INVALID_EVIDENCE,
    ];
}

/// How bad the reporter (or an upstream classifier) says it is. On the wire in lowercase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// Where a feedback is in its life. On the wire in lowercase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Open,
    Triaged,
    Closed,
}

/// Where triage put the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    pub board_id: String,
    pub card_id: String,
    pub labels: Vec<String>,
    /// Why there (absent for triages without evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<TriageEvidence>,
}

/// What a triage decided about the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageDecision {
    /// A card was made for this feedback.
    NewCard,
    /// The feedback joined a card that already existed (a near-duplicate).
    LinkedToExistingCard,
}

/// A triage's evidence, on the wire
/// `{"decision": "new_card"|"linked_to_existing_card", "matches": [...], "related": [...]}`
/// (`matches` and `related` may be left out: empty). Fields inside it that this version
/// does not know are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageEvidence {
    pub decision: TriageDecision,
    /// The link candidates (cards) the decision looked at, best first.
    #[serde(default)]
    pub matches: Vec<EvidenceMatch>,
    /// Documents found related to the feedback (error groups, failed CI runs).
    #[serde(default)]
    pub related: Vec<RelatedDocument>,
}

/// A knowledge-base document the decision compared the feedback with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceMatch {
    /// The knowledge-base document, e.g. `card:triage:fb-123`.
    pub doc_id: String,
    /// Its kind, e.g. `card`.
    pub kind: String,
    /// How close its text is to the feedback's.
    pub similarity: Similarity,
    /// Its rank in the search's answer (from 1).
    pub rank: u32,
}

/// A knowledge-base document found related to the feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedDocument {
    /// E.g. `error_group:fp1`, `ci_run:acme~shop:42`.
    pub doc_id: String,
    /// E.g. `error_group`, `ci_run`.
    pub kind: String,
    /// Its status when the triage looked, e.g. `open`, `regressed`, `failed`.
    pub status: String,
    pub similarity: Similarity,
}

/// A similarity in `[0, 1]` (1: the same words), a JSON number on the wire. JSON cannot
/// carry NaN and the rules refuse anything outside `[0, 1]`, so values compare as equals
/// do.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Similarity(pub f64);

impl Eq for Similarity {}

impl TriageEvidence {
    /// The evidence's bounds ([`rules::INVALID_EVIDENCE`]).
    fn check(&self) -> Result<(), Rejection> {
        let rule = rules::INVALID_EVIDENCE;
        for (what, count) in [
            ("matches", self.matches.len()),
            ("related", self.related.len()),
        ] {
            if count > MAX_EVIDENCE_ITEMS {
                return Err(Rejection::new(
                    rule,
                    format!("the evidence lists at most {MAX_EVIDENCE_ITEMS} {what} (got {count})"),
                ));
            }
        }
        // What every listed document has: an id, a kind and a similarity in [0, 1].
        let document = |what: &str, doc_id: &str, kind: &str, similarity: Similarity| {
            validate::text(
                rule,
                &format!("{what}'s doc_id"),
                doc_id,
                MAX_EVIDENCE_ID_CHARS,
            )?;
            validate::text(
                rule,
                &format!("{what}'s kind"),
                kind,
                MAX_EVIDENCE_WORD_CHARS,
            )?;
            if (0.0..=1.0).contains(&similarity.0) {
                Ok(())
            } else {
                Err(Rejection::new(
                    rule,
                    format!(
                        "{what}'s similarity must be from 0 to 1 (got {})",
                        similarity.0
                    ),
                ))
            }
        };
        for (index, item) in self.matches.iter().enumerate() {
            let what = format!("match {}", index + 1);
            document(&what, &item.doc_id, &item.kind, item.similarity)?;
            if item.rank == 0 {
                return Err(Rejection::new(
                    rule,
                    format!("{what}'s rank counts from 1 (got 0)"),
                ));
            }
        }
        for (index, item) in self.related.iter().enumerate() {
            let what = format!("related document {}", index + 1);
            document(&what, &item.doc_id, &item.kind, item.similarity)?;
            validate::text(
                rule,
                &format!("{what}'s status"),
                &item.status,
                MAX_EVIDENCE_WORD_CHARS,
            )?;
        }
        if self.decision == TriageDecision::LinkedToExistingCard && self.matches.is_empty() {
            return Err(Rejection::new(
                rule,
                "a link to an existing card must name the matches it was decided on",
            ));
        }
        Ok(())
    }
}

/// The feedback's state, as clients see it and as it is snapshotted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// False until `FeedbackSubmitted`.
    pub submitted: bool,
    pub text: String,
    pub source: String,
    pub severity: Severity,
    pub status: Status,
    /// Kept after closing.
    pub triage: Option<Triage>,
    pub close_reason: Option<String>,
}

/// The feedback's commands, on the wire `{"type": "SubmitFeedback", "data": {...}}`.
/// Unknown fields are refused (400), and so is `null` for an optional field: it is absent
/// or of its type (and left out when serialized, so a command decodes back to itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum FeedbackCommand {
    /// `severity` absent: [`Severity::Medium`].
    SubmitFeedback {
        text: String,
        source: String,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        severity: Option<Severity>,
    },
    /// `evidence` absent: none.
    TriageFeedback {
        board_id: String,
        card_id: String,
        labels: Vec<String>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        evidence: Option<TriageEvidence>,
    },
    CloseFeedback {
        reason: String,
    },
}

/// The feedback's events. Unknown fields are ignored on decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum FeedbackEvent {
    FeedbackSubmitted {
        text: String,
        source: String,
        severity: Severity,
    },
    /// `evidence` is absent (not `null`) when the triage had none, and in every event
    /// recorded before evidence existed.
    FeedbackTriaged {
        board_id: String,
        card_id: String,
        labels: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<TriageEvidence>,
    },
    FeedbackClosed {
        reason: String,
    },
}

impl DomainEvent for FeedbackEvent {
    fn event_type(&self) -> &'static str {
        match self {
            FeedbackEvent::FeedbackSubmitted { .. } => "FeedbackSubmitted",
            FeedbackEvent::FeedbackTriaged { .. } => "FeedbackTriaged",
            FeedbackEvent::FeedbackClosed { .. } => "FeedbackClosed",
        }
    }
}

impl Feedback {
    /// Existence, then "not closed": what triage and close both need.
    fn open(&self, doing: &str) -> Result<(), Rejection> {
        if !self.submitted {
            return Err(Rejection::new(
                rules::FEEDBACK_NOT_FOUND,
                "the feedback does not exist; submit it with SubmitFeedback first",
            ));
        }
        if self.status == Status::Closed {
            return Err(Rejection::new(
                rules::FEEDBACK_CLOSED,
                format!("the feedback is closed and cannot be {doing}"),
            ));
        }
        Ok(())
    }
}

impl Aggregate for Feedback {
    const TYPE: &'static str = "feedback";
    type Command = FeedbackCommand;
    type Event = FeedbackEvent;

    fn decide(&self, command: FeedbackCommand) -> Result<Vec<FeedbackEvent>, Rejection> {
        match command {
            FeedbackCommand::SubmitFeedback {
                text,
                source,
                severity,
            } => {
                if self.submitted {
                    return Err(Rejection::new(
                        rules::FEEDBACK_ALREADY_SUBMITTED,
                        "the feedback was already submitted",
                    ));
                }
                validate::text(
                    rules::INVALID_TEXT,
                    "the feedback text",
                    &text,
                    MAX_TEXT_CHARS,
                )?;
                validate::text(
                    rules::INVALID_SOURCE,
                    "the source",
                    &source,
                    MAX_SOURCE_CHARS,
                )?;
                let severity = severity.unwrap_or_default();
                Ok(vec![FeedbackEvent::FeedbackSubmitted {
                    text,
                    source,
                    severity,
                }])
            }
            FeedbackCommand::TriageFeedback {
                board_id,
                card_id,
                labels,
                evidence,
            } => {
                self.open("triaged")?;
                if let Some(triage) = &self.triage {
                    return Err(Rejection::new(
                        rules::FEEDBACK_ALREADY_TRIAGED,
                        format!(
                            "the feedback was already triaged to card `{}` on board `{}`",
                            triage.card_id, triage.board_id
                        ),
                    ));
                }
                validate::text(
                    rules::INVALID_BOARD_ID,
                    "the board id",
                    &board_id,
                    MAX_BOARD_ID_CHARS,
                )?;
                validate::text(
                    rules::INVALID_CARD_ID,
                    "the card id",
                    &card_id,
                    MAX_CARD_ID_CHARS,
                )?;
                validate::labels(rules::INVALID_LABELS, &labels)?;
                if let Some(evidence) = &evidence {
                    evidence.check()?;
                }
                Ok(vec![FeedbackEvent::FeedbackTriaged {
                    board_id,
                    card_id,
                    labels,
                    evidence,
                }])
            }
            FeedbackCommand::CloseFeedback { reason } => {
                self.open("closed again")?;
                validate::text(
                    rules::INVALID_REASON,
                    "the reason",
                    &reason,
                    MAX_REASON_CHARS,
                )?;
                Ok(vec![FeedbackEvent::FeedbackClosed { reason }])
            }
        }
    }

    fn apply(&mut self, event: &FeedbackEvent) {
        match event {
            FeedbackEvent::FeedbackSubmitted {
                text,
                source,
                severity,
            } => {
                self.submitted = true;
                self.text = text.clone();
                self.source = source.clone();
                self.severity = *severity;
                self.status = Status::Open;
            }
            FeedbackEvent::FeedbackTriaged {
                board_id,
                card_id,
                labels,
                evidence,
            } => {
                self.triage = Some(Triage {
                    board_id: board_id.clone(),
                    card_id: card_id.clone(),
                    labels: labels.clone(),
                    evidence: evidence.clone(),
                });
                self.status = Status::Triaged;
            }
            FeedbackEvent::FeedbackClosed { reason } => {
                self.close_reason = Some(reason.clone());
                self.status = Status::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::given;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    fn submitted() -> FeedbackEvent {
        FeedbackEvent::FeedbackSubmitted {
            text: s("Login is slow"),
            source: s("web"),
            severity: Severity::Medium,
        }
    }

    fn triaged() -> FeedbackEvent {
        FeedbackEvent::FeedbackTriaged {
            board_id: s("triage"),
            card_id: s("fb-1"),
            labels: vec![s("perf")],
            evidence: None,
        }
    }

    fn closed() -> FeedbackEvent {
        FeedbackEvent::FeedbackClosed { reason: s("fixed") }
    }

    fn submit(text: &str, severity: Option<Severity>) -> FeedbackCommand {
        FeedbackCommand::SubmitFeedback {
            text: s(text),
            source: s("web"),
            severity,
        }
    }

    fn triage() -> FeedbackCommand {
        FeedbackCommand::TriageFeedback {
            board_id: s("triage"),
            card_id: s("fb-1"),
            labels: vec![s("perf")],
            evidence: None,
        }
    }

    fn close(reason: &str) -> FeedbackCommand {
        FeedbackCommand::CloseFeedback { reason: s(reason) }
    }

    #[test]
    fn submit_defaults_to_medium_severity() {
        let feedback = given::<Feedback>([])
            .when(submit("Login is slow", None))
            .then_expect([submitted()]);
        assert_eq!(
            (feedback.submitted, feedback.status, feedback.severity),
            (true, Status::Open, Severity::Medium)
        );
    }

    #[test]
    fn submit_keeps_a_given_severity() {
        given::<Feedback>([])
            .when(submit("Data lost!", Some(Severity::Critical)))
            .then_expect([FeedbackEvent::FeedbackSubmitted {
                text: s("Data lost!"),
                source: s("web"),
                severity: Severity::Critical,
            }]);
    }

    #[test]
    fn feedback_is_submitted_once() {
        let rejection = given::<Feedback>([submitted()])
            .when(submit("again", None))
            .then_reject(rules::FEEDBACK_ALREADY_SUBMITTED);
        assert_eq!(rejection.message, "the feedback was already submitted");
    }

    #[test]
    fn text_is_1_to_5000_characters() {
        let rejection = given::<Feedback>([])
            .when(submit(" \n", None))
            .then_reject(rules::INVALID_TEXT);
        assert_eq!(rejection.message, "the feedback text must not be empty");
        let rejection = given::<Feedback>([])
            .when(submit(&"ß".repeat(5001), None))
            .then_reject(rules::INVALID_TEXT);
        assert_eq!(
            rejection.message,
            "the feedback text must be at most 5000 characters (got 5001)"
        );
        given::<Feedback>([])
            .when(submit(&"ß".repeat(5000), None))
            .then_expect([FeedbackEvent::FeedbackSubmitted {
                text: "ß".repeat(5000),
                source: s("web"),
                severity: Severity::Medium,
            }]);
    }

    #[test]
    fn source_is_required() {
        let rejection = given::<Feedback>([])
            .when(FeedbackCommand::SubmitFeedback {
                text: s("hi"),
                source: s(""),
                severity: None,
            })
            .then_reject(rules::INVALID_SOURCE);
        assert_eq!(rejection.message, "the source must not be empty");
    }

    #[test]
    fn triage_records_where_the_work_went() {
        let feedback = given::<Feedback>([submitted()])
            .when(triage())
            .then_expect([triaged()]);
        assert_eq!(feedback.status, Status::Triaged);
        assert_eq!(feedback.triage.map(|t| t.card_id), Some(s("fb-1")));
    }

    #[test]
    fn triage_and_close_need_existing_feedback() {
        let rejection = given::<Feedback>([])
            .when(triage())
            .then_reject(rules::FEEDBACK_NOT_FOUND);
        assert_eq!(
            rejection.message,
            "the feedback does not exist; submit it with SubmitFeedback first"
        );
        given::<Feedback>([])
            .when(close("spam"))
            .then_reject(rules::FEEDBACK_NOT_FOUND);
    }

    #[test]
    fn feedback_is_triaged_once() {
        let rejection = given::<Feedback>([submitted(), triaged()])
            .when(triage())
            .then_reject(rules::FEEDBACK_ALREADY_TRIAGED);
        assert_eq!(
            rejection.message,
            "the feedback was already triaged to card `fb-1` on board `triage`"
        );
    }

    #[test]
    fn closed_feedback_cannot_be_triaged() {
        let rejection = given::<Feedback>([submitted(), closed()])
            .when(triage())
            .then_reject(rules::FEEDBACK_CLOSED);
        assert_eq!(
            rejection.message,
            "the feedback is closed and cannot be triaged"
        );
    }

    #[test]
    fn triage_values_are_checked() {
        let triage_with =
            |board_id: &str, card_id: &str, labels: Vec<String>| FeedbackCommand::TriageFeedback {
                board_id: s(board_id),
                card_id: s(card_id),
                labels,
                evidence: None,
            };
        given::<Feedback>([submitted()])
            .when(triage_with("", "c", vec![]))
            .then_reject(rules::INVALID_BOARD_ID);
        given::<Feedback>([submitted()])
            .when(triage_with("b", &"c".repeat(101), vec![]))
            .then_reject(rules::INVALID_CARD_ID);
        given::<Feedback>([submitted()])
            .when(triage_with("b", "c", vec![s("x"), s("x")]))
            .then_reject(rules::INVALID_LABELS);
    }

    #[test]
    fn close_from_open_or_triaged() {
        let feedback = given::<Feedback>([submitted()])
            .when(close("duplicate"))
            .then_expect([FeedbackEvent::FeedbackClosed {
                reason: s("duplicate"),
            }]);
        assert_eq!(
            (feedback.status, feedback.close_reason.as_deref()),
            (Status::Closed, Some("duplicate"))
        );
        let feedback = given::<Feedback>([submitted(), triaged()])
            .when(close("fixed"))
            .then_expect([closed()]);
        assert!(feedback.triage.is_some(), "triage is kept after closing");
    }

    #[test]
    fn feedback_is_closed_once() {
        let rejection = given::<Feedback>([submitted(), closed()])
            .when(close("again"))
            .then_reject(rules::FEEDBACK_CLOSED);
        assert_eq!(
            rejection.message,
            "the feedback is closed and cannot be closed again"
        );
    }

    #[test]
    fn close_needs_a_reason() {
        given::<Feedback>([submitted()])
            .when(close("  "))
            .then_reject(rules::INVALID_REASON);
        given::<Feedback>([submitted()])
            .when(close(&"r".repeat(1001)))
            .then_reject(rules::INVALID_REASON);
    }

    #[test]
    fn severity_on_the_wire_is_lowercase_and_checked() {
        given::<Feedback>([])
            .when_json(
                "SubmitFeedback",
                json!({"text": "Crash on save", "source": "ios", "severity": "high"}),
            )
            .then_expect([json!({
                "type": "FeedbackSubmitted",
                "data": {"text": "Crash on save", "source": "ios", "severity": "high"}
            })]);
        given::<Feedback>([])
            .when_json("SubmitFeedback", json!({"text": "t", "source": "ios"}))
            .then_expect([json!({"type": "FeedbackSubmitted", "data": {"text": "t", "source": "ios", "severity": "medium"}})]);
        let message = given::<Feedback>([])
            .when_json(
                "SubmitFeedback",
                json!({"text": "t", "source": "ios", "severity": "urgent"}),
            )
            .then_bad_command();
        assert!(
            message.starts_with(
                "invalid `SubmitFeedback` command: `data.severity`: unknown variant `urgent`"
            ),
            "{message}"
        );
    }

    /// Every field of every command, given `null` or a value of the wrong type, is a bad
    /// command (400) whose message names it; an optional field's `null` is not "absent".
    #[test]
    fn a_field_is_absent_or_of_its_type_never_null() {
        let submit = json!({"text": "t", "source": "web"});
        let triage = json!({"board_id": "b", "card_id": "c", "labels": []});
        let close = json!({"reason": "r"});
        let cases = [
            (
                "SubmitFeedback",
                &submit,
                "text",
                json!(null),
                "invalid type: null, expected a string",
            ),
            (
                "SubmitFeedback",
                &submit,
                "source",
                json!(7),
                "invalid type: integer `7`, expected a string",
            ),
            (
                "SubmitFeedback",
                &submit,
                "severity",
                json!(null),
                "null is not allowed; leave the field out instead",
            ),
            (
                "SubmitFeedback",
                &submit,
                "severity",
                json!(3),
                "invalid type: integer `3`, expected string or map",
            ),
            (
                "TriageFeedback",
                &triage,
                "board_id",
                json!(null),
                "invalid type: null, expected a string",
            ),
            (
                "TriageFeedback",
                &triage,
                "card_id",
                json!(["c"]),
                "invalid type: sequence, expected a string",
            ),
            (
                "TriageFeedback",
                &triage,
                "labels",
                json!(null),
                "invalid type: null, expected a sequence",
            ),
            (
                "TriageFeedback",
                &triage,
                "labels",
                json!([null]),
                "invalid type: null, expected a string",
            ),
            (
                "TriageFeedback",
                &triage,
                "evidence",
                json!(null),
                "null is not allowed; leave the field out instead",
            ),
            (
                "CloseFeedback",
                &close,
                "reason",
                json!(null),
                "invalid type: null, expected a string",
            ),
        ];
        for (command_type, valid, field, value, error) in cases {
            let mut data = valid.clone();
            data[field] = value.clone();
            let message = given::<Feedback>([submitted()])
                .when_json(command_type, data)
                .then_bad_command();
            assert_eq!(
                message,
                format!("invalid `{command_type}` command: `data.{field}`: {error}"),
                "{command_type}.{field} = {value}"
            );
        }
    }

    #[test]
    fn a_serialized_command_decodes_to_itself() {
        for command in [submit("t", None), submit("t", Some(Severity::Low))] {
            let wire = serde_json::to_value(&command).unwrap();
            assert_eq!(
                serde_json::from_value::<FeedbackCommand>(wire.clone()).ok(),
                Some(command),
                "{wire}"
            );
        }
    }

    #[test]
    fn triage_labels_are_required_on_the_wire() {
        let message = given::<Feedback>([submitted()])
            .when_json("TriageFeedback", json!({"board_id": "b", "card_id": "c"}))
            .then_bad_command();
        assert!(message.contains("missing field `labels`"), "{message}");
    }

    fn card_match(doc_id: &str, similarity: f64, rank: u32) -> EvidenceMatch {
        EvidenceMatch {
            doc_id: s(doc_id),
            kind: s("card"),
            similarity: Similarity(similarity),
            rank,
        }
    }

    fn related(doc_id: &str, kind: &str, status: &str, similarity: f64) -> RelatedDocument {
        RelatedDocument {
            doc_id: s(doc_id),
            kind: s(kind),
            status: s(status),
            similarity: Similarity(similarity),
        }
    }

    fn linked() -> TriageEvidence {
        TriageEvidence {
            decision: TriageDecision::LinkedToExistingCard,
            matches: vec![
                card_match("card:triage:fb-0", 0.82, 2),
                card_match("card:triage:fb-9", 0.1, 1),
            ],
            related: vec![related("error_group:fp1", "error_group", "open", 0.4)],
        }
    }

    fn triage_with_evidence(evidence: TriageEvidence) -> FeedbackCommand {
        FeedbackCommand::TriageFeedback {
            board_id: s("triage"),
            card_id: s("fb-0"),
            labels: vec![s("bug")],
            evidence: Some(evidence),
        }
    }

    #[test]
    fn triage_records_its_evidence_in_the_event_and_the_state() {
        let feedback = given::<Feedback>([submitted()])
            .when(triage_with_evidence(linked()))
            .then_expect([FeedbackEvent::FeedbackTriaged {
                board_id: s("triage"),
                card_id: s("fb-0"),
                labels: vec![s("bug")],
                evidence: Some(linked()),
            }]);
        assert_eq!(feedback.status, Status::Triaged);
        assert_eq!(feedback.triage.and_then(|t| t.evidence), Some(linked()));
    }

    #[test]
    fn evidence_on_the_wire() {
        let evidence = json!({
            "decision": "linked_to_existing_card",
            "matches": [{"doc_id": "card:triage:fb-0", "kind": "card", "similarity": 0.82, "rank": 1}],
            "related": [{"doc_id": "ci_run:acme~shop:42", "kind": "ci_run", "status": "failed",
                         "similarity": 0.25}]
        });
        given::<Feedback>([submitted()])
            .when_json(
                "TriageFeedback",
                json!({"board_id": "triage", "card_id": "fb-0", "labels": ["bug"],
                       "evidence": evidence}),
            )
            .then_expect([json!({
                "type": "FeedbackTriaged",
                "data": {"board_id": "triage", "card_id": "fb-0", "labels": ["bug"],
                         "evidence": evidence}
            })]);
        // The lists may be left out; a new card needs no match.
        given::<Feedback>([submitted()])
            .when_json(
                "TriageFeedback",
                json!({"board_id": "triage", "card_id": "fb-1", "labels": [],
                       "evidence": {"decision": "new_card"}}),
            )
            .then_expect([json!({
                "type": "FeedbackTriaged",
                "data": {"board_id": "triage", "card_id": "fb-1", "labels": [],
                         "evidence": {"decision": "new_card", "matches": [], "related": []}}
            })]);
        let message = given::<Feedback>([submitted()])
            .when_json(
                "TriageFeedback",
                json!({"board_id": "b", "card_id": "c", "labels": [],
                       "evidence": {"decision": "merged"}}),
            )
            .then_bad_command();
        assert!(message.contains("unknown variant `merged`"), "{message}");
    }

    #[test]
    fn a_triage_without_evidence_records_none() {
        given::<Feedback>([submitted()])
            .when_json(
                "TriageFeedback",
                json!({"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]}),
            )
            .then_expect([json!({
                "type": "FeedbackTriaged",
                "data": {"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]}
            })]);
    }

    #[test]
    fn events_from_before_evidence_still_decode() {
        let old = json!({"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]});
        let decoded =
            crate::aggregate::decode_event::<Feedback>("FeedbackTriaged", 1, old).unwrap();
        assert_eq!(decoded, triaged());
        let feedback = given::<Feedback>([submitted(), decoded]).state().clone();
        assert_eq!(feedback.status, Status::Triaged);
        assert_eq!(feedback.triage.and_then(|t| t.evidence), None);
        // And a state snapshotted before evidence existed (no `evidence` in its triage).
        let state = json!({"submitted": true, "text": "t", "source": "web",
                           "severity": "medium", "status": "triaged",
                           "triage": {"board_id": "b", "card_id": "c", "labels": []},
                           "close_reason": null});
        let restored: Feedback = serde_json::from_value(state).unwrap();
        assert_eq!(restored.triage.unwrap().evidence, None);
    }

    #[test]
    fn evidence_is_bounded() {
        let reject = |evidence: TriageEvidence| {
            given::<Feedback>([submitted()])
                .when(triage_with_evidence(evidence))
                .then_reject(rules::INVALID_EVIDENCE)
                .message
        };
        let accept = |evidence: TriageEvidence| {
            given::<Feedback>([submitted()])
                .when(triage_with_evidence(evidence.clone()))
                .then_expect([FeedbackEvent::FeedbackTriaged {
                    board_id: s("triage"),
                    card_id: s("fb-0"),
                    labels: vec![s("bug")],
                    evidence: Some(evidence),
                }]);
        };
        let new_card = || TriageEvidence {
            decision: TriageDecision::NewCard,
            matches: vec![],
            related: vec![],
        };

        let mut ten = new_card();
        ten.matches = (1..=10)
            .map(|n| card_match(&format!("card:b:{n}"), 0.1, n))
            .collect();
        ten.related = (1..=10)
            .map(|n| related(&format!("ci_run:r:{n}"), "ci_run", "failed", 0.3))
            .collect();
        accept(ten.clone());
        let mut eleven = ten.clone();
        eleven.matches.push(card_match("card:b:11", 0.1, 11));
        assert_eq!(
            reject(eleven),
            "the evidence lists at most 10 matches (got 11)"
        );
        let mut eleven = ten;
        eleven.related.push(related("x", "ci_run", "failed", 0.3));
        assert_eq!(
            reject(eleven),
            "the evidence lists at most 10 related (got 11)"
        );

        let mut long = new_card();
        long.matches = vec![card_match(&"界".repeat(600), 1.0, 1)];
        accept(long.clone());
        long.matches[0].doc_id.push('x');
        assert_eq!(
            reject(long),
            "match 1's doc_id must be at most 600 characters (got 601)"
        );
        let mut empty = new_card();
        empty.related = vec![
            related("e:1", "error_group", "open", 0.3),
            related(" ", "k", "s", 0.3),
        ];
        assert_eq!(
            reject(empty),
            "related document 2's doc_id must not be empty"
        );
        let mut kind = new_card();
        kind.matches = vec![card_match("card:b:1", 0.5, 1)];
        kind.matches[0].kind = "k".repeat(51);
        assert_eq!(
            reject(kind),
            "match 1's kind must be at most 50 characters (got 51)"
        );
        let mut status = new_card();
        status.related = vec![related("e:1", "error_group", "", 0.3)];
        assert_eq!(
            reject(status),
            "related document 1's status must not be empty"
        );

        for bad in [1.5, -0.1] {
            let mut out = new_card();
            out.matches = vec![card_match("card:b:1", bad, 1)];
            assert_eq!(
                reject(out),
                format!("match 1's similarity must be from 0 to 1 (got {bad})")
            );
            let mut out = new_card();
            out.related = vec![related("e:1", "error_group", "open", bad)];
            assert!(reject(out).starts_with("related document 1's similarity"));
        }
        let mut edges = new_card();
        edges.matches = vec![
            card_match("card:b:1", 0.0, 1),
            card_match("card:b:2", 1.0, 2),
        ];
        accept(edges);
        let mut rank = new_card();
        rank.matches = vec![card_match("card:b:1", 0.5, 0)];
        assert_eq!(reject(rank), "match 1's rank counts from 1 (got 0)");

        let mut unfounded = linked();
        unfounded.matches.clear();
        assert_eq!(
            reject(unfounded),
            "a link to an existing card must name the matches it was decided on"
        );
    }

    #[test]
    fn evidence_is_checked_after_the_other_triage_rules() {
        let mut bad = linked();
        bad.matches.clear();
        given::<Feedback>([submitted(), triaged()])
            .when(triage_with_evidence(bad.clone()))
            .then_reject(rules::FEEDBACK_ALREADY_TRIAGED);
        given::<Feedback>([submitted()])
            .when(FeedbackCommand::TriageFeedback {
                board_id: s(""),
                card_id: s("c"),
                labels: vec![],
                evidence: Some(bad),
            })
            .then_reject(rules::INVALID_BOARD_ID);
    }

    #[test]
    fn a_serialized_triage_decodes_to_itself() {
        for command in [triage(), triage_with_evidence(linked())] {
            let wire = serde_json::to_value(&command).unwrap();
            assert_eq!(
                serde_json::from_value::<FeedbackCommand>(wire.clone()).ok(),
                Some(command),
                "{wire}"
            );
        }
    }

    #[test]
    fn rule_names_are_distinct_snake_case() {
        for (index, rule) in rules::ALL.iter().enumerate() {
            assert!(
                rule.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{rule}"
            );
            assert!(!rules::ALL[..index].contains(rule), "{rule} twice");
        }
    }
}
