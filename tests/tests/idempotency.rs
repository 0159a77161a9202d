//! What an `Idempotency-Key` promises beyond a plain retry (which `errors.rs` and
//! `durability.rs` cover): a key is bound to the command it was first used with, a
//! command that decided no events is remembered like any other, and a refused command
//! leaves its key unused.

use std::time::Duration;

use serde_json::json;
use tests::{cmd, shared};

#[tokio::test]
async fn a_key_reused_with_another_command_is_422_and_appends_nothing() {
    let c = shared().client();
    let id = c.board_with_cards("board-idem", 1).await;
    let original_body = cmd("AddCard", json!({"card_id": "c2", "title": "Once"}));
    let original = c
        .command_with_key("board", &id, &original_body, Some("bound-key"))
        .await
        .expect(200);
    assert_eq!(original["version"], 3);
    let mut socket = c.subscribe("board", &id, Some(3)).await;
    assert_eq!(socket.caught_up().await, 3);

    for (what, body) in [
        (
            "other data",
            cmd("AddCard", json!({"card_id": "c3", "title": "Once"})),
        ),
        (
            "another title",
            cmd("AddCard", json!({"card_id": "c2", "title": "Twice"})),
        ),
        (
            "another command type",
            cmd("AddColumn", json!({"name": "Later"})),
        ),
    ] {
        let reply = c
            .command_with_key("board", &id, &body, Some("bound-key"))
            .await;
        assert_eq!(
            reply.status,
            422,
            "{what}: the key was reused with {body}, answered {} {}",
            reply.status,
            reply.text()
        );
        reply.expect_error(422, "idempotency_key_reused");
        assert_eq!(reply.header("idempotent-replayed"), None, "{what}");
        assert_eq!(
            c.footprint("board", &id).await,
            (3, 3),
            "{what}: a reused key appended"
        );
    }
    let state = c.state("board", &id, "").await.expect(200);
    assert!(state["state"]["cards"].get("c3").is_none());
    assert_eq!(state["state"]["cards"]["c2"]["title"], "Once");

    // The key still answers its own command with the original result.
    let again = c
        .command_with_key("board", &id, &original_body, Some("bound-key"))
        .await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.expect(200), original);
    assert_eq!(c.footprint("board", &id).await, (3, 3));
    socket.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_key_whose_command_decided_no_events_replays_that_empty_result() {
    let c = shared().client();
    let id = c.board_with_cards("board-idem", 1).await;
    // c1 is already in Inbox: the move decides nothing.
    let stay = cmd("MoveCard", json!({"card_id": "c1", "to_column": "Inbox"}));
    let first = c
        .command_with_key("board", &id, &stay, Some("noop-key"))
        .await;
    assert_eq!(first.header("idempotent-replayed"), None);
    let original = first.expect(200);
    assert_eq!(original["version"], 2);
    assert_eq!(original["events"], json!([]));

    // The state moves on: c1 goes to Doing.
    let moved = c
        .ok(
            "board",
            &id,
            cmd("MoveCard", json!({"card_id": "c1", "to_column": "Doing"})),
        )
        .await;
    assert_eq!(moved["version"], 3);
    let mut socket = c.subscribe("board", &id, Some(3)).await;
    assert_eq!(socket.caught_up().await, 3);

    // The retry is answered from the key: the original empty result, not a new decision
    // (which would move c1 back to Inbox).
    let retry = c
        .command_with_key("board", &id, &stay, Some("noop-key"))
        .await;
    assert_eq!(
        retry.header("idempotent-replayed").as_deref(),
        Some("true"),
        "the retry of an empty result was executed again: {}",
        retry.text()
    );
    assert_eq!(retry.expect(200), original);
    assert_eq!(c.footprint("board", &id).await, (3, 3));
    let state = c.state("board", &id, "").await.expect(200);
    assert_eq!(state["state"]["cards"]["c1"]["column"], "Doing");
    socket.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_refused_command_does_not_use_up_its_key() {
    let c = shared().client();
    let id = c.board_with_cards("board-idem", 1).await;
    // Refused by a rule (c1 exists), then by a version conflict, then by its shape.
    let refusals = [
        (
            cmd("AddCard", json!({"card_id": "c1", "title": "again"})),
            422,
            "rejected",
        ),
        (
            json!({"type": "AddCard", "data": {"card_id": "c2", "title": "t"}, "expected_version": 7}),
            409,
            "version_conflict",
        ),
        (
            cmd("AddCard", json!({"card_id": "c2", "title": 5})),
            400,
            "bad_request",
        ),
    ];
    for (body, status, code) in refusals {
        c.command_with_key("board", &id, &body, Some("refused-key"))
            .await
            .expect_error(status, code);
    }
    assert_eq!(c.footprint("board", &id).await, (2, 2));
    // The key is free for a command that succeeds, and then bound to it.
    let body = cmd("AddCard", json!({"card_id": "c2", "title": "t"}));
    let reply = c
        .command_with_key("board", &id, &body, Some("refused-key"))
        .await;
    assert_eq!(reply.header("idempotent-replayed"), None);
    let original = reply.expect(200);
    assert_eq!(original["version"], 3);
    let again = c
        .command_with_key("board", &id, &body, Some("refused-key"))
        .await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.expect(200), original);
    assert_eq!(c.footprint("board", &id).await, (3, 3));
}
