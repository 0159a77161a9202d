//! The runtime side of the feed engine: carrying out a [`Feed`]'s actions on a
//! hibernating WebSocket, and keeping the feed in the socket's attachment.

use worker::{State, WebSocket, WebSocketIncomingMessage};

use crate::feed::{Action, Feed};

/// The feed a socket carries, if it was accepted with one.
pub fn load(socket: &WebSocket) -> Option<Feed> {
    socket.deserialize_attachment().ok().flatten()
}

/// Stores the feed in the socket's attachment (it survives hibernation).
pub fn save(socket: &WebSocket, feed: &Feed) {
    let _ = socket.serialize_attachment(feed);
}

/// Carries out actions in order. Sending to a socket that is going away fails; the
/// runtime drops it, so the failure is ignored.
pub fn apply(socket: &WebSocket, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Send(text) => {
                let _ = socket.send_with_str(text);
            }
            Action::Close { code, reason } => {
                let _ = socket.close(Some(code), Some(reason));
            }
        }
    }
}

/// Saves the feed *before* carrying out its actions (so
/// a close is recorded before the close frame leaves), then carries them out.
pub fn save_and_apply(socket: &WebSocket, feed: &Feed, actions: Vec<Action>) {
    save(socket, feed);
    apply(socket, actions);
}

/// The sockets that can still receive, with their feeds. The runtime also lists sockets
/// whose close handshake is pending; those are closed feeds and are left out, so limits
/// and fan-out count only open ones.
pub fn open_feeds(state: &State) -> Vec<(WebSocket, Feed)> {
    state
        .get_websockets()
        .into_iter()
        .filter_map(|socket| {
            let feed = load(&socket)?;
            feed.is_open().then_some((socket, feed))
        })
        .collect()
}

/// A client frame's text; `None` for a binary frame (which the feed engine refuses).
pub fn frame_text(message: WebSocketIncomingMessage) -> Option<String> {
    match message {
        WebSocketIncomingMessage::String(text) => Some(text),
        WebSocketIncomingMessage::Binary(_) => None,
    }
}

/// The client closed: its feed is closed (the slot is free) and the closing handshake is
/// completed (the socket may already be gone).
pub fn closed_by_client(socket: &WebSocket, code: usize, reason: String) {
    if let Some(mut feed) = load(socket) {
        feed.on_client_close();
        save(socket, &feed);
    }
    let code = u16::try_from(code)
        .ok()
        .filter(|c| *c == 1000 || (3000..5000).contains(c))
        .unwrap_or(1000);
    let _ = socket.close(Some(code), Some(reason));
}

/// The runtime reported a socket error: close it as our fault (1011).
pub fn failed(socket: &WebSocket) {
    if let Some(mut feed) = load(socket) {
        let actions = feed.close_internal();
        save_and_apply(socket, &feed, actions);
    }
}

/// Closes every open feed whose token expired by `now_ms` (4001); returns the earliest
/// expiry among the others (Unix seconds), for the next alarm.
pub fn close_expired(state: &State, now_ms: i64) -> Option<u64> {
    let mut next: Option<u64> = None;
    for (socket, mut feed) in open_feeds(state) {
        let actions = feed.on_tick(now_ms);
        if actions.is_empty() {
            if let Some(expires_at) = feed.expires_at {
                next = Some(next.map_or(expires_at, |n| n.min(expires_at)));
            }
        } else {
            save_and_apply(&socket, &feed, actions);
        }
    }
    next
}

/// Makes sure the object's alarm fires by `at_ms` (Unix ms): never moves a sooner one later.
pub async fn alarm_by(state: &State, at_ms: i64) {
    let storage = state.storage();
    let current = storage.get_alarm().await.ok().flatten();
    if current.is_none_or(|current| current > at_ms) {
        let _ = storage.set_alarm(crate::clock::at_unix_ms(at_ms)).await;
    }
}

/// Unix seconds as Unix ms, within the range the runtime represents exactly.
pub fn secs_to_ms(unix_secs: u64) -> i64 {
    unix_secs
        .saturating_mul(1000)
        .min(crate::params::MAX_SAFE_INTEGER) as i64
}
