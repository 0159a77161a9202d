//! The one storage codec: MessagePack with named fields (rmp-serde), so payloads stay
//! self-describing and fields can be added without breaking old rows.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(pub String);

impl CodecError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Encodes a value as MessagePack with field names.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing our own types (and serde_json::Value) to a Vec cannot fail:
    // every map key is a string and there is no IO.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

/// How deeply arrays and maps may nest in decoded bytes (serde_json's limit too).
///
/// rmp-serde's own default (1024) is deeper than the stack allows: about a thousand bytes
/// of nested one-element arrays, decoded into a `serde_json::Value`, overflow a 2 MiB
/// native test stack, and wasm32 has 1 MiB. Our payloads nest a few levels.
pub const MAX_DEPTH: usize = 128;

/// Decodes MessagePack. Never panics, whatever the bytes: malformed, truncated or too
/// deeply nested input is a [`CodecError`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// [`decode`] for types that borrow from `bytes` (strings and `bin` data as slices of it,
/// nothing copied), with the same guarantees.
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    deserializer.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut deserializer).map_err(|e| CodecError::new(e.to_string()))
}

/// The first `len` bytes of `rd`, which then starts after them.
pub fn take<'a>(rd: &mut &'a [u8], len: u64) -> Result<&'a [u8], CodecError> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > rd.len() {
        return Err(CodecError::new("truncated MessagePack"));
    }
    let (taken, rest) = rd.split_at(len);
    *rd = rest;
    Ok(taken)
}

/// Steps `rd` over one MessagePack value, with everything nested in it, by its markers and
/// lengths, decoding nothing: the format's rules (msgpack spec, "Formats") for how long
/// each marker's value is. Iterative, so nesting depth costs no stack. Errors: truncated
/// bytes, or the reserved marker (0xc1).
pub fn skip_value(rd: &mut &[u8]) -> Result<(), CodecError> {
    use rmp::Marker;
    let codec = |e: &dyn std::fmt::Display| CodecError::new(e.to_string());
    // Values still to step over: one, plus each array's items and each map's keys and values.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = rmp::decode::read_marker(rd).map_err(|e| codec(&e.0))?;
        let (skip, values) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(len) => (u64::from(len), 0),
            Marker::Str8 | Marker::Bin8 => (u64::from(take(rd, 1)?[0]), 0),
            Marker::Str16 | Marker::Bin16 => (be(take(rd, 2)?), 0),
            Marker::Str32 | Marker::Bin32 => (be(take(rd, 4)?), 0),
            Marker::FixArray(len) => (0, u64::from(len)),
            Marker::Array16 => (0, be(take(rd, 2)?)),
            Marker::Array32 => (0, be(take(rd, 4)?)),
            Marker::FixMap(len) => (0, 2 * u64::from(len)),
            Marker::Map16 => (0, 2 * be(take(rd, 2)?)),
            Marker::Map32 => (0, 2 * be(take(rd, 4)?)),
            // An extension's type byte, then its data.
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (u64::from(take(rd, 1)?[0]) + 1, 0),
            Marker::Ext16 => (be(take(rd, 2)?) + 1, 0),
            Marker::Ext32 => (be(take(rd, 4)?) + 1, 0),
            Marker::Reserved => return Err(CodecError::new("reserved MessagePack marker 0xc1")),
        };
        take(rd, skip)?;
        pending += values;
    }
    Ok(())
}

/// The string value of the top-level field `name` of a MessagePack map (as [`encode`]
/// writes structs: fields by name), read by the markers without decoding the other
/// values. `Ok(None)` when the map has no such field or its value is not a string.
/// Errors: `bytes` is not a map, or is truncated before the field.
pub fn map_str_field<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a str>, CodecError> {
    let codec = |e: &dyn std::fmt::Display| CodecError::new(e.to_string());
    let mut rd = bytes;
    let fields = rmp::decode::read_map_len(&mut rd).map_err(|e| codec(&e))?;
    for _ in 0..fields {
        let key = read_str(&mut rd)?;
        if key == Some(name) {
            return read_str(&mut rd);
        }
        if key.is_none() {
            skip_value(&mut rd)?; // a key that is not a string (never written by `encode`)
        }
        skip_value(&mut rd)?;
    }
    Ok(None)
}

/// A string at the front of `rd`, borrowed, and `rd` moved past it; `None` (and `rd`
/// unmoved) if the next value is not a string.
fn read_str<'a>(rd: &mut &'a [u8]) -> Result<Option<&'a str>, CodecError> {
    use rmp::Marker;
    let mut peek = *rd;
    let len =
        match rmp::decode::read_marker(&mut peek).map_err(|e| CodecError::new(e.0.to_string()))? {
            Marker::FixStr(len) => u64::from(len),
            Marker::Str8 => u64::from(take(&mut peek, 1)?[0]),
            Marker::Str16 => be(take(&mut peek, 2)?),
            Marker::Str32 => be(take(&mut peek, 4)?),
            _ => return Ok(None),
        };
    let text = std::str::from_utf8(take(&mut peek, len)?)
        .map_err(|e| CodecError::new(format!("a string that is not UTF-8: {e}")))?;
    *rd = peek;
    Ok(Some(text))
}

/// A big-endian unsigned integer of 2 or 4 bytes (MessagePack's lengths).
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_string_field_is_read_without_decoding_the_others() {
        let long = "x".repeat(70_000); // a Str32 to step over
        let bytes = encode(&json!({
            "data": {"nested": [1, 2, {"aggregate_type": "inner"}]},
            "long": long,
            "n": 7,
            "aggregate_type": "board",
            "after": "ignored"
        }));
        assert_eq!(map_str_field(&bytes, "aggregate_type"), Ok(Some("board")));
        assert_eq!(map_str_field(&bytes, "long"), Ok(Some(long.as_str())));
        assert_eq!(map_str_field(&bytes, "n"), Ok(None), "not a string");
        assert_eq!(map_str_field(&bytes, "missing"), Ok(None));
        assert!(
            map_str_field(&encode(&json!(["a"])), "a").is_err(),
            "not a map"
        );
        assert!(
            map_str_field(&bytes[..20], "aggregate_type").is_err(),
            "truncated"
        );
        let envelope: crate::EventEnvelope = serde_json::from_value(json!({
            "aggregate_type": "board", "aggregate_id": "b1", "seq": 1, "event_id": "e1",
            "type": "CardAdded", "schema_version": 1, "data": {"card_id": "c1"},
            "recorded_at": "2026-01-01T00:00:00.000Z", "command_id": null,
            "correlation_id": null, "causation_id": null, "actor": "a"
        }))
        .unwrap();
        let envelope = encode(&envelope);
        assert_eq!(
            map_str_field(&envelope, "aggregate_type"),
            Ok(Some("board"))
        );
    }

    #[test]
    fn values_round_trip_with_field_names() {
        let value = json!({"card_id": "c1", "labels": ["a", "b"], "n": -3, "x": 1.5, "none": null});
        let bytes = encode(&value);
        assert!(
            bytes.windows(7).any(|w| w == b"card_id"),
            "fields are stored by name"
        );
        assert_eq!(decode::<Value>(&bytes), Ok(value));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 0x91 is a one-element array: 10,000 of them nest 10,000 deep.
        let error = decode::<Value>(&[0x91; 10_000]).unwrap_err();
        assert!(error.0.contains("depth limit exceeded"), "{error}");
        // Nesting up to the limit still decodes.
        let mut nested = json!(0);
        for _ in 0..MAX_DEPTH - 1 {
            nested = json!([nested]);
        }
        assert_eq!(decode::<Value>(&encode(&nested)), Ok(nested));
    }

    #[test]
    fn truncated_and_empty_input_are_errors() {
        let bytes = encode(&json!({"title": "Feedback loop"}));
        assert!(decode::<Value>(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode::<Value>(&[]).is_err());
    }

    /// `skip_value` steps over exactly one value of every MessagePack shape (each width of
    /// string, binary, array, map, integer and float, extensions, nesting), and bytes cut
    /// anywhere inside it are an error, not a panic.
    #[test]
    fn skip_value_steps_over_exactly_one_value_of_every_shape() {
        let long = "é".repeat(40_000);
        let value = json!({
            "ints": [0, 127, -32, -33, 255, 65_535, 70_000, -200, -70_000, u64::MAX, i64::MIN],
            "floats": [1.5, -0.25],
            "strings": ["", "a", "x".repeat(40), "y".repeat(300), long],
            "flags": [true, false, null],
            "nested": {"a": {"b": [[], {}, [[1]]]}},
        });
        let mut bytes = encode(&value);
        // bin 16 of 300 bytes, bin 32 of 70,000.
        bytes.extend([0xc5, 0x01, 0x2c]);
        bytes.extend([7u8; 300]);
        bytes.extend([0xc6, 0x00, 0x01, 0x11, 0x70]);
        bytes.extend([8u8; 70_000]);
        // fixext 1, then ext 8 of three bytes: each with its type byte.
        bytes.extend([0xd4, 5, 1, 0xc7, 3, 5, 1, 2, 3]);
        let mut rd = bytes.as_slice();
        for _ in 0..3 {
            skip_value(&mut rd).unwrap();
        }
        assert_eq!(
            rd.len(),
            9,
            "the first three values are stepped over exactly"
        );
        skip_value(&mut rd).unwrap();
        skip_value(&mut rd).unwrap();
        assert!(rd.is_empty());
        let first = encode(&value);
        for cut in (0..first.len()).step_by(97) {
            let mut rd = &first[..cut];
            assert!(skip_value(&mut rd).is_err(), "cut at {cut}");
        }
        assert!(skip_value(&mut [0xc1u8].as_slice()).is_err());
    }
}
