//! Issue 12: Edgeloop side by side with the runtime's ceilings (the benchmark's own bare
//! Worker), the storage ceiling (SQLite directly) and a peer (cqrs-es on PostgreSQL), all
//! measured in the same run, and the `BENCHMARKS.md` report with every figure as a ratio
//! to its baselines and the issue's targets.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use tests::{Options, Worker};

use crate::Progress;
use crate::ceilings::Baseline;
use crate::fanout::{self, Fanout};
use crate::measure::{Rate, Stats};
use crate::peer::{num, text};
use crate::scale::{self, Contended, Scale, Window};
use crate::session::Session;
use crate::stream::{self, Encoding, Replay};

/// The counts of the issue-12 figures.
pub struct Counts {
    pub quick: bool,
    pub noop: usize,
    pub sequential: usize,
    pub per_client: usize,
    pub clients: usize,
    pub batch_size: usize,
    pub batch_requests: usize,
    pub contended: usize,
    pub spread_per_client: usize,
    pub subscribers: Vec<usize>,
    pub fan_commands: usize,
    pub growth: Vec<u64>,
    pub window: usize,
    /// Rounds of the paired short-log / long-log comparison ([`scale::Paired`]); even, so
    /// that each side goes first equally often.
    pub paired_rounds: usize,
    pub cold_events: u64,
    pub cold_rounds: usize,
    pub segment_events: usize,
}

impl Counts {
    pub fn new(quick: bool) -> Counts {
        if quick {
            Counts {
                quick,
                noop: 300,
                sequential: 100,
                per_client: 10,
                clients: 16,
                batch_size: 1000,
                batch_requests: 3,
                contended: 64,
                spread_per_client: 5,
                subscribers: vec![1, 20],
                fan_commands: 10,
                growth: vec![200, 1000],
                window: 50,
                paired_rounds: 2,
                cold_events: 1000,
                cold_rounds: 1,
                segment_events: 500,
            }
        } else {
            Counts {
                quick,
                noop: 3000,
                sequential: 2000,
                per_client: 100,
                clients: 16,
                batch_size: 1000,
                batch_requests: 20,
                contended: 800,
                spread_per_client: 50,
                subscribers: vec![1, 100, 1000],
                fan_commands: 100,
                growth: vec![1000, 10_000, 100_000],
                window: 500,
                paired_rounds: 4,
                cold_events: 100_000,
                cold_rounds: 3,
                segment_events: 10_000,
            }
        }
    }
}

/// The bare Worker's figures.
pub struct Ceilings {
    pub noop: Rate,
    pub insert: Rate,
    pub insert_one: Rate,
    pub insert_spread: Rate,
    pub batch: Rate,
    pub cold: Stats,
    pub cold_rounds: Vec<Duration>,
}

pub async fn ceilings(counts: &Counts, progress: &Progress) -> Ceilings {
    progress.say("baseline Worker: starting (bench/baseline-worker)");
    let mut bare = Baseline::start();
    bare.noop(200).await;
    bare.inserts("warmup", 50).await;
    progress.say("baseline Worker: no-op, inserts");
    let noop = bare.noop(counts.noop).await;
    let insert = bare.inserts("sequential", counts.sequential).await;
    let insert_one = bare
        .concurrent("one", 1, counts.clients, counts.per_client)
        .await;
    let insert_spread = bare
        .concurrent("spread", 100, counts.clients, counts.per_client)
        .await;
    let batch = bare
        .batches("batch", counts.batch_size, counts.batch_requests)
        .await;
    progress.say("baseline Worker: cold start of an object with the cold-start log's rows");
    let rows = counts.cold_events as usize;
    bare.batches("cold", counts.batch_size, rows.div_ceil(counts.batch_size))
        .await;
    let mut cold = Vec::new();
    for _ in 0..counts.cold_rounds {
        cold.push(bare.cold_insert("cold").await);
    }
    Ceilings {
        noop,
        insert,
        insert_one,
        insert_spread,
        batch,
        cold: Stats::of(cold.clone()),
        cold_rounds: cold,
    }
}

/// The scale Worker's figures.
pub struct Figures {
    pub noop: Rate,
    pub sequential: Rate,
    pub sequential_paused: Rate,
    pub batch_paused: Rate,
    /// The batches answered without their events (`Prefer: return=minimal`).
    pub batch_minimal: Rate,
    pub exact: Contended,
    pub any: Contended,
    pub spread: Rate,
    pub fan_aggregate: Vec<Fanout>,
    pub fan_partition: Vec<Fanout>,
    pub batch: Rate,
    pub growth: Vec<Window>,
    /// The paired short-log / long-log windows ([`Scale::paired`]).
    pub paired: scale::Paired,
    pub spread_paused: Rate,
    pub cold_rounds: [Vec<Duration>; 3],
    pub cold_small: Stats,
    pub cold_snapshots: Stats,
    pub cold_no_snapshots: Stats,
    pub cold_versions: (u64, u64),
    pub head: u64,
    pub hot: Replay,
    pub cli_hot: Option<Rate>,
    pub archived_first: Replay,
    pub archived: Replay,
    pub cli_archived: Option<Rate>,
}

const SCOPES: &str = "commands read replay admin";

pub async fn edgeloop(counts: &Counts, options: Options, progress: &Progress) -> Figures {
    progress.say("scale Worker: starting (STREAM_PARTITIONS=1)");
    // Everything stays hot until the archive step below: otherwise the partition archives
    // segments in the background as soon as the fills pass STREAM_HOT_EVENTS (50,000), in the
    // middle of the windows, and "hot" replay would read R2.
    let mut worker = Worker::start_with(
        options
            .var("STREAM_PARTITIONS", 1)
            .var("STREAM_HOT_EVENTS", 1_000_000_000),
    );
    let session = Session::new(&worker, SCOPES);
    let scale = Scale::new(&session);
    session.noop(200).await;
    scale.board("warmup").await;
    scale.window("warmup", 50).await;
    scale.drain().await;
    progress.say("scale: no-op baseline, sequential commands");
    let noop = session.noop(counts.noop).await;
    scale.board("sequential").await;
    let sequential = scale.window("sequential", counts.sequential).await;
    scale.drain().await;
    progress.say("scale: 16 clients on one aggregate, exact versions");
    let exact = scale
        .contended("exact", counts.clients, counts.contended, true)
        .await;
    scale.drain().await;
    progress.say("scale: 16 clients on one aggregate, expected_version any");
    let any = scale
        .contended("any", counts.clients, counts.contended, false)
        .await;
    scale.drain().await;
    progress.say("scale: 16 clients over 100 aggregates");
    let spread = scale
        .spread("spread", 100, counts.clients, counts.spread_per_client)
        .await;
    scale.drain().await;
    let mut fan_aggregate = Vec::new();
    let mut fan_partition = Vec::new();
    for &n in &counts.subscribers {
        progress.say(&format!("scale: fan-out to {n} subscribers"));
        fan_aggregate
            .push(fanout::aggregate(&scale, &format!("fan-{n}"), n, counts.fan_commands).await);
        scale.drain().await;
        fan_partition
            .push(fanout::partition(&scale, &format!("fan-p-{n}"), n, counts.fan_commands).await);
        scale.drain().await;
    }
    progress.say("scale: batches");
    let batch = scale
        .batches("batch", counts.batch_size, counts.batch_requests, false)
        .await;
    scale.drain().await;
    let batch_minimal = scale
        .batches(
            "batch-minimal",
            counts.batch_size,
            counts.batch_requests,
            true,
        )
        .await;
    scale.drain().await;
    progress.say("scale: the partition paused: sequential commands and batches");
    scale.pause().await;
    scale.board("sequential-paused").await;
    let sequential_paused = scale.window("sequential-paused", counts.sequential).await;
    let batch_paused = scale
        .batches(
            "batch-paused",
            counts.batch_size,
            counts.batch_requests,
            false,
        )
        .await;
    let spread_paused = scale
        .spread(
            "spread-paused",
            100,
            counts.clients,
            counts.spread_per_client,
        )
        .await;
    scale.resume_stream().await;
    scale.drain().await;
    progress.say("scale: the rate as one log grows");
    let growth = scale.growth("grow", &counts.growth, counts.window).await;
    let grown = growth
        .last()
        .map_or(2, |w| w.events + 2 * counts.window as u64);
    progress.say("scale: a short log and the long one, window by window");
    let paired = scale
        .paired(
            "paired",
            counts.growth.first().copied().unwrap_or(0),
            "grow",
            grown,
            counts.paired_rounds,
            counts.window,
        )
        .await;
    scale.board("cold-small").await;
    scale.drain().await;
    let committed = scale.committed();
    let grow_version = 2 + paired.long_version;

    progress.say("scale: restart with SNAPSHOT_EVERY=0; a log without snapshots");
    worker.set_var("SNAPSHOT_EVERY", 0);
    worker.restart();
    let session = Session::new(&worker, SCOPES);
    let scale = Scale::resume(&session, committed);
    scale.board("cold-plain").await;
    let plain_version = scale.fill("cold-plain", 2, counts.cold_events).await;
    progress.say("scale: draining the stream");
    scale.drain().await;
    let mut committed = scale.committed();

    let (mut small, mut snap, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..counts.cold_rounds {
        progress.say(&format!("scale: cold start, round {}", round + 1));
        worker.restart();
        let session = Session::new(&worker, SCOPES);
        let scale = Scale::resume(&session, committed);
        let times =
            scale::cold_commands(&scale, "warmup", &["cold-small", "grow", "cold-plain"]).await;
        committed = scale.committed();
        small.push(times[0]);
        snap.push(times[1]);
        plain.push(times[2]);
    }

    progress.say("scale: replay, hot");
    worker.restart();
    let session = Session::new(&worker, SCOPES);
    let scale = Scale::resume(&session, committed);
    session.noop(200).await;
    scale.drain().await;
    let head = scale.committed();
    let hot = stream::replay(&session, 0, 10_000, Encoding::MessagePack, head).await;
    let token = worker.token("bench", crate::session::TENANT, SCOPES);
    let cli = scale::cli_binary();
    let cli_hot = cli
        .as_ref()
        .map(|cli| scale::cli_replay(cli, worker.url(), &token, head));

    progress.say("scale: archive, replay archived");
    worker.set_var("STREAM_SEGMENT_EVENTS", counts.segment_events);
    worker.set_var("STREAM_HOT_EVENTS", counts.segment_events);
    worker.restart();
    let session = Session::new(&worker, SCOPES);
    session.noop(200).await;
    stream::archive(&session, 0).await;
    let archived_first = stream::replay(&session, 0, 10_000, Encoding::MessagePack, head).await;
    let archived = stream::replay(&session, 0, 10_000, Encoding::MessagePack, head).await;
    let cli_archived = cli
        .as_ref()
        .map(|cli| scale::cli_replay(cli, worker.url(), &token, head));
    Figures {
        noop,
        sequential,
        sequential_paused,
        batch_paused,
        batch_minimal,
        exact,
        any,
        spread,
        fan_aggregate,
        fan_partition,
        batch,
        growth,
        paired,
        spread_paused,
        cold_small: Stats::of(small.clone()),
        cold_snapshots: Stats::of(snap.clone()),
        cold_no_snapshots: Stats::of(plain.clone()),
        cold_rounds: [small, snap, plain],
        cold_versions: (grow_version, plain_version),
        head,
        hot,
        cli_hot,
        archived_first,
        archived,
        cli_archived,
    }
}

/// Everything the report needs besides the figures.
pub struct Context {
    pub date: String,
    pub machine: String,
    pub command: String,
    pub elapsed: Duration,
    pub load_before: String,
    pub load_after: String,
    pub build: String,
    pub versions: Vec<(String, String)>,
}

/// A figure with `precision` decimals, or `—` when it was not measured.
fn opt(value: Option<f64>, precision: usize) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.precision$}"))
}

/// `a / b` as `1.23×`, or `—` without a baseline.
fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// [`verdict`] for a figure whose target assumes the full counts.
fn judged(counts: &Counts, met: Option<bool>) -> &'static str {
    if counts.quick {
        "not judged (--quick)"
    } else {
        verdict(met)
    }
}

/// The report: `BENCHMARKS.md`'s text.
pub fn report(
    cx: &Context,
    counts: &Counts,
    bare: &Ceilings,
    e: &Figures,
    peer: Option<&Value>,
    extra: &str,
) -> String {
    let p = |path: &str| peer.and_then(|v| num(v, path));
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `scripts/bench` (issue 12). Every figure is set beside baselines measured \
         **in the same run on the same machine** — the runtime's ceilings (a bare Worker and a bare \
         SQLite Durable Object, `bench/baseline-worker/`), the storage ceiling (SQLite directly \
         through rusqlite), and a peer (the same board commands through cqrs-es + postgres-es on a \
         local PostgreSQL) — because absolute numbers on a shared 2-core machine drift by 2× \
         between minutes; ratios drift much less. Edgeloop and both Workers run under workerd \
         through Miniflare, no proxy, storage persisted to disk, driven by the same Rust client \
         loops (`bench/src`).\n"
    );
    let _ = writeln!(w, "* **Date:** {}", cx.date);
    let _ = writeln!(w, "* **Machine:** {}", cx.machine);
    let _ = writeln!(
        w,
        "* **Load average:** {} before, {} after (other engineers' work shares these cores)",
        cx.load_before, cx.load_after
    );
    let _ = writeln!(
        w,
        "* **Command:** `{}` — took {:.0} s",
        cx.command,
        cx.elapsed.as_secs_f64()
    );
    let _ = writeln!(w, "* **Worker build:** {}", cx.build);
    for (what, version) in &cx.versions {
        let _ = writeln!(w, "* **{what}:** {version}");
    }
    if let Some(peer) = peer {
        let _ = writeln!(
            w,
            "* **Peer:** cqrs-es {} + postgres-es {} on {} (fsync on, defaults otherwise), snapshots every {} events where noted; SQLite {} (rusqlite, bundled), WAL, rows of {} bytes",
            text(peer, "peer/cqrs_es").unwrap_or_default(),
            text(peer, "peer/postgres_es").unwrap_or_default(),
            text(peer, "peer/postgres").unwrap_or_default(),
            p("peer/snapshot_every").unwrap_or(0.0),
            text(peer, "sqlite/version").unwrap_or_default(),
            p("sqlite/row_bytes").unwrap_or(0.0),
        );
    } else {
        let _ = writeln!(
            w,
            "* **Peer and storage ceiling:** not run (`--quick` without `--peer`): their columns are empty."
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## Results\n");
    let _ = writeln!(
        w,
        "Rates are per second; latencies median / p99. \"Bare DO\" is the benchmark's own \
         Durable Object doing one `INSERT` of a ~200-byte row per request (or N rows per request \
         for the batch row), driven exactly like Edgeloop's commands. Ratios are Edgeloop ÷ \
         baseline (above 1 is Edgeloop ahead for rates; for latencies the ratio is Edgeloop's \
         median ÷ the baseline's).\n"
    );
    let _ = writeln!(
        w,
        "| figure | Edgeloop | runtime ceiling | × ceiling | storage ceiling (rusqlite) | × storage | peer (cqrs-es/PostgreSQL) | × peer | target | met? |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
    let rate = |r: &Rate| format!("{:.0}/s ({})", r.per_second, r.latency.cell());

    // No-op.
    let _ = writeln!(
        w,
        "| no-op request, 1 connection (Edgeloop `GET /healthz`; bare Worker `GET /noop`) | {} | {} | {} | | | | | | |",
        rate(&e.noop),
        rate(&bare.noop),
        ratio(e.noop.per_second, Some(bare.noop.per_second)),
    );
    // Sequential.
    let seq = e.sequential.per_second;
    let seq_peer_snap = p("peer/sequential_snapshots/per_second");
    let seq_peer = p("peer/sequential/per_second");
    let seq_met = seq_peer_snap.map(|s| seq >= 0.9 * bare.insert.per_second && seq >= 1.2 * s);
    let _ = writeln!(
        w,
        "| sequential commands, one aggregate ({} `CommentOnCard`) | {} | bare DO insert {} | {} | 1 row/tx FULL {}/s | {} | with snapshots {}/s ({} / {} ms); without {}/s | {} with; {} without | ≥0.9× bare DO and ≥1.2× peer with snapshots | {} |",
        counts.sequential,
        rate(&e.sequential),
        rate(&bare.insert),
        ratio(seq, Some(bare.insert.per_second)),
        opt(p("sqlite/single_full/per_second"), 0),
        ratio(seq, p("sqlite/single_full/per_second")),
        opt(seq_peer_snap, 0),
        opt(p("peer/sequential_snapshots/latency/median_ms"), 2),
        opt(p("peer/sequential_snapshots/latency/p99_ms"), 2),
        opt(seq_peer, 0),
        ratio(seq, seq_peer_snap),
        ratio(seq, seq_peer),
        verdict(seq_met),
    );
    let _ = writeln!(
        w,
        "| … the same with the partition paused (no stream, no read models: the command path alone) | {} | ↑ | {} | | | | | | |",
        rate(&e.sequential_paused),
        ratio(e.sequential_paused.per_second, Some(bare.insert.per_second)),
    );
    // Contended.
    let peer_cont = p("peer/contended/per_second");
    for (what, c) in [
        ("exact `expected_version`, retried on 409", &e.exact),
        ("`expected_version` any", &e.any),
    ] {
        let met = peer_cont.map(|pc| c.rate.per_second >= 10.0 * pc);
        let _ = writeln!(
            w,
            "| {} clients on ONE aggregate, {what} | {:.0} successes/s, {:.2} conflicts per success ({}) | bare DO, {} clients on one object {} | {} | | | {} successes/s, {} conflicts per success (snapshots, retried on conflict) | {} | ≥10× peer | {} |",
            counts.clients,
            c.rate.per_second,
            c.conflicts_per_success(),
            c.rate.latency.cell(),
            counts.clients,
            rate(&bare.insert_one),
            ratio(c.rate.per_second, Some(bare.insert_one.per_second)),
            opt(peer_cont, 0),
            opt(p("peer/contended/conflicts_per_success"), 2),
            ratio(c.rate.per_second, peer_cont),
            verdict(met),
        );
    }
    // Spread.
    let peer_spread = p("peer/spread/per_second");
    let _ = writeln!(
        w,
        "| {} clients over 100 aggregates, `expected_version` any | {} | bare DO, over 100 objects {} | {} | | | {}/s (snapshots) | {} | ahead of the peer | {} |",
        counts.clients,
        rate(&e.spread),
        rate(&bare.insert_spread),
        ratio(e.spread.per_second, Some(bare.insert_spread.per_second)),
        opt(peer_spread, 0),
        ratio(e.spread.per_second, peer_spread),
        verdict(peer_spread.map(|s| e.spread.per_second >= s)),
    );
    let _ = writeln!(
        w,
        "| … the same with the partition paused (the command path alone) | {} | ↑ | {} | | | | {} | | |",
        rate(&e.spread_paused),
        ratio(
            e.spread_paused.per_second,
            Some(bare.insert_spread.per_second)
        ),
        ratio(e.spread_paused.per_second, peer_spread),
    );
    // Growth.
    if let (Some(first), Some(last)) = (e.growth.first(), e.growth.last()) {
        let cells = |paused: bool| {
            e.growth
                .iter()
                .map(|g| {
                    let r = if paused { &g.paused } else { &g.full };
                    format!("{:.0}/s at {}", r.per_second, g.events)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let change = last.full.per_second / first.full.per_second;
        let change_paused = last.paused.per_second / first.paused.per_second;
        let peer_windows = peer
            .and_then(|v| v.pointer("/peer/sequential/windows"))
            .and_then(Value::as_array)
            .map(|ws| {
                ws.iter()
                    .map(|w| format!("{}/s at {}", opt(w["per_second"].as_f64(), 0), w["events"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let peer_change = |path: &str| {
            peer.and_then(|v| v.pointer(path))
                .and_then(Value::as_array)
                .and_then(|ws| {
                    let f = ws.first()?["per_second"].as_f64()?;
                    let l = ws.last()?["per_second"].as_f64()?;
                    Some(l / f)
                })
        };
        // "Flat within 10%" read literally: a later window more than 10% faster is not
        // flat either, though it is no slowdown (windows of 500 swing ±20% between runs).
        let judged_growth = |change: f64| {
            if last.events < 100_000 {
                "not judged (log below 100,000)"
            } else if change > 1.1 {
                "**missed** (no slowdown: the last window was faster)"
            } else {
                verdict(Some(change >= 0.9))
            }
        };
        let _ = writeln!(
            w,
            "| one aggregate's rate as its log grows (windows of {} sequential commands) | {}: last ÷ first {:.2} | | | | | without snapshots: {peer_windows}{}; with snapshots: last ÷ first {} | | flat within 10% from 1,000 to 100,000 events | {} |",
            counts.window,
            cells(false),
            change,
            peer_change("/peer/sequential/windows")
                .map(|c| format!(": last ÷ first {c:.2}"))
                .unwrap_or_default(),
            opt(peer_change("/peer/sequential_snapshots/windows"), 2),
            judged_growth(change),
        );
        let _ = writeln!(
            w,
            "| … the same windows with the partition paused (the command path alone) | {}: last ÷ first {:.2} | | | | | | | flat within 10% | {} |",
            cells(true),
            change_paused,
            judged_growth(change_paused),
        );
        // The same question asked without the drift between windows minutes apart.
        let paired = &e.paired;
        let judged_paired = |change: f64| {
            if paired.long_events < 100_000 {
                "not judged (log below 100,000)"
            } else {
                if change > 1.1 {
                    "**missed** (no slowdown: the long log was faster)"
                } else {
                    verdict(Some(change >= 0.9))
                }
            }
        };
        for paused in [false, true] {
            let (lo, hi) = paired.ratio_range(paused);
            let rounds = if paused { &paired.paused } else { &paired.full };
            let _ = writeln!(
                w,
                "| {} | {:.0}/s on the long log ({} events and up), {:.0}/s on the short ones ({}): long ÷ short {:.2}, pooled (rounds {lo:.2}–{hi:.2}) | | | | | | | flat within 10% | {} |",
                if paused {
                    "… paired, with the partition paused"
                } else {
                    "the same, paired: in each of {n} rounds a window on a fresh log of the short length and one on the long log, one right after the other (each from a drained stream)"
                }
                .replace("{n}", &rounds.len().to_string()),
                scale::pooled(rounds.iter().map(|(_, l)| l.per_second)),
                paired.long_events,
                scale::pooled(rounds.iter().map(|(s, _)| s.per_second)),
                paired.short_events,
                paired.ratio(paused),
                judged_paired(paired.ratio(paused)),
            );
        }
    }
    // Batch.
    let full100 = p("sqlite/batch100_full/per_second");
    let normal100 = p("sqlite/batch100_normal/per_second");
    let batch_met =
        full100.map(|f| e.batch.per_second >= 100_000.0 && e.batch.per_second >= 0.5 * f);
    let _ = writeln!(
        w,
        "| batch route, one aggregate ({} × {} commands, one request each) | {:.0} events/s ({} per request) | bare DO, {} rows per request: {} | {} | 100 rows/tx: FULL {}/s, NORMAL {}/s | {} FULL; {} NORMAL | | | ≥100,000 events/s and ≥0.5× rusqlite 100 rows/tx (FULL) | {} |",
        counts.batch_requests,
        counts.batch_size,
        e.batch.per_second,
        e.batch.latency.cell(),
        counts.batch_size,
        rate(&bare.batch),
        ratio(e.batch.per_second, Some(bare.batch.per_second)),
        opt(full100, 0),
        opt(normal100, 0),
        ratio(e.batch.per_second, full100),
        ratio(e.batch.per_second, normal100),
        if full100.is_some() {
            verdict(batch_met)
        } else {
            verdict(Some(e.batch.per_second >= 100_000.0))
        },
    );
    for (label, rate) in [
        (
            "the same answered without the events (`Prefer: return=minimal`)",
            &e.batch_minimal,
        ),
        (
            "the same with the partition paused (the batch path alone)",
            &e.batch_paused,
        ),
    ] {
        let _ = writeln!(
            w,
            "| … {label} | {:.0} events/s ({} per request) | ↑ | {} | | {} FULL | | | | |",
            rate.per_second,
            rate.latency.cell(),
            ratio(rate.per_second, Some(bare.batch.per_second)),
            ratio(rate.per_second, full100),
        );
    }
    // Fan-out.
    for (where_, list) in [
        ("one aggregate", &e.fan_aggregate),
        ("one stream partition", &e.fan_partition),
    ] {
        for f in list.iter() {
            let target = (f.subscribers == 1000).then_some(f.all.p99 <= 15.0);
            let _ = writeln!(
                w,
                "| WebSocket fan-out, {} subscribers on {where_}: POST start → frame, {} commands | all frames {}; slowest subscriber {} | no-op median {:.2} ms | {:.1}× | | | | | {} | {} |",
                f.subscribers,
                counts.fan_commands,
                f.all.cell(),
                f.slowest.cell(),
                e.noop.latency.median,
                f.all.median / e.noop.latency.median,
                if f.subscribers == 1000 {
                    "p99 ≤15 ms at 1,000"
                } else {
                    ""
                },
                if f.subscribers == 1000 {
                    verdict(target)
                } else {
                    ""
                },
            );
        }
    }
    // Replay.
    let scan = p("sqlite/scan_decode/per_second");
    let hot = e.hot.events_per_second();
    let _ = writeln!(
        w,
        "| replay, hot partition, MessagePack pages of 10,000 ({} events) | {:.0} events/s | no-op {:.0} req/s | | full scan + rmp-serde decode {}/s | {} | | | ≥250,000 events/s | {} |",
        e.head,
        hot,
        e.noop.per_second,
        opt(scan, 0),
        ratio(hot, scan),
        judged(counts, Some(hot >= 250_000.0)),
    );
    let _ = writeln!(
        w,
        "| replay, archived partition (segments of {}), MessagePack, first read (R2) / again (KV cache) | {:.0} / {:.0} events/s | | | | {} | | | | |",
        counts.segment_events,
        e.archived_first.events_per_second(),
        e.archived.events_per_second(),
        ratio(e.archived.events_per_second(), scan),
    );
    match (&e.cli_hot, &e.cli_archived) {
        (Some(h), Some(a)) => {
            let _ = writeln!(
                w,
                "| `edgeloop replay` export (MessagePack pages → NDJSON file, whole process), hot / archived | {:.0} / {:.0} events/s | | | | {} archived | | | ≥500,000 events/s from the archive | {} |",
                h.per_second,
                a.per_second,
                ratio(a.per_second, scan),
                judged(counts, Some(a.per_second >= 500_000.0)),
            );
        }
        _ => {
            let _ = writeln!(
                w,
                "| `edgeloop replay` export | not measured: no `edgeloop` binary beside the bench (`cargo build -p cli`) | | | | | | | ≥500,000 events/s from the archive | not measured |"
            );
        }
    }
    // Cold start.
    let _ = writeln!(
        w,
        "| cold start: first command on an evicted aggregate of {} events, with snapshots (runtime restarted on the same storage, {} rounds; each timed command, and the bare insert, after 200 ms of quiet with the previous command's pipeline finished) | {} | bare DO with {} rows, first insert: {} | {:.1}× | | | | | ≤20 ms | {} |",
        e.cold_versions.0,
        counts.cold_rounds,
        e.cold_snapshots.cell(),
        counts.cold_events,
        bare.cold.cell(),
        e.cold_snapshots.median / bare.cold.median,
        if counts.cold_events >= 100_000 {
            verdict(Some(e.cold_snapshots.median <= 20.0))
        } else {
            "not judged (log below 100,000)"
        },
    );
    let _ = writeln!(
        w,
        "| … the same without snapshots ({} events, written with `SNAPSHOT_EVERY=0`) | {} | | {:.1}× | | | | | | |",
        e.cold_versions.1,
        e.cold_no_snapshots.cell(),
        e.cold_no_snapshots.median / bare.cold.median,
    );
    let _ = writeln!(
        w,
        "| … and of an aggregate of 2 events (the object's own start) | {} | | {:.1}× | | | | | | |",
        e.cold_small.cell(),
        e.cold_small.median / bare.cold.median,
    );
    if let Some(peer) = peer {
        let _ = writeln!(
            w,
            "\nStorage ceiling, all figures (rusqlite, WAL, ~200-byte MessagePack rows):\n"
        );
        let _ = writeln!(w, "| SQLite directly | rows/s |\n|---|---|");
        for (what, key) in [
            ("1 row per transaction, synchronous=FULL", "single_full"),
            ("1 row per transaction, synchronous=NORMAL", "single_normal"),
            (
                "100 rows per transaction, synchronous=FULL",
                "batch100_full",
            ),
            (
                "100 rows per transaction, synchronous=NORMAL",
                "batch100_normal",
            ),
            ("full scan + rmp-serde decode", "scan_decode"),
        ] {
            let _ = writeln!(
                w,
                "| {what} | {} |",
                opt(num(peer, &format!("sqlite/{key}/per_second")), 0)
            );
        }
        let _ = writeln!(w, "\nPeer, all figures (cqrs-es + postgres-es):\n");
        let _ = writeln!(
            w,
            "```json\n{}\n```",
            serde_json::to_string_pretty(&peer["peer"]).unwrap_or_default()
        );
    }
    let _ = writeln!(w, "\nEdgeloop, the scale Worker's windows:\n");
    let _ = writeln!(
        w,
        "| log size | commands/s | median / p99 | partition paused: commands/s | median / p99 |\n|---|---|---|---|---|"
    );
    for g in &e.growth {
        let _ = writeln!(
            w,
            "| {} | {:.0} | {} | {:.0} | {} |",
            g.events,
            g.full.per_second,
            g.full.latency.cell(),
            g.paused.per_second,
            g.paused.latency.cell()
        );
    }
    let _ = writeln!(
        w,
        "\nThe paired windows (a fresh log of {} events and the long log of {} and up, each window from a drained stream, paused only for its own window; the order alternates by round):\n",
        e.paired.short_events, e.paired.long_events
    );
    let _ = writeln!(
        w,
        "| round | short log: commands/s | median / p99 | long log: commands/s | median / p99 | long ÷ short |\n|---|---|---|---|---|---|"
    );
    for (label, rounds) in [("", &e.paired.full), (" (paused)", &e.paired.paused)] {
        for (i, (short, long)) in rounds.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {}{label} | {:.0} | {} | {:.0} | {} | {:.2} |",
                i + 1,
                short.per_second,
                short.latency.cell(),
                long.per_second,
                long.latency.cell(),
                long.per_second / short.per_second
            );
        }
    }
    let rounds = |samples: &[Duration]| {
        samples
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        w,
        "\nCold start, each round (ms): 2-event aggregate {}; {} events with snapshots {}; {} events without {}; bare DO {}.",
        rounds(&e.cold_rounds[0]),
        e.cold_versions.0,
        rounds(&e.cold_rounds[1]),
        e.cold_versions.1,
        rounds(&e.cold_rounds[2]),
        rounds(&bare.cold_rounds),
    );
    let _ = writeln!(
        w,
        "\nReplay pages: hot {}, archived first read {}, again {}.",
        e.hot.pages_cell(),
        e.archived_first.pages_cell(),
        e.archived.pages_cell()
    );
    // The hand-written reading (a profile, the causes): kept in its own file so that a new
    // run does not erase it; it names the run it read.
    let reading = tests::repo_root().join("bench/where-the-time-goes.md");
    if let Ok(reading) = std::fs::read_to_string(reading) {
        let _ = writeln!(w, "\n{}", reading.trim_end());
    }
    let _ = writeln!(
        w,
        "\nIn the same run, the benchmark's other tables (first Worker: default settings; second: the stream and read models):\n"
    );
    out.push_str(extra);
    out
}

/// Versions of the pieces, for the report.
pub fn versions(peer: Option<&Value>) -> Vec<(String, String)> {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let package = |name: &str| {
        let path = tests::repo_root().join(format!("node_modules/{name}/package.json"));
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    };
    let mut v = vec![
        ("rustc".to_owned(), run("rustc", &["--version"])),
        (
            "workerd / miniflare / wrangler (npm)".to_owned(),
            format!(
                "{} / {} / {}",
                package("workerd"),
                package("miniflare"),
                package("wrangler")
            ),
        ),
    ];
    if let Some(peer) = peer {
        v.push((
            "PostgreSQL".into(),
            text(peer, "peer/postgres").unwrap_or_else(|| "not run".into()),
        ));
    }
    v
}
