//! Consumer groups against workerd: durable cursors, leases, ack/nack, retries and
//! parking, lease expiry, filters, restarts, and traces of correlated commands.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd};

async fn post(c: &Client, path: &str, body: Value) -> tests::Reply {
    c.send(c.request(reqwest::Method::POST, path).json(&body))
        .await
}

async fn create(c: &Client, group: &str, body: Value) -> Value {
    let reply = c
        .send(
            c.request(reqwest::Method::PUT, &format!("/v1/consumers/{group}"))
                .json(&body),
        )
        .await;
    assert!(
        matches!(reply.status, 200 | 201),
        "create {group}: {} {}",
        reply.status,
        reply.text()
    );
    reply.json()
}

async fn poll(c: &Client, group: &str, consumer: &str, wait_ms: u64) -> Value {
    post(
        c,
        &format!("/v1/consumers/{group}/poll"),
        json!({"consumer": consumer, "wait_ms": wait_ms}),
    )
    .await
    .expect(200)
}

fn offsets(batch: &Value) -> Vec<u64> {
    batch["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["position"]["offset"].as_u64().unwrap())
        .collect()
}

/// Feedback items on one partition so the group's order is observable.
async fn submit_feedback(c: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = tests::unique_id(&format!("cg{i}"));
        c.ok(
            "feedback",
            &id,
            cmd(
                "SubmitFeedback",
                json!({"text": format!("item {i}"), "source": "web"}),
            ),
        )
        .await;
        ids.push(id);
    }
    ids
}

async fn await_heads(c: &Client, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = c.get("/v1/stream/partitions").await.expect(200);
        let sum: u64 = status["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["head"].as_u64().unwrap())
            .sum();
        if sum >= total {
            return;
        }
        assert!(Instant::now() < deadline, "stream never reached {total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_group_delivers_under_leases_acks_advance_and_two_consumers_never_share_a_partition() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    submit_feedback(&c, 5).await;
    await_heads(&c, 5).await;
    let created = create(&c, "g1", json!({"start": "beginning", "lease_ms": 60000})).await;
    assert_eq!(created["group"], "g1");
    // Same settings again: 200; other settings: 409.
    create(&c, "g1", json!({"start": "beginning", "lease_ms": 60000})).await;
    let conflict = c
        .send(
            c.request(reqwest::Method::PUT, "/v1/consumers/g1")
                .json(&json!({"lease_ms": 1000})),
        )
        .await;
    conflict.expect_error(409, "conflict");

    let first = poll(&c, "g1", "a", 0).await;
    assert_eq!(offsets(&first), [1, 2, 3, 4, 5]);
    assert_eq!(first["events"][0]["attempt"], 1);
    // The partition is busy: another consumer gets nothing (and waits only as asked).
    let started = Instant::now();
    let other = poll(&c, "g1", "b", 300).await;
    assert_eq!(other["events"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "did not long-poll"
    );
    let lease = first["lease"]["id"].as_str().unwrap();
    let acked = post(
        &c,
        "/v1/consumers/g1/ack",
        json!({"consumer": "a", "lease": lease, "offsets": [1, 2, 3, 4, 5]}),
    )
    .await
    .expect(200);
    assert_eq!(acked["cursor"], 5);
    // A long poll wakes when a new event arrives.
    let waiter = {
        let c = worker.client();
        tokio::spawn(async move { poll(&c, "g1", "b", 10_000).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    submit_feedback(&c, 1).await;
    let woken = waiter.await.unwrap();
    assert_eq!(offsets(&woken), [6]);
    let status = c.get("/v1/consumers/g1").await.expect(200);
    assert_eq!(status["partitions"][0]["cursor"], 5);
    assert_eq!(status["partitions"][0]["in_flight"], 1);
    assert_eq!(status["partitions"][0]["leased_by"], "b");
    // Foreign leases are refused.
    let lease_b = woken["lease"]["id"].as_str().unwrap();
    post(
        &c,
        "/v1/consumers/g1/ack",
        json!({"consumer": "a", "lease": lease_b, "offsets": [6]}),
    )
    .await
    .expect_error(409, "lease_lost");
    let listed = c.get("/v1/consumers").await.expect(200);
    assert_eq!(listed["groups"][0]["group"], "g1");
    // Bad bodies are 400s.
    for bad in [
        json!({}),
        json!({"consumer": null}),
        json!({"consumer": "a", "wait_ms": 999999}),
        json!({"consumer": "a", "extra": 1}),
    ] {
        post(&c, "/v1/consumers/g1/poll", bad)
            .await
            .expect_error(400, "bad_request");
    }
    c.get("/v1/consumers/_registry")
        .await
        .expect_error(400, "bad_request");
    c.get("/v1/consumers/missing")
        .await
        .expect_error(404, "not_found");
    let deleted = c
        .send(c.request(reqwest::Method::DELETE, "/v1/consumers/g1"))
        .await;
    assert_eq!(deleted.status, 204);
    c.get("/v1/consumers/g1")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn an_expired_lease_redelivers_to_another_consumer() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    submit_feedback(&c, 3).await;
    await_heads(&c, 3).await;
    create(&c, "g2", json!({"lease_ms": 500})).await;
    let first = poll(&c, "g2", "quitter", 0).await;
    assert_eq!(offsets(&first), [1, 2, 3]);
    // The first consumer stops without acking; after the lease, another gets them.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = poll(&c, "g2", "taker", 2_000).await;
    assert_eq!(offsets(&second), [1, 2, 3]);
    assert_eq!(second["events"][0]["attempt"], 2);
    let lease = first["lease"]["id"].as_str().unwrap();
    post(
        &c,
        "/v1/consumers/g2/ack",
        json!({"consumer": "quitter", "lease": lease, "offsets": [1]}),
    )
    .await
    .expect_error(409, "lease_lost"); // the partition's newer batch replaced it
}

#[tokio::test]
async fn a_failing_event_is_retried_then_parked_then_replayed_without_holding_back_other_partitions()
 {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 2));
    let c = worker.client();
    submit_feedback(&c, 12).await;
    await_heads(&c, 12).await;
    create(
        &c,
        "g3",
        json!({"max_attempts": 3, "retry_backoff_ms": 50, "max_backoff_ms": 100, "max_batch": 1}),
    )
    .await;
    // The consumer fails on the first event it sees, every time; it acks everything else.
    let mut poison: Option<(u64, u64)> = None;
    let mut handled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let batch = poll(&c, "g3", "worker", 300).await;
        let Some(event) = batch["events"].as_array().unwrap().first().cloned() else {
            if handled.len() == 11 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "stuck: handled {}",
                handled.len()
            );
            continue;
        };
        let position = (
            event["event"]["position"]["partition"].as_u64().unwrap(),
            event["event"]["position"]["offset"].as_u64().unwrap(),
        );
        let lease = batch["lease"]["id"].as_str().unwrap();
        if poison.is_none() {
            poison = Some(position);
        }
        if Some(position) == poison {
            post(&c, "/v1/consumers/g3/nack", json!({"consumer": "worker", "lease": lease, "offset": position.1, "action": "retry", "reason": "boom"}))
                .await
                .expect(200);
        } else {
            post(
                &c,
                "/v1/consumers/g3/ack",
                json!({"consumer": "worker", "lease": lease, "offsets": [position.1]}),
            )
            .await
            .expect(200);
            handled.insert(position);
        }
    }
    let status = c.get("/v1/consumers/g3").await.expect(200);
    assert_eq!(status["parked"], 1, "{status}");
    let parked = c.get("/v1/consumers/g3/parked").await.expect(200);
    let entry = &parked["parked"][0];
    assert_eq!(entry["attempts"], 3);
    assert_eq!(entry["event"]["type"], "FeedbackSubmitted");
    let (p, o) = poison.unwrap();
    assert_eq!(
        (
            entry["partition"].as_u64().unwrap(),
            entry["offset"].as_u64().unwrap()
        ),
        (p, o)
    );
    // After the fix, replay: it is delivered again and acked.
    post(
        &c,
        "/v1/consumers/g3/parked/replay",
        json!({"offsets": [{"partition": p, "offset": o}]}),
    )
    .await
    .expect(200);
    let again = poll(&c, "g3", "worker", 2_000).await;
    assert_eq!(offsets(&again), [o]);
    let lease = again["lease"]["id"].as_str().unwrap();
    post(
        &c,
        "/v1/consumers/g3/ack",
        json!({"consumer": "worker", "lease": lease, "offsets": [o]}),
    )
    .await
    .expect(200);
    let status = c.get("/v1/consumers/g3").await.expect(200);
    assert_eq!(status["parked"], 0);
    assert_eq!(status["lag"], 0, "{status}");
}

#[tokio::test]
async fn cursors_survive_a_restart_and_filters_deliver_only_wanted_events() {
    let mut worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    c.board_with_cards("noise", 3).await;
    submit_feedback(&c, 4).await;
    await_heads(&c, 8).await;
    create(
        &c,
        "g4",
        json!({"aggregate_type": "feedback", "types": ["FeedbackSubmitted"], "max_batch": 2}),
    )
    .await;
    let first = poll(&c, "g4", "a", 0).await;
    let got: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["FeedbackSubmitted", "FeedbackSubmitted"]);
    let lease = first["lease"]["id"].as_str().unwrap();
    post(
        &c,
        "/v1/consumers/g4/ack",
        json!({"consumer": "a", "lease": lease, "offsets": offsets(&first)}),
    )
    .await
    .expect(200);
    worker.kill_hard();
    worker.restart();
    let c = worker.client();
    let rest = poll(&c, "g4", "a", 2_000).await;
    assert_eq!(
        rest["events"].as_array().unwrap().len(),
        2,
        "continues after the acked ones: {rest}"
    );
    assert!(
        offsets(&rest)
            .iter()
            .all(|o| *o > *offsets(&first).last().unwrap())
    );
}

#[tokio::test]
async fn a_trace_follows_a_correlation_id_across_aggregates() {
    let c = tests::shared().client();
    let feedback = tests::unique_id("trace-fb");
    let submitted = c
        .ok(
            "feedback",
            &feedback,
            cmd(
                "SubmitFeedback",
                json!({"text": "crash on save", "source": "web"}),
            ),
        )
        .await;
    let root = submitted["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let board = c.board_with_cards("trace", 0).await;
    let mut caused = cmd(
        "AddCard",
        json!({"card_id": "t1", "title": "crash on save"}),
    );
    caused["causation_id"] = json!(root);
    caused["correlation_id"] = json!(root);
    c.ok("board", &board, caused).await;
    let mut triage = cmd(
        "TriageFeedback",
        json!({"board_id": board, "card_id": "t1", "labels": ["bug"]}),
    );
    triage["causation_id"] = json!(root);
    triage["correlation_id"] = json!(root);
    c.ok("feedback", &feedback, triage).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trace = c.get(&format!("/v1/trace/{root}")).await.expect(200);
        let types: Vec<&str> = trace["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        if types.len() == 3 {
            assert_eq!(types, ["FeedbackSubmitted", "CardAdded", "FeedbackTriaged"]);
            break;
        }
        assert!(Instant::now() < deadline, "trace: {types:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
