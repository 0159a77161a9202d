//! `edgeloop-peer-bench`: the baselines edgeloop-bench sets Edgeloop's figures beside,
//! for the parts that need heavy native dependencies (kept out of the product's workspace):
//!
//! * the storage ceiling — SQLite directly (rusqlite, WAL, `synchronous=FULL` and
//!   `NORMAL`): one row per transaction, 100 rows per transaction, a full scan with
//!   MessagePack decoding;
//! * the peer — the same board commands through `cqrs-es` + `postgres-es` on a local
//!   PostgreSQL 15 that this program starts (initdb + pg_ctl in a temporary directory, a
//!   free port, fsync on) and always stops: sequential commands on one aggregate without
//!   and with snapshots (rate per window as its log grows), 16 clients on one aggregate
//!   with optimistic retries (conflicts per success), 16 clients over 100 aggregates.
//!
//! Prints one JSON object on stdout; progress goes to stderr.
//! `cargo run --release --manifest-path bench/peer/Cargo.toml -- [--quick] [--sqlite-only]`

mod board;
mod pg;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use cqrs_es::AggregateError;
use postgres_es::{PostgresCqrs, postgres_cqrs, postgres_snapshot_cqrs};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};

use board::{Board, BoardCommand};

#[derive(Debug, Parser)]
#[command(about = "Baselines for edgeloop-bench: SQLite directly, and cqrs-es on PostgreSQL")]
struct Args {
    /// Small counts (CI): a few seconds.
    #[arg(long)]
    quick: bool,
    /// Only the SQLite figures; no PostgreSQL.
    #[arg(long)]
    sqlite_only: bool,
    /// Sequential commands on one aggregate, each configuration [default: 3000; --quick: 200].
    #[arg(long)]
    commands: Option<usize>,
    /// Commands per window of the log-growth figure [default: 1000; --quick: 100].
    #[arg(long)]
    window: Option<usize>,
    /// Snapshot every N events, for the configuration with snapshots.
    #[arg(long, default_value_t = 100)]
    snapshot_every: usize,
    /// Concurrent clients for the contended and spread figures.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Successful commands in the contended figure [default: 800; --quick: 80].
    #[arg(long)]
    contended: Option<usize>,
    /// Commands in the spread figure (over 100 aggregates) [default: 3200; --quick: 320].
    #[arg(long)]
    spread: Option<usize>,
}

/// Latency percentiles in ms.
fn stats(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    json!({ "median_ms": at(0.5), "p99_ms": at(0.99) })
}

async fn pool(url: &str, connections: u32) -> Pool<Postgres> {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
        .await
        .expect("connect to PostgreSQL")
}

async fn schema(pool: &Pool<Postgres>) {
    // postgres-es's own schema (its db/init.sql), nothing added.
    for statement in [
        "CREATE TABLE events (
            aggregate_type text NOT NULL, aggregate_id text NOT NULL,
            sequence bigint CHECK (sequence >= 0) NOT NULL,
            event_type text NOT NULL, event_version text NOT NULL,
            payload json NOT NULL, metadata json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE snapshots (
            aggregate_type text NOT NULL, aggregate_id text NOT NULL,
            last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
            current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
            payload json NOT NULL,
            PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .expect("create the schema");
    }
}

fn add_card(i: usize) -> BoardCommand {
    BoardCommand::AddCard {
        card_id: format!("c{i}"),
        title: "a card".into(),
    }
}

fn comment() -> BoardCommand {
    BoardCommand::CommentOnCard {
        card_id: "c0".into(),
        author: "bench".into(),
        text: "a comment".into(),
    }
}

async fn create(cqrs: &PostgresCqrs<Board>, id: &str) {
    cqrs.execute(
        id,
        BoardCommand::CreateBoard {
            title: "bench".into(),
        },
    )
    .await
    .expect("CreateBoard");
}

/// Sequential `CommentOnCard` commands on one fresh board with card `c0` (what
/// edgeloop-bench sends): rate, latency, rate per window as the log grows.
async fn sequential(cqrs: &PostgresCqrs<Board>, id: &str, n: usize, window: usize) -> Value {
    create(cqrs, id).await;
    cqrs.execute(id, add_card(0)).await.expect("AddCard");
    let mut samples = Vec::with_capacity(n);
    let mut windows = Vec::new();
    let started = Instant::now();
    let mut window_started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        cqrs.execute(id, comment()).await.expect("CommentOnCard");
        samples.push(t.elapsed());
        if (i + 1) % window == 0 {
            windows.push(json!({
                "events": i + 3,
                "per_second": window as f64 / window_started.elapsed().as_secs_f64(),
            }));
            window_started = Instant::now();
        }
    }
    json!({
        "commands": n,
        "per_second": n as f64 / started.elapsed().as_secs_f64(),
        "latency": stats(samples),
        "windows": windows,
    })
}

/// Runs `command` until it succeeds, retrying on optimistic-concurrency conflicts;
/// returns the conflicts it met.
async fn with_retries(
    cqrs: &PostgresCqrs<Board>,
    id: &str,
    command: fn() -> BoardCommand,
) -> usize {
    let mut conflicts = 0;
    loop {
        match cqrs.execute(id, command()).await {
            Ok(()) => return conflicts,
            Err(AggregateError::AggregateConflict) => conflicts += 1,
            Err(e) => panic!("command failed: {e}"),
        }
    }
}

/// `clients` writers on one aggregate until `successes` commands succeeded in all.
async fn contended(cqrs: Arc<PostgresCqrs<Board>>, clients: usize, successes: usize) -> Value {
    let id = "contended";
    create(&cqrs, id).await;
    cqrs.execute(id, add_card(0)).await.expect("AddCard");
    let left = Arc::new(AtomicUsize::new(successes));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (cqrs, left, conflicts) = (cqrs.clone(), left.clone(), conflicts.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let t = Instant::now();
                    conflicts.fetch_add(with_retries(&cqrs, id, comment).await, Ordering::SeqCst);
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("a client"));
    }
    let elapsed = started.elapsed();
    let conflicts = conflicts.load(Ordering::SeqCst);
    json!({
        "clients": clients,
        "successes": successes,
        "per_second": successes as f64 / elapsed.as_secs_f64(),
        "conflicts": conflicts,
        "conflicts_per_success": conflicts as f64 / successes as f64,
        "latency": stats(samples),
    })
}

/// `clients` writers over 100 aggregates (client c writes aggregates c, c+clients, … mod
/// 100), `total` commands in all.
async fn spread(cqrs: Arc<PostgresCqrs<Board>>, clients: usize, total: usize) -> Value {
    for a in 0..100 {
        let id = format!("spread-{a}");
        create(&cqrs, &id).await;
        cqrs.execute(&id, add_card(0)).await.expect("AddCard");
    }
    let per_client = total / clients;
    let conflicts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (cqrs, conflicts) = (cqrs.clone(), conflicts.clone());
            tokio::spawn(async move {
                for i in 0..per_client {
                    let id = format!("spread-{}", (c + i * clients) % 100);
                    conflicts.fetch_add(with_retries(&cqrs, &id, comment).await, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    let commands = per_client * clients;
    json!({
        "clients": clients,
        "aggregates": 100,
        "commands": commands,
        "per_second": commands as f64 / started.elapsed().as_secs_f64(),
        "conflicts": conflicts.load(Ordering::SeqCst),
    })
}

async fn peer(args: &Args) -> Value {
    let pick = |given: Option<usize>, full: usize, quick: usize| {
        given.unwrap_or(if args.quick { quick } else { full })
    };
    let commands = pick(args.commands, 3000, 200);
    let window = pick(args.window, 1000, 100);
    eprintln!("peer: starting PostgreSQL");
    let postgres = pg::Postgres::start();
    let pool = pool(&postgres.url(), args.clients as u32 + 4).await;
    schema(&pool).await;
    let plain = postgres_cqrs::<Board>(pool.clone(), vec![], ());
    let snapshots = Arc::new(postgres_snapshot_cqrs::<Board>(
        pool.clone(),
        vec![],
        args.snapshot_every,
        (),
    ));
    // Warm-up: connections open, statements prepared.
    sequential(&plain, "warmup", 20, 20).await;
    eprintln!("peer: sequential, no snapshots");
    let seq_plain = sequential(&plain, "sequential", commands, window).await;
    eprintln!("peer: sequential, snapshots every {}", args.snapshot_every);
    let seq_snap = sequential(&snapshots, "sequential-snap", commands, window).await;
    eprintln!("peer: {} clients on one aggregate", args.clients);
    let contended = contended(
        snapshots.clone(),
        args.clients,
        pick(args.contended, 800, 80),
    )
    .await;
    eprintln!("peer: {} clients over 100 aggregates", args.clients);
    let spread = spread(
        snapshots.clone(),
        args.clients,
        pick(args.spread, 3200, 320),
    )
    .await;
    pool.close().await;
    let version = postgres.version.clone();
    drop(postgres);
    json!({
        "postgres": version,
        "cqrs_es": "0.5.0",
        "postgres_es": "0.5.0",
        "snapshot_every": args.snapshot_every,
        "sequential": seq_plain,
        "sequential_snapshots": seq_snap,
        "contended": contended,
        "spread": spread,
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    pg::stop_on_signal();
    let pick = |full: usize, quick: usize| if args.quick { quick } else { full };
    let sqlite = sqlite::run(&sqlite::Counts {
        single_full: pick(3000, 300),
        single_normal: pick(20_000, 2000),
        batched: pick(200_000, 20_000),
    });
    let peer = if args.sqlite_only {
        Value::Null
    } else {
        peer(&args).await
    };
    println!("{}", json!({ "sqlite": sqlite, "peer": peer }));
}
