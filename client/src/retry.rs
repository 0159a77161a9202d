//! When to try again: a bounded exponential backoff that honours `Retry-After`.
//!
//! A small loop rather than `backon`/`backoff`: the policy needs the server's `Retry-After`
//! to override the backoff and a bound on *total* time that includes the requests
//! themselves, not only the sleeps. That is a few lines here, and every decision is a
//! pure function ([`RetryPolicy::decide`]) tested without a clock. (`backoff` is also
//! unmaintained.)

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::Error;

/// How often and how long to retry a transient failure ([`Error::is_transient`]).
///
/// Attempt `n + 1` waits `backoff(n)`: exponential from `initial_backoff`, doubling, capped
/// at `max_backoff`, with jitter (a uniformly random value in the upper half, so clients
/// that failed together do not retry together) — or the server's `Retry-After`, if that
/// is longer. Retrying stops after `max_attempts` attempts (the first included), or when
/// the next attempt could not start within `max_elapsed` of the first. Each request is
/// also given at most the time left of `max_elapsed`, so the whole call returns within
/// `max_elapsed` (plus scheduling noise).
///
/// Retrying is only safe for requests that apply at most once: reads, and commands with an
/// `Idempotency-Key` (which [`crate::Client::command`] always sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1 (1 = never retry).
    pub max_attempts: u32,
    /// The wait before the first retry, before jitter.
    pub initial_backoff: Duration,
    /// The longest wait between attempts, before `Retry-After`.
    pub max_backoff: Duration,
    /// The longest time from the first attempt to the end of the last one.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms doubling to at most 5 s, within 30 s: rides out a restart or a
    /// short overload without making a caller wait long for a real outage.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub const fn none() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_elapsed: Duration::MAX,
        }
    }

    /// The wait before retry number `retry` (1 = the first retry), for a `jitter` in
    /// `[0, 1]`: between half and all of `min(max_backoff, initial_backoff × 2^(retry-1))`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// After `attempts` failed attempts, the first one `elapsed` ago, with the server's
    /// `retry_after` if it sent one: how long to wait before the next attempt, or `None`
    /// to give up. Only for failures that are worth retrying at all.
    pub fn decide(
        &self,
        attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let wait = self
            .backoff(attempts, jitter)
            .max(retry_after.unwrap_or_default());
        // Waiting past the budget would only end in a timeout: give up now, with the
        // server's answer in hand.
        if elapsed.saturating_add(wait) >= self.max_elapsed {
            return None;
        }
        Some(wait)
    }

    /// What is left of the budget `elapsed` after the first attempt started.
    pub(crate) fn remaining(&self, elapsed: Duration) -> Duration {
        self.max_elapsed.saturating_sub(elapsed)
    }
}

/// A `Retry-After` header value — delay-seconds or an HTTP-date — as a wait from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or_default())
}

/// One failed attempt: the error and the server's `Retry-After`, if any.
pub(crate) struct Failure {
    pub error: Error,
    pub retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Runs `attempt` under `policy`, passing it the time it may take. Retries transient
/// failures; returns the first success or permanent failure, or [`Error::GaveUp`] (naming
/// `idempotency_key`) when the policy says stop.
pub(crate) async fn run<T, F, Fut>(
    policy: RetryPolicy,
    idempotency_key: Option<&str>,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failure = match attempt(policy.remaining(started.elapsed())).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        if !failure.error.is_transient() {
            return Err(failure.error);
        }
        let elapsed = started.elapsed();
        match policy.decide(attempts, elapsed, failure.retry_after, fastrand::f64()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None if policy.max_attempts <= 1 => return Err(failure.error),
            None => {
                return Err(Error::GaveUp {
                    attempts,
                    elapsed,
                    idempotency_key: idempotency_key.map(str::to_owned),
                    last: Box::new(failure.error),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: 100 * MS,
            max_backoff: 1000 * MS,
            max_elapsed: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let p = policy();
        let full: Vec<_> = (1..=6).map(|n| p.backoff(n, 1.0)).collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000].map(|n| n * MS));
        // Huge retry numbers neither overflow nor pass the cap.
        assert_eq!(p.backoff(u32::MAX, 1.0), 1000 * MS);
    }

    #[test]
    fn jitter_stays_within_the_upper_half_of_the_backoff() {
        let p = policy();
        for retry in 1..=8 {
            let full = p.backoff(retry, 1.0);
            assert_eq!(p.backoff(retry, 0.0), full / 2);
            for jitter in [0.1, 0.5, 0.9, -3.0, 7.0] {
                let wait = p.backoff(retry, jitter);
                assert!(
                    wait >= full / 2 && wait <= full,
                    "{retry} {jitter}: {wait:?}"
                );
            }
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        for attempts in 1..6 {
            assert!(p.decide(attempts, Duration::ZERO, None, 0.5).is_some());
        }
        assert_eq!(p.decide(6, Duration::ZERO, None, 0.5), None);
        assert_eq!(
            RetryPolicy::none().decide(1, Duration::ZERO, None, 0.5),
            None
        );
    }

    #[test]
    fn total_time_is_bounded_including_the_next_wait() {
        let p = policy();
        assert_eq!(
            p.decide(1, Duration::from_millis(9_800), None, 1.0),
            Some(100 * MS)
        );
        // 9.95 s spent + a 100 ms wait would end past 10 s.
        assert_eq!(p.decide(1, Duration::from_millis(9_950), None, 1.0), None);
        assert_eq!(p.remaining(Duration::from_secs(4)), Duration::from_secs(6));
        assert_eq!(p.remaining(Duration::from_secs(40)), Duration::ZERO);
        assert_eq!(
            RetryPolicy::none().remaining(Duration::from_secs(40)),
            Duration::MAX - Duration::from_secs(40)
        );
    }

    #[test]
    fn retry_after_overrides_a_shorter_backoff_and_never_shortens_it() {
        let p = policy();
        let two = Duration::from_secs(2);
        assert_eq!(p.decide(1, Duration::ZERO, Some(two), 1.0), Some(two));
        assert_eq!(p.decide(5, Duration::ZERO, Some(MS), 1.0), Some(1000 * MS));
        // A Retry-After beyond the budget gives up at once instead of sleeping into it.
        assert_eq!(
            p.decide(1, Duration::ZERO, Some(Duration::from_secs(60)), 1.0),
            None
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 1_445_412_480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    fn transient() -> Failure {
        Error::network("connection reset").into()
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_transient_failures_until_success() {
        let calls = Cell::new(0);
        let result = run(policy(), Some("k"), |_| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(transient()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.ok(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn run_stops_at_a_permanent_failure() {
        let calls = Cell::new(0);
        let result: Result<(), Error> = run(policy(), None, |_| {
            calls.set(calls.get() + 1);
            async {
                Err(
                    Error::from_answer(422, br#"{"error":{"code":"rejected","message":"no"}}"#)
                        .into(),
                )
            }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert_eq!(result.unwrap_err().code(), Some("rejected"));
    }

    #[tokio::test(start_paused = true)]
    async fn run_gives_up_naming_the_key_and_the_last_error() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let result: Result<(), Error> = run(policy(), Some("key-1"), |_| {
            calls.set(calls.get() + 1);
            async { Err(transient()) }
        })
        .await;
        assert_eq!(calls.get(), 6);
        assert!(started.elapsed() < policy().max_elapsed);
        match result.unwrap_err() {
            Error::GaveUp {
                attempts,
                idempotency_key,
                last,
                ..
            } => {
                assert_eq!(attempts, 6);
                assert_eq!(idempotency_key.as_deref(), Some("key-1"));
                assert!(matches!(*last, Error::Network(_)));
            }
            other => panic!("expected GaveUp, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_waits_as_long_as_retry_after_says() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let result = run(policy(), None, |_| {
            calls.set(calls.get() + 1);
            let first = calls.get() == 1;
            async move {
                if first {
                    Err(Failure {
                        error: Error::from_answer(503, b""),
                        retry_after: Some(Duration::from_secs(3)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok());
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_retries_the_error_comes_back_as_it_is() {
        let result: Result<(), Error> = run(RetryPolicy::none(), Some("k"), |_| async {
            Err(transient())
        })
        .await;
        assert!(matches!(result.unwrap_err(), Error::Network(_)));
    }
}
