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
    TriageFeedback {
        board_id: String,
        card_id: String,
        labels: Vec<String>,
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
    FeedbackTriaged {
        board_id: String,
        card_id: String,
        labels: Vec<String>,
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
                Ok(vec![FeedbackEvent::FeedbackTriaged {
                    board_id,
                    card_id,
                    labels,
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
            } => {
                self.triage = Some(Triage {
                    board_id: board_id.clone(),
                    card_id: card_id.clone(),
                    labels: labels.clone(),
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
