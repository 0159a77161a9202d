//! Many clients on one aggregate at once: optimistic concurrency with retries on 409,
//! unconditional appends, racing idempotent retries, and racing creations. Whatever the
//! interleaving, every acknowledged event is in the log exactly once, seqs are dense, and
//! no event id repeats.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tests::{Client, cmd, cmd_expecting, event_ids, seqs, shared, unique_id};

const WRITERS: usize = 20;
const CARDS_PER_WRITER: usize = 5;
/// A writer gives up after this many conflicts on one card (it would mean livelock).
const MAX_ATTEMPTS: usize = 1_000;

/// Checks the log against the acknowledged envelopes: dense seqs from 1, distinct event
/// ids, and every acknowledged envelope present once, byte-for-byte as acknowledged.
fn check_log(log: &[Value], acknowledged: &[Value], expected_len: usize) {
    assert_eq!(
        seqs(log),
        (1..=expected_len as u64).collect::<Vec<_>>(),
        "seqs are not dense from 1"
    );
    let ids: BTreeSet<String> = event_ids(log).into_iter().collect();
    assert_eq!(ids.len(), log.len(), "an event id repeats");
    let by_id: BTreeMap<&str, &Value> = log
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e))
        .collect();
    for ack in acknowledged {
        let id = ack["event_id"].as_str().unwrap();
        assert_eq!(
            by_id.get(id).copied(),
            Some(ack),
            "acknowledged event {id} is missing or different in the log"
        );
    }
    let card_ids: Vec<&str> = log
        .iter()
        .filter(|e| e["type"] == "CardAdded")
        .map(|e| e["data"]["card_id"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = card_ids.iter().copied().collect();
    assert_eq!(distinct.len(), card_ids.len(), "a card was added twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_writers_retrying_on_conflict_lose_and_duplicate_nothing() {
    let c = shared().client();
    let id = unique_id("board-occ");
    c.ok(
        "board",
        &id,
        cmd("CreateBoard", json!({"title": "Contended"})),
    )
    .await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (c, id): (Client, String) = (c.clone(), id.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut conflicts = 0;
            let mut expected = c.version("board", &id).await;
            for card in 0..CARDS_PER_WRITER {
                let data = json!({"card_id": format!("w{writer}-{card}"), "title": "t"});
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts <= MAX_ATTEMPTS, "writer {writer} never got card {card} in");
                    let reply = c.command("board", &id, &cmd_expecting("AddCard", data.clone(), json!(expected))).await;
                    match reply.status {
                        200 => {
                            let body = reply.json();
                            assert_eq!(body["version"], expected + 1, "{body}");
                            let event = body["events"][0].clone();
                            assert_eq!(event["seq"], expected + 1);
                            assert_eq!(event["data"], json!({"card_id": data["card_id"], "title": "t", "column": "Inbox", "labels": []}));
                            acknowledged.push(event);
                            expected += 1;
                            break;
                        }
                        409 => {
                            conflicts += 1;
                            let error = reply.expect_error(409, "version_conflict");
                            assert_eq!(error["expected"], expected, "409 must echo the expected version as sent");
                            let actual = error["actual"].as_u64().expect("actual is a number");
                            assert!(actual > expected, "versions only grow: expected {expected}, actual {actual}");
                            expected = actual;
                        }
                        other => panic!("writer {writer}: unexpected {other}: {}", reply.text()),
                    }
                }
            }
            (acknowledged, conflicts)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut conflicts = 0;
    for writer in writers {
        let (acks, n) = writer.await.expect("writer task");
        acknowledged.extend(acks);
        conflicts += n;
    }
    assert_eq!(acknowledged.len(), WRITERS * CARDS_PER_WRITER);
    eprintln!(
        "{} commands acknowledged after {conflicts} conflicts",
        acknowledged.len()
    );

    let total = 1 + WRITERS * CARDS_PER_WRITER;
    let log = c.all_events("board", &id).await;
    check_log(&log, &acknowledged, total);
    let state = c.state("board", &id, "").await.expect(200);
    assert_eq!(state["version"], total);
    assert_eq!(
        state["state"]["cards"].as_object().unwrap().len(),
        WRITERS * CARDS_PER_WRITER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_unconditional_writers_all_land_once() {
    let c = shared().client();
    let id = unique_id("board-any");
    c.ok(
        "board",
        &id,
        cmd("CreateBoard", json!({"title": "Unconditional"})),
    )
    .await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (c, id) = (c.clone(), id.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for card in 0..CARDS_PER_WRITER {
                let body = cmd(
                    "AddCard",
                    json!({"card_id": format!("w{writer}-{card}"), "title": "t"}),
                );
                acknowledged.push(c.ok("board", &id, body).await["events"][0].clone());
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer task"));
    }
    let log = c.all_events("board", &id).await;
    check_log(&log, &acknowledged, 1 + WRITERS * CARDS_PER_WRITER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_retries_with_one_idempotency_key_append_once() {
    let c = shared().client();
    let id = unique_id("board-idem-race");
    c.ok(
        "board",
        &id,
        cmd("CreateBoard", json!({"title": "Racing retries"})),
    )
    .await;
    let body = cmd("AddCard", json!({"card_id": "once", "title": "t"}));

    let mut retries = Vec::new();
    for _ in 0..WRITERS {
        let (c, id, body) = (c.clone(), id.clone(), body.clone());
        retries.push(tokio::spawn(async move {
            c.command_with_key("board", &id, &body, Some("race-key"))
                .await
        }));
    }
    let mut bodies = Vec::new();
    let mut replayed = 0;
    for retry in retries {
        let reply = retry.await.expect("retry task");
        bodies.push(reply.expect(200));
        if reply.header("idempotent-replayed").as_deref() == Some("true") {
            replayed += 1;
        }
    }
    assert_eq!(
        replayed,
        WRITERS - 1,
        "exactly one request executes, the others replay it"
    );
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every retry answers the same result"
    );
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creations_expecting_none_create_once() {
    let c = shared().client();
    let id = unique_id("board-create-race");
    let mut racers = Vec::new();
    for n in 0..WRITERS {
        let (c, id) = (c.clone(), id.clone());
        racers.push(tokio::spawn(async move {
            c.command(
                "board",
                &id,
                &cmd_expecting(
                    "CreateBoard",
                    json!({"title": format!("Racer {n}")}),
                    json!("none"),
                ),
            )
            .await
        }));
    }
    let mut created = Vec::new();
    for racer in racers {
        let reply = racer.await.expect("racer task");
        match reply.status {
            200 => created.push(reply.json()),
            409 => {
                let error = reply.expect_error(409, "version_conflict");
                assert_eq!(
                    (error["expected"].clone(), error["actual"].clone()),
                    (json!("none"), json!(1))
                );
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(created.len(), 1, "exactly one creation wins");
    let log = c.all_events("board", &id).await;
    assert_eq!(log, created[0]["events"].as_array().unwrap().clone());
}
