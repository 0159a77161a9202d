//! The runtime side of the feed engine: carrying out a [`Feed`]'s actions on a
//! hibernating WebSocket, and keeping the feed in the socket's attachment.
//!
//! Every object with sockets holds one [`Feeds`]: the attachments written through, and
//! read back from memory. A broadcast to 1,000 sockets used to deserialize 1,000
//! attachments, and every alarm read them all again to close expired tokens
//! (bench/where-the-time-goes.md, item 16).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use wasm_bindgen::JsValue;
use worker::{State, WebSocket, WebSocketIncomingMessage};

use crate::feed::{Action, ExpiryWatch, Feed};

/// One object instance's feeds: each socket's [`Feed`] as its attachment holds it.
///
/// The attachment is the durable copy (it survives hibernation, which drops this
/// instance and with it the cache); every save writes it first, then the cache. So the
/// cache never holds what the attachment does not, and a fresh instance starts from the
/// attachments. Sockets are told apart by a `WeakMap` from the runtime's socket object
/// (the same object for as long as the instance lives) to a number.
pub struct Feeds {
    ids: js_sys::WeakMap,
    cache: RefCell<HashMap<u32, Feed>>,
    next_id: Cell<u32>,
    expiry: Cell<ExpiryWatch>,
}

impl Default for Feeds {
    fn default() -> Self {
        Self {
            ids: js_sys::WeakMap::new(),
            cache: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            expiry: Cell::new(ExpiryWatch::default()),
        }
    }
}

impl Feeds {
    fn key(socket: &WebSocket) -> &js_sys::Object {
        wasm_bindgen::JsCast::unchecked_ref(socket.as_ref())
    }

    /// The socket's number in the cache, if this instance has given it one.
    fn id(&self, socket: &WebSocket) -> Option<u32> {
        self.ids.get(Self::key(socket)).as_f64().map(|n| n as u32)
    }

    /// Caches `feed` as the socket's, numbering the socket if it has no number yet.
    fn remember(&self, socket: &WebSocket, feed: &Feed) -> u32 {
        let id = self.id(socket).unwrap_or_else(|| {
            let id = self.next_id.get();
            self.next_id.set(id.wrapping_add(1));
            self.ids.set(Self::key(socket), &JsValue::from(id));
            id
        });
        self.cache.borrow_mut().insert(id, feed.clone());
        id
    }

    /// The socket's feed and its number: from the cache, else from its attachment.
    fn cached(&self, socket: &WebSocket) -> Option<(u32, Feed)> {
        if let Some(id) = self.id(socket)
            && let Some(feed) = self.cache.borrow().get(&id)
        {
            return Some((id, feed.clone()));
        }
        let feed: Feed = socket.deserialize_attachment().ok().flatten()?;
        Some((self.remember(socket, &feed), feed))
    }

    /// The feed a socket carries, if it was accepted with one.
    pub fn load(&self, socket: &WebSocket) -> Option<Feed> {
        self.cached(socket).map(|(_, feed)| feed)
    }

    /// Stores the feed in the socket's attachment (it survives hibernation), then in the
    /// cache.
    pub fn save(&self, socket: &WebSocket, feed: &Feed) {
        if socket.serialize_attachment(feed).is_ok() {
            let _ = self.remember(socket, feed);
        } else if let Some(id) = self.id(socket) {
            self.cache.borrow_mut().remove(&id); // the next load reads the attachment
        }
        let mut expiry = self.expiry.get();
        expiry.saw(feed);
        self.expiry.set(expiry);
    }

    /// Saves the feed *before* carrying out its actions (so
    /// a close is recorded before the close frame leaves), then carries them out.
    pub fn save_and_apply(&self, socket: &WebSocket, feed: &Feed, actions: Vec<Action>) {
        self.save(socket, feed);
        apply(socket, actions);
    }

    /// The sockets that can still receive, with their feeds. The runtime also lists sockets
    /// whose close handshake is pending; those are closed feeds and are left out, so limits
    /// and fan-out count only open ones. Forgets the cached feeds of sockets the runtime
    /// no longer lists once they outnumber the listed ones.
    pub fn open_feeds(&self, state: &State) -> Vec<(WebSocket, Feed)> {
        let sockets = state.get_websockets();
        let listed = sockets.len();
        let mut seen = Vec::with_capacity(listed);
        let open = sockets
            .into_iter()
            .filter_map(|socket| {
                let (id, feed) = self.cached(&socket)?;
                seen.push(id);
                feed.is_open().then_some((socket, feed))
            })
            .collect();
        let mut cache = self.cache.borrow_mut();
        if cache.len() > 2 * listed + 16 {
            let seen: std::collections::HashSet<u32> = seen.into_iter().collect();
            cache.retain(|id, _| seen.contains(id));
        }
        open
    }

    /// Closes every open feed whose token expired by `now_ms` (4001); returns the earliest
    /// expiry among the others (Unix seconds), for the next alarm. Reads the feeds only
    /// when one can be due ([`ExpiryWatch`]).
    pub fn close_expired(&self, state: &State, now_ms: i64) -> Option<u64> {
        if let Some(earliest) = self.expiry.get().skip_scan(now_ms) {
            return earliest;
        }
        let mut next: Option<u64> = None;
        for (socket, mut feed) in self.open_feeds(state) {
            let actions = feed.on_tick(now_ms);
            if actions.is_empty() {
                if let Some(expires_at) = feed.expires_at {
                    next = Some(next.map_or(expires_at, |n| n.min(expires_at)));
                }
            } else {
                self.save_and_apply(&socket, &feed, actions);
            }
        }
        let mut expiry = self.expiry.get();
        expiry.scanned(next);
        self.expiry.set(expiry);
        next
    }

    /// The client closed: its feed is closed (the slot is free) and the closing handshake
    /// is completed (the socket may already be gone).
    pub fn closed_by_client(&self, socket: &WebSocket, code: usize, reason: String) {
        if let Some(mut feed) = self.load(socket) {
            feed.on_client_close();
            self.save(socket, &feed);
        }
        let code = u16::try_from(code)
            .ok()
            .filter(|c| *c == 1000 || (3000..5000).contains(c))
            .unwrap_or(1000);
        let _ = socket.close(Some(code), Some(reason));
    }

    /// The runtime reported a socket error: close it as our fault (1011).
    pub fn failed(&self, socket: &WebSocket) {
        if let Some(mut feed) = self.load(socket) {
            let actions = feed.close_internal();
            self.save_and_apply(socket, &feed, actions);
        }
    }
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

/// A client frame's text; `None` for a binary frame (which the feed engine refuses).
pub fn frame_text(message: WebSocketIncomingMessage) -> Option<String> {
    match message {
        WebSocketIncomingMessage::String(text) => Some(text),
        WebSocketIncomingMessage::Binary(_) => None,
    }
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
