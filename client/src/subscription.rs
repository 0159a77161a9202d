//! [`Subscription`]: a live subscription to one aggregate that acknowledges what the
//! caller processed, reconnects after a drop and resumes where it left off — the caller
//! sees every event once, in order, with no gap and no duplicate.
//!
//! The protocol (README, "WebSocket"): `?after=N` replays every event with seq > N, then
//! `{"kind":"caught_up","version":V}`, then live events. The server never has more than its
//! acknowledgement window of unacknowledged events in flight: catch-up waits for acks, and
//! a live subscriber that falls further behind is closed with 4008 and must resume.
//!
//! The pure parts — [`Cursor`] (what was delivered: dedupe and gap checks), [`Acker`]
//! (when an ack is due) and [`resumable`] (which closes to ride out) — hold every decision
//! and are unit-tested without a socket.

use std::time::Duration;

use domain::EventEnvelope;
use futures_util::StreamExt;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::retry::{self, Failure, RetryPolicy};
use crate::socket::{self, Frame, PROTOCOL, Socket, Upgrade, ack_frame, close};
use crate::{Client, Error};

/// Who says an event has been processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// An event counts as processed when the caller asks for the next update.
    #[default]
    Auto,
    /// Only what the caller passes to [`Subscription::ack`] counts as processed. The server
    /// sends at most its window of events beyond that, so a caller that hands events to
    /// slower work can hold the stream back until the work is done.
    Manual,
}

/// How a [`Subscription`] acknowledges and reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    pub ack: AckMode,
    /// Getting a connection back after a drop: attempts and time per outage. Also used for
    /// the first connection.
    pub reconnect: RetryPolicy,
    /// Acknowledge at least every this many processed events, even while more keep
    /// arriving. Keep it under the server's window (`WS_ACK_WINDOW`, default 1000).
    pub ack_every: u64,
    /// Send at most one ack per interval. The server closes a socket sending more than
    /// `WS_MAX_FRAMES_PER_SECOND` (default 200) frames a second; 50 ms means 20 at most.
    pub ack_interval: Duration,
    /// After this long without a frame, ping the server; without an answer within the
    /// same time again, treat the connection as dead and reconnect. `None` never pings
    /// (a silently dead connection then waits for the OS to notice).
    pub keepalive: Option<Duration>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            ack: AckMode::Auto,
            reconnect: RetryPolicy {
                max_attempts: 10,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                max_elapsed: Duration::from_secs(60),
            },
            ack_every: 100,
            ack_interval: Duration::from_millis(50),
            keepalive: Some(Duration::from_secs(30)),
        }
    }
}

/// What [`Subscription::next`] hands over.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// The next event: its `seq` is exactly one above the previous one's.
    Event(Box<EventEnvelope>),
    /// Every event up to `version` has been delivered; what follows is live. Sent again
    /// after every reconnect.
    CaughtUp { version: u64 },
    /// The connection dropped and a new one resumed after the last delivered event,
    /// `after` (nothing is lost or repeated; informational).
    Reconnected { after: u64 },
}

impl Client {
    /// Subscribes to the aggregate `aggregate_type`/`id` from `after` (0 = from the start:
    /// every event, then live ones), with [`SubscribeOptions::default`]: auto-ack,
    /// reconnecting on drops.
    ///
    /// Authenticates with the subprotocols `edgeloop.v1` and `bearer.<token>`, so the
    /// token stays out of URLs and logs. Subscribing to an aggregate without events yet is
    /// fine (it catches up at version 0).
    ///
    /// Errors: as [`Client::command`] for the upgrade: 401/403/404 [`Error::Api`];
    /// [`Error::GaveUp`] when no connection could be made within the reconnect policy.
    pub async fn subscribe(
        &self,
        aggregate_type: &str,
        id: &str,
        after: u64,
    ) -> Result<Subscription, Error> {
        self.subscribe_with(aggregate_type, id, after, SubscribeOptions::default())
            .await
    }

    /// As [`Client::subscribe`], with options.
    pub async fn subscribe_with(
        &self,
        aggregate_type: &str,
        id: &str,
        after: u64,
        options: SubscribeOptions,
    ) -> Result<Subscription, Error> {
        let mut subscription = Subscription {
            client: self.clone(),
            aggregate_type: aggregate_type.to_owned(),
            id: id.to_owned(),
            cursor: Cursor::new(after),
            acker: Acker::new(after, options.ack_every, options.ack_interval),
            options,
            socket: None,
            closing: None,
            last_heard: Instant::now(),
            ping_sent: None,
            fruitless: 0,
        };
        subscription.connect().await?;
        Ok(subscription)
    }
}

/// A live subscription to one aggregate. See [`Client::subscribe`].
///
/// Call [`Subscription::next`] in a loop. Within one `Subscription` every event is handed
/// over exactly once and in `seq` order, across any number of reconnects; to resume in
/// another process, keep the last `seq` you processed and subscribe with it as `after`.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    aggregate_type: String,
    id: String,
    options: SubscribeOptions,
    socket: Option<Box<Socket>>,
    cursor: Cursor,
    acker: Acker,
    /// The error frame that announced the close in progress: `(code, message)`.
    closing: Option<(String, String)>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    /// Connections in a row that ended without delivering a frame.
    fruitless: u32,
}

/// What one read of the socket came to.
enum Received {
    Text(String),
    /// The connection ended in a way a resume fixes.
    Dropped,
    /// The server closed for a reason a resume cannot fix.
    Closed(Error),
}

impl Subscription {
    /// The next update: an event, a caught-up mark, or a note that the connection was
    /// re-established. Waits as long as it takes (wrap it in `tokio::time::timeout` to
    /// bound the wait); cancel-safe — dropping the future loses and repeats nothing.
    ///
    /// In [`AckMode::Auto`], calling `next` marks every event handed over so far as
    /// processed. Acks go out batched: when the socket goes idle or every
    /// `ack_every` events, at most one per `ack_interval`.
    ///
    /// Errors: [`Error::Closed`] when the server closed for a reason a reconnect cannot fix
    /// (4001 token expired: [`Subscription::set_token`], then call `next` again; 1008,
    /// 4029); [`Error::GaveUp`] (or the refusal, e.g. a 401) when reconnecting failed;
    /// [`Error::Protocol`] when the server skipped an event; [`Error::InvalidArgument`] when
    /// the log ends below the `after` subscribed with; [`Error::Decode`] for a frame
    /// that is not the protocol's. After an error, `next` may be called again: it
    /// reconnects from the last delivered event.
    pub async fn next(&mut self) -> Result<Update, Error> {
        if self.options.ack == AckMode::Auto {
            self.acker.processed(self.cursor.last());
        }
        loop {
            if self.socket.is_none() {
                let after = self.cursor.last();
                self.reconnect().await?;
                return Ok(Update::Reconnected { after });
            }
            let text = match self.receive().await {
                Received::Text(text) => text,
                Received::Dropped => {
                    self.socket = None;
                    continue;
                }
                Received::Closed(error) => {
                    self.socket = None;
                    return Err(error);
                }
            };
            self.fruitless = 0;
            match Frame::parse(&text)? {
                Frame::Event { event } => match self.cursor.admit(event.seq) {
                    Admit::Deliver => return Ok(Update::Event(event)),
                    Admit::Duplicate => continue,
                    Admit::Gap { expected, got } => {
                        self.socket = None;
                        return Err(Error::Protocol(format!(
                            "event {got} arrived where {expected} was due"
                        )));
                    }
                },
                Frame::CaughtUp { version } => {
                    let last = self.cursor.last();
                    if version < last {
                        // Logs only grow: the resume point was never part of this log.
                        self.socket = None;
                        return Err(Error::InvalidArgument(format!(
                            "the aggregate is at version {version}, below the seq {last} this \
                             subscription resumes after (is `after` right?)"
                        )));
                    }
                    if version > last {
                        self.socket = None;
                        return Err(Error::Protocol(format!(
                            "caught up at version {version}, but only up to {last} was sent"
                        )));
                    }
                    return Ok(Update::CaughtUp { version });
                }
                Frame::Error { code, message, .. } => self.closing = Some((code, message)),
                _ => continue,
            }
        }
    }

    /// The next event, skipping caught-up marks and reconnect notes.
    pub async fn next_event(&mut self) -> Result<EventEnvelope, Error> {
        loop {
            if let Update::Event(event) = self.next().await? {
                return Ok(*event);
            }
        }
    }

    /// Marks every event up to `seq` as processed (the ack goes out with the next batch,
    /// from [`Subscription::next`]). Needed in [`AckMode::Manual`]; harmless in `Auto`.
    ///
    /// Errors: [`Error::InvalidArgument`] for a `seq` not yet delivered (the server would
    /// close the socket for it).
    pub fn ack(&mut self, seq: u64) -> Result<(), Error> {
        if seq > self.cursor.last() {
            return Err(Error::InvalidArgument(format!(
                "ack of seq {seq}, but only up to {} was delivered",
                self.cursor.last()
            )));
        }
        self.acker.processed(seq);
        Ok(())
    }

    /// The `seq` of the last event handed over (the `after` a resume starts from).
    pub fn last_seq(&self) -> u64 {
        self.cursor.last()
    }

    /// Uses `token` from the next (re)connection on — after a 4001 `token_expired`, for one.
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.client = self.client.clone().with_token(token);
    }

    /// Whether a connection is open right now.
    pub fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// Closes the connection politely (unsent acks are not flushed).
    pub async fn close(mut self) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
    }

    /// A new connection after a drop: backs off first when the previous ones opened but
    /// delivered nothing, and gives up after `reconnect.max_attempts` such connections in a
    /// row. (Failing to connect at all is the reconnect policy's business, in `connect`.)
    async fn reconnect(&mut self) -> Result<(), Error> {
        let policy = self.options.reconnect;
        if self.fruitless > 0 {
            if self.fruitless >= policy.max_attempts {
                return Err(Error::GaveUp {
                    attempts: self.fruitless,
                    elapsed: self.last_heard.elapsed(),
                    idempotency_key: None,
                    last: Box::new(Error::network(
                        "every connection ended before the server sent a frame",
                    )),
                });
            }
            tokio::time::sleep(policy.backoff(self.fruitless, fastrand::f64())).await;
        }
        self.connect().await?;
        // Counts until the new connection delivers a frame (then `next` resets it).
        self.fruitless += 1;
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), Error> {
        let after = self.cursor.last();
        let url = self.client.endpoint(
            &["v1", "aggregates", &self.aggregate_type, &self.id, "ws"],
            &[("after", after.to_string())],
        );
        let url = socket::ws_url(url.as_str());
        let protocols = match self.client.token() {
            Some(token) => format!("{PROTOCOL}, bearer.{token}"),
            None => PROTOCOL.to_owned(),
        };
        let headers = [("sec-websocket-protocol".to_owned(), protocols)];
        let timeout = self.client.request_timeout();
        let (url, headers) = (&url, &headers);
        let socket = retry::run(self.options.reconnect, None, |remaining| async move {
            match socket::connect(url, headers, timeout.min(remaining)).await? {
                Upgrade::Accepted(socket) => Ok(socket),
                Upgrade::Refused(reply) => Err(Failure {
                    retry_after: reply.retry_after(),
                    error: Error::from_answer(reply.status, &reply.body),
                }),
            }
        })
        .await?;
        self.socket = Some(socket);
        self.acker.reset(after);
        self.closing = None;
        self.last_heard = Instant::now();
        self.ping_sent = None;
        Ok(())
    }

    /// Reads until a text frame, a drop or a close, sending acks and keepalive pings as
    /// they fall due.
    async fn receive(&mut self) -> Received {
        loop {
            let now = Instant::now();
            let ack = self.acker.due(now);
            if let Some((at, true)) = ack
                && at <= now
            {
                if self.send_ack().await.is_err() {
                    return Received::Dropped;
                }
                continue;
            }
            let ping_at = self
                .options
                .keepalive
                .map(|every| self.ping_sent.unwrap_or(self.last_heard) + every);
            // Timers that are off wait for a year: select! still needs a future.
            let never = now + Duration::from_secs(365 * 24 * 3600);
            let Some(socket) = self.socket.as_mut() else {
                return Received::Dropped;
            };
            tokio::select! {
                // Frames first: an ack that is merely idle-triggered waits while frames flow.
                biased;
                message = socket.stream.next() => {
                    self.last_heard = Instant::now();
                    self.ping_sent = None;
                    match message {
                        None | Some(Err(_)) => return Received::Dropped,
                        Some(Ok(Message::Text(text))) => return Received::Text(text.as_str().to_owned()),
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                                .unwrap_or((1005, String::new()));
                            return self.closed(code, reason);
                        }
                        // Pings are answered by tungstenite; pongs only prove liveness.
                        Some(Ok(_)) => continue,
                    }
                }
                () = sleep_until(ack.map_or(never, |(at, _)| at)), if ack.is_some() => {
                    if self.send_ack().await.is_err() {
                        return Received::Dropped;
                    }
                }
                () = sleep_until(ping_at.unwrap_or(never)), if ping_at.is_some() => {
                    if self.ping_sent.is_some() {
                        // No answer to the last ping either: the connection is gone.
                        return Received::Dropped;
                    }
                    self.ping_sent = Some(Instant::now());
                    let Some(socket) = self.socket.as_mut() else { return Received::Dropped };
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Received::Dropped;
                    }
                }
            }
        }
    }

    async fn send_ack(&mut self) -> Result<(), Error> {
        let Some(socket) = self.socket.as_mut() else {
            return Ok(());
        };
        let seq = self.acker.pending();
        socket.send(Message::text(ack_frame(seq))).await?;
        self.acker.sent(seq, Instant::now());
        Ok(())
    }

    fn closed(&mut self, close_code: u16, reason: String) -> Received {
        if resumable(close_code) {
            return Received::Dropped;
        }
        let (code, message) = self
            .closing
            .take()
            .unwrap_or_else(|| (String::new(), reason));
        Received::Closed(Error::Closed {
            close_code,
            code,
            message,
        })
    }
}

/// Whether a close is one to resume after: the server going away or restarting (1000,
/// 1001, 1005 no code, 1006 no close frame, 1012, 1013), its own failure (1011), or the
/// subscriber falling behind (4008). Others (4001 token expired, 1008 bad frame, 4029 too
/// many frames, anything unknown) would fail again the same way.
pub(crate) fn resumable(close_code: u16) -> bool {
    matches!(
        close_code,
        1000 | 1001 | 1005 | 1006 | close::INTERNAL | 1012 | 1013 | close::SLOW_CONSUMER
    )
}

/// What a subscription has handed over: the last `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    last: u64,
}

/// What to do with an arriving event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The next one: hand it over.
    Deliver,
    /// Already handed over (a resume may replay what an earlier connection delivered).
    Duplicate,
    /// Events are missing between the last one and this.
    Gap { expected: u64, got: u64 },
}

impl Cursor {
    pub(crate) fn new(after: u64) -> Self {
        Self { last: after }
    }

    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    pub(crate) fn admit(&mut self, seq: u64) -> Admit {
        if seq <= self.last {
            Admit::Duplicate
        } else if seq == self.last + 1 {
            self.last = seq;
            Admit::Deliver
        } else {
            Admit::Gap {
                expected: self.last + 1,
                got: seq,
            }
        }
    }
}

/// When to acknowledge: what was processed, what the server has been told, and how often
/// it may be told.
#[derive(Debug, Clone)]
pub(crate) struct Acker {
    processed: u64,
    acked: u64,
    last_sent: Option<Instant>,
    every: u64,
    interval: Duration,
}

impl Acker {
    pub(crate) fn new(after: u64, every: u64, interval: Duration) -> Self {
        Self {
            processed: after,
            acked: after,
            last_sent: None,
            every: every.max(1),
            interval,
        }
    }

    /// Everything up to `seq` is processed.
    pub(crate) fn processed(&mut self, seq: u64) {
        self.processed = self.processed.max(seq);
    }

    /// A new connection from `after`: the server counts `after` as acknowledged, and
    /// nothing was sent on this connection yet. (An ack below `after` would be redundant,
    /// never blind: the server takes acks up to what it sent or was told to skip.)
    pub(crate) fn reset(&mut self, after: u64) {
        self.acked = after;
        self.last_sent = None;
    }

    /// The seq an ack sent now would carry.
    pub(crate) fn pending(&self) -> u64 {
        self.processed
    }

    /// When the next ack may go out, and whether it is due regardless of incoming frames
    /// (`ack_every` reached); `None` when there is nothing new to acknowledge.
    pub(crate) fn due(&self, now: Instant) -> Option<(Instant, bool)> {
        if self.processed <= self.acked {
            return None;
        }
        let earliest = match self.last_sent {
            Some(sent) => (sent + self.interval).max(now),
            None => now,
        };
        Some((earliest, self.processed - self.acked >= self.every))
    }

    pub(crate) fn sent(&mut self, seq: u64, now: Instant) {
        self.acked = self.acked.max(seq);
        self.last_sent = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_delivers_in_order_and_drops_replays() {
        let mut cursor = Cursor::new(3);
        assert_eq!(cursor.admit(4), Admit::Deliver);
        assert_eq!(cursor.admit(5), Admit::Deliver);
        // A resume from an older point replays 2..=5: all already delivered.
        for seq in 2..=5 {
            assert_eq!(cursor.admit(seq), Admit::Duplicate, "{seq}");
        }
        assert_eq!(cursor.admit(6), Admit::Deliver);
        assert_eq!(cursor.last(), 6);
    }

    #[test]
    fn the_cursor_refuses_a_gap_and_stays_put() {
        let mut cursor = Cursor::new(0);
        assert_eq!(cursor.admit(1), Admit::Deliver);
        assert_eq!(
            cursor.admit(3),
            Admit::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(cursor.last(), 1, "a gap delivers nothing");
        assert_eq!(cursor.admit(2), Admit::Deliver);
    }

    #[test]
    fn resumable_closes_are_the_ones_a_reconnect_fixes() {
        for code in [1000, 1001, 1005, 1006, 1011, 1012, 1013, 4008] {
            assert!(resumable(code), "{code}");
        }
        for code in [1002, 1003, 1007, 1008, 1009, 4001, 4029, 4000, 4999] {
            assert!(!resumable(code), "{code}");
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nothing_processed_means_no_ack() {
        let now = Instant::now();
        let mut acker = Acker::new(10, 100, 50 * MS);
        assert_eq!(acker.due(now), None);
        acker.processed(7);
        assert_eq!(
            acker.due(now),
            None,
            "below the resume point is already acknowledged"
        );
    }

    #[test]
    fn an_ack_is_due_at_once_then_throttled_by_the_interval() {
        let now = Instant::now();
        let mut acker = Acker::new(0, 100, 50 * MS);
        acker.processed(1);
        assert_eq!(
            acker.due(now),
            Some((now, false)),
            "idle-triggered, immediately"
        );
        acker.sent(1, now);
        assert_eq!(acker.due(now), None);
        acker.processed(2);
        assert_eq!(acker.due(now + 10 * MS), Some((now + 50 * MS, false)));
        assert_eq!(acker.due(now + 80 * MS), Some((now + 80 * MS, false)));
    }

    #[test]
    fn every_n_processed_events_the_ack_is_urgent() {
        let now = Instant::now();
        let mut acker = Acker::new(0, 3, 50 * MS);
        acker.processed(2);
        assert_eq!(acker.due(now).map(|d| d.1), Some(false));
        acker.processed(3);
        assert_eq!(acker.due(now), Some((now, true)));
        acker.sent(acker.pending(), now);
        acker.processed(6);
        assert_eq!(
            acker.due(now),
            Some((now + 50 * MS, true)),
            "urgent, still throttled"
        );
    }

    #[test]
    fn throttled_acks_stay_far_below_the_servers_frame_limit() {
        // However events arrive, acks are at least `interval` apart: 50 ms → ≤ 20/s.
        let start = Instant::now();
        let mut acker = Acker::new(0, 1, 50 * MS);
        let mut sent = Vec::new();
        for ms in 0..1000u64 {
            let now = start + Duration::from_millis(ms);
            acker.processed(ms + 1);
            if let Some((at, _)) = acker.due(now)
                && at <= now
            {
                acker.sent(acker.pending(), now);
                sent.push(ms);
            }
        }
        assert!(sent.len() <= 20, "{} acks in a second", sent.len());
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= 50));
    }

    #[test]
    fn a_reconnect_counts_the_resume_point_as_acknowledged() {
        let now = Instant::now();
        let mut acker = Acker::new(0, 100, 50 * MS);
        acker.processed(4);
        acker.sent(4, now);
        acker.processed(5);
        // Delivered up to 9 (manual mode: processed only 5); resumed after 9.
        acker.reset(9);
        assert_eq!(acker.due(now), None, "no ack at or below the resume point");
        acker.processed(10);
        assert_eq!(
            acker.due(now),
            Some((now, false)),
            "no throttle carried over"
        );
    }
}
