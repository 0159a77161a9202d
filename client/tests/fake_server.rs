//! The client against scripted fake servers on localhost: the retry and resume paths, with
//! failures no real server produces on demand (an answer lost after the command ran, a
//! resume that replays duplicates, a gap). The real Worker is exercised by
//! `tests/tests/client.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{AckMode, Client, CommandBody, Error, RetryPolicy, SubscribeOptions, Update};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(10);

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(10),
    }
}

// ---- a scripted HTTP server -------------------------------------------------------------

/// What the fake server does with the next request.
enum Step {
    /// Reads the request, then closes the connection without answering: the request
    /// arrived, the answer was lost.
    Lose,
    /// Answers with a status, extra headers and a body.
    Answer(u16, &'static [(&'static str, &'static str)], String),
}

#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Serves `script`, one step per connection; returns the base URL and what it received.
async fn http_server(script: Vec<Step>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        for step in script {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let request = read_request(&mut tcp).await;
            log.lock().unwrap().push(request);
            if let Step::Answer(status, headers, body) = step {
                let mut answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    answer.push_str(&format!("{name}: {value}\r\n"));
                }
                answer.push_str("\r\n");
                answer.push_str(&body);
                let _ = tcp.write_all(answer.as_bytes()).await;
            }
            let _ = tcp.shutdown().await;
        }
    });
    (url, seen)
}

async fn read_request(tcp: &mut TcpStream) -> Seen {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed mid-request");
        bytes.extend_from_slice(&chunk[..n]);
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut seen = Seen {
        head,
        body: Vec::new(),
    };
    let length: usize = seen
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while bytes.len() < head_end + length {
        let n = tcp.read(&mut chunk).await.unwrap();
        bytes.extend_from_slice(&chunk[..n]);
    }
    seen.body = bytes[head_end..head_end + length].to_vec();
    seen
}

fn result_body(version: u64) -> String {
    json!({"aggregate_type": "board", "aggregate_id": "b1", "version": version, "events": [envelope(version)]})
        .to_string()
}

fn envelope(seq: u64) -> Value {
    json!({
        "aggregate_type": "board", "aggregate_id": "b1", "seq": seq,
        "event_id": format!("event-{seq}"), "type": "CardAdded", "schema_version": 1,
        "data": {"card_id": format!("c{seq}")}, "recorded_at": "2026-01-01T00:00:00.000Z",
        "command_id": null, "correlation_id": null, "causation_id": null, "actor": "tester"
    })
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_key_and_body() {
    let (url, seen) = http_server(vec![
        Step::Lose,
        Step::Answer(200, &[("idempotent-replayed", "true")], result_body(2)),
    ])
    .await;
    let client = Client::new(&url)
        .unwrap()
        .with_token("t0k")
        .with_retry(fast_retries(3));
    let body = CommandBody::new("AddCard", json!({"card_id": "c2", "title": "t"}));
    let result = client.command("board", "b1", &body).await.unwrap();

    assert!(
        result.replayed,
        "the answer came from the idempotency record"
    );
    assert_eq!(result.version, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one retry");
    let keys: Vec<_> = seen.iter().map(|s| s.header("idempotency-key")).collect();
    let key = keys[0].clone().expect("the first attempt carries a key");
    assert_eq!(
        keys[1].as_deref(),
        Some(key.as_str()),
        "the retry reuses it"
    );
    assert_eq!(result.idempotency_key, key);
    assert_eq!(uuid::Uuid::parse_str(&key).unwrap().get_version_num(), 4);
    assert_eq!(seen[0].body, seen[1].body, "the same command both times");
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer t0k")
    );
    assert!(
        seen[0]
            .head
            .starts_with("POST /v1/aggregates/board/b1/commands ")
    );
}

#[tokio::test]
async fn retry_after_is_honoured_before_the_next_attempt() {
    let busy = json!({"error": {"code": "rate_limited", "message": "busy"}}).to_string();
    let (url, seen) = http_server(vec![
        Step::Answer(429, &[("retry-after", "1")], busy),
        Step::Answer(200, &[], result_body(1)),
    ])
    .await;
    let client = Client::new(&url).unwrap().with_retry(fast_retries(3));
    let started = std::time::Instant::now();
    let result = client
        .command_with_key(
            "board",
            "b1",
            &json!({"type": "CreateBoard", "data": {"title": "t"}}),
            "my-key",
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(!result.replayed);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|s| s.header("idempotency-key").as_deref() == Some("my-key"))
    );
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_keeps_its_details() {
    let conflict =
        json!({"error": {"code": "version_conflict", "message": "m", "expected": 1, "actual": 4}});
    let (url, seen) = http_server(vec![Step::Answer(409, &[], conflict.to_string())]).await;
    let client = Client::new(&url).unwrap().with_retry(fast_retries(5));
    let error = client
        .command(
            "board",
            "b1",
            &json!({"type": "AddCard", "data": {}, "expected_version": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(error.status(), Some(409));
    assert_eq!(error.version_conflict().map(|c| c.actual), Some(4));
}

#[tokio::test]
async fn retries_are_bounded_and_name_the_key() {
    let (url, seen) = http_server((0..3).map(|_| Step::Lose).collect()).await;
    let client = Client::new(&url).unwrap().with_retry(fast_retries(3));
    let error = client
        .command(
            "board",
            "b1",
            &json!({"type": "CreateBoard", "data": {"title": "t"}}),
        )
        .await
        .unwrap_err();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    match error {
        Error::GaveUp {
            attempts,
            idempotency_key,
            last,
            ..
        } => {
            assert_eq!(attempts, 3);
            assert_eq!(idempotency_key, seen[0].header("idempotency-key"));
            assert!(matches!(*last, Error::Network(_)), "{last}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
}

#[tokio::test]
async fn reads_are_retried_and_decoded() {
    let state = json!({"aggregate_type": "board", "aggregate_id": "b1", "version": 3, "state": {"title": "t"}});
    let (url, seen) = http_server(vec![
        Step::Answer(503, &[], "<html>overloaded</html>".into()),
        Step::Answer(200, &[], state.to_string()),
    ])
    .await;
    let client = Client::new(&url).unwrap().with_retry(fast_retries(2));
    let read = client
        .state("board", "b1", client::At::Version(3))
        .await
        .unwrap();
    assert_eq!((read.version, read.state["title"].as_str()), (3, Some("t")));
    let seen = seen.lock().unwrap();
    assert!(
        seen[1]
            .head
            .starts_with("GET /v1/aggregates/board/b1?at_version=3 "),
        "{}",
        seen[1].head
    );
}

// ---- a scripted WebSocket server -----------------------------------------------------

/// One accepted subscription: the `after` it asked for, the subprotocols it offered.
struct Conn {
    after: u64,
    offered: String,
    ws: WebSocketStream<TcpStream>,
}

impl Conn {
    async fn events(&mut self, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            let frame = json!({"kind": "event", "event": envelope(seq)}).to_string();
            self.ws.send(Message::text(frame)).await.unwrap();
        }
    }

    async fn caught_up(&mut self, version: u64) {
        let frame = json!({"kind": "caught_up", "version": version}).to_string();
        self.ws.send(Message::text(frame)).await.unwrap();
    }

    /// The error frame, then the close, as the server does it.
    async fn close_with(mut self, close_code: u16, code: &str, resume_after: u64) {
        let frame =
            json!({"kind": "error", "code": code, "message": "m", "resume_after": resume_after});
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        let close = CloseFrame {
            code: CloseCode::from(close_code),
            reason: code.to_owned().into(),
        };
        let _ = self.ws.close(Some(close)).await;
    }

    /// The next ack the client sends, within `within`.
    async fn ack(&mut self, within: Duration) -> Option<u64> {
        loop {
            let message = tokio::time::timeout(within, self.ws.next()).await.ok()??;
            if let Ok(Message::Text(text)) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(frame["kind"], "ack", "{frame}");
                return frame["seq"].as_u64();
            }
        }
    }
}

// The handshake callback's error type is tungstenite's (`accept_hdr_async`), not ours.
#[allow(clippy::result_large_err)]
async fn ws_server() -> (String, mpsc::UnboundedReceiver<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let asked = Arc::new(Mutex::new((String::new(), String::new())));
                let record = Arc::clone(&asked);
                let callback = move |request: &Request, mut response: Response| {
                    let offered = request
                        .headers()
                        .get("sec-websocket-protocol")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    *record.lock().unwrap() = (request.uri().to_string(), offered);
                    response
                        .headers_mut()
                        .insert("sec-websocket-protocol", "edgeloop.v1".parse().unwrap());
                    Ok(response)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let (uri, offered) = asked.lock().unwrap().clone();
                let after = uri
                    .split_once("after=")
                    .map_or(0, |(_, n)| n.parse().unwrap());
                let _ = tx.send(Conn { after, offered, ws });
            });
        }
    });
    (url, rx)
}

fn quick_options(ack: AckMode) -> SubscribeOptions {
    SubscribeOptions {
        ack,
        reconnect: fast_retries(5),
        ..SubscribeOptions::default()
    }
}

/// Reads updates until `n` events have arrived; returns everything read.
async fn read_events(subscription: &mut client::Subscription, n: usize) -> Vec<Update> {
    let mut updates = Vec::new();
    let mut events = 0;
    while events < n {
        let update = tokio::time::timeout(WAIT, subscription.next())
            .await
            .expect("an update in time")
            .expect("no error");
        events += usize::from(matches!(update, Update::Event(_)));
        updates.push(update);
    }
    updates
}

fn seqs(updates: &[Update]) -> Vec<u64> {
    updates
        .iter()
        .filter_map(|u| match u {
            Update::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_subscription_resumes_after_drops_with_no_gap_and_no_duplicate() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap().with_token("t0k");
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Auto));
    let (subscription, first) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut first) = (subscription.unwrap(), first.unwrap());
    assert_eq!(first.after, 0);
    assert_eq!(first.offered, "edgeloop.v1, bearer.t0k");

    first.events(1..=4).await;
    let mut updates = read_events(&mut subscription, 4).await;
    drop(first); // the connection breaks: no close frame

    let reading = tokio::spawn(async move {
        let more = read_events(&mut subscription, 6).await;
        (subscription, more)
    });
    let mut second = conns.recv().await.unwrap();
    assert_eq!(second.after, 4, "resumes after the last event delivered");
    // A careless server replays from 2: the client must drop 2..=4.
    second.events(2..=7).await;
    second.close_with(4008, "slow_consumer", 4).await;
    let mut third = conns.recv().await.unwrap();
    assert_eq!(third.after, 7);
    third.events(8..=10).await;
    third.caught_up(10).await;

    let (mut subscription, more) = reading.await.unwrap();
    updates.extend(more);
    assert_eq!(seqs(&updates), (1..=10).collect::<Vec<_>>());
    let reconnects: Vec<_> = updates
        .iter()
        .filter(|u| matches!(u, Update::Reconnected { .. }))
        .cloned()
        .collect();
    assert_eq!(
        reconnects,
        [
            Update::Reconnected { after: 4 },
            Update::Reconnected { after: 7 }
        ]
    );
    let caught_up = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap();
    assert_eq!(caught_up.unwrap(), Update::CaughtUp { version: 10 });
    assert_eq!(subscription.last_seq(), 10);
}

#[tokio::test]
async fn auto_mode_acks_what_was_processed_once_idle() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap();
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Auto));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut conn) = (subscription.unwrap(), conn.unwrap());
    assert_eq!(conn.offered, "edgeloop.v1", "no token, no bearer entry");
    conn.events(1..=5).await;
    conn.caught_up(5).await;
    read_events(&mut subscription, 5).await;
    // Event 5 counts as processed once the caller asks for more; after `caught_up` nothing
    // else is coming, so the ack goes out while `next` waits.
    let waiting = tokio::spawn(async move {
        while let Ok(update) =
            tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
        {
            assert_eq!(update.unwrap(), Update::CaughtUp { version: 5 });
        }
        subscription
    });
    let mut acks = Vec::new();
    while let Some(seq) = conn.ack(Duration::from_millis(300)).await {
        acks.push(seq);
    }
    waiting.await.unwrap();
    assert_eq!(acks.last(), Some(&5), "acks: {acks:?}");
    assert!(
        acks.windows(2).all(|w| w[0] < w[1]),
        "acks only grow: {acks:?}"
    );
}

#[tokio::test]
async fn manual_mode_acks_only_what_the_caller_acked() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap();
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Manual));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut conn) = (subscription.unwrap(), conn.unwrap());
    conn.events(1..=3).await;
    read_events(&mut subscription, 3).await;
    let idle = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(idle.is_err(), "nothing more to read");
    assert_eq!(
        conn.ack(Duration::from_millis(200)).await,
        None,
        "nothing acked yet"
    );

    assert!(
        matches!(subscription.ack(4), Err(Error::InvalidArgument(_))),
        "not delivered"
    );
    subscription.ack(2).unwrap();
    let idle = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(idle.is_err());
    assert_eq!(conn.ack(Duration::from_secs(2)).await, Some(2));
}

#[tokio::test]
async fn token_expiry_is_an_error_and_a_fresh_token_resumes() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap().with_token("old");
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Auto));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut conn) = (subscription.unwrap(), conn.unwrap());
    conn.events(1..=2).await;
    read_events(&mut subscription, 2).await;
    conn.close_with(4001, "token_expired", 2).await;

    let error = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.is_token_expired(), "{error}");
    assert_eq!(error.code(), Some("token_expired"));

    subscription.set_token("new");
    let resuming = tokio::spawn(async move {
        let updates = read_events(&mut subscription, 1).await;
        (subscription, updates)
    });
    let mut conn = conns.recv().await.unwrap();
    assert_eq!(
        (conn.after, conn.offered.as_str()),
        (2, "edgeloop.v1, bearer.new")
    );
    conn.events([3]).await;
    let (_, updates) = resuming.await.unwrap();
    assert_eq!(updates[0], Update::Reconnected { after: 2 });
    assert_eq!(seqs(&updates), [3]);
}

#[tokio::test]
async fn a_protocol_violation_close_is_an_error_not_a_resume() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap();
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Auto));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, conn) = (subscription.unwrap(), conn.unwrap());
    conn.close_with(1008, "bad_request", 0).await;
    let error = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Closed { close_code: 1008, code, .. } if code == "bad_request"),
        "{error}"
    );
}

#[tokio::test]
async fn a_gap_is_refused() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap();
    let opening = client.subscribe_with("board", "b1", 0, quick_options(AckMode::Auto));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut conn) = (subscription.unwrap(), conn.unwrap());
    conn.events([1, 3]).await;
    assert_eq!(seqs(&read_events(&mut subscription, 1).await), [1]);
    let error = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&error, Error::Protocol(m) if m.contains("3")),
        "{error}"
    );
}

#[tokio::test]
async fn resuming_beyond_the_end_of_the_log_is_the_callers_error() {
    let (url, mut conns) = ws_server().await;
    let client = Client::new(&url).unwrap();
    let opening = client.subscribe_with("board", "b1", 10, quick_options(AckMode::Auto));
    let (subscription, conn) = tokio::join!(opening, conns.recv());
    let (mut subscription, mut conn) = (subscription.unwrap(), conn.unwrap());
    assert_eq!(conn.after, 10);
    conn.caught_up(3).await;
    let error = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("version 3")),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_an_api_error() {
    let unauthorized =
        json!({"error": {"code": "unauthorized", "message": "no token"}}).to_string();
    let (url, _) = http_server(vec![Step::Answer(401, &[], unauthorized)]).await;
    let client = Client::new(&url).unwrap();
    let error = client
        .subscribe_with("board", "b1", 0, quick_options(AckMode::Auto))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(401), Some("unauthorized"))
    );
}
