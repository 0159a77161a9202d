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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

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
}
