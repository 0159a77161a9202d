//! Edgeloop's Durable Object classes.
//!
//! These are thin adapters: they read a typed [`call::Call`] from the Worker, load the
//! aggregate through the [`domain::store::EventStore`] implemented on the object's SQLite
//! database, call the domain, write, and notify live sockets. Every business decision is
//! made in `domain`; no object parses a public path.
//!
//! # Layout
//! * [`aggregate_object`] — `AggregateObject`, one per aggregate: event log, commands,
//!   state and time travel, listings, hibernating WebSocket subscriptions.
//! * [`sqlite`] — the SQLite event store (schema, the one column list, atomic append, reads).
//! * [`feed`] — the feed engine: the catch-up → live socket protocol as a pure state
//!   machine (acks, window, close codes), shared by every socket kind.
//! * [`sockets`] — carries out the feed engine's actions on hibernating WebSockets.
//! * [`call`] — the typed Worker → object hand-off (caller + operation).
//! * [`names`] — the Durable Object name of every kind of object, always under a tenant.
//! * [`error`] — the one error type and its JSON body.
//! * [`encoding`] — JSON/NDJSON/MessagePack listings, MessagePack request bodies.
//! * [`params`] — strict query parameters and the listing parameters logs share.
//! * [`config`] — limits and tunables read from the Worker's vars.
//! * [`clock`] — the one clock and event-id source.

pub mod aggregate;
pub mod cache;
pub mod call;
pub mod clock;
pub mod config;
pub mod consumer_group;
pub mod encoding;
pub mod error;
pub mod feed;
pub mod ingestion;
pub mod names;
pub mod params;
pub mod partition;
pub mod projector;
pub mod reactor;
pub mod sockets;
pub mod sql;
pub mod vectors;

pub use aggregate::AggregateObject;
pub use config::Config;
pub use consumer_group::ConsumerGroup;
pub use error::{ApiError, ApiResult};
pub use ingestion::Ingestion;
pub use partition::StreamPartition;
pub use projector::Projector;
pub use reactor::Reactor;
