//! Commit → visible: how long after a command starts its effect can be seen on each path a
//! reader has — the aggregate's own socket, the partition's socket (the global stream), a
//! read-model document's socket, and a read with the command's consistency token.
//!
//! One command at a time on a fresh board, timed from the start of the POST to the frame
//! (or answer) that shows it, as the first table's push latency is. Sockets are driven raw
//! (no SDK) and acknowledge every [`ACK_EVERY`] frames: the server closes a socket that
//! sends more than `WS_MAX_FRAMES_PER_SECOND` (200) frames a second, and a command every
//! 2–3 ms would ack faster than that if it acked each frame.

use std::time::{Duration, Instant};

use client::Socket;
use client::reqwest::Method;
use serde_json::{Value, json};

use crate::measure::Stats;
use crate::session::{Session, add_card, create_board, next_frame};

/// Frames per acknowledgement: far inside the ack window (1000) and the frame rate limit.
const ACK_EVERY: u64 = 20;

/// The aggregate's socket: `event` frames with `seq`, acked with `{"kind":"ack","seq":N}`.
pub async fn aggregate_socket(session: &Session, id: &str, n: usize) -> Stats {
    session.command(id, &create_board("visible")).await;
    let mut socket = session
        .socket(&format!("/v1/aggregates/board/{id}/ws?after=1"))
        .await;
    let frame = next_frame(&mut socket).await;
    assert_eq!(frame["kind"], "caught_up", "{frame}");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let seq = i as u64 + 2;
        let body = add_card(&format!("a{i}"));
        let started = Instant::now();
        let (_, arrived) = tokio::join!(session.command(id, &body), async {
            loop {
                let frame = next_frame(&mut socket).await;
                if frame["kind"] == "event" && frame["event"]["seq"] == seq {
                    return started.elapsed();
                }
                assert_ne!(frame["kind"], "error", "{frame}");
            }
        });
        samples.push(arrived);
        if seq.is_multiple_of(ACK_EVERY) {
            ack(&mut socket, json!({ "kind": "ack", "seq": seq })).await;
        }
    }
    socket.close().await;
    Stats::of(samples)
}

/// The partition's socket (`/v1/stream/ws`): the event is visible in the global stream.
/// Frames carry the envelope with its position; acked with `{"kind":"ack","offset":N}`.
pub async fn stream_socket(session: &Session, partition: u32, id: &str, n: usize) -> Stats {
    session.command(id, &create_board("visible")).await;
    let head = session
        .client
        .partitions()
        .await
        .expect("partitions")
        .iter()
        .find(|p| p.partition == partition)
        .expect("the partition exists")
        .head;
    let mut socket = session
        .socket(&format!("/v1/stream/ws?partition={partition}&after={head}"))
        .await;
    let mut frames = 0u64;
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["kind"] == "caught_up" {
            break;
        }
        frames += 1;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let card = format!("s{i}");
        let body = add_card(&card);
        let started = Instant::now();
        let (_, (arrived, offset)) = tokio::join!(session.command(id, &body), async {
            loop {
                let frame = next_frame(&mut socket).await;
                assert_ne!(frame["kind"], "error", "{frame}");
                if frame["kind"] != "event" {
                    continue;
                }
                frames += 1;
                let event = &frame["event"];
                if event["aggregate_id"] == id && event["data"]["card_id"] == card.as_str() {
                    let offset = event["position"]["offset"].as_u64().expect("an offset");
                    return (started.elapsed(), offset);
                }
            }
        });
        samples.push(arrived);
        if frames >= ACK_EVERY {
            frames = 0;
            ack(&mut socket, json!({ "kind": "ack", "offset": offset })).await;
        }
    }
    socket.close().await;
    Stats::of(samples)
}

/// A read-model document's socket (`/v1/projections/board_summary/{id}/ws`): the command
/// is visible once a `document` frame has `body.version` at the command's version. Acked
/// with `{"kind":"ack","revision":N}`.
pub async fn document_socket(session: &Session, id: &str, n: usize) -> Stats {
    session.command(id, &create_board("visible")).await;
    wait_for_document(session, id).await;
    let mut socket = session
        .socket(&format!("/v1/projections/board_summary/{id}/ws"))
        .await;
    let mut frames = 0u64;
    let mut revision = 0;
    loop {
        let frame = next_frame(&mut socket).await;
        if frame["kind"] == "caught_up" {
            break;
        }
        revision = frame["revision"].as_u64().unwrap_or(revision);
        frames += 1;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let version = i as u64 + 2;
        let body = add_card(&format!("d{i}"));
        let started = Instant::now();
        let (_, arrived) = tokio::join!(session.command(id, &body), async {
            loop {
                let frame = next_frame(&mut socket).await;
                assert_ne!(frame["kind"], "error", "{frame}");
                if frame["kind"] != "document" {
                    continue;
                }
                frames += 1;
                revision = frame["revision"].as_u64().expect("a revision");
                if frame["body"]["version"].as_u64() >= Some(version) {
                    return started.elapsed();
                }
            }
        });
        samples.push(arrived);
        if frames >= ACK_EVERY {
            frames = 0;
            ack(&mut socket, json!({ "kind": "ack", "revision": revision })).await;
        }
    }
    socket.close().await;
    Stats::of(samples)
}

/// A command, then `GET /v1/projections/board_summary/{id}?consistency=<its token>`, which
/// waits until the read model holds the command: read-your-writes, timed from the POST's
/// start to the read's answer.
pub async fn read_your_writes(session: &Session, id: &str, n: usize) -> Stats {
    session.command(id, &create_board("visible")).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let (_, answer) = session
            .command_answer(id, &add_card(&format!("r{i}")))
            .await;
        let token = answer["consistency_token"].as_str().expect("a token");
        let document = session
            .ok(
                Method::GET,
                &format!("/v1/projections/board_summary/{id}?consistency={token}"),
            )
            .await;
        samples.push(started.elapsed());
        assert!(
            document["body"]["version"].as_u64() >= answer["version"].as_u64(),
            "a consistent read missed its command: {document}"
        );
    }
    Stats::of(samples)
}

/// Polls until the board's read-model document exists (a socket on a document that does
/// not exist yet would start with no snapshot).
async fn wait_for_document(session: &Session, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = session
            .client
            .get(&format!("/v1/projections/board_summary/{id}"))
            .await
            .expect("a document read");
        if reply.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no document for {id}: {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ack(socket: &mut Socket, frame: Value) {
    socket
        .send_text(&frame.to_string())
        .await
        .expect("ack sent");
}
