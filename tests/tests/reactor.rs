//! The in-Worker reactor against workerd: the `auto_archive` policy archives a card that
//! sat in Done longer than configured — once per stay, also across a crash and restart —
//! and leaves alone cards that left Done in time.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd};

/// Long enough that c3's move out of Done reaches the reactor before c3's timer is due even
/// on a loaded machine (the moves travel through paced forwards and reactor wakes).
const AFTER_MS: u64 = 3_000;

async fn archived_events(c: &Client, board: &str) -> Vec<Value> {
    c.all_events("board", board)
        .await
        .into_iter()
        .filter(|e| e["type"] == "CardArchived")
        .collect()
}

async fn await_archived(c: &Client, board: &str, cards: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived = archived_events(c, board).await;
        if archived.len() >= cards {
            return archived;
        }
        assert!(
            Instant::now() < deadline,
            "archived {archived:?}, expected {cards}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn move_card(c: &Client, board: &str, card: &str, column: &str) -> Value {
    c.ok(
        "board",
        board,
        cmd("MoveCard", json!({"card_id": card, "to_column": column})),
    )
    .await
}

#[tokio::test]
async fn cards_left_in_done_are_archived_once_even_across_a_restart() {
    let mut worker = Worker::start_with(Options::new().var("AUTO_ARCHIVE_AFTER_MS", AFTER_MS));
    let c = worker.client();
    let board = c.board_with_cards("reactor", 4).await;
    let moved = move_card(&c, &board, "c1", "Done").await;
    move_card(&c, &board, "c2", "Done").await;
    // c3 visits Done but leaves before its time.
    move_card(&c, &board, "c3", "Done").await;
    move_card(&c, &board, "c3", "Doing").await;
    let archived = await_archived(&c, &board, 2).await;
    let cards: Vec<&str> = archived
        .iter()
        .map(|e| e["data"]["card_id"].as_str().unwrap())
        .collect();
    assert_eq!(cards, ["c1", "c2"]);
    // The policy acted as itself, caused by the move that started the stay.
    assert_eq!(archived[0]["actor"], "policy:auto_archive");
    assert_eq!(archived[0]["causation_id"], moved["events"][0]["event_id"]);

    // c4 enters Done, and the runtime crashes right away: after the restart the timer is
    // still there and fires once.
    move_card(&c, &board, "c4", "Done").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.kill_hard();
    worker.restart();
    let c = worker.client();
    let archived = await_archived(&c, &board, 3).await;
    assert_eq!(archived[2]["data"]["card_id"], "c4");
    // Nothing more happens: each stay was acted on once, c3 never.
    tokio::time::sleep(Duration::from_millis(AFTER_MS + 1_500)).await;
    let archived = archived_events(&c, &board).await;
    assert_eq!(archived.len(), 3, "{archived:?}");
    let state = c.state("board", &board, "").await.expect(200);
    assert!(state.to_string().contains("c3"));
}
