//! The `edgeloop` binary against workerd: `replay` exports a 100,000-event stream to NDJSON,
//! CSV and Parquet, is SIGKILLed midway and run again, and the file holds every event
//! exactly once (count, checksum, no duplicate; the Parquet file read by pyarrow with its
//! typed columns); its failures are one-line messages; `tail` follows a partition through
//! catch-up, live events and slow-consumer cut-offs; `state` time-travels.
//!
//! The binary is built once per run with `cargo build -p cli --bin edgeloop` (it belongs to
//! another crate, so Cargo does not build it for these tests). pyarrow comes from
//! `.tools/py` (`scripts/setup` installs it). `EDGELOOP_REPLAY_EVENTS` shrinks the data set
//! while developing (default 100000).
//!
//! Time: every event is one command, and local workerd runs every object on one thread, so
//! writing the data set is bounded by the Worker at ~250 commands/s on an idle 2-core
//! machine (~7 minutes for 100,000; much longer when the machine is shared). The exports
//! and their checks take well under a minute.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use client::StreamQuery;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::{Options, Worker, cmd, repo_root, unique_id};

/// Concurrent writers generating the data set.
const WRITERS: usize = 8;
/// Events per board: `CreateBoard` + 199 `AddCard`s (a board holds at most 5,000 cards).
const BOARD_EVENTS: usize = 200;
/// Page size of the interrupted exports: small pages make many checkpoints to stop between.
const INTERRUPTED_PAGE: &str = "1000";

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

/// `edgeloop ARGS` with the token in `$EDGELOOP_TOKEN` (as a user would keep it out of `ps`).
fn command(token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(edgeloop());
    command
        .args(args)
        .env("EDGELOOP_TOKEN", token)
        .env_remove("AUTH_SECRET");
    command
}

/// Waits for `child` at most `limit`, killing it if it runs longer.
fn wait_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("edgeloop ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect the output")
}

/// Runs `edgeloop ARGS` to the end.
fn run(token: &str, args: &[&str]) -> Output {
    let child = command(token, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start edgeloop");
    wait_within(child, Duration::from_secs(300))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How many events the data set holds.
fn events_wanted() -> usize {
    std::env::var("EDGELOOP_REPLAY_EVENTS")
        .ok()
        .map(|n| n.parse().expect("EDGELOOP_REPLAY_EVENTS is a number"))
        .unwrap_or(100_000)
}

/// `total` events over boards of [`BOARD_EVENTS`], written by [`WRITERS`] concurrent clients,
/// one batch per board (`POST …/batch`: `CreateBoard` and its `AddCard`s, one write): the
/// data set is about the export, and batches write it in a fraction of the time.
async fn generate(worker: &Worker, total: usize) {
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let quota = total / WRITERS + usize::from(writer < total % WRITERS);
        let c = worker.client();
        tasks.push(tokio::spawn(async move {
            let mut left = quota;
            while left > 0 {
                let id = unique_id(&format!("replay-w{writer}"));
                let events = left.min(BOARD_EVENTS);
                let mut commands = vec![cmd("CreateBoard", json!({"title": "replay"}))];
                commands.extend((1..events).map(|card| {
                    cmd(
                        "AddCard",
                        json!({"card_id": format!("c{card}"), "title": "exported"}),
                    )
                }));
                let path = format!("/v1/aggregates/board/{id}/batch");
                let batch = json!({"commands": commands, "expected_version": "none"});
                let reply = c
                    .send(c.request(reqwest::Method::POST, &path).json(&batch))
                    .await;
                assert_eq!(reply.expect(200)["version"], events);
                left -= events;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Forwarding to the stream is asynchronous: waits until the heads add up to `total`.
async fn await_stream(sdk: &client::Client, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let heads: u64 = sdk.partitions().await.unwrap().iter().map(|p| p.head).sum();
        if heads as usize == total {
            return;
        }
        assert!(
            Instant::now() < deadline && (heads as usize) < total,
            "the stream holds {heads} events, {total} were written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One exported event: (partition, offset, event_id, recorded_at in ms).
type Row = (u64, u64, String, i64);

/// What a set of rows comes to: the figures every output is checked against.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    rows: usize,
    distinct_positions: usize,
    distinct_ids: usize,
    /// SHA-256 over the sorted lines `partition:offset:event_id\n`.
    sha256: String,
    /// The sum of `recorded_at` (ms): the timestamps survived their conversion.
    recorded_at_sum: i64,
}

fn digest(mut rows: Vec<Row>) -> Contents {
    rows.sort();
    let mut hash = Sha256::new();
    for (partition, offset, id, _) in &rows {
        hash.update(format!("{partition}:{offset}:{id}\n"));
    }
    Contents {
        rows: rows.len(),
        distinct_positions: rows
            .iter()
            .map(|r| (r.0, r.1))
            .collect::<BTreeSet<_>>()
            .len(),
        distinct_ids: rows.iter().map(|r| &r.2).collect::<BTreeSet<_>>().len(),
        sha256: format!("{:x}", hash.finalize()),
        recorded_at_sum: rows.iter().map(|r| r.3).sum(),
    }
}

fn millis(rfc3339: &str) -> i64 {
    tests::check_timestamp(rfc3339)
}

/// Every event of the stream, read through the client crate.
async fn stream_rows(sdk: &client::Client) -> Vec<Row> {
    let mut rows = Vec::new();
    for status in sdk.partitions().await.unwrap() {
        let mut query = StreamQuery::new(status.partition).limit(client::MAX_PAGE);
        loop {
            let page = sdk.stream_page(&query).await.unwrap();
            for e in &page.events {
                let position = e.position.expect("stream events have a position");
                rows.push((
                    u64::from(position.partition),
                    position.offset,
                    e.event_id.clone(),
                    millis(&e.recorded_at),
                ));
            }
            match page.next_after {
                Some(next) => query = query.after(next),
                None => break,
            }
        }
    }
    rows
}

fn ndjson_rows(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
            tests::check_envelope(&e);
            (
                e["position"]["partition"].as_u64().unwrap(),
                e["position"]["offset"].as_u64().unwrap(),
                e["event_id"].as_str().unwrap().to_owned(),
                millis(e["recorded_at"].as_str().unwrap()),
            )
        })
        .collect()
}

fn csv_rows(path: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "partition",
            "offset",
            "aggregate_type",
            "aggregate_id",
            "seq",
            "event_id",
            "type",
            "schema_version",
            "recorded_at",
            "command_id",
            "correlation_id",
            "causation_id",
            "actor",
            "data"
        ]
    );
    reader
        .records()
        .map(|record| {
            let r = record.unwrap();
            let data: Value = serde_json::from_str(&r[13]).expect("data is JSON text");
            assert!(data.is_object(), "{data}");
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[5].to_owned(),
                millis(&r[8]),
            )
        })
        .collect()
}

/// The Python of the project-local venv, with pyarrow.
fn python() -> PathBuf {
    let python = repo_root().join(".tools/py/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} with pyarrow is missing: run scripts/setup (it creates the venv and installs pyarrow)",
        python.display()
    );
    python
}

/// Reads the Parquet file with pyarrow: the digest, and each column's type.
const PYARROW_CHECK: &str = r#"
import hashlib, json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
p = t.column("partition").to_pylist()
o = t.column("offset").to_pylist()
e = t.column("event_id").to_pylist()
ms = t.column("recorded_at").cast("int64").to_pylist()
rows = sorted(zip(p, o, e))
h = hashlib.sha256()
for (a, b, c) in rows:
    h.update(f"{a}:{b}:{c}\n".encode())
print(json.dumps({
    "rows": t.num_rows,
    "distinct_positions": len(set(zip(p, o))),
    "distinct_ids": len(set(e)),
    "sha256": h.hexdigest(),
    "recorded_at_sum": sum(ms),
    "types": {f.name: str(f.type) for f in t.schema},
    "nullable": {f.name: f.nullable for f in t.schema},
}))
"#;

fn parquet_digest(path: &Path) -> Contents {
    let output = Command::new(python())
        .args(["-c", PYARROW_CHECK])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "pyarrow could not read {}: {}",
        path.display(),
        text(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let types = &report["types"];
    for (column, expected) in [
        ("partition", "int32"),
        ("offset", "int64"),
        ("seq", "int64"),
        ("schema_version", "int32"),
        ("recorded_at", "timestamp[ms, tz=UTC]"),
        ("event_id", "string"),
        ("data", "string"),
        ("actor", "string"),
    ] {
        assert_eq!(types[column], expected, "column {column}: {types}");
    }
    assert_eq!(report["nullable"]["actor"], true);
    assert_eq!(report["nullable"]["offset"], false);
    Contents {
        rows: report["rows"].as_u64().unwrap() as usize,
        distinct_positions: report["distinct_positions"].as_u64().unwrap() as usize,
        distinct_ids: report["distinct_ids"].as_u64().unwrap() as usize,
        sha256: report["sha256"].as_str().unwrap().to_owned(),
        recorded_at_sum: report["recorded_at_sum"].as_i64().unwrap(),
    }
}

/// What an export file of `format` holds.
fn contents(format: &str, path: &Path) -> Contents {
    match format {
        "ndjson" => digest(ndjson_rows(path)),
        "csv" => digest(csv_rows(path)),
        "parquet" => parquet_digest(path),
        other => panic!("no reader for {other}"),
    }
}

/// Events the resume file says are written, `None` while it is absent or being replaced.
fn progress(resume: &Path) -> Option<u64> {
    let state: Value = serde_json::from_slice(&std::fs::read(resume).ok()?).ok()?;
    Some(
        state["partitions"]
            .as_array()?
            .iter()
            .filter_map(|p| p["events"].as_u64())
            .sum(),
    )
}

/// Starts an export, SIGKILLs it once the resume file shows at least `at_least` events
/// written, and returns how many it showed.
fn export_killed_midway(token: &str, args: &[&str], resume: &Path, at_least: u64) -> u64 {
    let mut child = command(token, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start edgeloop");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = child
                .stderr
                .take()
                .map(|mut e| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                    s
                })
                .unwrap_or_default();
            panic!("the export ended ({status}) before it could be interrupted: {stderr}");
        }
        if let Some(events) = progress(resume).filter(|n| *n >= at_least) {
            child.kill().unwrap(); // SIGKILL: no handler runs, nothing is flushed
            child.wait().unwrap();
            return events;
        }
        assert!(Instant::now() < deadline, "no progress in the resume file");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The figure `this run: N events in S s, R events/s` of a summary.
fn rate(summary: &str) -> String {
    summary
        .lines()
        .find(|l| l.starts_with("this run:"))
        .unwrap_or_else(|| panic!("no rate in the summary: {summary}"))
        .to_owned()
}

#[tokio::test]
async fn exports_killed_midway_resume_to_exactly_the_whole_stream_in_every_format() {
    let total = events_wanted();
    let started = Instant::now();
    let binary = tokio::task::spawn_blocking(edgeloop);
    let worker = Worker::start();
    let sdk = worker.sdk();
    generate(&worker, total).await;
    await_stream(&sdk, total).await;
    let expected = digest(stream_rows(&sdk).await);
    assert_eq!(expected.rows, total);
    eprintln!(
        "{total} events written and forwarded in {:.1?}",
        started.elapsed()
    );
    binary.await.unwrap();
    let token = worker.token("exporter", tests::TENANT, "replay");
    let dir = tempfile::tempdir().unwrap();

    for format in ["ndjson", "csv", "parquet"] {
        let output = dir.path().join(format!("events.{format}"));
        let resume = dir.path().join(format!("events.{format}.resume.json"));
        let output_arg = output.to_str().unwrap();
        let args = [
            "replay",
            "--url",
            worker.url(),
            "--format",
            format,
            "--output",
            output_arg,
            "--page-size",
            INTERRUPTED_PAGE,
        ];
        let shown = export_killed_midway(&token, &args, &resume, total as u64 / 4);
        assert!(
            resume.exists(),
            "{format}: the resume file outlives a SIGKILL"
        );

        let finished = run(&token, &args);
        let summary = text(&finished.stdout);
        assert!(
            finished.status.success(),
            "{format}: the resumed export failed: {}",
            text(&finished.stderr)
        );
        assert!(
            summary.starts_with(&format!("exported {total} events from 4 partitions")),
            "{format}: {summary}"
        );
        assert!(
            summary.contains("resumed: "),
            "{format}: the second run resumed: {summary}"
        );
        assert!(
            !resume.exists(),
            "{format}: the resume file is removed at the end"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains(".parts") || name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{format}: left behind {leftovers:?}");

        assert_eq!(
            contents(format, &output),
            expected,
            "{format}: killed at {shown} events, resumed: the file must hold the stream exactly once"
        );
        eprintln!(
            "{format}: killed after {shown} events, resumed — {}",
            rate(&summary)
        );
    }

    // Uninterrupted exports at the default page size: the throughput figures.
    for format in ["ndjson", "csv", "parquet"] {
        let output = dir.path().join(format!("clean.{format}"));
        let done = run(
            &token,
            &[
                "replay",
                "--url",
                worker.url(),
                "--format",
                format,
                "--output",
                output.to_str().unwrap(),
            ],
        );
        assert!(done.status.success(), "{}", text(&done.stderr));
        assert_eq!(
            contents(format, &output),
            expected,
            "{format}, uninterrupted"
        );
        eprintln!("{format}: {}", rate(&text(&done.stdout)));
    }
    eprintln!("total {:.1?}", started.elapsed());
}

/// One line of stderr, for the failures a user gets.
fn one_line_error(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a failure, got {}: {stderr}",
        output.status
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[tokio::test]
async fn replay_failures_are_one_line_messages_that_say_what_to_do_and_write_nothing() {
    let worker = tests::shared();
    let url = worker.url();
    let replay = worker.token("exporter", tests::TENANT, "replay");
    let read_only = worker.token("exporter", tests::TENANT, "read");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    let out = output.to_str().unwrap();
    let base = ["replay", "--format", "ndjson", "--output", out];
    let cases: [(&str, Vec<&str>, &str); 6] = [
        (
            &replay,
            vec!["--url", "localhost:8787"],
            "error: bad --url `localhost:8787`",
        ),
        (
            &replay,
            vec!["--url", "http://127.0.0.1:1"],
            "error: cannot reach the Edgeloop server at http://127.0.0.1:1",
        ),
        (
            "not.a.token",
            vec!["--url", url],
            "error: the server refused the token (401 unauthorized",
        ),
        (
            &read_only,
            vec!["--url", url],
            "error: the token lacks the `replay` scope (403 forbidden",
        ),
        (
            &replay,
            vec![
                "--url",
                url,
                "--since",
                "2026-01-02T00:00:00Z",
                "--until",
                "2026-01-01T00:00:00Z",
            ],
            "error: the server refused the request (400 bad_request): `since` must be before `until`",
        ),
        (
            &replay,
            vec!["--url", url, "--types", "CardAdded,,CardMoved"],
            "error: the server refused the request (400 bad_request): `types`",
        ),
    ];
    for (token, extra, expected) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let stderr = one_line_error(&run(token, &args));
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            written.is_empty(),
            "{args:?} left files behind: {written:?}"
        );
    }
}

/// Lines a child prints, read on a thread so a test can wait for each with a timeout.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A child process that is killed when the test ends, however it ends (a stopped `tail`
/// would otherwise outlive a failed test).
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stream offsets of the next `n` envelopes `tail` prints.
fn next_offsets(lines: &mpsc::Receiver<String>, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("line {i} of {n} did not come: {e}"));
            let event: Value = serde_json::from_str(&line).unwrap();
            tests::check_envelope(&event);
            event["position"]["offset"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn tail_follows_a_partition_through_catch_up_live_events_and_slow_consumer_cut_offs() {
    // One partition, and a window of 5 unacknowledged events: catch-up proceeds only as
    // tail acks, and a live burst outruns it into 4008 closes it must resume from.
    let worker = Worker::start_with(
        Options::new()
            .var("STREAM_PARTITIONS", 1)
            .var("WS_ACK_WINDOW", 5),
    );
    let c = worker.client();
    let id = c.board_with_cards("tail", 20).await;
    await_stream(&worker.sdk(), 21).await;
    let token = worker.token("tailer", tests::TENANT, "replay");
    let mut child = Stopped(
        command(&token, &["tail", "--url", worker.url(), "--partition", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edgeloop tail"),
    );
    let lines = lines_of(&mut child.0);
    assert_eq!(next_offsets(&lines, 21), (1..=21).collect::<Vec<u64>>());
    // A stalled consumer: while tail is stopped, live events pass the window and the server
    // cuts it off (4008); once it runs again it must resume after what it printed.
    let pid = Pid::from_raw(i32::try_from(child.0.id()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    for card in 0..60 {
        let data = json!({"card_id": format!("live{card}"), "title": "t"});
        c.ok("board", &id, cmd("AddCard", data)).await;
        if card == 30 {
            // The 31 live events in the partition (forwards are paced), so more than the
            // window of 5 were sent to the stopped tail: it is cut off before it runs again.
            await_stream(&worker.sdk(), 52).await;
            kill(pid, Signal::SIGCONT).unwrap();
        }
    }
    assert_eq!(next_offsets(&lines, 60), (22..=81).collect::<Vec<u64>>());
    assert!(
        lines.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing after the last event"
    );
    let mut notes = String::new();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut notes).unwrap();
    assert!(
        notes.contains("caught up at offset 21 of partition 0"),
        "{notes}"
    );
    assert!(
        notes.contains("reconnected; resuming after offset"),
        "{notes}"
    );
}

#[tokio::test]
async fn state_prints_the_aggregate_now_at_a_version_and_as_of_a_time() {
    let worker = tests::shared();
    let c = worker.client();
    let id = c.board_with_cards("state", 3).await;
    let token = worker.token("reader", tests::TENANT, "read");
    let state = |extra: &[&str]| {
        let args: Vec<&str> = ["state", "--url", worker.url(), "board", &id]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        run(&token, &args)
    };
    let parse = |output: Output| -> Value {
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let now = parse(state(&[]));
    assert_eq!(
        (now["aggregate_id"].as_str(), now["version"].as_u64()),
        (Some(id.as_str()), Some(4))
    );
    assert_eq!(now["state"]["cards"].as_object().unwrap().len(), 3);
    let then = parse(state(&["--at-version", "2"]));
    assert_eq!(then["version"], 2);
    assert_eq!(then["state"]["cards"].as_object().unwrap().len(), 1);
    let second_at = c.all_events("board", &id).await[1]["recorded_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_of = parse(state(&["--as-of", &second_at]));
    assert!(
        (2..=4).contains(&as_of["version"].as_u64().unwrap()),
        "the state as of event 2's time includes event 2: {as_of}"
    );
    let later = parse(state(&["--as-of", "2999-01-01T00:00:00Z"]));
    assert_eq!(later["version"], 4);
    let before = one_line_error(&state(&["--as-of", "2000-01-01T00:00:00Z"]));
    assert!(before.contains("404 not_found"), "{before}");
    let missing = one_line_error(&state(&["--at-version", "9"]));
    assert!(missing.contains("404 not_found"), "{missing}");
}
