//! Policies: rules that react to events with commands later — "when X has been true for a
//! while, do Y" — run next to the data by the Worker's reactor (`durable::reactor`) on the
//! consumer-group machinery.
//!
//! A policy is pure: events in, timer changes out. The reactor stores the timers, consumes
//! the events through a consumer group (so every event is seen at least once, in order per
//! aggregate), and when a timer is due sends its command with the timer's idempotency key —
//! so a policy acts once per qualifying situation, across redeliveries and restarts.

use serde_json::{Value, json};

use crate::envelope::{EventEnvelope, parse_timestamp};

/// A command a policy wants sent when its timer is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    /// What the timer is about (one timer per key: setting it again replaces it).
    pub key: String,
    /// When to act (Unix ms).
    pub due_at_ms: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The command body (`{"type","data","expected_version"?}`).
    pub command: Value,
    /// Derived from the situation, so the command is applied once however often it is sent.
    pub idempotency_key: String,
    /// The event that started the situation, and its chain.
    pub causation_id: String,
    pub correlation_id: String,
}

/// What an event does to a policy's timers.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerChange {
    Set(Timer),
    Cancel { key: String },
}

/// A reactive rule.
pub trait Policy: Sync {
    /// Its name in routes, object names and idempotency keys.
    fn name(&self) -> &'static str;
    /// The aggregate type and event types it reacts to (its consumer group's filter).
    fn aggregate_type(&self) -> &'static str;
    fn event_types(&self) -> &'static [&'static str];
    /// What `event` does to the timers. Applying the same event twice gives the same
    /// changes (events are delivered at least once).
    fn on_event(&self, event: &EventEnvelope) -> Vec<TimerChange>;
}

/// Archives cards that have sat in a column (`Done`) longer than `after_ms`: a board stays
/// readable without anyone cleaning it. A card moved out of the column, or archived by
/// someone, cancels its timer; moved back in, it starts a new one (a new situation, a new
/// idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoArchive {
    pub column: String,
    pub after_ms: i64,
}

impl AutoArchive {
    pub const NAME: &'static str = "auto_archive";

    fn key(board: &str, card: &str) -> String {
        format!("{board}/{card}")
    }
}

impl Policy for AutoArchive {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn aggregate_type(&self) -> &'static str {
        "board"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["CardAdded", "CardMoved", "CardArchived"]
    }

    fn on_event(&self, event: &EventEnvelope) -> Vec<TimerChange> {
        if event.aggregate_type != "board" {
            return Vec::new();
        }
        let Some(card) = event.data.get("card_id").and_then(Value::as_str) else {
            return Vec::new();
        };
        let board = event.aggregate_id.as_str();
        let column = match event.event_type.as_str() {
            "CardAdded" => event.data.get("column").and_then(Value::as_str),
            "CardMoved" => event.data.get("to_column").and_then(Value::as_str),
            "CardArchived" => None,
            _ => return Vec::new(),
        };
        let key = Self::key(board, card);
        if column != Some(self.column.as_str()) {
            return vec![TimerChange::Cancel { key }];
        }
        let entered_ms = parse_timestamp(&event.recorded_at).unwrap_or(0);
        vec![TimerChange::Set(Timer {
            key,
            due_at_ms: entered_ms.saturating_add(self.after_ms),
            aggregate_type: "board".into(),
            aggregate_id: board.into(),
            command: json!({"type": "ArchiveCard", "data": {"card_id": card}}),
            idempotency_key: format!("policy:{}:{board}:{card}:{}", Self::NAME, event.seq),
            causation_id: event.event_id.clone(),
            correlation_id: event
                .correlation_id
                .clone()
                .unwrap_or_else(|| event.event_id.clone()),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, event_type: &str, data: Value) -> EventEnvelope {
        EventEnvelope {
            aggregate_type: "board".into(),
            aggregate_id: "b1".into(),
            seq,
            event_id: format!("e{seq}"),
            event_type: event_type.into(),
            schema_version: 1,
            data,
            recorded_at: "2026-01-01T00:00:00.000Z".into(),
            command_id: None,
            correlation_id: None,
            causation_id: None,
            actor: None,
            position: None,
        }
    }

    fn policy() -> AutoArchive {
        AutoArchive {
            column: "Done".into(),
            after_ms: 60_000,
        }
    }

    #[test]
    fn a_card_entering_done_sets_a_timer_with_a_key_for_that_entry() {
        let changes = policy().on_event(&event(
            7,
            "CardMoved",
            json!({"card_id": "c1", "from_column": "Doing", "to_column": "Done"}),
        ));
        let [TimerChange::Set(timer)] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(timer.key, "b1/c1");
        assert_eq!(
            timer.due_at_ms,
            parse_timestamp("2026-01-01T00:01:00.000Z").unwrap()
        );
        assert_eq!(timer.command["type"], "ArchiveCard");
        assert_eq!(timer.idempotency_key, "policy:auto_archive:b1:c1:7");
        assert_eq!(
            (timer.causation_id.as_str(), timer.correlation_id.as_str()),
            ("e7", "e7")
        );
        // Redelivered: the same change.
        assert_eq!(
            policy().on_event(&event(
                7,
                "CardMoved",
                json!({"card_id": "c1", "from_column": "Doing", "to_column": "Done"})
            )),
            changes
        );
    }

    #[test]
    fn leaving_done_or_being_archived_cancels_and_adding_into_done_counts() {
        for (event_type, data) in [
            (
                "CardMoved",
                json!({"card_id": "c1", "from_column": "Done", "to_column": "Todo"}),
            ),
            ("CardArchived", json!({"card_id": "c1", "column": "Done"})),
            (
                "CardAdded",
                json!({"card_id": "c1", "title": "t", "column": "Inbox", "labels": []}),
            ),
        ] {
            assert_eq!(
                policy().on_event(&event(3, event_type, data)),
                [TimerChange::Cancel {
                    key: "b1/c1".into()
                }],
                "{event_type}"
            );
        }
        let added = policy().on_event(&event(
            4,
            "CardAdded",
            json!({"card_id": "c2", "title": "t", "column": "Done", "labels": []}),
        ));
        assert!(matches!(added.as_slice(), [TimerChange::Set(t)] if t.key == "b1/c2"));
        assert!(
            policy()
                .on_event(&event(5, "BoardCreated", json!({"title": "x"})))
                .is_empty()
        );
    }
}
