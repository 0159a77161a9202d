//! The exactly-once acceptance rule of a partition.
//!
//! An aggregate forwards its committed events to its partition *at least once*: right after
//! the commit, and again from an alarm until the partition acknowledges them (DESIGN.md,
//! "Global stream"). Two sends of the same events may race and arrive in any order. The
//! partition turns that into *exactly once, in order* with one number per aggregate, its
//! **watermark**: the highest `seq` of that aggregate already in the partition (0 before the
//! first). An incoming batch is a dense run of seqs `first, first + 1, …, first + len - 1`
//! (an aggregate's log is dense from 1, ARCHITECTURE.md "Invariants"), and:
//!
//! * events with `seq <= watermark` are duplicates and are skipped;
//! * the first event after those must be `watermark + 1`, otherwise some events between are
//!   still on their way (or lost) and the batch is refused with the seq the partition expects,
//!   so the aggregate resends from there — nothing of a refused batch is appended;
//! * everything else is appended, in order, and the watermark becomes the batch's last seq.
//!
//! So each aggregate's events enter the partition once each, in seq order, whatever the
//! redeliveries. [`admit`] is the rule; [`accepted_through`] the watermark it leaves behind
//! (the `accepted_through` of a [`crate::ForwardAck`]); [`check_dense`] verifies the "dense
//! batch" precondition on untrusted input.

/// What to do with an incoming batch of one aggregate's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Skip the first `skip` events (duplicates, `seq <= watermark`) and append the rest in
    /// order. `skip == len` means every event was a duplicate and nothing is appended; the
    /// batch is still acknowledged.
    Append { skip: usize },
    /// Refuse the whole batch: the next seq the partition can take is `expected`
    /// (`watermark + 1`), and the batch starts after it.
    Gap { expected: u64 },
}

/// Applies the rule to a dense batch of `incoming_len` events starting at
/// `incoming_first_seq`, given the aggregate's `watermark` in the partition.
///
/// An empty batch is `Append { skip: 0 }` (nothing to do). The caller guarantees the batch is
/// dense ([`check_dense`]); seqs start at 1, and a seq 0 would count as a duplicate.
pub fn admit(watermark: u64, incoming_first_seq: u64, incoming_len: usize) -> Admission {
    if incoming_len == 0 {
        return Admission::Append { skip: 0 };
    }
    // u128: `watermark + 1` and `first + len` cannot overflow, whatever the inputs.
    let next = u128::from(watermark) + 1;
    let first = u128::from(incoming_first_seq);
    if first > next {
        return Admission::Gap {
            expected: watermark + 1, // first > watermark + 1, so watermark < u64::MAX
        };
    }
    // Events first..next are duplicates; at most the whole batch.
    let duplicates = next - first;
    let skip = duplicates.min(incoming_len as u128);
    Admission::Append {
        skip: skip as usize, // at most incoming_len
    }
}

/// The aggregate's watermark after [`admit`] has been carried out for this batch: the batch's
/// last seq if it appended anything, else the old watermark (all duplicates, empty, or refused).
pub fn accepted_through(watermark: u64, incoming_first_seq: u64, incoming_len: usize) -> u64 {
    match admit(watermark, incoming_first_seq, incoming_len) {
        Admission::Append { skip } if skip < incoming_len => {
            // The batch ends after the watermark, so this does not overflow u64.
            incoming_first_seq + (incoming_len as u64 - 1)
        }
        _ => watermark,
    }
}

/// Checks that seqs are a dense, increasing run (`s, s + 1, s + 2, …`) of seqs from 1 up.
/// An empty run is dense.
pub fn check_dense(seqs: impl Iterator<Item = u64>) -> Result<(), SeqError> {
    let mut previous: Option<u64> = None;
    for (index, seq) in seqs.enumerate() {
        match previous {
            None if seq == 0 => return Err(SeqError::Zero),
            Some(previous) if previous.checked_add(1) != Some(seq) => {
                return Err(SeqError::NotDense {
                    index,
                    previous,
                    found: seq,
                });
            }
            _ => {}
        }
        previous = Some(seq);
    }
    Ok(())
}

/// A batch's seqs are not a dense run from 1 up. The sender is broken (an aggregate's log is
/// dense by construction): an internal error, never a client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("seqs start at 1; the batch starts at 0")]
    Zero,
    #[error("seq {found} at index {index} does not follow seq {previous}")]
    NotDense {
        index: usize,
        previous: u64,
        found: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_batch_is_appended_whole() {
        assert_eq!(admit(0, 1, 3), Admission::Append { skip: 0 });
        assert_eq!(accepted_through(0, 1, 3), 3);
        assert_eq!(admit(3, 4, 2), Admission::Append { skip: 0 });
        assert_eq!(accepted_through(3, 4, 2), 5);
    }

    #[test]
    fn duplicates_at_the_front_are_skipped() {
        // Watermark 5; the batch 3..=8 has 3, 4, 5 already.
        assert_eq!(admit(5, 3, 6), Admission::Append { skip: 3 });
        assert_eq!(accepted_through(5, 3, 6), 8);
    }

    #[test]
    fn a_batch_of_duplicates_appends_nothing_and_keeps_the_watermark() {
        assert_eq!(admit(5, 1, 5), Admission::Append { skip: 5 });
        assert_eq!(admit(5, 2, 2), Admission::Append { skip: 2 });
        assert_eq!(accepted_through(5, 2, 2), 5);
        assert_eq!(admit(5, 5, 1), Admission::Append { skip: 1 });
    }

    #[test]
    fn a_batch_after_a_hole_is_refused() {
        assert_eq!(admit(0, 2, 1), Admission::Gap { expected: 1 });
        assert_eq!(admit(5, 7, 3), Admission::Gap { expected: 6 });
        assert_eq!(accepted_through(5, 7, 3), 5);
    }

    #[test]
    fn an_empty_batch_is_a_no_op() {
        assert_eq!(admit(5, 100, 0), Admission::Append { skip: 0 });
        assert_eq!(accepted_through(5, 100, 0), 5);
    }

    #[test]
    fn extremes_do_not_overflow() {
        assert_eq!(admit(u64::MAX, u64::MAX, 1), Admission::Append { skip: 1 });
        assert_eq!(
            admit(u64::MAX, 1, usize::MAX),
            Admission::Append { skip: usize::MAX }
        );
        assert_eq!(
            admit(u64::MAX - 1, u64::MAX, 1),
            Admission::Append { skip: 0 }
        );
        assert_eq!(accepted_through(u64::MAX - 1, u64::MAX, 1), u64::MAX);
        assert_eq!(admit(0, u64::MAX, 1), Admission::Gap { expected: 1 });
    }

    #[test]
    fn dense_runs() {
        assert_eq!(check_dense([].into_iter()), Ok(()));
        assert_eq!(check_dense([1].into_iter()), Ok(()));
        assert_eq!(check_dense([7, 8, 9].into_iter()), Ok(()));
        assert_eq!(check_dense([0, 1].into_iter()), Err(SeqError::Zero));
        assert_eq!(
            check_dense([7, 9].into_iter()),
            Err(SeqError::NotDense {
                index: 1,
                previous: 7,
                found: 9
            })
        );
        assert_eq!(
            check_dense([7, 8, 8].into_iter()),
            Err(SeqError::NotDense {
                index: 2,
                previous: 8,
                found: 8
            })
        );
        assert_eq!(
            check_dense([3, 2].into_iter()),
            Err(SeqError::NotDense {
                index: 1,
                previous: 3,
                found: 2
            })
        );
        assert!(check_dense([u64::MAX, 0].into_iter()).is_err());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The partition's side of the protocol for one aggregate: its watermark and what it
    /// appended. `deliver` is what a partition does with a batch of seqs `first..first+len`.
    #[derive(Default)]
    struct Partition {
        watermark: u64,
        appended: Vec<u64>,
    }

    impl Partition {
        fn deliver(&mut self, first: u64, len: usize) -> Result<u64, u64> {
            match admit(self.watermark, first, len) {
                Admission::Append { skip } => {
                    self.appended.extend((first..).take(len).skip(skip));
                    self.watermark = accepted_through(self.watermark, first, len);
                    Ok(self.watermark)
                }
                Admission::Gap { expected } => Err(expected),
            }
        }
    }

    proptest! {
        /// Any interleaving of at-least-once redeliveries of a dense log — batches of any
        /// range, repeated, overlapping, out of order — followed by the sender's retry (resend
        /// from what the partition says it expects) yields exactly the log, once, in order;
        /// and at every step the partition holds a prefix of the log.
        #[test]
        fn redeliveries_yield_the_log_once_in_order(
            log_len in 0u64..50,
            deliveries in prop::collection::vec((1u64..55, 0usize..20), 0..60),
            resend_from in 1u64..55,
        ) {
            let mut partition = Partition::default();
            for (first, len) in deliveries {
                // A batch is a range of the log (the sender cannot send what it has not committed).
                if first > log_len {
                    continue;
                }
                let len = len.min((log_len - first + 1) as usize);
                match partition.deliver(first, len) {
                    // An acknowledged batch is in the partition, all of it.
                    Ok(watermark) => prop_assert!(len == 0 || watermark >= first + len as u64 - 1),
                    Err(expected) => prop_assert_eq!(expected, partition.watermark + 1),
                }
                let prefix: Vec<u64> = (1..=partition.watermark).collect();
                prop_assert_eq!(&partition.appended, &prefix);
            }
            // The alarm's retry: send a suffix of the log (from any point, up to its last
            // event); on a refusal, resend from the expected seq.
            let mut from = resend_from.min(log_len.max(1));
            loop {
                let len = (log_len + 1 - from) as usize;
                match partition.deliver(from, len) {
                    Ok(_) => break,
                    Err(expected) => {
                        prop_assert!(expected < from, "a refusal only ever moves the sender back");
                        from = expected;
                    }
                }
            }
            let log: Vec<u64> = (1..=log_len).collect();
            prop_assert_eq!(partition.appended, log);
            prop_assert_eq!(partition.watermark, log_len);
        }

        /// The batch rule agrees with taking events one at a time: a seq at or below the
        /// watermark is a duplicate, `watermark + 1` is appended, anything higher is a gap.
        #[test]
        fn the_batch_rule_is_the_event_rule_applied_in_order(
            watermark in 0u64..40,
            first in 1u64..40,
            len in 0usize..20,
        ) {
            let mut expected_skip = 0;
            let mut gap = None;
            let mut through = watermark;
            for seq in (first..).take(len) {
                if seq <= through {
                    expected_skip += 1;
                } else if seq == through + 1 {
                    through = seq;
                } else {
                    gap = Some(through + 1);
                    break;
                }
            }
            match gap {
                Some(expected) => prop_assert_eq!(admit(watermark, first, len), Admission::Gap { expected }),
                None => {
                    prop_assert_eq!(admit(watermark, first, len), Admission::Append { skip: expected_skip });
                    prop_assert_eq!(accepted_through(watermark, first, len), through);
                }
            }
        }

        #[test]
        fn check_dense_accepts_exactly_dense_runs(seqs in prop::collection::vec(0u64..8, 0..8)) {
            let dense = seqs.first().is_none_or(|&s| s >= 1)
                && seqs.windows(2).all(|w| w[1] == w[0] + 1);
            prop_assert_eq!(check_dense(seqs.into_iter()).is_ok(), dense);
        }
    }
}
