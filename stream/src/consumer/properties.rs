//! Random interleavings of polls, acks, nacks, renewals, releases, replays, new events and
//! the passing of time by two or three consumers over up to three partitions, checked
//! against what the consumers themselves observe: no two live leases hold unanswered events
//! of one partition, nothing overtakes an unsettled event, no event is acked twice, attempt
//! counts and refusals are what the rules say; and after a final drain every event was
//! acked (or skipped) or parked, exactly one of the two, and every cursor is at its head.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;
use crate::PartitionCount;

const CONSUMERS: [&str; 3] = ["a", "b", "c"];

/// An event: `(partition, offset)` (`domain::Position` has no order, so it is no map key).
type Event = (u32, u64);

fn event_of(position: domain::Position) -> Event {
    (position.partition, position.offset)
}

fn config() -> GroupConfig {
    GroupConfig {
        lease_ms: 1_000,
        max_attempts: 3,
        retry_backoff_ms: 100,
        max_backoff_ms: 250,
        max_batch: 3,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Poll {
        consumer: usize,
    },
    /// `pick` chooses one of the consumer's three latest batches; `mask` a subset of it.
    Ack {
        consumer: usize,
        pick: usize,
        mask: u8,
    },
    Nack {
        consumer: usize,
        pick: usize,
        event: usize,
        action: NackAction,
    },
    Renew {
        consumer: usize,
        pick: usize,
    },
    Release {
        consumer: usize,
        pick: usize,
    },
    Wait {
        ms: u64,
    },
    Append {
        partition: u32,
        events: u64,
    },
    Replay,
}

fn op(consumers: usize, partitions: u32) -> impl Strategy<Value = Op> {
    let action = prop_oneof![
        Just(NackAction::Retry),
        Just(NackAction::Park),
        Just(NackAction::Skip)
    ];
    prop_oneof![
        4 => (0..consumers).prop_map(|consumer| Op::Poll { consumer }),
        4 => (0..consumers, 0..3usize, any::<u8>())
            .prop_map(|(consumer, pick, mask)| Op::Ack { consumer, pick, mask }),
        3 => (0..consumers, 0..3usize, 0..3usize, action)
            .prop_map(|(consumer, pick, event, action)| Op::Nack { consumer, pick, event, action }),
        1 => (0..consumers, 0..3usize).prop_map(|(consumer, pick)| Op::Renew { consumer, pick }),
        1 => (0..consumers, 0..3usize).prop_map(|(consumer, pick)| Op::Release { consumer, pick }),
        3 => (0..1_500u64).prop_map(|ms| Op::Wait { ms }),
        2 => (0..partitions, 0..4u64).prop_map(|(partition, events)| Op::Append { partition, events }),
        1 => Just(Op::Replay),
    ]
}

/// A batch as its consumer knows it.
struct Held {
    lease: LeaseId,
    partition: u32,
    answers: BTreeMap<u64, Answer>,
    expires_at_ms: u64,
}

impl Held {
    fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    fn unanswered(&self) -> usize {
        self.answers
            .values()
            .filter(|answer| **answer == Answer::Unanswered)
            .count()
    }

    /// Live with unanswered events: the group must still hold this lease.
    fn busy(&self, now_ms: u64) -> bool {
        self.live(now_ms) && self.unanswered() > 0
    }
}

/// The world outside the group: time, heads, and what the consumers were told.
struct World {
    group: GroupState,
    now_ms: u64,
    heads: BTreeMap<u32, u64>,
    held: Vec<Vec<Held>>,
    /// Highest offset delivered per partition.
    delivered_through: BTreeMap<u32, u64>,
    /// Deliveries of each event since it was first read or last replayed, minus releases.
    deliveries: BTreeMap<Event, u32>,
    /// How often each event was acked or skipped.
    acked: BTreeMap<Event, u32>,
    parked: BTreeSet<Event>,
    /// Per partition: the contiguous settled prefix, which never moves back.
    cursors: BTreeMap<u32, u64>,
}

impl World {
    fn new(partitions: u32, consumers: usize, heads: BTreeMap<u32, u64>) -> Self {
        let count = PartitionCount::try_from(partitions).unwrap();
        Self {
            group: GroupState::new(count, &StartFrom::Beginning, &heads).unwrap(),
            now_ms: 0,
            heads,
            held: (0..consumers).map(|_| Vec::new()).collect(),
            delivered_through: BTreeMap::new(),
            deliveries: BTreeMap::new(),
            acked: BTreeMap::new(),
            parked: BTreeSet::new(),
            cursors: BTreeMap::new(),
        }
    }

    fn settled(&self, position: Event) -> bool {
        self.acked.get(&position).copied().unwrap_or(0) > 0 || self.parked.contains(&position)
    }

    fn pick(&self, consumer: usize, pick: usize) -> Option<usize> {
        let len = self.held[consumer].len();
        (len > 0).then(|| len - 1 - pick % len.min(3))
    }

    fn record_parked(&mut self, event: &ParkedEvent) -> Result<(), TestCaseError> {
        let position = event_of(event.position);
        prop_assert!(!self.settled(position), "{position:?} parked once settled");
        prop_assert_eq!(event.deliveries, self.deliveries[&position]);
        if event.cause == ParkCause::MaxAttempts {
            prop_assert!(event.deliveries >= config().max_attempts);
        }
        self.parked.insert(position);
        Ok(())
    }

    fn record_acked(&mut self, position: Event) -> Result<(), TestCaseError> {
        prop_assert!(!self.settled(position), "{position:?} acked once settled");
        *self.acked.entry(position).or_default() += 1;
        Ok(())
    }

    fn poll(&mut self, consumer: usize) -> Result<bool, TestCaseError> {
        let outcome = self
            .group
            .poll(CONSUMERS[consumer], self.now_ms, &self.heads, &config());
        for event in &outcome.parked {
            self.record_parked(event)?;
        }
        let Some(batch) = outcome.batch else {
            return Ok(false);
        };
        let partition = batch.partition;
        let offsets: Vec<u64> = batch.events.iter().map(|event| event.offset).collect();
        prop_assert!(!offsets.is_empty() && offsets.len() <= config().max_batch as usize);
        prop_assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "offset order"
        );
        prop_assert_eq!(batch.expires_at_ms, self.now_ms + config().lease_ms);

        // One batch at a time: nobody holds this partition's events under a live lease.
        let busy = self
            .held
            .iter()
            .flatten()
            .any(|held| held.partition == partition && held.busy(self.now_ms));
        prop_assert!(!busy, "partition {partition} granted while busy");

        // Nothing overtakes an unsettled event; new events follow the delivered ones densely.
        let through = self.delivered_through.get(&partition).copied().unwrap_or(0);
        let last = *offsets.last().unwrap();
        for offset in 1..=last.min(through) {
            let position = (partition, offset);
            if !self.settled(position) {
                prop_assert!(
                    offsets.contains(&offset),
                    "{position:?} overtaken by {offsets:?}"
                );
            }
        }
        let new: Vec<u64> = offsets.iter().copied().filter(|&o| o > through).collect();
        prop_assert_eq!(new, (through + 1..=last.max(through)).collect::<Vec<_>>());
        prop_assert!(last <= self.heads[&partition]);

        for event in &batch.events {
            let position = (partition, event.offset);
            prop_assert!(
                !self.settled(position),
                "{position:?} delivered once settled"
            );
            let deliveries = self.deliveries.entry(position).or_default();
            *deliveries += 1;
            prop_assert_eq!(event.attempt, *deliveries);
            prop_assert!(event.attempt <= config().max_attempts);
        }
        self.delivered_through.insert(partition, last.max(through));
        self.held[consumer].push(Held {
            lease: batch.lease,
            partition,
            answers: offsets.iter().map(|&o| (o, Answer::Unanswered)).collect(),
            expires_at_ms: batch.expires_at_ms,
        });
        Ok(true)
    }

    fn ack(&mut self, consumer: usize, index: usize, offsets: &[u64]) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let held = &self.held[consumer][index];
        let (lease, partition, busy, live) =
            (held.lease, held.partition, held.busy(now), held.live(now));
        let conflict = offsets
            .iter()
            .any(|o| !matches!(held.answers[o], Answer::Unanswered | Answer::Ack));
        let fresh: BTreeSet<u64> = offsets
            .iter()
            .copied()
            .filter(|o| held.answers[o] == Answer::Unanswered)
            .collect();
        let result = self.group.ack(CONSUMERS[consumer], lease, offsets, now);
        match result {
            Ok(outcome) => {
                prop_assert!(
                    live && !conflict,
                    "accepted: live {live}, conflict {conflict}"
                );
                prop_assert_eq!(outcome.acked, fresh.len());
                for &offset in &fresh {
                    self.record_acked((partition, offset))?;
                    self.held[consumer][index]
                        .answers
                        .insert(offset, Answer::Ack);
                }
                prop_assert_eq!(
                    outcome.lease_done,
                    self.held[consumer][index].unanswered() == 0
                );
            }
            Err(ConsumerError::LeaseExpired { .. }) => prop_assert!(!live),
            Err(ConsumerError::LeaseNotHeld { .. }) => prop_assert!(!busy),
            Err(ConsumerError::AlreadyAnswered { .. }) => prop_assert!(conflict),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        Ok(())
    }

    fn nack(
        &mut self,
        consumer: usize,
        index: usize,
        offset: u64,
        action: NackAction,
    ) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let held = &self.held[consumer][index];
        let (lease, partition, busy, live) =
            (held.lease, held.partition, held.busy(now), held.live(now));
        let previous = held.answers[&offset];
        let position = (partition, offset);
        let result = self.group.nack(
            CONSUMERS[consumer],
            lease,
            offset,
            action,
            None,
            now,
            &config(),
        );
        match result {
            Ok(outcome) => {
                prop_assert!(live);
                prop_assert!(previous == Answer::Unanswered || previous == Answer::from(action));
                prop_assert_eq!(outcome.repeated, previous != Answer::Unanswered);
                if !outcome.repeated {
                    let deliveries = self.deliveries[&position];
                    match (action, outcome.fate) {
                        (NackAction::Retry, Fate::Retry { at_ms }) => {
                            prop_assert!(deliveries < config().max_attempts);
                            prop_assert_eq!(at_ms, now + config().backoff_ms(deliveries));
                        }
                        (NackAction::Retry, Fate::Parked) => {
                            prop_assert!(deliveries >= config().max_attempts);
                            self.parked.insert(position);
                        }
                        (NackAction::Park, Fate::Parked) => {
                            self.parked.insert(position);
                        }
                        (NackAction::Skip, Fate::Skipped) => self.record_acked(position)?,
                        (action, fate) => prop_assert!(false, "{action:?} became {fate:?}"),
                    }
                    self.held[consumer][index]
                        .answers
                        .insert(offset, Answer::from(action));
                }
            }
            Err(ConsumerError::LeaseExpired { .. }) => prop_assert!(!live),
            Err(ConsumerError::LeaseNotHeld { .. }) => prop_assert!(!busy),
            Err(ConsumerError::AlreadyAnswered { answer, .. }) => {
                prop_assert_eq!(answer, previous);
                prop_assert!(answer != Answer::Unanswered && answer != Answer::from(action));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        Ok(())
    }

    fn renew(&mut self, consumer: usize, index: usize) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let held = &mut self.held[consumer][index];
        match self
            .group
            .renew(CONSUMERS[consumer], held.lease, now, &config())
        {
            Ok(expires_at_ms) => {
                prop_assert!(held.live(now));
                prop_assert_eq!(expires_at_ms, now + config().lease_ms);
                held.expires_at_ms = expires_at_ms;
            }
            Err(ConsumerError::LeaseExpired { .. }) => prop_assert!(!held.live(now)),
            Err(ConsumerError::LeaseNotHeld { .. }) => prop_assert!(!held.busy(now)),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        Ok(())
    }

    fn release(&mut self, consumer: usize, index: usize) -> Result<(), TestCaseError> {
        let now = self.now_ms;
        let held = &mut self.held[consumer][index];
        match self.group.release(CONSUMERS[consumer], held.lease, now) {
            Ok(released) => {
                prop_assert!(held.live(now));
                prop_assert_eq!(released.returned, held.unanswered());
                for (&offset, answer) in &mut held.answers {
                    if *answer == Answer::Unanswered {
                        let position = (held.partition, offset);
                        *self.deliveries.get_mut(&position).unwrap() -= 1;
                    }
                }
                held.expires_at_ms = now; // gone: no later call is accepted
            }
            Err(ConsumerError::LeaseExpired { .. }) => prop_assert!(!held.live(now)),
            Err(ConsumerError::LeaseNotHeld { .. }) => prop_assert!(!held.busy(now)),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        Ok(())
    }

    fn replay(&mut self) -> Result<(), TestCaseError> {
        let replayed = self.group.replay_parked(ParkedSelection::All).unwrap();
        let replayed: Vec<Event> = replayed.into_iter().map(event_of).collect();
        prop_assert_eq!(&replayed, &self.parked.iter().copied().collect::<Vec<_>>());
        for position in replayed {
            self.parked.remove(&position);
            self.deliveries.insert(position, 0);
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Poll { consumer } => {
                self.poll(consumer)?;
            }
            Op::Ack {
                consumer,
                pick,
                mask,
            } => {
                if let Some(index) = self.pick(consumer, pick) {
                    let offsets: Vec<u64> = self.held[consumer][index]
                        .answers
                        .keys()
                        .enumerate()
                        .filter(|(bit, _)| mask & (1 << bit) != 0)
                        .map(|(_, &offset)| offset)
                        .collect();
                    self.ack(consumer, index, &offsets)?;
                }
            }
            Op::Nack {
                consumer,
                pick,
                event,
                action,
            } => {
                if let Some(index) = self.pick(consumer, pick) {
                    let answers = &self.held[consumer][index].answers;
                    let offset = *answers.keys().nth(event % answers.len()).unwrap();
                    self.nack(consumer, index, offset, action)?;
                }
            }
            Op::Renew { consumer, pick } => {
                if let Some(index) = self.pick(consumer, pick) {
                    self.renew(consumer, index)?;
                }
            }
            Op::Release { consumer, pick } => {
                if let Some(index) = self.pick(consumer, pick) {
                    self.release(consumer, index)?;
                }
            }
            Op::Wait { ms } => self.now_ms += ms,
            Op::Append { partition, events } => *self.heads.get_mut(&partition).unwrap() += events,
            Op::Replay => self.replay()?,
        }
        self.check()
    }

    /// What holds after every step.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let status = self.group.status(&self.heads, self.now_ms);
        for partition in &status.partitions {
            let p = partition.partition;
            let busy = self
                .held
                .iter()
                .flatten()
                .filter(|held| held.partition == p && held.busy(self.now_ms))
                .count();
            prop_assert!(busy <= 1, "{busy} live leases hold partition {p}");
            prop_assert_eq!(partition.lease.is_some(), busy == 1);
            let mut cursor = self.cursors.get(&p).copied().unwrap_or(0);
            while self.settled((p, cursor + 1)) {
                cursor += 1;
            }
            self.cursors.insert(p, cursor);
            prop_assert_eq!(partition.cursor, cursor, "cursor of partition {}", p);
        }
        let parked: BTreeSet<Event> = self
            .group
            .parked()
            .map(|event| event_of(event.position))
            .collect();
        prop_assert_eq!(&parked, &self.parked);
        Ok(())
    }

    /// One consumer polls and acks everything, with time passing so that leases expire and
    /// backoffs end, until nothing is left.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..1_000 {
            self.now_ms += 10_000;
            if self.poll(0)? {
                let index = self.held[0].len() - 1;
                let offsets: Vec<u64> = self.held[0][index].answers.keys().copied().collect();
                self.ack(0, index, &offsets)?;
            } else {
                let outcome = self
                    .group
                    .poll(CONSUMERS[0], self.now_ms, &self.heads, &config());
                prop_assert_eq!(outcome.batch, None);
                prop_assert_eq!(outcome.next_ready_ms, None, "idle with work left");
                return self.check();
            }
            self.check()?;
        }
        prop_assert!(false, "the drain did not finish");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_is_settled_once_in_order_and_by_one_consumer_at_a_time(
        (partitions, consumers, initial, ops) in (1u32..=3, 2usize..=3).prop_flat_map(|(partitions, consumers)| (
            Just(partitions),
            Just(consumers),
            prop::collection::vec(0u64..6, partitions as usize),
            prop::collection::vec(op(consumers, partitions), 1..150),
        ))
    ) {
        let heads: BTreeMap<u32, u64> = (0..partitions).zip(initial).collect();
        let mut world = World::new(partitions, consumers, heads);
        for op in ops {
            world.apply(op)?;
        }
        world.drain()?;

        let status = world.group.status(&world.heads, world.now_ms);
        for (&partition, &head) in &world.heads {
            for offset in 1..=head {
                let position = (partition, offset);
                let acked = world.acked.get(&position).copied().unwrap_or(0);
                let parked = world.parked.contains(&position);
                prop_assert!(
                    (acked == 1) != parked,
                    "{position:?}: acked {acked} times, parked {parked}"
                );
            }
            let figures = &status.partitions[partition as usize];
            prop_assert_eq!((figures.cursor, figures.lag), (head, 0));
            prop_assert_eq!((figures.in_flight, figures.waiting), (0, 0));
        }
        prop_assert_eq!(status.parked, world.parked.len());
    }
}
