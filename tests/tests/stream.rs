//! The global stream against workerd: partitions hold every committed event exactly once,
//! each aggregate's events in one partition in seq order, offsets dense; forwarding
//! survives a paused partition and a crash; reads filter and page; sockets catch up and
//! go live with no gap or duplicate; archived history reads the same as hot history.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd};

/// The partitions of the default configuration.
const PARTITIONS: u64 = 4;

/// Every event of one partition, paging with `next_after` from `after`.
async fn read_partition(c: &Client, partition: u64, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .get(&format!(
                "/v1/stream?partition={partition}&after={after}&limit=1000{query}"
            ))
            .await
            .expect(200);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return events,
        }
    }
}

/// Every event of every partition.
async fn read_all(c: &Client, partitions: u64) -> Vec<Value> {
    let mut all = Vec::new();
    for p in 0..partitions {
        all.extend(read_partition(c, p, "").await);
    }
    all
}

/// Waits until the stream holds `expected` events in all (forwarding is asynchronous),
/// then returns them.
async fn await_stream(c: &Client, partitions: u64, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = read_all(c, partitions).await;
        if all.len() >= expected || Instant::now() > deadline {
            assert_eq!(all.len(), expected, "events in the stream");
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn aggregate_key(event: &Value) -> String {
    format!(
        "{}/{}",
        event["aggregate_type"].as_str().unwrap(),
        event["aggregate_id"].as_str().unwrap()
    )
}

/// The stream's invariants over `events` (all partitions), against the logs of `ids`.
async fn check_exactly_once(c: &Client, stream: &[Value], ids: &[String]) {
    // Offsets dense from 1 within each partition.
    let mut by_partition: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for e in stream {
        let position = &e["position"];
        by_partition
            .entry(position["partition"].as_u64().unwrap())
            .or_default()
            .push(position["offset"].as_u64().unwrap());
    }
    for (partition, offsets) in &by_partition {
        let expected: Vec<u64> = (1..=offsets.len() as u64).collect();
        assert_eq!(offsets, &expected, "offsets of partition {partition}");
    }
    // Each aggregate in one partition, its seqs 1..=version in order, event ids as in its log.
    let mut per_aggregate: HashMap<String, Vec<&Value>> = HashMap::new();
    for e in stream {
        per_aggregate.entry(aggregate_key(e)).or_default().push(e);
    }
    for id in ids {
        let log = c.all_events("board", id).await;
        let in_stream = per_aggregate
            .get(&format!("board/{id}"))
            .unwrap_or_else(|| panic!("board/{id} is not in the stream"));
        let partitions: std::collections::BTreeSet<u64> = in_stream
            .iter()
            .map(|e| e["position"]["partition"].as_u64().unwrap())
            .collect();
        assert_eq!(partitions.len(), 1, "board/{id} spread over {partitions:?}");
        let seqs: Vec<u64> = in_stream
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=log.len() as u64).collect::<Vec<_>>(),
            "board/{id}"
        );
        for (streamed, logged) in in_stream.iter().zip(&log) {
            let mut streamed = (*streamed).clone();
            streamed.as_object_mut().unwrap().remove("position");
            assert_eq!(
                &streamed, logged,
                "board/{id}: the stream's envelope differs from the log's"
            );
        }
    }
}

#[tokio::test]
async fn ten_thousand_commands_over_200_aggregates_land_exactly_once() {
    let worker = Worker::start();
    let c = worker.client();
    let ids: Vec<String> = (0..200)
        .map(|i| tests::unique_id(&format!("s{i}")))
        .collect();
    // 16 concurrent clients, each taking every 16th aggregate: CreateBoard + 49 AddCards.
    let mut tasks = Vec::new();
    for client in 0..16 {
        let c = worker.client();
        let mine: Vec<String> = ids.iter().skip(client).step_by(16).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for id in &mine {
                c.ok("board", id, cmd("CreateBoard", json!({"title": "stream"})))
                    .await;
            }
            for card in 0..49 {
                for id in &mine {
                    c.ok(
                        "board",
                        id,
                        cmd(
                            "AddCard",
                            json!({"card_id": format!("c{card}"), "title": "t"}),
                        ),
                    )
                    .await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stream = await_stream(&c, PARTITIONS, 10_000).await;
    check_exactly_once(&c, &stream, &ids).await;
    // Every partition got some of them (200 aggregates over 4 partitions).
    let heads = c.get("/v1/stream/partitions").await.expect(200);
    let heads: Vec<u64> = heads["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["head"].as_u64().unwrap())
        .collect();
    assert_eq!(heads.iter().sum::<u64>(), 10_000);
    assert!(
        heads.iter().all(|h| *h > 1_000),
        "partition heads {heads:?}"
    );
}

/// The partition board `id`'s events went to, from the stream, once it holds all `events`
/// of them (forwarding is asynchronous and paced: a command's answer does not wait for it).
async fn partition_of(c: &Client, id: &str, events: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for p in 0..PARTITIONS {
            let held = read_partition(c, p, "&aggregate_type=board")
                .await
                .iter()
                .filter(|e| e["aggregate_id"] == id)
                .count();
            if held == events {
                return p;
            }
            assert!(held < events, "board/{id}: {held} events in the stream");
        }
        assert!(
            Instant::now() < deadline,
            "board/{id} never reached the stream whole"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_paused_partition_gets_every_event_once_in_order_after_resume_and_a_crash() {
    let mut worker = Worker::start_with(Options::new().var("STREAM_RETRY_MAX_MS", 500));
    let c = worker.client();
    let id = c.board_with_cards("paused", 0).await;
    let partition = partition_of(&c, &id, 1).await;
    let status = c
        .post_raw(
            &format!("/v1/stream/partitions/{partition}/pause"),
            None,
            "",
        )
        .await
        .expect(200);
    assert_eq!(status["paused"], true);
    for card in 0..20 {
        c.ok(
            "board",
            &id,
            cmd(
                "AddCard",
                json!({"card_id": format!("p{card}"), "title": "t"}),
            ),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = read_partition(&c, partition, "").await;
    assert_eq!(before.len(), 1, "only BoardCreated got in before the pause");

    // Crash the runtime with the events committed and not delivered; restart on the same
    // storage; resume the partition: everything arrives once, in order.
    worker.kill_hard();
    worker.restart();
    let c = worker.client();
    c.post_raw(
        &format!("/v1/stream/partitions/{partition}/resume"),
        None,
        "",
    )
    .await
    .expect(200);
    let stream = await_stream(&c, PARTITIONS, 21).await;
    check_exactly_once(&c, &stream, std::slice::from_ref(&id)).await;
}

#[tokio::test]
async fn stream_reads_filter_page_and_refuse_bad_parameters() {
    let c = tests::shared().client();
    let board = c.board_with_cards("filters", 3).await;
    let feedback = tests::unique_id("fb");
    c.ok(
        "feedback",
        &feedback,
        cmd("SubmitFeedback", json!({"text": "slow", "source": "web"})),
    )
    .await;
    let board_partition = partition_of(&c, &board, 4).await;
    let mine = |events: Vec<Value>, id: &str| -> Vec<Value> {
        events
            .into_iter()
            .filter(|e| e["aggregate_id"] == id)
            .collect()
    };
    let cards = mine(
        read_partition(&c, board_partition, "&types=CardAdded").await,
        &board,
    );
    assert_eq!(cards.len(), 3);
    assert!(cards.iter().all(|e| e["type"] == "CardAdded"));
    let all = mine(read_partition(&c, board_partition, "").await, &board);
    assert_eq!(all.len(), 4);
    // Time range: since the second event's time (inclusive) .. until after the last.
    let since = all[1]["recorded_at"].as_str().unwrap();
    let ranged = mine(
        read_partition(&c, board_partition, &format!("&since={since}")).await,
        &board,
    );
    assert!(
        ranged.len() >= 3
            && ranged
                .iter()
                .all(|e| e["recorded_at"].as_str().unwrap() >= since)
    );
    // Paging by one: same events, in offset order.
    let mut one_by_one = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .get(&format!(
                "/v1/stream?partition={board_partition}&after={after}&limit=1"
            ))
            .await
            .expect(200);
        one_by_one.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(mine(one_by_one, &board), all);
    // NDJSON and MessagePack carry the same events.
    let ndjson = c
        .get_as(
            &format!("/v1/stream?partition={board_partition}&limit=10000"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(ndjson.status, 200);
    let lines: Vec<Value> = ndjson
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(mine(lines, &board), all);
    let packed = c
        .get_as(
            &format!("/v1/stream?partition={board_partition}&limit=10000"),
            "application/msgpack",
        )
        .await;
    let page: Value = rmp_serde::from_slice(&packed.body).unwrap();
    assert_eq!(
        mine(page["events"].as_array().unwrap().clone(), &board),
        all
    );

    for bad in [
        "/v1/stream",
        "/v1/stream?partition=4",
        "/v1/stream?partition=-1",
        "/v1/stream?partition=x",
        "/v1/stream?partition=0&limit=0",
        "/v1/stream?partition=0&limit=10001",
        "/v1/stream?partition=0&after=-1",
        "/v1/stream?partition=0&since=yesterday",
        "/v1/stream?partition=0&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/v1/stream?partition=0&types=",
        "/v1/stream?partition=0&types=A,,B",
        "/v1/stream?partition=0&nope=1",
        "/v1/stream?partition=0&partition=1",
    ] {
        c.get(bad).await.expect_error(400, "bad_request");
    }
    c.post_raw("/v1/stream/partitions/9/pause", None, "")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_stream_socket_from_the_middle_catches_up_then_goes_live_without_gap_or_duplicate() {
    let worker = Worker::start_with(Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    let id = c.board_with_cards("live", 30).await;
    await_stream(&c, 1, 31).await;
    let mut socket = c.socket("/v1/stream/ws?partition=0&after=10").await;
    // Concurrent writers while the socket catches up.
    let writer = {
        let c = worker.client();
        let id = id.clone();
        tokio::spawn(async move {
            for card in 0..40 {
                c.ok(
                    "board",
                    &id,
                    cmd(
                        "AddCard",
                        json!({"card_id": format!("w{card}"), "title": "t"}),
                    ),
                )
                .await;
            }
        })
    };
    let mut offsets = Vec::new();
    let mut caught_up = false;
    while offsets.len() < 61 {
        let frame = socket.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => {
                let offset = frame["event"]["position"]["offset"].as_u64().unwrap();
                offsets.push(offset);
                socket
                    .send_text(&json!({"kind": "ack", "offset": offset}).to_string())
                    .await
                    .unwrap();
            }
            Some("caught_up") => {
                assert!(!caught_up, "caught_up twice");
                caught_up = true;
                assert_eq!(frame["position"]["partition"], 0);
            }
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }
    writer.await.unwrap();
    assert!(caught_up);
    assert_eq!(offsets, (11..=71).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_slow_stream_reader_is_cut_off_and_resumes_losing_nothing() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("WS_ACK_WINDOW", 5),
    );
    let c = worker.client();
    let id = c.board_with_cards("slow", 0).await;
    await_stream(&c, 1, 1).await;
    let mut socket = c.socket("/v1/stream/ws?partition=0&after=0").await;
    assert_eq!(socket.next_frame().await["event"]["position"]["offset"], 1);
    assert_eq!(socket.next_frame().await["kind"], "caught_up");
    for card in 0..10 {
        c.ok(
            "board",
            &id,
            cmd(
                "AddCard",
                json!({"card_id": format!("s{card}"), "title": "t"}),
            ),
        )
        .await;
    }
    let mut seen = vec![1];
    let resume_after = loop {
        let frame = socket.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => seen.push(frame["event"]["position"]["offset"].as_u64().unwrap()),
            Some("error") => {
                assert_eq!(frame["code"], "slow_consumer");
                break frame["resume_after"].as_u64().unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(resume_after, 0, "nothing was acked");
    // All 11 in the partition before the resume, so its one `caught_up` comes after them.
    await_stream(&c, 1, 11).await;
    let mut again = c
        .socket(&format!("/v1/stream/ws?partition=0&after={resume_after}"))
        .await;
    let mut offsets = Vec::new();
    loop {
        let frame = again.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => {
                let offset = frame["event"]["position"]["offset"].as_u64().unwrap();
                offsets.push(offset);
                again
                    .send_text(&json!({"kind": "ack", "offset": offset}).to_string())
                    .await
                    .unwrap();
            }
            Some("caught_up") if offsets.len() >= 11 => break,
            Some("caught_up") => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(offsets, (1..=11).collect::<Vec<u64>>());
}

#[tokio::test]
async fn archived_history_reads_the_same_and_time_travel_still_works() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("STREAM_SEGMENT_EVENTS", 10)
            .var("STREAM_HOT_EVENTS", 15),
    );
    let c = worker.client();
    let id = c.board_with_cards("archive", 56).await;
    let before = await_stream(&c, 1, 57).await;
    let status = c
        .post_raw("/v1/stream/partitions/0/archive", None, "")
        .await
        .expect(200);
    // 57 events, at least 15 hot, whole segments of 10: 40 archived, 17 hot.
    assert_eq!(status["archived_segments"], 4, "{status}");
    assert_eq!(status["hot_events"], 17, "{status}");
    assert_eq!(status["oldest_hot"], 41, "{status}");
    assert_eq!(status["oldest_retained"], 1, "{status}");
    let after = read_all(&c, 1).await;
    assert_eq!(
        after, before,
        "archived + hot reads differ from the hot reads before"
    );
    // Again: now each segment comes from the edge cache, and reads the same.
    assert_eq!(read_all(&c, 1).await, before);
    // A page in the middle of a segment.
    let page = c
        .get("/v1/stream?partition=0&after=13&limit=3")
        .await
        .expect(200);
    let offsets: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"]["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [14, 15, 16]);
    assert_eq!(page["next_after"], 16);
    // MessagePack pages of the archive are spliced from the envelopes the segments carry:
    // the same pages as JSON, whether they start or end inside a segment, take a whole one
    // or are hot (limits 3, 7 and 25 over segments of 10).
    for limit in [3, 7, 25] {
        let (pages, _) = pages_alike_in_json_and_msgpack(&c, limit).await;
        // A page ends where its segment ends: 4 segments of 10, then 17 hot events.
        let expected = 4 * 10usize.div_ceil(limit) + 17usize.div_ceil(limit);
        assert_eq!(pages, expected, "pages of {limit}");
        // Filtered by aggregate type (what a projector of one type reads): spliced from
        // the segments too, with the same events and cursors as the decoded JSON pages,
        // whether every event matches or none does.
        let (_, events) = pages_alike_with_filter(&c, limit, "&aggregate_type=board").await;
        assert_eq!(events, 57, "board pages of {limit}");
        let (_, events) = pages_alike_with_filter(&c, limit, "&aggregate_type=feedback").await;
        assert_eq!(events, 0, "feedback pages of {limit}");
    }
    // Time travel on the aggregate is untouched by the stream's archive.
    let state = c.state("board", &id, "?at_version=5").await.expect(200);
    assert_eq!(state["version"], 5);
    // A socket cannot start inside the archive; it can at the hot tail.
    c.try_socket("/v1/stream/ws?partition=0&after=3")
        .await
        .expect_err("a socket inside the archive")
        .expect_error(400, "bad_request");
    let mut socket = c.socket("/v1/stream/ws?partition=0&after=40").await;
    assert_eq!(socket.next_frame().await["event"]["position"]["offset"], 41);
}

#[tokio::test]
async fn cached_reads_equal_uncached_ones() {
    let settings = |cache: &str| {
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("STREAM_SEGMENT_EVENTS", 5)
            .var("STREAM_HOT_EVENTS", 5)
            .var("EDGE_CACHE_ENABLED", cache)
    };
    let mut reads = Vec::new();
    for cache in ["true", "false"] {
        let worker = Worker::start_with(settings(cache));
        let c = worker.client();
        let id = "cached-board";
        c.ok("board", id, cmd("CreateBoard", json!({"title": "cache"})))
            .await;
        for card in 0..20 {
            c.ok(
                "board",
                id,
                cmd(
                    "AddCard",
                    json!({"card_id": format!("c{card}"), "title": "t"}),
                ),
            )
            .await;
        }
        await_stream(&c, 1, 21).await;
        c.post_raw("/v1/stream/partitions/0/archive", None, "")
            .await
            .expect(200);
        let first = read_all(&c, 1).await;
        let second = read_all(&c, 1).await;
        assert_eq!(first, second, "cache={cache}");
        // Archived pages say whether the edge cache served them; hot pages never do.
        let archived = c.get("/v1/stream?partition=0&after=0&limit=3").await;
        let hot = c.get("/v1/stream?partition=0&after=18").await;
        assert_eq!(hot.header("x-edgeloop-cache"), None);
        let state = c.state("board", id, "?at_version=7").await;
        let cached_state = c.state("board", id, "?at_version=7").await;
        assert_eq!(state.expect(200), cached_state.expect(200));
        let current = c.state("board", id, "").await;
        assert_eq!(
            current.header("x-edgeloop-cache"),
            None,
            "the current state is mutable"
        );
        let missing = c.state("board", id, "?at_version=99").await;
        missing.expect_error(404, "not_found");
        assert_eq!(
            missing.header("x-edgeloop-cache"),
            None,
            "errors are not cached"
        );
        if cache == "true" {
            assert_eq!(archived.header("x-edgeloop-cache").as_deref(), Some("hit"));
            assert_eq!(state.header("x-edgeloop-cache").as_deref(), Some("miss"));
            assert_eq!(
                cached_state.header("x-edgeloop-cache").as_deref(),
                Some("hit")
            );
        } else {
            assert_eq!(archived.header("x-edgeloop-cache"), None);
            assert_eq!(cached_state.header("x-edgeloop-cache"), None);
        }
        let state = state.expect(200);
        reads.push((first.len(), state["state"].clone()));
    }
    assert_eq!(reads[0], reads[1]);
}

/// Pages through partition 0 with `limit`, reading each page as JSON and as MessagePack,
/// and checks they are the same page; returns how many pages and events there were.
async fn pages_alike_in_json_and_msgpack(c: &Client, limit: usize) -> (usize, usize) {
    pages_alike_with_filter(c, limit, "").await
}

/// As [`pages_alike_in_json_and_msgpack`], with a filter's query parameters appended
/// (`"&aggregate_type=board"`).
async fn pages_alike_with_filter(c: &Client, limit: usize, filter: &str) -> (usize, usize) {
    let (mut after, mut pages, mut events) = (0, 0, 0);
    loop {
        let path = format!("/v1/stream?partition=0&after={after}&limit={limit}{filter}");
        let json = c.get(&path).await.expect(200);
        let packed = c.get_as(&path, "application/msgpack").await;
        assert_eq!(packed.status, 200);
        let page: Value = rmp_serde::from_slice(&packed.body).unwrap();
        assert_eq!(page, json, "the page of {limit} after {after}");
        pages += 1;
        events += json["events"].as_array().unwrap().len();
        match json["next_after"].as_u64() {
            Some(next) => after = next,
            None => return (pages, events),
        }
    }
}

/// A forward carrying more than SQLite-backed objects allow in one string (2 MB): 900
/// comments of 4,000 characters and 2,000 short ones, committed while the partition is
/// paused, arrive in forwards of up to 500 events (~8 MB of rows as the partition inserts
/// them, bound in chunks to one statement). Every event lands once, and MessagePack pages
/// (spliced from the stored envelopes, short ones concatenated inside SQLite a chunk at a
/// time, long ones row by row) read exactly as JSON pages (built from the columns), page by
/// page: pages of 100, and pages of 10,000 that span chunks of both kinds and end at the
/// 4 MiB payload budget.
#[tokio::test]
async fn a_forward_over_sqlites_largest_string_lands_whole_and_reads_the_same_in_every_format() {
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("STREAM_RETRY_MAX_MS", 500),
    );
    let c = worker.client();
    let id = c.board_with_cards("big", 1).await;
    c.post_raw("/v1/stream/partitions/0/pause", None, "")
        .await
        .expect(200);
    let text = "é".repeat(1000) + &"x".repeat(3000); // 4,000 characters, 5,000 bytes
    for batch in 0..8 {
        // Long, long, short, long, long, short, long, long.
        let (count, text) = if batch % 3 == 2 {
            (1000, "short")
        } else {
            (150, text.as_str())
        };
        let commands: Vec<Value> = (0..count)
            .map(|n| {
                cmd(
                    "CommentOnCard",
                    json!({"card_id": "c1", "author": format!("a{batch}-{n}"), "text": text}),
                )
            })
            .collect();
        c.post_raw(
            &format!("/v1/aggregates/board/{id}/batch"),
            Some("application/json"),
            json!({ "commands": commands }).to_string(),
        )
        .await
        .expect(200);
    }
    c.post_raw("/v1/stream/partitions/0/resume", None, "")
        .await
        .expect(200);
    let stream = await_stream(&c, 1, 2902).await;
    check_exactly_once(&c, &stream, std::slice::from_ref(&id)).await;
    for limit in [100, 10_000] {
        let (pages, events) = pages_alike_in_json_and_msgpack(&c, limit).await;
        assert_eq!(events, 2902, "pages of {limit}");
        if limit == 10_000 {
            // 900 × 5,000 bytes of payload pass the 4 MiB budget once.
            assert_eq!(pages, 2, "pages of {limit}");
        }
    }
}
