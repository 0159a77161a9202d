//! The `error_group` aggregate: one production error, however many times it happens.
//!
//! Raw telemetry is high-volume; one event per report would let a flood of errors flood the
//! log too. Reports are therefore grouped by a *fingerprint* (normalized type + message + top
//! frame, computed at ingestion — see the `ingest` crate) and coalesced per time window
//! before they get here: one `RecordOccurrences` carries the count of one window's reports
//! of one group. The aggregate id **is the fingerprint**, so every report of a group lands
//! on the same aggregate without a lookup.
//!
//! Its life: the first occurrences open it; later ones recur; a person (or an agent)
//! resolves it; occurrences after a resolution are a regression and open it again. A group
//! may also be ignored: its occurrences are still counted, but readers know not to act.
//!
//! | state | `RecordOccurrences` decides | `ResolveErrorGroup` | `IgnoreErrorGroup` |
//! |---|---|---|---|
//! | never opened | `ErrorGroupOpened` | refused: `error_group_not_found` | refused: `error_group_not_found` |
//! | open | `ErrorGroupRecurred` | `ErrorGroupResolved` | `ErrorGroupIgnored` |
//! | ignored | `ErrorGroupRecurred` (stays ignored) | `ErrorGroupResolved` | `ErrorGroupIgnored`, or nothing if `until_ms` is unchanged |
//! | resolved | `ErrorGroupRegressed` **then** `ErrorGroupRecurred` | refused: `error_group_resolved` | refused: `error_group_resolved` |
//!
//! Decisions:
//! * **Counts live in `ErrorGroupOpened` and `ErrorGroupRecurred` only.** A regression decides
//!   two events: `ErrorGroupRegressed` (the status change, with the release it came back in
//!   and the one it had been resolved in) and then `ErrorGroupRecurred` with the count. So a
//!   reader sums `count` over those two event types and gets every occurrence exactly once,
//!   whatever happened to the status in between.
//! * **Any occurrence recorded after a resolution is a regression**, whatever its timestamps:
//!   the aggregate has no clock to tell a late flush of an old window from a new report, and a
//!   regression raised by mistake costs a look, while one missed costs a user. Releases are
//!   free-form strings with no order we could trust, so they do not decide either.
//! * **`IgnoreErrorGroup.until_ms` is recorded, not enforced.** Deciding when it has passed
//!   needs a clock; readers (agents, the knowledge base) compare it with their own time. A
//!   resolved group cannot be ignored: it is already out of the way and reopens by itself.
//! * **The state is bounded**: totals (occurrences, windows, regressions), first and last
//!   seen, the last release and the opening sample — no per-report or per-window history,
//!   which is in the log for whoever wants it.
//! * **Windows** are counted in arrival order: a record whose `window_start_ms` is later than
//!   any seen before starts a new window; one for the current or an earlier window (a late
//!   flush) adds to the counts but not to `windows`. `first_seen_ms` and `last_seen_ms` are
//!   the minimum and maximum over all records, late ones included.
//! * A record must be consistent in itself: `count` ≥ 1 and `window_start_ms ≤ first_seen_ms
//!   ≤ last_seen_ms`. Text fields are bounded by characters; `message` may be empty (`new
//!   Error()` has none), `error_type` may not.
//! * Retried flushes are not deduplicated here (two equal records are two windows' worth of
//!   reports as far as the aggregate can tell): send each batch with an `Idempotency-Key`.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent, Rejection};
use crate::fields;
use crate::validate;

/// An error type (`TypeError`) is 1..=this many characters.
pub const MAX_ERROR_TYPE_CHARS: usize = 200;
/// An error message is 0..=this many characters.
pub const MAX_MESSAGE_CHARS: usize = 2048;
/// A top frame is 1..=this many characters.
pub const MAX_TOP_FRAME_CHARS: usize = 1024;
/// A release is 1..=this many characters.
pub const MAX_RELEASE_CHARS: usize = 200;
/// A page or request URL is 1..=this many characters.
pub const MAX_URL_CHARS: usize = 2048;
/// A user agent is 1..=this many characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// A resolution note is 1..=this many characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// The stable names of the error group's rules ([`Rejection::rule`]).
pub mod rules {
    /// Resolve or ignore a group that has no occurrences yet.
    pub const ERROR_GROUP_NOT_FOUND: &str = "error_group_not_found";
    /// Resolve or ignore a group that is resolved.
    pub const ERROR_GROUP_RESOLVED: &str = "error_group_resolved";
    /// `RecordOccurrences` with `count` 0.
    pub const INVALID_COUNT: &str = "invalid_count";
    /// `RecordOccurrences` where `window_start_ms ≤ first_seen_ms ≤ last_seen_ms` fails.
    pub const INVALID_TIME_RANGE: &str = "invalid_time_range";
    /// An error type that is empty (or whitespace) or over [`super::MAX_ERROR_TYPE_CHARS`].
    pub const INVALID_ERROR_TYPE: &str = "invalid_error_type";
    /// A message over [`super::MAX_MESSAGE_CHARS`].
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// A top frame that is empty (or whitespace) or over [`super::MAX_TOP_FRAME_CHARS`].
    pub const INVALID_TOP_FRAME: &str = "invalid_top_frame";
    /// A release that is empty (or whitespace) or over [`super::MAX_RELEASE_CHARS`].
    pub const INVALID_RELEASE: &str = "invalid_release";
    /// A URL that is empty (or whitespace) or over [`super::MAX_URL_CHARS`].
    pub const INVALID_URL: &str = "invalid_url";
    /// A user agent that is empty (or whitespace) or over [`super::MAX_USER_AGENT_CHARS`].
    pub const INVALID_USER_AGENT: &str = "invalid_user_agent";
    /// A note that is empty (or whitespace) or over [`super::MAX_NOTE_CHARS`].
    pub const INVALID_NOTE: &str = "invalid_note";

    /// Every rule above.
    pub const ALL: &[&str] = &[
        ERROR_GROUP_NOT_FOUND,
        ERROR_GROUP_RESOLVED,
        INVALID_COUNT,
        INVALID_TIME_RANGE,
        INVALID_ERROR_TYPE,
        INVALID_MESSAGE,
        INVALID_TOP_FRAME,
        INVALID_RELEASE,
        INVALID_URL,
        INVALID_USER_AGENT,
        INVALID_NOTE,
    ];
}

/// Where a group is in its life. On the wire in lowercase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Open,
    Resolved,
    Ignored,
}

/// How a group was last resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub release: Option<String>,
    pub note: Option<String>,
}

/// The group's state, as clients see it and as it is snapshotted. Bounded: no per-report or
/// per-window history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorGroup {
    /// False until `ErrorGroupOpened`.
    pub opened: bool,
    pub status: Status,
    /// The sample the group was opened with (its reports share the normalized form).
    pub error_type: String,
    pub message: String,
    pub top_frame: Option<String>,
    pub url: Option<String>,
    pub user_agent: Option<String>,
    /// Every occurrence ever recorded.
    pub total_count: u64,
    /// Windows seen, counted in arrival order (see the module docs).
    pub windows: u64,
    /// The latest window start recorded.
    pub latest_window_start_ms: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The release of the latest record that named one.
    pub last_release: Option<String>,
    /// How many times the group came back after a resolution.
    pub regressions: u32,
    /// Kept after a regression, so readers see what did not hold.
    pub last_resolution: Option<Resolution>,
    /// Set by `IgnoreErrorGroup` (`None` there: ignored until further notice); cleared by a
    /// resolution.
    pub ignored_until_ms: Option<u64>,
}

/// The error group's commands, on the wire `{"type": "RecordOccurrences", "data": {...}}`.
/// Unknown fields are refused (400), and so is `null` for an optional field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum ErrorGroupCommand {
    /// `count` reports of this group seen in the window starting at `window_start_ms`,
    /// between `first_seen_ms` and `last_seen_ms` (milliseconds since the Unix epoch). The
    /// text fields are one representative report's.
    RecordOccurrences {
        error_type: String,
        message: String,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        top_frame: Option<String>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        release: Option<String>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        url: Option<String>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        user_agent: Option<String>,
        count: u32,
        first_seen_ms: u64,
        last_seen_ms: u64,
        window_start_ms: u64,
    },
    /// `release`: the release that fixes it; `note`: what was done.
    ResolveErrorGroup {
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        release: Option<String>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        note: Option<String>,
    },
    /// `until_ms` absent: until further notice. Recorded for readers, not enforced.
    IgnoreErrorGroup {
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        until_ms: Option<u64>,
    },
}

/// The error group's events. Absent optional values are `null`; unknown fields are ignored
/// on decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ErrorGroupEvent {
    /// The group's first occurrences, with the command's fields as given.
    ErrorGroupOpened {
        error_type: String,
        message: String,
        top_frame: Option<String>,
        release: Option<String>,
        url: Option<String>,
        user_agent: Option<String>,
        count: u32,
        first_seen_ms: u64,
        last_seen_ms: u64,
        window_start_ms: u64,
    },
    /// More occurrences of an opened group (also right after `ErrorGroupRegressed`).
    ErrorGroupRecurred {
        count: u32,
        window_start_ms: u64,
        first_seen_ms: u64,
        last_seen_ms: u64,
        release: Option<String>,
    },
    /// Occurrences after a resolution: the group is open again. `release` is the one the
    /// occurrences came from, `resolved_release` the one the resolution named. The count
    /// follows in an `ErrorGroupRecurred` of the same command.
    ErrorGroupRegressed {
        release: Option<String>,
        resolved_release: Option<String>,
        first_seen_ms: u64,
    },
    ErrorGroupResolved {
        release: Option<String>,
        note: Option<String>,
    },
    ErrorGroupIgnored {
        until_ms: Option<u64>,
    },
}

impl DomainEvent for ErrorGroupEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ErrorGroupEvent::ErrorGroupOpened { .. } => "ErrorGroupOpened",
            ErrorGroupEvent::ErrorGroupRecurred { .. } => "ErrorGroupRecurred",
            ErrorGroupEvent::ErrorGroupRegressed { .. } => "ErrorGroupRegressed",
            ErrorGroupEvent::ErrorGroupResolved { .. } => "ErrorGroupResolved",
            ErrorGroupEvent::ErrorGroupIgnored { .. } => "ErrorGroupIgnored",
        }
    }
}

/// Checks an optional text: absent is fine, present must pass [`validate::text`].
fn optional_text(
    rule: &'static str,
    what: &str,
    value: Option<&str>,
    max: usize,
) -> Result<(), Rejection> {
    value.map_or(Ok(()), |value| validate::text(rule, what, value, max))
}

impl ErrorGroup {
    fn existing(&self) -> Result<(), Rejection> {
        if self.opened {
            Ok(())
        } else {
            Err(Rejection::new(
                rules::ERROR_GROUP_NOT_FOUND,
                "the error group has no occurrences yet; record some with RecordOccurrences first",
            ))
        }
    }

    fn not_resolved(&self, doing: &str) -> Result<(), Rejection> {
        if self.status == Status::Resolved {
            return Err(Rejection::new(
                rules::ERROR_GROUP_RESOLVED,
                format!("the error group is resolved and cannot be {doing}"),
            ));
        }
        Ok(())
    }
}

impl Aggregate for ErrorGroup {
    const TYPE: &'static str = "error_group";
    type Command = ErrorGroupCommand;
    type Event = ErrorGroupEvent;

    fn decide(&self, command: ErrorGroupCommand) -> Result<Vec<ErrorGroupEvent>, Rejection> {
        match command {
            ErrorGroupCommand::RecordOccurrences {
                error_type,
                message,
                top_frame,
                release,
                url,
                user_agent,
                count,
                first_seen_ms,
                last_seen_ms,
                window_start_ms,
            } => {
                if count == 0 {
                    return Err(Rejection::new(
                        rules::INVALID_COUNT,
                        "the count must be at least 1",
                    ));
                }
                if !(window_start_ms <= first_seen_ms && first_seen_ms <= last_seen_ms) {
                    return Err(Rejection::new(
                        rules::INVALID_TIME_RANGE,
                        format!(
                            "window_start_ms ≤ first_seen_ms ≤ last_seen_ms must hold \
                             (got {window_start_ms}, {first_seen_ms}, {last_seen_ms})"
                        ),
                    ));
                }
                validate::text(
                    rules::INVALID_ERROR_TYPE,
                    "the error type",
                    &error_type,
                    MAX_ERROR_TYPE_CHARS,
                )?;
                let message_chars = message.chars().count();
                if message_chars > MAX_MESSAGE_CHARS {
                    return Err(Rejection::new(
                        rules::INVALID_MESSAGE,
                        format!(
                            "the message must be at most {MAX_MESSAGE_CHARS} characters \
                             (got {message_chars})"
                        ),
                    ));
                }
                optional_text(
                    rules::INVALID_TOP_FRAME,
                    "the top frame",
                    top_frame.as_deref(),
                    MAX_TOP_FRAME_CHARS,
                )?;
                optional_text(
                    rules::INVALID_RELEASE,
                    "the release",
                    release.as_deref(),
                    MAX_RELEASE_CHARS,
                )?;
                optional_text(rules::INVALID_URL, "the URL", url.as_deref(), MAX_URL_CHARS)?;
                optional_text(
                    rules::INVALID_USER_AGENT,
                    "the user agent",
                    user_agent.as_deref(),
                    MAX_USER_AGENT_CHARS,
                )?;
                if !self.opened {
                    return Ok(vec![ErrorGroupEvent::ErrorGroupOpened {
                        error_type,
                        message,
                        top_frame,
                        release,
                        url,
                        user_agent,
                        count,
                        first_seen_ms,
                        last_seen_ms,
                        window_start_ms,
                    }]);
                }
                let recurred = ErrorGroupEvent::ErrorGroupRecurred {
                    count,
                    window_start_ms,
                    first_seen_ms,
                    last_seen_ms,
                    release: release.clone(),
                };
                Ok(match self.status {
                    Status::Open | Status::Ignored => vec![recurred],
                    Status::Resolved => vec![
                        ErrorGroupEvent::ErrorGroupRegressed {
                            release,
                            resolved_release: self
                                .last_resolution
                                .as_ref()
                                .and_then(|r| r.release.clone()),
                            first_seen_ms,
                        },
                        recurred,
                    ],
                })
            }
            ErrorGroupCommand::ResolveErrorGroup { release, note } => {
                self.existing()?;
                self.not_resolved("resolved again")?;
                optional_text(
                    rules::INVALID_RELEASE,
                    "the release",
                    release.as_deref(),
                    MAX_RELEASE_CHARS,
                )?;
                optional_text(
                    rules::INVALID_NOTE,
                    "the note",
                    note.as_deref(),
                    MAX_NOTE_CHARS,
                )?;
                Ok(vec![ErrorGroupEvent::ErrorGroupResolved { release, note }])
            }
            ErrorGroupCommand::IgnoreErrorGroup { until_ms } => {
                self.existing()?;
                self.not_resolved("ignored")?;
                if self.status == Status::Ignored && self.ignored_until_ms == until_ms {
                    // Already so: a retried request is harmless.
                    return Ok(vec![]);
                }
                Ok(vec![ErrorGroupEvent::ErrorGroupIgnored { until_ms }])
            }
        }
    }

    fn apply(&mut self, event: &ErrorGroupEvent) {
        match event {
            ErrorGroupEvent::ErrorGroupOpened {
                error_type,
                message,
                top_frame,
                release,
                url,
                user_agent,
                count,
                first_seen_ms,
                last_seen_ms,
                window_start_ms,
            } => {
                *self = ErrorGroup {
                    opened: true,
                    status: Status::Open,
                    error_type: error_type.clone(),
                    message: message.clone(),
                    top_frame: top_frame.clone(),
                    url: url.clone(),
                    user_agent: user_agent.clone(),
                    total_count: u64::from(*count),
                    windows: 1,
                    latest_window_start_ms: *window_start_ms,
                    first_seen_ms: *first_seen_ms,
                    last_seen_ms: *last_seen_ms,
                    last_release: release.clone(),
                    regressions: 0,
                    last_resolution: None,
                    ignored_until_ms: None,
                };
            }
            ErrorGroupEvent::ErrorGroupRecurred {
                count,
                window_start_ms,
                first_seen_ms,
                last_seen_ms,
                release,
            } => {
                // Saturating: 2^64 occurrences cannot happen, and apply must never panic.
                self.total_count = self.total_count.saturating_add(u64::from(*count));
                if *window_start_ms > self.latest_window_start_ms {
                    self.windows += 1;
                    self.latest_window_start_ms = *window_start_ms;
                }
                self.first_seen_ms = self.first_seen_ms.min(*first_seen_ms);
                self.last_seen_ms = self.last_seen_ms.max(*last_seen_ms);
                if release.is_some() {
                    self.last_release.clone_from(release);
                }
            }
            ErrorGroupEvent::ErrorGroupRegressed { .. } => {
                self.status = Status::Open;
                self.regressions = self.regressions.saturating_add(1);
            }
            ErrorGroupEvent::ErrorGroupResolved { release, note } => {
                self.status = Status::Resolved;
                self.ignored_until_ms = None;
                self.last_resolution = Some(Resolution {
                    release: release.clone(),
                    note: note.clone(),
                });
            }
            ErrorGroupEvent::ErrorGroupIgnored { until_ms } => {
                self.status = Status::Ignored;
                self.ignored_until_ms = *until_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::given;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    /// `count` reports in the minute starting at `window_start_ms`.
    fn record(count: u32, window_start_ms: u64) -> ErrorGroupCommand {
        ErrorGroupCommand::RecordOccurrences {
            error_type: s("TypeError"),
            message: s("Cannot read properties of undefined (reading 'id')"),
            top_frame: Some(s("at renderCard (/assets/app.js)")),
            release: Some(s("web@1.4.0")),
            url: Some(s("https://app.example.com/board/7")),
            user_agent: Some(s("Mozilla/5.0")),
            count,
            first_seen_ms: window_start_ms + 1_000,
            last_seen_ms: window_start_ms + 59_000,
            window_start_ms,
        }
    }

    fn opened() -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupOpened {
            error_type: s("TypeError"),
            message: s("Cannot read properties of undefined (reading 'id')"),
            top_frame: Some(s("at renderCard (/assets/app.js)")),
            release: Some(s("web@1.4.0")),
            url: Some(s("https://app.example.com/board/7")),
            user_agent: Some(s("Mozilla/5.0")),
            count: 3,
            first_seen_ms: 61_000,
            last_seen_ms: 119_000,
            window_start_ms: 60_000,
        }
    }

    fn recurred(count: u32, window_start_ms: u64) -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupRecurred {
            count,
            window_start_ms,
            first_seen_ms: window_start_ms + 1_000,
            last_seen_ms: window_start_ms + 59_000,
            release: Some(s("web@1.4.0")),
        }
    }

    fn resolved() -> ErrorGroupEvent {
        ErrorGroupEvent::ErrorGroupResolved {
            release: Some(s("web@1.4.1")),
            note: Some(s("guard against a missing card")),
        }
    }

    fn resolve() -> ErrorGroupCommand {
        ErrorGroupCommand::ResolveErrorGroup {
            release: Some(s("web@1.4.1")),
            note: Some(s("guard against a missing card")),
        }
    }

    #[test]
    fn the_first_occurrences_open_the_group() {
        let group = given::<ErrorGroup>([])
            .when(record(3, 60_000))
            .then_expect([opened()]);
        assert_eq!(
            (
                group.opened,
                group.status,
                group.total_count,
                group.windows,
                group.first_seen_ms,
                group.last_seen_ms,
            ),
            (true, Status::Open, 3, 1, 61_000, 119_000)
        );
        assert_eq!(group.last_release.as_deref(), Some("web@1.4.0"));
    }

    #[test]
    fn later_occurrences_recur_with_their_count() {
        let group = given::<ErrorGroup>([opened()])
            .when(record(5, 120_000))
            .then_expect([recurred(5, 120_000)]);
        assert_eq!(
            (group.total_count, group.windows, group.last_seen_ms),
            (8, 2, 179_000)
        );
    }

    #[test]
    fn counts_add_up_exactly_across_many_records() {
        let mut history = vec![opened()];
        let mut expected_total = 3_u64;
        // 500 windows of varying counts, some windows flushed twice, a few flushed late.
        for n in 1..=500_u64 {
            let count = u32::try_from(n % 97 + 1).unwrap();
            let window = 60_000 * (1 + n);
            for window_start_ms in [window, window, window - 60_000 * (n % 3)] {
                history.push(recurred(count, window_start_ms));
                expected_total += u64::from(count);
            }
        }
        let group = given::<ErrorGroup>(history)
            .when(record(u32::MAX, 60_000 * 600))
            .then_expect([recurred(u32::MAX, 60_000 * 600)]);
        assert_eq!(group.total_count, expected_total + u64::from(u32::MAX));
        // 1 opening window, 500 later ones, then the 600th minute; repeats and late
        // flushes do not count as windows.
        assert_eq!(group.windows, 502);
        assert_eq!(group.first_seen_ms, 61_000);
        assert_eq!(group.last_seen_ms, 60_000 * 600 + 59_000);
    }

    #[test]
    fn a_late_flush_counts_and_widens_first_seen_but_is_no_new_window() {
        let group = given::<ErrorGroup>([opened(), recurred(2, 240_000)])
            .when(record(4, 0))
            .then_expect([recurred(4, 0)]);
        assert_eq!(
            (
                group.total_count,
                group.windows,
                group.latest_window_start_ms,
                group.first_seen_ms,
                group.last_seen_ms
            ),
            (9, 2, 240_000, 1_000, 299_000)
        );
    }

    #[test]
    fn occurrences_after_a_resolution_are_a_regression_then_a_recurrence() {
        let group = given::<ErrorGroup>([opened(), resolved()])
            .when(record(2, 600_000))
            .then_expect([
                ErrorGroupEvent::ErrorGroupRegressed {
                    release: Some(s("web@1.4.0")),
                    resolved_release: Some(s("web@1.4.1")),
                    first_seen_ms: 601_000,
                },
                recurred(2, 600_000),
            ]);
        assert_eq!(group.status, Status::Open);
        assert_eq!(group.regressions, 1);
        assert_eq!(
            group.total_count, 5,
            "the regression's count is counted once"
        );
        assert_eq!(
            group.last_resolution.and_then(|r| r.release).as_deref(),
            Some("web@1.4.1"),
            "the resolution that did not hold is kept"
        );
    }

    #[test]
    fn a_regressed_group_recurs_normally_and_can_be_resolved_again() {
        let regressed = ErrorGroupEvent::ErrorGroupRegressed {
            release: None,
            resolved_release: None,
            first_seen_ms: 601_000,
        };
        let history = [
            opened(),
            resolved(),
            regressed.clone(),
            recurred(1, 600_000),
        ];
        given::<ErrorGroup>(history.clone())
            .when(record(1, 660_000))
            .then_expect([recurred(1, 660_000)]);
        let group = given::<ErrorGroup>(history)
            .when(resolve())
            .then_expect([resolved()]);
        assert_eq!((group.status, group.regressions), (Status::Resolved, 1));
    }

    #[test]
    fn resolving_needs_occurrences() {
        let rejection = given::<ErrorGroup>([])
            .when(resolve())
            .then_reject(rules::ERROR_GROUP_NOT_FOUND);
        assert_eq!(
            rejection.message,
            "the error group has no occurrences yet; record some with RecordOccurrences first"
        );
        given::<ErrorGroup>([])
            .when(ErrorGroupCommand::IgnoreErrorGroup { until_ms: None })
            .then_reject(rules::ERROR_GROUP_NOT_FOUND);
    }

    #[test]
    fn resolve_records_the_release_and_note() {
        let group = given::<ErrorGroup>([opened()])
            .when(resolve())
            .then_expect([resolved()]);
        assert_eq!(group.status, Status::Resolved);
        given::<ErrorGroup>([opened()])
            .when(ErrorGroupCommand::ResolveErrorGroup {
                release: None,
                note: None,
            })
            .then_expect([ErrorGroupEvent::ErrorGroupResolved {
                release: None,
                note: None,
            }]);
    }

    #[test]
    fn resolving_a_resolved_group_is_refused() {
        let rejection = given::<ErrorGroup>([opened(), resolved()])
            .when(resolve())
            .then_reject(rules::ERROR_GROUP_RESOLVED);
        assert_eq!(
            rejection.message,
            "the error group is resolved and cannot be resolved again"
        );
    }

    #[test]
    fn an_ignored_group_keeps_counting_and_stays_ignored() {
        let ignored = ErrorGroupEvent::ErrorGroupIgnored {
            until_ms: Some(9_000_000),
        };
        let group = given::<ErrorGroup>([opened()])
            .when(ErrorGroupCommand::IgnoreErrorGroup {
                until_ms: Some(9_000_000),
            })
            .then_expect([ignored.clone()]);
        assert_eq!(
            (group.status, group.ignored_until_ms),
            (Status::Ignored, Some(9_000_000))
        );
        let group = given::<ErrorGroup>([opened(), ignored.clone()])
            .when(record(7, 120_000))
            .then_expect([recurred(7, 120_000)]);
        assert_eq!((group.status, group.total_count), (Status::Ignored, 10));
        // The same ignore again is a no-op; another `until_ms` is a new decision.
        given::<ErrorGroup>([opened(), ignored.clone()])
            .when(ErrorGroupCommand::IgnoreErrorGroup {
                until_ms: Some(9_000_000),
            })
            .then_expect([]);
        given::<ErrorGroup>([opened(), ignored.clone()])
            .when(ErrorGroupCommand::IgnoreErrorGroup { until_ms: None })
            .then_expect([ErrorGroupEvent::ErrorGroupIgnored { until_ms: None }]);
        // An ignored group may be resolved, which ends the ignoring.
        let group = given::<ErrorGroup>([opened(), ignored])
            .when(resolve())
            .then_expect([resolved()]);
        assert_eq!(
            (group.status, group.ignored_until_ms),
            (Status::Resolved, None)
        );
    }

    #[test]
    fn a_resolved_group_cannot_be_ignored() {
        let rejection = given::<ErrorGroup>([opened(), resolved()])
            .when(ErrorGroupCommand::IgnoreErrorGroup { until_ms: None })
            .then_reject(rules::ERROR_GROUP_RESOLVED);
        assert_eq!(
            rejection.message,
            "the error group is resolved and cannot be ignored"
        );
    }

    #[test]
    fn a_record_needs_a_count_and_a_consistent_time_range() {
        let rejection = given::<ErrorGroup>([])
            .when(record(0, 60_000))
            .then_reject(rules::INVALID_COUNT);
        assert_eq!(rejection.message, "the count must be at least 1");
        let with_times = |window_start_ms, first_seen_ms, last_seen_ms| {
            let ErrorGroupCommand::RecordOccurrences {
                error_type,
                message,
                count,
                ..
            } = record(1, 0)
            else {
                unreachable!()
            };
            ErrorGroupCommand::RecordOccurrences {
                error_type,
                message,
                top_frame: None,
                release: None,
                url: None,
                user_agent: None,
                count,
                first_seen_ms,
                last_seen_ms,
                window_start_ms,
            }
        };
        let rejection = given::<ErrorGroup>([])
            .when(with_times(10, 5, 20))
            .then_reject(rules::INVALID_TIME_RANGE);
        assert_eq!(
            rejection.message,
            "window_start_ms ≤ first_seen_ms ≤ last_seen_ms must hold (got 10, 5, 20)"
        );
        given::<ErrorGroup>([opened()])
            .when(with_times(10, 30, 20))
            .then_reject(rules::INVALID_TIME_RANGE);
        // A single report: all three equal.
        given::<ErrorGroup>([opened()])
            .when(with_times(10, 10, 10))
            .then_expect([ErrorGroupEvent::ErrorGroupRecurred {
                count: 1,
                window_start_ms: 10,
                first_seen_ms: 10,
                last_seen_ms: 10,
                release: None,
            }]);
    }

    #[test]
    fn text_fields_are_bounded() {
        let cases: [(&str, Value, &str); 8] = [
            ("error_type", json!(" "), rules::INVALID_ERROR_TYPE),
            (
                "error_type",
                json!("E".repeat(MAX_ERROR_TYPE_CHARS + 1)),
                rules::INVALID_ERROR_TYPE,
            ),
            (
                "message",
                json!("m".repeat(MAX_MESSAGE_CHARS + 1)),
                rules::INVALID_MESSAGE,
            ),
            ("top_frame", json!(""), rules::INVALID_TOP_FRAME),
            (
                "release",
                json!("r".repeat(MAX_RELEASE_CHARS + 1)),
                rules::INVALID_RELEASE,
            ),
            (
                "url",
                json!("u".repeat(MAX_URL_CHARS + 1)),
                rules::INVALID_URL,
            ),
            ("user_agent", json!("\t"), rules::INVALID_USER_AGENT),
            (
                "user_agent",
                json!("a".repeat(MAX_USER_AGENT_CHARS + 1)),
                rules::INVALID_USER_AGENT,
            ),
        ];
        for (field, value, rule) in cases {
            let mut data = valid_record();
            data[field] = value;
            given::<ErrorGroup>([])
                .when_json("RecordOccurrences", data)
                .then_reject(rule);
        }
        // An empty message is a message (`new Error()`); limits count characters.
        let mut data = valid_record();
        data["message"] = json!("");
        data["error_type"] = json!("界".repeat(MAX_ERROR_TYPE_CHARS));
        given::<ErrorGroup>([])
            .when_json("RecordOccurrences", data)
            .then_expect([json!({"type": "ErrorGroupOpened", "data": {
                "error_type": "界".repeat(MAX_ERROR_TYPE_CHARS), "message": "",
                "top_frame": null, "release": null, "url": null, "user_agent": null,
                "count": 2, "first_seen_ms": 1_000, "last_seen_ms": 2_000, "window_start_ms": 0
            }})]);
        given::<ErrorGroup>([opened()])
            .when(ErrorGroupCommand::ResolveErrorGroup {
                release: None,
                note: Some("n".repeat(MAX_NOTE_CHARS + 1)),
            })
            .then_reject(rules::INVALID_NOTE);
    }

    fn valid_record() -> Value {
        json!({
            "error_type": "Error", "message": "boom", "count": 2,
            "first_seen_ms": 1_000, "last_seen_ms": 2_000, "window_start_ms": 0
        })
    }

    #[test]
    fn the_wire_shape_of_a_regression() {
        given::<ErrorGroup>([opened(), resolved()])
            .when_json("RecordOccurrences", valid_record())
            .then_expect([
                json!({"type": "ErrorGroupRegressed", "data": {
                    "release": null, "resolved_release": "web@1.4.1", "first_seen_ms": 1_000
                }}),
                json!({"type": "ErrorGroupRecurred", "data": {
                    "count": 2, "window_start_ms": 0, "first_seen_ms": 1_000,
                    "last_seen_ms": 2_000, "release": null
                }}),
            ]);
    }

    /// Every field, given `null`, a wrong type or a value out of its type's range, is a bad
    /// command (400) naming it; unknown fields are refused.
    #[test]
    fn a_field_is_absent_or_of_its_type_never_null() {
        let cases = [
            (
                "message",
                json!(null),
                "invalid type: null, expected a string",
            ),
            (
                "release",
                json!(null),
                "null is not allowed; leave the field out instead",
            ),
            (
                "top_frame",
                json!(3),
                "invalid type: integer `3`, expected a string",
            ),
            (
                "count",
                json!(-1),
                "invalid value: integer `-1`, expected u32",
            ),
            (
                "count",
                json!(4_294_967_296_u64),
                "invalid value: integer `4294967296`, expected u32",
            ),
            (
                "first_seen_ms",
                json!("1000"),
                "invalid type: string \"1000\", expected u64",
            ),
            (
                "window_start_ms",
                json!(1.5),
                "invalid type: floating point `1.5`, expected u64",
            ),
        ];
        for (field, value, error) in cases {
            let mut data = valid_record();
            data[field] = value.clone();
            let message = given::<ErrorGroup>([])
                .when_json("RecordOccurrences", data)
                .then_bad_command();
            assert_eq!(
                message,
                format!("invalid `RecordOccurrences` command: `data.{field}`: {error}"),
                "{field} = {value}"
            );
        }
        let mut data = valid_record();
        data["fingerprint"] = json!("abc");
        let message = given::<ErrorGroup>([])
            .when_json("RecordOccurrences", data)
            .then_bad_command();
        assert!(message.contains("unknown field `fingerprint`"), "{message}");
        let message = given::<ErrorGroup>([opened()])
            .when_json("IgnoreErrorGroup", json!({"until_ms": null}))
            .then_bad_command();
        assert_eq!(
            message,
            "invalid `IgnoreErrorGroup` command: `data.until_ms`: null is not allowed; leave the field out instead"
        );
        let message = given::<ErrorGroup>([opened()])
            .when_json("ResolveErrorGroup", json!({"note": "x", "reason": "y"}))
            .then_bad_command();
        assert!(message.contains("unknown field `reason`"), "{message}");
    }

    #[test]
    fn a_serialized_command_decodes_to_itself() {
        for command in [
            record(1, 0),
            resolve(),
            ErrorGroupCommand::ResolveErrorGroup {
                release: None,
                note: None,
            },
            ErrorGroupCommand::IgnoreErrorGroup { until_ms: Some(5) },
        ] {
            let wire = serde_json::to_value(&command).unwrap();
            assert_eq!(
                serde_json::from_value::<ErrorGroupCommand>(wire.clone()).ok(),
                Some(command),
                "{wire}"
            );
        }
    }

    #[test]
    fn rule_names_are_distinct_snake_case() {
        for (index, rule) in rules::ALL.iter().enumerate() {
            assert!(
                rule.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{rule}"
            );
            assert!(!rules::ALL[..index].contains(rule), "{rule} twice");
        }
    }
}
