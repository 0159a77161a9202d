//! [`InMemoryStore`]: the [`EventStore`] for native tests, tools and the wasm tests.
//!
//! It keeps the trait's contract strictly — an append that does not continue the log
//! densely, or reuses an idempotency key, is a [`StoreError`] and writes nothing — so a
//! test that passes here does not rely on a leniency the SQLite store lacks. Everything
//! lives in `Vec`s and `BTreeMap`s: no clock, no randomness, no interior mutability.

use std::collections::BTreeMap;

use crate::store::{
    Direction, EventStore, Idempotency, IdempotentResult, ReadQuery, Snapshot, StoreError,
    StoredEvent,
};

/// One aggregate's event log, idempotency keys and snapshots, in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InMemoryStore {
    events: Vec<StoredEvent>,
    /// Idempotency key → what its command did.
    idempotency: BTreeMap<String, Remembered>,
    /// Snapshot seq → state.
    snapshots: BTreeMap<u64, Vec<u8>>,
}

/// What an idempotency key remembers: the request's fingerprint and the seqs appended
/// under it (`first..first + count`; `count` is 0 for a command that decided nothing).
#[derive(Debug, Clone, PartialEq)]
struct Remembered {
    fingerprint: String,
    first: u64,
    count: usize,
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole log, oldest first.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The seqs that have a snapshot, ascending.
    pub fn snapshot_seqs(&self) -> Vec<u64> {
        self.snapshots.keys().copied().collect()
    }

    fn slice(&self, first_seq: u64, count: usize) -> Vec<StoredEvent> {
        // Seqs are dense from 1, so seq `n` sits at index `n - 1`.
        let start = usize::try_from(first_seq.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        let end = start.saturating_add(count).min(self.events.len());
        self.events[start..end].to_vec()
    }
}

impl EventStore for InMemoryStore {
    fn version(&self) -> Result<u64, StoreError> {
        Ok(self.events.last().map_or(0, |e| e.seq))
    }

    fn append(
        &mut self,
        events: &[StoredEvent],
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError> {
        let version = self.version()?;
        for (event, expected) in events.iter().zip(version + 1..) {
            if event.seq != expected {
                return Err(StoreError(format!(
                    "append must continue the log densely: expected seq {expected}, got {} (log is at {version})",
                    event.seq
                )));
            }
        }
        if let Some(idempotency) = idempotency {
            if self.idempotency.contains_key(idempotency.key) {
                return Err(StoreError(format!(
                    "idempotency key `{}` was already used",
                    idempotency.key
                )));
            }
            self.idempotency.insert(
                idempotency.key.to_owned(),
                Remembered {
                    fingerprint: idempotency.fingerprint.to_owned(),
                    first: version + 1,
                    count: events.len(),
                },
            );
        }
        self.events.extend_from_slice(events);
        Ok(())
    }

    fn read(&self, query: &ReadQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let in_range = |e: &&StoredEvent| {
            e.seq > query.after && query.before.is_none_or(|before| e.seq < before)
        };
        let events = match query.direction {
            Direction::Forward => self
                .events
                .iter()
                .filter(in_range)
                .take(query.limit)
                .cloned()
                .collect(),
            Direction::Backward => self
                .events
                .iter()
                .rev()
                .filter(in_range)
                .take(query.limit)
                .cloned()
                .collect(),
        };
        Ok(events)
    }

    fn idempotent_result(&self, key: &str) -> Result<Option<IdempotentResult>, StoreError> {
        Ok(self.idempotency.get(key).map(|r| IdempotentResult {
            fingerprint: r.fingerprint.clone(),
            version: r.first - 1 + r.count as u64,
            events: self.slice(r.first, r.count),
        }))
    }

    fn seq_at_time(&self, unix_ms: i64) -> Result<u64, StoreError> {
        Ok(self
            .events
            .iter()
            .filter(|e| e.recorded_at_ms <= unix_ms)
            .map(|e| e.seq)
            .max()
            .unwrap_or(0))
    }

    fn latest_snapshot(&self, at_or_below: u64) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .snapshots
            .range(..=at_or_below)
            .next_back()
            .map(|(&seq, state)| Snapshot {
                seq,
                state: state.clone(),
            }))
    }

    fn save_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.snapshots.insert(snapshot.seq, snapshot.state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::envelope::Metadata;

    fn event(seq: u64, recorded_at_ms: i64) -> StoredEvent {
        StoredEvent {
            seq,
            event_id: format!("e{seq}"),
            event_type: "Noted".into(),
            schema_version: 1,
            data: json!({ "n": seq }),
            recorded_at_ms,
            metadata: Metadata::default(),
        }
    }

    /// An idempotency key whose fingerprint names the key (enough for the store's tests).
    fn key(key: &'static str) -> Idempotency<'static> {
        let fingerprint: &'static str = match key {
            "k1" => "fp-k1",
            _ => "fp",
        };
        Idempotency { key, fingerprint }
    }

    fn store_with(n: u64) -> InMemoryStore {
        let mut store = InMemoryStore::new();
        let events: Vec<StoredEvent> = (1..=n).map(|seq| event(seq, seq as i64 * 1000)).collect();
        store.append(&events, None).unwrap();
        store
    }

    fn seqs(events: &[StoredEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn an_empty_store_is_at_version_0() {
        let store = InMemoryStore::new();
        assert_eq!(store.version(), Ok(0));
        assert_eq!(store.read(&ReadQuery::forward(0, 10)), Ok(vec![]));
    }

    #[test]
    fn append_continues_the_log() {
        let mut store = store_with(2);
        store.append(&[event(3, 0), event(4, 0)], None).unwrap();
        assert_eq!(store.version(), Ok(4));
        assert_eq!(seqs(store.events()), [1, 2, 3, 4]);
    }

    #[test]
    fn append_refuses_a_gap_a_duplicate_or_a_wrong_start_and_writes_nothing() {
        for bad in [
            vec![event(4, 0)],
            vec![event(2, 0)],
            vec![event(3, 0), event(5, 0)],
            vec![event(3, 0), event(3, 0)],
        ] {
            let mut store = store_with(2);
            let error = store.append(&bad, Some(key("k"))).unwrap_err();
            assert!(error.0.contains("densely"), "{error}");
            assert_eq!(store, store_with(2), "a refused append changed the store");
        }
        assert!(
            InMemoryStore::new().append(&[event(2, 0)], None).is_err(),
            "an empty log starts at 1"
        );
    }

    #[test]
    fn idempotency_keys_remember_their_events() {
        let mut store = store_with(1);
        store
            .append(&[event(2, 0), event(3, 0)], Some(key("k1")))
            .unwrap();
        store.append(&[], Some(key("k-noop"))).unwrap();
        store.append(&[event(4, 0)], None).unwrap();
        let k1 = store.idempotent_result("k1").unwrap().unwrap();
        assert_eq!((seqs(&k1.events), k1.version), (vec![2, 3], 3));
        assert_eq!(k1.fingerprint, "fp-k1");
        let noop = store.idempotent_result("k-noop").unwrap().unwrap();
        assert_eq!((noop.events.len(), noop.version), (0, 3));
        assert_eq!(store.idempotent_result("unknown"), Ok(None));
    }

    #[test]
    fn an_idempotency_key_is_used_once() {
        let mut store = store_with(1);
        store.append(&[event(2, 0)], Some(key("k"))).unwrap();
        let before = store.clone();
        assert!(store.append(&[event(3, 0)], Some(key("k"))).is_err());
        assert_eq!(store, before);
    }

    #[test]
    fn forward_reads_are_exclusive_ascending_and_limited() {
        let store = store_with(5);
        assert_eq!(
            seqs(&store.read(&ReadQuery::forward(0, 100)).unwrap()),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            seqs(&store.read(&ReadQuery::forward(2, 2)).unwrap()),
            [3, 4]
        );
        assert_eq!(
            seqs(&store.read(&ReadQuery::forward(5, 10)).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(
            seqs(&store.read(&ReadQuery::forward(0, 0)).unwrap()),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn backward_reads_are_exclusive_descending_and_limited() {
        let store = store_with(5);
        assert_eq!(
            seqs(&store.read(&ReadQuery::backward(None, 2)).unwrap()),
            [5, 4]
        );
        assert_eq!(
            seqs(&store.read(&ReadQuery::backward(Some(4), 10)).unwrap()),
            [3, 2, 1]
        );
        assert_eq!(
            seqs(&store.read(&ReadQuery::backward(Some(1), 10)).unwrap()),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn both_bounds_apply_in_either_direction() {
        let store = store_with(6);
        let between = |direction| ReadQuery {
            direction,
            after: 1,
            before: Some(5),
            limit: 10,
        };
        assert_eq!(
            seqs(&store.read(&between(Direction::Forward)).unwrap()),
            [2, 3, 4]
        );
        assert_eq!(
            seqs(&store.read(&between(Direction::Backward)).unwrap()),
            [4, 3, 2]
        );
    }

    #[test]
    fn seq_at_time_is_the_newest_event_recorded_by_then() {
        let store = store_with(3); // recorded at 1000, 2000, 3000
        assert_eq!(store.seq_at_time(999), Ok(0));
        assert_eq!(store.seq_at_time(1000), Ok(1));
        assert_eq!(store.seq_at_time(2999), Ok(2));
        assert_eq!(store.seq_at_time(i64::MAX), Ok(3));
    }

    #[test]
    fn latest_snapshot_is_the_newest_at_or_below() {
        let mut store = store_with(10);
        assert_eq!(store.latest_snapshot(10), Ok(None));
        store
            .save_snapshot(Snapshot {
                seq: 3,
                state: vec![3],
            })
            .unwrap();
        store
            .save_snapshot(Snapshot {
                seq: 6,
                state: vec![6],
            })
            .unwrap();
        assert_eq!(store.latest_snapshot(2), Ok(None));
        assert_eq!(
            store.latest_snapshot(5),
            Ok(Some(Snapshot {
                seq: 3,
                state: vec![3]
            }))
        );
        assert_eq!(
            store.latest_snapshot(6),
            Ok(Some(Snapshot {
                seq: 6,
                state: vec![6]
            }))
        );
        assert_eq!(
            store.latest_snapshot(u64::MAX).map(|s| s.map(|s| s.seq)),
            Ok(Some(6))
        );
        store
            .save_snapshot(Snapshot {
                seq: 6,
                state: vec![7],
            })
            .unwrap();
        assert_eq!(
            store.latest_snapshot(6).map(|s| s.map(|s| s.state)),
            Ok(Some(vec![7])),
            "a newer save replaces"
        );
        assert_eq!(store.snapshot_seqs(), [3, 6]);
    }
}
