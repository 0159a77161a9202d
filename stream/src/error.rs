//! The one error of the crate's two wire formats ([`crate::batch`] and [`crate::segment`]):
//! bytes or values that break a format's rules.
//!
//! Both formats travel only between Edgeloop's own objects and R2, never from a client, so a
//! [`FormatError`] is an internal error (HTTP 500 `internal`, logged; never shown to a
//! client). Client-facing mistakes have their own types: [`crate::FilterError`] (400) and,
//! for the operator, [`crate::PartitionCountError`].

use domain::codec::CodecError;

use crate::watermark::SeqError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not MessagePack of the expected shape (malformed, truncated, too deep, wrong fields).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A forward batch's seqs are not a dense run from 1 up.
    #[error("forward batch: {0}")]
    Seqs(#[from] SeqError),
    /// A segment written by a format this build does not know (a newer one, or garbage).
    #[error("segment: format version {found} is unknown; this build reads {known}")]
    UnknownFormatVersion { found: u32, known: u32 },
    /// A segment with no events: sealing only ever writes whole, non-empty ranges.
    #[error("segment: no events")]
    EmptySegment,
    /// A segment's range `first_offset..=last_offset` does not hold exactly its events.
    #[error("segment: offsets {first_offset}..={last_offset} do not fit {events} events")]
    RangeMismatch {
        first_offset: u64,
        last_offset: u64,
        events: usize,
    },
    /// A segment's `envelopes` are present but not one per offset of its range.
    #[error("segment: {envelopes} envelopes for offsets {first_offset}..={last_offset}")]
    EnvelopeCount {
        first_offset: u64,
        last_offset: u64,
        envelopes: usize,
    },
    /// A segment's events are not the dense run of offsets from `first_offset`: event `index`
    /// has offset `found` instead of `expected`.
    #[error("segment: event {index} has offset {found}, expected {expected}")]
    OffsetMismatch {
        index: usize,
        expected: u64,
        found: u64,
    },
}
