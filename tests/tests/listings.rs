//! Event listings (JSON, NDJSON, MessagePack; forward and backward paging with cursors;
//! limit bounds) and time travel (`at_version`, `as_of`).

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Client, check_envelope, check_timestamp, cmd, seqs, shared, unique_id};

fn page_events(page: &Value) -> Vec<Value> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events list: {page}"))
        .clone()
}

#[tokio::test]
async fn forward_paging_follows_next_after_to_the_end() {
    let c = shared().client();
    let id = c.board_with_cards("board-list", 24).await; // 25 events
    let all = c.all_events("board", &id).await;
    assert_eq!(seqs(&all), (1..=25).collect::<Vec<_>>());
    all.iter().for_each(check_envelope);

    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = c
            .events("board", &id, &format!("?after={after}&limit=10"))
            .await
            .expect(200);
        let events = page_events(&page);
        pages.push(seqs(&events));
        match page["next_after"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["seq"].as_u64()));
                after = next;
            }
            None => {
                assert!(
                    page.as_object().unwrap().contains_key("next_after"),
                    "next_after must be present (null): {page}"
                );
                break;
            }
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages,
        vec![
            (1..=10).collect::<Vec<_>>(),
            (11..=20).collect(),
            (21..=25).collect()
        ]
    );

    // A page that ends exactly at the newest event says so.
    let page = c
        .events("board", &id, "?after=15&limit=10")
        .await
        .expect(200);
    assert_eq!(seqs(&page_events(&page)), (16..=25).collect::<Vec<_>>());
    assert_eq!(page["next_after"], Value::Null);
    // Past the end: empty, no cursor.
    let page = c.events("board", &id, "?after=25").await.expect(200);
    assert_eq!(page, json!({"events": [], "next_after": null}));
    // The default limit is 100 and the default direction is forward.
    let page = c.events("board", &id, "").await.expect(200);
    assert_eq!(page_events(&page), all);
}

#[tokio::test]
async fn backward_paging_returns_newest_first_and_follows_next_before() {
    let c = shared().client();
    let id = c.board_with_cards("board-list", 24).await; // 25 events
    let all = c.all_events("board", &id).await;

    let mut query = "?direction=backward&limit=10".to_owned();
    let mut pages = Vec::new();
    let mut listed = Vec::new();
    loop {
        let page = c.events("board", &id, &query).await.expect(200);
        let events = page_events(&page);
        pages.push(seqs(&events));
        listed.extend(events.iter().cloned());
        assert!(
            page.get("next_after").is_none(),
            "a backward page has no next_after: {page}"
        );
        match page["next_before"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["seq"].as_u64()));
                query = format!("?direction=backward&before={next}&limit=10");
            }
            None => {
                assert!(
                    page.as_object().unwrap().contains_key("next_before"),
                    "next_before must be present (null): {page}"
                );
                break;
            }
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages,
        vec![
            (16..=25).rev().collect::<Vec<_>>(),
            (6..=15).rev().collect(),
            (1..=5).rev().collect()
        ]
    );
    listed.reverse();
    assert_eq!(
        listed, all,
        "backward pages hold the same envelopes as forward ones"
    );

    let page = c
        .events("board", &id, "?direction=backward&before=4")
        .await
        .expect(200);
    assert_eq!(seqs(&page_events(&page)), vec![3, 2, 1]);
    assert_eq!(page["next_before"], Value::Null);
    let page = c
        .events("board", &id, "?direction=backward&before=1")
        .await
        .expect(200);
    assert_eq!(page, json!({"events": [], "next_before": null}));
    // Explicit forward is the default.
    let page = c
        .events("board", &id, "?direction=forward&limit=3")
        .await
        .expect(200);
    assert_eq!(seqs(&page_events(&page)), vec![1, 2, 3]);
}

#[tokio::test]
async fn limit_is_1_to_10000_and_bad_parameters_are_400() {
    let c = shared().client();
    let id = c.board_with_cards("board-list", 2).await;
    let page = c.events("board", &id, "?limit=10000").await.expect(200);
    assert_eq!(page_events(&page).len(), 3);
    c.events("board", &id, "?limit=1").await.expect(200);
    for query in [
        "?limit=10001",
        "?limit=0",
        "?limit=-5",
        // Past 32 bits (the Worker's usize on wasm32): not to be wrapped to 0 or 5.
        "?limit=4294967296",
        "?limit=4294967301",
        "?direction=backward&limit=4294967298",
        "?limit=9007199254740991",
        "?limit=ten",
        "?after=-1",
        "?after=1.5",
        "?direction=sideways",
        "?before=2",
        "?direction=backward&after=1",
        "?after=1&after=2",
        "?afterr=1",
    ] {
        let reply = c.events("board", &id, query).await;
        assert_eq!(reply.status, 400, "events{query}: {}", reply.text());
        reply.expect_error(400, "bad_request");
    }
}

#[tokio::test]
async fn ndjson_listing_is_one_envelope_per_line_with_the_cursor_in_a_header() {
    let c = shared().client();
    let id = c.board_with_cards("board-list", 6).await; // 7 events
    let all = c.all_events("board", &id).await;

    let reply = c
        .get_as(
            &format!("/v1/aggregates/board/{id}/events?limit=4"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(reply.header("x-next-after").as_deref(), Some("4"));
    let text = reply.text();
    assert!(text.ends_with('\n'), "NDJSON ends with a newline: {text:?}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect();
    assert_eq!(lines, all[..4]);

    let reply = c
        .get_as(
            &format!("/v1/aggregates/board/{id}/events?after=4"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(reply.header("x-next-after").as_deref(), Some("null"));
    let lines: Vec<Value> = reply
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all[4..]);

    let reply = c
        .get_as(
            &format!("/v1/aggregates/board/{id}/events?direction=backward&limit=5"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(reply.header("x-next-before").as_deref(), Some("3"));
    let lines: Vec<Value> = reply
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seqs(&lines), vec![7, 6, 5, 4, 3]);
}

#[tokio::test]
async fn messagepack_listing_is_the_same_object_as_json() {
    let c = shared().client();
    let id = c.board_with_cards("board-list", 6).await;
    for query in [
        "?limit=4",
        "?after=4",
        "?direction=backward&limit=3",
        "?direction=backward&before=3",
    ] {
        let path = format!("/v1/aggregates/board/{id}/events{query}");
        let json_page = c.get_as(&path, "application/json").await.expect(200);
        let reply = c.get_as(&path, "application/msgpack").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/msgpack")
        );
        let decoded: Value =
            rmp_serde::from_slice(&reply.body).unwrap_or_else(|e| panic!("not MessagePack ({e})"));
        assert_eq!(decoded, json_page, "{query}");
        // And it decodes into the domain's envelope type.
        let typed: Vec<domain::EventEnvelope> =
            serde_json::from_value(decoded["events"].clone()).expect("envelopes");
        assert!(!typed.is_empty());
    }
}

#[tokio::test]
async fn state_at_every_version_matches_what_it_was_then() {
    let c = shared().client();
    let id = unique_id("board-travel");
    let steps = [
        cmd("CreateBoard", json!({"title": "Travel"})),
        cmd("AddCard", json!({"card_id": "c1", "title": "One"})),
        cmd("MoveCard", json!({"card_id": "c1", "to_column": "Doing"})),
        cmd("EditCard", json!({"card_id": "c1", "title": "One, edited"})),
        cmd("AddCard", json!({"card_id": "c2", "title": "Two"})),
        cmd("ArchiveCard", json!({"card_id": "c1"})),
    ];
    let mut then = Vec::new();
    for step in steps {
        c.ok("board", &id, step).await;
        then.push(c.state("board", &id, "").await.expect(200));
        // Distinct recording times, so that `as_of` can name each version exactly.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (index, expected) in then.iter().enumerate() {
        let version = index + 1;
        let past = c
            .state("board", &id, &format!("?at_version={version}"))
            .await
            .expect(200);
        assert_eq!(&past, expected, "state at version {version}");
    }
    c.state("board", &id, "?at_version=0")
        .await
        .expect_error(404, "not_found");
    let beyond = c
        .state("board", &id, "?at_version=7")
        .await
        .expect_error(404, "not_found");
    assert_eq!(beyond["version"], 6);

    // as_of: the state as of each event's recording time (and 1 ms before the next one).
    let events = c.all_events("board", &id).await;
    let times: Vec<i64> = events
        .iter()
        .map(|e| check_timestamp(e["recorded_at"].as_str().unwrap()))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "recording times not distinct: {times:?}"
    );
    let rfc3339 = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    for (index, time) in times.iter().enumerate() {
        for at in [
            *time,
            times.get(index + 1).map_or(time + 60_000, |next| next - 1),
        ] {
            let past = c
                .state("board", &id, &format!("?as_of={}", rfc3339(at)))
                .await
                .expect(200);
            assert_eq!(
                past,
                then[index],
                "as_of {} should be version {}",
                rfc3339(at),
                index + 1
            );
        }
    }
    // Any offset names the same instant.
    let with_offset = chrono::DateTime::from_timestamp_millis(times[2])
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    let past = c
        .state(
            "board",
            &id,
            &format!("?as_of={}", with_offset.replace('+', "%2B")),
        )
        .await
        .expect(200);
    assert_eq!(past, then[2]);
    // Before the first event there is no state.
    c.state("board", &id, &format!("?as_of={}", rfc3339(times[0] - 1)))
        .await
        .expect_error(404, "not_found");
}

/// The byte budget of one listing page (4 MiB of payload): a page stops early, however high
/// `limit` is, when its events are large.
const PAGE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Follows a listing's cursor (`limit=10000`) to the end; returns every page's seqs and
/// all envelopes in the order listed. Asserts the cursor names each page's last seq.
async fn follow_pages(c: &Client, id: &str, backward: bool) -> (Vec<Vec<u64>>, Vec<Value>) {
    let (direction, cursor_field, cursor_param) = if backward {
        ("&direction=backward", "next_before", "before")
    } else {
        ("", "next_after", "after")
    };
    let mut query = format!("?limit=10000{direction}");
    let mut pages = Vec::new();
    let mut listed = Vec::new();
    loop {
        let reply = c.events("board", id, &query).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        let page = reply.json();
        let events = page_events(&page);
        assert!(!events.is_empty(), "{query}: an empty page mid-listing");
        pages.push(seqs(&events));
        listed.extend(events.iter().cloned());
        match page[cursor_field].as_u64() {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    events.last().and_then(|e| e["seq"].as_u64()),
                    "{query}: {cursor_field} must be the page's last seq"
                );
                query = format!("?limit=10000{direction}&{cursor_param}={next}");
            }
            None => {
                assert!(
                    page.as_object().unwrap().contains_key(cursor_field),
                    "{cursor_field} must be present (null) on the last page"
                );
                return (pages, listed);
            }
        }
        assert!(pages.len() < 50, "paging does not end");
    }
}

/// A listing's page is bounded by size as well as by `limit`: 1,200 comments of 4,000
/// characters (about 5 MB of payload) do not come back in one `limit=10000` page, and the
/// cursor leads through all of them, each exactly once, in order — forward and backward.
#[tokio::test]
async fn large_events_are_paged_by_size_and_the_cursor_covers_them_all() {
    use futures_util::StreamExt;
    const COMMENTS: usize = 1200;
    const TEXT_CHARS: usize = 4000;
    let c = shared().client();
    let id = unique_id("board-list-large");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Big"})))
        .await;
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c1", "title": "Talked about"})),
    )
    .await;
    let results: Vec<u16> = futures_util::stream::iter(0..COMMENTS)
        .map(|n| {
            let c = c.clone();
            let id = id.clone();
            async move {
                let mut text = format!("comment {n:05} ");
                text.push_str(&"x".repeat(TEXT_CHARS - text.len()));
                let body = cmd(
                    "CommentOnCard",
                    json!({"card_id": "c1", "author": "ana", "text": text}),
                );
                let reply = c.command("board", &id, &body).await;
                assert_eq!(reply.status, 200, "comment {n}: {}", reply.text());
                reply.status
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    assert_eq!(results.len(), COMMENTS);
    let total = COMMENTS as u64 + 2;
    assert_eq!(c.version("board", &id).await, total);
    const { assert!(COMMENTS * TEXT_CHARS > PAGE_BUDGET_BYTES) };

    // One request with the highest limit: a partial page, and a cursor at its end.
    let reply = c.events("board", &id, "?limit=10000").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let first = page_events(&reply.json());
    eprintln!(
        "the first limit=10000 page: {} of {total} events, {} bytes of JSON",
        first.len(),
        reply.body.len()
    );
    assert!(
        (first.len() as u64) < total,
        "all {total} events (~{} MB) came back in one page",
        reply.body.len() / 1_000_000
    );
    assert!(
        first.len() >= 100,
        "a page of {} events of ~4 KB is far below the 4 MiB budget",
        first.len()
    );
    assert!(
        reply.body.len() < 6 * 1024 * 1024,
        "a page of {} bytes is well over the 4 MiB budget",
        reply.body.len()
    );
    assert_eq!(
        reply.json()["next_after"].as_u64(),
        first.last().and_then(|e| e["seq"].as_u64())
    );
    assert_eq!(seqs(&first), (1..=first.len() as u64).collect::<Vec<_>>());

    // Following the cursor: every event exactly once, in order.
    let (pages, forward) = follow_pages(&c, &id, false).await;
    assert!(pages.len() >= 2, "one page: {}", pages.len());
    assert_eq!(seqs(&forward), (1..=total).collect::<Vec<_>>());
    assert_eq!(forward[..first.len()], first[..]);
    let texts: Vec<&str> = forward[2..]
        .iter()
        .map(|e| e["data"]["text"].as_str().expect("a comment's text"))
        .collect();
    assert!(texts.iter().all(|t| t.chars().count() == TEXT_CHARS));

    // Backward: newest first, the same partial pages, the same events.
    let (back_pages, mut backward) = follow_pages(&c, &id, true).await;
    assert!(back_pages.len() >= 2, "one backward page");
    assert!(
        (back_pages[0].len() as u64) < total,
        "the first backward page holds everything"
    );
    assert_eq!(back_pages[0][0], total, "backward starts at the newest");
    backward.reverse();
    assert_eq!(backward, forward);

    // NDJSON pages the same way (the cursor in its header).
    let reply = c
        .get_as(
            &format!("/v1/aggregates/board/{id}/events?limit=10000"),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines: Vec<Value> = reply
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!((lines.len() as u64) < total, "NDJSON: one page of all");
    assert_eq!(lines[..], forward[..lines.len()]);
    assert_eq!(
        reply.header("x-next-after"),
        Some(lines.len().to_string()),
        "NDJSON cursor"
    );
}
