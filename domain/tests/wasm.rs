//! The domain on its production target: a small board scenario through the command service
//! and the in-memory store, compiled to wasm32-unknown-unknown and run under Node by
//! `wasm-bindgen-test-runner` (`cargo test -p domain --target wasm32-unknown-unknown`).
//! What it catches that the native tests cannot: code that compiles or behaves differently
//! on wasm32 (32-bit `usize`, no threads, no OS clock or randomness). Natively this file
//! compiles to nothing.
#![cfg(target_arch = "wasm32")]

use domain::command_service::{
    CommandInputs, CommandOutcome, CommandRequest, ExecuteError, Loaded,
};
use domain::memory::InMemoryStore;
use domain::store::{EventStore, ReadQuery};
use domain::{CommandError, Metadata, codec};
use serde_json::{Value, json};
use wasm_bindgen_test::wasm_bindgen_test;

fn send(
    loaded: &mut Loaded,
    store: &mut InMemoryStore,
    ids: &mut u64,
    request: Value,
) -> Result<CommandOutcome, ExecuteError> {
    let request = CommandRequest::from_json(&request).expect("a well-formed request");
    let mut next_event_id = || {
        *ids += 1;
        format!("0190b7c0-0000-7000-8000-{:012}", *ids)
    };
    let inputs = CommandInputs {
        now_ms: 1_700_000_000_000,
        metadata: Metadata::default(),
        idempotency_key: None,
        next_event_id: &mut next_event_id,
        max_events: 100,
    };
    loaded.execute(store, request, inputs, 2)
}

#[wasm_bindgen_test]
fn a_board_scenario_runs_on_wasm32() {
    let mut store = InMemoryStore::new();
    let mut loaded = Loaded::load(&store, "board", "demo").expect("board is a known type");
    let mut ids = 0;
    for request in [
        json!({"type": "CreateBoard", "data": {"title": "Feedback loop"}, "expected_version": "none"}),
        json!({"type": "SetWipLimit", "data": {"column": "Doing", "limit": 1}}),
        json!({"type": "AddCard", "data": {"card_id": "c1", "title": "Slow login", "labels": ["perf"]}}),
        json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Doing"}}),
        json!({"type": "AddCard", "data": {"card_id": "c2", "title": "Typo"}}),
    ] {
        send(&mut loaded, &mut store, &mut ids, request).expect("accepted");
    }

    let refused = send(
        &mut loaded,
        &mut store,
        &mut ids,
        json!({"type": "MoveCard", "data": {"card_id": "c2", "to_column": "Doing"}}),
    );
    match refused {
        Err(ExecuteError::Command(CommandError::Rejected(rejection))) => {
            assert_eq!(rejection.rule, "wip_limit_reached");
            assert_eq!(rejection.message, "column `Doing` is at its WIP limit of 1");
        }
        other => panic!("expected the WIP limit to refuse the move, got {other:?}"),
    }

    assert_eq!(store.version(), Ok(5));
    assert_eq!(store.snapshot_seqs(), [2, 4]);
    let reloaded = Loaded::load(&store, "board", "demo").expect("reload");
    assert_eq!(reloaded.state.to_json(), loaded.state.to_json());
    assert_eq!(reloaded.state.to_json()["cards"]["c1"]["column"], "Doing");

    let newest = store.read(&ReadQuery::backward(None, 1)).expect("read");
    let envelope = newest[0].envelope("board", "demo");
    assert_eq!(
        (envelope.seq, envelope.recorded_at.as_str()),
        (5, "2023-11-14T22:13:20.000Z")
    );
    let bytes = codec::encode(&envelope);
    assert_eq!(codec::decode::<domain::EventEnvelope>(&bytes), Ok(envelope));
}
