//! Edgeloop's global stream, the pure part: everything a `StreamPartition` Durable Object
//! decides that does not need storage, the network or the clock.
//!
//! The global stream (DESIGN.md, "Global stream") is every event of a tenant, spread over N
//! *partitions*. An aggregate's events always go to the same partition ([`partition_of`]),
//! so they keep their order there. Each aggregate forwards its committed events at least
//! once ([`ForwardBatch`]); the partition takes each event exactly once, in seq order
//! ([`watermark::admit`]), answers [`ForwardAck`] or [`ForwardRefusal`], and gives every
//! event it takes the next dense *offset*: `{partition, offset}` is its
//! [`domain::Position`]. Readers page through a partition by offset, narrowed by a
//! [`StreamFilter`]; old ranges are sealed into [`Segment`]s in R2.
//!
//! Like `domain`, this crate does no IO, reads no clock and no random numbers, is not
//! async and does not depend on `worker`: it builds for the host and for
//! `wasm32-unknown-unknown`, and its tests run natively.
//!
//! # Layout
//! * [`partition`] — [`partition_of`] (xxh3-64 of `"{type}:{id}"`, stable forever) and
//!   [`PartitionCount`], the `STREAM_PARTITIONS` var (1..=256, default 4).
//! * [`filter`] — [`StreamFilter`]: `aggregate_type=`, `types=A,B`, `since=` (inclusive),
//!   `until=` (exclusive), parsed from a query, with client-facing [`FilterError`]s.
//! * [`watermark`] — the exactly-once acceptance rule: [`watermark::admit`] a dense batch
//!   against the aggregate's watermark, [`watermark::check_dense`].
//! * [`batch`] — the aggregate → partition messages: [`ForwardBatch`] of
//!   [`ForwardedEvent`]s (MessagePack, payload bytes untouched), [`ForwardAck`],
//!   [`ForwardRefusal`].
//! * [`segment`] — the R2 archive: [`Segment`] and its MessagePack format, object keys
//!   ([`segment::object_key`], [`SegmentKey`]) and the sealing policy
//!   ([`segment::seal_ranges`]).
//! * [`consumer`] — consumer groups for agent loops: [`GroupState`], the pure state machine of
//!   a `ConsumerGroup` object (cursors, leases on batches, ack/nack, retries with backoff,
//!   parking and replay), its [`GroupConfig`] and client-facing [`ConsumerError`]s.
//! * [`pacing`] — [`pacing::next_run`]: when a background step (forwarding, waking
//!   projectors) runs next — at once after a quiet spell, at most once per interval under load.
//! * [`error`] — [`FormatError`], the one error of the batch and segment formats.

pub mod batch;
pub mod consumer;
pub mod error;
pub mod filter;
pub mod pacing;
pub mod partition;
pub mod segment;
pub mod watermark;

pub use batch::{ForwardAck, ForwardBatch, ForwardRefusal, ForwardedEvent};
pub use consumer::{ConsumerError, GroupConfig, GroupState};
pub use error::FormatError;
pub use filter::{FilterError, StreamFilter};
pub use partition::{PartitionCount, PartitionCountError, partition_of};
pub use segment::{Segment, SegmentEvent, SegmentKey};
pub use watermark::{Admission, SeqError};
