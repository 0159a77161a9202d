//! Read models against workerd: projections fold the stream exactly once into documents
//! that equal what the aggregates themselves say; reads with a command's consistency
//! token never miss its effect; rebuilds switch without downtime; a fault stops only its
//! projection; document sockets send a snapshot, then every change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd};

/// Waits until the projection has applied everything the partitions hold (lag 0 and every
/// checkpoint at the partitions' heads).
///
/// "Caught up" means caught up with what the partitions hold *now*: an aggregate forwards its
/// commits a moment later (paced by `STREAM_FORWARD_INTERVAL_MS`), so a test that then reads
/// what it just wrote reads through that write's consistency token (`read_through`) instead.
async fn await_caught_up(c: &Client, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let partitions = c.get("/v1/stream/partitions").await.expect(200);
        let heads: BTreeMap<String, u64> = partitions["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["partition"].to_string(), p["head"].as_u64().unwrap()))
            .collect();
        let status = c.get("/v1/projections").await.expect(200);
        let mine = status["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no projection {name} in {status}"));
        let checkpoints: BTreeMap<String, u64> = mine["checkpoints"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let done = heads
            .iter()
            .all(|(p, h)| *h == 0 || checkpoints.get(p) == Some(h));
        if done && mine["status"] != "rebuilding" {
            return mine;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never caught up: {mine} vs heads {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `AddCard` with a 150-character title: a dozen of them take a board's summary past a
/// `PROJECTION_MAX_DOCUMENT_BYTES` of 2,000.
fn long_card(card_id: String) -> Value {
    cmd(
        "AddCard",
        json!({"card_id": card_id, "title": "x".repeat(150)}),
    )
}

/// Waits (up to 30 s) until the projection's serving generation is faulted, and returns
/// its status.
async fn await_faulted(c: &Client, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = c.get("/v1/projections").await.expect(200);
        let mine = all["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap();
        if mine["status"] == "faulted" {
            return mine;
        }
        assert!(Instant::now() < deadline, "{name} never faulted: {mine}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /v1/projections/{projection}/{doc_id}?consistency={aggregate_type}/{doc_id}@{version}`:
/// the document once the projection has folded that aggregate through `version` (a command's
/// consistency token, rebuilt from a version read off the aggregate).
async fn read_through(
    c: &Client,
    projection: &str,
    aggregate_type: &str,
    doc_id: &str,
    version: u64,
) -> tests::Reply {
    c.get(&format!(
        "/v1/projections/{projection}/{doc_id}?consistency={aggregate_type}/{doc_id}@{version}"
    ))
    .await
}

/// The board summary document as the aggregate's own state says it should be: title,
/// columns with their card ids in order, WIP limits and archived count.
fn expected_board(state: &Value) -> Value {
    let state = &state["state"];
    json!({
        "title": state["title"],
        "columns": state["columns"].as_array().unwrap().iter().map(|col| {
            json!({ "name": col["name"], "wip_limit": col["wip_limit"] })
        }).collect::<Vec<_>>(),
    })
}

fn summarize_board(doc: &Value) -> Value {
    json!({
        "title": doc["title"],
        "columns": doc["columns"].as_array().unwrap().iter().map(|col| {
            json!({ "name": col["name"], "wip_limit": col["wip_limit"] })
        }).collect::<Vec<_>>(),
    })
}

/// Card ids per column, and archived count, from the board's log (independent of both the
/// projection and the aggregate's state shape).
fn cards_from_log(events: &[Value]) -> (BTreeMap<String, Vec<String>>, u64) {
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut archived = 0;
    for e in events {
        let d = &e["data"];
        match e["type"].as_str().unwrap() {
            "BoardCreated" => {
                for c in d["columns"].as_array().unwrap() {
                    columns.entry(c.as_str().unwrap().to_owned()).or_default();
                }
            }
            "ColumnAdded" => {
                columns
                    .entry(d["name"].as_str().unwrap().to_owned())
                    .or_default();
            }
            "CardAdded" => columns
                .entry(d["column"].as_str().unwrap().to_owned())
                .or_default()
                .push(d["card_id"].as_str().unwrap().to_owned()),
            "CardMoved" => {
                let card = d["card_id"].as_str().unwrap();
                for cards in columns.values_mut() {
                    cards.retain(|c| c != card);
                }
                columns
                    .entry(d["to_column"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(card.to_owned());
            }
            "CardArchived" => {
                let card = d["card_id"].as_str().unwrap();
                for cards in columns.values_mut() {
                    cards.retain(|c| c != card);
                }
                archived += 1;
            }
            _ => {}
        }
    }
    (columns, archived)
}

fn cards_from_doc(doc: &Value) -> (BTreeMap<String, Vec<String>>, u64) {
    let columns = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|col| {
            (
                col["name"].as_str().unwrap().to_owned(),
                col["cards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["card_id"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    (columns, doc["archived_count"].as_u64().unwrap())
}

/// A random but valid-looking workload over boards and feedback items; some commands are
/// refused by the rules (WIP limits, archived cards), as in real use.
async fn workload(
    worker: &Worker,
    boards: usize,
    feedback: usize,
    commands: usize,
    seed: u64,
) -> (Vec<String>, Vec<String>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let board_ids: Vec<String> = (0..boards)
        .map(|i| tests::unique_id(&format!("pb{i}")))
        .collect();
    let feedback_ids: Vec<String> = (0..feedback)
        .map(|i| tests::unique_id(&format!("pf{i}")))
        .collect();
    let c = worker.client();
    for id in &board_ids {
        c.ok(
            "board",
            id,
            cmd("CreateBoard", json!({"title": format!("Board {id}")})),
        )
        .await;
        c.ok(
            "board",
            id,
            cmd("SetWipLimit", json!({"column": "Doing", "limit": 3})),
        )
        .await;
    }
    let columns = ["Inbox", "Todo", "Doing", "Done"];
    let mut tasks = Vec::new();
    for worker_no in 0..8u64 {
        let c = worker.client();
        let board_ids = board_ids.clone();
        let feedback_ids = feedback_ids.clone();
        let seed = rng.u64(..) ^ worker_no;
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            for n in 0..commands / 8 {
                if rng.u8(..10) < 7 {
                    let board = &board_ids[rng.usize(..board_ids.len())];
                    let card = format!("c{}", rng.u8(..30));
                    let body = match rng.u8(..6) {
                        0 | 1 => cmd("AddCard", json!({"card_id": format!("w{worker_no}-{n}"), "title": format!("t{n}"), "labels": ["x"]})),
                        2 => cmd("AddCard", json!({"card_id": card, "title": "maybe"})),
                        3 => cmd("MoveCard", json!({"card_id": card, "to_column": columns[rng.usize(..4)]})),
                        4 => cmd("CommentOnCard", json!({"card_id": card, "author": "a", "text": "hi"})),
                        _ => cmd("ArchiveCard", json!({"card_id": card})),
                    };
                    let reply = c.command("board", board, &body).await;
                    assert!([200, 422].contains(&reply.status), "{}", reply.text());
                } else {
                    let severities = ["low", "medium", "high"];
                    let item = &feedback_ids[rng.usize(..feedback_ids.len())];
                    let body = match rng.u8(..3) {
                        0 => cmd("SubmitFeedback", json!({"text": format!("slow {n}"), "source": "web", "severity": severities[rng.usize(..3)]})),
                        1 => cmd("TriageFeedback", json!({"board_id": "triage", "card_id": format!("t{n}"), "labels": ["bug"]})),
                        _ => cmd("CloseFeedback", json!({"reason": "done"})),
                    };
                    let reply = c.command("feedback", item, &body).await;
                    assert!([200, 422].contains(&reply.status), "{}", reply.text());
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (board_ids, feedback_ids)
}

#[tokio::test]
async fn read_models_equal_the_fold_of_the_log_after_2000_random_commands() {
    let worker = Worker::start();
    let c = worker.client();
    let (boards, feedback) = workload(&worker, 20, 30, 2_000, 7).await;
    await_caught_up(&c, "board_summary").await;
    await_caught_up(&c, "feedback_inbox").await;
    for id in &boards {
        let state = c.state("board", id, "").await.expect(200);
        let version = state["version"].as_u64().unwrap();
        let doc = read_through(&c, "board_summary", "board", id, version)
            .await
            .expect(200);
        let body = &doc["body"];
        assert_eq!(summarize_board(body), expected_board(&state), "board {id}");
        assert_eq!(body["version"], state["version"], "board {id}");
        let log = c.all_events("board", id).await;
        assert_eq!(
            cards_from_doc(body),
            cards_from_log(&log),
            "board {id}: cards"
        );
    }
    // Feedback: status and card from the aggregate's log.
    let mut submitted = 0;
    for id in &feedback {
        let log = c.all_events("feedback", id).await;
        let reply = read_through(&c, "feedback_inbox", "feedback", id, log.len() as u64).await;
        if log.is_empty() {
            reply.expect_error(404, "not_found");
            continue;
        }
        submitted += 1;
        let body = reply.expect(200)["body"].clone();
        let status = match log.last().unwrap()["type"].as_str().unwrap() {
            "FeedbackSubmitted" => "open",
            "FeedbackTriaged" => "triaged",
            _ => "closed",
        };
        assert_eq!(body["status"], status, "feedback {id}: {body}");
        assert_eq!(body["version"], log.len(), "feedback {id}");
    }
    // The inbox list: every submitted item once, newest first; filters hold.
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/projections/feedback_inbox?limit=7&after={a}"),
            None => "/v1/projections/feedback_inbox?limit=7".to_owned(),
        };
        let page = c.get(&path).await.expect(200);
        listed.extend(page["documents"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: BTreeSet<String> = listed
        .iter()
        .map(|d| d["doc_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), listed.len(), "an item listed twice");
    assert_eq!(listed.len(), submitted);
    let times: Vec<&str> = listed
        .iter()
        .map(|d| d["body"]["submitted_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    let open = c
        .get("/v1/projections/feedback_inbox?status=open&limit=1000")
        .await
        .expect(200);
    assert!(
        open["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["body"]["status"] == "open")
    );
    c.get("/v1/projections/feedback_inbox?colour=red")
        .await
        .expect_error(400, "bad_request");
    c.get("/v1/projections/nope")
        .await
        .expect_error(404, "not_found");
    c.get("/v1/projections/board_summary/missing-board")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_read_with_a_consistency_token_never_misses_the_commands_effect() {
    let worker = Worker::start();
    let c = worker.client();
    let id = c.board_with_cards("ryw", 0).await;
    // Concurrent writers on other boards keep the stream busy.
    let noise = {
        let worker_client = worker.client();
        tokio::spawn(async move {
            let other = worker_client.board_with_cards("ryw-noise", 0).await;
            for n in 0..300 {
                worker_client
                    .ok(
                        "board",
                        &other,
                        cmd("AddCard", json!({"card_id": format!("n{n}"), "title": "t"})),
                    )
                    .await;
            }
        })
    };
    for n in 0..100 {
        let answer = c
            .ok(
                "board",
                &id,
                cmd("AddCard", json!({"card_id": format!("r{n}"), "title": "t"})),
            )
            .await;
        let token = answer["consistency_token"].as_str().unwrap().to_owned();
        assert_eq!(token, format!("board/{id}@{}", answer["version"]));
        let doc = c
            .get(&format!(
                "/v1/projections/board_summary/{id}?consistency={token}"
            ))
            .await
            .expect(200);
        let cards: Vec<&str> = doc["body"]["columns"][0]["cards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["card_id"].as_str().unwrap())
            .collect();
        assert!(
            cards.contains(&format!("r{n}").as_str()),
            "read {n} missed its command: {doc}"
        );
        assert!(doc["body"]["version"].as_u64().unwrap() >= answer["version"].as_u64().unwrap());
    }
    noise.await.unwrap();
    c.get(&format!(
        "/v1/projections/board_summary/{id}?consistency=nonsense"
    ))
    .await
    .expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_read_model_that_cannot_catch_up_answers_503_with_retry_after() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("PROJECTION_WAIT_MS", 300),
    );
    let c = worker.client();
    let id = c.board_with_cards("ryw-paused", 0).await;
    c.post_raw("/v1/stream/partitions/0/pause", None, "")
        .await
        .expect(200);
    let answer = c
        .ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": "late", "title": "t"})),
        )
        .await;
    let token = answer["consistency_token"].as_str().unwrap();
    let reply = c
        .get(&format!(
            "/v1/projections/board_summary/{id}?consistency={token}"
        ))
        .await;
    reply.expect_error(503, "overloaded");
    assert!(reply.header("retry-after").is_some());
    c.post_raw("/v1/stream/partitions/0/resume", None, "")
        .await
        .expect(200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = c
            .get(&format!(
                "/v1/projections/board_summary/{id}?consistency={token}"
            ))
            .await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never caught up: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_rebuild_under_concurrent_writes_switches_without_downtime_and_equal_documents() {
    let worker = Worker::start();
    let c = worker.client();
    let (boards, _) = workload(&worker, 6, 4, 400, 11).await;
    await_caught_up(&c, "board_summary").await;
    // Writers keep going during the rebuild, and readers keep reading.
    let writer = {
        let c = worker.client();
        let boards = boards.clone();
        tokio::spawn(async move {
            for n in 0..150 {
                let board = &boards[n % boards.len()];
                c.ok(
                    "board",
                    board,
                    cmd(
                        "AddCard",
                        json!({"card_id": format!("rb{n}"), "title": "t"}),
                    ),
                )
                .await;
            }
        })
    };
    let reader = {
        let c = worker.client();
        let board = boards[0].clone();
        tokio::spawn(async move {
            let mut reads = 0;
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                let reply = c
                    .get(&format!("/v1/projections/board_summary/{board}"))
                    .await;
                assert_eq!(
                    reply.status,
                    200,
                    "a read during the rebuild: {}",
                    reply.text()
                );
                reads += 1;
            }
            reads
        })
    };
    let rebuild = c
        .post_raw("/v1/projections/board_summary/rebuild", None, "")
        .await
        .expect(202);
    assert_eq!(rebuild["state"], "building");
    writer.await.unwrap();
    assert!(reader.await.unwrap() > 10);
    let status = await_caught_up(&c, "board_summary").await;
    let generations = status["generations"].as_array().unwrap();
    assert_eq!(
        generations.len(),
        1,
        "the old generation was dropped: {status}"
    );
    assert!(
        generations[0]["generation"].as_u64().unwrap() >= 2,
        "{status}"
    );
    for id in &boards {
        let log = c.all_events("board", id).await;
        let doc = read_through(&c, "board_summary", "board", id, log.len() as u64)
            .await
            .expect(200);
        assert_eq!(
            cards_from_doc(&doc["body"]),
            cards_from_log(&log),
            "board {id} after the rebuild"
        );
        assert_eq!(doc["body"]["version"], log.len());
    }
    c.post_raw("/v1/projections/board_summary/rebuild", None, "")
        .await
        .expect(202);
    // Rebuild needs admin.
    let reader_only =
        tests::Client::new(worker.url()).with_token(Some(worker.token("r", tests::TENANT, "read")));
    reader_only
        .post_raw("/v1/projections/board_summary/rebuild", None, "")
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_document_socket_sends_the_snapshot_then_every_change() {
    let worker = Worker::start();
    let c = worker.client();
    let id = c.board_with_cards("docws", 2).await;
    read_through(&c, "board_summary", "board", &id, 3)
        .await
        .expect(200);
    let mut socket = c
        .socket(&format!("/v1/projections/board_summary/{id}/ws"))
        .await;
    let snapshot = socket.next_frame().await;
    assert_eq!(snapshot["kind"], "document", "{snapshot}");
    assert_eq!(snapshot["body"]["version"], 3);
    let caught_up = socket.next_frame().await;
    assert_eq!(caught_up["kind"], "caught_up");
    assert_eq!(caught_up["revision"], snapshot["revision"]);
    let mut revision = snapshot["revision"].as_u64().unwrap();
    socket
        .send_text(&json!({"kind": "ack", "revision": revision}).to_string())
        .await
        .unwrap();
    let writer = {
        let c = worker.client();
        let id = id.clone();
        tokio::spawn(async move {
            for n in 0..30 {
                c.ok(
                    "board",
                    &id,
                    cmd(
                        "AddCard",
                        json!({"card_id": format!("live{n}"), "title": "t"}),
                    ),
                )
                .await;
            }
        })
    };
    let mut last_version = 3;
    while last_version < 33 {
        let frame = socket.next_frame().await;
        assert_eq!(frame["kind"], "document", "{frame}");
        let r = frame["revision"].as_u64().unwrap();
        assert_eq!(r, revision + 1, "a gap or duplicate in revisions");
        revision = r;
        let version = frame["body"]["version"].as_u64().unwrap();
        assert!(version > last_version, "went backwards");
        last_version = version;
        socket
            .send_text(&json!({"kind": "ack", "revision": r}).to_string())
            .await
            .unwrap();
    }
    writer.await.unwrap();
    assert_eq!(last_version, 33);
}

#[tokio::test]
async fn a_faulted_projection_stops_alone_and_resumes_after_a_fix_and_a_rebuild() {
    let settings = |limit: usize| {
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("PROJECTION_MAX_DOCUMENT_BYTES", limit)
    };
    let mut worker = Worker::start_with(settings(2_000));
    let c = worker.client();
    // A board whose summary outgrows 2,000 bytes: board_summary faults on that event.
    let id = c.board_with_cards("fault", 0).await;
    for n in 0..20 {
        c.ok("board", &id, long_card(format!("f{n}"))).await;
    }
    let feedback = tests::unique_id("fault-fb");
    let submitted = c
        .ok(
            "feedback",
            &feedback,
            cmd(
                "SubmitFeedback",
                json!({"text": "still served", "source": "web"}),
            ),
        )
        .await;
    let status = await_faulted(&c, "board_summary").await;
    assert_eq!(status["fault"]["event"]["type"], "CardAdded", "{status}");
    assert!(
        status["fault"]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{status}"
    );
    // The other projection keeps serving, and folds what was committed after the fault.
    let token = submitted["consistency_token"].as_str().unwrap();
    let item = c
        .get(&format!(
            "/v1/projections/feedback_inbox/{feedback}?consistency={token}"
        ))
        .await
        .expect(200);
    assert_eq!(item["body"]["text"], "still served");
    // The fix (a larger limit), then a rebuild: the projection serves everything.
    worker.set_var("PROJECTION_MAX_DOCUMENT_BYTES", 1_048_576);
    worker.restart();
    let c = worker.client();
    c.post_raw("/v1/projections/board_summary/rebuild", None, "")
        .await
        .expect(202);
    let status = await_caught_up(&c, "board_summary").await;
    assert_eq!(status["status"], "active", "{status}");
    let doc = read_through(&c, "board_summary", "board", &id, 21)
        .await
        .expect(200);
    assert_eq!(doc["body"]["version"], 21);
    worker.kill_hard();
}

/// `feedback_inbox` folds one aggregate type, so the projector reads its partitions
/// filtered to `feedback` (`Projection::aggregate_type`). The board events it no longer
/// receives must still move its checkpoint to the head, and a read through a board's
/// consistency token must answer at once: the projection keeps no watermark for boards.
#[tokio::test]
async fn a_projection_of_one_aggregate_type_keeps_up_with_events_of_other_types() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    let feedback = tests::unique_id("filtered-fb");
    c.ok(
        "feedback",
        &feedback,
        cmd(
            "SubmitFeedback",
            json!({"text": "only feedback", "source": "web"}),
        ),
    )
    .await;
    let board = c.board_with_cards("filtered-board", 0).await;
    let mut last = Value::Null;
    for n in 0..40 {
        last = c
            .ok(
                "board",
                &board,
                cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
            )
            .await;
    }
    // Every event after the feedback is a board's: the checkpoint reaches the head only
    // by moving past events the filtered reads left out.
    let status = await_caught_up(&c, "feedback_inbox").await;
    assert_eq!(status["lag"], 0, "{status}");
    let token = last["consistency_token"].as_str().unwrap();
    let started = Instant::now();
    let item = c
        .get(&format!(
            "/v1/projections/feedback_inbox/{feedback}?consistency={token}"
        ))
        .await
        .expect(200);
    assert_eq!(item["body"]["text"], "only feedback");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a board's token waited on feedback_inbox for {:?}",
        started.elapsed()
    );
    // board_summary, filtered to boards, still folds every card.
    let summary = read_through(&c, "board_summary", "board", &board, 41)
        .await
        .expect(200);
    assert_eq!(
        summary["body"]["columns"][0]["cards"]
            .as_array()
            .map(Vec::len),
        Some(40),
        "{summary}"
    );
}

/// A rebuild of `feedback_inbox` after more than a scan window (`SCAN_WINDOW`, 10,000
/// offsets) of board events: the partition answers the first filtered page with no event
/// at all, only a cursor past what it looked at. The checkpoint must move to that cursor,
/// or the rebuild never reaches the feedback behind the boards and never switches.
#[tokio::test]
async fn a_filtered_rebuild_moves_past_a_scan_window_holding_no_event_of_its_type() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    for board in 0..11 {
        let id = tests::unique_id(&format!("window-{board}"));
        let mut commands = vec![json!({"type": "CreateBoard", "data": {"title": "Window"}})];
        commands.extend((0..999).map(
            |i| json!({"type": "AddCard", "data": {"card_id": format!("c{i}"), "title": "t"}}),
        ));
        c.send(
            c.request(
                reqwest::Method::POST,
                &format!("/v1/aggregates/board/{id}/batch"),
            )
            .header("prefer", "return=minimal")
            .json(&json!({"commands": commands, "expected_version": "none"})),
        )
        .await
        .expect(200);
    }
    let feedback = tests::unique_id("behind-window");
    let submitted = c
        .ok(
            "feedback",
            &feedback,
            cmd(
                "SubmitFeedback",
                json!({"text": "behind 11,000 board events", "source": "web"}),
            ),
        )
        .await;
    let token = submitted["consistency_token"].as_str().unwrap();
    let live = c
        .get(&format!(
            "/v1/projections/feedback_inbox/{feedback}?consistency={token}"
        ))
        .await
        .expect(200);
    assert_eq!(live["body"]["text"], "behind 11,000 board events");
    let before = await_caught_up(&c, "feedback_inbox").await;
    let head = before["heads"]["0"].as_u64().unwrap();
    assert!(head > 11_000, "{before}");

    // The rebuild reads from offset 0: offsets 1–10,000 are all boards.
    c.post_raw("/v1/projections/feedback_inbox/rebuild", None, "")
        .await
        .expect(202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let status = await_caught_up(&c, "feedback_inbox").await;
        let serving = status["generations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["state"] == "active")
            .cloned()
            .unwrap();
        if serving["generation"] != before["generations"][0]["generation"] {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild never switched: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["lag"], 0, "{after}");
    assert_eq!(after["checkpoints"]["0"], head, "{after}");
    let rebuilt = c
        .get(&format!("/v1/projections/feedback_inbox/{feedback}"))
        .await
        .expect(200);
    assert_eq!(rebuilt["body"], live["body"]);
}

/// A fold that fails in the middle of a filtered page (board events interleaved with
/// feedback events the filter leaves out, one long page by a slow wake) stops the
/// checkpoint before the failing event: the rule "move to the end of what the partition
/// looked at" holds only for a page applied whole.
#[tokio::test]
async fn a_fault_in_the_middle_of_a_filtered_page_keeps_the_checkpoint_before_it() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("PROJECTION_MAX_DOCUMENT_BYTES", 2_000)
            .var("PROJECTION_WAKE_INTERVAL_MS", 3_000),
    );
    let c = worker.client();
    let id = c.board_with_cards("midpage", 0).await;
    for n in 0..20 {
        c.ok("board", &id, long_card(format!("m{n}"))).await;
        c.ok(
            "feedback",
            &tests::unique_id("midpage-fb"),
            cmd(
                "SubmitFeedback",
                json!({"text": "between", "source": "web"}),
            ),
        )
        .await;
    }
    let status = await_faulted(&c, "board_summary").await;
    let fault = &status["fault"]["event"];
    assert_eq!(fault["type"], "CardAdded", "{status}");
    let fault_offset = fault["position"]["offset"].as_u64().unwrap();
    let fault_seq = fault["seq"].as_u64().unwrap();
    // The board's events as the partition holds them: the one before the fault, and the
    // events after it (of both types) that the faulted page also held.
    let log = c
        .get("/v1/stream?partition=0&after=0&limit=1000")
        .await
        .expect(200);
    let events = log["events"].as_array().unwrap();
    let offset_of = |seq: u64| {
        events
            .iter()
            .find(|e| e["aggregate_id"] == id.as_str() && e["seq"] == seq)
            .and_then(|e| e["position"]["offset"].as_u64())
            .unwrap()
    };
    let before = offset_of(fault_seq - 1);
    let head = events.last().unwrap()["position"]["offset"]
        .as_u64()
        .unwrap();
    let checkpoint = status["checkpoints"]["0"].as_u64().unwrap();
    assert!(
        before <= checkpoint && checkpoint < fault_offset && fault_offset < head,
        "the event before the fault at {before}, checkpoint {checkpoint}, fault at {fault_offset}, head {head}: {status}"
    );
    // Everything before the failing event stays applied, nothing after it.
    let doc = c
        .get(&format!("/v1/projections/board_summary/{id}"))
        .await
        .expect(200);
    assert_eq!(doc["body"]["version"], fault_seq - 1, "{doc}");
}
