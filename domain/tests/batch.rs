//! Batches (`Loaded::execute_batch`) over the in-memory store: commands decided in order
//! against the state the previous ones leave, appended together, all or none.

use domain::command_service::{BatchRequest, CommandInputs, CommandOutcome, ExecuteError, Loaded};
use domain::memory::InMemoryStore;
use domain::store::{EventStore, ReadQuery};
use domain::{CommandError, Metadata};
use serde_json::{Value, json};

struct Runtime {
    store: InMemoryStore,
    loaded: Loaded,
    next_id: u64,
}

impl Runtime {
    fn new() -> Self {
        let store = InMemoryStore::new();
        let loaded = Loaded::load(&store, "board", "b1").unwrap();
        Self {
            store,
            loaded,
            next_id: 0,
        }
    }

    fn send(
        &mut self,
        body: Value,
        key: Option<&str>,
        max_events: usize,
    ) -> Result<CommandOutcome, ExecuteError> {
        let batch = BatchRequest::from_json(&body).map_err(ExecuteError::Command)?;
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            format!("event-{next_id}")
        };
        let inputs = CommandInputs {
            now_ms: 1_700_000_000_000,
            metadata: Metadata::default(),
            idempotency_key: key,
            next_event_id: &mut ids,
            max_events,
        };
        self.loaded
            .execute_batch(&mut self.store, batch, inputs, 10)
    }

    fn log(&self) -> Vec<String> {
        self.store
            .read(&ReadQuery::forward(0, 10_000))
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

fn cards(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"type": "AddCard", "data": {"card_id": format!("c{i}"), "title": "t"}}))
        .collect()
}

#[test]
fn a_batch_is_decided_in_order_and_appended_together() {
    let mut rt = Runtime::new();
    let mut commands = vec![json!({"type": "CreateBoard", "data": {"title": "Bulk"}})];
    commands.extend(cards(25));
    let outcome = rt
        .send(
            json!({"commands": commands, "expected_version": "none"}),
            None,
            1000,
        )
        .unwrap();
    assert_eq!(outcome.version, 26);
    assert_eq!(outcome.events.len(), 26);
    assert_eq!(rt.log().len(), 26);
    // The state equals a fresh load of the log.
    let reloaded = Loaded::load(&rt.store, "board", "b1").unwrap();
    assert_eq!(reloaded.state.to_json(), rt.loaded.state.to_json());
    assert_eq!(reloaded.version, 26);
}

#[test]
fn one_refused_command_refuses_the_batch_naming_it_and_writes_nothing() {
    let mut rt = Runtime::new();
    rt.send(
        json!({"commands": [{"type": "CreateBoard", "data": {"title": "B"}}]}),
        None,
        100,
    )
    .unwrap();
    let before = rt.loaded.state.to_json();
    // The third command repeats a card id the first one added in the same batch.
    let body = json!({"commands": [
        {"type": "AddCard", "data": {"card_id": "x", "title": "t"}},
        {"type": "AddCard", "data": {"card_id": "y", "title": "t"}},
        {"type": "AddCard", "data": {"card_id": "x", "title": "again"}},
    ]});
    match rt.send(body, None, 100) {
        Err(ExecuteError::Command(CommandError::Rejected(r))) => {
            assert!(r.message.starts_with("commands[2]:"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.log().len(), 1);
    assert_eq!(rt.loaded.state.to_json(), before);
    assert_eq!(rt.loaded.version, 1);
}

#[test]
fn the_expected_version_is_checked_once_and_the_event_limit_holds_for_the_whole_batch() {
    let mut rt = Runtime::new();
    rt.send(
        json!({"commands": [{"type": "CreateBoard", "data": {"title": "B"}}]}),
        None,
        100,
    )
    .unwrap();
    assert!(matches!(
        rt.send(
            json!({"commands": cards(2), "expected_version": 5}),
            None,
            100
        ),
        Err(ExecuteError::Conflict(_))
    ));
    assert!(matches!(
        rt.send(json!({"commands": cards(11)}), None, 10),
        Err(ExecuteError::TooManyEvents { limit: 10, .. })
    ));
    assert_eq!(rt.log().len(), 1);
    rt.send(
        json!({"commands": cards(10), "expected_version": 1}),
        None,
        10,
    )
    .unwrap();
    assert_eq!(rt.log().len(), 11);
}

#[test]
fn one_idempotency_key_covers_the_batch() {
    let mut rt = Runtime::new();
    let body = json!({"commands": [{"type": "CreateBoard", "data": {"title": "B"}}, {"type": "AddCard", "data": {"card_id": "a", "title": "t"}}]});
    let first = rt.send(body.clone(), Some("k1"), 100).unwrap();
    let again = rt.send(body, Some("k1"), 100).unwrap();
    assert!(again.replayed);
    assert_eq!(again.events, first.events);
    assert_eq!(rt.log().len(), 2);
    let other = json!({"commands": cards(1)});
    assert!(matches!(
        rt.send(other, Some("k1"), 100),
        Err(ExecuteError::IdempotencyKeyReused { .. })
    ));
}

#[test]
fn bad_batches_are_bad_commands() {
    for body in [
        json!({"commands": []}),
        json!({"commands": null}),
        json!({"commands": [{"type": "AddCard", "data": null}]}),
        json!({"commands": [{"type": "AddCard", "extra": 1}]}),
        json!({"commands": cards(1), "expected_version": null}),
        json!({"commands": cards(1), "nope": 1}),
        json!([1]),
    ] {
        assert!(BatchRequest::from_json(&body).is_err(), "{body}");
    }
    assert!(BatchRequest::from_json(&json!({"commands": cards(1001)})).is_err());
    // An unknown command type inside is the domain's 400, naming the index.
    let mut rt = Runtime::new();
    match rt.send(json!({"commands": [{"type": "Nope"}]}), None, 100) {
        Err(ExecuteError::Command(CommandError::BadCommand(m))) => {
            assert!(m.starts_with("commands[0]:"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
