//! A consumer group's settings and where it starts reading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConsumerError;

/// Most events in one batch ([`GroupConfig::max_batch`]). A batch is one lease, so a bigger
/// one only makes a slow consumer hold its partition longer.
pub const MAX_BATCH: u32 = 1000;
/// Longest lease ([`GroupConfig::lease_ms`]): one hour. A consumer that needs longer renews.
pub const MAX_LEASE_MS: u64 = 3_600_000;
/// Most deliveries of one event ([`GroupConfig::max_attempts`]).
pub const MAX_ATTEMPTS: u32 = 100;

/// How a consumer group hands out events. Serde-able, so the object stores it with the group.
///
/// The defaults suit agent loops, whose consumers are slow (a model call per event) and few:
/// a one-minute lease, small batches, five attempts with a backoff of 1, 2, 4, 8 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// How long a batch's lease lasts from its delivery or last renewal, in ms (1..=1 h).
    pub lease_ms: u64,
    /// Deliveries of an event without an ack before it is parked (1..=100).
    pub max_attempts: u32,
    /// The backoff after a consumer's first `retry` nack of an event, in ms; it doubles with
    /// every further delivery, up to `max_backoff_ms`.
    pub retry_backoff_ms: u64,
    /// The longest backoff, in ms (at least `retry_backoff_ms`).
    pub max_backoff_ms: u64,
    /// Most events in one batch (1..=1000).
    pub max_batch: u32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            lease_ms: 60_000,
            max_attempts: 5,
            retry_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            max_batch: 10,
        }
    }
}

impl GroupConfig {
    /// Checks the bounds documented on each field ([`ConsumerError::BadConfig`], HTTP 400).
    /// The group's methods never panic on a config that fails this check (they treat a zero
    /// as one), but it is the object's job to refuse one when a group is created.
    pub fn check(&self) -> Result<(), ConsumerError> {
        let problem = if !(1..=MAX_LEASE_MS).contains(&self.lease_ms) {
            "`lease_ms` must be between 1 and 3600000"
        } else if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            "`max_attempts` must be between 1 and 100"
        } else if self.max_backoff_ms < self.retry_backoff_ms {
            "`max_backoff_ms` must be at least `retry_backoff_ms`"
        } else if !(1..=MAX_BATCH).contains(&self.max_batch) {
            "`max_batch` must be between 1 and 1000"
        } else {
            return Ok(());
        };
        Err(ConsumerError::BadConfig(problem))
    }

    /// The wait before redelivering an event nacked with `retry` after its `deliveries`-th
    /// delivery: `retry_backoff_ms × 2^(deliveries - 1)`, at most `max_backoff_ms`.
    pub fn backoff_ms(&self, deliveries: u32) -> u64 {
        let doublings = deliveries.saturating_sub(1);
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        self.retry_backoff_ms
            .saturating_mul(factor)
            .min(self.max_backoff_ms)
    }

    pub(super) fn batch_len(&self) -> usize {
        self.max_batch.max(1) as usize
    }

    pub(super) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Where a new group starts in each partition. Every variant names a *cursor*: the group
/// will deliver the events after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// Every event, from offset 1.
    Beginning,
    /// Only events appended after the group is created (cursor = each partition's head).
    End,
    /// After the given offset of each listed partition (`0` = from the beginning), like a
    /// reader's `after=`; partitions not listed start from the beginning, so none of their
    /// events is missed.
    After(BTreeMap<u32, u64>),
}
