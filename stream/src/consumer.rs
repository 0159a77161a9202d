//! Consumer groups, the pure part: the state machine a `ConsumerGroup` Durable Object keeps
//! for an agent loop (DESIGN.md, "Agent loops"), with no storage, network or clock.
//!
//! A consumer group is a named reader of the global stream shared by several *consumers*
//! (agent processes). It gives them what persistent subscriptions give in event stores: a
//! durable cursor per partition, leases on delivered batches, ack and nack (retry with
//! backoff, park, skip), redelivery when a lease expires, a retry limit after which an event
//! is parked, and parked-event listing and replay. [`GroupState`] holds all of it and
//! changes only through its methods; the time is an argument (`now_ms`, Unix ms), as are the
//! partitions' heads (their last offsets). The object reads the events of a [`Batch`] from
//! the partitions, stores the state (it is serde-able), and maps [`ConsumerError`]s to HTTP.
//!
//! # Leases: one batch per partition at a time
//! [`GroupState::poll`] grants a consumer one [`Batch`] from one partition, under a new
//! [`LeaseId`] that lasts [`GroupConfig::lease_ms`] unless [renewed](GroupState::renew). The
//! consumer answers each event: [`ack`](GroupState::ack), or [`nack`](GroupState::nack) with
//! a [`NackAction`]. While a batch's lease is *live* (`now_ms < expires_at_ms`) and any of
//! its events is unanswered, its partition is *busy*: no batch of it is granted, to anyone.
//! A consumer may hold batches of several partitions (one per poll).
//!
//! * The partition served is the one served least recently among those that are not busy
//!   and whose next event is deliverable now (ties: the lowest number), so every partition
//!   with work is served within one round of polls, however busy the others are.
//! * A lease ends when all its events are answered (the partition is free at once), when
//!   it is [released](GroupState::release) (its unanswered events are deliverable again at
//!   once, and those deliveries do not count as attempts), or when it expires. After expiry
//!   every call with the lease is refused ([`ConsumerError::LeaseExpired`], 409) whether or
//!   not the events went out again yet, and its unanswered events are delivered again (to
//!   any consumer) with `attempt + 1`. Only the latest batch of a partition is remembered: a
//!   call with an older lease is [`ConsumerError::LeaseNotHeld`] (409), as is one naming
//!   another consumer's lease.
//! * An ack or nack must name an event of the lease's batch ([`ConsumerError::NotInLease`],
//!   400). Answering an event the same way twice is accepted and does nothing (a retried
//!   request); answering it otherwise is [`ConsumerError::AlreadyAnswered`] (409).
//!
//! # Retries, the retry limit, parking
//! * `retry`: the event is delivered again once `retry_backoff_ms × 2^(attempt − 1)` has
//!   passed, capped at `max_backoff_ms` ([`GroupConfig::backoff_ms`]).
//! * An event delivered [`GroupConfig::max_attempts`] times without an ack is parked
//!   ([`ParkCause::MaxAttempts`]) instead of being delivered again: at once when its last
//!   attempt is nacked with `retry`, or by the first poll after its last lease expired.
//! * `park`: the event joins the parked events ([`ParkCause::Nacked`]); `skip`: it is
//!   settled without being handled, like an ack.
//! * Parked events are listed by [`GroupState::parked`] and replayed by
//!   [`GroupState::replay_parked`] with a fresh set of attempts. A replayed event rejoins
//!   its partition's queue (there is no separate retry queue), so it goes out before any
//!   newer event of its partition.
//!
//! # Cursor and status
//! An event is *settled* once acked, skipped or parked, and *unsettled* from its delivery (or
//! replay) until then. A partition's cursor moves forward over settled events, up to the
//! first unsettled or undelivered one, and never moves back: every event up to it was
//! settled at least once. A replayed event above the cursor holds it back like any other
//! unsettled event; one at or below it leaves it where it is (the status counts it as
//! waiting). The cursor is what the object stores durably; a group starts at a cursor
//! ([`StartFrom`]: the beginning, the end, or after an offset per partition). [`GroupState::status`] gives per
//! partition the cursor, the head, the lag (`head − cursor`), the events in flight and
//! waiting, the busy lease and the parked count.
//!
//! # Ordering guarantee
//! Within one partition — so within one aggregate, whose events all go to one partition:
//! 1. **One batch at a time.** From a batch's grant until each of its events is answered,
//!    or its lease expires or is released, no other batch of its partition is granted. So
//!    no two consumers ever hold unanswered events of one partition under live leases.
//! 2. **Nothing overtakes an unsettled event.** A batch is the partition's unsettled events
//!    in offset order up to the first one still backing off, followed — only if every
//!    unsettled event is in it — by new events in offset order. So an event is never
//!    delivered while an event before it in its partition is unsettled, unless that one is
//!    in the same batch. In particular a `retry` holds back all later events of its
//!    partition, through its backoff, until it is acked, skipped or parked.
//! 3. **Parked and skipped events stop blocking.** They are settled: later events go out
//!    after them. A replayed event is unsettled again and goes out before any newer event of
//!    its partition (holding those back until it is settled), but the events that went out
//!    while it was parked are not delivered again: replay does not restore the order
//!    around it.
//! 4. **Within a batch, the consumer decides.** A consumer that acks a later event of a
//!    batch after nacking an earlier one with `retry` has handled the later one first. One
//!    that needs strict order handles its batch in offset order and, at the first failure,
//!    nacks that event with `retry` and releases the lease: the rest come back after the
//!    retry, without losing an attempt.
//!
//! Delivery is at least once: a consumer whose lease expires may have acted on an event
//! that another consumer then receives again (the commands an agent sends carry the event as
//! `causation_id`, DESIGN.md "Agent loops", so its effects can be made idempotent). But
//! settling is exactly once: acks are accepted only under the live lease that delivered the
//! event, so no event is acked twice, and every event is eventually acked, skipped or
//! parked. Across partitions there is no order.
//!
//! # Layout
//! * [`config`] — [`GroupConfig`] and its bounds, [`StartFrom`].
//! * [`group`] — [`GroupState`] and its rules: poll, ack, nack, renew, release, replay.
//! * [`status`] — [`GroupStatus`], [`PartitionStatus`], [`LeaseStatus`].
//! * [`error`] — [`ConsumerError`], with the HTTP status of each variant.

pub mod config;
pub mod error;
pub mod group;
pub mod status;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties;
#[cfg(test)]
mod tests;

pub use config::{GroupConfig, StartFrom};
pub use error::ConsumerError;
pub use group::{
    AckOutcome, Answer, Batch, Delivery, Fate, GroupState, LeaseId, NackAction, NackOutcome,
    ParkCause, ParkedEvent, ParkedSelection, PollOutcome, Released,
};
pub use status::{GroupStatus, LeaseStatus, PartitionStatus};

/// Longest reason a consumer may give with a nack, in characters: it is kept in the state.
pub const MAX_REASON_CHARS: usize = 1000;
