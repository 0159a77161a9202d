//! Durability: the runtime (node and workerd together) is killed with SIGKILL while
//! commands are in flight and started again on the same storage directory. Every
//! acknowledged event and the state are intact, the log continues densely, idempotency
//! keys still replay, and subscribers resume with `?after=N`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd, event_ids, seqs, unique_id};

const BOARDS: usize = 4;
const WRITERS_PER_BOARD: usize = 2;
/// Acknowledged commands to wait for before the crash.
const ACKS_BEFORE_CRASH: usize = 120;

/// Adds cards to `id` until a request fails (the runtime is gone); returns the
/// acknowledged envelopes. Errors are expected here, so this does not use the panicking
/// helpers.
async fn write_until_crash(
    c: Client,
    id: String,
    writer: usize,
    acks: Arc<AtomicUsize>,
) -> Vec<Value> {
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let body = cmd(
            "AddCard",
            json!({"card_id": format!("w{writer}-{n}"), "title": "t"}),
        );
        let request = c
            .request(
                reqwest::Method::POST,
                &format!("/v1/aggregates/board/{id}/commands"),
            )
            .json(&body);
        let Ok(response) = request.send().await else {
            break;
        };
        let status = response.status().as_u16();
        let Ok(bytes) = response.bytes().await else {
            break;
        };
        assert_eq!(
            status,
            200,
            "before the crash every command succeeds: {}",
            String::from_utf8_lossy(&bytes)
        );
        let reply: Value = serde_json::from_slice(&bytes).expect("JSON");
        acknowledged.push(reply["events"][0].clone());
        acks.fetch_add(1, Ordering::SeqCst);
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_and_state_survive_a_sigkill_mid_flight() {
    // Snapshots every 7 events, so the restart rebuilds from a snapshot plus a tail.
    let mut worker = Worker::start_with(Options::new().var("SNAPSHOT_EVERY", 7));
    let c = worker.client();
    let ids: Vec<String> = (0..BOARDS).map(|_| unique_id("board-durable")).collect();
    for id in &ids {
        c.ok("board", id, cmd("CreateBoard", json!({"title": "Durable"})))
            .await;
    }

    // A live subscriber on the first board, reading until the connection dies.
    let mut socket = c.subscribe("board", &ids[0], None).await;
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(frame)) = socket.try_frame_within(Duration::from_secs(60)).await {
            if frame["kind"] == "event" {
                seen.push(frame["event"].clone());
            }
        }
        seen
    });

    let acks = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for (board, id) in ids.iter().enumerate() {
        for w in 0..WRITERS_PER_BOARD {
            writers.push((
                board,
                tokio::spawn(write_until_crash(
                    c.clone(),
                    id.clone(),
                    board * 10 + w,
                    Arc::clone(&acks),
                )),
            ));
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acks.load(Ordering::SeqCst) < ACKS_BEFORE_CRASH {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers too slow: {} acks",
            acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Crash with requests in flight: no shutdown, no flush.
    worker.kill_hard();

    let mut acknowledged: Vec<Vec<Value>> = vec![Vec::new(); BOARDS];
    for (board, writer) in writers {
        acknowledged[board].extend(writer.await.expect("writer task"));
    }
    let seen_live = watcher.await.expect("watcher task");
    let total: usize = acknowledged.iter().map(Vec::len).sum();
    assert!(total >= ACKS_BEFORE_CRASH);

    worker.restart();
    let c = worker.client();
    for (board, id) in ids.iter().enumerate() {
        let log = c.all_events("board", id).await;
        let n = log.len() as u64;
        assert_eq!(
            seqs(&log),
            (1..=n).collect::<Vec<_>>(),
            "board {board}: seqs not dense after the crash"
        );
        let mut distinct = event_ids(&log);
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            log.len(),
            "board {board}: an event id repeats"
        );
        for ack in &acknowledged[board] {
            let seq = ack["seq"].as_u64().unwrap();
            assert_eq!(
                &log[seq as usize - 1],
                ack,
                "board {board}: acknowledged event {seq} lost or changed by the crash"
            );
        }
        // At most the commands that were in flight at the crash may exist unacknowledged.
        let unacknowledged = log.len() - 1 - acknowledged[board].len();
        assert!(
            unacknowledged <= WRITERS_PER_BOARD,
            "board {board}: {unacknowledged} events nobody was told about"
        );

        // The state is the fold of the log, and the log continues densely.
        let state = c.state("board", id, "").await.expect(200);
        assert_eq!(state["version"], n);
        let cards = state["state"]["cards"].as_object().unwrap();
        assert_eq!(
            cards.len() as u64,
            n - 1,
            "board {board}: state does not match the log"
        );
        for event in &log[1..] {
            assert!(cards.contains_key(event["data"]["card_id"].as_str().unwrap()));
        }
        let next = c
            .ok(
                "board",
                id,
                cmd("AddCard", json!({"card_id": "after-restart", "title": "t"})),
            )
            .await;
        assert_eq!(next["version"], n + 1);
    }

    // The subscriber resumes where it was cut off: exactly what it missed, then live.
    let last_seen = seen_live.last().map_or(0, |e| e["seq"].as_u64().unwrap());
    assert_eq!(
        seqs(&seen_live),
        (1..=last_seen).collect::<Vec<_>>(),
        "the live feed before the crash had a gap"
    );
    let log = c.all_events("board", &ids[0]).await;
    let mut socket = c.subscribe("board", &ids[0], Some(last_seen)).await;
    let missed = socket.next_events(log.len() - last_seen as usize).await;
    assert_eq!(missed, log[last_seen as usize..]);
    assert_eq!(socket.caught_up().await, log.len() as u64);
}

#[tokio::test]
async fn an_idempotency_key_still_replays_after_a_crash() {
    let mut worker = Worker::start();
    let c = worker.client();
    let id = unique_id("board-idem-durable");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Keys"})))
        .await;
    let body = cmd("AddCard", json!({"card_id": "c1", "title": "once"}));
    let original = c
        .command_with_key("board", &id, &body, Some("durable-key"))
        .await
        .expect(200);

    worker.kill_hard();
    worker.restart();
    let c = worker.client();
    let again = c
        .command_with_key("board", &id, &body, Some("durable-key"))
        .await;
    assert_eq!(again.expect(200), original);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test]
async fn state_and_time_travel_are_rebuilt_from_snapshots_after_a_crash() {
    let mut worker = Worker::start_with(Options::new().var("SNAPSHOT_EVERY", 3));
    let c = worker.client();
    let id = unique_id("board-snap");
    let fid = unique_id("feedback-snap");
    let steps = [
        cmd(
            "CreateBoard",
            json!({"title": "Snapshots", "columns": ["A", "B"]}),
        ),
        cmd("AddColumn", json!({"name": "C", "wip_limit": 2})),
        cmd(
            "AddCard",
            json!({"card_id": "c1", "title": "One", "labels": ["x"]}),
        ),
        cmd(
            "AddCard",
            json!({"card_id": "c2", "title": "Two", "column": "C"}),
        ),
        cmd("MoveCard", json!({"card_id": "c1", "to_column": "C"})),
        cmd("EditCard", json!({"card_id": "c2", "labels": ["y", "z"]})),
        cmd(
            "CommentOnCard",
            json!({"card_id": "c2", "author": "ana", "text": "hi"}),
        ),
        cmd("ArchiveCard", json!({"card_id": "c1"})),
        cmd("SetWipLimit", json!({"column": "C", "limit": 1})),
        cmd("AddCard", json!({"card_id": "c3", "title": "Three"})),
    ];
    let mut then = Vec::new();
    for step in steps {
        c.ok("board", &id, step).await;
        then.push(c.state("board", &id, "").await.expect(200));
    }
    c.ok(
        "feedback",
        &fid,
        cmd(
            "SubmitFeedback",
            json!({"text": "slow", "source": "web", "severity": "high"}),
        ),
    )
    .await;
    c.ok(
        "feedback",
        &fid,
        cmd(
            "TriageFeedback",
            json!({"board_id": id, "card_id": "c3", "labels": []}),
        ),
    )
    .await;
    let feedback = c.state("feedback", &fid, "").await.expect(200);
    let log = c.all_events("board", &id).await;

    worker.kill_hard();
    worker.restart();
    let c = worker.client();
    assert_eq!(c.all_events("board", &id).await, log);
    assert_eq!(
        &c.state("board", &id, "").await.expect(200),
        then.last().unwrap()
    );
    for (index, expected) in then.iter().enumerate() {
        let past = c
            .state("board", &id, &format!("?at_version={}", index + 1))
            .await
            .expect(200);
        assert_eq!(
            &past,
            expected,
            "state at version {} after the restart",
            index + 1
        );
    }
    assert_eq!(c.state("feedback", &fid, "").await.expect(200), feedback);
    // Decisions after the restart use the rebuilt state: C holds its limit of 1 (c2).
    let refused = c
        .command(
            "board",
            &id,
            &cmd("MoveCard", json!({"card_id": "c3", "to_column": "C"})),
        )
        .await;
    assert_eq!(
        refused.expect_error(422, "rejected")["rule"],
        "wip_limit_reached"
    );
    let next = c
        .ok(
            "board",
            &id,
            cmd("MoveCard", json!({"card_id": "c3", "to_column": "B"})),
        )
        .await;
    assert_eq!(next["version"], 11);
}
