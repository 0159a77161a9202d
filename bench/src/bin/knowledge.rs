//! `knowledge`: the figures of the feedback loop's inputs and the knowledge base, on the
//! runtime the tests use (workerd via Miniflare, no proxy), next to the runtime's no-op
//! request rate measured in the same run.
//!
//! * **Telemetry flood**: `--reports` error reports of `--groups` fingerprints, in batches of
//!   100 from 16 concurrent senders with a publishable ingest token: reports/s accepted, the
//!   events they became (and events/s over the flood), and the time until every count is
//!   recorded (`TELEMETRY_WINDOW_MS` is 1 s here; the default is 10 s).
//! * **Search over a large corpus**: `--documents` knowledge documents (pushes with
//!   generated commit messages, written through the batch route, 1,000 per request), the
//!   time the knowledge projector takes to index them, then `--queries` searches of one or
//!   two words, a phrase, or with a kind filter, one at a time: median and p99.
//! * **Triage with context**: the real `edgeloop agent triage` process on a labelled set of
//!   feedback — clusters of paraphrases of one problem and singletons — submitted one at a
//!   time: how many near-duplicates joined their cluster's card and how many distinct
//!   items were wrongly linked.
//!
//! Run: `cargo run --release -p bench --bin knowledge -- --help` (after `scripts/build`; the
//! triage agent is `target/debug/edgeloop` unless `--edgeloop` says otherwise).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tests::{Options, Worker};

#[derive(Debug, Parser)]
#[command(about = "Telemetry ingestion, knowledge search and triage-with-context figures")]
struct Args {
    /// Error reports in the flood.
    #[arg(long, default_value_t = 100_000)]
    reports: usize,
    /// Distinct errors (fingerprints) among them.
    #[arg(long, default_value_t = 5)]
    groups: usize,
    /// Knowledge documents for the search figures.
    #[arg(long, default_value_t = 100_000)]
    documents: usize,
    /// Searches timed.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Skip the triage set.
    #[arg(long)]
    no_triage: bool,
    /// The `edgeloop` binary that runs the triage agent.
    #[arg(long)]
    edgeloop: Option<PathBuf>,
    /// Requests of the no-op baseline.
    #[arg(long, default_value_t = 2_000)]
    noop: usize,
}

type Failure = Box<dyn std::error::Error>;

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

/// Words commit messages are made of (and searches look for).
const WORDS: &[&str] = &[
    "checkout",
    "payment",
    "board",
    "card",
    "column",
    "drag",
    "drop",
    "socket",
    "reconnect",
    "timeout",
    "retry",
    "cache",
    "render",
    "layout",
    "mobile",
    "safari",
    "firefox",
    "export",
    "import",
    "csv",
    "unicode",
    "emoji",
    "dark",
    "mode",
    "contrast",
    "settings",
    "login",
    "token",
    "refresh",
    "session",
    "archive",
    "comment",
    "label",
    "filter",
    "search",
    "index",
    "snapshot",
    "replay",
    "stream",
    "partition",
    "offset",
    "projection",
    "rebuild",
    "lease",
    "consumer",
    "agent",
    "triage",
    "feedback",
    "telemetry",
    "release",
    "deploy",
    "rollback",
    "migration",
    "schema",
    "upgrade",
    "latency",
    "memory",
    "leak",
    "crash",
    "race",
];

/// A group's name in letters only (`g` → "hk"), so no two groups share a fingerprint.
fn group_name(g: usize) -> String {
    let letters = b"ghjkmnpqrstuvwxyz";
    let mut n = g;
    let mut name = Vec::new();
    loop {
        name.push(letters[n % letters.len()]);
        n /= letters.len();
        if n == 0 {
            break;
        }
    }
    String::from_utf8(name).unwrap_or_default()
}

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }

    fn sentence(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| self.word())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

async fn noop_rate(http: &client::reqwest::Client, url: &str, n: usize) -> Result<f64, Failure> {
    let started = Instant::now();
    for _ in 0..n {
        http.get(format!("{url}/healthz"))
            .send()
            .await?
            .bytes()
            .await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn send(
    _http: &client::reqwest::Client,
    request: client::reqwest::RequestBuilder,
) -> Result<(u16, Value), Failure> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let worker = Worker::start_with(
        Options::new()
            .var("TELEMETRY_WINDOW_MS", 1_000)
            .var("TELEMETRY_RATE_PER_MINUTE", 100_000_000),
    );
    let url = worker.url().to_owned();
    let http = client::reqwest::Client::builder().no_proxy().build()?;
    let token = worker.token("bench", "bench", "commands read replay consume admin");
    let auth = format!("Bearer {token}");
    let noop = noop_rate(&http, &url, args.noop).await?;
    println!("# knowledge bench — {}", chrono::Utc::now().to_rfc3339());
    println!("no-op baseline: {noop:.0} req/s (1 connection)\n");

    // ── Telemetry flood ──────────────────────────────────────────────────────────────
    let ingest = format!("Bearer {}", worker.token("web-page", "bench", "ingest"));
    let batches = args.reports.div_ceil(100);
    let started = Instant::now();
    let answers: Vec<Result<(u16, Value), Failure>> =
        futures_util::stream::iter(0..batches)
            .map(|b| {
                let errors: Vec<Value> = (0..100.min(args.reports - b * 100))
                    .map(|i| {
                        // Groups differ by words (the fingerprint replaces numbers and hex
                        // ids); reports of one group differ by the numbers in them.
                        let g = group_name((b * 100 + i) % args.groups);
                        json!({"type": "TypeError",
                               "message": format!("cannot render {g} widget at item {}", b * 100 + i),
                               "stack": format!("TypeError: x\n    at render_{g} (https://app.example.com/app.js:{}:1)", i + 1)})
                    })
                    .collect();
                let request = http
                    .post(format!("{url}/v1/ingest/telemetry"))
                    .header("authorization", &ingest)
                    .header("content-type", "application/json")
                    .body(json!({ "errors": errors }).to_string());
                send(&http, request)
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let flood = started.elapsed();
    let mut groups = std::collections::BTreeSet::new();
    for answer in answers {
        let (status, body) = answer?;
        if status != 202 {
            return Err(format!("telemetry answered {status}: {body}").into());
        }
        for g in body["groups"].as_array().into_iter().flatten() {
            groups.insert(g.as_str().unwrap_or_default().to_owned());
        }
    }
    if groups.len() != args.groups {
        return Err(format!("{} fingerprints for {} groups", groups.len(), args.groups).into());
    }
    let events = loop {
        let mut total = 0;
        let mut events = 0;
        for g in &groups {
            let (status, state) = send(
                &http,
                http.get(format!("{url}/v1/aggregates/error_group/{g}"))
                    .header("authorization", &auth),
            )
            .await?;
            if status == 200 {
                total += state["state"]["total_count"].as_u64().unwrap_or(0);
                events += state["version"].as_u64().unwrap_or(0);
            }
        }
        if total as usize == args.reports {
            break events;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("the flood's counts never added up: {total}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let recorded = started.elapsed();
    println!(
        "## Telemetry flood ({} reports, {} groups, batches of 100, 16 senders)",
        args.reports,
        groups.len()
    );
    println!("| figure | value | vs no-op |\n|---|---|---|");
    let accepted = args.reports as f64 / flood.as_secs_f64();
    println!(
        "| reports accepted | {accepted:.0} reports/s ({:.0} requests/s) | {:.2}× |",
        batches as f64 / flood.as_secs_f64(),
        batches as f64 / flood.as_secs_f64() / noop
    );
    println!(
        "| events produced | {events} ({:.1} events/s over the flood; {:.4} events per report) | |",
        events as f64 / flood.as_secs_f64(),
        events as f64 / args.reports as f64
    );
    println!(
        "| every count recorded after | {:.2} s (flood {:.2} s; window 1 s) | |\n",
        recorded.as_secs_f64(),
        flood.as_secs_f64()
    );

    // ── Search over a large corpus ───────────────────────────────────────────────────
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let repositories = args.documents.div_ceil(10_000).max(1);
    let started = Instant::now();
    let mut written = 0;
    let mut last_token = String::new();
    while written < args.documents {
        let repo = format!("bench~repo{}", written / 10_000);
        let n = 1_000.min(args.documents - written);
        let commands: Vec<Value> = (0..n)
            .map(|i| {
                let k = written + i;
                json!({"type": "RecordPush", "data": {
                    "delivery_id": format!("d-{k}"),
                    "ref": "refs/heads/main",
                    "before": format!("{:040x}", k),
                    "after": format!("{:040x}", k + 1),
                    "pusher": "bench",
                    "commits": [{"id": format!("{:040x}", k + 1), "author": "bench",
                                 "message": format!("Fix {} in the {} {}", rng.sentence(2), rng.word(), rng.sentence(3))}],
                }})
            })
            .collect();
        let (status, body) = send(
            &http,
            http.post(format!("{url}/v1/aggregates/repository/{repo}/batch"))
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(json!({ "commands": commands }).to_string()),
        )
        .await?;
        if status != 200 {
            return Err(format!("batch answered {status}: {body}").into());
        }
        last_token = body["consistency_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        written += n;
    }
    let wrote = started.elapsed();
    // Indexed: a search with the last batch's token answers once the projector has it (the
    // wait is bounded per request, so ask until it answers 200).
    loop {
        let (status, _) = send(
            &http,
            http.get(format!(
                "{url}/v1/knowledge/search?q=fix&limit=1&consistency={last_token}"
            ))
            .header("authorization", &auth),
        )
        .await?;
        if status == 200 {
            break;
        }
        if started.elapsed() > Duration::from_secs(3_600) {
            return Err("the knowledge base never caught up".into());
        }
    }
    let indexed = started.elapsed();
    let mut samples: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut hits = 0;
    for q in 0..args.queries {
        let (kind, query) = match q % 4 {
            0 => ("one word", format!("q={}", rng.word())),
            1 => ("two words", format!("q={}%20{}", rng.word(), rng.word())),
            2 => ("a phrase", format!("q=%22in%20the%20{}%22", rng.word())),
            _ => (
                "two words, any, kind filter",
                format!("q={}%20{}&match=any&kinds=push", rng.word(), rng.word()),
            ),
        };
        let t = Instant::now();
        let (status, body) = send(
            &http,
            http.get(format!("{url}/v1/knowledge/search?{query}&limit=10"))
                .header("authorization", &auth),
        )
        .await?;
        let took = t.elapsed();
        if status != 200 {
            return Err(format!("search answered {status}: {body}").into());
        }
        hits += body["results"].as_array().map_or(0, Vec::len);
        samples.entry(kind).or_default().push(took);
    }
    println!(
        "## Knowledge search over {} documents ({} repositories, written in batches of 1,000)",
        args.documents, repositories
    );
    println!(
        "written in {:.1} s ({:.0} events/s); indexed (searchable) after {:.1} s ({:.0} documents/s)\n",
        wrote.as_secs_f64(),
        args.documents as f64 / wrote.as_secs_f64(),
        indexed.as_secs_f64(),
        args.documents as f64 / indexed.as_secs_f64()
    );
    println!("| query | n | median ms | p99 ms |\n|---|---|---|---|");
    let mut all = Vec::new();
    for (kind, mut times) in samples {
        times.sort();
        println!(
            "| {kind} | {} | {:.2} | {:.2} |",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "| all | {} | {:.2} | {:.2} |",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    println!(
        "(no-op request: {:.2} ms; {:.1} results per search on average)\n",
        1000.0 / noop,
        hits as f64 / args.queries.max(1) as f64
    );

    if !args.no_triage {
        triage(&args, &worker, &http, &url).await?;
    }
    Ok(())
}

/// The labelled set: clusters of paraphrases (the first of each makes the card; the others
/// should join it) and singletons (each should get a card of its own).
const CLUSTERS: &[&[&str]] = &[
    &[
        "The checkout button does nothing on mobile Safari",
        "Checkout button not working on Safari mobile",
        "Tapping the checkout button on mobile Safari does nothing",
    ],
    &[
        "Exporting a board to CSV loses unicode characters",
        "CSV export breaks unicode characters in card titles",
        "Unicode characters are lost when I export the board to CSV",
    ],
    &[
        "Dark mode text is unreadable in the settings page",
        "The settings page is unreadable in dark mode",
    ],
    &[
        "Cards disappear after dragging them to the Done column",
        "Dragging a card to Done makes the card disappear",
    ],
    &[
        "Login fails with an expired token error after an hour",
        "After an hour login fails saying the token expired",
    ],
];
const SINGLETONS: &[&str] = &[
    "Please add keyboard shortcuts for moving cards",
    "The board loads slowly when it has many columns",
    "Comments should support markdown formatting",
    "I would like email notifications when a card is archived",
    "Labels need more colours to choose from",
];

async fn triage(
    args: &Args,
    worker: &Worker,
    http: &client::reqwest::Client,
    url: &str,
) -> Result<(), Failure> {
    let tenant = "bench-triage";
    let token = worker.token("bench", tenant, "consume commands read");
    let auth = format!("Bearer {token}");
    let binary = args.edgeloop.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/edgeloop")
    });
    let mut agent = Command::new(&binary)
        .args(["agent", "triage", "--url", url, "--board", "triage"])
        .env("EDGELOOP_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut items: Vec<(Option<usize>, &str)> = Vec::new();
    // Interleaved: every cluster's first item, the singletons, then the paraphrases.
    for (c, cluster) in CLUSTERS.iter().enumerate() {
        items.push((Some(c), cluster[0]));
    }
    items.extend(SINGLETONS.iter().map(|s| (None, *s)));
    for (c, cluster) in CLUSTERS.iter().enumerate() {
        items.extend(cluster[1..].iter().map(|s| (Some(c), *s)));
    }
    let mut cards: Vec<(Option<usize>, String, String)> = Vec::new();
    for (n, (cluster, text)) in items.iter().enumerate() {
        let id = format!("fb-{n}");
        let (status, body) = send(
            http,
            http.post(format!("{url}/v1/aggregates/feedback/{id}/commands"))
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(
                    json!({"type": "SubmitFeedback", "data": {"text": text, "source": "bench"}})
                        .to_string(),
                ),
        )
        .await?;
        if status != 200 {
            return Err(format!("feedback answered {status}: {body}").into());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let triaged = loop {
            let (_, state) = send(
                http,
                http.get(format!("{url}/v1/aggregates/feedback/{id}"))
                    .header("authorization", &auth),
            )
            .await?;
            if state["state"]["status"] == "triaged" {
                break state;
            }
            if Instant::now() > deadline {
                let _ = agent.kill();
                return Err(format!("{id} was never triaged").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let card = triaged["state"]["triage"]["card_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Let the card reach the knowledge base before the next item is decided.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cards.push((*cluster, (*text).to_owned(), card));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    // Each item's identity: its cluster, or itself for a singleton.
    let identity = |n: usize, cluster: &Option<usize>| match cluster {
        Some(c) => format!("cluster-{c}"),
        None => format!("single-{n}"),
    };
    let mut by_card: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (n, (cluster, _, card)) in cards.iter().enumerate() {
        by_card
            .entry(card)
            .or_default()
            .insert(identity(n, cluster));
    }
    // Wrongly linked: items of another problem on a card (each card's identities beyond one).
    let wrong_links: usize = by_card.values().map(|ids| ids.len() - 1).sum();
    let mut joined = 0;
    let mut paraphrases = 0;
    let mut first_card: BTreeMap<usize, &str> = BTreeMap::new();
    for (cluster, _, card) in &cards {
        if let Some(c) = cluster {
            match first_card.get(c) {
                None => {
                    first_card.insert(*c, card);
                }
                Some(first) => {
                    paraphrases += 1;
                    joined += usize::from(first == card);
                }
            }
        }
    }
    let distinct = by_card.len();
    println!(
        "## Triage with the knowledge base ({} feedback items: {} clusters, {} singletons)",
        cards.len(),
        CLUSTERS.len(),
        SINGLETONS.len()
    );
    println!("| figure | value |\n|---|---|");
    println!("| paraphrases that joined their cluster's card | {joined} of {paraphrases} |");
    println!("| items of a different problem linked onto a card | {wrong_links} |");
    println!(
        "| cards made | {distinct} (ideal: {}) |",
        CLUSTERS.len() + SINGLETONS.len()
    );
    Ok(())
}
