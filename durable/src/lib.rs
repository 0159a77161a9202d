//! Edgeloop's Durable Object classes.
//!
//! These are thin adapters: they decode a request, load the aggregate through the
//! [`domain::store::EventStore`] implemented on the object's SQLite database, call the
//! domain, write, and notify live sockets. Every business decision is made in `domain`.
//!
//! # Layout
//! * [`aggregate_object`] — `AggregateObject`, one per aggregate: event log, commands,
//!   state and time travel, listings, hibernating WebSocket subscriptions.
//! * [`sqlite`] — the SQLite event store (schema, atomic append, reads).
//! * [`subscription`] — the WebSocket protocol: frames, acknowledgement window, close codes.
//! * [`http`] — the one error type and its JSON body, listing encodings (JSON, NDJSON,
//!   MessagePack), query parsing shared with the Worker.
//! * [`config`] — limits and tunables read from the Worker's vars.
//! * [`names`] — how aggregates map to Durable Object names, and the trusted headers the
//!   Worker uses to pass the authenticated principal to an object.

pub mod aggregate_object;
pub mod config;
pub mod http;
pub mod names;
pub mod sqlite;
pub mod subscription;

pub use aggregate_object::AggregateObject;
pub use config::Config;
pub use http::ApiError;
