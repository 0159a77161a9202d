//! `fold_all` over a realistic stream: a feedback item becomes a card on a board, the card
//! goes through the columns, and the feedback is closed — commands run through the domain's
//! command service, their events in commit order as one partition delivers them. Every
//! projection in the registry folds the same stream and takes only its own events.

mod support;

use domain::EventEnvelope;
use projections::{ListIndex, by_name, fold_all, registry};
use serde_json::{Value, json};
use support::World;

/// The feedback loop; the command sent `n`-th is recorded at `10:00:0n` (a second apart).
fn feedback_loop() -> World {
    let mut world = World::new();
    let f1 = json!({"text": "Login takes 20 s", "source": "web", "severity": "high"});
    world.ok("feedback", "f1", "SubmitFeedback", f1); // 1
    world.ok(
        "board",
        "roadmap",
        "CreateBoard",
        json!({"title": "Roadmap"}),
    ); // 2
    world.ok(
        "board",
        "roadmap",
        "SetWipLimit",
        json!({"column": "Doing", "limit": 2}),
    ); // 3
    let c1 = json!({"card_id": "c1", "title": "Fix slow login", "labels": ["perf"]});
    world.ok("board", "roadmap", "AddCard", c1); // 4
    let triage = json!({"board_id": "roadmap", "card_id": "c1", "labels": ["perf"]});
    world.ok("feedback", "f1", "TriageFeedback", triage); // 5
    let f2 = json!({"text": "Export to CSV please", "source": "support-email"});
    world.ok("feedback", "f2", "SubmitFeedback", f2); // 6
    let c2 = json!({"card_id": "c2", "title": "CSV export", "column": "Todo"});
    world.ok("board", "roadmap", "AddCard", c2); // 7
    let to_doing = |card: &str| json!({"card_id": card, "to_column": "Doing"});
    world.ok("board", "roadmap", "MoveCard", to_doing("c1")); // 8
    world.ok("board", "roadmap", "MoveCard", to_doing("c2")); // 9
    let comment = json!({"card_id": "c1", "author": "ana", "text": "Cache the session"});
    world.ok("board", "roadmap", "CommentOnCard", comment); // 10
    let c3 = json!({"card_id": "c3", "title": "Dark mode", "labels": ["ui", "x"]});
    world.ok("board", "roadmap", "AddCard", c3); // 11
    let to_done = json!({"card_id": "c1", "to_column": "Done"});
    world.ok("board", "roadmap", "MoveCard", to_done); // 12
    world.ok("board", "roadmap", "ArchiveCard", json!({"card_id": "c2"})); // 13
    world.ok(
        "feedback",
        "f1",
        "CloseFeedback",
        json!({"reason": "fixed in 1.4"}),
    ); // 14
    let review = json!({"name": "Review", "wip_limit": 1});
    world.ok("board", "roadmap", "AddColumn", review); // 15
    world
}

fn at(second: u32) -> String {
    format!("2026-11-29T10:00:{second:02}.000Z")
}

fn card(card_id: &str, title: &str, labels: Value, comments: u32) -> Value {
    json!({"card_id": card_id, "title": title, "labels": labels, "comments": comments})
}

fn summaries(stream: &[EventEnvelope]) -> Value {
    let documents = fold_all(by_name("board_summary").unwrap(), stream).unwrap();
    assert_eq!(documents.keys().collect::<Vec<_>>(), ["roadmap"]);
    documents["roadmap"].clone()
}

#[test]
fn the_board_summary_follows_the_cards_through_the_columns() {
    let world = feedback_loop();
    assert_eq!(
        summaries(&world.stream),
        json!({
            "board_id": "roadmap", "title": "Roadmap", "version": 11,
            "last_activity_at": at(15),
            "columns": [
                {"name": "Inbox", "wip_limit": null, "card_count": 1, "full": false,
                 "cards": [card("c3", "Dark mode", json!(["ui", "x"]), 0)]},
                {"name": "Todo", "wip_limit": null, "card_count": 0, "full": false, "cards": []},
                {"name": "Doing", "wip_limit": 2, "card_count": 0, "full": false, "cards": []},
                {"name": "Done", "wip_limit": null, "card_count": 1, "full": false,
                 "cards": [card("c1", "Fix slow login", json!(["perf"]), 1)]},
                {"name": "Review", "wip_limit": 1, "card_count": 0, "full": false, "cards": []},
            ],
            "archived_count": 1,
        })
    );
}

#[test]
fn mid_stream_the_doing_column_is_full() {
    let world = feedback_loop();
    // Through the ninth command: both cards moved into Doing, at its limit of 2.
    let through_ninth = world
        .stream
        .iter()
        .position(|e| e.recorded_at == at(10))
        .unwrap();
    let summary = summaries(&world.stream[..through_ninth]);
    assert_eq!(summary["version"], 6);
    assert_eq!(
        summary["columns"][2],
        json!({"name": "Doing", "wip_limit": 2, "card_count": 2, "full": true, "cards": [
            card("c1", "Fix slow login", json!(["perf"]), 0),
            card("c2", "CSV export", json!([]), 0),
        ]})
    );
}

#[test]
fn the_inbox_holds_each_feedback_with_its_triage_and_outcome() {
    let world = feedback_loop();
    let inbox = fold_all(by_name("feedback_inbox").unwrap(), &world.stream).unwrap();
    assert_eq!(inbox.keys().collect::<Vec<_>>(), ["f1", "f2"]);
    assert_eq!(
        inbox["f1"],
        json!({
            "feedback_id": "f1", "text": "Login takes 20 s", "source": "web",
            "severity": "high", "status": "closed",
            "card": {"board_id": "roadmap", "card_id": "c1"}, "labels": ["perf"],
            "closed_reason": "fixed in 1.4",
            "submitted_at": at(1), "updated_at": at(14), "version": 3,
        })
    );
    assert_eq!(
        inbox["f2"],
        json!({
            "feedback_id": "f2", "text": "Export to CSV please", "source": "support-email",
            "severity": "medium", "status": "open", "card": null, "labels": [],
            "closed_reason": null,
            "submitted_at": at(6), "updated_at": at(6), "version": 1,
        })
    );
}

#[test]
fn lists_put_the_newest_first_and_filter_on_the_indexed_values() {
    let world = feedback_loop();
    let inbox = by_name("feedback_inbox").unwrap();
    let documents = fold_all(inbox, &world.stream).unwrap();
    let index = |id: &str| inbox.index(&documents[id]);
    assert!(index("f2").sort_key > index("f1").sort_key, "f2 came later");
    assert_eq!(
        index("f1").filters,
        [
            ("status", "closed".to_owned()),
            ("severity", "high".to_owned())
        ]
    );
    assert_eq!(
        index("f2").filters,
        [
            ("status", "open".to_owned()),
            ("severity", "medium".to_owned())
        ]
    );
    let board = by_name("board_summary").unwrap();
    let summary = summaries(&world.stream);
    assert_eq!(
        board.index(&summary),
        ListIndex {
            sort_key: projections::testing::T0_MS + 15_000,
            filters: vec![],
        }
    );
}

#[test]
fn every_projection_takes_only_its_own_events() {
    let world = feedback_loop();
    for projection in registry() {
        let touched: Vec<&str> = world
            .stream
            .iter()
            .filter(|e| !projection.document_ids(e).is_empty())
            .map(|e| e.aggregate_type.as_str())
            .collect();
        let own: &[&str] = match projection.name() {
            "board_summary" => &["board"],
            "feedback_inbox" => &["feedback"],
            // The knowledge base reads every aggregate with something to find.
            "knowledge" => &["board", "feedback"],
            other => panic!("a projection this test does not know: {other}"),
        };
        assert!(!touched.is_empty(), "{projection:?}");
        assert!(
            touched.iter().all(|t| own.contains(t)),
            "{projection:?}: {touched:?}"
        );
    }
}
