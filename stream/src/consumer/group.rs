//! [`GroupState`]: a consumer group's cursors, leases, retries and parked events, and every
//! rule that changes them. See the [module docs](super) for the rules.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use domain::Position;
use serde::{Deserialize, Serialize};

use super::{ConsumerError, GroupConfig, MAX_REASON_CHARS, StartFrom};
use crate::PartitionCount;

/// One batch's lease. Unique within a group for its whole life: the state counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a consumer does with an event it could not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackAction {
    /// Deliver it again after the backoff (parked instead if its attempts are used up).
    Retry,
    /// Set it aside for an operator: it joins the parked events and stops blocking its
    /// partition.
    Park,
    /// Drop it: settled like an ack, without having been handled.
    Skip,
}

/// How an event of a batch was answered under its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Not yet: the event is in flight.
    Unanswered,
    Ack,
    Retry,
    Park,
    Skip,
}

impl From<NackAction> for Answer {
    fn from(action: NackAction) -> Self {
        match action {
            NackAction::Retry => Self::Retry,
            NackAction::Park => Self::Park,
            NackAction::Skip => Self::Skip,
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unanswered => "unanswered",
            Self::Ack => "ack",
            Self::Retry => "retry",
            Self::Park => "park",
            Self::Skip => "skip",
        })
    }
}

/// Why an event was parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkCause {
    /// A consumer nacked it with [`NackAction::Park`].
    Nacked { consumer: String },
    /// It was delivered [`GroupConfig::max_attempts`] times without an ack.
    MaxAttempts,
}

/// An event set aside until an operator replays it ([`GroupState::replay_parked`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    pub position: Position,
    /// How often it was delivered before it was parked.
    pub deliveries: u32,
    pub parked_at_ms: u64,
    pub cause: ParkCause,
    /// The reason the last consumer gave when it nacked the event, if any.
    pub reason: Option<String>,
}

/// One event of a batch: the object reads it at `offset` of the batch's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub offset: u64,
    /// 1 for a first delivery, 2 for the first redelivery, … (since the last replay).
    pub attempt: u32,
}

/// Events granted to one consumer under one lease, in offset order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub lease: LeaseId,
    pub partition: u32,
    /// Never empty.
    pub events: Vec<Delivery>,
    /// The lease ends at this time (exclusive) unless renewed.
    pub expires_at_ms: u64,
}

/// What a [`GroupState::poll`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOutcome {
    /// The batch to hand to the consumer, or `None`: nothing for it now.
    pub batch: Option<Batch>,
    /// Events this poll parked because their attempts were used up (for the object's log).
    pub parked: Vec<ParkedEvent>,
    /// Without a batch: the earliest time something becomes deliverable (a backoff ends, a
    /// busy lease runs out); `None` = not before new events arrive. Always `None` with a batch.
    pub next_ready_ms: Option<u64>,
}

/// What an accepted [`GroupState::ack`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckOutcome {
    pub partition: u32,
    /// Events acked by this call.
    pub acked: usize,
    /// Events that this lease had acked already (a repeated ack is accepted and does nothing).
    pub already_acked: usize,
    /// The partition's cursor afterwards.
    pub cursor: u64,
    /// Every event of the lease's batch is answered: its partition is free for the next batch.
    pub lease_done: bool,
}

/// What happens to a nacked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Delivered again from this time on.
    Retry { at_ms: u64 },
    /// Parked (by the nack, or because a retry had no attempt left).
    Parked,
    /// Settled without being handled.
    Skipped,
}

/// What an accepted [`GroupState::nack`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackOutcome {
    pub partition: u32,
    pub offset: u64,
    pub fate: Fate,
    /// The lease had already answered the event the same way; nothing changed.
    pub repeated: bool,
    /// The partition's cursor afterwards.
    pub cursor: u64,
    /// Every event of the lease's batch is answered.
    pub lease_done: bool,
}

/// What an accepted [`GroupState::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub partition: u32,
    /// Unanswered events handed back: deliverable again at once, and not counted as attempts.
    pub returned: usize,
}

/// Which parked events to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedSelection {
    /// Every parked event.
    All,
    /// Every parked event of one partition.
    Partition(u32),
    /// One parked event ([`ConsumerError::NotParked`] if it is not parked).
    Event(Position),
}

/// A consumer group's whole state: per partition a cursor, the unsettled events, the lease
/// of the latest batch and the parked events. Pure data, serde-able (JSON or MessagePack;
/// map keys are integers, which serde_json writes as strings), changed only through its
/// methods, which take the time as an argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    partitions: BTreeMap<u32, PartitionState>,
    /// The last [`LeaseId`] granted.
    last_lease: u64,
    /// How many batches were granted; each partition remembers the value when it was last
    /// served, which orders partitions fairly without a clock.
    serves: u64,
}

/// One partition of the group.
///
/// Invariants: `cursor <= delivered_through`; every offset in `cursor + 1..=delivered_through`
/// is either in `unsettled` or settled (acked, skipped or parked); offsets in `unsettled` at or
/// below the cursor are replayed parked events; an offset the lease marks
/// [`Answer::Unanswered`] is in `unsettled`; an offset is never both unsettled and parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartitionState {
    /// Every offset up to here was settled at least once.
    pub(super) cursor: u64,
    /// The highest offset ever delivered (or the start position).
    pub(super) delivered_through: u64,
    /// Delivered (or replayed) events not settled yet: in flight, waiting for a retry, back
    /// from an expired or released lease, or replayed.
    pub(super) unsettled: BTreeMap<u64, Unsettled>,
    /// The latest batch's lease, kept after it is done or expired until the next batch
    /// replaces it, so that late calls get a precise answer.
    pub(super) lease: Option<Lease>,
    pub(super) parked: BTreeMap<u64, ParkedEvent>,
    /// [`GroupState::serves`] when this partition last got a batch (0 = never).
    last_served: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Unsettled {
    /// Deliveries since it was first read or last replayed (minus released ones).
    pub(super) deliveries: u32,
    /// Not deliverable before this time (a retry's backoff); 0 = at once.
    pub(super) retry_at_ms: u64,
    /// The reason given with the last `retry` nack.
    reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lease {
    pub(super) id: LeaseId,
    pub(super) consumer: String,
    pub(super) expires_at_ms: u64,
    pub(super) batch: BTreeMap<u64, Answer>,
}

impl Lease {
    pub(super) fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    pub(super) fn unanswered(&self) -> impl Iterator<Item = u64> + '_ {
        self.batch
            .iter()
            .filter(|(_, answer)| **answer == Answer::Unanswered)
            .map(|(&offset, _)| offset)
    }

    /// Live with events in flight: nobody else may be served this partition.
    pub(super) fn busy(&self, now_ms: u64) -> bool {
        self.live(now_ms) && self.unanswered().next().is_some()
    }
}

/// The head the object reported for a partition; an unreported one has no known events.
fn head_of(heads: &BTreeMap<u32, u64>, partition: u32) -> u64 {
    heads.get(&partition).copied().unwrap_or(0)
}

/// The slot's lease, if it is `id`, held by `consumer` and live at `now_ms`.
fn held<'a>(
    slot: &'a mut Option<Lease>,
    consumer: &str,
    id: LeaseId,
    now_ms: u64,
) -> Result<&'a mut Lease, ConsumerError> {
    match slot {
        Some(lease) if lease.id == id && lease.consumer == consumer => {
            if lease.live(now_ms) {
                Ok(lease)
            } else {
                Err(ConsumerError::LeaseExpired {
                    lease: id,
                    expired_at_ms: lease.expires_at_ms,
                })
            }
        }
        _ => Err(ConsumerError::LeaseNotHeld { lease: id }),
    }
}

enum Readiness {
    /// A batch can be served now.
    Ready,
    /// Nothing before this time.
    At(u64),
    /// Nothing before new events arrive.
    Idle,
}

impl GroupState {
    /// A new group over `partitions`, starting where `start` says. `heads` are the
    /// partitions' last offsets now (a missing partition counts as empty); they place
    /// [`StartFrom::End`] and bound [`StartFrom::After`].
    pub fn new(
        partitions: PartitionCount,
        start: &StartFrom,
        heads: &BTreeMap<u32, u64>,
    ) -> Result<Self, ConsumerError> {
        if let StartFrom::After(offsets) = start {
            for (&partition, &after) in offsets {
                if partition >= partitions.get() {
                    return Err(ConsumerError::UnknownPartition {
                        partition,
                        count: partitions.get(),
                    });
                }
                let head = head_of(heads, partition);
                if after > head {
                    return Err(ConsumerError::StartBeyondHead {
                        partition,
                        after,
                        head,
                    });
                }
            }
        }
        let partitions = partitions
            .partitions()
            .map(|partition| {
                let cursor = match start {
                    StartFrom::Beginning => 0,
                    StartFrom::End => head_of(heads, partition),
                    StartFrom::After(offsets) => offsets.get(&partition).copied().unwrap_or(0),
                };
                (partition, PartitionState::starting_after(cursor))
            })
            .collect();
        Ok(Self {
            partitions,
            last_lease: 0,
            serves: 0,
        })
    }

    /// Serves `consumer` a batch, if any partition has one ready: the partition that was
    /// served least recently among those whose next event is deliverable now and that no
    /// other batch keeps busy (ties: the lowest partition). The batch is that partition's
    /// unsettled events in offset order up to the first still backing off, then, if all of
    /// them fit, new events after the last delivered one up to `heads`, at most
    /// [`GroupConfig::max_batch`] in all. It is granted under a new lease at once (there is
    /// no window in which two consumers are planned the same partition); the object then
    /// reads the events and, if that fails, [`release`](Self::release)s the lease.
    ///
    /// First, events whose attempts are used up and that are not in flight are parked.
    pub fn poll(
        &mut self,
        consumer: &str,
        now_ms: u64,
        heads: &BTreeMap<u32, u64>,
        config: &GroupConfig,
    ) -> PollOutcome {
        let mut parked = Vec::new();
        for (&partition, state) in &mut self.partitions {
            state.park_exhausted(partition, now_ms, config.attempts(), &mut parked);
        }
        let mut chosen: Option<(u64, u32)> = None;
        let mut next_ready_ms: Option<u64> = None;
        for (&partition, state) in &self.partitions {
            match state.readiness(now_ms, head_of(heads, partition)) {
                Readiness::Ready => {
                    if chosen.is_none_or(|(served, _)| state.last_served < served) {
                        chosen = Some((state.last_served, partition));
                    }
                }
                Readiness::At(at_ms) => {
                    next_ready_ms = Some(next_ready_ms.map_or(at_ms, |next| next.min(at_ms)));
                }
                Readiness::Idle => {}
            }
        }
        let Some((_, partition)) = chosen else {
            return PollOutcome {
                batch: None,
                parked,
                next_ready_ms,
            };
        };
        self.serves += 1;
        self.last_lease += 1;
        let lease = LeaseId(self.last_lease);
        let serve = self.serves;
        let head = head_of(heads, partition);
        let batch = self
            .partitions
            .get_mut(&partition)
            .map(|state| state.grant(partition, lease, consumer, now_ms, head, config, serve));
        PollOutcome {
            batch,
            parked,
            next_ready_ms: None,
        }
    }

    /// Acks events of `consumer`'s live lease: settled for good. All of `offsets` must be in
    /// the lease's batch and unanswered or acked already (a repeated ack is accepted); one
    /// bad offset refuses the whole call. The cursor advances over the contiguous settled
    /// prefix.
    pub fn ack(
        &mut self,
        consumer: &str,
        lease: LeaseId,
        offsets: &[u64],
        now_ms: u64,
    ) -> Result<AckOutcome, ConsumerError> {
        let (partition, state) = self.lease_partition(lease)?;
        let held = held(&mut state.lease, consumer, lease, now_ms)?;
        for &offset in offsets {
            match held.batch.get(&offset) {
                None => return Err(ConsumerError::NotInLease { lease, offset }),
                Some(Answer::Unanswered | Answer::Ack) => {}
                Some(&answer) => {
                    return Err(ConsumerError::AlreadyAnswered {
                        lease,
                        offset,
                        answer,
                    });
                }
            }
        }
        let (mut acked, mut already_acked) = (0, 0);
        for &offset in offsets {
            if held.batch.insert(offset, Answer::Ack) == Some(Answer::Unanswered) {
                state.unsettled.remove(&offset);
                acked += 1;
            } else {
                already_acked += 1;
            }
        }
        let lease_done = held.unanswered().next().is_none();
        state.advance_cursor();
        Ok(AckOutcome {
            partition,
            acked,
            already_acked,
            cursor: state.cursor,
            lease_done,
        })
    }

    /// Answers one event of `consumer`'s live lease with `action` (see [`NackAction`]);
    /// `reason` (at most [`MAX_REASON_CHARS`] characters) is kept for the parked listing.
    /// Answering an event the same way twice is accepted and changes nothing.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of the rule; a struct would only rename them
    pub fn nack(
        &mut self,
        consumer: &str,
        lease: LeaseId,
        offset: u64,
        action: NackAction,
        reason: Option<&str>,
        now_ms: u64,
        config: &GroupConfig,
    ) -> Result<NackOutcome, ConsumerError> {
        if reason.is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS) {
            return Err(ConsumerError::ReasonTooLong);
        }
        let (partition, state) = self.lease_partition(lease)?;
        let held = held(&mut state.lease, consumer, lease, now_ms)?;
        let answer = Answer::from(action);
        let repeated = match held.batch.get(&offset) {
            None => return Err(ConsumerError::NotInLease { lease, offset }),
            Some(Answer::Unanswered) => false,
            Some(&previous) if previous == answer => true,
            Some(&previous) => {
                return Err(ConsumerError::AlreadyAnswered {
                    lease,
                    offset,
                    answer: previous,
                });
            }
        };
        held.batch.insert(offset, answer);
        let lease_done = held.unanswered().next().is_none();
        if !repeated {
            let reason = reason.map(str::to_owned);
            match action {
                NackAction::Retry => state.retry(partition, offset, reason, now_ms, config),
                NackAction::Park => {
                    let cause = ParkCause::Nacked {
                        consumer: consumer.to_owned(),
                    };
                    state.park(partition, offset, now_ms, cause, reason);
                }
                NackAction::Skip => {
                    state.unsettled.remove(&offset);
                }
            }
            state.advance_cursor();
        }
        Ok(NackOutcome {
            partition,
            offset,
            fate: state.fate_of(offset),
            repeated,
            cursor: state.cursor,
            lease_done,
        })
    }

    /// Extends `consumer`'s live lease to `now_ms + lease_ms`; returns the new expiry.
    pub fn renew(
        &mut self,
        consumer: &str,
        lease: LeaseId,
        now_ms: u64,
        config: &GroupConfig,
    ) -> Result<u64, ConsumerError> {
        let (_, state) = self.lease_partition(lease)?;
        let held = held(&mut state.lease, consumer, lease, now_ms)?;
        held.expires_at_ms = now_ms.saturating_add(config.lease_ms.max(1));
        Ok(held.expires_at_ms)
    }

    /// Ends `consumer`'s live lease now (a graceful stop, or the object failed to read the
    /// batch): its unanswered events are deliverable again at once, and since the consumer
    /// says it did not handle them, these deliveries do not count as attempts.
    pub fn release(
        &mut self,
        consumer: &str,
        lease: LeaseId,
        now_ms: u64,
    ) -> Result<Released, ConsumerError> {
        let (partition, state) = self.lease_partition(lease)?;
        let held = held(&mut state.lease, consumer, lease, now_ms)?;
        let returned: Vec<u64> = held.unanswered().collect();
        for offset in &returned {
            if let Some(event) = state.unsettled.get_mut(offset) {
                event.deliveries = event.deliveries.saturating_sub(1);
            }
        }
        state.lease = None;
        Ok(Released {
            partition,
            returned: returned.len(),
        })
    }

    /// Moves parked events back to be delivered once more, with a fresh set of attempts.
    /// A replayed event rejoins its partition's unsettled events, so it is delivered before
    /// any newer event of that partition, and holds them back until it is settled again;
    /// the cursor does not move back. Returns the replayed positions, in order.
    pub fn replay_parked(
        &mut self,
        which: ParkedSelection,
    ) -> Result<Vec<Position>, ConsumerError> {
        let count = self.partition_count();
        let known = |partition: u32| {
            if partition < count {
                Ok(partition)
            } else {
                Err(ConsumerError::UnknownPartition { partition, count })
            }
        };
        let chosen: Vec<Position> = match which {
            ParkedSelection::All => self.parked().map(|event| event.position).collect(),
            ParkedSelection::Partition(partition) => {
                known(partition)?;
                self.parked_in(partition)
                    .map(|event| event.position)
                    .collect()
            }
            ParkedSelection::Event(position) => {
                known(position.partition)?;
                let parked = self
                    .partitions
                    .get(&position.partition)
                    .is_some_and(|state| state.parked.contains_key(&position.offset));
                if !parked {
                    return Err(ConsumerError::NotParked {
                        partition: position.partition,
                        offset: position.offset,
                    });
                }
                vec![position]
            }
        };
        for position in &chosen {
            if let Some(state) = self.partitions.get_mut(&position.partition) {
                state.parked.remove(&position.offset);
                state.unsettled.insert(position.offset, Unsettled::fresh());
            }
        }
        Ok(chosen)
    }

    /// How many partitions the group covers.
    pub fn partition_count(&self) -> u32 {
        // At most PartitionCount::MAX entries.
        self.partitions.len() as u32
    }

    /// A partition's cursor: every event up to it was settled at least once.
    pub fn cursor(&self, partition: u32) -> Option<u64> {
        self.partitions.get(&partition).map(|state| state.cursor)
    }

    /// Every parked event, by partition then offset.
    pub fn parked(&self) -> impl Iterator<Item = &ParkedEvent> {
        self.partitions
            .values()
            .flat_map(|state| state.parked.values())
    }

    /// One partition's parked events, by offset (none for an unknown partition).
    pub fn parked_in(&self, partition: u32) -> impl Iterator<Item = &ParkedEvent> {
        self.partitions
            .get(&partition)
            .into_iter()
            .flat_map(|state| state.parked.values())
    }

    pub(super) fn partition_states(&self) -> impl Iterator<Item = (u32, &PartitionState)> {
        self.partitions
            .iter()
            .map(|(&partition, state)| (partition, state))
    }

    /// The partition whose latest batch is `lease` (older leases are gone: not held).
    fn lease_partition(
        &mut self,
        lease: LeaseId,
    ) -> Result<(u32, &mut PartitionState), ConsumerError> {
        self.partitions
            .iter_mut()
            .find(|(_, state)| state.lease.as_ref().is_some_and(|held| held.id == lease))
            .map(|(&partition, state)| (partition, state))
            .ok_or(ConsumerError::LeaseNotHeld { lease })
    }
}

impl Unsettled {
    fn fresh() -> Self {
        Self {
            deliveries: 0,
            retry_at_ms: 0,
            reason: None,
        }
    }
}

impl PartitionState {
    fn starting_after(cursor: u64) -> Self {
        Self {
            cursor,
            delivered_through: cursor,
            unsettled: BTreeMap::new(),
            lease: None,
            parked: BTreeMap::new(),
            last_served: 0,
        }
    }

    /// Whether `offset` is in flight: unanswered under a live lease.
    pub(super) fn in_flight(&self, offset: u64, now_ms: u64) -> bool {
        self.lease.as_ref().is_some_and(|lease| {
            lease.live(now_ms) && lease.batch.get(&offset) == Some(&Answer::Unanswered)
        })
    }

    fn readiness(&self, now_ms: u64, head: u64) -> Readiness {
        if let Some(lease) = &self.lease
            && lease.busy(now_ms)
        {
            return Readiness::At(lease.expires_at_ms);
        }
        // The lowest unsettled event goes first; while it backs off, the partition waits.
        match self.unsettled.values().next() {
            Some(first) if first.retry_at_ms > now_ms => Readiness::At(first.retry_at_ms),
            Some(_) => Readiness::Ready,
            None if head > self.delivered_through => Readiness::Ready,
            None => Readiness::Idle,
        }
    }

    #[allow(clippy::too_many_arguments)] // private; called once, from `poll`
    fn grant(
        &mut self,
        partition: u32,
        lease: LeaseId,
        consumer: &str,
        now_ms: u64,
        head: u64,
        config: &GroupConfig,
        serve: u64,
    ) -> Batch {
        let max = config.batch_len();
        let mut offsets = Vec::new();
        let mut waiting = false;
        for (&offset, event) in &self.unsettled {
            if offsets.len() == max {
                break;
            }
            if event.retry_at_ms > now_ms {
                waiting = true;
                break;
            }
            offsets.push(offset);
        }
        // New events only behind every unsettled one: they must not overtake a retry.
        if !waiting && offsets.len() == self.unsettled.len() {
            let room = max - offsets.len();
            offsets.extend((self.delivered_through.saturating_add(1)..=head).take(room));
        }
        let events = offsets
            .iter()
            .map(|&offset| {
                let event = self
                    .unsettled
                    .entry(offset)
                    .or_insert_with(Unsettled::fresh);
                event.deliveries = event.deliveries.saturating_add(1);
                Delivery {
                    offset,
                    attempt: event.deliveries,
                }
            })
            .collect();
        if let Some(&last) = offsets.last() {
            self.delivered_through = self.delivered_through.max(last);
        }
        let expires_at_ms = now_ms.saturating_add(config.lease_ms.max(1));
        self.lease = Some(Lease {
            id: lease,
            consumer: consumer.to_owned(),
            expires_at_ms,
            batch: offsets
                .iter()
                .map(|&offset| (offset, Answer::Unanswered))
                .collect(),
        });
        self.last_served = serve;
        Batch {
            lease,
            partition,
            events,
            expires_at_ms,
        }
    }

    /// Parks every event that is not in flight and was delivered `max_attempts` times.
    fn park_exhausted(
        &mut self,
        partition: u32,
        now_ms: u64,
        max_attempts: u32,
        parked: &mut Vec<ParkedEvent>,
    ) {
        let exhausted: Vec<u64> = self
            .unsettled
            .iter()
            .filter(|(offset, event)| {
                event.deliveries >= max_attempts && !self.in_flight(**offset, now_ms)
            })
            .map(|(&offset, _)| offset)
            .collect();
        for &offset in &exhausted {
            let reason = self
                .unsettled
                .get_mut(&offset)
                .and_then(|event| event.reason.take());
            if let Some(event) =
                self.park(partition, offset, now_ms, ParkCause::MaxAttempts, reason)
            {
                parked.push(event.clone());
            }
        }
        if !exhausted.is_empty() {
            self.advance_cursor();
        }
    }

    /// A `retry` nack: back off, or park if no attempt is left.
    fn retry(
        &mut self,
        partition: u32,
        offset: u64,
        reason: Option<String>,
        now_ms: u64,
        config: &GroupConfig,
    ) {
        let Some(event) = self.unsettled.get_mut(&offset) else {
            return;
        };
        if event.deliveries >= config.attempts() {
            self.park(partition, offset, now_ms, ParkCause::MaxAttempts, reason);
        } else {
            event.retry_at_ms = now_ms.saturating_add(config.backoff_ms(event.deliveries));
            event.reason = reason;
        }
    }

    /// Moves an unsettled event to the parked ones (the caller advances the cursor).
    fn park(
        &mut self,
        partition: u32,
        offset: u64,
        now_ms: u64,
        cause: ParkCause,
        reason: Option<String>,
    ) -> Option<&ParkedEvent> {
        let event = self.unsettled.remove(&offset)?;
        let parked = ParkedEvent {
            position: Position { partition, offset },
            deliveries: event.deliveries,
            parked_at_ms: now_ms,
            cause,
            reason,
        };
        self.parked.insert(offset, parked);
        self.parked.get(&offset)
    }

    /// Moves the cursor over the settled events after it, up to the first unsettled one.
    fn advance_cursor(&mut self) {
        let next_unsettled = self
            .unsettled
            .range((Bound::Excluded(self.cursor), Bound::Unbounded))
            .next();
        self.cursor = match next_unsettled {
            Some((&offset, _)) => offset - 1, // offset > cursor >= 0
            None => self.delivered_through,
        };
    }

    /// What became of an event that was just nacked.
    fn fate_of(&self, offset: u64) -> Fate {
        if let Some(event) = self.unsettled.get(&offset) {
            Fate::Retry {
                at_ms: event.retry_at_ms,
            }
        } else if self.parked.contains_key(&offset) {
            Fate::Parked
        } else {
            Fate::Skipped
        }
    }
}
