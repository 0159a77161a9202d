//! Which events of a partition a reader wants: the filter of `GET /v1/stream` and
//! `GET /v1/stream/ws` (DESIGN.md, External contract: `aggregate_type=&types=A,B&since=&until=`).
//!
//! A filter narrows a read; it never moves it. Reads are in offset order and cursors are
//! offsets, so a filtered page still advances its cursor over the events it skipped. The
//! time range in particular is a filter on each event's `recorded_at`, not a seek: events of
//! different aggregates reach a partition in commit order, which is not strictly time order.
//!
//! # Query parameters
//! * `aggregate_type=T` — only events of aggregates of type `T` (1–128 characters). An
//!   unknown type is not an error here; it matches nothing (the caller may check it against
//!   `domain::registry` and answer 404 instead).
//! * `types=A,B` — only events whose type is one of the list: comma-separated, no empty
//!   entries (so no leading, trailing or doubled commas), at most [`MAX_EVENT_TYPES`]
//!   entries, each 1–[`MAX_NAME_CHARS`] characters. Entries are taken as given (no trimming):
//!   event type names have no spaces.
//! * `since=` — RFC 3339 (any offset, e.g. `2024-05-01T12:00:00Z`), **inclusive**: events
//!   recorded at or after it.
//! * `until=` — RFC 3339, **exclusive**: events recorded strictly before it. Half-open
//!   ranges tile: `[a, b)` then `[b, c)` reads every event once.
//!
//! `since` must be before `until` (an empty or inverted range is a client mistake, not an
//! empty answer). Other parameter names are ignored here: the caller checks the whole query
//! against the route's allowed names first (`durable::params::check_params`), which also
//! refuses repeated names; this parser refuses repetitions of its own names too, so it is
//! safe on its own.
//!
//! Every [`FilterError`] is a 400 `bad_request` whose message is written for the client.

use std::collections::BTreeSet;

use domain::envelope::parse_timestamp;
use serde::{Deserialize, Serialize};

/// Most entries in `types=`.
pub const MAX_EVENT_TYPES: usize = 100;
/// Longest aggregate type or event type in a filter, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A stream filter. `None` means "no constraint"; [`StreamFilter::default`] matches every
/// event. Times are milliseconds since the Unix epoch (UTC), as in the event log's
/// `recorded_at`.
///
/// Serde-able so the Worker can hand the parsed filter to a partition object as part of a
/// typed request; deserializing does not re-validate, so only trusted callers should send it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFilter {
    /// Only events of aggregates of this type.
    pub aggregate_type: Option<String>,
    /// Only events of one of these types (never empty when `Some` from the parser).
    pub event_types: Option<BTreeSet<String>>,
    /// Only events recorded at or after this time (inclusive), ms since the epoch.
    pub since_ms: Option<i64>,
    /// Only events recorded before this time (exclusive), ms since the epoch.
    pub until_ms: Option<i64>,
    /// Only the events of one causal chain: those whose `correlation_id` is this, and the
    /// event whose `event_id` is this (the chain's root, which has no correlation id of its
    /// own when it started the chain). Parameter `correlation_id` (1–256 characters).
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl StreamFilter {
    /// Parses the filter's parameters out of a query (name/value pairs, already
    /// percent-decoded). Names other than `aggregate_type`, `types`, `since` and `until`
    /// are ignored. See the module docs for the rules.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, FilterError> {
        let aggregate_type = single(query, "aggregate_type")?
            .map(|value| {
                check_name("aggregate_type", value)?;
                Ok(value.to_owned())
            })
            .transpose()?;
        let event_types = single(query, "types")?.map(parse_types).transpose()?;
        let since_ms = single(query, "since")?
            .map(|value| timestamp("since", value))
            .transpose()?;
        let until_ms = single(query, "until")?
            .map(|value| timestamp("until", value))
            .transpose()?;
        if let (Some(since), Some(until)) = (since_ms, until_ms)
            && since >= until
        {
            return Err(FilterError::EmptyRange);
        }
        let correlation_id = single(query, "correlation_id")?
            .map(|value| {
                let chars = value.chars().count();
                if chars == 0 {
                    Err(FilterError::Empty {
                        parameter: "correlation_id",
                    })
                } else if chars > MAX_CORRELATION_CHARS {
                    Err(FilterError::TooLong {
                        parameter: "correlation_id",
                    })
                } else {
                    Ok(value.to_owned())
                }
            })
            .transpose()?;
        Ok(Self {
            aggregate_type,
            event_types,
            since_ms,
            until_ms,
            correlation_id,
        })
    }

    /// Whether an event passes the filter: its aggregate's type, its event type and its
    /// recording time (ms since the epoch). `since` is inclusive, `until` exclusive.
    pub fn matches(&self, aggregate_type: &str, event_type: &str, recorded_at_ms: i64) -> bool {
        self.aggregate_type
            .as_deref()
            .is_none_or(|wanted| wanted == aggregate_type)
            && self
                .event_types
                .as_ref()
                .is_none_or(|wanted| wanted.contains(event_type))
            && self.since_ms.is_none_or(|since| recorded_at_ms >= since)
            && self.until_ms.is_none_or(|until| recorded_at_ms < until)
    }

    /// Whether an event belongs to the filter's causal chain (always, without one): its
    /// correlation id is the chain's, or it is the chain's root event.
    pub fn matches_chain(&self, event_id: &str, correlation_id: Option<&str>) -> bool {
        self.correlation_id
            .as_deref()
            .is_none_or(|chain| chain == event_id || correlation_id == Some(chain))
    }

    /// Whether the filter lets every event through (so a reader can skip calling
    /// [`StreamFilter::matches`]).
    pub fn is_everything(&self) -> bool {
        self == &Self::default()
    }
}

/// Longest `correlation_id` accepted (the metadata limit of commands).
pub const MAX_CORRELATION_CHARS: usize = 256;

/// The value of a parameter given at most once.
fn single<'q>(
    query: &'q [(String, String)],
    name: &'static str,
) -> Result<Option<&'q str>, FilterError> {
    let mut values = query
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(FilterError::Repeated { parameter: name });
    }
    Ok(first)
}

fn check_name(parameter: &'static str, value: &str) -> Result<(), FilterError> {
    let chars = value.chars().count();
    if chars == 0 {
        Err(FilterError::Empty { parameter })
    } else if chars > MAX_NAME_CHARS {
        Err(FilterError::TooLong { parameter })
    } else {
        Ok(())
    }
}

fn parse_types(value: &str) -> Result<BTreeSet<String>, FilterError> {
    let entries: Vec<&str> = value.split(',').collect();
    if entries.len() > MAX_EVENT_TYPES {
        return Err(FilterError::TooManyTypes {
            count: entries.len(),
        });
    }
    entries
        .into_iter()
        .map(|entry| match check_name("types", entry) {
            // An empty entry of a list reads better as "an empty entry" than "empty".
            Err(FilterError::Empty { .. }) => Err(FilterError::EmptyType),
            other => other.map(|()| entry.to_owned()),
        })
        .collect()
}

fn timestamp(parameter: &'static str, value: &str) -> Result<i64, FilterError> {
    parse_timestamp(value).ok_or(FilterError::BadTimestamp { parameter })
}

/// A filter parameter the client got wrong: HTTP 400 `bad_request`. The `Display` text is
/// the client-facing message; it names the parameter but does not echo the value (which may
/// be long or hostile). [`FilterError::parameter`] gives the name for error details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("`{parameter}` must not be empty")]
    Empty { parameter: &'static str },
    #[error("`{parameter}` must be at most {max} characters", max = MAX_NAME_CHARS)]
    TooLong { parameter: &'static str },
    #[error("`types` must be a comma-separated list of event types without empty entries")]
    EmptyType,
    #[error("`types` lists {count} event types; at most {max} are allowed", max = MAX_EVENT_TYPES)]
    TooManyTypes { count: usize },
    #[error("`{parameter}` must be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z")]
    BadTimestamp { parameter: &'static str },
    #[error("`since` must be before `until` (`since` is inclusive, `until` exclusive)")]
    EmptyRange,
    #[error("query parameter `{parameter}` is repeated")]
    Repeated { parameter: &'static str },
}

impl FilterError {
    /// The query parameter at fault (`"since"` for an empty range).
    pub fn parameter(&self) -> &'static str {
        match self {
            Self::Empty { parameter }
            | Self::TooLong { parameter }
            | Self::BadTimestamp { parameter }
            | Self::Repeated { parameter } => parameter,
            Self::EmptyType | Self::TooManyTypes { .. } => "types",
            Self::EmptyRange => "since",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<StreamFilter, FilterError> {
        StreamFilter::from_query(&q(pairs))
    }

    fn types(list: &[&str]) -> Option<BTreeSet<String>> {
        Some(list.iter().map(|t| t.to_string()).collect())
    }

    const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20.000Z

    #[test]
    fn no_parameters_is_everything() {
        let filter = parse(&[]).unwrap();
        assert_eq!(filter, StreamFilter::default());
        assert!(filter.is_everything());
        assert!(filter.matches("board", "CardAdded", i64::MIN));
        assert!(filter.matches("", "", i64::MAX));
    }

    #[test]
    fn other_parameters_are_ignored() {
        let filter = parse(&[
            ("partition", "2"),
            ("after", "10"),
            ("limit", "x"),
            ("typo", ""),
        ]);
        assert_eq!(filter, Ok(StreamFilter::default()));
    }

    #[test]
    fn aggregate_type_selects_one_type() {
        let filter = parse(&[("aggregate_type", "board")]).unwrap();
        assert_eq!(filter.aggregate_type.as_deref(), Some("board"));
        assert!(!filter.is_everything());
        assert!(filter.matches("board", "CardAdded", T0));
        assert!(!filter.matches("feedback", "CardAdded", T0));
        assert!(!filter.matches("Board", "CardAdded", T0), "case-sensitive");
    }

    #[test]
    fn aggregate_type_is_one_to_128_characters() {
        assert_eq!(
            parse(&[("aggregate_type", "")]),
            Err(FilterError::Empty {
                parameter: "aggregate_type"
            })
        );
        // Characters, not bytes: 128 two-byte characters are allowed.
        assert!(parse(&[("aggregate_type", &"é".repeat(128))]).is_ok());
        assert_eq!(
            parse(&[("aggregate_type", &"a".repeat(129))]),
            Err(FilterError::TooLong {
                parameter: "aggregate_type"
            })
        );
    }

    #[test]
    fn types_is_a_comma_separated_set() {
        let filter = parse(&[("types", "CardAdded,CardMoved,CardAdded")]).unwrap();
        assert_eq!(filter.event_types, types(&["CardAdded", "CardMoved"]));
        assert!(filter.matches("board", "CardAdded", T0));
        assert!(filter.matches("board", "CardMoved", T0));
        assert!(!filter.matches("board", "CardArchived", T0));
        assert!(!filter.matches("board", "cardadded", T0));
        assert_eq!(parse(&[("types", "X")]).unwrap().event_types, types(&["X"]));
    }

    #[test]
    fn types_has_no_empty_entries() {
        for value in ["", ",", "A,", ",A", "A,,B"] {
            assert_eq!(
                parse(&[("types", value)]),
                Err(FilterError::EmptyType),
                "{value:?}"
            );
        }
    }

    #[test]
    fn types_lists_at_most_100_names_of_at_most_128_characters() {
        let hundred: Vec<String> = (0..100).map(|i| format!("T{i}")).collect();
        assert_eq!(
            parse(&[("types", &hundred.join(","))])
                .unwrap()
                .event_types
                .unwrap()
                .len(),
            100
        );
        let more: Vec<String> = (0..101).map(|i| format!("T{i}")).collect();
        assert_eq!(
            parse(&[("types", &more.join(","))]),
            Err(FilterError::TooManyTypes { count: 101 })
        );
        // Repeats count as entries: the bound is on the request's size, not the set's.
        assert_eq!(
            parse(&[("types", &vec!["A"; 101].join(","))]),
            Err(FilterError::TooManyTypes { count: 101 })
        );
        assert!(parse(&[("types", &format!("A,{}", "b".repeat(128)))]).is_ok());
        assert_eq!(
            parse(&[("types", &format!("A,{}", "b".repeat(129)))]),
            Err(FilterError::TooLong { parameter: "types" })
        );
    }

    #[test]
    fn since_is_inclusive_and_until_exclusive() {
        let filter = parse(&[
            ("since", "2023-11-14T22:13:20.000Z"),
            ("until", "2023-11-14T22:13:21Z"),
        ])
        .unwrap();
        assert_eq!(
            (filter.since_ms, filter.until_ms),
            (Some(T0), Some(T0 + 1_000))
        );
        assert!(!filter.matches("board", "CardAdded", T0 - 1));
        assert!(filter.matches("board", "CardAdded", T0));
        assert!(filter.matches("board", "CardAdded", T0 + 999));
        assert!(!filter.matches("board", "CardAdded", T0 + 1_000));
    }

    #[test]
    fn one_sided_ranges_are_open_on_the_other_side() {
        let since = parse(&[("since", "2023-11-14T22:13:20Z")]).unwrap();
        assert!(since.matches("board", "CardAdded", i64::MAX));
        assert!(!since.matches("board", "CardAdded", T0 - 1));
        let until = parse(&[("until", "2023-11-14T22:13:20Z")]).unwrap();
        assert!(until.matches("board", "CardAdded", i64::MIN));
        assert!(!until.matches("board", "CardAdded", T0));
    }

    #[test]
    fn timestamps_take_any_offset() {
        let filter = parse(&[("since", "2023-11-14T23:13:20.000+01:00")]).unwrap();
        assert_eq!(filter.since_ms, Some(T0));
    }

    #[test]
    fn bad_timestamps_are_errors() {
        for value in [
            "",
            "yesterday",
            "1700000000000",
            "2023-11-14",
            "2023-11-14T22:13:20",
        ] {
            assert_eq!(
                parse(&[("since", value)]),
                Err(FilterError::BadTimestamp { parameter: "since" }),
                "{value:?}"
            );
            assert_eq!(
                parse(&[("until", value)]),
                Err(FilterError::BadTimestamp { parameter: "until" }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn since_must_be_before_until() {
        let at = "2023-11-14T22:13:20Z";
        assert_eq!(
            parse(&[("since", at), ("until", at)]),
            Err(FilterError::EmptyRange)
        );
        assert_eq!(
            parse(&[("since", at), ("until", "2023-11-14T22:13:19.999Z")]),
            Err(FilterError::EmptyRange)
        );
        assert!(parse(&[("since", at), ("until", "2023-11-14T22:13:20.001Z")]).is_ok());
    }

    #[test]
    fn repeated_parameters_are_errors() {
        for name in ["aggregate_type", "types", "since", "until"] {
            let value = if name == "since" || name == "until" {
                "2023-11-14T22:13:20Z"
            } else {
                "A"
            };
            assert_eq!(
                parse(&[(name, value), (name, value)]),
                Err(FilterError::Repeated { parameter: name })
            );
        }
    }

    #[test]
    fn all_constraints_must_hold() {
        let filter = parse(&[
            ("aggregate_type", "board"),
            ("types", "CardAdded"),
            ("since", "2023-11-14T22:13:20Z"),
        ])
        .unwrap();
        assert!(filter.matches("board", "CardAdded", T0));
        assert!(!filter.matches("feedback", "CardAdded", T0));
        assert!(!filter.matches("board", "CardMoved", T0));
        assert!(!filter.matches("board", "CardAdded", T0 - 1));
    }

    #[test]
    fn messages_name_the_parameter_for_the_client() {
        let error = parse(&[("until", "soon")]).unwrap_err();
        assert_eq!(error.parameter(), "until");
        assert_eq!(
            error.to_string(),
            "`until` must be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
        );
        let error = parse(&[("types", "A,,B")]).unwrap_err();
        assert_eq!(error.parameter(), "types");
        assert!(error.to_string().contains("without empty entries"));
        let error = parse(&[
            ("since", "2023-11-14T22:13:20Z"),
            ("until", "2023-11-14T22:13:20Z"),
        ])
        .unwrap_err();
        assert_eq!(error.parameter(), "since");
        assert!(
            !parse(&[("aggregate_type", "x".repeat(500).as_str())])
                .unwrap_err()
                .to_string()
                .contains("xxx"),
            "the value is not echoed"
        );
    }

    #[test]
    fn the_filter_round_trips_through_json() {
        let filter = parse(&[("types", "B,A"), ("until", "2023-11-14T22:13:20Z")]).unwrap();
        let json = serde_json::to_string(&filter).unwrap();
        assert_eq!(
            json,
            r#"{"aggregate_type":null,"event_types":["A","B"],"since_ms":null,"until_ms":1700000000000,"correlation_id":null}"#
        );
        assert_eq!(serde_json::from_str::<StreamFilter>(&json).unwrap(), filter);
        // Filters written before `correlation_id` existed still read.
        let older = r#"{"aggregate_type":null,"event_types":null,"since_ms":null,"until_ms":null}"#;
        assert_eq!(
            serde_json::from_str::<StreamFilter>(older).unwrap(),
            StreamFilter::default()
        );
    }

    #[test]
    fn a_causal_chain_is_its_root_and_everything_correlated_to_it() {
        let chain = parse(&[("correlation_id", "root-1")]).unwrap();
        assert!(chain.matches_chain("root-1", None), "the root event");
        assert!(chain.matches_chain("e2", Some("root-1")), "a caused event");
        assert!(!chain.matches_chain("e3", Some("other")));
        assert!(!chain.matches_chain("e4", None));
        assert!(StreamFilter::default().matches_chain("any", None));
        assert!(parse(&[("correlation_id", "")]).is_err());
        assert!(parse(&[("correlation_id", &"x".repeat(257))]).is_err());
        assert!(!chain.is_everything());
    }
}
