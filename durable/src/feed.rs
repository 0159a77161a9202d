//! The feed engine: the one catch-up → `caught_up` → live protocol every socket speaks
//! (an aggregate's log now; a stream partition and projection documents next).
//!
//! It is a pure state machine: frames and commits go in, [`Action`]s come out (send this
//! text, close with this code). It never touches a socket, a clock or storage: the
//! object reads the log through [`FeedLog`], passes the time in, and carries out the
//! actions. So every rule below is unit-tested natively, and every socket kind inherits
//! the same no-gap/no-duplicate guarantee by construction.
//!
//! # The protocol
//! Entries of a log have a dense, increasing *cursor* (an aggregate's `seq`, a
//! partition's `offset`). A socket opened with `after = N` is sent every entry with
//! cursor > N, then the log's caught-up frame (`{"kind":"caught_up","version":V}` or
//! `"position"`), then live entries as they commit. Server frames are JSON text:
//! `{"kind":"event","event":…}`, the caught-up frame, and
//! `{"kind":"error","code","message","resume_after"}` right before a close.
//!
//! The client acknowledges what it has processed: `{"kind":"ack","<cursor>":N}` — exactly
//! those two fields, at most [`MAX_CLIENT_FRAME_BYTES`] bytes, `N` at most the last cursor
//! sent. Anything else closes the socket with [`CLOSE_PROTOCOL_ERROR`].
//!
//! # Flow control
//! The runtime does not report a socket's send buffer, so every socket has an
//! *acknowledgement window*: at most `window` entries beyond the last ack are ever in
//! flight. A catching-up socket is sent more as acks arrive; a live socket whose
//! unacknowledged entries would pass the window is closed with [`CLOSE_SLOW_CONSUMER`]
//! and resumes with `after = resume_after`, losing nothing.
//!
//! # Closed means closed
//! Every close the engine starts marks the feed closed *before* the close frame goes out,
//! and a closed feed never sends again. The runtime keeps listing a socket while its close
//! handshake is pending (a client that never answers can keep it there for minutes), so
//! whatever counts sockets — subscriber limits, fan-out, status — counts open feeds only
//! ([`Feed::is_open`]): a slot is free the moment the server closes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Close code: more than the window unacknowledged. Resume with `after = resume_after`.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: the client sent more frames per second than allowed.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// Close code: the token that opened the socket has expired; reconnect with a fresh one.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code (RFC 6455 "policy violation"): a client frame that is not a valid ack.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1008;
/// Close code (RFC 6455 "internal error"): our fault; reconnect with `after`.
pub const CLOSE_INTERNAL: u16 = 1011;

/// Largest client frame accepted, in bytes. An ack is under 40 bytes.
pub const MAX_CLIENT_FRAME_BYTES: usize = 256;

/// Most entries read from the log per step of a catch-up.
const PAGE: u64 = 1000;

/// What a feed needs from the log it serves.
pub trait FeedLog {
    /// The entries with cursor > `after`, oldest first, at most `limit` of them (fewer is
    /// fine; at least one when any exists), each as its cursor and its event-frame text.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, String>;
    /// The cursor of the newest entry (0 when empty).
    fn head(&self) -> u64;
    /// The caught-up frame for `head`: `{"kind":"caught_up","version":V}` for an
    /// aggregate, `{"kind":"caught_up","position":{…}}` for a partition.
    fn caught_up_frame(&self, head: u64) -> String;
}

/// The per-socket-kind settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLimits {
    /// Most entries in flight beyond the last ack (`WS_ACK_WINDOW`).
    pub window: u64,
    /// Most client frames per second (`WS_MAX_FRAMES_PER_SECOND`).
    pub max_frames_per_second: u32,
    /// The cursor's name in acks: `"seq"` or `"offset"`.
    pub cursor: &'static str,
}

/// Something the object must do to the socket, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this text frame.
    Send(String),
    /// Close with this code and reason (the error frame was already sent).
    Close { code: u16, reason: String },
}

/// What one socket remembers. Serialized into the socket's hibernation attachment, so it
/// survives the object's eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// Highest cursor sent.
    pub sent: u64,
    /// Highest cursor the client acknowledged.
    pub acked: u64,
    /// Whether the caught-up frame was sent: live feeds get entries from commits, the
    /// others from the log as they ack.
    pub live: bool,
    /// Whether the server closed (or is closing) this socket.
    #[serde(default)]
    pub closed: bool,
    /// When the token behind this socket expires (Unix seconds), if it had one.
    pub expires_at: Option<u64>,
    /// Start (ms) of the current one-second window of client frames, and its count.
    pub frames_since_ms: i64,
    pub frames: u32,
}

impl Feed {
    /// A feed that will replay everything after `after`.
    pub fn new(after: u64, expires_at: Option<u64>) -> Self {
        Self {
            sent: after,
            acked: after,
            live: false,
            closed: false,
            expires_at,
            frames_since_ms: 0,
            frames: 0,
        }
    }

    /// Whether the socket can still receive: counted by subscriber limits and fan-out.
    pub fn is_open(&self) -> bool {
        !self.closed
    }

    /// Whether the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at
            .is_some_and(|exp| (now_ms.max(0) / 1000) as u64 >= exp)
    }

    /// Sends a catching-up feed what its window allows from the log, then the caught-up
    /// frame once it has everything up to the head. Call right after opening (in the same
    /// synchronous step as registering the socket) and after every ack.
    pub fn pump(&mut self, log: &impl FeedLog, limits: &FeedLimits) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        if self.closed {
            return Ok(actions);
        }
        let head = log.head();
        while !self.live {
            let allowed = (self.acked + limits.window)
                .min(head)
                .saturating_sub(self.sent);
            if allowed > 0 {
                let page = log.read_after(self.sent, allowed.min(PAGE) as usize)?;
                let Some(&(last, _)) = page.last() else { break };
                actions.extend(page.into_iter().map(|(_, frame)| Action::Send(frame)));
                self.sent = last;
            }
            if self.sent >= head {
                actions.push(Action::Send(log.caught_up_frame(head)));
                self.live = true;
            } else if allowed == 0 {
                break; // the window is full: wait for an ack
            }
        }
        Ok(actions)
    }

    /// Newly committed entries (cursor, frame), oldest first, each serialized once for
    /// all sockets. A live feed is sent the ones past what it was sent; one whose
    /// unacknowledged entries would pass the window is closed instead. A catching-up
    /// feed ignores them: it reads them from the log as it acks.
    pub fn on_commit(
        &mut self,
        entries: &[(u64, String)],
        now_ms: i64,
        limits: &FeedLimits,
    ) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        if self.expired(now_ms) {
            return self.close_token_expired();
        }
        if !self.live {
            return Vec::new();
        }
        let fresh: Vec<&(u64, String)> = entries.iter().filter(|(c, _)| *c > self.sent).collect();
        let Some(&&(last, _)) = fresh.last() else {
            return Vec::new();
        };
        if self.sent + fresh.len() as u64 - self.acked > limits.window {
            let message = format!(
                "more than {} events unacknowledged; reconnect with after={}",
                limits.window, self.acked
            );
            return self.close(CLOSE_SLOW_CONSUMER, "slow_consumer", &message);
        }
        self.sent = last;
        fresh
            .into_iter()
            .map(|(_, frame)| Action::Send(frame.clone()))
            .collect()
    }

    /// A frame from the client: `text` is `None` for a binary frame. Counts it against
    /// the per-second limit, checks the token, parses it strictly as an ack of a cursor
    /// that was sent, and pumps a catching-up feed.
    pub fn on_client_frame(
        &mut self,
        text: Option<&str>,
        now_ms: i64,
        log: &impl FeedLog,
        limits: &FeedLimits,
    ) -> Result<Vec<Action>, String> {
        if self.closed {
            return Ok(Vec::new());
        }
        if now_ms - self.frames_since_ms >= 1000 {
            self.frames_since_ms = now_ms;
            self.frames = 0;
        }
        self.frames = self.frames.saturating_add(1);
        if self.frames > limits.max_frames_per_second {
            let message = format!(
                "more than {} frames per second",
                limits.max_frames_per_second
            );
            return Ok(self.close(CLOSE_RATE_LIMITED, "rate_limited", &message));
        }
        if self.expired(now_ms) {
            return Ok(self.close_token_expired());
        }
        let cursor = match parse_ack(text, limits.cursor) {
            Some(cursor) if cursor <= self.sent => cursor,
            Some(cursor) => {
                let message = format!(
                    "ack of {} {cursor}, but only {} was sent",
                    limits.cursor, self.sent
                );
                return Ok(self.close(CLOSE_PROTOCOL_ERROR, "bad_request", &message));
            }
            None => {
                let message = format!(
                    r#"client frames are {{"kind":"ack","{}":N}} (at most {MAX_CLIENT_FRAME_BYTES} bytes)"#,
                    limits.cursor
                );
                return Ok(self.close(CLOSE_PROTOCOL_ERROR, "bad_request", &message));
            }
        };
        self.acked = self.acked.max(cursor);
        self.pump(log, limits)
    }

    /// Closes the feed if its token expired by `now_ms` (the object's alarm calls this).
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<Action> {
        if self.closed || !self.expired(now_ms) {
            return Vec::new();
        }
        self.close_token_expired()
    }

    /// Closes the feed because of our own failure (1011).
    pub fn close_internal(&mut self) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        self.close(
            CLOSE_INTERNAL,
            "internal",
            "internal error; reconnect with after",
        )
    }

    /// The client closed: nothing to send, but the slot is free from now on.
    pub fn on_client_close(&mut self) {
        self.closed = true;
    }

    fn close_token_expired(&mut self) -> Vec<Action> {
        self.close(
            CLOSE_TOKEN_EXPIRED,
            "token_expired",
            "the token has expired; reconnect with a fresh one",
        )
    }

    /// The error frame, then the close; the feed is closed from here on.
    fn close(&mut self, close_code: u16, code: &str, message: &str) -> Vec<Action> {
        self.closed = true;
        let frame = json!({
            "kind": "error",
            "code": code,
            "message": message,
            "resume_after": self.acked,
        });
        // Close reasons are limited to 123 bytes.
        let reason: String = format!("{code}: {message}").chars().take(120).collect();
        vec![
            Action::Send(frame.to_string()),
            Action::Close {
                code: close_code,
                reason,
            },
        ]
    }
}

/// The earliest token expiry among one object instance's open feeds, so that an alarm that
/// fires for another reason (a forward, a projector wake: many a second under load) closes
/// expired sockets without reading every socket's attachment when none can have expired.
///
/// It starts unknown (a fresh instance: sockets from before a hibernation are not seen
/// yet), becomes known after a scan of every feed, and takes in every feed saved since.
/// A feed that closes leaves its expiry in the minimum; the next scan drops it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryWatch {
    /// `None`: unknown. `Some(None)`: no open feed expires. `Some(Some(s))`: the earliest
    /// expiry (Unix seconds) of the feeds seen.
    earliest: Option<Option<u64>>,
}

impl ExpiryWatch {
    /// A feed was saved: an open one's expiry joins a known minimum.
    pub fn saw(&mut self, feed: &Feed) {
        if let (Some(known), Some(expires_at), true) =
            (self.earliest, feed.expires_at, feed.is_open())
        {
            self.earliest = Some(Some(known.map_or(expires_at, |e| e.min(expires_at))));
        }
    }

    /// `Some(earliest)` when no feed can have expired at `now_ms` (the rule of
    /// [`Feed::expired`]), so the scan can be skipped; `earliest` is then the next expiry
    /// (Unix seconds) to set an alarm for. `None`: scan every feed.
    pub fn skip_scan(&self, now_ms: i64) -> Option<Option<u64>> {
        let known = self.earliest?;
        let now_secs = (now_ms.max(0) / 1000) as u64;
        known.is_none_or(|e| now_secs < e).then_some(known)
    }

    /// A scan of every feed ended: `earliest` is the earliest expiry of those left open.
    pub fn scanned(&mut self, earliest: Option<u64>) {
        self.earliest = Some(earliest);
    }
}

/// `{"kind":"event","event":envelope}`, the envelope's fields in their documented order.
pub fn event_frame(event: &domain::EventEnvelope) -> String {
    #[derive(Serialize)]
    struct EventFrame<'a> {
        kind: &'static str,
        event: &'a domain::EventEnvelope,
    }
    // Serializing our own types cannot fail.
    serde_json::to_string(&EventFrame {
        kind: "event",
        event,
    })
    .unwrap_or_default()
}

/// Parses `{"kind":"ack","<cursor>":N}` strictly: exactly those two fields, `N` a
/// non-negative integer, the whole frame at most [`MAX_CLIENT_FRAME_BYTES`] bytes.
pub fn parse_ack(text: Option<&str>, cursor: &str) -> Option<u64> {
    let text = text.filter(|t| t.len() <= MAX_CLIENT_FRAME_BYTES)?;
    let Value::Object(fields) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    if fields.len() != 2 || fields.get("kind")?.as_str()? != "ack" {
        return None;
    }
    fields.get(cursor)?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_watch_scans_until_it_knows_then_only_when_a_feed_is_due() {
        let mut watch = ExpiryWatch::default();
        assert_eq!(
            watch.skip_scan(0),
            None,
            "a fresh instance has not seen its sockets"
        );
        watch.scanned(None);
        assert_eq!(watch.skip_scan(5_000), Some(None), "no feed expires");
        watch.saw(&Feed::new(0, Some(100)));
        watch.saw(&Feed::new(0, Some(50)));
        watch.saw(&Feed::new(0, None));
        assert_eq!(watch.skip_scan(49_999), Some(Some(50)));
        assert_eq!(
            watch.skip_scan(50_000),
            None,
            "due at the second Feed::expired says"
        );
        assert!(Feed::new(0, Some(50)).expired(50_000));
        let mut closed = Feed::new(0, Some(10));
        closed.closed = true;
        watch.saw(&closed);
        assert_eq!(
            watch.skip_scan(20_000),
            Some(Some(50)),
            "a closed feed never expires"
        );
        watch.scanned(Some(100));
        assert_eq!(watch.skip_scan(60_000), Some(Some(100)));
    }

    #[test]
    fn expiry_watch_ignores_feeds_while_unknown() {
        let mut watch = ExpiryWatch::default();
        watch.saw(&Feed::new(0, Some(50)));
        assert_eq!(watch.skip_scan(0), None, "one feed seen is not all feeds");
    }

    /// A log of `head` entries whose frames are their cursor as text.
    struct Log {
        head: u64,
    }

    impl FeedLog for Log {
        fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, String> {
            Ok((after + 1..=self.head)
                .take(limit)
                .map(|c| (c, c.to_string()))
                .collect())
        }
        fn head(&self) -> u64 {
            self.head
        }
        fn caught_up_frame(&self, head: u64) -> String {
            format!("caught_up {head}")
        }
    }

    const LIMITS: FeedLimits = FeedLimits {
        window: 10,
        max_frames_per_second: 5,
        cursor: "seq",
    };

    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(t) => Some(t.clone()),
                Action::Close { .. } => None,
            })
            .collect()
    }

    fn close_code(actions: &[Action]) -> Option<u16> {
        actions.iter().find_map(|a| match a {
            Action::Close { code, .. } => Some(*code),
            Action::Send(_) => None,
        })
    }

    fn ack(n: u64) -> String {
        format!(r#"{{"kind":"ack","seq":{n}}}"#)
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
        range.map(|c| (c, c.to_string())).collect()
    }

    #[test]
    fn short_log_is_replayed_then_caught_up() {
        let mut feed = Feed::new(2, None);
        let actions = feed.pump(&Log { head: 5 }, &LIMITS).unwrap();
        assert_eq!(sent(&actions), ["3", "4", "5", "caught_up 5"]);
        assert!(feed.live && feed.is_open());
    }

    #[test]
    fn empty_log_catches_up_at_zero() {
        let mut feed = Feed::new(0, None);
        assert_eq!(
            sent(&feed.pump(&Log { head: 0 }, &LIMITS).unwrap()),
            ["caught_up 0"]
        );
    }

    #[test]
    fn catch_up_waits_for_acks_within_the_window() {
        let log = Log { head: 25 };
        let mut feed = Feed::new(0, None);
        let first = feed.pump(&log, &LIMITS).unwrap();
        assert_eq!(sent(&first).len(), 10);
        assert!(!feed.live);
        // An ack of 4 lets 4 more through.
        let more = feed
            .on_client_frame(Some(&ack(4)), 0, &log, &LIMITS)
            .unwrap();
        assert_eq!(sent(&more), ["11", "12", "13", "14"]);
        let rest = feed
            .on_client_frame(Some(&ack(14)), 0, &log, &LIMITS)
            .unwrap();
        assert_eq!(
            sent(&rest),
            ["15", "16", "17", "18", "19", "20", "21", "22", "23", "24"]
        );
        let done = feed
            .on_client_frame(Some(&ack(24)), 0, &log, &LIMITS)
            .unwrap();
        assert_eq!(sent(&done), ["25", "caught_up 25"]);
        assert!(feed.live);
    }

    #[test]
    fn commits_while_catching_up_come_from_the_log_exactly_once() {
        let mut log = Log { head: 12 };
        let mut feed = Feed::new(0, None);
        let mut seen = sent(&feed.pump(&log, &LIMITS).unwrap());
        // Two commits land while the feed waits for acks: ignored by on_commit...
        log.head = 14;
        assert!(feed.on_commit(&entries(13..=14), 0, &LIMITS).is_empty());
        // ...and read from the log after the ack.
        seen.extend(sent(
            &feed
                .on_client_frame(Some(&ack(10)), 0, &log, &LIMITS)
                .unwrap(),
        ));
        seen.extend(sent(&feed.on_commit(&entries(15..=15), 0, &LIMITS)));
        let expected: Vec<String> = (1..=14)
            .map(|c| c.to_string())
            .chain(["caught_up 14".into(), "15".into()])
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn live_feed_gets_only_new_entries() {
        let mut feed = Feed::new(0, None);
        feed.pump(&Log { head: 3 }, &LIMITS).unwrap();
        // A commit batch overlapping what was sent (defensive) sends only the new ones.
        assert_eq!(
            sent(&feed.on_commit(&entries(3..=5), 0, &LIMITS)),
            ["4", "5"]
        );
        assert_eq!(feed.sent, 5);
    }

    #[test]
    fn live_feed_past_the_window_is_closed_4008_with_resume_after() {
        let mut feed = Feed::new(0, None);
        feed.pump(&Log { head: 0 }, &LIMITS).unwrap();
        assert_eq!(
            sent(&feed.on_commit(&entries(1..=10), 0, &LIMITS)).len(),
            10
        );
        feed.on_client_frame(Some(&ack(3)), 0, &Log { head: 10 }, &LIMITS)
            .unwrap();
        let actions = feed.on_commit(&entries(11..=14), 0, &LIMITS);
        assert_eq!(close_code(&actions), Some(CLOSE_SLOW_CONSUMER));
        let error: Value = serde_json::from_str(&sent(&actions)[0]).unwrap();
        assert_eq!(error["code"], "slow_consumer");
        assert_eq!(error["resume_after"], 3);
        assert!(!feed.is_open());
        // A closed feed never sends again.
        assert!(feed.on_commit(&entries(15..=15), 0, &LIMITS).is_empty());
    }

    #[test]
    fn blind_ack_closes_1008() {
        let log = Log { head: 20 };
        let mut feed = Feed::new(0, None);
        feed.pump(&log, &LIMITS).unwrap();
        let actions = feed
            .on_client_frame(Some(&ack(15)), 0, &log, &LIMITS)
            .unwrap();
        assert_eq!(close_code(&actions), Some(CLOSE_PROTOCOL_ERROR));
        assert!(!feed.is_open());
    }

    #[test]
    fn client_frames_are_parsed_strictly() {
        for bad in [
            r#"{"kind":"ack","seq":1,"extra":true}"#,
            r#"{"kind":"ack"}"#,
            r#"{"kind":"nope","seq":1}"#,
            r#"{"kind":"ack","seq":-1}"#,
            r#"{"kind":"ack","seq":1.5}"#,
            r#"{"kind":"ack","seq":"1"}"#,
            r#"{"kind":"ack","offset":1}"#,
            r#"[1]"#,
            "not json",
        ] {
            assert_eq!(parse_ack(Some(bad), "seq"), None, "{bad}");
            let log = Log { head: 3 };
            let mut feed = Feed::new(0, None);
            feed.pump(&log, &LIMITS).unwrap();
            let actions = feed.on_client_frame(Some(bad), 0, &log, &LIMITS).unwrap();
            assert_eq!(close_code(&actions), Some(CLOSE_PROTOCOL_ERROR), "{bad}");
        }
        assert_eq!(parse_ack(Some(r#"{"seq":2,"kind":"ack"}"#), "seq"), Some(2));
        assert_eq!(
            parse_ack(Some(r#"{"kind":"ack","offset":7}"#), "offset"),
            Some(7)
        );
        assert_eq!(parse_ack(None, "seq"), None, "binary frames are refused");
        let padded = format!(r#"{{"kind":"ack","seq":1{}}}"#, " ".repeat(300));
        assert_eq!(parse_ack(Some(&padded), "seq"), None, "oversized frame");
    }

    #[test]
    fn too_many_frames_per_second_closes_4029() {
        let log = Log { head: 100 };
        let limits = FeedLimits {
            window: 1000,
            ..LIMITS
        };
        let mut feed = Feed::new(0, None);
        feed.pump(&log, &limits).unwrap();
        for i in 1..=5 {
            let actions = feed
                .on_client_frame(Some(&ack(i)), 1_000, &log, &limits)
                .unwrap();
            assert_eq!(close_code(&actions), None);
        }
        let actions = feed
            .on_client_frame(Some(&ack(6)), 1_500, &log, &limits)
            .unwrap();
        assert_eq!(close_code(&actions), Some(CLOSE_RATE_LIMITED));
        // A new second would have been fine.
        let mut other = Feed::new(0, None);
        other.pump(&log, &limits).unwrap();
        for i in 1..=5 {
            other
                .on_client_frame(Some(&ack(i)), 1_000, &log, &limits)
                .unwrap();
        }
        let actions = other
            .on_client_frame(Some(&ack(6)), 2_000, &log, &limits)
            .unwrap();
        assert_eq!(close_code(&actions), None);
    }

    #[test]
    fn expired_token_closes_4001_on_ack_commit_or_tick() {
        let log = Log { head: 1 };
        let expires = Some(10); // Unix seconds
        let mut on_ack = Feed::new(0, expires);
        on_ack.pump(&log, &LIMITS).unwrap();
        let actions = on_ack
            .on_client_frame(Some(&ack(1)), 10_000, &log, &LIMITS)
            .unwrap();
        assert_eq!(close_code(&actions), Some(CLOSE_TOKEN_EXPIRED));

        let mut on_commit = Feed::new(0, expires);
        on_commit.pump(&log, &LIMITS).unwrap();
        assert_eq!(
            sent(&on_commit.on_commit(&entries(2..=2), 9_999, &LIMITS)),
            ["2"]
        );
        let actions = on_commit.on_commit(&entries(3..=3), 10_000, &LIMITS);
        assert_eq!(close_code(&actions), Some(CLOSE_TOKEN_EXPIRED));

        let mut on_tick = Feed::new(0, expires);
        assert!(on_tick.on_tick(9_999).is_empty());
        assert_eq!(
            close_code(&on_tick.on_tick(10_000)),
            Some(CLOSE_TOKEN_EXPIRED)
        );
        assert!(on_tick.on_tick(20_000).is_empty(), "closes once");
    }

    #[test]
    fn internal_and_client_closes_free_the_slot() {
        let mut feed = Feed::new(0, None);
        assert_eq!(close_code(&feed.close_internal()), Some(CLOSE_INTERNAL));
        assert!(!feed.is_open());
        let mut other = Feed::new(0, None);
        other.on_client_close();
        assert!(!other.is_open());
        assert!(other.pump(&Log { head: 3 }, &LIMITS).unwrap().is_empty());
    }

    #[test]
    fn attachment_round_trips_and_old_attachments_read_as_open() {
        let feed = Feed::new(4, Some(99));
        let text = serde_json::to_string(&feed).unwrap();
        assert_eq!(serde_json::from_str::<Feed>(&text).unwrap(), feed);
        // Attachments written before `closed` existed.
        let old =
            r#"{"sent":1,"acked":1,"live":true,"expires_at":null,"frames_since_ms":0,"frames":0}"#;
        assert!(serde_json::from_str::<Feed>(old).unwrap().is_open());
    }
}
