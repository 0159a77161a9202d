//! When an object's background step (an aggregate forwarding its events, a partition
//! waking its projectors) runs next: at once after a quiet spell, and at most once per
//! interval under load.
//!
//! Each run crosses the runtime several times (an alarm, a request between objects, a page
//! read, a document rewrite) whatever the number of events it carries, so under load the
//! cost per event falls as runs carry more events. A fixed delay would batch too, but it
//! would also delay the lone event of a quiet object; pacing from the last run adds no
//! delay to that one and at most `interval_ms` to an event that arrives right after a run.
//! This is Nagle's rule (RFC 896) with a timer instead of an acknowledgement.

/// The Unix ms at which to run next, given that work arrived at `now_ms` and the previous
/// run started at `last_run_ms` (0 if it never ran): `now_ms` if that run started at least
/// `interval_ms` ago, else `interval_ms` after it. An `interval_ms` of 0 always runs at once.
pub fn next_run(now_ms: i64, last_run_ms: i64, interval_ms: u64) -> i64 {
    let interval = i64::try_from(interval_ms).unwrap_or(i64::MAX);
    now_ms.max(last_run_ms.saturating_add(interval))
}

#[cfg(test)]
mod tests {
    use super::next_run;

    #[test]
    fn work_after_a_quiet_spell_runs_at_once() {
        assert_eq!(next_run(10_000, 0, 10), 10_000);
        assert_eq!(next_run(10_000, 9_990, 10), 10_000);
        assert_eq!(next_run(10_000, 5_000, 10), 10_000);
    }

    #[test]
    fn work_right_after_a_run_waits_for_the_interval() {
        assert_eq!(next_run(10_000, 9_995, 10), 10_005);
        assert_eq!(next_run(10_000, 10_000, 25), 10_025);
    }

    #[test]
    fn no_interval_means_no_pacing() {
        assert_eq!(next_run(10_000, 10_000, 0), 10_000);
        assert_eq!(next_run(10_000, i64::MAX, u64::MAX), i64::MAX);
    }
}
