//! Given/when/then tests for aggregates, in the style of cqrs-es:
//!
//! ```
//! use domain::board::{Board, BoardCommand, BoardEvent, rules};
//! use domain::testing::given;
//!
//! let created = BoardEvent::BoardCreated { title: "B".into(), columns: vec!["Todo".into()] };
//! given::<Board>([created.clone()])
//!     .when(BoardCommand::ArchiveCard { card_id: "nope".into() })
//!     .then_reject(rules::CARD_NOT_FOUND);
//!
//! // The wire path: the command as JSON, through `AggregateState::decide`.
//! given::<Board>([created])
//!     .when_json("AddCard", serde_json::json!({"card_id": "c1", "title": "T"}))
//!     .then_expect([serde_json::json!({
//!         "type": "CardAdded",
//!         "data": {"card_id": "c1", "title": "T", "column": "Todo", "labels": []}
//!     })]);
//! ```
//!
//! The harness checks more than the comparison it is asked for, because each check is a
//! bug users would notice: expected events must survive the store's round trip (encode,
//! upcast, decode) unchanged, and the state after them must survive a snapshot. It is a
//! public module with no test-only dependencies so other crates' tests can use it; the
//! assertions panic with the caller's location (`#[track_caller]`).

use serde_json::{Value, json};

use crate::aggregate::{
    Aggregate, AggregateState, CommandError, NewEvent, Rejection, State, decode_event, encode_event,
};
use crate::codec;

/// Starts a test from the aggregate's history.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in history {
        state.apply(&event);
    }
    Given { state }
}

/// An aggregate built from its history, ready for one command.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides a typed command.
    pub fn when(self, command: A::Command) -> When<A> {
        let outcome = self.state.decide(command);
        When {
            state: self.state,
            outcome,
        }
    }

    /// Decides a command given as the client sends it (`type` and `data`), through the
    /// object-safe [`AggregateState::decide`] the runtime uses: serde's decoding, the
    /// `BadCommand` path and the events' stored shape are all exercised.
    pub fn when_json(self, command_type: &str, data: Value) -> WhenJson {
        let state = State(self.state);
        let outcome = AggregateState::decide(&state, command_type, data);
        WhenJson {
            state: Box::new(state),
            outcome,
        }
    }
}

/// The outcome of a typed command.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    state: A,
    outcome: Result<Vec<A::Event>, Rejection>,
}

impl<A: Aggregate> When<A> {
    pub fn outcome(&self) -> &Result<Vec<A::Event>, Rejection> {
        &self.outcome
    }

    /// Asserts the command decided exactly `expected` (in order; `[]` for a no-op), that
    /// each event survives the store's encode/decode, and returns the state after them.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let events = match self.outcome {
            Ok(events) => events,
            Err(rejection) => {
                panic!(
                    "expected events {expected:#?}\nbut the command was rejected: {} ({})",
                    rejection.rule, rejection.message
                )
            }
        };
        assert_eq!(
            events, expected,
            "the command decided other events than expected"
        );
        let mut state = self.state;
        for event in &events {
            assert_round_trip::<A>(event);
            state.apply(event);
        }
        assert_snapshot_round_trip(&state);
        state
    }

    /// Asserts the command was rejected by `rule`; returns the rejection (to check its message).
    #[track_caller]
    pub fn then_reject(self, rule: &str) -> Rejection {
        match self.outcome {
            Err(rejection) => {
                assert_eq!(
                    rejection.rule, rule,
                    "rejected by another rule (message: {})",
                    rejection.message
                );
                rejection
            }
            Ok(events) => {
                panic!("expected a rejection by `{rule}`, but the command decided {events:#?}")
            }
        }
    }
}

/// The outcome of a command decided through the wire path.
#[derive(Debug)]
pub struct WhenJson {
    state: Box<dyn AggregateState>,
    outcome: Result<Vec<NewEvent>, CommandError>,
}

impl WhenJson {
    pub fn outcome(&self) -> &Result<Vec<NewEvent>, CommandError> {
        &self.outcome
    }

    /// Asserts the command decided exactly `expected`, each written as stored and sent to
    /// clients: `{"type": "CardAdded", "data": {...}}`. Applies them (as the store would,
    /// through the upcasters and decoder) and returns the state after them.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = Value>) -> Box<dyn AggregateState> {
        let expected: Vec<Value> = expected.into_iter().collect();
        let events = match self.outcome {
            Ok(events) => events,
            Err(error) => {
                panic!("expected events {expected:#?}\nbut the command failed: {error:?}")
            }
        };
        let actual: Vec<Value> = events
            .iter()
            .map(|e| json!({ "type": e.event_type, "data": e.data }))
            .collect();
        assert_eq!(
            actual, expected,
            "the command decided other events than expected"
        );
        let mut state = self.state;
        for event in events {
            if let Err(error) = state.apply(event.event_type, event.schema_version, event.data) {
                panic!(
                    "a decided {} event does not apply: {error}",
                    event.event_type
                );
            }
        }
        state
    }

    /// Asserts the command was rejected by `rule`; returns the rejection.
    #[track_caller]
    pub fn then_reject(self, rule: &str) -> Rejection {
        match self.outcome {
            Err(CommandError::Rejected(rejection)) => {
                assert_eq!(
                    rejection.rule, rule,
                    "rejected by another rule (message: {})",
                    rejection.message
                );
                rejection
            }
            other => panic!("expected a rejection by `{rule}`, got {other:#?}"),
        }
    }

    /// Asserts the command's shape was refused (HTTP 400); returns the message.
    #[track_caller]
    pub fn then_bad_command(self) -> String {
        match self.outcome {
            Err(CommandError::BadCommand(message)) => message,
            other => panic!("expected a bad command, got {other:#?}"),
        }
    }
}

#[track_caller]
fn assert_round_trip<A: Aggregate>(event: &A::Event) {
    let stored = match encode_event(event) {
        Ok(stored) => stored,
        Err(error) => panic!("event {event:?} does not encode: {error}"),
    };
    // Through MessagePack too: that is how payloads sit in storage.
    let data: Value = match codec::decode(&codec::encode(&stored.data)) {
        Ok(data) => data,
        Err(error) => panic!("event {event:?} does not survive MessagePack: {error}"),
    };
    match decode_event::<A>(stored.event_type, stored.schema_version, data) {
        Ok(decoded) => assert_eq!(&decoded, event, "event changes when stored and read back"),
        Err(error) => panic!("event {event:?} does not decode after storing: {error}"),
    }
}

#[track_caller]
fn assert_snapshot_round_trip<A: Aggregate>(state: &A) {
    let restored = match State::<A>::restore(&State(state.clone()).to_snapshot()) {
        Ok(restored) => restored,
        Err(error) => panic!("state {state:?} does not survive a snapshot: {error}"),
    };
    assert_eq!(
        serde_json::to_value(&restored.0).ok(),
        serde_json::to_value(state).ok(),
        "state changes when snapshotted and restored"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{Board, BoardCommand, BoardEvent, rules};

    fn created() -> BoardEvent {
        BoardEvent::BoardCreated {
            title: "B".into(),
            columns: vec!["Todo".into()],
        }
    }

    #[test]
    fn given_folds_the_history() {
        assert!(given::<Board>([created()]).state().created);
        assert!(!given::<Board>([]).state().created);
    }

    #[test]
    #[should_panic(expected = "the command decided other events than expected")]
    fn then_expect_fails_on_other_events() {
        given::<Board>([])
            .when(BoardCommand::CreateBoard {
                title: "A".into(),
                columns: None,
            })
            .then_expect([created()]);
    }

    #[test]
    #[should_panic(expected = "but the command was rejected: board_not_found")]
    fn then_expect_fails_on_a_rejection() {
        given::<Board>([])
            .when(BoardCommand::ArchiveCard {
                card_id: "c".into(),
            })
            .then_expect([]);
    }

    #[test]
    #[should_panic(expected = "rejected by another rule")]
    fn then_reject_fails_on_another_rule() {
        given::<Board>([])
            .when(BoardCommand::ArchiveCard {
                card_id: "c".into(),
            })
            .then_reject(rules::CARD_NOT_FOUND);
    }

    #[test]
    #[should_panic(expected = "expected a rejection by `board_not_found`")]
    fn then_reject_fails_on_success() {
        given::<Board>([])
            .when(BoardCommand::CreateBoard {
                title: "B".into(),
                columns: None,
            })
            .then_reject(rules::BOARD_NOT_FOUND);
    }

    #[test]
    #[should_panic(expected = "expected a bad command")]
    fn then_bad_command_fails_on_a_rejection() {
        given::<Board>([])
            .when_json("ArchiveCard", json!({"card_id": "c"}))
            .then_bad_command();
    }

    #[test]
    #[should_panic(expected = "expected a rejection by `card_not_found`")]
    fn json_then_reject_fails_on_a_bad_command() {
        given::<Board>([created()])
            .when_json("ArchiveCard", json!({}))
            .then_reject(rules::CARD_NOT_FOUND);
    }

    #[test]
    fn json_then_expect_returns_the_applied_state() {
        let state = given::<Board>([created()])
            .when_json("AddColumn", json!({"name": "Done"}))
            .then_expect([
                json!({"type": "ColumnAdded", "data": {"name": "Done", "wip_limit": null}}),
            ]);
        assert_eq!(state.to_json()["columns"][1]["name"], "Done");
    }
}
