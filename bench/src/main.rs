//! `edgeloop-bench`: measures the Worker on the runtime the tests use — workerd through
//! Miniflare, no proxy in front, Durable Object storage persisted to a temporary directory.
//!
//! Every figure is compared against a baseline taken in the same run on the same runtime
//! (the rate of a request that touches no Durable Object), because absolute numbers on a
//! shared 2-core machine move by 2× from one minute to the next; ratios move much less.
//!
//! Run: `scripts/bench` (builds first). Output: a Markdown table with the machine and the
//! date, ready to paste into `bench/RESULTS.md`.

use std::time::{Duration, Instant};

use clap::Parser;
use client::reqwest::{self, Method};
use client::{Client, Update};
use serde_json::{Value, json};
use tests::Worker;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks Edgeloop's Worker under workerd")]
struct Args {
    /// Requests for the no-op baseline (GET /healthz).
    #[arg(long, default_value_t = 3000)]
    noop: usize,
    /// Sequential commands on one aggregate.
    #[arg(long, default_value_t = 2000)]
    commands: usize,
    /// Commands timed from POST to the WebSocket frame.
    #[arg(long, default_value_t = 500)]
    pushes: usize,
    /// Concurrent clients for the concurrency figure (each on its own aggregate).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Commands per client in the concurrency figure.
    #[arg(long, default_value_t = 200)]
    per_client: usize,
}

/// Latency percentiles of a sample, in milliseconds.
struct Stats {
    median: f64,
    p99: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

struct Bench {
    client: Client,
}

impl Bench {
    /// One command through the client's raw layer: no idempotency key and no retries, so
    /// the figure is the server's cost alone, as in earlier results.
    async fn command(&self, id: &str, body: &Value) -> Duration {
        let started = Instant::now();
        let request = self
            .client
            .request(Method::POST, &format!("/v1/aggregates/board/{id}/commands"))
            .json(body);
        let reply = self.client.send(request).await.expect("command sent");
        assert!(
            reply.is_success(),
            "command failed: {} {}",
            reply.status,
            reply.text()
        );
        started.elapsed()
    }

    /// GET /healthz in a loop: the runtime's ceiling for one connection.
    async fn noop(&self, n: usize) -> (f64, Stats) {
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            self.client.get("/healthz").await.expect("healthz");
            samples.push(t.elapsed());
        }
        (n as f64 / started.elapsed().as_secs_f64(), stats(samples))
    }

    /// Sequential commands on one aggregate (each waits for the previous answer).
    async fn sequential(&self, id: &str, n: usize) -> (f64, Stats) {
        self.command(
            id,
            &json!({ "type": "CreateBoard", "data": { "title": "bench" } }),
        )
        .await;
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let body = json!({ "type": "AddCard", "data": { "card_id": format!("c{i}"), "title": "a card" } });
            samples.push(self.command(id, &body).await);
        }
        (n as f64 / started.elapsed().as_secs_f64(), stats(samples))
    }

    /// POST → the subscriber's frame, one command at a time.
    async fn push_latency(&self, id: &str, n: usize) -> Stats {
        self.command(
            id,
            &json!({ "type": "CreateBoard", "data": { "title": "push" } }),
        )
        .await;
        // The SDK's subscription: auto-acks in batches, as any client should.
        let mut subscription = self
            .client
            .subscribe("board", id, 1)
            .await
            .expect("subscribe");
        let first = subscription.next().await.expect("caught up");
        assert_eq!(first, Update::CaughtUp { version: 1 });
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let body = json!({ "type": "AddCard", "data": { "card_id": format!("p{i}"), "title": "a card" } });
            let started = Instant::now();
            let (_, event) = tokio::join!(self.command(id, &body), subscription.next_event());
            let event = event.expect("a pushed event");
            assert_eq!(event.data["card_id"], format!("p{i}"), "{event:?}");
            samples.push(started.elapsed());
        }
        stats(samples)
    }

    /// `clients` writers, each on its own aggregate, at once.
    async fn concurrent(&self, clients: usize, per_client: usize) -> f64 {
        let run = format!("{}", Instant::now().elapsed().as_nanos());
        let started = Instant::now();
        let writers = (0..clients).map(|c| {
            let id = format!("conc-{run}-{c}");
            async move {
                self.command(&id, &json!({ "type": "CreateBoard", "data": { "title": "c" } })).await;
                for i in 1..per_client {
                    let body = json!({ "type": "AddCard", "data": { "card_id": format!("c{i}"), "title": "a card" } });
                    self.command(&id, &body).await;
                }
            }
        });
        futures_util::future::join_all(writers).await;
        (clients * per_client) as f64 / started.elapsed().as_secs_f64()
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let worker = Worker::start();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .no_proxy()
        .build()
        .expect("http client");
    let client = Client::new(worker.url())
        .expect("the harness gives an http:// URL")
        .with_http(http)
        .with_token(worker.token("bench", "bench", "commands read"));
    let bench = Bench { client };
    // Warm up: the first requests compile the wasm and open the object.
    bench.noop(200).await;
    bench.sequential("warmup", 50).await;

    let (noop_rate, noop) = bench.noop(args.noop).await;
    let (seq_rate, seq) = bench.sequential("sequential", args.commands).await;
    let push = bench.push_latency("push", args.pushes).await;
    let conc_rate = bench.concurrent(args.clients, args.per_client).await;

    println!(
        "Measured {} on {} (workerd via Miniflare, persisted to disk).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    println!("| figure | value | latency median / p99 |");
    println!("|---|---|---|");
    println!(
        "| baseline: no-op request (`GET /healthz`), 1 connection | {noop_rate:.0} req/s | {:.2} / {:.2} ms |",
        noop.median, noop.p99
    );
    println!(
        "| sequential commands, one aggregate ({} events) | {seq_rate:.0} commands/s ({:.0}% of baseline) | {:.2} / {:.2} ms |",
        args.commands,
        100.0 * seq_rate / noop_rate,
        seq.median,
        seq.p99
    );
    println!(
        "| WebSocket push (POST start → frame received), {} events | | {:.2} / {:.2} ms |",
        args.pushes, push.median, push.p99
    );
    println!(
        "| {} concurrent clients, own aggregate each | {conc_rate:.0} commands/s | |",
        args.clients
    );
}
