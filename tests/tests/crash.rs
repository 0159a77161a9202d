//! Crash safety at volume: 5,000 commands, each with its own `Idempotency-Key`, from 16
//! concurrent clients on 8 boards. The runtime (node and workerd) is SIGKILLed once about
//! half of them are acknowledged, with requests in flight, and restarted on the same
//! storage directory. Then:
//!
//! * every acknowledged command's events are in the log exactly once and exactly as they
//!   were acknowledged (matched by event id, and by the command id each command carries);
//!   seqs are dense from 1 and no event id repeats; nothing else is there but what the
//!   commands in flight at the crash may have committed;
//! * the state each board serves, now and at past versions, equals the fold of its log,
//!   computed here with the domain crate's own `Loaded` over an `InMemoryStore`;
//! * the clients carry on: each re-sends the command it had in flight with the same key —
//!   replayed if the crash had committed it, executed if not, exactly once either way —
//!   and then the rest, so all 5,000 end up in the log exactly once;
//! * idempotency keys are still honoured: a sample of commands acknowledged before the
//!   crash, sent again with their keys, return the original answer and append nothing.
//!
//! The test prints acknowledged-vs-present counts (run with `--nocapture` to see them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domain::Metadata;
use domain::memory::InMemoryStore;
use domain::store::{EventStore, Loaded, StoredEvent};
use serde_json::{Value, json};
use tests::{Client, Options, Worker, event_ids, seqs, unique_id};

const BOARDS: usize = 8;
const CLIENTS: usize = 16;
const COMMANDS: usize = 5_000;
/// Acknowledged commands to wait for before the crash.
const ACKS_BEFORE_CRASH: usize = 2_500;
/// Commands acknowledged before the crash that are sent again after it.
const REPLAYS: usize = 200;
const COLUMNS: [&str; 4] = ["Inbox", "Todo", "Doing", "Done"];

/// A card as its client knows it (each client only touches its own cards).
#[derive(Debug, Clone)]
struct Card {
    id: String,
    column: usize,
    archived: bool,
}

/// A command the client sent and got a 200 for.
#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    body: Value,
    reply: Value,
    before_crash: bool,
}

/// A command whose request failed because the runtime died: it may or may not be committed.
#[derive(Debug, Clone)]
struct InFlight {
    key: String,
    body: Value,
}

/// One of the 16 clients: a sequence of commands on its board, one at a time, each decided
/// from what the client knows its earlier commands did (so every one of them succeeds).
#[derive(Debug)]
struct Writer {
    index: usize,
    board: String,
    planned: usize,
    cards: Vec<Card>,
    acknowledged: Vec<Acknowledged>,
    in_flight: Option<InFlight>,
}

impl Writer {
    fn next_index(&self) -> usize {
        self.acknowledged.len()
    }

    /// The `n`th command: mostly new cards, and moves, edits, comments and archiving of
    /// this client's own live cards.
    fn command(&self, n: usize) -> Value {
        let key = format!("crash-{}-{n}", self.index);
        let live: Vec<&Card> = self.cards.iter().filter(|c| !c.archived).collect();
        let (kind, data) = match (n % 10, live.as_slice()) {
            (0..=4, _) | (_, []) => (
                "AddCard",
                json!({"card_id": format!("w{}-{n}", self.index), "title": format!("card {n}")}),
            ),
            (5 | 6, live) => {
                let card = live[n % live.len()];
                let to = COLUMNS[(card.column + 1) % COLUMNS.len()];
                ("MoveCard", json!({"card_id": card.id, "to_column": to}))
            }
            (7, live) => (
                "EditCard",
                json!({"card_id": live[n % live.len()].id, "title": format!("edited {n}"), "labels": [format!("l{n}")]}),
            ),
            (8, live) => (
                "CommentOnCard",
                json!({"card_id": live[n % live.len()].id, "author": format!("client {}", self.index), "text": format!("note {n}")}),
            ),
            (_, live) => ("ArchiveCard", json!({"card_id": live[0].id})),
        };
        // The key doubles as the command id, which every event of the command carries.
        json!({"type": kind, "data": data, "command_id": key})
    }

    /// Records a 200 and updates what the client knows of its cards.
    fn acknowledge(&mut self, key: String, body: Value, reply: Value, before_crash: bool) {
        let data = &body["data"];
        let card_id = data["card_id"].as_str().expect("card_id").to_owned();
        match body["type"].as_str().expect("type") {
            "AddCard" => self.cards.push(Card {
                id: card_id,
                column: 0,
                archived: false,
            }),
            "MoveCard" => {
                let to = COLUMNS
                    .iter()
                    .position(|c| *c == data["to_column"])
                    .expect("a column");
                self.card(&card_id).column = to;
            }
            "ArchiveCard" => self.card(&card_id).archived = true,
            _ => {}
        }
        self.acknowledged.push(Acknowledged {
            key,
            body,
            reply,
            before_crash,
        });
    }

    fn card(&mut self, id: &str) -> &mut Card {
        self.cards
            .iter_mut()
            .find(|c| c.id == id)
            .expect("the client's own card")
    }

    /// Sends commands until all are acknowledged, or until a request fails once `crashing`
    /// is set (the runtime is being killed): that command is left in flight.
    async fn run(
        mut self,
        c: Client,
        acks: Arc<AtomicUsize>,
        crashing: Option<Arc<AtomicBool>>,
    ) -> Self {
        let before_crash = crashing.is_some();
        let crashing = || crashing.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        while self.next_index() < self.planned {
            let n = self.next_index();
            let key = format!("crash-{}-{n}", self.index);
            let body = self.command(n);
            match send(&c, &self.board, &key, &body).await {
                Ok((200, reply, _)) => {
                    self.acknowledge(key, body, reply, before_crash);
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                // While the group is being killed, node may outlive workerd for an instant
                // and answer a proxied request with an error: no acknowledgement either.
                Ok(_) | Err(_) if crashing() => {
                    self.in_flight = Some(InFlight { key, body });
                    break;
                }
                Ok((status, reply, _)) => {
                    panic!("client {}: {body} answered {status} {reply}", self.index)
                }
                Err(error) => panic!("client {}: {body} failed: {error}", self.index),
            }
        }
        self
    }
}

/// One command with its key: `Ok((status, body, replayed))`, or `Err` when the request or
/// its answer did not get through (the runtime died).
async fn send(
    c: &Client,
    board: &str,
    key: &str,
    body: &Value,
) -> Result<(u16, Value, bool), String> {
    let request = c
        .request(
            reqwest::Method::POST,
            &format!("/v1/aggregates/board/{board}/commands"),
        )
        .header("idempotency-key", key)
        .json(body);
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    // Only an answer from a dying runtime may be something else than JSON; keep it as text.
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, body, replayed))
}

/// An envelope as the domain stores it.
fn stored(envelope: &Value) -> StoredEvent {
    let text = |field: &str| envelope[field].as_str().map(str::to_owned);
    StoredEvent {
        seq: envelope["seq"].as_u64().expect("seq"),
        event_id: text("event_id").expect("event_id"),
        event_type: text("type").expect("type"),
        schema_version: envelope["schema_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .expect("schema_version"),
        data: envelope["data"].clone(),
        recorded_at_ms: tests::check_timestamp(
            envelope["recorded_at"].as_str().expect("recorded_at"),
        ),
        metadata: Metadata {
            command_id: text("command_id"),
            correlation_id: text("correlation_id"),
            causation_id: text("causation_id"),
            actor: text("actor"),
        },
    }
}

/// The state a board's events fold into, computed by the domain crate client-side.
fn fold(board: &str, events: &[Value]) -> Value {
    let mut store = InMemoryStore::new();
    let events: Vec<StoredEvent> = events.iter().map(stored).collect();
    store
        .append(&events, None)
        .unwrap_or_else(|e| panic!("{board}: the log does not fold: {e}"));
    assert_eq!(store.version().unwrap(), events.len() as u64);
    Loaded::load(&store, "board", board)
        .unwrap_or_else(|e| panic!("{board}: {e}"))
        .state
        .to_json()
}

/// Checks one board's log and state. `expected` are the envelopes of its acknowledged
/// commands (by command id), `maybe` the command ids that may or may not be committed.
/// Returns the command ids of the `maybe` commands that are present.
async fn check_board(
    c: &Client,
    board: &str,
    expected: &BTreeMap<String, Vec<Value>>,
    maybe: &BTreeSet<String>,
) -> (Vec<Value>, BTreeSet<String>) {
    let log = c.all_events("board", board).await;
    let n = log.len() as u64;
    assert_eq!(
        seqs(&log),
        (1..=n).collect::<Vec<_>>(),
        "{board}: seqs are not dense from 1"
    );
    let distinct: BTreeSet<String> = event_ids(&log).into_iter().collect();
    assert_eq!(distinct.len(), log.len(), "{board}: an event id repeats");
    assert_eq!(log[0]["type"], "BoardCreated");

    let by_event_id: BTreeMap<&str, &Value> = log
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e))
        .collect();
    let mut by_command: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for event in &log[1..] {
        let command = event["command_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{board}: an event without a command id: {event}"));
        by_command.entry(command).or_default().push(event);
    }
    for (command, acknowledged) in expected {
        for event in acknowledged {
            let id = event["event_id"].as_str().unwrap();
            assert_eq!(
                by_event_id.get(id).copied(),
                Some(event),
                "{board}: acknowledged event {id} of {command} is missing or changed"
            );
        }
        let present = by_command.get(command.as_str()).map_or(0, Vec::len);
        assert_eq!(
            present,
            acknowledged.len(),
            "{board}: acknowledged command {command} has {present} events in the log, not {}",
            acknowledged.len()
        );
    }
    let mut present_maybe = BTreeSet::new();
    for (command, events) in &by_command {
        if expected.contains_key(*command) {
            continue;
        }
        assert!(
            maybe.contains(*command),
            "{board}: events of {command}, which nobody sent or was told about: {events:?}"
        );
        assert_eq!(
            events.len(),
            1,
            "{board}: in-flight {command} is there {} times",
            events.len()
        );
        present_maybe.insert((*command).to_owned());
    }

    // The state served now, and at past versions, is the fold of the log.
    let state = c.state("board", board, "").await.expect(200);
    assert_eq!(state["version"], n, "{board}");
    assert_eq!(
        state["state"],
        fold(board, &log),
        "{board}: the state is not the fold of its log"
    );
    for at in [1, n / 3, n / 2, n - 1]
        .into_iter()
        .filter(|v| (1..n).contains(v))
    {
        let past = c
            .state("board", board, &format!("?at_version={at}"))
            .await
            .expect(200);
        assert_eq!(
            past["state"],
            fold(board, &log[..at as usize]),
            "{board}: the state at version {at} is not the fold of the first {at} events"
        );
    }
    (log, present_maybe)
}

/// The acknowledged envelopes of a board's writers, by command id.
fn acknowledged_by_command(writers: &[Writer], board: &str) -> BTreeMap<String, Vec<Value>> {
    writers
        .iter()
        .filter(|w| w.board == board)
        .flat_map(|w| &w.acknowledged)
        .map(|a| {
            let events = a.reply["events"].as_array().expect("events").clone();
            (a.key.clone(), events)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_keyed_commands_survive_a_sigkill_exactly_once() {
    // Snapshots every 25 events, so the restart rebuilds from a snapshot plus a tail.
    let mut worker = Worker::start_with(Options::new().var("SNAPSHOT_EVERY", 25));
    let c = worker.client();
    let boards: Vec<String> = (0..BOARDS).map(|_| unique_id("board-crash")).collect();
    for board in &boards {
        c.ok(
            "board",
            board,
            json!({"type": "CreateBoard", "data": {"title": "Crash"}, "command_id": format!("create-{board}")}),
        )
        .await;
    }
    let writers: Vec<Writer> = (0..CLIENTS)
        .map(|index| Writer {
            index,
            board: boards[index % BOARDS].clone(),
            planned: COMMANDS / CLIENTS + usize::from(index < COMMANDS % CLIENTS),
            cards: Vec::new(),
            acknowledged: Vec::new(),
            in_flight: None,
        })
        .collect();
    assert_eq!(writers.iter().map(|w| w.planned).sum::<usize>(), COMMANDS);

    // Phase 1: write until the crash.
    let started = Instant::now();
    let acks = Arc::new(AtomicUsize::new(0));
    let crashing = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|w| {
            let crashing = Some(Arc::clone(&crashing));
            tokio::spawn(w.run(c.clone(), Arc::clone(&acks), crashing))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while acks.load(Ordering::SeqCst) < ACKS_BEFORE_CRASH {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers too slow: {} acknowledged",
            acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Crash with requests in flight: no shutdown, no flush.
    crashing.store(true, Ordering::SeqCst);
    tokio::task::block_in_place(|| worker.kill_hard());
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.expect("a writer"));
    }
    let acknowledged: usize = writers.iter().map(|w| w.acknowledged.len()).sum();
    let in_flight: BTreeSet<String> = writers
        .iter()
        .filter_map(|w| w.in_flight.as_ref().map(|f| f.key.clone()))
        .collect();
    assert!(acknowledged >= ACKS_BEFORE_CRASH);
    assert!(
        acknowledged < COMMANDS,
        "every command was acknowledged before the crash: it crashed nothing"
    );
    let crashed_after = started.elapsed();

    // Restart on the same storage; check before anyone writes again.
    tokio::task::block_in_place(|| worker.restart());
    let c = worker.client();
    let mut present_events = 0;
    let mut in_flight_present = BTreeSet::new();
    for board in &boards {
        let expected = acknowledged_by_command(&writers, board);
        let (log, present) = check_board(&c, board, &expected, &in_flight).await;
        present_events += log.len() - 1;
        in_flight_present.extend(present);
    }
    let acknowledged_events: usize = writers
        .iter()
        .flat_map(|w| &w.acknowledged)
        .map(|a| a.reply["events"].as_array().map_or(0, Vec::len))
        .sum();
    println!(
        "crash: SIGKILL after {crashed_after:.1?} with {acknowledged} commands acknowledged \
         ({acknowledged_events} events) and {} in flight; after the restart {present_events} \
         events are present: every acknowledged one exactly once, plus {} of the {} in flight",
        in_flight.len(),
        in_flight_present.len(),
        in_flight.len()
    );
    assert_eq!(
        present_events,
        acknowledged_events + in_flight_present.len()
    );

    // Phase 2: the clients carry on. Each first re-sends its in-flight command with its key:
    // replayed if the crash committed it, executed now if not.
    let mut replayed_in_flight = 0;
    for writer in &mut writers {
        let Some(pending) = writer.in_flight.take() else {
            continue;
        };
        let (status, reply, replayed) = send(&c, &writer.board, &pending.key, &pending.body)
            .await
            .unwrap_or_else(|e| panic!("re-sending {}: {e}", pending.key));
        assert_eq!(status, 200, "re-sending {}: {reply}", pending.key);
        let was_present = in_flight_present.contains(&pending.key);
        assert_eq!(
            replayed, was_present,
            "{}: committed before the crash: {was_present}, replayed: {replayed}",
            pending.key
        );
        replayed_in_flight += usize::from(replayed);
        writer.acknowledge(pending.key, pending.body, reply, false);
    }
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|w| tokio::spawn(w.run(c.clone(), Arc::clone(&acks), None)))
        .collect();
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.expect("a writer"));
    }
    let total: usize = writers.iter().map(|w| w.acknowledged.len()).sum();
    assert_eq!(total, COMMANDS);

    // All 5,000 exactly once, nothing else.
    let mut total_events = 0;
    for board in &boards {
        let expected = acknowledged_by_command(&writers, board);
        let (log, extra) = check_board(&c, board, &expected, &BTreeSet::new()).await;
        assert!(extra.is_empty());
        total_events += log.len();
    }

    // Keys are still honoured: commands acknowledged before the crash, sent again.
    let before: Vec<&Acknowledged> = writers
        .iter()
        .flat_map(|w| &w.acknowledged)
        .filter(|a| a.before_crash)
        .collect();
    let step = (before.len() / REPLAYS).max(1);
    let sample: Vec<&Acknowledged> = before.iter().step_by(step).take(REPLAYS).copied().collect();
    assert_eq!(sample.len(), REPLAYS);
    let board_of: BTreeMap<&str, &str> = writers
        .iter()
        .flat_map(|w| {
            w.acknowledged
                .iter()
                .map(move |a| (a.key.as_str(), w.board.as_str()))
        })
        .collect();
    for original in &sample {
        let board = board_of[original.key.as_str()];
        let (status, reply, replayed) = send(&c, board, &original.key, &original.body)
            .await
            .unwrap_or_else(|e| panic!("re-sending {}: {e}", original.key));
        assert_eq!(status, 200, "{}: {reply}", original.key);
        assert!(
            replayed,
            "{} was executed again after the restart",
            original.key
        );
        assert_eq!(
            reply, original.reply,
            "{}: another answer after the restart",
            original.key
        );
    }
    let mut after_replays = 0;
    for board in &boards {
        after_replays += c.version("board", board).await as usize;
    }
    assert_eq!(after_replays, total_events, "a replay appended");
    println!(
        "crash: all {COMMANDS} commands present exactly once ({total_events} events on \
         {BOARDS} boards, {} s in all); {} of the in-flight commands were replayed and {} \
         executed after the restart; {} pre-crash commands re-sent with their keys: all replayed",
        started.elapsed().as_secs(),
        replayed_in_flight,
        in_flight.len() - replayed_in_flight,
        sample.len()
    );
}
