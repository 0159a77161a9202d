//! Live subscriptions: backlog, `caught_up`, live events; several subscribers; reconnect
//! with `?after=N` (no gap, no duplicate); subscribing while writes are in flight; a
//! subscriber whose Durable Object was evicted still receiving pushes; and flow control:
//! acks, slow readers cut off (4008) beside fast ones, frame floods (4029), subscriber caps.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Client, Socket, check_envelope, cmd, seqs, shared, unique_id};

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);

/// Adds a card and returns the envelope the command answered with.
async fn add_card(c: &Client, id: &str, card: &str) -> Value {
    let reply = c
        .ok(
            "board",
            id,
            cmd("AddCard", json!({"card_id": card, "title": "live"})),
        )
        .await;
    reply["events"][0].clone()
}

#[tokio::test]
async fn a_subscriber_gets_the_backlog_then_caught_up_then_live_events() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 2).await;
    let logged = c.all_events("board", &id).await;

    let mut socket = c.subscribe("board", &id, None).await;
    let backlog = socket.next_events(3).await;
    backlog.iter().for_each(check_envelope);
    assert_eq!(backlog, logged, "the backlog is the log");
    assert_eq!(socket.caught_up().await, 3);

    let live = [add_card(&c, &id, "l1").await, add_card(&c, &id, "l2").await];
    for expected in &live {
        let event = socket.next_event().await;
        check_envelope(&event);
        assert_eq!(&event, expected, "a live event is the committed envelope");
    }
    socket.expect_silence(QUIET).await;
}

#[tokio::test]
async fn after_n_replays_only_later_events() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 4).await; // version 5
    let logged = c.all_events("board", &id).await;

    let mut socket = c.subscribe("board", &id, Some(2)).await;
    assert_eq!(socket.next_events(3).await, logged[2..]);
    assert_eq!(socket.caught_up().await, 5);

    let mut up_to_date = c.subscribe("board", &id, Some(5)).await;
    assert_eq!(
        up_to_date.caught_up().await,
        5,
        "nothing to replay: caught_up comes first"
    );
    let live = add_card(&c, &id, "l1").await;
    assert_eq!(up_to_date.next_event().await, live);
    assert_eq!(socket.next_event().await, live);

    // `after` beyond the version, or not a number, refuses the upgrade.
    let refused = c
        .try_socket(&format!("/v1/aggregates/board/{id}/ws?after=99"))
        .await
        .expect_err("after > version");
    assert_eq!(refused.expect_error(400, "bad_request")["version"], 6);
    let refused = c
        .try_socket(&format!("/v1/aggregates/board/{id}/ws?after=two"))
        .await
        .expect_err("after=two");
    refused.expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_subscriber_may_come_before_the_aggregate() {
    let c = shared().client();
    let id = unique_id("board-ws-early");
    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.caught_up().await, 0);
    let reply = c
        .ok(
            "board",
            &id,
            cmd("CreateBoard", json!({"title": "Born live"})),
        )
        .await;
    let event = socket.next_event().await;
    assert_eq!(event, reply["events"][0]);
    assert_eq!(event["seq"], 1);
}

#[tokio::test]
async fn two_subscribers_see_the_same_events_in_the_same_order() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 1).await;
    let mut first = c.subscribe("board", &id, None).await;
    let mut second = c.subscribe("board", &id, Some(1)).await;
    assert_eq!(first.next_events(2).await.len(), 2);
    assert_eq!(first.caught_up().await, 2);
    assert_eq!(second.next_events(1).await[0]["seq"], 2);
    assert_eq!(second.caught_up().await, 2);

    let mut committed = Vec::new();
    for n in 0..5 {
        committed.push(add_card(&c, &id, &format!("l{n}")).await);
    }
    assert_eq!(first.next_events(5).await, committed);
    assert_eq!(second.next_events(5).await, committed);

    // One leaving does not disturb the other.
    first.close().await;
    let more = add_card(&c, &id, "after-close").await;
    assert_eq!(second.next_event().await, more);
    second.expect_silence(QUIET).await;
}

#[tokio::test]
async fn rejected_commands_and_idempotent_replays_push_nothing() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 1).await;
    let mut socket = c.subscribe("board", &id, Some(2)).await;
    assert_eq!(socket.caught_up().await, 2);

    let body = cmd("AddCard", json!({"card_id": "k1", "title": "once"}));
    let first = c
        .command_with_key("board", &id, &body, Some("ws-key"))
        .await
        .expect(200);
    assert_eq!(socket.next_event().await, first["events"][0]);
    let again = c
        .command_with_key("board", &id, &body, Some("ws-key"))
        .await;
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    c.command("board", &id, &body)
        .await
        .expect_error(422, "rejected");
    socket.expect_silence(QUIET).await;
}

#[tokio::test]
async fn reconnecting_with_after_n_receives_exactly_the_missed_events() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 2).await; // version 3
    let mut received = Vec::new();

    let mut socket = c.subscribe("board", &id, None).await;
    received.extend(socket.next_events(3).await);
    assert_eq!(socket.caught_up().await, 3);
    received.push({
        let live = add_card(&c, &id, "l1").await;
        let event = socket.next_event().await;
        assert_eq!(event, live);
        event
    });
    socket.close().await;

    // Missed while away.
    let mut missed = Vec::new();
    for n in 0..4 {
        missed.push(add_card(&c, &id, &format!("away{n}")).await);
    }

    let last_seen = received.last().unwrap()["seq"].as_u64().unwrap();
    let mut socket = c.subscribe("board", &id, Some(last_seen)).await;
    let replayed = socket.next_events(4).await;
    assert_eq!(replayed, missed, "the replay is exactly the missed events");
    assert_eq!(socket.caught_up().await, 8);
    received.extend(replayed);
    let live = add_card(&c, &id, "back").await;
    received.push(socket.next_event().await);
    assert_eq!(received.last(), Some(&live));
    socket.expect_silence(QUIET).await;

    // Across both connections: every event once, in order, and identical to the log.
    assert_eq!(seqs(&received), (1..=9).collect::<Vec<_>>());
    assert_eq!(received, c.all_events("board", &id).await);
}

/// Reads a subscription until it has seen seq `last` and its `caught_up`; asserts one
/// `caught_up` and a gap-free, duplicate-free sequence 1..=last. Returns the events and
/// the version `caught_up` named.
async fn read_all(mut socket: Socket, last: u64) -> (Vec<Value>, u64) {
    let mut events: Vec<Value> = Vec::new();
    let mut caught_up = None;
    while caught_up.is_none() || events.last().and_then(|e| e["seq"].as_u64()) != Some(last) {
        let frame = socket.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => events.push(frame["event"].clone()),
            Some("caught_up") => {
                assert!(caught_up.is_none(), "a second caught_up: {frame}");
                let version = frame["version"].as_u64().unwrap();
                assert_eq!(
                    Some(version),
                    events.last().and_then(|e| e["seq"].as_u64()).or(Some(0)),
                    "caught_up after a partial backlog"
                );
                caught_up = Some(version);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(
        seqs(&events),
        (1..=last).collect::<Vec<_>>(),
        "gap or duplicate across the backlog/live switch"
    );
    socket.expect_silence(QUIET).await;
    (events, caught_up.unwrap_or_default())
}

#[tokio::test]
async fn subscribing_while_events_are_written_loses_and_repeats_nothing() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 0).await;
    const WRITES: u64 = 60;

    let writer = {
        let c = c.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for n in 0..WRITES {
                add_card(&c, &id, &format!("w{n}")).await;
            }
        })
    };
    // Subscribers join at different moments of the write burst.
    let mut readers = Vec::new();
    for _ in 0..6 {
        let socket = c.subscribe("board", &id, None).await;
        readers.push(tokio::spawn(read_all(socket, WRITES + 1)));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    writer.await.expect("writer");
    let log = c.all_events("board", &id).await;
    let mut switch_points = Vec::new();
    for reader in readers {
        let (events, caught_up) = reader.await.expect("reader");
        assert_eq!(events, log);
        switch_points.push(caught_up);
    }
    // The first subscriber joined while (at most) a few of the 60 writes were done, so at
    // least one switched from backlog to live in the middle of the burst.
    assert!(
        switch_points.iter().any(|v| *v < WRITES + 1),
        "no subscriber joined during the writes: {switch_points:?}"
    );
}

/// workerd evicts a Durable Object after ~10 s without requests, even while hibernatable
/// WebSockets are attached (they stay open, held by the runtime). The next request builds
/// a new instance (a new `x-edgeloop-instance`), which must still push to those sockets.
#[tokio::test]
async fn a_subscriber_still_receives_pushes_after_its_object_was_evicted() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 1).await;
    let mut socket = c.subscribe("board", &id, None).await;
    let instance = socket
        .headers
        .get("x-edgeloop-instance")
        .expect("instance header on the upgrade")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(socket.next_events(2).await.len(), 2);
    assert_eq!(socket.caught_up().await, 2);

    let mut evictions = 0;
    // Idle periods (the object gets no request at all meanwhile); longer ones only if a
    // slow machine kept the object alive.
    for (round, idle) in [13, 20, 30].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let reply = c
            .command(
                "board",
                &id,
                &cmd(
                    "AddCard",
                    json!({"card_id": format!("after-idle-{round}"), "title": "t"}),
                ),
            )
            .await;
        let body = reply.expect(200);
        let event = socket.next_event().await;
        assert_eq!(event, body["events"][0], "the push after {idle} s idle");
        if reply.instance() != instance {
            evictions += 1;
            break;
        }
    }
    assert!(
        evictions > 0,
        "the object was never evicted (same x-edgeloop-instance throughout): the test proved nothing"
    );

    // The re-created object keeps serving the old socket, and new ones.
    let more = add_card(&c, &id, "after-eviction").await;
    assert_eq!(socket.next_event().await, more);
    let mut late = c
        .subscribe("board", &id, Some(more["seq"].as_u64().unwrap() - 1))
        .await;
    assert_eq!(late.next_event().await, more);
    assert_eq!(late.caught_up().await, more["seq"].as_u64().unwrap());
    socket.expect_silence(QUIET).await;
}

/// Flow control: a catching-up subscriber gets at most `WS_ACK_WINDOW` events beyond its
/// last ack; a live one that falls further behind is closed with 4008 and resumes with
/// `?after=` from its last ack, losing nothing.
#[tokio::test]
async fn subscribers_are_paced_by_their_acks() {
    let worker = tests::Worker::start_with(tests::Options::new().var("WS_ACK_WINDOW", 5));
    let c = worker.client();
    let id = c.board_with_cards("board-ws", 11).await; // version 12
    let log = c.all_events("board", &id).await;

    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.next_events(5).await, log[..5]);
    socket.expect_silence(QUIET).await;
    socket.ack(5).await;
    assert_eq!(socket.next_events(5).await, log[5..10]);
    socket.expect_silence(QUIET).await;
    socket.ack(10).await;
    assert_eq!(socket.next_events(2).await, log[10..12]);
    assert_eq!(socket.caught_up().await, 12);

    // Live, with 10 acknowledged: 13..=15 fit the window, 16 does not.
    let mut live = Vec::new();
    for n in 0..3 {
        live.push(add_card(&c, &id, &format!("l{n}")).await);
    }
    assert_eq!(socket.next_events(3).await, live);
    let overflow = add_card(&c, &id, "overflow").await;
    let frame = socket.next_frame().await;
    assert_eq!(
        (frame["kind"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("slow_consumer")),
        "{frame}"
    );
    assert_eq!(frame["resume_after"], 10);
    assert_eq!(socket.expect_close().await, Some(4008));

    // Resuming from the last ack replays the rest, paced the same way.
    let mut socket = c.subscribe("board", &id, Some(10)).await;
    let log = c.all_events("board", &id).await;
    assert_eq!(socket.next_events(5).await, log[10..15]);
    socket.ack(15).await;
    assert_eq!(socket.next_event().await, overflow);
    assert_eq!(socket.caught_up().await, 16);
}

/// Reads the frames a subscriber that was cut off for being slow still has buffered: the
/// events it was sent, then the `slow_consumer` error frame, then the 4008 close. Returns
/// the events and the error frame.
async fn read_until_cut_off(socket: &mut Socket) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    loop {
        let frame = socket.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => events.push(frame["event"].clone()),
            Some("error") => {
                assert_eq!(frame["code"], "slow_consumer", "{frame}");
                assert!(
                    frame["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "an error frame without a message: {frame}"
                );
                assert_eq!(socket.expect_close().await, Some(4008));
                return (events, frame);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
}

/// Two subscribers of one aggregate, one slow: a reader that never acknowledges is cut off
/// with 4008 and the documented `slow_consumer` frame once more than `WS_ACK_WINDOW` events
/// are unacknowledged — whether it keeps reading or has stopped reading altogether — while
/// a reader that acknowledges receives every event, in order, before and after the cut.
/// The one that was cut off resumes from `resume_after` and loses nothing.
#[tokio::test]
async fn a_slow_reader_is_cut_off_while_a_fast_one_keeps_receiving() {
    const WINDOW: u64 = 16;
    const WRITES: usize = 60;
    let worker = tests::Worker::start_with(tests::Options::new().var("WS_ACK_WINDOW", WINDOW));
    let c = worker.client();
    let id = c.board_with_cards("board-ws", 0).await; // version 1
    let mut fast = c.subscribe("board", &id, Some(1)).await;
    let mut never_acks = c.subscribe("board", &id, Some(1)).await;
    let mut stopped_reading = c.subscribe("board", &id, Some(1)).await;
    assert_eq!(fast.caught_up().await, 1);
    assert_eq!(never_acks.caught_up().await, 1);
    assert_eq!(stopped_reading.caught_up().await, 1);
    // From here on `stopped_reading` is not read until every write is done.

    let mut committed = Vec::new();
    let mut received = Vec::new();
    let mut slow_received = Vec::new();
    let mut cut_after_writes = None;
    for n in 0..WRITES {
        let event = add_card(&c, &id, &format!("c{n}")).await;
        committed.push(event.clone());
        // The fast reader processes each event and acknowledges it before the next write,
        // so its unacknowledged backlog never comes near the window.
        let got = fast.next_event().await;
        assert_eq!(got, event, "the fast reader at write {n}");
        fast.ack(got["seq"].as_u64().unwrap()).await;
        received.push(got);
        // The slow one reads but never acknowledges.
        if cut_after_writes.is_none() {
            let frame = never_acks.next_frame().await;
            match frame["kind"].as_str() {
                Some("event") => slow_received.push(frame["event"].clone()),
                Some("error") => {
                    assert_eq!(frame["code"], "slow_consumer", "{frame}");
                    assert_eq!(frame["resume_after"], 1, "{frame}");
                    assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()));
                    assert_eq!(never_acks.expect_close().await, Some(4008));
                    cut_after_writes = Some(n + 1);
                }
                _ => panic!("unexpected frame {frame}"),
            }
        }
    }
    // Cut at the first event past the window, with the window's worth delivered.
    assert_eq!(cut_after_writes, Some(WINDOW as usize + 1));
    assert_eq!(slow_received, committed[..WINDOW as usize]);
    // The fast reader got everything, in order, also the events after the cut.
    assert_eq!(received, committed);
    assert!(received.len() > WINDOW as usize + 1);
    fast.expect_silence(QUIET).await;
    assert_eq!(c.all_events("board", &id).await[1..], committed[..]);

    // The reader that stopped reading was cut off the same way; its buffered frames say so.
    let (buffered, error) = read_until_cut_off(&mut stopped_reading).await;
    assert_eq!(buffered, committed[..WINDOW as usize]);
    assert_eq!(error["resume_after"], 1);

    // Resuming from `resume_after`, paced by acks, loses nothing.
    let mut resumed = c.subscribe("board", &id, Some(1)).await;
    let mut replayed: Vec<Value> = Vec::new();
    loop {
        let frame = resumed.next_frame().await;
        match frame["kind"].as_str() {
            Some("event") => {
                replayed.push(frame["event"].clone());
                if replayed.len().is_multiple_of(WINDOW as usize) {
                    resumed.ack(1 + replayed.len() as u64).await;
                }
            }
            Some("caught_up") => {
                assert_eq!(frame["version"], 1 + WRITES as u64);
                break;
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(replayed, committed);
}

#[tokio::test]
async fn a_client_sending_too_many_frames_is_closed_with_4029() {
    let worker =
        tests::Worker::start_with(tests::Options::new().var("WS_MAX_FRAMES_PER_SECOND", 3));
    let c = worker.client();
    let id = c.board_with_cards("board-ws", 0).await;
    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.next_events(1).await.len(), 1);
    assert_eq!(socket.caught_up().await, 1);
    for _ in 0..6 {
        socket.ack(1).await;
    }
    let frame = socket.next_frame().await;
    assert_eq!(
        (frame["kind"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("rate_limited")),
        "{frame}"
    );
    assert_eq!(socket.expect_close().await, Some(4029));
}

#[tokio::test]
async fn subscribers_beyond_the_limit_are_429_with_retry_after() {
    let worker =
        tests::Worker::start_with(tests::Options::new().var("MAX_SUBSCRIBERS_PER_AGGREGATE", 2));
    let c = worker.client();
    let id = c.board_with_cards("board-ws", 0).await;
    let path = format!("/v1/aggregates/board/{id}/ws");
    let first = c.subscribe("board", &id, None).await;
    let mut second = c.subscribe("board", &id, None).await;
    let refused = c.try_socket(&path).await.expect_err("a third subscriber");
    refused.expect_error(429, "rate_limited");
    let retry_after = refused.header("retry-after").expect("Retry-After on 429");
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After: {retry_after}"
    );

    // Another aggregate has its own allowance.
    let other = c.board_with_cards("board-ws", 0).await;
    c.subscribe("board", &other, None).await.next_event().await;

    // A subscriber that leaves frees its place (once the close handshake is through).
    first.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut third = loop {
        match c.try_socket(&path).await {
            Ok(socket) => break socket,
            Err(reply) if reply.status == 429 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(reply) => panic!(
                "the freed place was not given: {} {}",
                reply.status,
                reply.text()
            ),
        }
    };
    assert_eq!(third.next_event().await["seq"], 1);
    assert_eq!(third.caught_up().await, 1);
    let live = add_card(&c, &id, "l1").await;
    assert_eq!(third.next_event().await, live);
    second.next_event().await;
    assert_eq!(second.caught_up().await, 1);
    assert_eq!(second.next_event().await, live);
}

/// Reads the `bad_request` error frame and the 1008 (policy violation) close that answer a
/// client frame breaking the protocol.
async fn expect_protocol_error(socket: &mut Socket, what: &str) {
    let frame = socket.next_frame().await;
    assert_eq!(
        (frame["kind"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("bad_request")),
        "{what}: expected the bad_request error frame, got {frame}"
    );
    assert!(
        frame["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: an error frame without a message: {frame}"
    );
    assert_eq!(socket.expect_close().await, Some(1008), "{what}");
}

/// Acknowledging an event the server never sent ("blind" acks, which would open the
/// window without reading) breaks the protocol: error frame, then close 1008. Acks up to
/// what was sent, and repeated or older ones, are fine.
#[tokio::test]
async fn an_ack_beyond_what_was_sent_closes_the_socket_with_1008() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 2).await; // version 3

    // Control: acks of what was sent — the newest, again, an older one — keep it open.
    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.next_events(3).await.len(), 3);
    assert_eq!(socket.caught_up().await, 3);
    socket.ack(3).await;
    socket.ack(3).await;
    socket.ack(2).await;
    socket.expect_silence(QUIET).await;
    let live = add_card(&c, &id, "l1").await;
    assert_eq!(socket.next_event().await, live);
    socket.ack(4).await;
    socket.expect_silence(QUIET).await;

    // One past what was sent, and far past it.
    for blind in [5, 1_000_000] {
        let mut socket = c.subscribe("board", &id, None).await;
        assert_eq!(socket.next_events(4).await.len(), 4);
        assert_eq!(socket.caught_up().await, 4);
        socket.ack(blind).await;
        expect_protocol_error(&mut socket, &format!("an ack of {blind} at version 4")).await;
    }

    // While catching up: with a window of 4 only 4 are sent, so an ack of 5 is blind.
    let worker = tests::Worker::start_with(tests::Options::new().var("WS_ACK_WINDOW", 4));
    let c = worker.client();
    let id = c.board_with_cards("board-ws", 9).await; // version 10
    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.next_events(4).await.len(), 4);
    socket.expect_silence(QUIET).await;
    socket.ack(10).await;
    expect_protocol_error(&mut socket, "an ack of 10 while catching up with 4 sent").await;
}

/// A client frame that is not `{"kind":"ack","seq":N}` breaks the protocol: error frame,
/// then close 1008 (not a reply that leaves the socket open).
#[tokio::test]
async fn a_malformed_client_frame_closes_the_socket_with_1008() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 2).await; // version 3
    for frame in [
        "not JSON",
        "",
        r#"{"kind":"hello"}"#,
        r#"{"kind":"ack"}"#,
        r#"{"kind":"ack","seq":-1}"#,
        r#"{"kind":"ack","seq":"3"}"#,
        "[]",
        "null",
    ] {
        let mut socket = c.subscribe("board", &id, None).await;
        assert_eq!(socket.next_events(3).await.len(), 3);
        assert_eq!(socket.caught_up().await, 3);
        socket
            .send_text(frame)
            .await
            .unwrap_or_else(|e| panic!("{frame:?}: {e}"));
        expect_protocol_error(&mut socket, &format!("the frame {frame:?}")).await;
    }
    // The aggregate and its other subscribers are unaffected.
    let mut socket = c.subscribe("board", &id, Some(3)).await;
    assert_eq!(socket.caught_up().await, 3);
    let live = add_card(&c, &id, "after").await;
    assert_eq!(socket.next_event().await, live);
}

/// Client frames are JSON text; a binary frame is as malformed as bad JSON.
#[tokio::test]
async fn a_binary_client_frame_closes_the_socket_with_1008() {
    let c = shared().client();
    let id = c.board_with_cards("board-ws", 0).await;
    let mut socket = c.subscribe("board", &id, None).await;
    assert_eq!(socket.next_events(1).await.len(), 1);
    assert_eq!(socket.caught_up().await, 1);
    socket
        .send_binary(br#"{"kind":"ack","seq":1}"#.to_vec())
        .await
        .expect("send a binary frame");
    expect_protocol_error(&mut socket, "a binary frame").await;
}
