//! The runtime side of the feed engine: carrying out a [`Feed`]'s actions on a
//! hibernating WebSocket, and keeping the feed in the socket's attachment.

use worker::{State, WebSocket};

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
