//! How a request's fields decode, and how a decoding error names the field it is about.
//!
//! One rule for every field a client sends: it is either absent or of its documented type.
//! `null` is a value only where a field documents it (`SetWipLimit.limit`: `null` clears
//! the limit); anywhere else it is a 400, never a quiet "absent". serde reads `null` into
//! an `Option` field as `None`, so an optional field takes
//! `#[serde(default, deserialize_with = "fields::never_null")]`: absent gives `None`
//! (serde's `default`), a value gives `Some`, `null` is refused. A type that is also
//! serialized adds `skip_serializing_if = "Option::is_none"`, so that what it writes
//! decodes back to it instead of sending the refused `null`.
//!
//! serde's messages say what was wrong with a value ("invalid type: null, expected a
//! string") but not where; [`blame`] finds the field.

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// What a client is told when it sends `null` for an optional field.
pub(crate) const NULL_REFUSED: &str = "null is not allowed; leave the field out instead";

/// An optional field that, when present, holds a `T`: never `null`. Use it with
/// `#[serde(default)]`, which is what makes the field optional.
pub(crate) fn never_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        Some(value) => Ok(Some(value)),
        None => Err(de::Error::custom(NULL_REFUSED)),
    }
}

/// A required field whose value may be `null` (serde makes `Option` fields optional
/// unless they have their own deserializer).
pub(crate) fn present_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// At most this many of an object's fields are tried by [`blame`]; with
/// `deny_unknown_fields` a type fails by its first few anyway.
const MAX_BLAMED_FIELDS: usize = 32;

/// Decodes a `T` from `whole`, and on failure says which field of the object
/// `fields(whole)` is to blame.
///
/// A derived `Deserialize` reads an object's fields in the object's order and stops at the
/// first bad one, so the field to blame is the last field of the shortest prefix of the
/// object that fails with the same error. `wrap` rebuilds what `T` is decoded from around
/// a prefix (for a command: `{"type": …, "data": prefix}`). Errors that are not about one
/// present field (a missing field, or one the empty object fails with too, such as an
/// unknown command type) name nothing. Only the error path decodes more than once.
pub(crate) fn decode<T: DeserializeOwned>(
    whole: &Value,
    fields: impl Fn(&Value) -> Option<&Map<String, Value>>,
    wrap: impl Fn(Value) -> Value,
) -> Result<T, Blamed> {
    let error = match T::deserialize(whole) {
        Ok(decoded) => return Ok(decoded),
        Err(error) => error.to_string(),
    };
    let field = fields(whole).and_then(|object| blame::<T>(object, &wrap, &error));
    Err(Blamed { field, error })
}

/// A decoding error, and the field it is about when one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blamed {
    pub field: Option<String>,
    pub error: String,
}

impl Blamed {
    /// `` `{prefix}{field}`: {error} `` when a field is to blame, else the error alone
    /// (also when the error names the field itself: "unknown field `wip_limt`").
    pub fn message(&self, prefix: &str) -> String {
        match &self.field {
            Some(field) if !self.error.contains(&format!("field `{field}`")) => {
                format!("`{prefix}{field}`: {}", self.error)
            }
            _ => self.error.clone(),
        }
    }
}

fn blame<T: DeserializeOwned>(
    object: &Map<String, Value>,
    wrap: &impl Fn(Value) -> Value,
    error: &str,
) -> Option<String> {
    if error.starts_with("missing field") {
        return None;
    }
    let fails_the_same = |prefix: &Map<String, Value>| {
        T::deserialize(&wrap(Value::Object(prefix.clone()))).is_err_and(|e| e.to_string() == error)
    };
    let mut prefix = Map::new();
    if fails_the_same(&prefix) {
        return None;
    }
    for (key, value) in object.iter().take(MAX_BLAMED_FIELDS) {
        prefix.insert(key.clone(), value.clone());
        if fails_the_same(&prefix) {
            return Some(key.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        name: String,
        #[serde(default, deserialize_with = "never_null")]
        note: Option<String>,
        #[serde(deserialize_with = "present_or_null")]
        limit: Option<u32>,
    }

    fn decode_example(value: Value) -> Result<Example, Blamed> {
        decode(&value, Value::as_object, |v| v)
    }

    #[test]
    fn an_optional_field_is_absent_or_its_type_but_never_null() {
        assert_eq!(
            decode_example(json!({"name": "a", "limit": 1})),
            Ok(Example {
                name: "a".into(),
                note: None,
                limit: Some(1)
            })
        );
        assert_eq!(
            decode_example(json!({"name": "a", "note": "n", "limit": null})),
            Ok(Example {
                name: "a".into(),
                note: Some("n".into()),
                limit: None
            })
        );
        let refused = decode_example(json!({"name": "a", "note": null, "limit": 1})).unwrap_err();
        assert_eq!(
            refused.message(""),
            "`note`: null is not allowed; leave the field out instead"
        );
    }

    #[test]
    fn the_field_to_blame_is_named_whatever_the_others_hold() {
        let cases = [
            (
                json!({"name": 5, "note": null, "limit": null}),
                Some("name"),
            ),
            (json!({"name": null, "limit": 1}), Some("name")),
            // `limit: null` is allowed; the bad field comes after it in the object.
            (
                json!({"limit": null, "note": [], "name": "a"}),
                Some("note"),
            ),
            (json!({"name": "a", "limit": "3"}), Some("limit")),
            (json!({"name": "a", "limit": 1, "nmae": "b"}), Some("nmae")),
            // Not about a field that is there.
            (json!({"name": "a"}), None),
        ];
        for (value, field) in cases {
            let blamed = decode_example(value.clone()).unwrap_err();
            assert_eq!(blamed.field.as_deref(), field, "{value}: {}", blamed.error);
        }
    }
}
