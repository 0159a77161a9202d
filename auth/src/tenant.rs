//! Who owns the data: the `tenant` claim.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A tenant id: the namespace every aggregate, stream and read model of a request lives in.
///
/// # Syntax
///
/// 1 to [`Tenant::MAX_LEN`] characters, each an ASCII letter, digit, `_` or `-`
/// (`[A-Za-z0-9_-]{1,64}`). Case-sensitive: `Acme` and `acme` are different tenants.
///
/// # Why so strict
///
/// The tenant becomes the prefix of Durable Object names, `"{tenant}/{type}:{id}"`. Excluding
/// `/` and `:` keeps that name unambiguous (no tenant can forge another tenant's prefix);
/// excluding `.`, whitespace, control characters and non-ASCII keeps it the same byte string
/// in every log, URL and storage key; the length bound keeps names short. A value that cannot be
/// a valid tenant never gets past [`Tenant::parse`], so code holding a `Tenant` need not check
/// again.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);

impl Tenant {
    /// The longest tenant id, in characters (all ASCII, so also bytes).
    pub const MAX_LEN: usize = 64;

    /// Validates `s` as a tenant id (see the type's docs for the syntax).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let valid_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if (1..=Self::MAX_LEN).contains(&s.len()) && s.bytes().all(valid_char) {
            Ok(Tenant(s.to_owned()))
        } else {
            Err(ParseError::Tenant)
        }
    }

    /// The tenant id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Tenant {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tenant {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tenant::parse(s)
    }
}

impl TryFrom<String> for Tenant {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Tenant::parse(&s)
    }
}

impl From<Tenant> for String {
    fn from(tenant: Tenant) -> String {
        tenant.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "acme", "Acme-Corp_2", "0", "_", "-", "A-Z_a-z_0-9"] {
            assert_eq!(Tenant::parse(ok).unwrap().as_str(), ok);
        }
        let longest = "t".repeat(Tenant::MAX_LEN);
        assert!(Tenant::parse(&longest).is_ok());
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(Tenant::parse(""), Err(ParseError::Tenant));
        let too_long = "t".repeat(Tenant::MAX_LEN + 1);
        assert_eq!(Tenant::parse(&too_long), Err(ParseError::Tenant));
    }

    #[test]
    fn rejects_characters_that_could_break_object_names() {
        for bad in [
            "acme/board",
            "acme:1",
            "a.b",
            "a b",
            " acme",
            "acme\n",
            "acme\0",
            "ácme",
            "acme%2F",
            "..",
            "*",
        ] {
            assert_eq!(Tenant::parse(bad), Err(ParseError::Tenant), "{bad:?}");
        }
    }

    #[test]
    fn is_case_sensitive() {
        assert_ne!(
            Tenant::parse("Acme").unwrap(),
            Tenant::parse("acme").unwrap()
        );
    }

    #[test]
    fn deserializing_validates() {
        let t: Tenant = serde_json::from_str(r#""acme""#).unwrap();
        assert_eq!(t.as_str(), "acme");
        assert!(serde_json::from_str::<Tenant>(r#""acme/other""#).is_err());
        assert!(serde_json::from_str::<Tenant>("42").is_err());
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""acme""#);
    }
}
