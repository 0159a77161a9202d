//! What a token may do: the OAuth-style `scope` claim.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// One permission a token can grant. Each `/v1` route requires exactly one.
///
/// Scopes are independent: `admin` does not imply the others, so a token holds exactly what its
/// minter wrote and a route's requirement can be read off the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send commands to aggregates.
    Commands,
    /// Read one aggregate's state (also as of a past version or time), its event listing,
    /// read models, and subscribe to live events.
    Read,
    /// Bulk history: the global stream across aggregates, replays and exports.
    Replay,
    /// Run agent loops: poll/ack/nack consumer groups.
    Consume,
    /// Operate the deployment: rebuild projections, replay parked events, set integration
    /// secrets.
    Admin,
    /// Send production telemetry (`POST /v1/ingest/telemetry`) and nothing else: the scope of
    /// a *publishable* token, the one a web page embeds (README, "Telemetry from a page").
    Ingest,
}

impl Scope {
    /// Every scope, in canonical order (the order [`Scopes`] displays them in).
    pub const ALL: [Scope; 6] = [
        Scope::Commands,
        Scope::Read,
        Scope::Replay,
        Scope::Consume,
        Scope::Admin,
        Scope::Ingest,
    ];

    /// The scope's name as it appears in the `scope` claim.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Commands => "commands",
            Scope::Read => "read",
            Scope::Replay => "replay",
            Scope::Consume => "consume",
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ParseError;

    /// Exact, case-sensitive match on a scope name (OAuth scope tokens are case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ParseError::UnknownScope(truncate_for_message(s)))
    }
}

/// A set of [`Scope`]s, written as the OAuth `scope` string: names separated by spaces.
///
/// Parsing is strict about names (an unknown or misspelt scope is an error, not silently
/// dropped, so a typo shows up when the token is minted or verified rather than as a puzzling
/// 403 later) and lenient about layout (any ASCII whitespace separates, repeats are harmless).
/// The empty string is the empty set; [`crate::verify`] refuses tokens that grant nothing.
/// Displays in canonical order, so `"read commands read"` round-trips as `"commands read"`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scopes(u8);

impl Scopes {
    /// The empty set.
    pub const fn empty() -> Self {
        Scopes(0)
    }

    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Parses a `scope` string such as `"commands read"`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        s.split_ascii_whitespace().map(str::parse).collect()
    }

    /// Whether `scope` is in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope` to the set.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set grants nothing.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::empty();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromStr for Scopes {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scopes::parse(s)
    }
}

impl TryFrom<String> for Scopes {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Scopes::parse(&s)
    }
}

impl From<Scopes> for String {
    fn from(scopes: Scopes) -> String {
        scopes.to_string()
    }
}

/// Keeps an echoed user value short enough for an error message.
fn truncate_for_message(s: &str) -> String {
    const MAX_CHARS: usize = 32;
    if s.chars().count() <= MAX_CHARS {
        s.to_owned()
    } else {
        let mut short: String = s.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scope_name_and_displays_canonically() {
        let scopes = Scopes::parse("ingest admin consume replay read commands").unwrap();
        assert_eq!(scopes, Scopes::all());
        assert_eq!(
            scopes.to_string(),
            "commands read replay consume admin ingest"
        );
    }

    #[test]
    fn contains_only_what_was_granted() {
        let scopes = Scopes::parse("commands read").unwrap();
        assert!(scopes.contains(Scope::Commands));
        assert!(scopes.contains(Scope::Read));
        assert!(!scopes.contains(Scope::Replay));
        assert!(!scopes.contains(Scope::Consume));
        assert!(!scopes.contains(Scope::Admin));
    }

    #[test]
    fn tolerates_extra_whitespace_and_repeats() {
        let scopes = Scopes::parse("  read\tread  commands \n").unwrap();
        assert_eq!(scopes.to_string(), "commands read");
    }

    #[test]
    fn empty_string_is_the_empty_set() {
        let scopes = Scopes::parse("").unwrap();
        assert!(scopes.is_empty());
        assert_eq!(scopes.to_string(), "");
        assert!(Scopes::parse("   ").unwrap().is_empty());
    }

    #[test]
    fn rejects_unknown_and_miscased_names() {
        assert_eq!(
            Scopes::parse("read comands"),
            Err(ParseError::UnknownScope("comands".into()))
        );
        assert_eq!(
            Scopes::parse("READ"),
            Err(ParseError::UnknownScope("READ".into()))
        );
        // A comma is not a separator in OAuth scope strings.
        assert!(Scopes::parse("commands,read").is_err());
    }

    #[test]
    fn unknown_scope_message_is_bounded() {
        let long = "x".repeat(10_000);
        let err = Scopes::parse(&long).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn serializes_as_the_oauth_string() {
        let scopes = Scopes::parse("read commands").unwrap();
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(json, r#""commands read""#);
        let back: Scopes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, scopes);
        assert!(serde_json::from_str::<Scopes>(r#""read write""#).is_err());
        assert!(serde_json::from_str::<Scopes>(r#"["read"]"#).is_err());
    }

    #[test]
    fn single_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
    }
}
