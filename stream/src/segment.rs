//! Segments: sealed ranges of a partition, archived to R2 (DESIGN.md, "Global stream":
//! "Sealed ranges can be archived to R2 as MessagePack segments for cheap replay").
//!
//! A partition's events have dense offsets from 1 (a reader's cursor `after=0` means "from
//! the start"). The newest events are *hot*, in the partition's SQLite; older ones can be
//! *sealed*: written to R2 as one [`Segment`] per range of offsets and then deleted from
//! SQLite. A segment is immutable once written.
//!
//! # Format
//! MessagePack with named fields ([`domain::codec`]): a [`Segment`] header (format version,
//! partition, first and last offset) and its events in offset order, each a
//! [`SegmentEvent`] — its offset, its aggregate, and the [`ForwardedEvent`] exactly as the
//! aggregate forwarded it (payload bytes untouched) — and, optionally, `envelopes`: each
//! event's envelope as MessagePack pages carry it (`codec::encode` of the envelope with its
//! position), so a page of the segment is those bytes spliced together
//! ([`SegmentEnvelopes`]) with no event decoded. The field is additive within
//! [`FORMAT_VERSION`] 1: segments written before it (or sealed without it, when an envelope
//! could not be encoded) simply lack it and are read by decoding their events, and a build
//! that does not know the field ignores it, so rolling back never strands a segment.
//! [`Segment::decode`] refuses an unknown [`FORMAT_VERSION`], any segment whose events are not
//! exactly the dense offsets `first_offset..=last_offset`, and `envelopes` that are present
//! but not one per event, so a reader never serves a segment with holes.
//!
//! # Object keys
//! `"{tenant}/stream/v1/p{partition}/{first_offset:020}-{last_offset:020}.msgpack"`
//! ([`object_key`], parsed back by [`SegmentKey::parse`]). `v1` is the key layout's version
//! (the body carries its own format version). Offsets are zero-padded to 20 digits (every
//! `u64` fits), so R2's lexicographic listing under [`partition_prefix`] is offset order.
//! The tenant comes first, so one tenant's archive is one prefix (ARCHITECTURE.md, "Tenancy");
//! it must not contain `/` (an `auth::Tenant` never does).
//!
//! # Sealing policy
//! [`seal_ranges`] decides which ranges may be sealed now: whole segments of `segment_size`
//! events, counted from the oldest hot offset, never touching the `keep_hot` newest events.
//! Ranges start at the oldest hot offset (not at multiples of the segment size), so a crash
//! between writing a segment and deleting its rows simply computes the same range, and the
//! same key, again: writing it twice is harmless. A segment holds `segment_size` events
//! whatever their size; with payloads up to the request body limit, the caller should keep
//! `segment_size × largest event` within a Durable Object's memory.

use domain::EventEnvelope;
use domain::codec::{self, CodecError};
use domain::envelope::Position;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::batch::ForwardedEvent;
use crate::error::FormatError;

/// The segment body format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Most ranges one call to [`seal_ranges`] returns: sealing is done a bounded number of
/// segments at a time (each is read, encoded and written whole), and the caller asks again.
pub const MAX_SEAL_RANGES: usize = 16;

/// A sealed, dense range of one partition's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    pub partition: u32,
    /// The first event's offset (inclusive).
    pub first_offset: u64,
    /// The last event's offset (inclusive).
    pub last_offset: u64,
    /// Every offset from `first_offset` to `last_offset`, in order.
    pub events: Vec<SegmentEvent>,
    /// The MessagePack envelope of each event of `events`, in the same order (what a
    /// MessagePack page splices), or empty: absent from segments sealed without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelopes: Vec<ByteBuf>,
}

/// `first_offset..=last_offset` must hold exactly `count` offsets.
fn check_span(first_offset: u64, last_offset: u64, count: usize) -> Result<(), FormatError> {
    // u128: a range of every u64 offset has 2^64 events.
    let span = (u128::from(last_offset) + 1).checked_sub(u128::from(first_offset));
    if span != Some(count as u128) {
        return Err(FormatError::RangeMismatch {
            first_offset,
            last_offset,
            events: count,
        });
    }
    Ok(())
}

/// Why bytes did not decode as a segment. A future format may not even have this shape:
/// report its version if the bytes have one, since that is the actual reason.
fn undecodable(bytes: &[u8], error: CodecError) -> FormatError {
    #[derive(Deserialize)]
    struct Header {
        format_version: u32,
    }
    match codec::decode::<Header>(bytes) {
        Ok(header) if header.format_version != FORMAT_VERSION => {
            FormatError::UnknownFormatVersion {
                found: header.format_version,
                known: FORMAT_VERSION,
            }
        }
        _ => FormatError::Codec(error),
    }
}

/// The header and envelopes of a segment, borrowed from its bytes: what serving an
/// unfiltered MessagePack page needs, without decoding (or allocating) a single event. The
/// events are still walked over by the decoder, not built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEnvelopes<'a> {
    pub format_version: u32,
    pub first_offset: u64,
    pub last_offset: u64,
    pub envelopes: Vec<&'a [u8]>,
}

impl<'a> SegmentEnvelopes<'a> {
    /// The envelopes of a segment's bytes: `None` for a segment without them (the caller
    /// decodes its events), an error for bytes that are not a segment or whose envelopes do
    /// not cover its range exactly.
    ///
    /// The segment's map is walked with `rmp`'s markers rather than through serde: the
    /// `events` field (most of the bytes) is stepped over by its lengths, with none of its
    /// strings checked as UTF-8 — through serde, that skipping was half of serving an
    /// archived page. The envelopes themselves are not checked either: they were encoded by
    /// the partition, and a page only splices them.
    pub fn decode(bytes: &'a [u8]) -> Result<Option<Self>, FormatError> {
        let view = Self::walk(bytes).map_err(|e| undecodable(bytes, e))?;
        if view.format_version != FORMAT_VERSION {
            return Err(FormatError::UnknownFormatVersion {
                found: view.format_version,
                known: FORMAT_VERSION,
            });
        }
        if view.envelopes.is_empty() {
            return Ok(None);
        }
        check_span(view.first_offset, view.last_offset, view.envelopes.len()).map_err(|_| {
            FormatError::EnvelopeCount {
                first_offset: view.first_offset,
                last_offset: view.last_offset,
                envelopes: view.envelopes.len(),
            }
        })?;
        Ok(Some(view))
    }

    /// The header fields and envelopes of a segment's map, every other field skipped.
    fn walk(bytes: &'a [u8]) -> Result<Self, CodecError> {
        use rmp::decode;
        let codec = |e: &dyn std::fmt::Display| CodecError::new(format!("segment: {e}"));
        let mut rd = bytes;
        let (mut format_version, mut first_offset, mut last_offset) = (None, None, None);
        let mut envelopes = Vec::new();
        let fields = decode::read_map_len(&mut rd).map_err(|e| codec(&e))?;
        for _ in 0..fields {
            let (key, rest) = decode::read_str_from_slice(rd).map_err(|e| codec(&e))?;
            rd = rest;
            match key {
                "format_version" => {
                    format_version = Some(decode::read_int(&mut rd).map_err(|e| codec(&e))?);
                }
                "first_offset" => {
                    first_offset = Some(decode::read_int(&mut rd).map_err(|e| codec(&e))?);
                }
                "last_offset" => {
                    last_offset = Some(decode::read_int(&mut rd).map_err(|e| codec(&e))?);
                }
                "envelopes" => {
                    let count = decode::read_array_len(&mut rd).map_err(|e| codec(&e))?;
                    envelopes = Vec::with_capacity((count as usize).min(rd.len()));
                    for _ in 0..count {
                        let len = decode::read_bin_len(&mut rd).map_err(|e| codec(&e))?;
                        envelopes.push(codec::take(&mut rd, u64::from(len))?);
                    }
                }
                _ => codec::skip_value(&mut rd)?,
            }
        }
        let missing = |field: &str| CodecError::new(format!("segment: missing field `{field}`"));
        Ok(Self {
            format_version: format_version.ok_or_else(|| missing("format_version"))?,
            first_offset: first_offset.ok_or_else(|| missing("first_offset"))?,
            last_offset: last_offset.ok_or_else(|| missing("last_offset"))?,
            envelopes,
        })
    }

    /// The envelopes of the offsets after `after` (a reader's cursor), in order, each with
    /// its offset.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, &'a [u8])> + '_ {
        let start = after.saturating_add(1).saturating_sub(self.first_offset);
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        self.envelopes
            .iter()
            .enumerate()
            .skip(start)
            .map(|(index, bytes)| (self.first_offset + index as u64, *bytes))
    }
}

/// One event of a partition: its offset, its aggregate and the event as forwarded. (This is
/// also the natural shape of a partition's hot row.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEvent {
    pub offset: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event: ForwardedEvent,
}

impl SegmentEvent {
    /// The event as clients see it, with its stream position. Fails only if the payload
    /// bytes are not MessagePack.
    pub fn envelope(&self, partition: u32) -> Result<EventEnvelope, CodecError> {
        let position = Position {
            partition,
            offset: self.offset,
        };
        self.event
            .envelope(&self.aggregate_type, &self.aggregate_id, Some(position))
    }
}

impl Segment {
    /// A segment of `events`, which must be non-empty with dense offsets; the range is taken
    /// from them, and each event's envelope is encoded. The checked way to build one.
    pub fn new(partition: u32, events: Vec<SegmentEvent>) -> Result<Self, FormatError> {
        let stored = vec![None; events.len()];
        Self::with_envelopes(partition, events, stored)
    }

    /// [`Segment::new`] with the envelopes already encoded where `stored[i]` has them (a
    /// partition keeps each event's envelope from its append); the others are encoded here.
    /// `stored` must have one entry per event. Should an event's envelope not encode (its
    /// payload bytes are not MessagePack), the segment is sealed without envelopes — its
    /// readers decode the events, and only that event's reads fail, as in the hot table.
    pub fn with_envelopes(
        partition: u32,
        events: Vec<SegmentEvent>,
        stored: Vec<Option<Vec<u8>>>,
    ) -> Result<Self, FormatError> {
        if stored.len() != events.len() {
            return Err(FormatError::Codec(CodecError::new(format!(
                "{} envelopes for {} events",
                stored.len(),
                events.len()
            ))));
        }
        let envelopes = events
            .iter()
            .zip(stored)
            .map(|(event, stored)| match stored {
                Some(bytes) => Ok(ByteBuf::from(bytes)),
                None => event
                    .envelope(partition)
                    .map(|envelope| ByteBuf::from(codec::encode(&envelope))),
            })
            .collect::<Result<Vec<_>, CodecError>>()
            .unwrap_or_default();
        let (first_offset, last_offset) = match (events.first(), events.last()) {
            (Some(first), Some(last)) => (first.offset, last.offset),
            _ => return Err(FormatError::EmptySegment),
        };
        let segment = Self {
            format_version: FORMAT_VERSION,
            partition,
            first_offset,
            last_offset,
            events,
            envelopes,
        };
        segment.check()?;
        Ok(segment)
    }

    /// MessagePack with named fields.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a segment, refusing an unknown format version and events that are not the
    /// dense offsets `first_offset..=last_offset`.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let segment: Self = codec::decode(bytes).map_err(|e| undecodable(bytes, e))?;
        segment.check()?;
        Ok(segment)
    }

    /// The segment's rules: a known format version, at least one event, events that are
    /// exactly the offsets `first_offset..=last_offset` in order, and envelopes either
    /// absent or one per event.
    pub fn check(&self) -> Result<(), FormatError> {
        if self.format_version != FORMAT_VERSION {
            return Err(FormatError::UnknownFormatVersion {
                found: self.format_version,
                known: FORMAT_VERSION,
            });
        }
        if self.events.is_empty() {
            return Err(FormatError::EmptySegment);
        }
        check_span(self.first_offset, self.last_offset, self.events.len())?;
        if !self.envelopes.is_empty() && self.envelopes.len() != self.events.len() {
            return Err(FormatError::EnvelopeCount {
                first_offset: self.first_offset,
                last_offset: self.last_offset,
                envelopes: self.envelopes.len(),
            });
        }
        // The range fits the count, so first_offset + index <= last_offset: no overflow.
        for (index, event) in self.events.iter().enumerate() {
            let expected = self.first_offset + index as u64;
            if event.offset != expected {
                return Err(FormatError::OffsetMismatch {
                    index,
                    expected,
                    found: event.offset,
                });
            }
        }
        Ok(())
    }

    /// The events with an offset greater than `after` (a reader's cursor), in order.
    pub fn events_after(&self, after: u64) -> &[SegmentEvent] {
        // Dense offsets: the event at offset `after + 1` is at index `after + 1 - first`.
        let start = after.saturating_add(1).saturating_sub(self.first_offset);
        usize::try_from(start)
            .ok()
            .and_then(|start| self.events.get(start..))
            .unwrap_or(&[])
    }

    /// This segment's object key in R2 ([`object_key`]).
    pub fn object_key(&self, tenant: &str) -> String {
        object_key(tenant, self.partition, self.first_offset, self.last_offset)
    }
}

/// The R2 object key of the segment `first_offset..=last_offset` of a tenant's partition:
/// `"{tenant}/stream/v1/p{partition}/{first_offset:020}-{last_offset:020}.msgpack"`.
pub fn object_key(tenant: &str, partition: u32, first_offset: u64, last_offset: u64) -> String {
    format!(
        "{}{first_offset:020}-{last_offset:020}.msgpack",
        partition_prefix(tenant, partition)
    )
}

/// The R2 prefix of every segment of a tenant's partition, ending in `/` (so partition 1's
/// prefix does not also list partition 10's segments).
pub fn partition_prefix(tenant: &str, partition: u32) -> String {
    format!("{tenant}/stream/v1/p{partition}/")
}

/// What an object key names: the inverse of [`object_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKey {
    pub tenant: String,
    pub partition: u32,
    pub first_offset: u64,
    pub last_offset: u64,
}

impl SegmentKey {
    /// Parses a key written by [`object_key`]; `None` for anything else (other objects
    /// in the bucket, hand-made keys). Strict: only the exact form [`object_key`] produces
    /// is accepted, so `object_key` of the result gives `key` back.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let (Some(tenant), Some("stream"), Some("v1"), Some(partition), Some(file), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if tenant.is_empty() {
            return None;
        }
        let partition = u32::try_from(canonical_decimal(partition.strip_prefix('p')?)?).ok()?;
        let (first, last) = file.strip_suffix(".msgpack")?.split_once('-')?;
        let first_offset = padded_offset(first)?;
        let last_offset = padded_offset(last)?;
        (first_offset <= last_offset).then(|| Self {
            tenant: tenant.to_owned(),
            partition,
            first_offset,
            last_offset,
        })
    }

    /// The key this names.
    pub fn object_key(&self) -> String {
        object_key(
            &self.tenant,
            self.partition,
            self.first_offset,
            self.last_offset,
        )
    }
}

/// Digits without a leading zero (except "0" itself).
fn canonical_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Exactly 20 digits.
fn padded_offset(text: &str) -> Option<u64> {
    (text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Which ranges `(first, last)` (inclusive offsets) of a partition may be sealed now.
///
/// * `oldest_hot` — the oldest offset still hot (offsets start at 1; 0 is read as 1);
/// * `head` — the newest offset (0 for an empty partition); nothing is hot when
///   `head < oldest_hot`;
/// * `segment_size` — events per segment; 0 disables sealing;
/// * `keep_hot` — at least this many of the newest events stay hot.
///
/// The answer is consecutive whole segments from `oldest_hot`, oldest first, at most
/// [`MAX_SEAL_RANGES`] of them; empty when fewer than `segment_size` events are both hot and
/// older than the `keep_hot` newest. After sealing `(first, last)` the oldest hot offset
/// becomes `last + 1`.
pub fn seal_ranges(
    oldest_hot: u64,
    head: u64,
    segment_size: u64,
    keep_hot: u64,
) -> Vec<(u64, u64)> {
    let oldest_hot = oldest_hot.max(1);
    if segment_size == 0 || head < oldest_hot {
        return Vec::new();
    }
    let hot = head - oldest_hot + 1; // oldest_hot >= 1, so no overflow
    let sealable = hot.saturating_sub(keep_hot);
    let segments = (sealable / segment_size).min(MAX_SEAL_RANGES as u64);
    // Every range ends at or before `head`, so none of this overflows.
    (0..segments)
        .map(|i| {
            let first = oldest_hot + i * segment_size;
            (first, first + (segment_size - 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use domain::envelope::Metadata;
    use serde_json::json;

    use super::*;

    fn event(offset: u64) -> SegmentEvent {
        SegmentEvent {
            offset,
            aggregate_type: "board".into(),
            aggregate_id: format!("b{}", offset % 3),
            event: ForwardedEvent {
                seq: offset,
                event_id: format!("0190f3c2-7a4e-7cc1-9a7e-{offset:012}"),
                event_type: "CardAdded".into(),
                schema_version: 1,
                data_msgpack: codec::encode(&json!({"card_id": format!("c{offset}")})),
                recorded_at_ms: 1_700_000_000_000 + offset as i64,
                metadata: Metadata::default(),
            },
        }
    }

    fn segment(offsets: std::ops::RangeInclusive<u64>) -> Segment {
        Segment::new(3, offsets.map(event).collect()).unwrap()
    }

    #[test]
    fn a_segment_round_trips() {
        let original = segment(101..=110);
        assert_eq!(
            (
                original.format_version,
                original.first_offset,
                original.last_offset
            ),
            (FORMAT_VERSION, 101, 110)
        );
        let bytes = original.encode();
        assert!(
            bytes.windows(14).any(|w| w == b"format_version"),
            "fields are named"
        );
        assert_eq!(Segment::decode(&bytes), Ok(original));
    }

    #[test]
    fn new_refuses_empty_and_holes() {
        assert_eq!(Segment::new(0, vec![]), Err(FormatError::EmptySegment));
        assert_eq!(
            Segment::new(0, vec![event(1), event(3), event(3)]),
            Err(FormatError::OffsetMismatch {
                index: 1,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            Segment::new(0, vec![event(1), event(2), event(4)]),
            Err(FormatError::RangeMismatch {
                first_offset: 1,
                last_offset: 4,
                events: 3
            })
        );
    }

    fn decode_tampered(tamper: impl FnOnce(&mut Segment)) -> Result<Segment, FormatError> {
        let mut segment = segment(1..=4);
        tamper(&mut segment);
        Segment::decode(&segment.encode())
    }

    #[test]
    fn decode_refuses_segments_that_are_not_dense() {
        assert_eq!(
            decode_tampered(|s| s.events[2].offset = 9),
            Err(FormatError::OffsetMismatch {
                index: 2,
                expected: 3,
                found: 9
            })
        );
        assert_eq!(
            decode_tampered(|s| {
                s.events.remove(2);
            }),
            Err(FormatError::RangeMismatch {
                first_offset: 1,
                last_offset: 4,
                events: 3
            })
        );
        assert_eq!(
            decode_tampered(|s| s.last_offset = 5),
            Err(FormatError::RangeMismatch {
                first_offset: 1,
                last_offset: 5,
                events: 4
            })
        );
        assert_eq!(
            decode_tampered(|s| s.first_offset = 2),
            Err(FormatError::RangeMismatch {
                first_offset: 2,
                last_offset: 4,
                events: 4
            })
        );
        assert_eq!(
            decode_tampered(|s| (s.first_offset, s.last_offset) = (u64::MAX, 0)),
            Err(FormatError::RangeMismatch {
                first_offset: u64::MAX,
                last_offset: 0,
                events: 4
            })
        );
        assert_eq!(
            decode_tampered(|s| s.events.clear()),
            Err(FormatError::EmptySegment)
        );
    }

    #[test]
    fn decode_refuses_unknown_format_versions() {
        assert_eq!(
            decode_tampered(|s| s.format_version = 2),
            Err(FormatError::UnknownFormatVersion { found: 2, known: 1 })
        );
        // A future format of another shape still reports its version, not a shape error.
        let future =
            codec::encode(&json!({"format_version": 2, "columns": ["offset"], "rows": []}));
        assert_eq!(
            Segment::decode(&future),
            Err(FormatError::UnknownFormatVersion { found: 2, known: 1 })
        );
        assert_eq!(
            SegmentEnvelopes::decode(&future),
            Err(FormatError::UnknownFormatVersion { found: 2, known: 1 })
        );
        // Our version in a broken shape is a codec error.
        let broken = codec::encode(&json!({"format_version": 1, "events": "no"}));
        assert!(matches!(
            Segment::decode(&broken),
            Err(FormatError::Codec(_))
        ));
        assert!(matches!(Segment::decode(&[]), Err(FormatError::Codec(_))));
    }

    #[test]
    fn a_segment_carries_each_events_envelope_and_serves_them_borrowed() {
        let s = segment(11..=15);
        assert_eq!(s.envelopes.len(), 5);
        for (event, envelope) in s.events.iter().zip(&s.envelopes) {
            assert_eq!(
                envelope.as_slice(),
                codec::encode(&event.envelope(3).unwrap()).as_slice()
            );
        }
        let bytes = s.encode();
        let view = SegmentEnvelopes::decode(&bytes).unwrap().unwrap();
        assert_eq!((view.first_offset, view.last_offset), (11, 15));
        let after_12: Vec<(u64, &[u8])> = view.after(12).collect();
        assert_eq!(
            after_12,
            vec![
                (13, s.envelopes[2].as_slice()),
                (14, s.envelopes[3].as_slice()),
                (15, s.envelopes[4].as_slice())
            ]
        );
        assert_eq!(view.after(0).count(), 5);
        assert_eq!(view.after(15).count(), 0);
        assert_eq!(view.after(u64::MAX).count(), 0);
        // Stored envelopes are taken as they are (the partition keeps them from the append).
        let stored = Segment::with_envelopes(
            3,
            vec![event(1), event(2)],
            vec![Some(b"stored".to_vec()), None],
        )
        .unwrap();
        assert_eq!(stored.envelopes[0].as_slice(), b"stored");
        assert_eq!(
            stored.envelopes[1].as_slice(),
            codec::encode(&event(2).envelope(3).unwrap()).as_slice()
        );
        assert!(Segment::with_envelopes(3, vec![event(1)], vec![]).is_err());
        // An envelope that cannot be encoded (payload bytes that are not MessagePack): the
        // segment is sealed without envelopes, and read by decoding its events.
        let mut broken = event(2);
        broken.event.data_msgpack = vec![0xc1];
        let sealed = Segment::with_envelopes(3, vec![event(1), broken], vec![None, None]).unwrap();
        assert!(sealed.envelopes.is_empty());
        assert_eq!(SegmentEnvelopes::decode(&sealed.encode()), Ok(None));
    }

    #[test]
    fn segments_without_envelopes_still_read_and_builds_without_the_field_ignore_it() {
        // Sealed before envelopes were kept: no field at all.
        let mut old = segment(1..=4);
        old.envelopes.clear();
        let bytes = old.encode();
        assert!(!bytes.windows(9).any(|w| w == b"envelopes"));
        assert_eq!(Segment::decode(&bytes), Ok(old.clone()));
        assert_eq!(SegmentEnvelopes::decode(&bytes), Ok(None));
        // A build that predates the field reads a segment that has it (serde skips the
        // unknown field), so rolling back strands nothing.
        #[derive(Debug, PartialEq, Deserialize)]
        struct Before {
            format_version: u32,
            partition: u32,
            first_offset: u64,
            last_offset: u64,
            events: Vec<SegmentEvent>,
        }
        let new = segment(1..=4);
        let before: Before = codec::decode(&new.encode()).unwrap();
        assert_eq!(before.events, new.events);
        assert_eq!(before.format_version, FORMAT_VERSION);
    }

    #[test]
    fn a_segment_missing_one_envelope_is_refused() {
        let mut short = segment(1..=4);
        short.envelopes.pop();
        let bytes = short.encode();
        let refusal = FormatError::EnvelopeCount {
            first_offset: 1,
            last_offset: 4,
            envelopes: 3,
        };
        assert_eq!(Segment::decode(&bytes), Err(refusal.clone()));
        assert_eq!(SegmentEnvelopes::decode(&bytes), Err(refusal));
    }

    #[test]
    fn events_after_a_cursor() {
        let s = segment(11..=15);
        let offsets = |after| {
            s.events_after(after)
                .iter()
                .map(|e| e.offset)
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(0), vec![11, 12, 13, 14, 15]);
        assert_eq!(offsets(10), vec![11, 12, 13, 14, 15]);
        assert_eq!(offsets(11), vec![12, 13, 14, 15]);
        assert_eq!(offsets(14), vec![15]);
        assert_eq!(offsets(15), Vec::<u64>::new());
        assert_eq!(offsets(u64::MAX), Vec::<u64>::new());
    }

    #[test]
    fn events_carry_their_position() {
        let e = event(42);
        let envelope = e.envelope(3).unwrap();
        assert_eq!(
            envelope.position,
            Some(Position {
                partition: 3,
                offset: 42
            })
        );
        assert_eq!(
            (
                envelope.aggregate_type.as_str(),
                envelope.aggregate_id.as_str()
            ),
            ("board", "b0")
        );
        assert_eq!(envelope.data, json!({"card_id": "c42"}));
    }

    #[test]
    fn object_keys_are_zero_padded_under_the_tenant() {
        assert_eq!(
            object_key("acme", 3, 1, 1000),
            "acme/stream/v1/p3/00000000000000000001-00000000000000001000.msgpack"
        );
        assert_eq!(
            object_key("acme", 0, u64::MAX, u64::MAX),
            "acme/stream/v1/p0/18446744073709551615-18446744073709551615.msgpack"
        );
        assert_eq!(partition_prefix("acme", 1), "acme/stream/v1/p1/");
        assert!(!object_key("acme", 10, 1, 2).starts_with(&partition_prefix("acme", 1)));
        assert_eq!(segment(5..=9).object_key("t"), object_key("t", 3, 5, 9));
    }

    #[test]
    fn object_keys_parse_back() {
        let key = object_key("acme-1_x", 255, 1001, 2000);
        let parsed = SegmentKey::parse(&key).unwrap();
        assert_eq!(
            parsed,
            SegmentKey {
                tenant: "acme-1_x".into(),
                partition: 255,
                first_offset: 1001,
                last_offset: 2000
            }
        );
        assert_eq!(parsed.object_key(), key);
    }

    #[test]
    fn other_keys_do_not_parse() {
        let good = "acme/stream/v1/p3/00000000000000000001-00000000000000001000.msgpack";
        assert!(SegmentKey::parse(good).is_some());
        for bad in [
            "",
            "/stream/v1/p3/00000000000000000001-00000000000000001000.msgpack", // no tenant
            "a/b/stream/v1/p3/00000000000000000001-00000000000000001000.msgpack", // tenant with '/'
            "acme/stream/v2/p3/00000000000000000001-00000000000000001000.msgpack",
            "acme/streams/v1/p3/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/3/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p03/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p-1/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p4294967296/00000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p3/1-1000.msgpack",
            "acme/stream/v1/p3/00000000000000000001-00000000000000001000.json",
            "acme/stream/v1/p3/00000000000000000001-00000000000000001000",
            "acme/stream/v1/p3/00000000000000000001_00000000000000001000.msgpack",
            "acme/stream/v1/p3/+0000000000000000001-00000000000000001000.msgpack",
            "acme/stream/v1/p3/99999999999999999999-99999999999999999999.msgpack", // > u64
            "acme/stream/v1/p3/00000000000000001000-00000000000000000001.msgpack", // first > last
            "acme/stream/v1/p3/00000000000000000001-00000000000000001000.msgpack/x",
            "acme/stream/v1/p3/",
        ] {
            assert_eq!(SegmentKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sealing_takes_whole_segments_and_keeps_the_newest_hot() {
        // 1..=2500 hot, segments of 1000, keep 500: 1..=1000 and 1001..=2000 may go.
        assert_eq!(
            seal_ranges(1, 2500, 1000, 500),
            vec![(1, 1000), (1001, 2000)]
        );
        // Keeping 501 leaves only 1,999 sealable events: one segment.
        assert_eq!(seal_ranges(1, 2500, 1000, 501), vec![(1, 1000)]);
        // Ranges start at the oldest hot offset.
        assert_eq!(seal_ranges(1001, 2500, 1000, 500), vec![(1001, 2000)]);
        assert_eq!(seal_ranges(7, 16, 5, 0), vec![(7, 11), (12, 16)]);
        // Exactly one segment's worth beyond keep_hot.
        assert_eq!(seal_ranges(1, 1500, 1000, 500), vec![(1, 1000)]);
        assert_eq!(seal_ranges(1, 1499, 1000, 500), vec![]);
    }

    #[test]
    fn sealing_nothing() {
        assert_eq!(seal_ranges(1, 0, 10, 0), vec![], "empty partition");
        assert_eq!(
            seal_ranges(11, 10, 10, 0),
            vec![],
            "everything already sealed"
        );
        assert_eq!(seal_ranges(1, 1000, 0, 0), vec![], "sealing disabled");
        assert_eq!(
            seal_ranges(1, 1000, 10, u64::MAX),
            vec![],
            "keep everything"
        );
        assert_eq!(seal_ranges(1, 9, 10, 0), vec![], "no whole segment yet");
    }

    #[test]
    fn sealing_is_bounded_per_call_and_never_overflows() {
        let ranges = seal_ranges(1, 1_000_000, 1, 0);
        assert_eq!(ranges.len(), MAX_SEAL_RANGES);
        assert_eq!(ranges[0], (1, 1));
        assert_eq!(
            seal_ranges(0, 10, 5, 0),
            vec![(1, 5), (6, 10)],
            "offsets start at 1"
        );
        assert_eq!(seal_ranges(1, u64::MAX, u64::MAX, 0), vec![(1, u64::MAX)]);
        assert_eq!(
            seal_ranges(u64::MAX, u64::MAX, 1, 0),
            vec![(u64::MAX, u64::MAX)]
        );
        assert_eq!(seal_ranges(2, u64::MAX, u64::MAX, 0), vec![]);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn keys_round_trip(
            tenant in "[A-Za-z0-9_-]{1,64}",
            partition in any::<u32>(),
            first in any::<u64>(),
            len in any::<u64>(),
        ) {
            let last = first.saturating_add(len);
            let key = object_key(&tenant, partition, first, last);
            let parsed = SegmentKey::parse(&key).unwrap();
            prop_assert_eq!(&parsed, &SegmentKey { tenant, partition, first_offset: first, last_offset: last });
            prop_assert_eq!(parsed.object_key(), key);
        }

        /// Listing a partition's prefix in key order is listing its segments in offset order.
        #[test]
        fn key_order_is_offset_order(a in any::<(u64, u64)>(), b in any::<(u64, u64)>()) {
            let key = |(first, last): (u64, u64)| object_key("acme", 7, first, last);
            prop_assert_eq!(key(a).cmp(&key(b)), a.cmp(&b));
        }

        /// The sealed ranges are consecutive whole segments from the oldest hot offset, within
        /// the hot events, leave `keep_hot` events hot, and are as many as allowed.
        #[test]
        fn seal_ranges_policy(
            oldest_hot in 1u64..200,
            hot in 0u64..400,
            segment_size in 1u64..50,
            keep_hot in 0u64..100,
        ) {
            let head = oldest_hot + hot - 1; // hot == 0: head = oldest_hot - 1, nothing hot
            let ranges = seal_ranges(oldest_hot, head, segment_size, keep_hot);
            let mut next = oldest_hot;
            for &(first, last) in &ranges {
                prop_assert_eq!(first, next);
                prop_assert_eq!(last - first + 1, segment_size);
                next = last + 1;
            }
            let sealed = next - oldest_hot;
            prop_assert!(hot - sealed >= keep_hot.min(hot), "the newest keep_hot stay hot");
            prop_assert!(ranges.len() <= MAX_SEAL_RANGES);
            // Maximal: one more segment would break keep_hot (or the per-call bound).
            prop_assert!(
                ranges.len() == MAX_SEAL_RANGES || sealed + segment_size + keep_hot > hot
            );
        }
    }
}
