//! Expected-version rules for optimistic concurrency.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// What a command expects the aggregate's version to be.
///
/// On the wire: a number (exact), `"any"`, `"none"` (the aggregate must not exist yet) or
/// `"exists"`. Omitted means `"any"` (the field's `#[serde(default)]`); `null` is none of
/// these and is refused, as is any other type: reading it as `"any"` would quietly turn the
/// client's concurrency check off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    #[default]
    Any,
    None,
    Exists,
    Exact(u64),
}

/// `expected_version` does not hold. HTTP 409 `version_conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected version {expected}, but the aggregate is at version {actual}")]
pub struct VersionConflict {
    pub expected: ExpectedVersion,
    pub actual: u64,
}

impl ExpectedVersion {
    /// Checks the rule against the aggregate's current version (0 = no events yet).
    pub fn check(self, actual: u64) -> Result<(), VersionConflict> {
        let holds = match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::None => actual == 0,
            ExpectedVersion::Exists => actual > 0,
            ExpectedVersion::Exact(n) => n == actual,
        };
        if holds {
            Ok(())
        } else {
            Err(VersionConflict {
                expected: self,
                actual,
            })
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("\"any\""),
            ExpectedVersion::None => f.write_str("\"none\""),
            ExpectedVersion::Exists => f.write_str("\"exists\""),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for ExpectedVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedVersion::Any => s.serialize_str("any"),
            ExpectedVersion::None => s.serialize_str("none"),
            ExpectedVersion::Exists => s.serialize_str("exists"),
            ExpectedVersion::Exact(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectedVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ExpectedVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a non-negative integer, "any", "none" or "exists""#)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ExpectedVersion::Exact(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ExpectedVersion::Exact)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "any" => Ok(ExpectedVersion::Any),
                    "none" => Ok(ExpectedVersion::None),
                    "exists" => Ok(ExpectedVersion::Exists),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}
