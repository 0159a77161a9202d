//! Commands produce the right events: the response shape, every envelope field, and
//! `data` holding the command's fields, for every board and feedback command.

use serde_json::{Value, json};
use tests::{check_envelope, check_timestamp, cmd, shared, unique_id};

/// Sends one command that must succeed with exactly one event; checks the response and
/// the envelope, and returns the envelope.
async fn one_event(
    c: &tests::Client,
    aggregate_type: &str,
    id: &str,
    body: Value,
    version: u64,
) -> Value {
    let reply = c.ok(aggregate_type, id, body.clone()).await;
    assert_eq!(reply["aggregate_type"], aggregate_type, "{reply}");
    assert_eq!(reply["aggregate_id"], id, "{reply}");
    assert_eq!(reply["version"], version, "{reply}");
    let events = reply["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events is not a list: {reply}"));
    assert_eq!(events.len(), 1, "{body} should produce one event: {reply}");
    let event = events[0].clone();
    check_envelope(&event);
    assert_eq!(event["aggregate_type"], aggregate_type);
    assert_eq!(event["aggregate_id"], id);
    assert_eq!(event["seq"], version);
    event
}

#[tokio::test]
async fn create_board_records_board_created_with_every_envelope_field() {
    let c = shared().client();
    let id = unique_id("board");
    let before = chrono::Utc::now().timestamp_millis();
    let event = one_event(
        &c,
        "board",
        &id,
        cmd("CreateBoard", json!({"title": "Feedback loop"})),
        1,
    )
    .await;
    let after = chrono::Utc::now().timestamp_millis();

    assert_eq!(event["type"], "BoardCreated");
    assert_eq!(event["schema_version"], 1);
    // The command's fields, with the default columns filled in.
    assert_eq!(
        event["data"],
        json!({"title": "Feedback loop", "columns": ["Inbox", "Todo", "Doing", "Done"]})
    );
    // The recording time is the server's clock at the command (same machine; allow skew).
    let recorded = check_timestamp(event["recorded_at"].as_str().unwrap());
    assert!(
        recorded >= before - 2_000 && recorded <= after + 2_000,
        "recorded_at {recorded} not within [{before}, {after}]"
    );
    // No client-supplied metadata: a command id is generated, correlation and causation are null (present).
    assert!(
        event["command_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{event}"
    );
    assert_eq!(event["correlation_id"], Value::Null);
    assert_eq!(event["causation_id"], Value::Null);
    // The actor is the token's subject.
    assert_eq!(event["actor"], tests::ACTOR);
    assert!(
        event.get("position").is_none(),
        "aggregate events carry no stream position: {event}"
    );

    // The same envelope is what the log and the state show afterwards.
    let listed = c.all_events("board", &id).await;
    assert_eq!(listed, vec![event]);
    let state = c.state("board", &id, "").await.expect(200);
    assert_eq!(state["aggregate_type"], "board");
    assert_eq!(state["aggregate_id"], id);
    assert_eq!(state["version"], 1);
    assert_eq!(state["state"]["title"], "Feedback loop");
    assert_eq!(state["state"]["created"], true);
}

#[tokio::test]
async fn client_metadata_is_recorded_on_every_event() {
    let c = shared().client();
    let id = unique_id("board");
    let body = json!({
        "type": "CreateBoard",
        "data": {"title": "Traced", "columns": ["Only"]},
        "expected_version": "none",
        "command_id": "cmd-123",
        "correlation_id": "flow-9",
        "causation_id": "0190a000-0000-7000-8000-000000000000",
    });
    let event = one_event(&c, "board", &id, body, 1).await;
    assert_eq!(
        event["data"],
        json!({"title": "Traced", "columns": ["Only"]})
    );
    assert_eq!(event["command_id"], "cmd-123");
    assert_eq!(event["correlation_id"], "flow-9");
    assert_eq!(
        event["causation_id"],
        "0190a000-0000-7000-8000-000000000000"
    );
    assert_eq!(c.all_events("board", &id).await, vec![event]);
}

#[tokio::test]
async fn every_board_command_records_its_event_with_the_command_fields() {
    let c = shared().client();
    let id = unique_id("board");
    let mut version = 0;
    let mut next = || {
        version += 1;
        version
    };
    let steps: Vec<(Value, &str, Value)> = vec![
        (
            cmd(
                "CreateBoard",
                json!({"title": "Sprint", "columns": ["Todo", "Doing"]}),
            ),
            "BoardCreated",
            json!({"title": "Sprint", "columns": ["Todo", "Doing"]}),
        ),
        (
            cmd("AddColumn", json!({"name": "Done", "wip_limit": 5})),
            "ColumnAdded",
            json!({"name": "Done", "wip_limit": 5}),
        ),
        (
            cmd("AddColumn", json!({"name": "Review"})),
            "ColumnAdded",
            json!({"name": "Review", "wip_limit": null}),
        ),
        (
            cmd("SetWipLimit", json!({"column": "Doing", "limit": 2})),
            "WipLimitSet",
            json!({"column": "Doing", "limit": 2}),
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "c1", "title": "First", "column": "Doing", "labels": ["bug", "ui"]}),
            ),
            "CardAdded",
            json!({"card_id": "c1", "title": "First", "column": "Doing", "labels": ["bug", "ui"]}),
        ),
        // Defaults resolved: the first column, no labels.
        (
            cmd("AddCard", json!({"card_id": "c2", "title": "Second"})),
            "CardAdded",
            json!({"card_id": "c2", "title": "Second", "column": "Todo", "labels": []}),
        ),
        (
            cmd("MoveCard", json!({"card_id": "c2", "to_column": "Done"})),
            "CardMoved",
            json!({"card_id": "c2", "from_column": "Todo", "to_column": "Done"}),
        ),
        (
            cmd(
                "EditCard",
                json!({"card_id": "c1", "title": "First, renamed"}),
            ),
            "CardEdited",
            json!({"card_id": "c1", "title": "First, renamed", "labels": null}),
        ),
        (
            cmd("EditCard", json!({"card_id": "c1", "labels": ["perf"]})),
            "CardEdited",
            json!({"card_id": "c1", "title": null, "labels": ["perf"]}),
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c1", "author": "ana", "text": "On it"}),
            ),
            "CardCommented",
            json!({"card_id": "c1", "author": "ana", "text": "On it"}),
        ),
        (
            cmd("ArchiveCard", json!({"card_id": "c2"})),
            "CardArchived",
            json!({"card_id": "c2", "column": "Done"}),
        ),
        (
            cmd("SetWipLimit", json!({"column": "Doing", "limit": null})),
            "WipLimitSet",
            json!({"column": "Doing", "limit": null}),
        ),
    ];
    let mut recorded = Vec::new();
    for (body, event_type, data) in steps {
        let event = one_event(&c, "board", &id, body.clone(), next()).await;
        assert_eq!(event["type"], event_type, "{body}");
        assert_eq!(event["data"], data, "{body}");
        let expected_schema = if event_type == "CardAdded" { 2 } else { 1 };
        assert_eq!(event["schema_version"], expected_schema, "{event}");
        recorded.push(event);
    }

    // The log holds exactly these envelopes, densely numbered, with distinct ids.
    let listed = c.all_events("board", &id).await;
    assert_eq!(listed, recorded);
    assert_eq!(
        tests::seqs(&listed),
        (1..=recorded.len() as u64).collect::<Vec<_>>()
    );
    let mut ids = tests::event_ids(&listed);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "duplicate event ids");

    // The state is the fold of those events.
    let state = c.state("board", &id, "").await.expect(200);
    assert_eq!(state["version"], recorded.len());
    assert_eq!(
        state["state"],
        json!({
            "created": true,
            "title": "Sprint",
            "columns": [
                {"name": "Todo", "wip_limit": null},
                {"name": "Doing", "wip_limit": null},
                {"name": "Done", "wip_limit": 5},
                {"name": "Review", "wip_limit": null},
            ],
            "cards": {
                "c1": {"title": "First, renamed", "column": "Doing", "labels": ["perf"], "archived": false,
                       "comments": 1},
                "c2": {"title": "Second", "column": "Done", "labels": [], "archived": true, "comments": 0},
            },
        })
    );
}

#[tokio::test]
async fn every_feedback_command_records_its_event_with_the_command_fields() {
    let c = shared().client();
    let id = unique_id("feedback");
    let submitted = one_event(
        &c,
        "feedback",
        &id,
        cmd(
            "SubmitFeedback",
            json!({"text": "Login is slow", "source": "web"}),
        ),
        1,
    )
    .await;
    assert_eq!(submitted["type"], "FeedbackSubmitted");
    assert_eq!(
        submitted["data"],
        json!({"text": "Login is slow", "source": "web", "severity": "medium"})
    );

    let triaged = one_event(
        &c,
        "feedback",
        &id,
        cmd(
            "TriageFeedback",
            json!({"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]}),
        ),
        2,
    )
    .await;
    assert_eq!(triaged["type"], "FeedbackTriaged");
    assert_eq!(
        triaged["data"],
        json!({"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]})
    );

    let closed = one_event(
        &c,
        "feedback",
        &id,
        cmd("CloseFeedback", json!({"reason": "fixed in 1.2"})),
        3,
    )
    .await;
    assert_eq!(closed["type"], "FeedbackClosed");
    assert_eq!(closed["data"], json!({"reason": "fixed in 1.2"}));

    let state = c.state("feedback", &id, "").await.expect(200);
    assert_eq!(state["version"], 3);
    assert_eq!(
        state["state"],
        json!({
            "submitted": true,
            "text": "Login is slow",
            "source": "web",
            "severity": "medium",
            "status": "closed",
            "triage": {"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]},
            "close_reason": "fixed in 1.2",
        })
    );
    assert_eq!(
        c.all_events("feedback", &id).await,
        vec![submitted, triaged, closed]
    );

    // A given severity is kept.
    let other = unique_id("feedback");
    let event = one_event(
        &c,
        "feedback",
        &other,
        cmd(
            "SubmitFeedback",
            json!({"text": "Data lost!", "source": "ios", "severity": "critical"}),
        ),
        1,
    )
    .await;
    assert_eq!(event["data"]["severity"], "critical");
}

#[tokio::test]
async fn a_command_whose_effect_already_holds_appends_nothing() {
    let c = shared().client();
    let id = unique_id("board");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Idle"})))
        .await;
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
    )
    .await;
    // Moving a card to the column it is in decides no events: 200, nothing appended.
    let reply = c
        .ok(
            "board",
            &id,
            cmd("MoveCard", json!({"card_id": "c1", "to_column": "Inbox"})),
        )
        .await;
    assert_eq!(reply["events"], json!([]));
    assert_eq!(reply["version"], 2);
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test]
async fn each_command_gets_its_own_command_id_and_event_ids() {
    let c = shared().client();
    let id = unique_id("board");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Ids"})))
        .await;
    for n in 0..5 {
        c.ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
        )
        .await;
    }
    let events = c.all_events("board", &id).await;
    assert_eq!(events.len(), 6);
    let mut event_ids = tests::event_ids(&events);
    let mut command_ids: Vec<String> = events
        .iter()
        .map(|e| e["command_id"].as_str().unwrap().to_owned())
        .collect();
    event_ids.sort();
    event_ids.dedup();
    command_ids.sort();
    command_ids.dedup();
    assert_eq!(
        (event_ids.len(), command_ids.len()),
        (6, 6),
        "ids repeat: {events:?}"
    );
    // Recording times never go backwards along the log.
    let times: Vec<i64> = events
        .iter()
        .map(|e| check_timestamp(e["recorded_at"].as_str().unwrap()))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "recorded_at goes backwards: {times:?}"
    );
}

#[tokio::test]
async fn a_command_may_be_sent_as_messagepack() {
    let c = shared().client();
    let id = unique_id("board");
    let body = json!({"type": "CreateBoard", "data": {"title": "Packed", "columns": ["A"]}});
    let bytes = rmp_serde::to_vec_named(&body).unwrap();
    let reply = c
        .post_raw(
            &format!("/v1/aggregates/board/{id}/commands"),
            Some("application/msgpack"),
            bytes,
        )
        .await
        .expect(200);
    assert_eq!(reply["version"], 1);
    assert_eq!(
        reply["events"][0]["data"],
        json!({"title": "Packed", "columns": ["A"]})
    );
}

#[tokio::test]
async fn healthz_answers_json() {
    let c = shared().client();
    let reply = c.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}
