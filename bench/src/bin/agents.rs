//! `agents`: the agent-loop figures of issue 9, on the runtime the tests use (workerd via
//! Miniflare, no proxy), next to the runtime's no-op request rate measured in the same run.
//!
//! * feedback submitted → its triage card visible: the real `edgeloop agent triage` process
//!   consumes `FeedbackSubmitted`; the time runs from the `SubmitFeedback` request's start to
//!   the `CardAdded` frame on a socket of the triage board (median, p99);
//! * one consumer group's throughput, events/s, with one and with two consumers (the client
//!   crate's `Agent` with a handler that only acks), over `CardAdded` events written in
//!   batches beforehand.
//!
//! Run: `cargo run --release -p bench --bin agents -- --help` (after `scripts/build`; the
//! triage agent is `target/debug/edgeloop` unless `--edgeloop` says otherwise).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use client::agent::Agent;
use client::{Client, GroupSettings, Update};
use serde_json::json;
use tests::Worker;

#[derive(Debug, Parser)]
#[command(about = "Agent-loop figures: feedback → triage card latency, consumer-group throughput")]
struct Args {
    /// Feedback items timed end to end (sequentially).
    #[arg(long, default_value_t = 100)]
    feedback: usize,
    /// Events a consumer group consumes for the throughput figures.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// The `edgeloop` binary that runs the triage agent.
    #[arg(long)]
    edgeloop: Option<PathBuf>,
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
    let worker = Worker::start();
    let token = worker.token("bench", "bench", "commands read replay consume admin");
    let edgeloop = Client::new(worker.url())?.with_token(token.clone());

    // Baseline: the runtime's no-op request rate, this run.
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

    // Feedback → triage card, through the real triage agent process.
    let binary = args.edgeloop.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/edgeloop")
    });
    let mut agent = Command::new(&binary)
        .args([
            "agent",
            "triage",
            "--url",
            worker.url(),
            "--board",
            "triage",
        ])
        .env("EDGELOOP_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    // The agent creates the board; wait for it, then follow it live.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut board = loop {
        match edgeloop.subscribe("board", "triage", 0).await {
            Ok(subscription) => break subscription,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut latencies = Vec::new();
    for n in 0..args.feedback {
        let id = format!("bench-fb-{n}-{}", std::process::id());
        let started = Instant::now();
        edgeloop
            .command(
                "feedback",
                &id,
                &json!({"type": "SubmitFeedback", "data": {"text": format!("the app crashes ({n})"), "source": "bench"}}),
            )
            .await?;
        // The triage decision on the board: the feedback's own card, or (a near-duplicate of
        // an earlier item, as these texts are) a comment naming it on that item's card.
        let card = format!("fb-{id}");
        loop {
            if let Update::Event(event) = board.next().await? {
                let own_card =
                    event.event_type == "CardAdded" && event.data["card_id"] == card.as_str();
                let linked = event.event_type == "CardCommented"
                    && event.data["text"]
                        .as_str()
                        .is_some_and(|text| text.contains(&format!("feedback {id}:")));
                if own_card || linked {
                    break;
                }
            }
        }
        latencies.push(started.elapsed());
    }
    let _ = agent.kill();
    let _ = agent.wait();
    latencies.sort();

    // One group's throughput with one and with two consumers.
    let per_board = 100;
    let boards = args.events.div_ceil(per_board);
    for b in 0..boards {
        let mut commands = vec![json!({"type": "CreateBoard", "data": {"title": "load"}})];
        commands.extend((0..per_board - 1).map(
            |c| json!({"type": "AddCard", "data": {"card_id": format!("c{c}"), "title": "t"}}),
        ));
        let path = format!("/v1/aggregates/board/load-{b}/batch");
        let reply = edgeloop
            .send(
                edgeloop
                    .request(client::reqwest::Method::POST, &path)
                    .json(&json!({"commands": commands})),
            )
            .await?;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let total = boards * per_board;
    // Wait until the stream has them all.
    let deadline = Instant::now() + Duration::from_secs(300);
    while edgeloop
        .partitions()
        .await?
        .iter()
        .map(|p| p.head)
        .sum::<u64>()
        < (total + args.feedback * 3) as u64
    {
        assert!(Instant::now() < deadline, "the stream never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut throughput = Vec::new();
    for consumers in [1usize, 2] {
        let group = format!("load-{consumers}");
        let settings = GroupSettings::default().aggregate_type("board").types([
            "CreateBoard",
            "BoardCreated",
            "CardAdded",
        ]);
        edgeloop.create_group(&group, &settings).await?;
        let started = Instant::now();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut running = Vec::new();
        for c in 0..consumers {
            let agent = Agent::new(edgeloop.clone(), group.clone(), format!("load-{c}"))
                .max_events(100)
                .poll_wait(Duration::from_millis(500))
                .handler(|_ctx, _event| async { Ok(()) });
            let mut stopped = stopped.clone();
            running.push(tokio::spawn(async move {
                agent
                    .run_until(async move {
                        let _ = stopped.changed().await;
                    })
                    .await
            }));
        }
        loop {
            if edgeloop.group(&group).await?.lag() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let _ = stop.send(true);
        for task in running {
            let _ = task.await;
        }
        throughput.push((consumers, total as f64 / elapsed.as_secs_f64()));
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "## {} — {} cores, {cpu} (agents, workerd via Miniflare)\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "`cargo run --release -p bench --bin agents -- --feedback {} --events {}`\n",
        args.feedback, args.events
    );
    println!("| figure | value | vs no-op baseline |\n|---|---|---|");
    println!(
        "| baseline: no-op request (`GET /healthz`), 1 connection | {noop_rate:.0} req/s | 1.00 |"
    );
    println!(
        "| feedback submitted → triage decision visible on the board (its card, or a comment on a near-duplicate's card; {} items, `edgeloop agent triage`) | median {:.1} ms, p99 {:.1} ms | median = {:.1} no-op requests |",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.5) / (1000.0 / noop_rate)
    );
    for (consumers, rate) in throughput {
        println!(
            "| one group, {consumers} consumer{} (ack-only handler), {total} events | {rate:.0} events/s | {:.2}× |",
            if consumers == 1 { "" } else { "s" },
            rate / noop_rate
        );
    }
    Ok(())
}
