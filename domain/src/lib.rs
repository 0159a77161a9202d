//! Edgeloop's domain: the pure heart of an event-sourced backend.
//!
//! An *aggregate* decides *commands* against its state and answers with *events*;
//! applying those events gives the next state. Everything here is deterministic:
//! time, event ids and the actor come in as inputs, and storage is reached only
//! through the [`store::EventStore`] trait, so the same code runs natively in tests
//! and inside a Durable Object on `wasm32-unknown-unknown`.
//!
//! # Layout
//! * [`aggregate`] — the [`Aggregate`] and [`DomainEvent`] traits and the object-safe
//!   [`AggregateState`] wrapper the runtime dispatches through.
//! * [`version`] — expected-version rules (`N`, `"any"`, `"none"`, `"exists"`).
//! * [`envelope`] — the event envelope clients see, and timestamp formatting.
//! * [`codec`] — the one payload codec (MessagePack with named fields).
//! * [`store`] — the repository interface: [`store::EventStore`] and what it reads and
//!   writes (stored events, range queries, idempotency records, snapshots).
//! * [`command_service`] — the command service: [`command_service::CommandRequest`] (a
//!   client's command, decoded strictly: every field absent or of its documented type)
//!   and [`command_service::Loaded`], whose `load`/`at_version` rebuild an aggregate from
//!   a store and whose `execute` runs a command (idempotency, version check, decide,
//!   append, apply, snapshot).
//! * [`memory`] — [`memory::InMemoryStore`], the store for native tests and tools.
//! * [`policy`] — reactive rules (events in, timers out) the Worker's reactor runs; the
//!   [`policy::AutoArchive`] policy.
//! * [`registry`] — aggregate types by name.
//! * [`board`], [`feedback`] — the reference aggregates.
//! * [`error_group`], [`repository`] — the feedback loop's inputs: production errors grouped
//!   by fingerprint and coalesced per window, and development events (pushes, pull requests,
//!   CI runs, releases) deduplicated by delivery.
//! * [`testing`] — the given/when/then harness.
//! * `validate` (private) — the length and label rules the reference aggregates share.
//! * `fields` (private) — the one rule for request fields ("absent or of its documented
//!   type, never a quiet `null`") as serde helpers, and naming the field a decoding error
//!   is about.

pub mod aggregate;
pub mod board;
pub mod codec;
pub mod command_service;
pub mod envelope;
pub mod error_group;
pub mod feedback;
mod fields;
pub mod memory;
pub mod policy;
pub mod registry;
pub mod repository;
pub mod store;
pub mod testing;
mod validate;
pub mod version;

pub use aggregate::{Aggregate, AggregateState, CommandError, DomainEvent, NewEvent, Rejection};
pub use envelope::{EventEnvelope, Metadata, Position};
pub use version::{ExpectedVersion, VersionConflict};
