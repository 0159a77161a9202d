//! Live subscriptions: the WebSocket protocol of an aggregate and its flow control.
//!
//! Frames from the server are JSON text: `{"kind":"event","event":envelope}`,
//! `{"kind":"caught_up","version":V}`, and `{"kind":"error","code","message",…}` before a
//! close. The client acknowledges what it has processed with `{"kind":"ack","seq":N}`.
//!
//! Flow control does not depend on the runtime reporting a socket's send buffer (workerd
//! does not): every socket has an *acknowledgement window*. A catching-up subscriber is
//! sent at most `window` events beyond its last ack, and more as acks arrive, so a
//! replay of a long log never piles up in memory. A live subscriber whose unacknowledged
//! events would pass the window is closed with [`CLOSE_SLOW_CONSUMER`]; it reconnects with
//! `?after=<last seq it processed>` and loses nothing.
//!
//! Everything a socket needs to remember lives in its attachment, so it survives the
//! object's hibernation.

use domain::EventEnvelope;
use domain::store::{EventStore, ReadQuery};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::WebSocket;

use crate::sqlite::SqliteStore;

/// Close code: the subscriber fell more than the window behind. Resume with `after`.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: the client sent frames faster than allowed.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// Close code: the token that opened the socket has expired. Reconnect with a fresh one.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code (RFC 6455 "policy violation"): a client frame that is not an ack of a seq
/// the socket was sent.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1008;

/// What a socket remembers across hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscriber {
    /// Highest seq sent.
    pub sent: u64,
    /// Highest seq the client acknowledged.
    pub acked: u64,
    /// Whether `caught_up` was sent: live sockets get events from commits, the others
    /// from the log as they ack.
    pub live: bool,
    /// When the token behind this socket expires (Unix seconds), if it had one.
    pub expires_at: Option<u64>,
    /// Start (ms) of the current one-second window of client frames, and its count.
    pub frames_since_ms: i64,
    pub frames: u32,
}

impl Subscriber {
    pub fn new(after: u64, expires_at: Option<u64>) -> Self {
        Self {
            sent: after,
            acked: after,
            live: false,
            expires_at,
            frames_since_ms: 0,
            frames: 0,
        }
    }

    pub fn load(socket: &WebSocket) -> Option<Self> {
        socket.deserialize_attachment().ok().flatten()
    }

    pub fn save(&self, socket: &WebSocket) {
        let _ = socket.serialize_attachment(self);
    }

    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at
            .is_some_and(|exp| (now_ms / 1000) as u64 >= exp)
    }

    /// Counts one client frame; false when the per-second limit is passed.
    pub fn count_frame(&mut self, now_ms: i64, per_second: u32) -> bool {
        if now_ms - self.frames_since_ms >= 1000 {
            self.frames_since_ms = now_ms;
            self.frames = 0;
        }
        self.frames += 1;
        self.frames <= per_second
    }
}

/// A frame a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientFrame {
    Ack { seq: u64 },
}

/// `{"kind":"event","event":envelope}`, fields in the envelope's documented order.
#[derive(Serialize)]
struct EventFrame<'a> {
    kind: &'static str,
    event: &'a EventEnvelope,
}

/// The text of an event frame.
pub fn event_frame(event: &EventEnvelope) -> Option<String> {
    serde_json::to_string(&EventFrame {
        kind: "event",
        event,
    })
    .ok()
}

pub fn send_event(socket: &WebSocket, event: &EventEnvelope) {
    // Serializing our own types cannot fail; a closing socket fails to send and the
    // runtime drops it.
    if let Some(frame) = event_frame(event) {
        let _ = socket.send_with_str(frame);
    }
}

/// Sends an error frame and closes with `code`.
pub fn close_with_error(
    socket: &WebSocket,
    close_code: u16,
    code: &str,
    message: &str,
    extra: serde_json::Value,
) {
    let mut frame = json!({ "kind": "error", "code": code, "message": message });
    if let (Some(frame), Some(extra)) = (frame.as_object_mut(), extra.as_object()) {
        frame.extend(extra.clone());
    }
    let _ = socket.send_with_str(frame.to_string());
    // Close reasons are limited to 123 bytes.
    let reason: String = format!("{code}: {message}").chars().take(120).collect();
    let _ = socket.close(Some(close_code), Some(reason));
}

/// Sends a catching-up subscriber what its window allows from the log, and `caught_up`
/// once it has everything up to `version`.
pub fn pump(
    socket: &WebSocket,
    subscriber: &mut Subscriber,
    store: &SqliteStore,
    version: u64,
    window: u64,
    envelope: impl Fn(&domain::store::StoredEvent) -> EventEnvelope,
) -> Result<(), domain::store::StoreError> {
    while !subscriber.live {
        let allowed = (subscriber.acked + window)
            .min(version)
            .saturating_sub(subscriber.sent);
        if allowed > 0 {
            let page = store.read(&ReadQuery::forward(
                subscriber.sent,
                allowed.min(1000) as usize,
            ))?;
            let Some(last) = page.last() else { break };
            for event in &page {
                send_event(socket, &envelope(event));
            }
            subscriber.sent = last.seq;
        }
        if subscriber.sent >= version {
            let _ = socket
                .send_with_str(json!({ "kind": "caught_up", "version": version }).to_string());
            subscriber.live = true;
        } else if allowed == 0 {
            break; // the window is full: wait for an ack
        }
    }
    Ok(())
}
