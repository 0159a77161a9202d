//! Batches against workerd: `POST /v1/aggregates/{type}/{id}/batch` decides its commands in
//! order and appends their events together, all or none, under one idempotency key — and
//! its events reach the stream like any others.

use serde_json::{Value, json};
use tests::{Options, Worker};

fn cards(from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"type": "AddCard", "data": {"card_id": format!("c{i}"), "title": format!("Card {i}")}}))
        .collect()
}

#[tokio::test]
async fn a_batch_appends_in_order_all_or_none_under_one_key() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("MAX_EVENTS_PER_BATCH", 200),
    );
    let c = worker.client();
    let id = tests::unique_id("batch");
    let path = format!("/v1/aggregates/board/{id}/batch");
    let mut commands = vec![json!({"type": "CreateBoard", "data": {"title": "Bulk"}})];
    commands.extend(cards(0, 50));
    let body =
        json!({"commands": commands, "expected_version": "none", "correlation_id": "bulk-1"});
    let request = |key: &str| {
        c.request(reqwest::Method::POST, &path)
            .header("idempotency-key", key)
            .json(&body)
    };
    let first = c.send(request("k1")).await.expect(200);
    assert_eq!(first["version"], 51);
    let events = first["events"].as_array().unwrap();
    assert_eq!(events.len(), 51);
    for (i, e) in events.iter().enumerate() {
        tests::check_envelope(e);
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["correlation_id"], "bulk-1");
    }
    assert_eq!(first["consistency_token"], format!("board/{id}@51"));
    // The same key again: the original answer, nothing appended.
    let again = c.send(request("k1")).await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.expect(200)["events"], first["events"]);
    assert_eq!(c.version("board", &id).await, 51);

    // One refused command refuses the batch, naming it, and writes nothing.
    let mut bad = cards(50, 3);
    bad.push(json!({"type": "AddCard", "data": {"card_id": "c1", "title": "dup"}}));
    let refused = c
        .send(
            c.request(reqwest::Method::POST, &path)
                .json(&json!({"commands": bad})),
        )
        .await;
    let error = refused.expect_error(422, "rejected");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("commands[3]:"),
        "{error}"
    );
    assert_eq!(c.version("board", &id).await, 51);
    // Too many events for one batch: 413, nothing written.
    let many = c
        .send(
            c.request(reqwest::Method::POST, &path)
                .json(&json!({"commands": cards(100, 201)})),
        )
        .await;
    many.expect_error(413, "payload_too_large");
    // Shape errors and conflicts.
    for bad in [
        json!({"commands": []}),
        json!({"commands": [{"type": "AddCard", "data": null}]}),
        json!({"cmds": []}),
    ] {
        c.send(c.request(reqwest::Method::POST, &path).json(&bad))
            .await
            .expect_error(400, "bad_request");
    }
    c.send(
        c.request(reqwest::Method::POST, &path)
            .json(&json!({"commands": cards(60, 1), "expected_version": 3})),
    )
    .await
    .expect_error(409, "version_conflict");
    assert_eq!(c.version("board", &id).await, 51);

    // The events reach the stream, once, in order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = c.get("/v1/stream?partition=0&limit=1000").await.expect(200);
        let seqs: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        if seqs.len() == 51 {
            assert_eq!(seqs, (1..=51).collect::<Vec<u64>>());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stream holds {seqs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A batch near the 1 MiB body limit whose rows, as the aggregate's append and then the
/// partition's bind them (payloads, and envelopes that repeat them, as BLOBs beside the
/// JSON), pass the 1 MiB a chunk may bind, far under the 2 MB that a SQLite-backed object
/// allows one string or BLOB on Cloudflare: the appends bind them in several chunks to one
/// statement. (Local workerd does not enforce that limit, so this proves the chunked
/// append keeps every event whole and in order — and all or none — not that the limit is
/// met; `durable::sql`'s unit tests bound the chunks.)
#[tokio::test]
async fn a_batch_whose_rows_pass_sqlites_largest_string_appends_whole_and_reads_back_the_same() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    let id = tests::unique_id("bigbatch");
    c.ok(
        "board",
        &id,
        json!({"type": "CreateBoard", "data": {"title": "Big"}}),
    )
    .await;
    c.ok(
        "board",
        &id,
        json!({"type": "AddCard", "data": {"card_id": "c1", "title": "t"}}),
    )
    .await;
    // 4,000 four-byte characters per comment (the most a comment may hold): 16 KB of
    // UTF-8, 32 KB as hex; 64 of them make a body just under 1 MiB and rows over 2 MB.
    let comments: Vec<String> = (0..64)
        .map(|n| format!("{n:04}{}", "𝄞".repeat(3_996)))
        .collect();
    let commands: Vec<Value> = comments
        .iter()
        .map(|text| json!({"type": "CommentOnCard", "data": {"card_id": "c1", "author": "a", "text": text}}))
        .collect();
    let path = format!("/v1/aggregates/board/{id}/batch");
    let body = json!({"commands": commands, "expected_version": 2});
    assert!(serde_json::to_vec(&body).unwrap().len() < 1024 * 1024);
    let answer = c
        .send(c.request(reqwest::Method::POST, &path).json(&body))
        .await
        .expect(200);
    assert_eq!(answer["version"], 66);
    let log = c.all_events("board", &id).await;
    assert_eq!(log.len(), 66);
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
    let texts: Vec<&str> = log[2..]
        .iter()
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, comments);
    // The same batch again at the old version: a conflict that writes nothing.
    c.send(c.request(reqwest::Method::POST, &path).json(&body))
        .await
        .expect_error(409, "version_conflict");
    assert_eq!(c.version("board", &id).await, 66);
}

/// `Prefer: return=minimal` (RFC 7240) answers a command or a batch without `events` and
/// says so in `Preference-Applied`; the events are appended, reach live sockets and replay
/// under their key exactly as with a full answer. Other preferences are ignored.
#[tokio::test]
async fn a_minimal_answer_leaves_out_the_events_and_nothing_else() {
    let worker = Worker::start();
    let c = worker.client();
    let id = c.board_with_cards("minimal", 0).await;
    let mut socket = c.subscribe("board", &id, Some(1)).await;
    assert_eq!(socket.caught_up().await, 1);
    let path = format!("/v1/aggregates/board/{id}/batch");
    let request = |prefer: &str, key: &str, from: usize| {
        c.request(reqwest::Method::POST, &path)
            .header("prefer", prefer)
            .header("idempotency-key", key)
            .json(&json!({"commands": cards(from, 3)}))
    };
    let reply = c
        .send(request("respond-async, RETURN=minimal; x=1", "m1", 0))
        .await;
    assert_eq!(
        reply.header("preference-applied").as_deref(),
        Some("return=minimal")
    );
    let answer = reply.expect(200);
    assert_eq!(
        answer,
        json!({"aggregate_type": "board", "aggregate_id": id, "version": 4,
               "consistency_token": format!("board/{id}@4")}),
        "a minimal answer is the full one without `events`"
    );
    // The events were appended and pushed all the same.
    let pushed = socket.next_events(3).await;
    let seqs: Vec<u64> = pushed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4]);
    for e in &pushed {
        tests::check_envelope(e);
    }
    // The same key replays the same minimal answer, appending nothing.
    let again = c.send(request("return=minimal", "m1", 0)).await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.expect(200), answer);
    // Without the preference, or with another, the answer has its events.
    let full = c.send(request("return=representation", "m2", 3)).await;
    assert_eq!(full.header("preference-applied"), None);
    let full = full.expect(200);
    assert_eq!(full["version"], 7);
    assert_eq!(full["events"].as_array().map(Vec::len), Some(3));
    // A single command through the Rust client, minimal answers on.
    let minimal = tests::sdk_client(worker.url())
        .with_token(c.token().expect("the test client has a token"))
        .with_minimal_answers(true);
    let result = minimal
        .command(
            "board",
            &id,
            &client::CommandBody::new("AddCard", json!({"card_id": "solo", "title": "t"})),
        )
        .await
        .unwrap();
    assert_eq!(result.version, 8);
    assert!(result.events.is_empty());
    let state = c
        .get(&format!("/v1/aggregates/board/{id}"))
        .await
        .expect(200);
    assert_eq!(state["version"], 8);
}
