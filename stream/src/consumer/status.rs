//! [`GroupStatus`]: the figures an operator (and an autoscaling agent) looks at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GroupState, LeaseId};

/// A group at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Every partition, in order.
    pub partitions: Vec<PartitionStatus>,
    /// Sum of the partitions' lags.
    pub lag: u64,
    pub in_flight: usize,
    pub parked: usize,
}

/// One partition of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// Every event up to here was settled (acked, skipped or parked) at least once.
    pub cursor: u64,
    /// The partition's last offset, as reported (never below what was delivered).
    pub head: u64,
    /// `head - cursor`: events not settled yet, including those in flight or waiting.
    pub lag: u64,
    /// Events delivered under a live lease and not answered yet.
    pub in_flight: usize,
    /// Delivered events waiting to go out again: backing off after a retry, back from an
    /// expired or released lease, or replayed from the parked ones.
    pub waiting: usize,
    /// When the soonest backoff among the waiting events ends, if one has not yet.
    pub next_retry_ms: Option<u64>,
    pub parked: usize,
    /// The lease that keeps the partition busy, if any.
    pub lease: Option<LeaseStatus>,
}

/// A live lease with events in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub lease: LeaseId,
    pub consumer: String,
    pub expires_at_ms: u64,
}

impl GroupState {
    /// The group's figures at `now_ms`, against the partitions' `heads` (a partition missing
    /// from `heads` counts as having nothing after what was delivered).
    pub fn status(&self, heads: &BTreeMap<u32, u64>, now_ms: u64) -> GroupStatus {
        let partitions: Vec<PartitionStatus> = self
            .partition_states()
            .map(|(partition, state)| {
                let head = heads
                    .get(&partition)
                    .copied()
                    .unwrap_or(0)
                    .max(state.delivered_through);
                let in_flight = state
                    .unsettled
                    .keys()
                    .filter(|&&offset| state.in_flight(offset, now_ms))
                    .count();
                let next_retry_ms = state
                    .unsettled
                    .iter()
                    .filter(|&(&offset, _)| !state.in_flight(offset, now_ms))
                    .map(|(_, event)| event.retry_at_ms)
                    .filter(|&at_ms| at_ms > now_ms)
                    .min();
                let lease = state
                    .lease
                    .as_ref()
                    .filter(|lease| lease.busy(now_ms))
                    .map(|lease| LeaseStatus {
                        lease: lease.id,
                        consumer: lease.consumer.clone(),
                        expires_at_ms: lease.expires_at_ms,
                    });
                PartitionStatus {
                    partition,
                    cursor: state.cursor,
                    head,
                    lag: head - state.cursor,
                    in_flight,
                    waiting: state.unsettled.len() - in_flight,
                    next_retry_ms,
                    parked: state.parked.len(),
                    lease,
                }
            })
            .collect();
        GroupStatus {
            lag: partitions
                .iter()
                .fold(0u64, |lag, p| lag.saturating_add(p.lag)),
            in_flight: partitions.iter().map(|p| p.in_flight).sum(),
            parked: partitions.iter().map(|p| p.parked).sum(),
            partitions,
        }
    }
}
