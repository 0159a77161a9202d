//! The global stream: pages of one partition ([`Client::stream_page`]), the partitions'
//! heads ([`Client::partitions`]), and a live, resuming subscription to one partition
//! ([`Client::subscribe_stream`]).
//!
//! The stream holds every committed event of the tenant exactly once. Each aggregate's
//! events go to one partition, in `seq` order; a partition numbers its events with dense
//! offsets from 1 ([`Position`]). Reading needs the `replay` scope.
//!
//! Pages come as MessagePack: the same object as the JSON answer, about half the bytes and
//! much less decoding work, which is what an export of millions of events spends its time on.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{EventEnvelope, Position};
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::retry::{self, Failure};
use crate::socket::{self, PROTOCOL, Socket, Upgrade};
use crate::subscription::{Acker, Admit, Cursor, resumable};
use crate::{Client, Error, SubscribeOptions};

/// What to read from the stream: one partition after an offset, optionally filtered.
/// Filters are applied by the server; a filtered page may hold fewer events than `limit`
/// (even none) and still have a next one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamQuery {
    /// The partition, `0..count` ([`Client::partitions`]).
    pub partition: u32,
    /// Read events with an offset above this (0 = from the start).
    pub after: u64,
    /// At most this many events (server default 100, at most [`crate::MAX_PAGE`]).
    pub limit: Option<u32>,
    /// Only events of this aggregate type (`aggregate_type=`).
    pub aggregate_type: Option<String>,
    /// Only events of these types (`types=A,B`); empty means every type.
    pub types: Vec<String>,
    /// Only events recorded at or after this time (`since=`, inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Only events recorded before this time (`until=`, exclusive).
    pub until: Option<DateTime<Utc>>,
}

impl StreamQuery {
    /// Every event of `partition`, from the start, in pages of the server's default size.
    pub fn new(partition: u32) -> Self {
        Self {
            partition,
            ..Self::default()
        }
    }

    /// The same query from another offset.
    pub fn after(mut self, after: u64) -> Self {
        self.after = after;
        self
    }

    /// The same query with another page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The query string's pairs, in the order the contract lists them.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut pairs = vec![
            ("partition", self.partition.to_string()),
            ("after", self.after.to_string()),
        ];
        pairs.extend(self.limit.map(|n| ("limit", n.to_string())));
        pairs.extend(self.aggregate_type.clone().map(|t| ("aggregate_type", t)));
        if !self.types.is_empty() {
            pairs.push(("types", self.types.join(",")));
        }
        pairs.extend(self.since.as_ref().map(|t| ("since", time(t))));
        pairs.extend(self.until.as_ref().map(|t| ("until", time(t))));
        pairs
    }
}

/// One page of a partition: `{"events":[…],"next_after":O|null,"head":H}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamPage {
    /// Oldest first; every envelope has its [`Position`] (`event.position`).
    pub events: Vec<EventEnvelope>,
    /// The offset to read on from: the last offset this page looked at, which a filtered
    /// page may pass without returning anything. `None` when the page reached the head.
    pub next_after: Option<u64>,
    /// The partition's newest offset when the page was read.
    pub head: u64,
}

/// One partition of `GET /v1/stream/partitions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// The newest offset (0 while the partition is empty).
    pub head: u64,
    /// The oldest offset still in the partition's hot table; `None` when nothing is hot.
    pub oldest_hot: Option<u64>,
    /// The oldest offset that can still be read (archive or hot); `None` while empty.
    pub oldest_retained: Option<u64>,
    /// Events in the hot table.
    pub hot_events: u64,
    /// Segments archived to object storage.
    pub archived_segments: u64,
    /// Whether forwarding into this partition is paused (an operator's switch).
    pub paused: bool,
}

impl Client {
    /// `GET /v1/stream?partition=P&after=O&…` (as MessagePack): one page of a partition.
    /// Page on from [`StreamPage::next_after`] until it is `None`. Retried like every read.
    ///
    /// Errors: [`Error::Api`] `bad_request` 400 for a partition that does not exist or a
    /// bad filter (the message says which), `unauthorized` 401, `forbidden` 403 without
    /// the `replay` scope; [`Error::Protocol`] for a page that contradicts the query
    /// (another partition, offsets out of order or not above `after`).
    pub async fn stream_page(&self, query: &StreamQuery) -> Result<StreamPage, Error> {
        self.stream_page_bytes(query).await?.decode()
    }

    /// [`Self::stream_page`] without the decoding: the page's MessagePack body and its
    /// cursor, read from the `x-next-after` header. A reader can ask for the next page at
    /// once and decode this one elsewhere ([`PageBytes::decode`], which checks the body's
    /// cursor is the header's) — what `edgeloop replay` does to keep fetching and decoding
    /// on separate cores.
    ///
    /// Errors: as [`Self::stream_page`]; [`Error::Protocol`] for a page without a
    /// readable `x-next-after` header (an offset or `null`).
    pub async fn stream_page_bytes(&self, query: &StreamQuery) -> Result<PageBytes, Error> {
        let url = self.endpoint(&["v1", "stream"], &query.pairs());
        let reply = self
            .call(None, || {
                self.http()
                    .get(url.clone())
                    .header(ACCEPT, "application/msgpack")
            })
            .await?;
        let next_after = match reply.header("x-next-after") {
            Some("null") => None,
            Some(offset) => Some(offset.parse::<u64>().map_err(|_| {
                Error::Protocol(format!("a stream page's x-next-after is `{offset}`"))
            })?),
            None => {
                return Err(Error::Protocol(
                    "a stream page came without an x-next-after header".into(),
                ));
            }
        };
        Ok(PageBytes {
            query: query.clone(),
            status: reply.status,
            body: reply.body,
            next_after,
        })
    }

    /// `GET /v1/stream/partitions`: every partition of the tenant's stream, in order.
    pub async fn partitions(&self) -> Result<Vec<PartitionStatus>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            partitions: Vec<PartitionStatus>,
            count: u32,
        }
        let url = self.endpoint(&["v1", "stream", "partitions"], &[]);
        let answer: Answer = self
            .call(None, || self.http().get(url.clone()))
            .await?
            .json()?;
        let numbers: Vec<u32> = answer.partitions.iter().map(|p| p.partition).collect();
        if numbers != (0..answer.count).collect::<Vec<_>>() {
            return Err(Error::Protocol(format!(
                "{} partitions announced, listed as {numbers:?}",
                answer.count
            )));
        }
        Ok(answer.partitions)
    }
}

/// A stream page as fetched ([`Client::stream_page_bytes`]): its MessagePack body, not
/// yet decoded, and its cursor from the `x-next-after` header.
#[derive(Debug, Clone)]
pub struct PageBytes {
    query: StreamQuery,
    status: u16,
    body: Vec<u8>,
    next_after: Option<u64>,
}

impl PageBytes {
    /// Where the next page starts (the header's cursor): `None` once the page reached the
    /// head.
    pub fn next_after(&self) -> Option<u64> {
        self.next_after
    }

    /// The page: [`Error::Decode`] for a body that is not a stream page, [`Error::Protocol`]
    /// for one that contradicts its query or whose cursor is not the header's.
    pub fn decode(&self) -> Result<StreamPage, Error> {
        let page: StreamPage = domain::codec::decode(&self.body)
            .map_err(|e| Error::Decode(format!("a stream page (HTTP {}): {e}", self.status)))?;
        check_page(&self.query, &page)?;
        if page.next_after != self.next_after {
            return Err(Error::Protocol(format!(
                "a stream page's body names next_after {:?}, its header {:?}",
                page.next_after, self.next_after
            )));
        }
        Ok(page)
    }

    /// The page's envelopes undecoded, each with its position: for a reader that passes
    /// them on (transcodes them, stores them) without building [`EventEnvelope`]s. The page
    /// is walked by MessagePack's markers; only each envelope's `position` is decoded (an
    /// envelope is a map, as the server encodes every one).
    /// Checked as [`Self::decode`] checks, with the same errors.
    pub fn envelopes(&self) -> Result<RawPage<'_>, Error> {
        let malformed = |e: &dyn std::fmt::Display| {
            Error::Decode(format!("a stream page (HTTP {}): {e}", self.status))
        };
        let mut rd = self.body.as_slice();
        let mut page = RawPage {
            events: Vec::new(),
            next_after: None,
            head: 0,
        };
        let (mut has_events, mut has_head) = (false, false);
        let fields = rmp::decode::read_map_len(&mut rd).map_err(|e| malformed(&e))?;
        for _ in 0..fields {
            let (key, rest) = rmp::decode::read_str_from_slice(rd).map_err(|e| malformed(&e))?;
            rd = rest;
            match key {
                "events" => {
                    has_events = true;
                    let count = rmp::decode::read_array_len(&mut rd).map_err(|e| malformed(&e))?;
                    for _ in 0..count {
                        // One walk over the envelope's map finds its end and its position.
                        let start = rd;
                        let mut position = None;
                        let fields =
                            rmp::decode::read_map_len(&mut rd).map_err(|e| malformed(&e))?;
                        for _ in 0..fields {
                            let (key, rest) =
                                rmp::decode::read_str_from_slice(rd).map_err(|e| malformed(&e))?;
                            rd = rest;
                            if key == "position" {
                                position = domain::codec::decode_borrowed(rd)
                                    .map_err(|e| malformed(&e))?;
                            }
                            domain::codec::skip_value(&mut rd).map_err(|e| malformed(&e))?;
                        }
                        let position: Position = position.ok_or_else(|| {
                            Error::Protocol("a stream event has no position".into())
                        })?;
                        page.events
                            .push((position, &start[..start.len() - rd.len()]));
                    }
                }
                "next_after" => {
                    page.next_after = domain::codec::decode_borrowed::<Option<u64>>(rd)
                        .map_err(|e| malformed(&e))?;
                    domain::codec::skip_value(&mut rd).map_err(|e| malformed(&e))?;
                }
                "head" => {
                    has_head = true;
                    page.head = rmp::decode::read_int(&mut rd).map_err(|e| malformed(&e))?;
                }
                _ => domain::codec::skip_value(&mut rd).map_err(|e| malformed(&e))?,
            }
        }
        if !(has_events && has_head) {
            return Err(malformed(&"missing `events` or `head`"));
        }
        check_positions(
            &self.query,
            page.events.iter().map(|(position, _)| *position),
            page.next_after,
            page.head,
        )?;
        if page.next_after != self.next_after {
            return Err(Error::Protocol(format!(
                "a stream page's body names next_after {:?}, its header {:?}",
                page.next_after, self.next_after
            )));
        }
        Ok(page)
    }
}

/// A page's events as MessagePack envelopes borrowed from its body, each with its position
/// ([`PageBytes::envelopes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage<'a> {
    /// Each event's position and its envelope's MessagePack bytes, in offset order.
    pub events: Vec<(Position, &'a [u8])>,
    /// As in [`StreamPage`].
    pub next_after: Option<u64>,
    pub head: u64,
}

/// A page must hold events of the queried partition, above `after`, in offset order,
/// within the cursor and the head it names: a caller paging with it would otherwise skip
/// or repeat events silently.
fn check_page(query: &StreamQuery, page: &StreamPage) -> Result<(), Error> {
    let mut positions = Vec::with_capacity(page.events.len());
    for event in &page.events {
        let Some(position) = event.position else {
            return Err(Error::Protocol(format!(
                "stream event {} has no position",
                event.event_id
            )));
        };
        positions.push(position);
    }
    check_positions(query, positions, page.next_after, page.head)
}

/// [`check_page`] on a page's positions, cursor and head.
fn check_positions(
    query: &StreamQuery,
    positions: impl IntoIterator<Item = Position>,
    next_after: Option<u64>,
    head: u64,
) -> Result<(), Error> {
    let mut previous = query.after;
    for position in positions {
        if position.partition != query.partition {
            return Err(Error::Protocol(format!(
                "a page of partition {} holds an event of partition {}",
                query.partition, position.partition
            )));
        }
        if position.offset <= previous {
            return Err(Error::Protocol(format!(
                "offset {} follows offset {previous} in a page after {}",
                position.offset, query.after
            )));
        }
        previous = position.offset;
    }
    let bound = next_after.unwrap_or(head);
    if previous > bound || next_after.is_some_and(|n| n < query.after) {
        return Err(Error::Protocol(format!(
            "a page after {} ending at offset {previous} names next_after {next_after:?} and head {head}",
            query.after
        )));
    }
    Ok(())
}

/// A frame the server sends on a stream socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamFrame {
    /// `{"kind":"event","event":envelope}` (the envelope has its position).
    Event { event: Box<EventEnvelope> },
    /// `{"kind":"caught_up","position":{"partition":P,"offset":O}}`: every event up to
    /// `offset` has been sent; live events follow.
    CaughtUp { position: Position },
    /// `{"kind":"error","code","message","resume_after"}`, right before the server closes.
    Error {
        code: String,
        message: String,
        #[serde(default)]
        resume_after: Option<u64>,
    },
    /// A kind this client does not know (a newer server); skipped.
    #[serde(other)]
    Unknown,
}

impl StreamFrame {
    /// Decodes a text frame; [`Error::Decode`] when it is not a frame of the protocol.
    pub fn parse(text: &str) -> Result<StreamFrame, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::Decode(format!(
                "stream socket frame ({e}): {}",
                crate::excerpt(text)
            ))
        })
    }
}

/// The text of an ack of every offset up to `offset`: `{"kind":"ack","offset":N}`.
pub fn stream_ack_frame(offset: u64) -> String {
    format!(r#"{{"kind":"ack","offset":{offset}}}"#)
}

/// What [`StreamSubscription::next`] hands over.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamUpdate {
    /// The next event of the partition: its offset is exactly one above the previous one's.
    Event(Box<EventEnvelope>),
    /// Every event up to `position.offset` has been delivered; what follows is live. Sent
    /// again after every reconnect.
    CaughtUp { position: Position },
    /// The connection dropped (or the server cut a slow reader off with 4008) and a new
    /// one resumed after the last delivered offset, `after`: nothing lost or repeated.
    Reconnected { after: u64 },
}

impl Client {
    /// Follows `partition` of the stream from `after` (0 = from the start): its events,
    /// then `caught_up`, then live events, acknowledging what the caller processed (an
    /// event counts as processed when [`StreamSubscription::next`] is called again) and
    /// resuming after a drop or a 4008 `slow_consumer` close, with
    /// [`SubscribeOptions::default`] (its `ack` mode is ignored: always automatic).
    ///
    /// Authenticates with the subprotocols `edgeloop.v1` and `bearer.<token>`.
    ///
    /// Errors: 400 (a partition that does not exist, an `after` inside the archive: the
    /// socket starts at the hot tail — page through [`Client::stream_page`] first), 401,
    /// 403 as [`Error::Api`]; [`Error::GaveUp`] when no connection could be made.
    pub async fn subscribe_stream(
        &self,
        partition: u32,
        after: u64,
    ) -> Result<StreamSubscription, Error> {
        self.subscribe_stream_with(partition, after, SubscribeOptions::default())
            .await
    }

    /// As [`Client::subscribe_stream`], with options.
    pub async fn subscribe_stream_with(
        &self,
        partition: u32,
        after: u64,
        options: SubscribeOptions,
    ) -> Result<StreamSubscription, Error> {
        let mut subscription = StreamSubscription {
            client: self.clone(),
            partition,
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

/// A live subscription to one partition of the stream. See [`Client::subscribe_stream`].
///
/// Within one `StreamSubscription` every event is handed over exactly once, in offset
/// order, across any number of reconnects; to resume in another process, keep the last
/// offset processed ([`StreamSubscription::last_offset`]) and subscribe after it.
///
/// The same machinery as [`crate::Subscription`] (the cursor, the ack pacing, which
/// closes to ride out), over the stream's frames and `offset` acks.
#[derive(Debug)]
pub struct StreamSubscription {
    client: Client,
    partition: u32,
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

impl StreamSubscription {
    /// The next update. Marks every event handed over so far as processed; acks go out
    /// batched (every `ack_every` events or when the socket is idle, at most one per
    /// `ack_interval`). Waits as long as it takes; cancel-safe.
    ///
    /// Errors: [`Error::Closed`] for a close a reconnect cannot fix (4001 token expired,
    /// 1008, 4029); [`Error::GaveUp`] (or the refusal) when reconnecting failed;
    /// [`Error::Protocol`] for a gap; [`Error::Decode`] for a frame that is not the
    /// protocol's. After an error, `next` may be called again: it reconnects.
    pub async fn next(&mut self) -> Result<StreamUpdate, Error> {
        self.acker.processed(self.cursor.last());
        loop {
            if self.socket.is_none() {
                let after = self.cursor.last();
                self.reconnect().await?;
                return Ok(StreamUpdate::Reconnected { after });
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
            match StreamFrame::parse(&text)? {
                StreamFrame::Event { event } => {
                    let Some(position) = event.position else {
                        self.socket = None;
                        return Err(Error::Protocol("a stream event without a position".into()));
                    };
                    if position.partition != self.partition {
                        self.socket = None;
                        return Err(Error::Protocol(format!(
                            "an event of partition {} on a socket of partition {}",
                            position.partition, self.partition
                        )));
                    }
                    match self.cursor.admit(position.offset) {
                        Admit::Deliver => return Ok(StreamUpdate::Event(event)),
                        Admit::Duplicate => continue,
                        Admit::Gap { expected, got } => {
                            self.socket = None;
                            return Err(Error::Protocol(format!(
                                "offset {got} arrived where {expected} was due"
                            )));
                        }
                    }
                }
                StreamFrame::CaughtUp { position } => {
                    let last = self.cursor.last();
                    if position.offset < last {
                        self.socket = None;
                        return Err(Error::InvalidArgument(format!(
                            "partition {} is at offset {}, below the offset {last} this \
                             subscription resumes after (is `after` right?)",
                            self.partition, position.offset
                        )));
                    }
                    if position.offset > last {
                        self.socket = None;
                        return Err(Error::Protocol(format!(
                            "caught up at offset {}, but only up to {last} was sent",
                            position.offset
                        )));
                    }
                    return Ok(StreamUpdate::CaughtUp { position });
                }
                StreamFrame::Error { code, message, .. } => self.closing = Some((code, message)),
                StreamFrame::Unknown => continue,
            }
        }
    }

    /// The offset of the last event handed over (the `after` a resume starts from).
    pub fn last_offset(&self) -> u64 {
        self.cursor.last()
    }

    /// The partition followed.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Uses `token` from the next (re)connection on (after a 4001 `token_expired`).
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.client = self.client.clone().with_token(token);
    }

    /// Closes the connection politely, first acknowledging what was handed over.
    pub async fn close(mut self) {
        self.acker.processed(self.cursor.last());
        if self.acker.due(Instant::now()).is_some() {
            let _ = self.send_ack().await;
        }
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
    }

    /// A new connection after a drop; gives up after `reconnect.max_attempts` connections
    /// in a row that opened but delivered nothing.
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
        self.fruitless += 1;
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), Error> {
        let after = self.cursor.last();
        let url = self.client.endpoint(
            &["v1", "stream", "ws"],
            &[
                ("partition", self.partition.to_string()),
                ("after", after.to_string()),
            ],
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
            let never = now + Duration::from_secs(365 * 24 * 3600);
            let Some(socket) = self.socket.as_mut() else {
                return Received::Dropped;
            };
            tokio::select! {
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
        let offset = self.acker.pending();
        socket.send(Message::text(stream_ack_frame(offset))).await?;
        self.acker.sent(offset, Instant::now());
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(partition: u32, offset: u64) -> EventEnvelope {
        let mut event: EventEnvelope = serde_json::from_value(json!({
            "aggregate_type": "board", "aggregate_id": "b", "seq": offset,
            "event_id": format!("e{offset}"), "type": "CardAdded", "schema_version": 1,
            "data": {}, "recorded_at": "2026-01-01T00:00:00.000Z", "command_id": null,
            "correlation_id": null, "causation_id": null, "actor": null
        }))
        .unwrap();
        event.position = Some(Position { partition, offset });
        event
    }

    fn page(partition: u32, offsets: &[u64], next_after: Option<u64>, head: u64) -> StreamPage {
        StreamPage {
            events: offsets.iter().map(|o| event(partition, *o)).collect(),
            next_after,
            head,
        }
    }

    #[test]
    fn queries_name_every_filter_and_only_those_set() {
        let bare = StreamQuery::new(2).after(7);
        assert_eq!(
            bare.pairs(),
            [("partition", "2".into()), ("after", "7".into())]
        );
        let full = StreamQuery {
            partition: 0,
            after: 0,
            limit: Some(500),
            aggregate_type: Some("board".into()),
            types: vec!["CardAdded".into(), "CardMoved".into()],
            since: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            until: Some("2026-01-02T00:00:00.250Z".parse().unwrap()),
        };
        assert_eq!(
            full.pairs(),
            [
                ("partition", "0".to_owned()),
                ("after", "0".into()),
                ("limit", "500".into()),
                ("aggregate_type", "board".into()),
                ("types", "CardAdded,CardMoved".into()),
                ("since", "2026-01-01T00:00:00Z".into()),
                ("until", "2026-01-02T00:00:00.250Z".into()),
            ]
        );
    }

    /// The page as the server encodes it (a map of `events`, `next_after`, `head`).
    fn fetched(query: &StreamQuery, page: &StreamPage, header: Option<u64>) -> PageBytes {
        let mut body = Vec::new();
        rmp::encode::write_map_len(&mut body, 3).unwrap();
        rmp::encode::write_str(&mut body, "events").unwrap();
        rmp::encode::write_array_len(&mut body, page.events.len() as u32).unwrap();
        for event in &page.events {
            body.extend(domain::codec::encode(event));
        }
        rmp::encode::write_str(&mut body, "next_after").unwrap();
        match page.next_after {
            Some(n) => rmp::encode::write_uint(&mut body, n).map(drop).unwrap(),
            None => rmp::encode::write_nil(&mut body).unwrap(),
        }
        rmp::encode::write_str(&mut body, "head").unwrap();
        rmp::encode::write_uint(&mut body, page.head).unwrap();
        PageBytes {
            query: query.clone(),
            status: 200,
            body,
            next_after: header,
        }
    }

    /// A page's undecoded envelopes are the bytes each envelope encodes to, with their
    /// positions, and a page is refused by `envelopes` exactly when `decode` refuses it.
    #[test]
    fn a_pages_undecoded_envelopes_are_its_envelopes_bytes_checked_like_decoding() {
        let q = StreamQuery::new(1).after(10);
        let mut good = page(1, &[11, 12, 15], Some(15), 20);
        good.events[1].data = json!({"text": "é ✓", "n": [1, -2, 3.5], "deep": {"a": null}});
        let bytes = fetched(&q, &good, Some(15));
        let raw = bytes.envelopes().unwrap();
        assert_eq!((raw.next_after, raw.head), (Some(15), 20));
        assert_eq!(raw.events.len(), 3);
        for ((position, envelope), event) in raw.events.iter().zip(&good.events) {
            assert_eq!(Some(*position), event.position);
            assert_eq!(*envelope, domain::codec::encode(event).as_slice());
        }
        assert_eq!(bytes.decode().unwrap(), good);
        let at_head = page(1, &[11], None, 11);
        assert_eq!(
            fetched(&q, &at_head, None).envelopes().unwrap().next_after,
            None
        );
        // Refused alike: another partition, out of order, a header that is not the body's.
        for (bad, header) in [
            (page(0, &[11], None, 11), None),
            (page(1, &[12, 11], None, 12), None),
            (page(1, &[11], Some(11), 20), Some(12)),
        ] {
            let bytes = fetched(&q, &bad, header);
            assert!(
                matches!(bytes.envelopes(), Err(Error::Protocol(_))),
                "{bad:?}"
            );
            assert!(matches!(bytes.decode(), Err(Error::Protocol(_))), "{bad:?}");
        }
        let mut cut = fetched(&q, &good, Some(15));
        cut.body.truncate(cut.body.len() / 2);
        assert!(matches!(cut.envelopes(), Err(Error::Decode(_))));
    }

    #[test]
    fn pages_in_order_within_cursor_and_head_pass() {
        let q = StreamQuery::new(1).after(10);
        assert!(check_page(&q, &page(1, &[11, 12, 13], Some(13), 20)).is_ok());
        // A filtered page: sparse offsets, a cursor past the last event, or none at all.
        assert!(check_page(&q, &page(1, &[12, 19], Some(25), 30)).is_ok());
        assert!(check_page(&q, &page(1, &[], Some(5000), 9000)).is_ok());
        assert!(check_page(&q, &page(1, &[11, 12], None, 12)).is_ok());
        assert!(check_page(&q, &page(1, &[], None, 10)).is_ok());
    }

    #[test]
    fn pages_that_would_make_a_reader_skip_or_repeat_are_protocol_errors() {
        let q = StreamQuery::new(1).after(10);
        let mut unpositioned = page(1, &[11], None, 11);
        unpositioned.events[0].position = None;
        for bad in [
            page(0, &[11], None, 11),        // another partition
            page(1, &[10, 11], None, 11),    // not above `after`
            page(1, &[12, 11], None, 12),    // out of order
            page(1, &[11, 12], Some(11), 9), // past the cursor
            page(1, &[11, 12], None, 11),    // past the head
            page(1, &[], Some(3), 20),       // a cursor going back
            unpositioned,
        ] {
            assert!(
                matches!(check_page(&q, &bad), Err(Error::Protocol(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pages_decode_from_messagepack_as_the_server_encodes_them() {
        let sent = json!({
            "events": [serde_json::to_value(event(3, 41)).unwrap()],
            "next_after": null,
            "head": 41,
        });
        let bytes = domain::codec::encode(&sent);
        let page: StreamPage = domain::codec::decode(&bytes).unwrap();
        assert_eq!(page, self::page(3, &[41], None, 41));
    }

    #[test]
    fn stream_frames_decode_by_kind_and_acks_name_the_offset() {
        assert_eq!(
            StreamFrame::parse(r#"{"kind":"caught_up","position":{"partition":2,"offset":9}}"#)
                .unwrap(),
            StreamFrame::CaughtUp {
                position: Position {
                    partition: 2,
                    offset: 9
                }
            }
        );
        let frame = json!({"kind": "event", "event": serde_json::to_value(event(2, 10)).unwrap()});
        match StreamFrame::parse(&frame.to_string()).unwrap() {
            StreamFrame::Event { event } => assert_eq!(event.position.unwrap().offset, 10),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            StreamFrame::parse(r#"{"kind":"later"}"#).unwrap(),
            StreamFrame::Unknown
        );
        assert!(StreamFrame::parse(r#"{"kind":"caught_up","version":3}"#).is_err());
        assert_eq!(stream_ack_frame(12), r#"{"kind":"ack","offset":12}"#);
    }
}
