//! One test per rule of the module docs, in the order they are documented there.

use std::collections::BTreeMap;

use domain::Position;

use super::*;
use crate::PartitionCount;

const A: &str = "agent-a";
const B: &str = "agent-b";

/// Short numbers so the timings read easily: leases of 1 s, backoff 100 ms doubling up to
/// 250 ms, three attempts, batches of three.
fn config() -> GroupConfig {
    GroupConfig {
        lease_ms: 1_000,
        max_attempts: 3,
        retry_backoff_ms: 100,
        max_backoff_ms: 250,
        max_batch: 3,
    }
}

fn heads(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
    pairs.iter().copied().collect()
}

fn group(partitions: u32, start: StartFrom, heads: &BTreeMap<u32, u64>) -> GroupState {
    let count = PartitionCount::try_from(partitions).unwrap();
    GroupState::new(count, &start, heads).unwrap()
}

/// A group over one partition holding events 1..=`head`, read from the beginning.
fn one_partition(head: u64) -> (GroupState, BTreeMap<u32, u64>) {
    let heads = heads(&[(0, head)]);
    (group(1, StartFrom::Beginning, &heads), heads)
}

fn poll(group: &mut GroupState, consumer: &str, now_ms: u64, heads: &BTreeMap<u32, u64>) -> Batch {
    group
        .poll(consumer, now_ms, heads, &config())
        .batch
        .expect("a batch")
}

fn offsets(batch: &Batch) -> Vec<u64> {
    batch.events.iter().map(|event| event.offset).collect()
}

fn attempts(batch: &Batch) -> Vec<u32> {
    batch.events.iter().map(|event| event.attempt).collect()
}

fn nack(
    group: &mut GroupState,
    consumer: &str,
    batch: &Batch,
    offset: u64,
    action: NackAction,
    now_ms: u64,
) -> Result<NackOutcome, ConsumerError> {
    group.nack(
        consumer,
        batch.lease,
        offset,
        action,
        None,
        now_ms,
        &config(),
    )
}

// --- leases -------------------------------------------------------------------------------

#[test]
fn a_poll_grants_the_first_events_of_a_partition_in_order_under_a_lease() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 10, &heads);
    assert_eq!(batch.partition, 0);
    assert_eq!(offsets(&batch), [1, 2, 3]);
    assert_eq!(attempts(&batch), [1, 1, 1]);
    assert_eq!(batch.expires_at_ms, 1_010);
}

#[test]
fn a_busy_partition_is_served_to_no_other_batch_until_its_lease_ends() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    let other = group.poll(B, 500, &heads, &config());
    assert_eq!(other.batch, None);
    assert_eq!(
        other.next_ready_ms,
        Some(batch.expires_at_ms),
        "ask again when it expires"
    );
    // Not even the holder gets a second batch of the partition while the first is out.
    assert_eq!(group.poll(A, 500, &heads, &config()).batch, None);
}

#[test]
fn two_consumers_are_served_different_partitions() {
    let heads = heads(&[(0, 2), (1, 2)]);
    let mut group = group(2, StartFrom::Beginning, &heads);
    assert_eq!(poll(&mut group, A, 0, &heads).partition, 0);
    assert_eq!(poll(&mut group, B, 0, &heads).partition, 1);
}

#[test]
fn answering_the_whole_batch_frees_the_partition_for_anyone() {
    let (mut group, heads) = one_partition(5);
    let first = poll(&mut group, A, 0, &heads);
    let outcome = group.ack(A, first.lease, &[1, 2, 3], 10).unwrap();
    assert!(outcome.lease_done);
    let next = poll(&mut group, B, 10, &heads);
    assert_eq!(offsets(&next), [4, 5]);
}

#[test]
fn an_expired_lease_is_refused_and_its_events_go_to_another_consumer_with_one_more_attempt() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    group.ack(A, batch.lease, &[1], 500).unwrap();

    // Expired at 1000 (exclusive), even though nobody has the events yet.
    assert_eq!(
        group.ack(A, batch.lease, &[2], 1_000),
        Err(ConsumerError::LeaseExpired {
            lease: batch.lease,
            expired_at_ms: 1_000
        })
    );
    let again = poll(&mut group, B, 1_000, &heads);
    assert_eq!(offsets(&again), [2, 3, 4]);
    assert_eq!(attempts(&again), [2, 2, 1]);
    // Once the events went out again, the old lease is simply gone.
    assert_eq!(
        group.ack(A, batch.lease, &[2], 1_001),
        Err(ConsumerError::LeaseNotHeld { lease: batch.lease })
    );
    assert_eq!(group.cursor(0), Some(1));
}

#[test]
fn renewing_keeps_the_partition_past_the_first_expiry() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    assert_eq!(group.renew(A, batch.lease, 900, &config()), Ok(1_900));
    assert_eq!(group.poll(B, 1_500, &heads, &config()).batch, None);
    group.ack(A, batch.lease, &[1, 2, 3], 1_800).unwrap();
    assert_eq!(
        group.renew(A, batch.lease, 1_900, &config()),
        Err(ConsumerError::LeaseExpired {
            lease: batch.lease,
            expired_at_ms: 1_900
        })
    );
}

#[test]
fn another_consumers_lease_is_refused_and_left_intact() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    let refused = Err(ConsumerError::LeaseNotHeld { lease: batch.lease });
    assert_eq!(group.ack(B, batch.lease, &[1], 10).map(|_| ()), refused);
    assert_eq!(
        nack(&mut group, B, &batch, 1, NackAction::Skip, 10).map(|_| ()),
        refused
    );
    assert_eq!(
        group.renew(B, batch.lease, 10, &config()).map(|_| ()),
        refused
    );
    assert_eq!(group.release(B, batch.lease, 10).map(|_| ()), refused);
    assert_eq!(group.ack(A, batch.lease, &[1], 10).unwrap().acked, 1);
    assert_eq!(
        group.ack(A, LeaseId(99), &[1], 10),
        Err(ConsumerError::LeaseNotHeld { lease: LeaseId(99) })
    );
}

#[test]
fn an_ack_naming_an_event_outside_the_batch_is_refused_whole() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    assert_eq!(
        group.ack(A, batch.lease, &[1, 4], 10),
        Err(ConsumerError::NotInLease {
            lease: batch.lease,
            offset: 4
        })
    );
    assert_eq!(group.cursor(0), Some(0), "1 was not acked either");
    assert_eq!(group.ack(A, batch.lease, &[1], 10).unwrap().acked, 1);
}

#[test]
fn answering_again_the_same_way_is_accepted_and_otherwise_refused() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    group.ack(A, batch.lease, &[1], 10).unwrap();
    let again = group.ack(A, batch.lease, &[1, 2], 20).unwrap();
    assert_eq!((again.acked, again.already_acked), (1, 1));

    let parked = nack(&mut group, A, &batch, 3, NackAction::Park, 30).unwrap();
    assert!(!parked.repeated);
    let repeated = nack(&mut group, A, &batch, 3, NackAction::Park, 40).unwrap();
    assert!(repeated.repeated);
    assert_eq!(repeated.fate, Fate::Parked);
    assert_eq!(group.parked().count(), 1);
    assert_eq!(
        group.ack(A, batch.lease, &[3], 50),
        Err(ConsumerError::AlreadyAnswered {
            lease: batch.lease,
            offset: 3,
            answer: Answer::Park
        })
    );
    assert_eq!(
        nack(&mut group, A, &batch, 1, NackAction::Retry, 50).map(|_| ()),
        Err(ConsumerError::AlreadyAnswered {
            lease: batch.lease,
            offset: 1,
            answer: Answer::Ack
        })
    );
}

#[test]
fn release_frees_the_partition_at_once_without_costing_an_attempt() {
    let (mut group, heads) = one_partition(2);
    let batch = poll(&mut group, A, 0, &heads);
    group.ack(A, batch.lease, &[1], 10).unwrap();
    let released = group.release(A, batch.lease, 20).unwrap();
    assert_eq!(
        released,
        Released {
            partition: 0,
            returned: 1
        }
    );
    let next = poll(&mut group, B, 20, &heads);
    assert_eq!(offsets(&next), [2]);
    assert_eq!(attempts(&next), [1]);
    assert_eq!(
        group.ack(A, batch.lease, &[2], 30),
        Err(ConsumerError::LeaseNotHeld { lease: batch.lease })
    );
}

#[test]
fn the_partition_served_least_recently_goes_first() {
    let heads = heads(&[(0, 9), (1, 9), (2, 9)]);
    let mut group = group(3, StartFrom::Beginning, &heads);
    let mut served = Vec::new();
    for now in 0..6 {
        let batch = poll(&mut group, A, now, &heads);
        served.push(batch.partition);
        group.ack(A, batch.lease, &offsets(&batch), now).unwrap();
    }
    assert_eq!(served, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn with_nothing_to_deliver_a_poll_says_wait_for_new_events() {
    let (mut group, heads) = one_partition(0);
    let outcome = group.poll(A, 0, &heads, &config());
    assert_eq!(outcome.batch, None);
    assert_eq!(outcome.next_ready_ms, None);
    // An unknown head counts as empty, too.
    assert_eq!(group.poll(A, 0, &BTreeMap::new(), &config()).batch, None);
}

// --- retries, the retry limit, parking ----------------------------------------------------

#[test]
fn the_backoff_doubles_from_the_base_up_to_the_cap() {
    let config = config();
    let waits: Vec<u64> = (1..=4).map(|attempt| config.backoff_ms(attempt)).collect();
    assert_eq!(waits, [100, 200, 250, 250]);
    assert_eq!(config.backoff_ms(0), 100);
    assert_eq!(config.backoff_ms(u32::MAX), 250, "no overflow");
    let uncapped = GroupConfig {
        max_backoff_ms: u64::MAX,
        ..config
    };
    assert_eq!(uncapped.backoff_ms(200), u64::MAX, "saturates");
}

#[test]
fn a_retry_comes_back_after_its_backoff_and_holds_back_the_events_after_it() {
    let (mut group, heads) = one_partition(3);
    let batch = poll(&mut group, A, 0, &heads);
    let retry = nack(&mut group, A, &batch, 1, NackAction::Retry, 0).unwrap();
    assert_eq!(retry.fate, Fate::Retry { at_ms: 100 });
    group.ack(A, batch.lease, &[2, 3], 10).unwrap();

    // More events arrive, but 1 goes first: the partition waits out its backoff.
    let heads = self::heads(&[(0, 5)]);
    let waiting = group.poll(B, 99, &heads, &config());
    assert_eq!(waiting.batch, None);
    assert_eq!(waiting.next_ready_ms, Some(100));
    let second = poll(&mut group, B, 100, &heads);
    assert_eq!(offsets(&second), [1, 4, 5]);
    assert_eq!(attempts(&second), [2, 1, 1]);

    // The second retry waits twice as long.
    let retry = nack(&mut group, B, &second, 1, NackAction::Retry, 100).unwrap();
    assert_eq!(retry.fate, Fate::Retry { at_ms: 300 });
    group.ack(B, second.lease, &[4, 5], 110).unwrap();
    assert_eq!(group.poll(A, 299, &heads, &config()).batch, None);
    let third = poll(&mut group, A, 300, &heads);
    assert_eq!((offsets(&third), attempts(&third)), (vec![1], vec![3]));
}

#[test]
fn a_retry_of_the_last_attempt_parks_the_event_and_unblocks_the_partition() {
    let (mut group, heads) = one_partition(2);
    let mut now = 0;
    for attempt in 1..=3 {
        let batch = poll(&mut group, A, now, &heads);
        assert_eq!(batch.events[0], Delivery { offset: 1, attempt });
        let outcome = group
            .nack(
                A,
                batch.lease,
                1,
                NackAction::Retry,
                Some("model timeout"),
                now,
                &config(),
            )
            .unwrap();
        group.release(A, batch.lease, now).unwrap(); // hand 2 back: strict order
        if attempt < 3 {
            assert!(matches!(outcome.fate, Fate::Retry { .. }));
            now += 1_000;
        } else {
            assert_eq!(outcome.fate, Fate::Parked);
            assert_eq!(outcome.cursor, 1);
        }
    }
    let parked: Vec<&ParkedEvent> = group.parked().collect();
    assert_eq!(
        parked,
        [&ParkedEvent {
            position: Position {
                partition: 0,
                offset: 1
            },
            deliveries: 3,
            parked_at_ms: now,
            cause: ParkCause::MaxAttempts,
            reason: Some("model timeout".into()),
        }]
    );
    let next = poll(&mut group, A, now, &heads);
    assert_eq!((offsets(&next), attempts(&next)), (vec![2], vec![1]));
}

#[test]
fn an_event_whose_last_lease_expired_is_parked_at_the_next_poll() {
    let (mut group, heads) = one_partition(2);
    let mut now = 0;
    for attempt in 1..=3 {
        let batch = poll(&mut group, A, now, &heads);
        assert_eq!(batch.events[0], Delivery { offset: 1, attempt });
        now = batch.expires_at_ms; // the consumer crashed
    }
    let outcome = group.poll(B, now, &heads, &config());
    let parked: Vec<(Position, u32, &ParkCause)> = outcome
        .parked
        .iter()
        .map(|event| (event.position, event.deliveries, &event.cause))
        .collect();
    assert_eq!(
        parked,
        [
            (
                Position {
                    partition: 0,
                    offset: 1
                },
                3,
                &ParkCause::MaxAttempts
            ),
            (
                Position {
                    partition: 0,
                    offset: 2
                },
                3,
                &ParkCause::MaxAttempts
            ),
        ]
    );
    assert_eq!(outcome.batch, None);
    assert_eq!(group.cursor(0), Some(2));
}

#[test]
fn parked_and_skipped_events_do_not_block_the_ones_after_them() {
    let (mut group, heads) = one_partition(4);
    let batch = poll(&mut group, A, 0, &heads);
    group
        .nack(
            A,
            batch.lease,
            1,
            NackAction::Park,
            Some("unknown card"),
            5,
            &config(),
        )
        .unwrap();
    let skipped = nack(&mut group, A, &batch, 2, NackAction::Skip, 6).unwrap();
    assert_eq!(skipped.fate, Fate::Skipped);
    assert_eq!(group.ack(A, batch.lease, &[3], 7).unwrap().cursor, 3);
    assert_eq!(offsets(&poll(&mut group, B, 8, &heads)), [4]);

    let parked: Vec<&ParkedEvent> = group.parked_in(0).collect();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position.offset, 1);
    assert_eq!(parked[0].cause, ParkCause::Nacked { consumer: A.into() });
    assert_eq!(parked[0].reason.as_deref(), Some("unknown card"));
    assert_eq!(parked[0].parked_at_ms, 5);
}

#[test]
fn a_replayed_event_goes_out_before_newer_events_with_fresh_attempts() {
    let (mut group, heads) = one_partition(3);
    let batch = poll(&mut group, A, 0, &heads);
    nack(&mut group, A, &batch, 2, NackAction::Park, 0).unwrap();
    group.ack(A, batch.lease, &[1, 3], 0).unwrap();
    assert_eq!(group.cursor(0), Some(3));

    let heads = self::heads(&[(0, 5)]);
    let replayed = group
        .replay_parked(ParkedSelection::Event(Position {
            partition: 0,
            offset: 2,
        }))
        .unwrap();
    assert_eq!(
        replayed,
        [Position {
            partition: 0,
            offset: 2
        }]
    );
    assert_eq!(group.parked().count(), 0);
    let status = group.status(&heads, 0);
    assert_eq!(
        (status.partitions[0].cursor, status.partitions[0].waiting),
        (3, 1),
        "the cursor does not move back"
    );

    let again = poll(&mut group, B, 0, &heads);
    assert_eq!(
        (offsets(&again), attempts(&again)),
        (vec![2, 4, 5], vec![1, 1, 1])
    );
    group.ack(B, again.lease, &[2, 4, 5], 1).unwrap();
    assert_eq!(group.cursor(0), Some(5));
    assert_eq!(group.status(&heads, 1).partitions[0].waiting, 0);
}

#[test]
fn replay_selects_all_one_partition_or_one_event() {
    let heads = heads(&[(0, 1), (1, 1)]);
    let mut group = group(2, StartFrom::Beginning, &heads);
    for now in 0..2 {
        let batch = poll(&mut group, A, now, &heads);
        nack(&mut group, A, &batch, 1, NackAction::Park, now).unwrap();
    }
    let at = |partition| Position {
        partition,
        offset: 1,
    };
    assert_eq!(
        group.replay_parked(ParkedSelection::Event(Position {
            partition: 0,
            offset: 2
        })),
        Err(ConsumerError::NotParked {
            partition: 0,
            offset: 2
        })
    );
    assert_eq!(
        group.replay_parked(ParkedSelection::Partition(2)),
        Err(ConsumerError::UnknownPartition {
            partition: 2,
            count: 2
        })
    );
    assert_eq!(
        group.replay_parked(ParkedSelection::Partition(1)),
        Ok(vec![at(1)])
    );
    assert_eq!(group.replay_parked(ParkedSelection::All), Ok(vec![at(0)]));
    assert_eq!(group.replay_parked(ParkedSelection::All), Ok(vec![]));
}

// --- cursor, start, status ----------------------------------------------------------------

#[test]
fn the_cursor_advances_only_over_the_contiguous_settled_prefix() {
    let (mut group, heads) = one_partition(3);
    let batch = poll(&mut group, A, 0, &heads);
    assert_eq!(group.ack(A, batch.lease, &[2, 3], 0).unwrap().cursor, 0);
    assert_eq!(group.ack(A, batch.lease, &[1], 0).unwrap().cursor, 3);
}

#[test]
fn a_group_can_start_at_the_end() {
    let heads = heads(&[(0, 7), (1, 0)]);
    let mut group = group(2, StartFrom::End, &heads);
    assert_eq!((group.cursor(0), group.cursor(1)), (Some(7), Some(0)));
    assert_eq!(group.poll(A, 0, &heads, &config()).batch, None);
    let heads = self::heads(&[(0, 8), (1, 0)]);
    assert_eq!(offsets(&poll(&mut group, A, 0, &heads)), [8]);
}

#[test]
fn a_group_can_start_after_an_offset_per_partition() {
    let heads = heads(&[(0, 9), (1, 9)]);
    let mut group = group(2, StartFrom::After(BTreeMap::from([(0, 4)])), &heads);
    assert_eq!(
        (group.cursor(0), group.cursor(1)),
        (Some(4), Some(0)),
        "unlisted: beginning"
    );
    assert_eq!(offsets(&poll(&mut group, A, 0, &heads)), [5, 6, 7]);

    let count = PartitionCount::try_from(2).unwrap();
    let beyond = StartFrom::After(BTreeMap::from([(1, 10)]));
    assert_eq!(
        GroupState::new(count, &beyond, &heads),
        Err(ConsumerError::StartBeyondHead {
            partition: 1,
            after: 10,
            head: 9
        })
    );
    let unknown = StartFrom::After(BTreeMap::from([(2, 0)]));
    assert_eq!(
        GroupState::new(count, &unknown, &heads),
        Err(ConsumerError::UnknownPartition {
            partition: 2,
            count: 2
        })
    );
}

#[test]
fn status_shows_cursor_head_lag_in_flight_waiting_lease_and_parked() {
    let heads = heads(&[(0, 10), (1, 2)]);
    let mut group = group(2, StartFrom::Beginning, &heads);
    let batch = poll(&mut group, A, 0, &heads); // partition 0: 1, 2, 3
    group.ack(A, batch.lease, &[1], 0).unwrap();
    nack(&mut group, A, &batch, 2, NackAction::Retry, 0).unwrap();
    let other = poll(&mut group, B, 0, &heads); // partition 1: 1, 2
    nack(&mut group, B, &other, 1, NackAction::Park, 0).unwrap();

    let status = group.status(&heads, 50);
    assert_eq!(
        status.partitions[0],
        PartitionStatus {
            partition: 0,
            cursor: 1,
            head: 10,
            lag: 9,
            in_flight: 1,
            waiting: 1,
            next_retry_ms: Some(100),
            parked: 0,
            lease: Some(LeaseStatus {
                lease: batch.lease,
                consumer: A.into(),
                expires_at_ms: 1_000
            }),
        }
    );
    assert_eq!(
        (
            status.partitions[1].cursor,
            status.partitions[1].lag,
            status.partitions[1].parked
        ),
        (1, 1, 1)
    );
    assert_eq!((status.lag, status.in_flight, status.parked), (10, 2, 1));

    // After expiry the in-flight events count as waiting, and no lease is shown.
    let later = group.status(&heads, 1_000);
    assert_eq!(
        (later.partitions[0].in_flight, later.partitions[0].waiting),
        (0, 2)
    );
    assert_eq!(later.partitions[0].lease, None);
}

#[test]
fn the_state_round_trips_through_json_mid_flight() {
    let (mut group, heads) = one_partition(5);
    let batch = poll(&mut group, A, 0, &heads);
    group.ack(A, batch.lease, &[1], 0).unwrap();
    nack(&mut group, A, &batch, 2, NackAction::Park, 0).unwrap();
    let json = serde_json::to_string(&group).unwrap();
    let mut restored: GroupState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, group);
    // It carries on where it was: the lease still holds, the counter does not reuse ids.
    assert_eq!(restored.ack(A, batch.lease, &[3], 1).unwrap().cursor, 3);
    let next = poll(&mut restored, B, 2, &heads);
    assert_ne!(next.lease, batch.lease);
    assert_eq!(offsets(&next), [4, 5]);
}

// --- config and errors --------------------------------------------------------------------

#[test]
fn config_bounds_are_checked() {
    assert_eq!(GroupConfig::default().check(), Ok(()));
    assert_eq!(config().check(), Ok(()));
    let bad = [
        GroupConfig {
            lease_ms: 0,
            ..config()
        },
        GroupConfig {
            max_attempts: 0,
            ..config()
        },
        GroupConfig {
            max_batch: 0,
            ..config()
        },
        GroupConfig {
            max_batch: 1_001,
            ..config()
        },
        GroupConfig {
            max_backoff_ms: 99,
            ..config()
        },
    ];
    for config in bad {
        let error = config.check().unwrap_err();
        assert!(matches!(error, ConsumerError::BadConfig(_)), "{config:?}");
        assert_eq!((error.status(), error.code()), (400, "bad_request"));
    }
}

#[test]
fn a_long_nack_reason_is_refused() {
    let (mut group, heads) = one_partition(1);
    let batch = poll(&mut group, A, 0, &heads);
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    let refused = group.nack(
        A,
        batch.lease,
        1,
        NackAction::Park,
        Some(&long),
        0,
        &config(),
    );
    assert_eq!(refused, Err(ConsumerError::ReasonTooLong));
    assert_eq!(group.parked().count(), 0);
}

#[test]
fn lease_errors_are_conflicts_and_messages_say_what_to_do() {
    let lost = ConsumerError::LeaseNotHeld { lease: LeaseId(7) };
    assert_eq!((lost.status(), lost.code()), (409, "lease_lost"));
    assert_eq!(
        lost.to_string(),
        "lease 7 is not held by this consumer; poll for a new batch"
    );
    let expired = ConsumerError::LeaseExpired {
        lease: LeaseId(7),
        expired_at_ms: 5,
    };
    assert_eq!((expired.status(), expired.code()), (409, "lease_expired"));
    let missing = ConsumerError::NotParked {
        partition: 0,
        offset: 1,
    };
    assert_eq!(missing.status(), 404);
}
