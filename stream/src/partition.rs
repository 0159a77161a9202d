//! Which partition an aggregate's events go to, and how many partitions there are.
//!
//! The rule (DESIGN.md, "Global stream"): an aggregate maps to a partition by a *stable*
//! hash of its name, so all of one aggregate's events land in one partition and keep their
//! order there. Stable means the same answer on every platform (host and wasm32), in every
//! run and in every build: the hash is xxh3-64 (seed 0) of the UTF-8 bytes
//! `"{aggregate_type}:{aggregate_id}"`, taken modulo the partition count. Rust's
//! `DefaultHasher` is not an option: its algorithm may change between releases.
//!
//! The tenant is not hashed. Each tenant has its own set of partitions (objects are keyed
//! by tenant, ARCHITECTURE.md "Tenancy"), so the same aggregate name lands on the same
//! partition *number* in every tenant — which is harmless and makes the mapping easy to
//! reproduce by hand.
//!
//! Changing `STREAM_PARTITIONS` after events have been forwarded moves most aggregates to
//! another partition: their later events would be ordered in a partition that never saw
//! their earlier ones. The count is therefore a deployment-time choice; resizing needs a
//! migration that this crate does not provide.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// The partition (`0..partitions`) of the aggregate `"{aggregate_type}:{aggregate_id}"`.
///
/// xxh3-64 with seed 0 over the bytes of the name, modulo `partitions`. With at most
/// [`PartitionCount::MAX`] partitions, the modulo bias of a 64-bit hash is far below
/// anything measurable. `partitions == 0` is treated as 1 (the answer is 0) so the function
/// never panics; [`PartitionCount`] rules 0 out where the count is configured.
pub fn partition_of(aggregate_type: &str, aggregate_id: &str, partitions: u32) -> u32 {
    // Streaming the three pieces hashes exactly the bytes of the joined name (the xxh3
    // streaming and one-shot forms agree), without allocating it.
    let mut hasher = Xxh3::new();
    hasher.update(aggregate_type.as_bytes());
    hasher.update(b":");
    hasher.update(aggregate_id.as_bytes());
    let partition = hasher.digest() % u64::from(partitions.max(1));
    // Below `partitions`, which is a u32.
    partition as u32
}

/// How many partitions a tenant's global stream has: `1..=256`, default 4.
/// Var `STREAM_PARTITIONS`.
///
/// The upper bound keeps fan-out bounded: a reader of "everything" and every projector
/// and consumer group hold one cursor per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PartitionCount(u32);

impl PartitionCount {
    /// The fewest partitions.
    pub const MIN: u32 = 1;
    /// The most partitions.
    pub const MAX: u32 = 256;
    /// The count when `STREAM_PARTITIONS` is not set.
    pub const DEFAULT: Self = Self(4);

    /// Parses the value of the `STREAM_PARTITIONS` var. `None` (the var is not set) and a
    /// blank value give [`PartitionCount::DEFAULT`]; surrounding whitespace is ignored.
    ///
    /// Unlike the other vars, a bad value is an error rather than a fall-back to the
    /// default: silently running with another partition count would move aggregates
    /// between partitions (see the module docs).
    pub fn from_var(value: Option<&str>) -> Result<Self, PartitionCountError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::DEFAULT),
            Some(text) => text.parse(),
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Every partition number, `0..count`.
    pub fn partitions(self) -> std::ops::Range<u32> {
        0..self.0
    }

    /// The partition of an aggregate: [`partition_of`] with this count.
    pub fn partition_of(self, aggregate_type: &str, aggregate_id: &str) -> u32 {
        partition_of(aggregate_type, aggregate_id, self.0)
    }
}

impl Default for PartitionCount {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for PartitionCount {
    type Error = PartitionCountError;

    fn try_from(count: u32) -> Result<Self, Self::Error> {
        if (Self::MIN..=Self::MAX).contains(&count) {
            Ok(Self(count))
        } else {
            Err(PartitionCountError::OutOfRange(u64::from(count)))
        }
    }
}

impl From<PartitionCount> for u32 {
    fn from(count: PartitionCount) -> u32 {
        count.0
    }
}

impl FromStr for PartitionCount {
    type Err = PartitionCountError;

    /// A decimal count in `1..=256` (no sign, no whitespace).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PartitionCountError::NotANumber);
        }
        // All digits: the only way to fail is to be larger than u64, which is out of range.
        let count = text.parse::<u64>().unwrap_or(u64::MAX);
        u32::try_from(count)
            .map_err(|_| PartitionCountError::OutOfRange(count))
            .and_then(Self::try_from)
    }
}

impl fmt::Display for PartitionCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `STREAM_PARTITIONS` is not a count in `1..=256`. A deployment mistake, reported to the
/// operator (the Worker should refuse to serve the stream rather than guess).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionCountError {
    #[error("STREAM_PARTITIONS must be a whole number from 1 to 256")]
    NotANumber,
    #[error("STREAM_PARTITIONS must be from 1 to 256, got {0}")]
    OutOfRange(u64),
}

#[cfg(test)]
mod tests {
    use xxhash_rust::xxh3::xxh3_64;

    use super::*;

    #[test]
    fn the_hash_is_xxh3_of_the_joined_name() {
        for (t, id) in [("board", "b1"), ("feedback", ""), ("", ""), ("a", "b:c")] {
            let name = format!("{t}:{id}");
            for n in [1, 3, 4, 7, 256] {
                assert_eq!(
                    u64::from(partition_of(t, id, n)),
                    xxh3_64(name.as_bytes()) % u64::from(n)
                );
            }
        }
    }

    /// Pinned outputs: if this fails, the hash changed and every deployed aggregate would move
    /// to another partition. Do not update the literals; restore the hash.
    #[test]
    fn known_outputs_are_pinned() {
        // The reference value of XXH3-64 (seed 0) for empty input, from the xxHash spec's
        // test vectors: proves the algorithm, not just our own earlier output.
        assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(xxh3_64(b"board:b1"), 0x721f_d552_4804_b97b);
        assert_eq!(partition_of("board", "b1", 4), 3);
        assert_eq!(partition_of("board", "b3", 4), 0);
        assert_eq!(partition_of("feedback", "f-42", 4), 0);
        assert_eq!(partition_of("error_group", "fp-9", 4), 3);
        assert_eq!(partition_of("board", "b1", 256), 123);
        assert_eq!(
            partition_of("board", "0190f3c2-7a4e-7cc1-9a7e-2f9b5d0c1e11", 16),
            2
        );
    }

    #[test]
    fn type_and_id_are_both_part_of_the_name() {
        // Same id, different types (and vice versa) are different aggregates; across 256
        // partitions at least one of these pairs must differ if both parts are hashed.
        let by_type: Vec<u32> = ["board", "feedback", "error_group", "repository"]
            .iter()
            .map(|t| partition_of(t, "x", 256))
            .collect();
        assert!(by_type.windows(2).any(|w| w[0] != w[1]), "{by_type:?}");
        let by_id: Vec<u32> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| partition_of("board", id, 256))
            .collect();
        assert!(by_id.windows(2).any(|w| w[0] != w[1]), "{by_id:?}");
    }

    #[test]
    fn ten_thousand_ids_spread_evenly_over_four_partitions() {
        let mut counts = [0u32; 4];
        for i in 0..10_000 {
            counts[partition_of("board", &format!("board-{i}"), 4) as usize] += 1;
        }
        // 2,500 expected per partition; the standard deviation is ~43, so ±250 is ~6σ:
        // a fair hash never fails this, a broken one (everything in one bucket) always does.
        for count in counts {
            assert!((2_250..=2_750).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn zero_partitions_is_one() {
        assert_eq!(partition_of("board", "b1", 0), 0);
        assert_eq!(partition_of("board", "b1", 1), 0);
    }

    #[test]
    fn the_count_comes_from_the_var() {
        assert_eq!(PartitionCount::from_var(None), Ok(PartitionCount::DEFAULT));
        assert_eq!(PartitionCount::DEFAULT.get(), 4);
        assert_eq!(
            PartitionCount::from_var(Some("")),
            Ok(PartitionCount::DEFAULT)
        );
        assert_eq!(
            PartitionCount::from_var(Some("  ")),
            Ok(PartitionCount::DEFAULT)
        );
        assert_eq!(
            PartitionCount::from_var(Some("1")).map(PartitionCount::get),
            Ok(1)
        );
        assert_eq!(
            PartitionCount::from_var(Some(" 16 ")).map(PartitionCount::get),
            Ok(16)
        );
        assert_eq!(
            PartitionCount::from_var(Some("256")).map(PartitionCount::get),
            Ok(256)
        );
    }

    #[test]
    fn a_bad_count_is_an_error_not_the_default() {
        use PartitionCountError::*;
        assert_eq!(PartitionCount::from_var(Some("0")), Err(OutOfRange(0)));
        assert_eq!(PartitionCount::from_var(Some("257")), Err(OutOfRange(257)));
        assert_eq!(
            PartitionCount::from_var(Some("99999999999")),
            Err(OutOfRange(99_999_999_999))
        );
        assert_eq!(
            PartitionCount::from_var(Some("999999999999999999999999")),
            Err(OutOfRange(u64::MAX))
        );
        for text in ["-1", "+4", "four", "4.0", "0x4", "4 4"] {
            assert_eq!(
                PartitionCount::from_var(Some(text)),
                Err(NotANumber),
                "{text}"
            );
        }
        assert_eq!(PartitionCount::try_from(0), Err(OutOfRange(0)));
        assert!(
            OutOfRange(0)
                .to_string()
                .contains("STREAM_PARTITIONS must be from 1 to 256")
        );
    }

    #[test]
    fn the_count_serializes_as_a_number_and_is_checked_when_read() {
        let count = PartitionCount::try_from(8).unwrap();
        assert_eq!(serde_json::to_string(&count).unwrap(), "8");
        assert_eq!(serde_json::from_str::<PartitionCount>("8").unwrap(), count);
        assert!(serde_json::from_str::<PartitionCount>("0").is_err());
        assert_eq!(
            count.partitions().collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(
            count.partition_of("board", "b1"),
            partition_of("board", "b1", 8)
        );
    }
}
