//! `edgeloop-bench`: measures the Worker on the runtime the tests use — workerd through
//! Miniflare, no proxy in front, Durable Object storage persisted to a temporary directory.
//!
//! Every figure is compared against a baseline taken in the same run on the same runtime
//! (the rate of a request that touches no Durable Object), because absolute numbers on a
//! shared 2-core machine move by 2× from one minute to the next; ratios move much less.
//!
//! Two Workers, one after the other:
//! 1. Default settings (`--var` may change them): the first table — sequential commands on
//!    one aggregate, WebSocket push latency, concurrent writers — measured as in the first
//!    results, so old and new tables compare; then the same sequential commands with every
//!    partition paused, which takes the stream and read models out of the picture, and the
//!    baseline again.
//! 2. `STREAM_PARTITIONS=1` (skipped with `--core-only`): commit → visible on each path (the
//!    aggregate's socket, the partition's socket, a read-model document's socket, a read
//!    with a consistency token); a fill from concurrent writers; replay of the whole
//!    partition in JSON, NDJSON and MessagePack, hot, then archived (restarted with small
//!    segments: first read from R2, then from the KV edge cache, then with the cache off);
//!    and a `board_summary` rebuild over the whole stream.
//!
//! Then issue 12's comparison (skipped with `--core-only`): the runtime's ceilings on the
//! benchmark's own bare Worker, the peer and the storage ceiling (`bench/peer`, its own
//! workspace, run as a subprocess; with `--quick` only if `--peer`), and a third Worker with
//! `STREAM_PARTITIONS=1` for the scaling, fan-out, replay and cold-start figures. A full run
//! writes `BENCHMARKS.md`: every figure as a ratio to its baselines, and the issue's targets.
//!
//! Run: `scripts/bench` (builds first), or `cargo run --release -p bench -- …` on a built
//! Worker; `--quick` for CI (under a minute). Output: Markdown on stdout (the tables of
//! `bench/RESULTS.md`, then the issue-12 report), progress on stderr.
//!
//! # Layout
//! * `session` — a client of one Worker: raw commands, the no-op baseline, sockets.
//! * `aggregates` — the first table's figures.
//! * `visibility` — commit → visible on each path.
//! * `stream` — fill, replay, archive.
//! * `projections` — catch-up and rebuild of `board_summary`.
//! * `measure` — percentiles, rates, the machine, the load, the build.
//! * `ceilings` — the benchmark's own bare Worker (`bench/baseline-worker`).
//! * `peer` — runs `bench/peer` and reads its JSON.
//! * `scale` — the issue-12 figures on one counted Worker; `fanout` — many subscribers.
//! * `issue12` — the issue-12 run and the `BENCHMARKS.md` report.

mod aggregates;
mod ceilings;
mod fanout;
mod issue12;
mod measure;
mod peer;
mod projections;
mod scale;
mod session;
mod stream;
mod visibility;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use clap::Parser;
use tests::{Options, Worker};

use measure::{Rate, Stats};
use session::{Session, add_card, create_board};
use stream::{Encoding, Replay};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks Edgeloop's Worker under workerd")]
struct Args {
    /// Small counts for CI: the whole run in well under a minute. Flags given explicitly
    /// still win.
    #[arg(long)]
    quick: bool,
    /// Only the first table (one Worker with default settings): no stream, no read models,
    /// no issue-12 comparison.
    #[arg(long)]
    core_only: bool,
    /// Run the peer and the storage ceiling (`bench/peer`: cqrs-es on PostgreSQL, SQLite
    /// directly) also with `--quick` (a full run always does).
    #[arg(long)]
    peer: bool,
    /// Skip the peer and the storage ceiling even in a full run.
    #[arg(long, conflicts_with = "peer")]
    no_peer: bool,
    /// Events in the logs of the cold-start figure [default: 100000; --quick: 1000].
    #[arg(long)]
    cold_events: Option<u64>,
    /// Restarts timed in the cold-start figure [default: 3; --quick: 1].
    #[arg(long)]
    cold_rounds: Option<usize>,
    /// Where to write the issue-12 report [default: BENCHMARKS.md at the repository's root
    /// for a full run; none with --quick, whose report goes to stdout only].
    #[arg(long, value_name = "PATH")]
    output: Option<std::path::PathBuf>,
    /// Requests for the no-op baseline (GET /healthz) [default: 3000; --quick: 300].
    #[arg(long)]
    noop: Option<usize>,
    /// Sequential commands on one aggregate [default: 2000; --quick: 100].
    #[arg(long)]
    commands: Option<usize>,
    /// Commands timed from POST to the WebSocket frame [default: 500; --quick: 20].
    #[arg(long)]
    pushes: Option<usize>,
    /// Concurrent clients for the concurrency figure, each on its own aggregate
    /// [default: 16; --quick: 4].
    #[arg(long)]
    clients: Option<usize>,
    /// Commands per client in the concurrency figure [default: 200; --quick: 10].
    #[arg(long)]
    per_client: Option<usize>,
    /// Commands timed for each commit → visible figure (aggregate socket, stream socket,
    /// document socket, consistent read) [default: 500; --quick: 20].
    #[arg(long)]
    visible: Option<usize>,
    /// Events written into the one-partition Worker before replay and rebuild
    /// [default: 10000; --quick: 300].
    #[arg(long)]
    stream_events: Option<usize>,
    /// Concurrent writers of those events, each on its own boards [default: 16; --quick: 4].
    #[arg(long)]
    fill_clients: Option<usize>,
    /// STREAM_SEGMENT_EVENTS and STREAM_HOT_EVENTS for the archived reads
    /// [default: 5000; --quick: 100].
    #[arg(long)]
    segment_events: Option<usize>,
    /// `limit` of each replayed page (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    page: u32,
    /// A var for both Workers, `NAME=VALUE` (repeatable), e.g. `--var STREAM_PARTITIONS=1`
    /// to see what a setting costs. The second Worker's own settings win.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

impl Args {
    /// Worker options with the `--var`s applied.
    fn options(&self) -> Options {
        self.vars
            .iter()
            .fold(Options::new(), |options, (name, value)| {
                options.var(name, value)
            })
    }
}

/// The counts of one run, `--quick` and explicit flags applied.
struct Counts {
    noop: usize,
    commands: usize,
    pushes: usize,
    clients: usize,
    per_client: usize,
    visible: usize,
    stream_events: usize,
    fill_clients: usize,
    segment_events: usize,
}

impl Args {
    fn counts(&self) -> Counts {
        let pick = |given: Option<usize>, full: usize, quick: usize| {
            given.unwrap_or(if self.quick { quick } else { full })
        };
        Counts {
            noop: pick(self.noop, 3000, 300),
            commands: pick(self.commands, 2000, 100),
            pushes: pick(self.pushes, 500, 20),
            clients: pick(self.clients, 16, 4),
            per_client: pick(self.per_client, 200, 10),
            visible: pick(self.visible, 500, 20),
            stream_events: pick(self.stream_events, 10_000, 300),
            fill_clients: pick(self.fill_clients, 16, 4),
            segment_events: pick(self.segment_events, 5000, 100),
        }
    }
}

/// Progress on stderr, so a long run shows where it is (stdout is the report).
struct Progress(Instant);

impl Progress {
    fn say(&self, what: &str) {
        eprintln!("[bench {:>6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// The first table's figures.
struct Core {
    noop: Rate,
    sequential: Rate,
    push: Stats,
    concurrent: f64,
    paused: Rate,
    noop_after: Rate,
}

/// The one-partition Worker's figures.
struct Global {
    noop: Rate,
    aggregate_socket: Stats,
    stream_socket: Stats,
    document_socket: Stats,
    read_your_writes: Stats,
    head: u64,
    fill: f64,
    stream_drained: Duration,
    projection_drained: Duration,
    hot: Vec<Replay>,
    rebuild: projections::Rebuilt,
    archived_noop: Rate,
    archived: stream::Archived,
    first_read: Replay,
    cached: Vec<Replay>,
    uncached_noop: Rate,
    uncached: Vec<Replay>,
}

async fn core(counts: &Counts, options: Options, progress: &Progress) -> Core {
    progress.say("starting a Worker (wrangler.toml settings and --var)");
    let worker = Worker::start_with(options);
    let session = Session::new(&worker, "commands read replay admin");
    // Warm up: the first requests compile the wasm and open the object.
    session.noop(200).await;
    aggregates::sequential(&session, "warmup", 50).await;
    progress.say("no-op baseline");
    let noop = session.noop(counts.noop).await;
    progress.say("sequential commands");
    let sequential = aggregates::sequential(&session, "sequential", counts.commands).await;
    progress.say("WebSocket push");
    let push = aggregates::push_latency(&session, "push", counts.pushes).await;
    progress.say("concurrent writers");
    let concurrent = aggregates::concurrent(&session, counts.clients, counts.per_client).await;
    progress.say("sequential commands, the stream paused");
    let paused = aggregates::sequential_paused(&session, "paused", counts.commands).await;
    let noop_after = session.noop(counts.noop).await;
    Core {
        noop,
        sequential,
        push,
        concurrent,
        paused,
        noop_after,
    }
}

async fn global(counts: &Counts, options: Options, page: u32, progress: &Progress) -> Global {
    progress.say("starting a Worker with STREAM_PARTITIONS=1");
    let mut worker = Worker::start_with(options.var("STREAM_PARTITIONS", 1));
    let scopes = "commands read replay admin";
    let session = Session::new(&worker, scopes);
    // Every command below commits exactly one event, all into partition 0.
    let mut committed = 0u64;
    session.noop(200).await;
    session.command("warmup", &create_board("warmup")).await;
    for i in 0..20 {
        session.command("warmup", &add_card(&format!("w{i}"))).await;
    }
    committed += 21;
    progress.say("no-op baseline");
    let noop = session.noop(counts.noop).await;
    let n = counts.visible;
    progress.say("commit → visible: aggregate socket");
    let aggregate_socket = visibility::aggregate_socket(&session, "vis-aggregate", n).await;
    progress.say("commit → visible: stream socket");
    let stream_socket = visibility::stream_socket(&session, 0, "vis-stream", n).await;
    progress.say("commit → visible: document socket");
    let document_socket = visibility::document_socket(&session, "vis-document", n).await;
    progress.say("commit → visible: consistent read");
    let read_your_writes = visibility::read_your_writes(&session, "vis-read", n).await;
    committed += 4 * (n as u64 + 1);

    progress.say(&format!(
        "fill: {} events from {} writers",
        counts.stream_events, counts.fill_clients
    ));
    let fill = stream::fill(&session, "fill", counts.stream_events, counts.fill_clients).await;
    committed += counts.stream_events as u64;
    let head = committed;
    let filled = Instant::now();
    stream::await_head(&session, 0, head).await;
    let stream_drained = filled.elapsed();
    projections::await_caught_up(&session, 0, head).await;
    let projection_drained = filled.elapsed();

    let mut hot = Vec::new();
    for encoding in Encoding::ALL {
        progress.say(&format!("replay, hot, {}", encoding.name()));
        hot.push(stream::replay(&session, 0, page, encoding, head).await);
    }
    progress.say("rebuild board_summary");
    // A board of the fill: the old generation keeps serving it during the rebuild.
    let rebuild = projections::rebuild(&session, "fill-0-0").await;

    progress.say("restart with small segments; archive");
    worker.set_var("STREAM_SEGMENT_EVENTS", counts.segment_events);
    worker.set_var("STREAM_HOT_EVENTS", counts.segment_events);
    worker.restart();
    let session = Session::new(&worker, scopes);
    session.noop(200).await;
    let archived_noop = session.noop(counts.noop).await;
    let archived = stream::archive(&session, 0).await;
    progress.say("replay, archived, first read");
    let first_read = stream::replay(&session, 0, page, Encoding::MessagePack, head).await;
    let mut cached = Vec::new();
    for encoding in Encoding::ALL {
        progress.say(&format!("replay, archived, cached, {}", encoding.name()));
        cached.push(stream::replay(&session, 0, page, encoding, head).await);
    }

    progress.say("restart with the edge cache off");
    worker.set_var("EDGE_CACHE_ENABLED", "false");
    worker.restart();
    let session = Session::new(&worker, scopes);
    session.noop(200).await;
    let uncached_noop = session.noop(counts.noop).await;
    let mut uncached = Vec::new();
    for encoding in Encoding::ALL {
        progress.say(&format!("replay, archived, no cache, {}", encoding.name()));
        uncached.push(stream::replay(&session, 0, page, encoding, head).await);
    }
    Global {
        noop,
        aggregate_socket,
        stream_socket,
        document_socket,
        read_your_writes,
        head,
        fill,
        stream_drained,
        projection_drained,
        hot,
        rebuild,
        archived_noop,
        archived,
        first_read,
        cached,
        uncached_noop,
        uncached,
    }
}

/// A rate as a multiple of the baseline's rate.
fn rate_ratio(rate: f64, baseline: &Rate) -> String {
    format!("{:.2}×", rate / baseline.per_second)
}

/// A latency's median as a multiple of the baseline's median.
fn latency_ratio(stats: &Stats, baseline: &Rate) -> String {
    format!("{:.1}×", stats.median / baseline.latency.median)
}

fn core_table(out: &mut String, counts: &Counts, core: &Core) {
    let c = core;
    let _ = writeln!(out, "| figure | value | latency median / p99 |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| baseline: no-op request (`GET /healthz`), 1 connection | {:.0} req/s | {} |",
        c.noop.per_second,
        c.noop.latency.cell()
    );
    let _ = writeln!(
        out,
        "| sequential commands, one aggregate ({} events) | {:.0} commands/s ({:.0}% of baseline) | {} |",
        counts.commands,
        c.sequential.per_second,
        100.0 * c.sequential.per_second / c.noop.per_second,
        c.sequential.latency.cell()
    );
    let _ = writeln!(
        out,
        "| WebSocket push (POST start → frame received), {} events | {} baseline median | {} |",
        counts.pushes,
        latency_ratio(&c.push, &c.noop),
        c.push.cell()
    );
    let _ = writeln!(
        out,
        "| {} concurrent clients, own aggregate each | {:.0} commands/s ({:.0}% of baseline) | |",
        counts.clients,
        c.concurrent,
        100.0 * c.concurrent / c.noop.per_second
    );
    let _ = writeln!(
        out,
        "| sequential commands, every partition paused: no stream or read-model work ({} events) | {:.0} commands/s ({:.0}% of baseline) | {} |",
        counts.commands,
        c.paused.per_second,
        100.0 * c.paused.per_second / c.noop.per_second,
        c.paused.latency.cell()
    );
    let _ = writeln!(
        out,
        "| baseline again, at the end | {:.0} req/s | {} |",
        c.noop_after.per_second,
        c.noop_after.latency.cell()
    );
}

fn global_tables(out: &mut String, counts: &Counts, page: u32, g: &Global) {
    let n = counts.visible;
    let _ = writeln!(
        out,
        "The global stream and read models — a second Worker with `STREAM_PARTITIONS=1`. \
         \"vs no-op\" divides by that Worker's own baseline: a rate by its req/s, a latency \
         by its median.\n"
    );
    let _ = writeln!(out, "| figure | value | vs no-op | latency median / p99 |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| baseline: no-op request (`GET /healthz`), 1 connection | {:.0} req/s | 1× | {} |",
        g.noop.per_second,
        g.noop.latency.cell()
    );
    for (what, stats) in [
        ("visible on the aggregate's socket", &g.aggregate_socket),
        (
            "visible in the partition (`/v1/stream/ws`)",
            &g.stream_socket,
        ),
        (
            "read model visible (`board_summary` document socket)",
            &g.document_socket,
        ),
        (
            "read model visible (command, then `GET` with its consistency token)",
            &g.read_your_writes,
        ),
    ] {
        let _ = writeln!(
            out,
            "| commit → {what}, {n} commands | | {} | {} |",
            latency_ratio(stats, &g.noop),
            stats.cell()
        );
    }
    let _ = writeln!(
        out,
        "| fill: {} events, {} concurrent writers on their own boards | {:.0} commands/s | {} | |",
        counts.stream_events,
        counts.fill_clients,
        g.fill,
        rate_ratio(g.fill, &g.noop)
    );
    let _ = writeln!(
        out,
        "| … the partition holds all {} events, after the last answer | {:.0} ms | | |",
        g.head,
        g.stream_drained.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        out,
        "| … `board_summary` has applied them all, after the last answer | {:.0} ms | | |",
        g.projection_drained.as_secs_f64() * 1000.0
    );
    let rebuild_rate = measure::per_second(g.head as usize, g.rebuild.elapsed);
    let _ = writeln!(
        out,
        "| rebuild `board_summary` over {} events (POST → new generation serving alone) | {:.0} events/s ({:.1} s) | {} | |",
        g.head,
        rebuild_rate,
        g.rebuild.elapsed.as_secs_f64(),
        rate_ratio(rebuild_rate, &g.noop)
    );
    if let Some(reads) = &g.rebuild.reads {
        let _ = writeln!(
            out,
            "| … reads of one document meanwhile (slowest {:.0} ms, {} not 200); slowest status poll {:.0} ms | | {} | {} |",
            g.rebuild.slowest_read.as_secs_f64() * 1000.0,
            g.rebuild.failed_reads,
            g.rebuild.slowest_status.as_secs_f64() * 1000.0,
            latency_ratio(reads, &g.noop),
            reads.cell()
        );
    }
    let _ = writeln!(
        out,
        "| baseline after a restart with `STREAM_SEGMENT_EVENTS` = `STREAM_HOT_EVENTS` = {} | {:.0} req/s | | {} |",
        counts.segment_events,
        g.archived_noop.per_second,
        g.archived_noop.latency.cell()
    );
    let _ = writeln!(
        out,
        "| `POST …/partitions/0/archive`: {} segment(s) to R2, {} events left hot | {:.0} ms | | |",
        g.archived.segments,
        g.archived.hot_events,
        g.archived.elapsed.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        out,
        "| baseline after a restart with `EDGE_CACHE_ENABLED=false` | {:.0} req/s | | {} |",
        g.uncached_noop.per_second,
        g.uncached_noop.latency.cell()
    );

    let _ = writeln!(
        out,
        "\nReplay: the whole partition ({} events), `GET /v1/stream?partition=0&after=O&limit={page}` \
         page by page, every envelope decoded by the client. An archived page holds one segment \
         at most.\n",
        g.head
    );
    let _ = writeln!(
        out,
        "| read | encoding | events/s | vs no-op | bytes/event | pages (cache) | client decoding |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut row = |what: &str, replay: &Replay, baseline: &Rate| {
        let _ = writeln!(
            out,
            "| {what} | {} | {:.0} | {} | {:.0} | {} | {:.0}% |",
            replay.encoding.name(),
            replay.events_per_second(),
            rate_ratio(replay.events_per_second(), baseline),
            replay.bytes as f64 / replay.events as f64,
            replay.pages_cell(),
            100.0 * replay.decoding.as_secs_f64() / replay.elapsed.as_secs_f64()
        );
    };
    for replay in &g.hot {
        row("hot (SQLite)", replay, &g.noop);
    }
    row(
        "archived, first read (R2, then stored in KV)",
        &g.first_read,
        &g.archived_noop,
    );
    for replay in &g.cached {
        row("archived, again (KV edge cache)", replay, &g.archived_noop);
    }
    for replay in &g.uncached {
        row(
            "archived, cache off (R2 every page)",
            replay,
            &g.uncached_noop,
        );
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let counts = args.counts();
    let progress = Progress(Instant::now());
    // scripts/bench names itself (the command a reader runs); else our own arguments.
    let command = std::env::var("EDGELOOP_BENCH_COMMAND").unwrap_or_else(|_| {
        std::env::args()
            .skip(1)
            .fold("edgeloop-bench".to_owned(), |line, arg| line + " " + &arg)
    });
    let load_before = measure::load();
    let build = measure::build();

    let run_peer = !args.core_only && !args.no_peer && (args.peer || !args.quick);
    // The peer first: it runs alone, with nothing of ours running beside it.
    let peer = if run_peer {
        progress.say("peer and storage ceiling (bench/peer)");
        Some(peer::run(args.quick))
    } else {
        None
    };
    let mut issue = issue12::Counts::new(args.quick);
    issue.cold_events = args.cold_events.unwrap_or(issue.cold_events);
    issue.cold_rounds = args.cold_rounds.unwrap_or(issue.cold_rounds);
    let ceilings = if args.core_only {
        None
    } else {
        Some(issue12::ceilings(&issue, &progress).await)
    };
    let core = core(&counts, args.options(), &progress).await;
    let global = if args.core_only {
        None
    } else {
        Some(global(&counts, args.options(), args.page, &progress).await)
    };
    let figures = if args.core_only {
        None
    } else {
        Some(issue12::edgeloop(&issue, args.options(), &progress).await)
    };
    progress.say("done");

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## {} — {} (workerd via Miniflare, persisted to disk)\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        measure::machine()
    );
    let _ = writeln!(
        out,
        "`{command}` — took {:.0} s; load average {load_before} before, {} after; \
         Worker build {build}.\n",
        progress.0.elapsed().as_secs_f64(),
        measure::load()
    );
    core_table(&mut out, &counts, &core);
    if let Some(global) = &global {
        out.push('\n');
        global_tables(&mut out, &counts, args.page, global);
    }
    let (Some(ceilings), Some(figures)) = (ceilings, figures) else {
        print!("{out}");
        return;
    };
    let context = issue12::Context {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: measure::machine(),
        command,
        elapsed: progress.0.elapsed(),
        load_before,
        load_after: measure::load(),
        build,
        versions: issue12::versions(peer.as_ref()),
    };
    let report = issue12::report(&context, &issue, &ceilings, &figures, peer.as_ref(), &out);
    print!("{report}");
    let output = args
        .output
        .clone()
        .or_else(|| (!args.quick).then(|| tests::repo_root().join("BENCHMARKS.md")));
    if let Some(path) = output {
        std::fs::write(&path, &report)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        progress.say(&format!("wrote {}", path.display()));
    }
}
