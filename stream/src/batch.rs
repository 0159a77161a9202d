//! The forwarding messages between an aggregate and its partition (DESIGN.md, "Global
//! stream": "Each AggregateObject forwards committed events from its outbox to its
//! partition … The partition dedupes by `(aggregate, seq)`").
//!
//! * [`ForwardBatch`] — aggregate → partition: a dense run of one aggregate's committed
//!   events. MessagePack with named fields ([`domain::codec`], the one storage codec), so
//!   fields can be added without breaking objects still running the previous build.
//!   Each event's payload travels as the bytes stored in the aggregate's log
//!   ([`ForwardedEvent::data_msgpack`], a MessagePack `bin`), never decoded and re-encoded on
//!   the way, so the partition stores exactly what the aggregate stored.
//! * [`ForwardAck`] — partition → aggregate: "I hold your events through seq N"; the
//!   aggregate may drop its outbox rows up to N.
//! * [`ForwardRefusal`] — partition → aggregate: nothing of the batch was taken; resend
//!   from `expected` ([`ForwardRefusal::Gap`]) or later ([`ForwardRefusal::Paused`]).
//!
//! The answers are plain serde types; the durable layer sends them as JSON or MessagePack.
//! The rule behind them is [`crate::watermark`].

use domain::EventEnvelope;
use domain::codec;
use domain::envelope::{Metadata, Position, format_timestamp};
use domain::store::StoredEvent;
use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::watermark::{self, Admission};

/// A dense run of one aggregate's committed events, on their way to its partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardBatch {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Dense and increasing by `seq` (checked by [`ForwardBatch::decode`]); may be empty.
    pub events: Vec<ForwardedEvent>,
}

/// One committed event as the aggregate's log stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedEvent {
    /// The event's position in its aggregate's log: dense, from 1.
    pub seq: u64,
    /// UUID v7, as text.
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u32,
    /// The payload exactly as stored: MessagePack with named fields ([`domain::codec`]).
    #[serde(with = "serde_bytes")]
    pub data_msgpack: Vec<u8>,
    /// When the aggregate recorded the event: ms since the Unix epoch, UTC.
    pub recorded_at_ms: i64,
    pub metadata: Metadata,
}

impl ForwardBatch {
    /// MessagePack with named fields.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a batch and checks that its seqs are a dense run from 1 up, so a partition
    /// can hand it to [`ForwardBatch::admit`] as is.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let batch: Self = codec::decode(bytes)?;
        batch.check_dense()?;
        Ok(batch)
    }

    /// Whether the seqs are a dense run from 1 up (see [`watermark::check_dense`]).
    pub fn check_dense(&self) -> Result<(), watermark::SeqError> {
        watermark::check_dense(self.events.iter().map(|e| e.seq))
    }

    /// The first event's seq; `None` for an empty batch.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|e| e.seq)
    }

    /// [`watermark::admit`] for this batch, given the aggregate's watermark in the partition.
    pub fn admit(&self, watermark: u64) -> Admission {
        watermark::admit(watermark, self.first_seq().unwrap_or(0), self.events.len())
    }

    /// [`watermark::accepted_through`] for this batch: the aggregate's watermark once the
    /// batch is admitted.
    pub fn accepted_through(&self, watermark: u64) -> u64 {
        watermark::accepted_through(watermark, self.first_seq().unwrap_or(0), self.events.len())
    }
}

impl ForwardedEvent {
    /// The event as clients see it. `position` is `Some` where the event is read from the
    /// global stream. Fails only if the payload bytes are not MessagePack.
    pub fn envelope(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        position: Option<Position>,
    ) -> Result<EventEnvelope, codec::CodecError> {
        Ok(EventEnvelope {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            seq: self.seq,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            data: codec::decode(&self.data_msgpack)?,
            recorded_at: format_timestamp(self.recorded_at_ms),
            command_id: self.metadata.command_id.clone(),
            correlation_id: self.metadata.correlation_id.clone(),
            causation_id: self.metadata.causation_id.clone(),
            actor: self.metadata.actor.clone(),
            position,
        })
    }
}

/// From the events a command just appended (`domain::store::CommandOutcome::events`). The
/// payload is encoded with [`domain::codec`], the codec the log stores it with.
impl From<&StoredEvent> for ForwardedEvent {
    fn from(event: &StoredEvent) -> Self {
        Self {
            seq: event.seq,
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data_msgpack: codec::encode(&event.data),
            recorded_at_ms: event.recorded_at_ms,
            metadata: event.metadata.clone(),
        }
    }
}

/// The partition took the batch (all of it, or only what it did not hold yet): it now holds
/// the aggregate's events through seq `accepted_through` (its watermark, 0 for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardAck {
    pub accepted_through: u64,
}

/// The partition took nothing of the batch. JSON: `{"refusal":"gap","expected":6}`,
/// `{"refusal":"paused"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum ForwardRefusal {
    /// The batch starts after a hole: resend from seq `expected` (the aggregate's watermark
    /// in the partition plus one).
    Gap { expected: u64 },
    /// The partition takes no writes for now (for example while it is being maintained);
    /// the aggregate keeps its outbox and retries from its alarm.
    Paused,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(seq: u64) -> ForwardedEvent {
        ForwardedEvent {
            seq,
            event_id: format!("0190f3c2-7a4e-7cc1-9a7e-{seq:012}"),
            event_type: "CardAdded".into(),
            schema_version: 1,
            data_msgpack: codec::encode(&json!({"card_id": "c1", "title": "Ship it"})),
            recorded_at_ms: 1_700_000_000_123,
            metadata: Metadata {
                command_id: Some("cmd-1".into()),
                correlation_id: None,
                causation_id: None,
                actor: Some("alice".into()),
            },
        }
    }

    fn batch(seqs: impl IntoIterator<Item = u64>) -> ForwardBatch {
        ForwardBatch {
            aggregate_type: "board".into(),
            aggregate_id: "b1".into(),
            events: seqs.into_iter().map(event).collect(),
        }
    }

    #[test]
    fn a_batch_round_trips_with_named_fields_and_binary_payloads() {
        let original = batch(3..=5);
        let bytes = original.encode();
        assert!(
            bytes.windows(12).any(|w| w == b"data_msgpack"),
            "fields are named"
        );
        // The payload is a MessagePack bin (0xc4 = bin 8, then the length), not an array of
        // integers: its bytes appear verbatim.
        let payload = &original.events[0].data_msgpack;
        let mut bin = vec![0xc4, payload.len() as u8];
        bin.extend_from_slice(payload);
        assert!(
            bytes.windows(bin.len()).any(|w| w == bin),
            "payload is a bin"
        );
        assert_eq!(ForwardBatch::decode(&bytes), Ok(original));
    }

    #[test]
    fn an_empty_batch_round_trips() {
        let empty = batch([]);
        assert_eq!(ForwardBatch::decode(&empty.encode()), Ok(empty.clone()));
        assert_eq!(empty.first_seq(), None);
        assert_eq!(empty.admit(7), Admission::Append { skip: 0 });
        assert_eq!(empty.accepted_through(7), 7);
    }

    #[test]
    fn decode_refuses_batches_that_are_not_dense() {
        use crate::watermark::SeqError;
        assert_eq!(
            ForwardBatch::decode(&batch([3, 5]).encode()),
            Err(FormatError::Seqs(SeqError::NotDense {
                index: 1,
                previous: 3,
                found: 5
            }))
        );
        assert_eq!(
            ForwardBatch::decode(&batch([0, 1]).encode()),
            Err(FormatError::Seqs(SeqError::Zero))
        );
    }

    #[test]
    fn decode_refuses_garbage() {
        assert!(matches!(
            ForwardBatch::decode(&[]),
            Err(FormatError::Codec(_))
        ));
        assert!(matches!(
            ForwardBatch::decode(&[0x91; 10_000]),
            Err(FormatError::Codec(_))
        ));
        let bytes = batch(1..=2).encode();
        assert!(matches!(
            ForwardBatch::decode(&bytes[..bytes.len() - 1]),
            Err(FormatError::Codec(_))
        ));
    }

    #[test]
    fn the_batch_applies_the_watermark_rule() {
        let b = batch(3..=6);
        assert_eq!(b.admit(4), Admission::Append { skip: 2 });
        assert_eq!(b.accepted_through(4), 6);
        assert_eq!(b.admit(1), Admission::Gap { expected: 2 });
        assert_eq!(b.accepted_through(1), 1);
        assert_eq!(b.admit(6), Admission::Append { skip: 4 });
    }

    #[test]
    fn a_forwarded_event_becomes_the_stored_events_envelope() {
        let stored = StoredEvent {
            seq: 4,
            event_id: "0190f3c2-7a4e-7cc1-9a7e-2f9b5d0c1e11".into(),
            event_type: "CardMoved".into(),
            schema_version: 2,
            data: json!({"card_id": "c1", "to_column": "Done"}),
            recorded_at_ms: 1_700_000_000_123,
            metadata: Metadata {
                command_id: Some("cmd".into()),
                correlation_id: Some("corr".into()),
                causation_id: Some("cause".into()),
                actor: Some("alice".into()),
            },
        };
        let forwarded = ForwardedEvent::from(&stored);
        assert_eq!(
            codec::decode::<serde_json::Value>(&forwarded.data_msgpack),
            Ok(stored.data.clone())
        );
        let position = Position {
            partition: 2,
            offset: 17,
        };
        let mut expected = stored.envelope("board", "b1");
        expected.position = Some(position);
        assert_eq!(
            forwarded.envelope("board", "b1", Some(position)),
            Ok(expected)
        );
        assert_eq!(
            forwarded.envelope("board", "b1", None).unwrap().recorded_at,
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn an_envelope_needs_a_msgpack_payload() {
        let mut broken = event(1);
        broken.data_msgpack = vec![0xc1]; // never used in MessagePack
        assert!(broken.envelope("board", "b1", None).is_err());
    }

    #[test]
    fn answers_in_json() {
        assert_eq!(
            serde_json::to_value(ForwardAck {
                accepted_through: 5
            })
            .unwrap(),
            json!({"accepted_through": 5})
        );
        assert_eq!(
            serde_json::to_value(ForwardRefusal::Gap { expected: 6 }).unwrap(),
            json!({"refusal": "gap", "expected": 6})
        );
        assert_eq!(
            serde_json::to_value(ForwardRefusal::Paused).unwrap(),
            json!({"refusal": "paused"})
        );
        for refusal in [ForwardRefusal::Gap { expected: 6 }, ForwardRefusal::Paused] {
            let text = serde_json::to_string(&refusal).unwrap();
            assert_eq!(
                serde_json::from_str::<ForwardRefusal>(&text).unwrap(),
                refusal
            );
        }
    }

    #[test]
    fn answers_in_msgpack() {
        let ack = ForwardAck {
            accepted_through: 5,
        };
        assert_eq!(codec::decode::<ForwardAck>(&codec::encode(&ack)), Ok(ack));
        for refusal in [ForwardRefusal::Gap { expected: 6 }, ForwardRefusal::Paused] {
            assert_eq!(
                codec::decode::<ForwardRefusal>(&codec::encode(&refusal)),
                Ok(refusal)
            );
        }
    }
}
