//! Socket slots and strict client frames — faults found by using the product, each now a
//! test of the whole kind: a socket the server closes stops counting at once, even when
//! its client never answers the close frame; and client frames are parsed strictly.

use std::time::Duration;

use tests::{Options, Worker};

/// Reads frames until the server's error frame, and returns its `code`. (The client does
/// not answer the close: tungstenite only replies to a close frame when it reads it, and
/// the caller reads no further.)
async fn error_code(socket: &mut tests::Socket) -> String {
    loop {
        let frame = socket.next_frame().await;
        if frame["kind"] == "error" {
            return frame["code"].as_str().unwrap_or_default().to_owned();
        }
    }
}

#[tokio::test]
async fn sockets_closed_by_the_server_free_their_slots_at_once() {
    let worker = Worker::start_with(Options::new().var("MAX_SUBSCRIBERS_PER_AGGREGATE", 4));
    let c = worker.client();
    let id = c.board_with_cards("board-slots", 1).await;
    let path = format!("/v1/aggregates/board/{id}/ws");
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut socket = c.subscribe("board", &id, None).await;
        socket.next_events(2).await;
        assert_eq!(socket.caught_up().await, 2);
        sockets.push(socket);
    }
    c.try_socket(&path)
        .await
        .expect_err("a fifth subscriber while four are open")
        .expect_error(429, "rate_limited");

    // The server closes two sockets (protocol errors); their clients keep the TCP
    // connection open and never answer the close frame.
    for socket in sockets.iter_mut().take(2) {
        socket.send_text(r#"{"kind":"nope"}"#).await.unwrap();
        assert_eq!(error_code(socket).await, "bad_request");
    }
    // Two slots are free immediately, not when the lingering connections end.
    let mut fifth = c.try_socket(&path).await.expect("the fifth subscriber");
    let mut sixth = c.try_socket(&path).await.expect("the sixth subscriber");
    c.try_socket(&path)
        .await
        .expect_err("a seventh subscriber: two closed + four open")
        .expect_error(429, "rate_limited");
    for socket in [&mut fifth, &mut sixth] {
        socket.next_events(2).await;
        assert_eq!(socket.caught_up().await, 2);
    }
    // Fan-out reaches the open sockets only, and the half-closed ones get nothing more.
    let live = c
        .ok(
            "board",
            &id,
            tests::cmd(
                "AddCard",
                serde_json::json!({"card_id": "live", "title": "t"}),
            ),
        )
        .await;
    let seq = live["version"].as_u64().unwrap();
    for socket in sockets.iter_mut().skip(2).chain([&mut fifth, &mut sixth]) {
        assert_eq!(socket.next_event().await["seq"], seq);
    }
    for socket in sockets.iter_mut().take(2) {
        let end = socket.try_frame_within(Duration::from_millis(300)).await;
        assert!(
            matches!(&end, Err(closed) if closed.contains("1008")),
            "a closed socket got {end:?}"
        );
    }
}

#[tokio::test]
async fn every_close_the_server_starts_frees_the_slot() {
    // Slow consumer (4008) and frame flood (4029): both free their slot at once too.
    let worker = Worker::start_with(
        Options::new()
            .var("MAX_SUBSCRIBERS_PER_AGGREGATE", 2)
            .var("WS_ACK_WINDOW", 2)
            .var("WS_MAX_FRAMES_PER_SECOND", 3),
    );
    let c = worker.client();
    let id = c.board_with_cards("board-slots", 0).await;
    let path = format!("/v1/aggregates/board/{id}/ws");
    let mut slow = c.subscribe("board", &id, None).await;
    let mut flood = c.subscribe("board", &id, None).await;
    slow.next_event().await;
    slow.caught_up().await;
    flood.next_event().await;
    flood.caught_up().await;
    for _ in 0..5 {
        if flood.send_text(r#"{"kind":"ack","seq":1}"#).await.is_err() {
            break;
        }
    }
    assert_eq!(error_code(&mut flood).await, "rate_limited");
    for card in ["a", "b", "c"] {
        c.ok(
            "board",
            &id,
            tests::cmd(
                "AddCard",
                serde_json::json!({"card_id": card, "title": "t"}),
            ),
        )
        .await;
    }
    assert_eq!(error_code(&mut slow).await, "slow_consumer");
    let mut fresh = c.try_socket(&path).await.expect("a slot after 4008");
    c.try_socket(&path).await.expect("a slot after 4029");
    // The window is 2: catch-up goes on as the new subscriber acks.
    assert_eq!(fresh.next_events(2).await.len(), 2);
    fresh.ack(2).await;
    assert_eq!(fresh.next_events(2).await.len(), 2);
    assert_eq!(fresh.caught_up().await, 4);
}

#[tokio::test]
async fn client_frames_are_strict() {
    let c = tests::shared().client();
    let id = c.board_with_cards("board-slots", 1).await;
    for bad in [
        r#"{"kind":"ack","seq":1,"extra":true}"#,
        r#"{"kind":"ack","seq":"1"}"#,
        r#"{"kind":"ack"}"#,
        &format!(r#"{{"kind":"ack","seq":1{}}}"#, " ".repeat(300)),
    ] {
        let mut socket = c.subscribe("board", &id, None).await;
        socket.next_events(2).await;
        socket.caught_up().await;
        socket.send_text(bad).await.unwrap();
        assert_eq!(error_code(&mut socket).await, "bad_request", "{bad}");
        assert_eq!(socket.expect_close().await, Some(1008), "{bad}");
    }
    // The exact form is accepted (and keys in any order).
    let mut socket = c.subscribe("board", &id, None).await;
    socket.next_events(2).await;
    socket.caught_up().await;
    socket.send_text(r#"{"seq":2,"kind":"ack"}"#).await.unwrap();
    socket.expect_silence(Duration::from_millis(300)).await;
}
