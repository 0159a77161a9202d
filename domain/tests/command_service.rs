//! The command service (`Loaded::execute`, `load`, `at_version`) over the in-memory store:
//! what a client of the aggregate endpoints would notice — the events and versions it gets
//! back, conflicts, idempotent retries, rejections that change nothing, and state that is
//! the same however it was rebuilt.

use domain::command_service::{
    CommandInputs, CommandOutcome, CommandRequest, ExecuteError, LoadError, Loaded,
};
use domain::memory::InMemoryStore;
use domain::store::{EventStore, Snapshot};
use domain::{CommandError, ExpectedVersion, Metadata, VersionConflict};
use serde_json::{Value, json};

/// The runtime's side of a command: a fixed clock and a counter for event ids.
struct Runtime {
    store: InMemoryStore,
    loaded: Loaded,
    next_id: u64,
    now_ms: i64,
    max_events: usize,
    snapshot_every: u64,
}

impl Runtime {
    fn new() -> Self {
        let store = InMemoryStore::new();
        let loaded = Loaded::load(&store, "board", "b1").unwrap();
        Runtime {
            store,
            loaded,
            next_id: 0,
            now_ms: 1_700_000_000_000,
            max_events: 100,
            snapshot_every: 0,
        }
    }

    fn send(&mut self, request: Value, key: Option<&str>) -> Result<CommandOutcome, ExecuteError> {
        let request = CommandRequest::from_json(&request).unwrap();
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            format!("event-{next_id}")
        };
        let inputs = CommandInputs {
            now_ms: self.now_ms,
            metadata: Metadata {
                actor: Some("ana".into()),
                ..Metadata::default()
            },
            idempotency_key: key,
            next_event_id: &mut ids,
            max_events: self.max_events,
        };
        self.loaded
            .execute(&mut self.store, request, inputs, self.snapshot_every)
    }

    fn ok(&mut self, request: Value) -> CommandOutcome {
        self.send(request, None).unwrap()
    }

    fn fresh_load(&self) -> Loaded {
        Loaded::load(&self.store, "board", "b1").unwrap()
    }
}

fn create() -> Value {
    json!({"type": "CreateBoard", "data": {"title": "Feedback loop"}})
}

fn add_card(card_id: &str) -> Value {
    json!({"type": "AddCard", "data": {"card_id": card_id, "title": format!("Card {card_id}")}})
}

fn replayed_state(store: &InMemoryStore) -> Value {
    // A full replay, ignoring snapshots: the reference every other path must equal.
    let mut plain = InMemoryStore::new();
    plain.append(store.events(), None).unwrap();
    Loaded::load(&plain, "board", "b1").unwrap().state.to_json()
}

#[test]
fn execute_appends_the_decided_events_with_inputs_and_metadata() {
    let mut rt = Runtime::new();
    let outcome = rt.ok(create());
    assert_eq!(
        (outcome.version, outcome.replayed, outcome.events.len()),
        (1, false, 1)
    );
    let outcome = rt.ok(add_card("c1"));
    assert_eq!(outcome.version, 2);
    let event = &outcome.events[0];
    assert_eq!(
        (
            event.seq,
            event.event_id.as_str(),
            event.event_type.as_str()
        ),
        (2, "event-2", "CardAdded")
    );
    assert_eq!(event.schema_version, 2);
    assert_eq!(
        event.data,
        json!({"card_id": "c1", "title": "Card c1", "column": "Inbox", "labels": []})
    );
    assert_eq!(event.metadata.actor.as_deref(), Some("ana"));
    let envelope = event.envelope("board", "b1");
    assert_eq!(envelope.recorded_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(
        rt.store.events(),
        [rt.store.events()[0].clone(), event.clone()]
    );
    assert_eq!(rt.loaded.version, 2);
    assert_eq!(rt.loaded.state.to_json()["cards"]["c1"]["column"], "Inbox");
}

#[test]
fn a_no_op_command_succeeds_without_appending() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.ok(add_card("c1"));
    let outcome =
        rt.ok(json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Inbox"}}));
    assert_eq!((outcome.version, outcome.events.len()), (2, 0));
    assert_eq!(rt.store.version(), Ok(2));
}

#[test]
fn expected_version_none_holds_only_before_the_first_event() {
    let mut rt = Runtime::new();
    let mut request = create();
    request["expected_version"] = json!("none");
    rt.send(request.clone(), None).unwrap();
    let error = rt.send(request, None).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::Conflict(VersionConflict {
            expected: ExpectedVersion::None,
            actual: 1
        })
    );
}

#[test]
fn expected_version_exists_needs_an_event() {
    let mut rt = Runtime::new();
    let mut request = create();
    request["expected_version"] = json!("exists");
    let error = rt.send(request, None).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::Conflict(VersionConflict {
            expected: ExpectedVersion::Exists,
            actual: 0
        })
    );
    rt.ok(create());
    let mut request = add_card("c1");
    request["expected_version"] = json!("exists");
    assert_eq!(rt.send(request, None).map(|o| o.version), Ok(2));
}

#[test]
fn expected_version_exact_must_match() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let mut request = add_card("c1");
    request["expected_version"] = json!(0);
    let error = rt.send(request.clone(), None).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::Conflict(VersionConflict {
            expected: ExpectedVersion::Exact(0),
            actual: 1
        })
    );
    request["expected_version"] = json!(1);
    assert_eq!(rt.send(request, None).map(|o| o.version), Ok(2));
}

#[test]
fn expected_version_any_and_omitted_always_hold() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let mut request = add_card("c1");
    request["expected_version"] = json!("any");
    rt.send(request, None).unwrap();
    rt.send(add_card("c2"), None).unwrap();
    assert_eq!(rt.loaded.version, 3);
}

/// The 400 a client gets for a command body, or the request it decodes to.
fn decode(body: Value) -> Result<CommandRequest, String> {
    CommandRequest::from_json(&body).map_err(|error| match error {
        CommandError::BadCommand(message) => message,
        other => panic!("{body}: expected a bad command, got {other:?}"),
    })
}

#[test]
fn expected_version_null_is_a_bad_command_not_any() {
    // `null` read as "any" would quietly turn the client's concurrency check off.
    let mut body = add_card("c1");
    body["expected_version"] = Value::Null;
    assert_eq!(
        decode(body),
        Err(
            r#"invalid command: `expected_version`: invalid type: null, expected a non-negative integer, "any", "none" or "exists""#
                .to_owned()
        )
    );
}

#[test]
fn every_request_field_is_absent_or_of_its_documented_type() {
    let fields: [(&str, &[Value]); 6] = [
        ("type", &[Value::Null, json!(7), json!(["AddCard"])]),
        (
            "data",
            &[Value::Null, json!("c1"), json!(["c1", "t"]), json!(1)],
        ),
        (
            "expected_version",
            &[
                Value::Null,
                json!(-1),
                json!(1.5),
                json!("ANY"),
                json!([1]),
                json!({}),
                json!(true),
            ],
        ),
        (
            "command_id",
            &[Value::Null, json!(5), json!(["a"]), json!(false)],
        ),
        ("correlation_id", &[Value::Null, json!(5), json!({})]),
        ("causation_id", &[Value::Null, json!(5), json!([])]),
    ];
    for (field, values) in fields {
        for value in values {
            let mut body = add_card("c1");
            body[field] = value.clone();
            let message = decode(body).expect_err(&format!("{field}: {value} was accepted"));
            assert!(
                message.starts_with(&format!("invalid command: `{field}`: ")),
                "{field}: {value} answered {message:?}"
            );
        }
    }
}

#[test]
fn absent_request_fields_take_their_documented_defaults() {
    let request = decode(json!({"type": "AddCard"})).unwrap();
    assert_eq!(
        request,
        CommandRequest {
            command_type: "AddCard".into(),
            data: serde_json::Map::new(),
            expected_version: ExpectedVersion::Any,
            command_id: None,
            correlation_id: None,
            causation_id: None,
        }
    );
}

#[test]
fn unknown_request_fields_and_non_objects_are_bad_commands() {
    // A typo of an optional field must not drop it without a word.
    let mut body = add_card("c1");
    body["expected_verison"] = json!(3);
    let message = decode(body).unwrap_err();
    assert!(
        message.starts_with("invalid command: unknown field `expected_verison`"),
        "{message}"
    );
    for body in [json!(["AddCard", {}]), json!("AddCard"), Value::Null] {
        assert_eq!(
            decode(body),
            Err(
                r#"a command is an object: {"type": …, "data": {…}, "expected_version": …}"#
                    .to_owned()
            )
        );
    }
}

#[test]
fn a_request_encodes_to_a_body_that_decodes_to_it() {
    // A runtime may validate a command in one place and run it in another.
    for body in [
        json!({"type": "AddCard"}),
        json!({"type": "AddCard", "data": {"card_id": "c1", "title": "t"}, "expected_version": 3,
               "command_id": "cmd-1", "correlation_id": "flow-1", "causation_id": "event-1"}),
        json!({"type": "CreateBoard", "data": {}, "expected_version": "none"}),
    ] {
        let request = decode(body).unwrap();
        let encoded = serde_json::to_value(&request).unwrap();
        assert_eq!(decode(encoded.clone()), Ok(request), "{encoded}");
    }
}

#[test]
fn a_null_data_field_is_a_bad_command_that_writes_nothing() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let before = rt.store.clone();
    let error = rt
        .send(
            json!({"type": "AddCard", "data": {"card_id": "c1", "title": "t", "column": null}}),
            Some("k"),
        )
        .unwrap_err();
    assert_eq!(
        error,
        ExecuteError::Command(CommandError::BadCommand(
            "invalid `AddCard` command: `data.column`: null is not allowed; leave the field out instead"
                .into()
        ))
    );
    assert_eq!(rt.store, before);
    assert_eq!(rt.loaded.version, 1);
}

#[test]
fn a_conflict_writes_nothing() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let before = rt.store.clone();
    let mut request = add_card("c1");
    request["expected_version"] = json!(7);
    assert!(matches!(
        rt.send(request, Some("k")),
        Err(ExecuteError::Conflict(_))
    ));
    assert_eq!(rt.store, before);
    assert_eq!(
        rt.store.idempotent_result("k"),
        Ok(None),
        "a failed command does not burn its key"
    );
}

#[test]
fn an_idempotent_repeat_returns_the_original_result_and_appends_nothing() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let first = rt.send(add_card("c1"), Some("key-1")).unwrap();
    rt.ok(add_card("c2"));
    let log = rt.store.events().to_vec();
    // The same key again — even with a stale expected version — is the stored result.
    let mut repeat = add_card("c1");
    repeat["expected_version"] = json!(1);
    let second = rt.send(repeat, Some("key-1")).unwrap();
    assert!(second.replayed);
    assert_eq!(
        (second.version, &second.events),
        (first.version, &first.events)
    );
    assert_eq!(rt.store.events(), log);
    assert_eq!(rt.loaded.version, 3);
}

#[test]
fn an_idempotency_key_reused_for_another_command_is_refused_and_writes_nothing() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.send(add_card("c1"), Some("key-1")).unwrap();
    let store = rt.store.clone();
    let error = rt.send(add_card("c2"), Some("key-1")).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::IdempotencyKeyReused {
            key: "key-1".into()
        }
    );
    assert_eq!(rt.store, store);
    // Key order on the wire does not make a retry look like another command.
    let reordered = json!({"data": {"title": "Card c1", "card_id": "c1"}, "type": "AddCard"});
    assert!(rt.send(reordered, Some("key-1")).unwrap().replayed);
}

#[test]
fn a_command_that_decided_nothing_keeps_its_key_after_the_state_moves_on() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.ok(add_card("c1")); // in Inbox
    let to_inbox = json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Inbox"}});
    let first = rt.send(to_inbox.clone(), Some("move-1")).unwrap();
    assert_eq!((first.events.len(), first.version), (0, 2));
    rt.ok(json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Done"}}));
    // The retry is the original (empty) result: it does not move the card back.
    let retry = rt.send(to_inbox, Some("move-1")).unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.events.len(), retry.version), (0, 2));
    assert_eq!(rt.loaded.version, 3);
    assert_eq!(rt.loaded.state.to_json()["cards"]["c1"]["column"], "Done");
}

#[test]
fn a_rejected_command_writes_nothing_and_leaves_the_state() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.ok(json!({"type": "SetWipLimit", "data": {"column": "Inbox", "limit": 1}}));
    rt.ok(add_card("c1"));
    let (store, state, version) = (
        rt.store.clone(),
        rt.loaded.state.to_json(),
        rt.loaded.version,
    );
    let error = rt.send(add_card("c2"), Some("k")).unwrap_err();
    match error {
        ExecuteError::Command(CommandError::Rejected(rejection)) => {
            assert_eq!(rejection.rule, "wip_limit_reached");
            assert_eq!(rejection.message, "column `Inbox` is at its WIP limit of 1");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        (
            rt.store == store,
            rt.loaded.state.to_json() == state,
            rt.loaded.version
        ),
        (true, true, version)
    );
}

#[test]
fn a_bad_command_writes_nothing() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let before = rt.store.clone();
    let error = rt
        .send(json!({"type": "Teleport", "data": {}}), None)
        .unwrap_err();
    assert!(
        matches!(error, ExecuteError::Command(CommandError::BadCommand(_))),
        "{error:?}"
    );
    assert_eq!(rt.store, before);
}

#[test]
fn too_many_events_writes_nothing() {
    let mut rt = Runtime::new();
    rt.max_events = 0;
    let error = rt.send(create(), Some("k")).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::TooManyEvents {
            produced: 1,
            limit: 0
        }
    );
    assert_eq!((rt.store.version(), rt.loaded.version), (Ok(0), 0));
    assert_eq!(rt.store, InMemoryStore::new(), "nothing written");
    assert_eq!(rt.loaded.state.to_json(), rt.fresh_load().state.to_json());
    assert_eq!(rt.loaded.state.to_json()["created"], false);

    // On an aggregate with events: the log, the key, the cached state and version all stay.
    rt.max_events = 100;
    rt.ok(create());
    rt.ok(add_card("c1"));
    let (store, state) = (rt.store.clone(), rt.loaded.state.to_json());
    rt.max_events = 0;
    let error = rt.send(add_card("c2"), Some("k2")).unwrap_err();
    assert_eq!(
        error,
        ExecuteError::TooManyEvents {
            produced: 1,
            limit: 0
        }
    );
    assert_eq!(rt.store, store);
    assert_eq!(rt.store.idempotent_result("k2"), Ok(None));
    assert_eq!(
        (rt.loaded.version, rt.loaded.state.to_json()),
        (2, state.clone())
    );
    assert_eq!(rt.fresh_load().state.to_json(), state);
    // A command that decides nothing is within any bound.
    let outcome = rt
        .send(
            json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Inbox"}}),
            None,
        )
        .unwrap();
    assert_eq!((outcome.version, outcome.events.len()), (2, 0));
    // Exactly at the bound is fine.
    rt.max_events = 1;
    assert_eq!(rt.ok(add_card("c2")).version, 3);
}

#[test]
fn metadata_ids_longer_than_256_characters_are_bad_commands_that_write_nothing() {
    for field in ["command_id", "correlation_id", "causation_id"] {
        let mut rt = Runtime::new();
        rt.ok(create());
        let (store, state) = (rt.store.clone(), rt.loaded.state.to_json());
        for too_long in ["c".repeat(257), "é".repeat(257)] {
            let mut request = add_card("c1");
            request[field] = json!(too_long);
            let error = rt.send(request, Some("k")).unwrap_err();
            match &error {
                ExecuteError::Command(CommandError::BadCommand(message)) => {
                    assert!(message.contains(field), "{field}: {message}");
                }
                other => panic!("{field}: expected a bad command, got {other:?}"),
            }
            assert_eq!(rt.store, store, "{field}: written");
            assert_eq!(rt.store.idempotent_result("k"), Ok(None));
            assert_eq!(
                (rt.loaded.version, rt.loaded.state.to_json()),
                (1, state.clone())
            );
        }
        // 256 characters (here 512 bytes) are within the bound.
        let mut request = add_card("c1");
        request[field] = json!("é".repeat(256));
        let outcome = rt.send(request, None).unwrap();
        assert_eq!(outcome.version, 2, "{field}");
    }
}

#[test]
fn a_stale_instance_cannot_overwrite_the_log() {
    let mut rt = Runtime::new();
    rt.ok(create());
    let stale = rt.loaded.clone();
    rt.ok(add_card("c1"));
    rt.loaded = stale;
    let error = rt.send(add_card("c2"), None).unwrap_err();
    assert!(matches!(error, ExecuteError::Store(_)), "{error:?}");
    assert_eq!(rt.store.version(), Ok(2));
}

#[test]
fn snapshots_are_taken_every_n_events_and_reload_equals_replay() {
    let mut rt = Runtime::new();
    rt.snapshot_every = 3;
    rt.ok(create());
    for n in 1..=7 {
        rt.ok(add_card(&format!("c{n}")));
    }
    rt.ok(json!({"type": "MoveCard", "data": {"card_id": "c2", "to_column": "Done"}}));
    assert_eq!(rt.store.version(), Ok(9));
    assert_eq!(rt.store.snapshot_seqs(), [3, 6, 9]);
    rt.ok(json!({"type": "ArchiveCard", "data": {"card_id": "c3"}}));
    // Snapshot 9 plus one event of tail, against a full replay of all ten.
    let loaded = rt.fresh_load();
    assert_eq!(loaded.version, 10);
    assert_eq!(loaded.state.to_json(), replayed_state(&rt.store));
    assert_eq!(loaded.state.to_json(), rt.loaded.state.to_json());
    assert_eq!(loaded.state.to_json()["cards"]["c3"]["archived"], true);
}

#[test]
fn the_snapshot_really_is_used() {
    // A snapshot that differs from the log (never true in production) shows that load
    // starts from it and replays only the tail.
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.ok(add_card("c1"));
    let mut empty_board = Runtime::new();
    empty_board.ok(json!({"type": "CreateBoard", "data": {"title": "From the snapshot"}}));
    let state = empty_board.loaded.state.to_snapshot();
    rt.store.save_snapshot(Snapshot { seq: 1, state }).unwrap();
    let loaded = rt.fresh_load();
    assert_eq!(loaded.state.to_json()["title"], "From the snapshot");
    assert_eq!(loaded.state.to_json()["cards"]["c1"]["title"], "Card c1");
}

#[test]
fn a_corrupt_snapshot_falls_back_to_replay() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.ok(add_card("c1"));
    rt.ok(add_card("c2"));
    rt.store
        .save_snapshot(Snapshot {
            seq: 2,
            state: b"\xc1 not msgpack".to_vec(),
        })
        .unwrap();
    let loaded = rt.fresh_load();
    assert_eq!(loaded.version, 3);
    assert_eq!(loaded.state.to_json(), replayed_state(&rt.store));
    // A snapshot of another shape (valid MessagePack, wrong fields) falls back too.
    rt.store
        .save_snapshot(Snapshot {
            seq: 3,
            state: domain::codec::encode(&json!({"title": 7})),
        })
        .unwrap();
    assert_eq!(rt.fresh_load().state.to_json(), replayed_state(&rt.store));
}

#[test]
fn at_version_is_the_state_after_that_many_events() {
    let mut rt = Runtime::new();
    rt.snapshot_every = 2;
    rt.ok(create());
    rt.ok(add_card("c1"));
    rt.ok(add_card("c2"));
    rt.ok(json!({"type": "MoveCard", "data": {"card_id": "c1", "to_column": "Doing"}}));
    let at = |version| Loaded::at_version(&rt.store, "board", "b1", version).unwrap();
    assert_eq!(
        (at(0).version, at(0).state.to_json()["created"].clone()),
        (0, json!(false))
    );
    let at3 = at(3);
    assert_eq!(at3.version, 3);
    assert_eq!(
        at3.state.to_json()["cards"]["c1"]["column"],
        "Inbox",
        "before the move"
    );
    assert!(at3.state.to_json()["cards"]["c2"].is_object());
    assert!(at(2).state.to_json()["cards"]["c2"].is_null());
    assert_eq!(at(4).state.to_json()["cards"]["c1"]["column"], "Doing");
    assert_eq!(at(99).version, 4, "clamped to the log");
}

#[test]
fn at_version_of_seq_at_time_is_time_travel() {
    let mut rt = Runtime::new();
    rt.ok(create());
    rt.now_ms += 60_000;
    rt.ok(add_card("c1"));
    let before_card = rt.store.seq_at_time(1_700_000_000_000 + 59_999).unwrap();
    assert_eq!(before_card, 1);
    let loaded = Loaded::at_version(&rt.store, "board", "b1", before_card).unwrap();
    assert_eq!(loaded.state.to_json()["cards"], json!({}));
}

#[test]
fn an_unknown_aggregate_type_does_not_load() {
    let store = InMemoryStore::new();
    assert_eq!(
        Loaded::load(&store, "invoice", "i1").unwrap_err(),
        LoadError::UnknownType("invoice".into())
    );
}

#[test]
fn feedback_runs_through_the_same_service() {
    let mut store = InMemoryStore::new();
    let mut loaded = Loaded::load(&store, "feedback", "f1").unwrap();
    let mut id = 0;
    let mut ids = || {
        id += 1;
        format!("e{id}")
    };
    for request in [
        json!({"type": "SubmitFeedback", "data": {"text": "Export is broken", "source": "web"}}),
        json!({"type": "CloseFeedback", "data": {"reason": "fixed"}}),
    ] {
        let inputs = CommandInputs {
            now_ms: 0,
            metadata: Metadata::default(),
            idempotency_key: None,
            next_event_id: &mut ids,
            max_events: 10,
        };
        loaded
            .execute(
                &mut store,
                CommandRequest::from_json(&request).unwrap(),
                inputs,
                0,
            )
            .unwrap();
    }
    let reloaded = Loaded::load(&store, "feedback", "f1").unwrap();
    assert_eq!(reloaded.state.to_json()["status"], "closed");
    assert_eq!(reloaded.state.to_json()["severity"], "medium");
}
