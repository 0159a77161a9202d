//! Issue 12's figures on one Worker with `STREAM_PARTITIONS=1` (the "scale" Worker): many
//! clients on one aggregate and over 100, the batch route, the single-aggregate rate as its
//! log grows to 100,000 events, the cold start of such an aggregate, replay of the whole
//! partition (hot, archived, through the CLI export).
//!
//! Every event this Worker holds is written through [`Scale`], which counts them, so the
//! benchmark knows the partition's head exactly and can wait for the stream and the read
//! models to drain before each figure: the figures then measure the path they name, not
//! the background work an earlier figure left behind (on local workerd every object runs
//! on one thread).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use client::reqwest::Method;
use serde_json::{Value, json};

use crate::measure::{Rate, Stats, per_second};
use crate::session::{Session, add_card, create_board};
use crate::{projections, stream};

/// The quiet time before a timed cold command (and the bare DO's cold insert): the machine
/// idle for as long as both sides, so neither is timed right behind other work.
pub const SETTLE: Duration = Duration::from_millis(200);

/// `CommentOnCard` on card `c0`: one `CardCommented` event, and no growth of the state (a
/// board holds at most 5,000 cards; comments are counted, not kept).
pub fn comment(expected: Option<u64>) -> Value {
    let mut body = json!({
        "type": "CommentOnCard",
        "data": { "card_id": "c0", "author": "bench", "text": "a comment" },
    });
    if let Some(version) = expected {
        body["expected_version"] = json!(version);
    }
    body
}

pub struct Scale<'a> {
    pub session: &'a Session,
    /// Events committed so far: the partition's head once forwarding has caught up.
    committed: AtomicU64,
}

/// Many clients on one aggregate.
pub struct Contended {
    pub rate: Rate,
    pub conflicts: usize,
    pub successes: usize,
}

impl Contended {
    pub fn conflicts_per_success(&self) -> f64 {
        self.conflicts as f64 / self.successes as f64
    }
}

/// One window of the log-growth figure.
pub struct Window {
    /// The log's length when the window started.
    pub events: u64,
    /// Sequential commands, everything running.
    pub full: Rate,
    /// The same with the partition paused.
    pub paused: Rate,
}

/// The paired comparison of a short log with a long one: in each round, a fresh
/// aggregate filled to the short length, then a window on it and one on the long log,
/// one right after the other (the order alternating by round, each window from a drained
/// stream), so that the machine's drift over the minutes a growth curve takes falls on
/// both sides alike.
pub struct Paired {
    /// The short logs' length when their windows started.
    pub short_events: u64,
    /// The long log's length when the first round started.
    pub long_events: u64,
    /// Per round, everything running: (short, long).
    pub full: Vec<(Rate, Rate)>,
    /// Per round, with the partition paused: (short, long).
    pub paused: Vec<(Rate, Rate)>,
    /// The long aggregate's version after the last round.
    pub long_version: u64,
}

/// The commands/s of a set of equal windows taken together: windows ÷ the sum of their
/// times, i.e. the harmonic mean of their rates.
pub fn pooled(rates: impl Iterator<Item = f64>) -> f64 {
    let (n, seconds) = rates.fold((0.0, 0.0), |(n, s), r| (n + 1.0, s + 1.0 / r));
    n / seconds
}

impl Paired {
    /// Long ÷ short, everything running (`paused`: the command path alone), pooled over
    /// the rounds.
    pub fn ratio(&self, paused: bool) -> f64 {
        let rounds = if paused { &self.paused } else { &self.full };
        pooled(rounds.iter().map(|(_, l)| l.per_second))
            / pooled(rounds.iter().map(|(s, _)| s.per_second))
    }

    /// Each round's long ÷ short, lowest and highest.
    pub fn ratio_range(&self, paused: bool) -> (f64, f64) {
        let rounds = if paused { &self.paused } else { &self.full };
        rounds
            .iter()
            .map(|(s, l)| l.per_second / s.per_second)
            .fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }
}

/// The answer to a raw command: status and body.
async fn send(session: &Session, id: &str, route: &str, body: &Value) -> (u16, Value) {
    let request = session
        .client
        .request(Method::POST, &format!("/v1/aggregates/board/{id}/{route}"))
        .json(body);
    let reply = session.client.send(request).await.expect("command sent");
    let value = reply.json().unwrap_or(Value::Null);
    (reply.status, value)
}

impl<'a> Scale<'a> {
    pub fn new(session: &'a Session) -> Self {
        Scale {
            session,
            committed: AtomicU64::new(0),
        }
    }

    /// A `Scale` on a restarted Worker whose partition already holds `committed` events.
    pub fn resume(session: &'a Session, committed: u64) -> Self {
        Scale {
            session,
            committed: AtomicU64::new(committed),
        }
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// A command that must succeed; its new version.
    pub async fn command(&self, id: &str, body: &Value) -> u64 {
        let (_, answer) = self.session.command_answer(id, body).await;
        let events = answer["events"].as_array().map_or(0, Vec::len) as u64;
        self.committed.fetch_add(events, Ordering::SeqCst);
        answer["version"].as_u64().expect("a version")
    }

    /// A command that must succeed, timed from send to answer.
    pub async fn timed_command(&self, id: &str, body: &Value) -> Duration {
        let (elapsed, answer) = self.session.command_answer(id, body).await;
        let events = answer["events"].as_array().map_or(0, Vec::len) as u64;
        self.committed.fetch_add(events, Ordering::SeqCst);
        elapsed
    }

    /// [`Scale::drain`], then a quiet [`SETTLE`]: the other projectors, woken with
    /// `board_summary`, finish their folds, and nothing of the pipeline runs beside what is
    /// timed next.
    pub async fn settle(&self) {
        self.drain().await;
        tokio::time::sleep(SETTLE).await;
    }

    /// A board with card `c0`: version 2.
    pub async fn board(&self, id: &str) {
        self.command(id, &create_board("scale")).await;
        self.command(id, &add_card("c0")).await;
    }

    /// Pauses partition 0: each command's forwarding is refused at once (and retried later),
    /// so no partition appends and no projection folds — what remains is the command path.
    pub async fn pause(&self) {
        self.session
            .ok(Method::POST, "/v1/stream/partitions/0/pause")
            .await;
    }

    /// Resumes partition 0 (the aggregates forward what they hold on their next retry).
    pub async fn resume_stream(&self) {
        self.session
            .ok(Method::POST, "/v1/stream/partitions/0/resume")
            .await;
    }

    /// Waits until the partition holds every event and `board_summary` has applied them.
    pub async fn drain(&self) {
        let head = self.committed();
        stream::await_head(self.session, 0, head).await;
        projections::await_caught_up(self.session, 0, head).await;
    }

    /// One batch of `size` comments; its latency.
    /// One batch of `size` comments; with `minimal`, answered without its events
    /// (`Prefer: return=minimal`), as a bulk writer that needs only the version asks.
    async fn batch(&self, id: &str, size: usize, minimal: bool) -> Duration {
        let body = json!({ "commands": (0..size).map(|_| comment(None)).collect::<Vec<_>>() });
        let mut request = self
            .session
            .client
            .request(Method::POST, &format!("/v1/aggregates/board/{id}/batch"))
            .json(&body);
        if minimal {
            request = request.header("prefer", "return=minimal");
        }
        let started = Instant::now();
        let reply = self.session.client.send(request).await.expect("batch sent");
        let elapsed = started.elapsed();
        let answer = reply.json().unwrap_or(Value::Null);
        assert_eq!(reply.status, 200, "batch: {answer}");
        if minimal {
            assert!(answer.get("events").is_none(), "a minimal answer: {answer}");
            assert!(answer["version"].as_u64().is_some(), "{answer}");
        } else {
            let events = answer["events"].as_array().map_or(0, Vec::len);
            assert_eq!(events, size, "a batch of {size} answered {events} events");
        }
        self.committed.fetch_add(size as u64, Ordering::SeqCst);
        elapsed
    }

    /// `count` batches of `size` comments on a fresh board: events per second (`minimal`
    /// as for one batch).
    pub async fn batches(&self, id: &str, size: usize, count: usize, minimal: bool) -> Rate {
        self.board(id).await;
        self.batch(id, size, minimal).await;
        let mut samples = Vec::with_capacity(count);
        let started = Instant::now();
        for _ in 0..count {
            samples.push(self.batch(id, size, minimal).await);
        }
        Rate {
            per_second: per_second(size * count, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// Grows `id`'s log to `events` with batches of 1,000 (not measured).
    pub async fn fill(&self, id: &str, version: u64, events: u64) -> u64 {
        let mut version = version;
        while version < events {
            let size = (events - version).min(1000) as usize;
            self.batch(id, size, true).await;
            version += size as u64;
        }
        version
    }

    /// `n` sequential comments on `id`.
    pub async fn window(&self, id: &str, n: usize) -> Rate {
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        let body = comment(None);
        for _ in 0..n {
            let t = Instant::now();
            self.command(id, &body).await;
            samples.push(t.elapsed());
        }
        Rate {
            per_second: per_second(n, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// The single-aggregate rate as the log grows: once the log holds each of `sizes`
    /// events (filled with batches in between, the stream drained), a window of `window`
    /// sequential commands, then another with the partition paused (the command path
    /// alone, without the stream and read models behind each command).
    pub async fn growth(&self, id: &str, sizes: &[u64], window: usize) -> Vec<Window> {
        self.board(id).await;
        let mut version = 2;
        let mut windows = Vec::new();
        for &size in sizes {
            version = self.fill(id, version, size).await;
            self.drain().await;
            let full = self.window(id, window).await;
            self.pause().await;
            let paused = self.window(id, window).await;
            self.resume_stream().await;
            windows.push(Window {
                events: version,
                full,
                paused,
            });
            version += 2 * window as u64;
        }
        self.drain().await;
        windows
    }

    /// [`Paired`]: `rounds` rounds of `window` sequential commands on a fresh aggregate of
    /// `short` events (`{prefix}-f-{round}`) and on `long_id` (at `long_version`), everything
    /// running; then as many with the partition paused (`{prefix}-p-{round}`). `rounds`
    /// should be even: the side that goes first alternates.
    pub async fn paired(
        &self,
        prefix: &str,
        short: u64,
        long_id: &str,
        long_version: u64,
        rounds: usize,
        window: usize,
    ) -> Paired {
        let mut long_version = long_version;
        let long_events = long_version;
        let mut full = Vec::with_capacity(rounds);
        let mut paused = Vec::with_capacity(rounds);
        for stream_paused in [false, true] {
            for round in 0..rounds {
                let id = format!("{prefix}-{}-{round}", if stream_paused { "p" } else { "f" });
                self.board(&id).await;
                self.fill(&id, 2, short).await;
                let (short_rate, long_rate) = if round % 2 == 0 {
                    let s = self.paired_window(&id, window, stream_paused).await;
                    (s, self.paired_window(long_id, window, stream_paused).await)
                } else {
                    let l = self.paired_window(long_id, window, stream_paused).await;
                    (self.paired_window(&id, window, stream_paused).await, l)
                };
                long_version += window as u64;
                if stream_paused {
                    paused.push((short_rate, long_rate));
                } else {
                    full.push((short_rate, long_rate));
                }
            }
        }
        self.drain().await;
        Paired {
            short_events: short,
            long_events,
            full,
            paused,
            long_version,
        }
    }

    /// One window of [`Scale::paired`], from the same start for either side: the stream
    /// drained and the machine quiet ([`Scale::settle`]), so no window runs beside the
    /// pipeline of the one before it; with `stream_paused`, the partition is paused for
    /// the window only, so neither side's refused forwards are retried during the other's.
    async fn paired_window(&self, id: &str, window: usize, stream_paused: bool) -> Rate {
        self.settle().await;
        if stream_paused {
            self.pause().await;
        }
        let rate = self.window(id, window).await;
        if stream_paused {
            self.resume_stream().await;
        }
        rate
    }

    /// `clients` clients on one fresh aggregate until `successes` commands succeeded. With
    /// `exact`, each sends the version it last saw and, on 409, retries at once with the
    /// `actual` version the answer carries; else every command is `expected_version: any`.
    pub async fn contended(
        &self,
        id: &str,
        clients: usize,
        successes: usize,
        exact: bool,
    ) -> Contended {
        self.board(id).await;
        let left = AtomicUsize::new(successes);
        let conflicts = AtomicUsize::new(0);
        let started = Instant::now();
        let loops = (0..clients).map(|_| async {
            let mut samples = Vec::new();
            let mut version = 2u64;
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                loop {
                    let body = comment(exact.then_some(version));
                    let (status, answer) = send(self.session, id, "commands", &body).await;
                    match status {
                        200 => {
                            version = answer["version"].as_u64().expect("a version");
                            self.committed.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        409 => {
                            conflicts.fetch_add(1, Ordering::SeqCst);
                            version = answer["error"]["actual"]
                                .as_u64()
                                .unwrap_or_else(|| panic!("a 409 without `actual`: {answer}"));
                        }
                        _ => panic!("command failed: {status} {answer}"),
                    }
                }
                samples.push(t.elapsed());
            }
            samples
        });
        let samples: Vec<Duration> = futures_util::future::join_all(loops)
            .await
            .into_iter()
            .flatten()
            .collect();
        Contended {
            rate: Rate {
                per_second: per_second(successes, started.elapsed()),
                latency: Stats::of(samples),
            },
            conflicts: conflicts.load(Ordering::SeqCst),
            successes,
        }
    }

    /// `clients` clients over `aggregates` fresh boards (client `c`'s `i`-th command goes
    /// to board `(c + i·clients) mod aggregates`), `expected_version: any`.
    pub async fn spread(
        &self,
        prefix: &str,
        aggregates: usize,
        clients: usize,
        per_client: usize,
    ) -> Rate {
        for a in 0..aggregates {
            self.board(&format!("{prefix}-{a}")).await;
        }
        let started = Instant::now();
        let loops = (0..clients).map(|c| async move {
            let mut samples = Vec::with_capacity(per_client);
            let body = comment(None);
            for i in 0..per_client {
                let id = format!("{prefix}-{}", (c + i * clients) % aggregates);
                let t = Instant::now();
                self.command(&id, &body).await;
                samples.push(t.elapsed());
            }
            samples
        });
        let samples: Vec<Duration> = futures_util::future::join_all(loops)
            .await
            .into_iter()
            .flatten()
            .collect();
        Rate {
            per_second: per_second(clients * per_client, started.elapsed()),
            latency: Stats::of(samples),
        }
    }
}

/// The first command on each of `ids` after the runtime restarted on the same storage (every
/// object evicted), once the runtime itself is warm (no-ops and a command on another
/// aggregate first, so the figure is the object's start, not the isolate's). Each `ids`
/// entry's command is timed in turn, after the previous command's pipeline has finished
/// ([`Scale::settle`]): locally the forward, the partition's append and the projectors'
/// folds share the runtime's one thread with the command being timed (without the wait,
/// the warm-up's pipeline doubled the figure), while on Cloudflare they run in other
/// objects. Returns the latencies in the order of `ids`.
pub async fn cold_commands(scale: &Scale<'_>, warm: &str, ids: &[&str]) -> Vec<Duration> {
    scale.session.noop(20).await;
    scale.command(warm, &comment(None)).await;
    let mut out = Vec::new();
    for id in ids {
        scale.settle().await;
        out.push(scale.timed_command(id, &comment(None)).await);
    }
    // The last command's forward must finish before the caller restarts the runtime: an
    // alarm still pending then fires at the next start and loads that aggregate, so its
    // "cold" command of the next round would find it already in memory.
    scale.settle().await;
    out
}

/// The `edgeloop` binary of the same build profile as this benchmark, if it was built
/// (`cargo build -p cli`; the e2e tests build the debug one).
pub fn cli_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("edgeloop");
    candidate.exists().then_some(candidate)
}

/// `edgeloop replay --format ndjson --partitions 0` into a temporary file: events per
/// second over the whole process run (start, token check, every page, the file written).
pub fn cli_replay(cli: &Path, url: &str, token: &str, events: u64) -> Rate {
    let dir = crate::measure::temp_dir("edgeloop-bench-cli");
    let output = dir.join("export.ndjson");
    let started = Instant::now();
    let result = Command::new(cli)
        .args([
            "replay",
            "--url",
            url,
            "--format",
            "ndjson",
            "--partitions",
            "0",
        ])
        .arg("--output")
        .arg(&output)
        .arg("--overwrite")
        .env("EDGELOOP_TOKEN", token)
        .output()
        .expect("run edgeloop replay");
    let elapsed = started.elapsed();
    assert!(
        result.status.success(),
        "edgeloop replay failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let lines = std::fs::read(&output)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(lines as u64, events, "the export holds {lines} of {events}");
    Rate {
        per_second: per_second(events as usize, elapsed),
        latency: Stats::of(vec![elapsed]),
    }
}
