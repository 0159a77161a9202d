//! Agent loops against workerd: the `edgeloop agent triage` binary, and the SDK's `Agent`
//! over a real consumer group.
//!
//! * Two triage agents share one group while 300 feedback items arrive; one is SIGKILLed
//!   midway. Every item ends triaged exactly once, the board holds exactly one card per item,
//!   and every card's `CardAdded` is caused by its feedback's event, in its flow.
//! * A handler that fails on one event: the event is retried up to the group's limit,
//!   parked, visible in the group's status and parked listing, and succeeds when replayed
//!   after the fix; other partitions kept flowing meanwhile, and its own partition's later
//!   events waited for it, as the ordering guarantee says.
//!
//! The binary is built once per run (`cargo build -q -p cli --bin edgeloop`): it belongs to
//! another crate, so Cargo does not build it for these tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use client::agent::{Agent, AgentOptions, Context, HandlerError};
use client::{EventEnvelope, GroupSettings, Replay};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tests::{Client, TENANT, Worker, cmd, repo_root, unique_id};

/// Waits until `done` answers `Some`, at most `limit`; panics with `what` otherwise.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut done: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = done().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits feedback `ids[i]` with `text(i)`; answers each one's `FeedbackSubmitted` envelope.
async fn submit(c: &Client, ids: &[String], text: impl Fn(usize) -> String) -> Vec<Value> {
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let done = c
            .ok(
                "feedback",
                id,
                cmd(
                    "SubmitFeedback",
                    json!({"text": text(i), "source": "web", "severity": "high"}),
                ),
            )
            .await;
        events.push(done["events"][0].clone());
    }
    events
}

/// What the poisoned handler saw: per aggregate, each delivery's attempt, partition and
/// time, in the order handled.
#[derive(Debug, Clone)]
struct Seen {
    aggregate_id: String,
    partition: u32,
    offset: u64,
    attempt: u32,
    at: Instant,
    ok: bool,
}

#[tokio::test]
async fn a_failing_event_is_retried_parked_and_replayed_while_other_partitions_flow() {
    let worker = Worker::start();
    let c = worker.client();
    let ids: Vec<String> = (0..40).map(|i| unique_id(&format!("poison{i}"))).collect();
    submit(&c, &ids, |i| format!("item {i}")).await;
    let poison = ids[17].clone();

    let sdk = worker.sdk();
    let group = "poisoned";
    assert!(
        sdk.create_group(
            group,
            &GroupSettings::default()
                .aggregate_type("feedback")
                .types(["FeedbackSubmitted"])
                .max_attempts(3)
                .retry_backoff_ms(1000)
                .lease_ms(10_000),
        )
        .await
        .unwrap(),
        "created"
    );

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let agent = {
        let (seen, fixed, poison) = (Arc::clone(&seen), Arc::clone(&fixed), poison.clone());
        Agent::new(sdk.clone(), group, "only")
            .options(AgentOptions {
                poll_wait: Duration::from_secs(1),
                ..AgentOptions::default()
            })
            .handler(move |ctx: Context, event: EventEnvelope| {
                let ok = event.aggregate_id != poison || fixed.load(Ordering::SeqCst);
                seen.lock().unwrap().push(Seen {
                    aggregate_id: event.aggregate_id.clone(),
                    partition: ctx.position().partition,
                    offset: ctx.position().offset,
                    attempt: ctx.attempt(),
                    at: Instant::now(),
                    ok,
                });
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err(HandlerError::retry("poisoned on purpose"))
                    }
                }
            })
    };
    let stats = agent.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.run_until(async {
        let _ = stopped.await;
    }));

    // Parked after its third attempt, visible in the status and the parked listing.
    let status = until(
        "the poisoned event to be parked",
        Duration::from_secs(60),
        || async {
            let status = sdk.group(group).await.unwrap();
            (status.parked == 1).then_some(status)
        },
    )
    .await;
    assert_eq!(status.settings.max_attempts, 3);
    let parked = sdk.parked(group).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].attempts, 3);
    assert_eq!(parked[0].reason.as_deref(), Some("poisoned on purpose"));
    let parked_event = parked[0].event.clone().expect("the parked event");
    assert_eq!(parked_event.aggregate_id, poison);

    // Everything else is handled (the parked event no longer blocks its partition).
    until("every other item", Duration::from_secs(60), || async {
        let handled: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.aggregate_id.clone())
            .collect();
        (handled.len() == ids.len() - 1).then_some(())
    })
    .await;
    let log = seen.lock().unwrap().clone();
    let attempts: Vec<u32> = log
        .iter()
        .filter(|s| s.aggregate_id == poison)
        .map(|s| s.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3], "retried up to the limit, then parked");
    let tries: Vec<&Seen> = log.iter().filter(|s| s.aggregate_id == poison).collect();
    let (first_try, last_try) = (tries[0].at, tries[2].at);
    assert!(
        last_try - first_try >= Duration::from_millis(2500),
        "the server's backoff (1 s, then 2 s) spaced the attempts: {:?}",
        last_try - first_try
    );
    let poisoned = (tries[0].partition, tries[0].offset);
    for other in log.iter().filter(|s| s.aggregate_id != poison) {
        if other.partition != poisoned.0 {
            // Other partitions flowed while the poisoned event was backing off.
            assert!(
                other.at < last_try,
                "{} on partition {} waited for the poisoned event",
                other.aggregate_id,
                other.partition
            );
        } else if other.offset > poisoned.1 {
            // Its own partition's later events waited until it was settled (parked).
            assert!(
                other.at > last_try,
                "{} overtook the retried event in its partition",
                other.aggregate_id
            );
        }
    }
    let handled_once: HashMap<&str, usize> =
        log.iter()
            .filter(|s| s.ok)
            .fold(HashMap::new(), |mut counts, s| {
                *counts.entry(s.aggregate_id.as_str()).or_default() += 1;
                counts
            });
    assert!(handled_once.values().all(|n| *n == 1), "{handled_once:?}");

    // After the fix, a replay delivers it again with a fresh set of attempts, and it is done.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(sdk.replay_parked(group, &Replay::All).await.unwrap(), 1);
    until(
        "the replayed event to be handled",
        Duration::from_secs(30),
        || async {
            let last = seen.lock().unwrap().last().cloned()?;
            (last.aggregate_id == poison && last.ok).then_some(())
        },
    )
    .await;
    let status = until("the group to settle", Duration::from_secs(30), || async {
        let status = sdk.group(group).await.unwrap();
        (status.lag() == 0 && status.parked == 0).then_some(status)
    })
    .await;
    assert!(status.partitions.iter().all(|p| p.in_flight == 0));
    let replayed = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        replayed.attempt, 1,
        "a replay starts a fresh set of attempts"
    );

    let _ = stop.send(());
    let counts = running.await.unwrap().unwrap();
    assert_eq!(counts.acked, ids.len() as u64);
    assert_eq!((counts.retried, counts.parked), (2, 1));
    assert_eq!(counts.delivered, ids.len() as u64 + 3);
    assert_eq!(stats.snapshot(), counts);
}

// ---- the triage agent binary ----------------------------------------------------------------

/// The `edgeloop` binary, built on first use.
fn edgeloop() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "cli", "--bin", "edgeloop"])
            .current_dir(repo_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p cli failed: {status}");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        let binary = target.join("debug/edgeloop");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// One `edgeloop agent triage` process, its logs in a file.
struct TriageAgent {
    name: String,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl TriageAgent {
    /// An agent of `tenant` in `group`, with extra command-line arguments.
    fn start_with(
        worker: &Worker,
        tenant: &str,
        group: &str,
        name: &str,
        board: &str,
        args: &[&str],
    ) -> TriageAgent {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let token = worker.token(name, tenant, "consume commands read");
        let child = Command::new(edgeloop())
            .args(["agent", "triage", "--url", worker.url()])
            .args(["--group", group, "--board", board, "--consumer", name])
            .args(args)
            .env("EDGELOOP_TOKEN", token)
            .env("EDGELOOP_LOG", "info")
            .env_remove("AGENT_LLM_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(File::create(log.path()).unwrap()))
            .spawn()
            .expect("start edgeloop agent triage");
        TriageAgent {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// SIGTERM, then waits (at most `limit`) for a clean exit; answers what it printed.
    fn stop(mut self, limit: Duration) -> (String, String) {
        kill(self.pid(), Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} ignored SIGTERM: {}", self.name, self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        assert!(
            status.success(),
            "{} exited {status}: {}",
            self.name,
            self.logs()
        );
        (stdout, self.logs())
    }
}

impl Drop for TriageAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The board's cards (id → card).
async fn cards(c: &Client, board: &str) -> serde_json::Map<String, Value> {
    let state = c.state("board", board, "").await;
    if state.status == 404 {
        return serde_json::Map::new();
    }
    state.expect(200)["state"]["cards"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn two_triage_agents_one_killed_midway_triage_300_items_exactly_once() {
    const ITEMS: usize = 300;
    let started = Instant::now();
    edgeloop();
    let worker = Worker::start();
    let c = worker.client();
    let board = "triage";
    // A short lease, so the killed agent's batch comes back within seconds. The agents find
    // the group and use it as it is.
    worker
        .sdk()
        .create_group(
            "triage",
            &GroupSettings::default()
                .aggregate_type("feedback")
                .types(["FeedbackSubmitted"])
                .lease_ms(3000),
        )
        .await
        .unwrap();
    // Every item gets its own card: the texts repeat a few templates (numbered), which the
    // knowledge base would otherwise link as near-duplicates (tested on its own below).
    let no_linking = ["--link-threshold", "2"];
    let doomed = TriageAgent::start_with(&worker, TENANT, "triage", "agent-a", board, &no_linking);
    let survivor =
        TriageAgent::start_with(&worker, TENANT, "triage", "agent-b", board, &no_linking);

    // 300 items from 6 writers; every third one in a flow of its own (a correlation id).
    let ids: Vec<String> = (0..ITEMS).map(|i| unique_id(&format!("fb{i}"))).collect();
    let texts = [
        "The app crashes when I upload a photo",
        "Search is slow, it takes forever",
        "The settings menu is confusing",
        "How do I export my data?",
        "It would be nice to have a calendar view",
        "Thanks, great product",
    ];
    let numbered: Vec<(usize, String)> = ids.iter().cloned().enumerate().collect();
    let writers: Vec<_> = numbered
        .chunks(ITEMS / 6)
        .map(|chunk| {
            let (c, chunk) = (worker.client(), chunk.to_vec());
            tokio::spawn(async move {
                let mut submitted = Vec::new();
                for (n, id) in chunk {
                    let severity = ["low", "medium", "high"][n % 3];
                    let text = format!("{} (#{n})", texts[n % texts.len()]);
                    let mut body = cmd(
                        "SubmitFeedback",
                        json!({"text": text, "source": "web", "severity": severity}),
                    );
                    if n % 3 == 0 {
                        body["correlation_id"] = json!(format!("flow-{n}"));
                    }
                    let done = c.ok("feedback", &id, body).await;
                    submitted.push((id, done["events"][0].clone()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                submitted
            })
        })
        .collect();

    // Midway — some cards on the board, items still arriving, a batch in agent A's hands —
    // agent A dies without a word.
    let sdk = worker.sdk();
    until(
        "agent A holding a batch past 80 cards",
        Duration::from_secs(60),
        || async {
            let busy = sdk
                .group("triage")
                .await
                .unwrap()
                .partitions
                .iter()
                .any(|p| p.leased_by.as_deref() == Some("agent-a") && p.in_flight > 0);
            (busy && cards(&c, board).await.len() >= 80).then_some(())
        },
    )
    .await;
    let mut doomed = doomed;
    doomed.child.kill().expect("SIGKILL agent A");
    doomed.child.wait().unwrap();
    let killed_at = cards(&c, board).await.len();
    assert!(
        killed_at < ITEMS,
        "agent A was killed after the work was done"
    );
    // What it held unanswered comes back to agent B once the lease runs out.
    let orphaned: u64 = sdk
        .group("triage")
        .await
        .unwrap()
        .partitions
        .iter()
        .filter(|p| p.leased_by.as_deref() == Some("agent-a"))
        .map(|p| p.in_flight)
        .sum();

    let mut submitted: BTreeMap<String, Value> = BTreeMap::new();
    for writer in writers {
        submitted.extend(writer.await.unwrap());
    }
    assert_eq!(submitted.len(), ITEMS);

    let sdk = worker.sdk();
    until(
        "every item on the board and the group settled",
        Duration::from_secs(90),
        || async {
            if cards(&c, board).await.len() < ITEMS {
                return None;
            }
            let status = sdk.group("triage").await.unwrap();
            (status.lag() == 0 && status.partitions.iter().all(|p| p.in_flight == 0)).then_some(())
        },
    )
    .await;

    // Exactly one card per item, with the id derived from the item.
    let on_board = cards(&c, board).await;
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("fb-{id}")).collect();
    assert_eq!(
        on_board.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the board's cards"
    );
    let board_log = c.all_events("board", board).await;
    let added: Vec<&Value> = board_log
        .iter()
        .filter(|e| e["type"] == "CardAdded")
        .collect();
    assert_eq!(added.len(), ITEMS, "one CardAdded per item");

    // Each card was caused by its item's event, in its flow; the item was triaged once, to
    // that card, with the card's labels, by a command of the same flow.
    for added in &added {
        let card = added["data"]["card_id"].as_str().unwrap();
        let id = &card["fb-".len()..];
        let cause = &submitted[id];
        let flow = cause["correlation_id"]
            .as_str()
            .unwrap_or_else(|| cause["event_id"].as_str().unwrap());
        assert_eq!(added["causation_id"], cause["event_id"], "{card}");
        assert_eq!(added["correlation_id"], flow, "{card}");
        let log = c.all_events("feedback", id).await;
        let triaged: Vec<&Value> = log
            .iter()
            .filter(|e| e["type"] == "FeedbackTriaged")
            .collect();
        assert_eq!(triaged.len(), 1, "{id} triaged {} times", triaged.len());
        assert_eq!(triaged[0]["causation_id"], cause["event_id"]);
        assert_eq!(triaged[0]["correlation_id"], flow);
        assert_eq!(triaged[0]["data"]["board_id"], board);
        assert_eq!(triaged[0]["data"]["card_id"], card);
        assert_eq!(triaged[0]["data"]["labels"], added["data"]["labels"]);
        let state = c.state("feedback", id, "").await.expect(200);
        assert_eq!(state["state"]["status"], "triaged", "{id}");
    }
    // The rules labelled them, with the item's severity.
    let crash = &ids[0];
    assert_eq!(
        on_board[&format!("fb-{crash}")]["labels"],
        json!(["bug", "severity:low"])
    );
    // A flow reads back as one trace: the item, its card, its triage (the trace reads the
    // stream, which the last triage reaches a moment after its command answered).
    let types = until("the trace of flow-0", Duration::from_secs(30), || async {
        let trace = c.get("/v1/trace/flow-0").await.expect(200);
        let types: Vec<String> = trace["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        (types.len() >= 3).then_some(types)
    })
    .await;
    assert_eq!(types, ["FeedbackSubmitted", "CardAdded", "FeedbackTriaged"]);

    // Both agents worked; the survivor stops cleanly on SIGTERM, printing nothing on stdout.
    assert!(doomed.logs().contains("triaged"), "{}", doomed.logs());
    let (stdout, logs) = survivor.stop(Duration::from_secs(15));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        logs.contains("triaged") && logs.contains("agent stopped"),
        "{logs}"
    );
    // The log's structured fields name each event's place and attempt: agent B saw again
    // (attempt 2) at least what agent A died holding.
    let redelivered: BTreeSet<(&str, &str)> = logs
        .lines()
        .filter(|line| line.contains(" attempt=2}"))
        .filter_map(|line| {
            let field = |name: &str| {
                let start = line.find(&format!("{name}="))? + name.len() + 1;
                line[start..].split([' ', '}']).next()
            };
            Some((field("partition")?, field("offset")?))
        })
        .collect();
    assert!(
        redelivered.len() as u64 >= orphaned,
        "agent A died holding {orphaned} events; agent B saw {} again",
        redelivered.len()
    );
    eprintln!(
        "{ITEMS} items triaged by two agents in {:.1?}; agent A was killed at {killed_at} cards \
         holding {orphaned} events, which agent B handled again",
        started.elapsed()
    );
}

/// Waits until feedback `id` is triaged; answers its `FeedbackTriaged` event.
async fn triaged(c: &Client, id: &str) -> Value {
    until(
        &format!("{id} triaged"),
        Duration::from_secs(60),
        || async {
            c.all_events("feedback", id)
                .await
                .into_iter()
                .find(|e| e["type"] == "FeedbackTriaged")
        },
    )
    .await
}

/// Waits until the knowledge base can find `card` of `board` by `words`.
async fn searchable(c: &Client, board: &str, card: &str, words: &str) {
    let doc_id = format!("card:{board}:{card}");
    until(
        &format!("{doc_id} searchable"),
        Duration::from_secs(30),
        || async {
            let answer = c
                .get(&format!(
                    "/v1/knowledge/search?q={words}&kinds=card&match=any&limit=50"
                ))
                .await
                .expect(200);
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["doc_id"] == doc_id)
                .then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn triage_with_the_knowledge_base_links_near_duplicates_and_names_related_failures() {
    edgeloop();
    let worker = tests::shared();
    let tenant = unique_id("triage-kb");
    let c =
        Client::new(worker.url()).with_token(Some(worker.token("e2e", &tenant, "commands read")));
    let board = unique_id("kb-board");
    // A failure the team already sees: an open error group about the checkout button.
    let fingerprint = unique_id("fp");
    let recorded = c
        .ok(
            "error_group",
            &fingerprint,
            cmd(
                "RecordOccurrences",
                json!({"error_type": "TypeError", "message": "checkout button handler is undefined on Safari",
                       "count": 42, "first_seen_ms": 1_000, "last_seen_ms": 2_000, "window_start_ms": 0}),
            ),
        )
        .await;
    // The team sees it already: it is in the knowledge base before the first report.
    let token = recorded["consistency_token"].as_str().unwrap();
    c.get(&format!(
        "/v1/knowledge/search?q=checkout&kinds=error_group&consistency={token}"
    ))
    .await
    .expect(200);
    let agent = TriageAgent::start_with(worker, &tenant, "triage-kb", "kb-agent", &board, &[]);

    // The first report of a problem: a new card, naming the related error group.
    let first = unique_id("fb-checkout-1");
    submit(&c, std::slice::from_ref(&first), |_| {
        "The checkout button does nothing on mobile Safari".into()
    })
    .await;
    let event = triaged(&c, &first).await;
    let card = event["data"]["card_id"].as_str().unwrap().to_owned();
    assert_eq!(event["data"]["evidence"]["decision"], "new_card", "{event}");
    let related = event["data"]["evidence"]["related"].as_array().unwrap();
    assert!(
        related
            .iter()
            .any(|r| r["doc_id"] == format!("error_group:{fingerprint}")),
        "{event}"
    );
    let state = c.state("board", &board, "").await.expect(200);
    assert_eq!(state["state"]["cards"][&card]["comments"], 1, "{state}");
    let log = c.all_events("board", &board).await;
    assert!(
        log.iter().any(|e| e["type"] == "CardCommented"
            && e["data"]["text"].as_str().unwrap().contains("TypeError")),
        "the card names the error group: {log:?}"
    );
    searchable(&c, &board, &card, "checkout%20safari").await;

    // Near-duplicates end on the same card, with the evidence in their events.
    let duplicates = [
        "Checkout button not working on Safari mobile",
        "Tapping the checkout button on mobile Safari does nothing at all",
    ];
    for (n, text) in duplicates.iter().enumerate() {
        let id = unique_id(&format!("fb-checkout-dup{n}"));
        submit(&c, std::slice::from_ref(&id), |_| (*text).into()).await;
        let event = triaged(&c, &id).await;
        assert_eq!(event["data"]["card_id"], card, "{text}: {event}");
        let evidence = &event["data"]["evidence"];
        assert_eq!(evidence["decision"], "linked_to_existing_card", "{event}");
        let best = &evidence["matches"][0];
        assert_eq!(best["doc_id"], format!("card:{board}:{card}"), "{event}");
        assert!(best["similarity"].as_f64().unwrap() >= 0.5, "{event}");
    }

    // Distinct problems get cards of their own.
    let mut distinct_cards = BTreeSet::new();
    for (n, text) in [
        "Dark mode colours are unreadable in the settings page",
        "Exporting a board to CSV loses all the unicode characters",
    ]
    .iter()
    .enumerate()
    {
        let id = unique_id(&format!("fb-other{n}"));
        submit(&c, std::slice::from_ref(&id), |_| (*text).into()).await;
        let event = triaged(&c, &id).await;
        assert_eq!(event["data"]["evidence"]["decision"], "new_card", "{event}");
        distinct_cards.insert(event["data"]["card_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(distinct_cards.len(), 2);
    assert!(!distinct_cards.contains(&card));
    let cards = cards(&c, &board).await;
    assert_eq!(cards.len(), 3, "{cards:?}");
    // The linked card carries a comment per duplicate (plus the error group's).
    assert_eq!(cards[&card]["comments"], 3, "{cards:?}");
    agent.stop(Duration::from_secs(20));
}
