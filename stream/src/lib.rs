//! Edgeloop's global stream, the pure part: everything a `StreamPartition` Durable Object
//! decides that does not need storage, the network or the clock.
//!
//! The global stream (DESIGN.md, "Global stream") is every event of a tenant, spread over N
//! *partitions*. An aggregate's events always go to the same partition ([`partition_of`]),
//! so they keep their order there. Each aggregate forwards its committed events at least
//! once; the partition takes each event exactly once, in seq order ([`watermark::admit`]),
//! and gives every event it takes the next dense *offset*: `{partition, offset}` is its
//! [`domain::Position`]. Readers page through a partition by offset, narrowed by a
//! [`StreamFilter`].
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

pub mod filter;
pub mod partition;
pub mod watermark;

pub use filter::{FilterError, StreamFilter};
pub use partition::{PartitionCount, PartitionCountError, partition_of};
pub use watermark::{Admission, SeqError};
