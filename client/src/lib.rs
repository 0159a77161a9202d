//! The Rust client for Edgeloop: what services, agents, the `edgeloop` CLI, the black-box
//! tests and the benchmarks use to talk to a running Worker over HTTP and WebSocket.
//!
//! ```no_run
//! use client::{At, Client, CommandBody};
//! use serde_json::json;
//!
//! # async fn run(token: String) -> Result<(), client::Error> {
//! let edgeloop = Client::new("http://127.0.0.1:8787")?.with_token(token);
//! let card = CommandBody::new("AddCard", json!({"card_id": "c1", "title": "Ship it"}));
//! let done = edgeloop.command("board", "roadmap", &card).await?; // one key, safe retries
//! let then = edgeloop.state("board", "roadmap", At::Version(1)).await?;
//! println!("version {} now, {} then", done.version, then.version);
//!
//! let mut live = edgeloop.subscribe("board", "roadmap", 0).await?; // replay, then live
//! loop {
//!     let event = live.next_event().await?; // acked once you ask for the next one
//!     println!("{} {}", event.seq, event.event_type);
//! }
//! # }
//! ```
//!
//! What it guarantees, so callers need not:
//! * **Commands apply at most once.** [`Client::command`] sends an `Idempotency-Key` (a
//!   fresh UUID v4 unless the caller gives one) and reuses it on every retry, so a retry of
//!   an answer lost on the way back returns the original result instead of applying again.
//! * **Transient failures are retried, boundedly.** Connection failures, timeouts, 429,
//!   502, 503 and 504 are retried with jittered exponential backoff that honours
//!   `Retry-After`, within a number of attempts and a total time ([`RetryPolicy`]).
//! * **Subscriptions have no gaps and no duplicates.** A [`Subscription`] acknowledges
//!   what the caller processed, reconnects after a drop (or the server's 4008
//!   `slow_consumer` close) with `?after=<last seq delivered>`, drops replayed events and
//!   refuses a gap.
//! * **Errors are typed.** The server's documented error body becomes [`Error::Api`]
//!   with its `code` and details; helpers read a version conflict or a rejection's rule.
//!
//! Event envelopes and expected versions are the `domain` crate's own types, so a client
//! and the Worker agree on them by construction. This crate does not depend on the Worker
//! (`durable`, `api`) and never will: it speaks only the public HTTP/WebSocket contract.
//!
//! # Layout
//! * [`http`](Client) — [`Client`]: base URL, token, retry policy, timeouts; the raw layer
//!   ([`Client::request`], [`Client::send`], [`Client::get`]) that sends one request and
//!   returns a [`Reply`] whatever its status.
//! * `command` — [`CommandBody`], [`CommandResult`], [`Client::command`].
//! * `read` — [`Client::state`] (now, [`At`] a version or a time), [`Client::events`] and
//!   [`Client::events_before`] pages, [`Client::event_stream`] / [`Client::all_events`].
//! * `knowledge` — [`Client::search_knowledge`] ([`SearchOptions`] → [`SearchAnswer`]),
//!   [`CommandResult::consistency_token`] for read-your-writes.
//! * `socket` — the raw WebSocket layer: [`Client::upgrade`], [`Socket`], [`Frame`], the
//!   server's [`close`] codes.
//! * `subscription` — [`Subscription`]: acks ([`AckMode`]), reconnect, resume, dedupe.
//! * `consumer` — consumer groups: [`Client::create_group`], [`Client::group`] (status),
//!   [`Client::poll`], [`Client::ack`], [`Client::nack`], [`Client::renew`],
//!   [`Client::release`], [`Client::parked`], [`Client::replay_parked`].
//! * [`agent`] — [`agent::Agent`]: the loop over a consumer group that agents run (poll,
//!   handle in order, ack/nack, renew, commands keyed by the causing event, clean stop).
//! * `retry` — [`RetryPolicy`] and the bounded retry loop.
//! * `error` — [`Error`], the one error type.
//!
//! Plain `http://` and `ws://` work as they are. For an `https://` deployment, enable a TLS
//! feature of `reqwest` (`rustls` or `native-tls`) and of `tokio-tungstenite`
//! (`rustls-tls-native-roots` or `native-tls`) in the application's own `Cargo.toml`:
//! Cargo unifies features, so this crate's requests and sockets then speak TLS. It ships
//! without one so that the tests, benchmarks and CLI, which talk to localhost, do not
//! compile a TLS stack.

pub mod agent;
mod command;
mod consumer;
mod error;
mod http;
mod knowledge;
mod read;
mod reply;
mod retry;
mod socket;
mod stream;
mod subscription;

pub use command::{CommandBody, CommandResult, new_idempotency_key};
pub use consumer::{
    Batch, Delivery, Fate, GroupConfig, GroupPartition, GroupSettings, GroupStatus, Lease, LeaseId,
    MAX_POLL_WAIT_MS, NackAction, ParkedEvent, PollRequest, Replay, Start, check_group_name,
};
pub use domain::{EventEnvelope, ExpectedVersion, VersionConflict};
pub use error::{BoxError, Error};
pub use http::{Client, DEFAULT_REQUEST_TIMEOUT};
pub use knowledge::{
    KnowledgeDocument, KnowledgeSource, MAX_SEARCH_RESULTS, SearchAnswer, SearchHit, SearchOptions,
};
pub use read::{At, BackwardPage, EventPage, MAX_PAGE, State};
pub use reply::Reply;
pub use retry::RetryPolicy;
pub use socket::{Frame, Incoming, PROTOCOL, Socket, Upgrade, ack_frame, close};
pub use stream::{
    PageBytes, PartitionStatus, RawPage, StreamFrame, StreamPage, StreamQuery, StreamSubscription,
    StreamUpdate, stream_ack_frame,
};
pub use subscription::{AckMode, SubscribeOptions, Subscription, Update};

/// The version of `reqwest` the raw layer speaks (its `Method`, `RequestBuilder`, headers).
pub use reqwest;

/// The start of a text, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let start: String = text.chars().take(MAX).collect();
        format!("{start}…")
    }
}
