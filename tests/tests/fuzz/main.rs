//! Request-level fuzzing of the running Worker: at least 10,000 generated malformed
//! requests — bad JSON (truncated, trailing garbage, deep nesting, huge strings), wrong
//! types for every command field, huge numbers, unicode edge cases (lone surrogates, NUL,
//! direction marks, emoji, overlong and invalid UTF-8), wrong content types, truncated and
//! invalid MessagePack, bad query strings, bad ids and paths, bad `Idempotency-Key` and
//! `Authorization` headers, and bad WebSocket upgrades — sent 8 at a time.
//!
//! What must hold for every one of them:
//! * no 5xx, and no failed connection;
//! * every 4xx carries the JSON error body with the `code` its status documents;
//! * the status is one the request can legitimately get (each generated request knows
//!   which: a broken body is a 400, a bad token a 401, an unsupported type a 415…);
//! * no command is accepted, and nothing changes: the "victim" aggregates the requests aim
//!   at keep their versions, events and state, the fresh ids they also aim at still have no
//!   events, and live subscribers of all of them receive nothing.
//!
//! Every command is built so that it must be refused whatever its mutations do: it is
//! either broken, or sent to an aggregate where a domain rule refuses it (a board that does
//! not exist, a full column, an archived card…), or — for the credential and path cases —
//! sent without valid credentials or to an invalid id. The generator is deterministic:
//! request `i` comes from its own RNG seeded from the run's seed and `i`, so a failure
//! names a request that reproduces. `EDGELOOP_FUZZ_SEED` and `EDGELOOP_FUZZ_REQUESTS`
//! override the seed and the count (run with `--nocapture` to see the seed, the count, the
//! time and the statuses).
//!
//! # Layout
//! * `main.rs` — the targets, a generated request ([`Case`]), sending and judging it, the
//!   victims, and the test.
//! * `generate.rs` — the request categories and what each may be answered (with an oracle
//!   of the documented query rules for reads).
//! * `commands.rs` — commands that must be refused, and their mutations.
//! * `values.rs`, `msgpack.rs`, `tokens.rs` — odd strings and raw JSON, hand-written
//!   MessagePack, tokens and `Authorization` headers that must be refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tests::{ACTOR, Client, Options, TENANT, Worker, cmd, unique_id, unix_now};

mod commands;
mod generate;
mod msgpack;
mod tokens;
mod values;

use commands::*;
use generate::*;
use msgpack::*;
use tokens::*;
use values::*;

const DEFAULT_SEED: u64 = 0x00ED_6E10_0F22_2026;
const DEFAULT_REQUESTS: usize = 10_000;
const IN_FLIGHT: usize = 8;
/// The Worker's default `MAX_BODY_BYTES`.
const MAX_BODY: usize = 1024 * 1024;
/// The longest `command_id`, `correlation_id` or `causation_id`, in characters.
const MAX_METADATA_CHARS: usize = 256;
/// How many failures are printed in full.
const SHOWN_FAILURES: usize = 40;
const ALL_SCOPES: &str = "commands read replay consume admin";
/// A tenant with its own copy of a victim's id.
const OTHER_TENANT: &str = "fz-other";

/// Names a request must never produce by accident: the victims' live cards and columns.
const RESERVED: &[&str] = &["c1", "c-full", "Inbox", "Todo", "Doing", "Done", "Full"];

// ---------------------------------------------------------------------------------------
// Targets

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A board with columns Todo, Full (WIP limit 1, holding `c-full`) and Done, and the
    /// cards `c1` (Todo), `c-full` and `c-arch` (archived).
    BoardVictim,
    /// A board id with no events.
    BoardFresh,
    /// Feedback that was submitted.
    FeedbackOpen,
    /// Feedback that was submitted, triaged and closed.
    FeedbackClosed,
    /// A feedback id with no events.
    FeedbackFresh,
}

#[derive(Debug, Clone)]
struct Target {
    aggregate_type: &'static str,
    id: String,
    class: Class,
    version: u64,
}

impl Target {
    fn path(&self, rest: &str) -> String {
        format!("/v1/aggregates/{}/{}{rest}", self.aggregate_type, self.id)
    }
}

/// What the generator needs to know about the running Worker.
struct Fixture {
    targets: Vec<Target>,
    secret: Vec<u8>,
    /// A valid token of [`TENANT`] with every scope.
    token: String,
    /// Valid tokens of [`TENANT`] without `commands`, and without `read`.
    no_commands: String,
    no_read: String,
    seed: u64,
}

// ---------------------------------------------------------------------------------------
// Generated requests

#[derive(Debug, Clone)]
enum Auth {
    /// `Authorization: Bearer <valid token>`.
    Valid,
    /// No `Authorization` header.
    Omit,
    /// These `Authorization` header values (several: the header repeated).
    Raw(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Case {
    category: &'static str,
    what: String,
    method: reqwest::Method,
    path: String,
    auth: Auth,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    /// The statuses this request may legitimately get.
    expect: Vec<u16>,
    /// A command: any 2xx is a failure.
    command: bool,
    /// A WebSocket upgrade (any accepted upgrade is a failure).
    socket: bool,
    /// The `version` a 200 state read must show (the token's tenant's, not a forged one's).
    expect_version: Option<u64>,
    /// The `Origin` sent, if any.
    origin: Option<Vec<u8>>,
}

impl Case {
    fn new(category: &'static str, method: reqwest::Method, path: String) -> Self {
        Case {
            category,
            what: String::new(),
            command: method == reqwest::Method::POST,
            method,
            path,
            auth: Auth::Valid,
            headers: Vec::new(),
            body: None,
            expect: Vec::new(),
            socket: false,
            expect_version: None,
            origin: None,
        }
    }

    fn note(&mut self, text: impl AsRef<str>) {
        if !self.what.is_empty() {
            self.what.push_str("; ");
        }
        let text = text.as_ref();
        // Keep descriptions short: some values are megabytes.
        let short: String = text.chars().take(160).collect();
        self.what.push_str(&short);
        if short.len() < text.len() {
            let _ = write!(self.what, "… ({} bytes)", text.len());
        }
    }

    fn header(&mut self, name: &'static str, value: impl Into<Vec<u8>>) {
        self.headers.push((name, value.into()));
    }

    fn describe(&self, index: usize) -> String {
        let body = self.body.as_ref().map_or_else(String::new, |b| {
            let text = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            format!(" body[{}]: {text:?}", b.len())
        });
        let path: String = self.path.chars().take(200).collect();
        format!(
            "#{index} [{}] {} {path} — {}{body}",
            self.category, self.method, self.what
        )
    }
}

// ---------------------------------------------------------------------------------------
// Running and judging

/// What a case got: a status, and the body with its content type.
struct Outcome {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// The answer's `access-control-allow-origin`, if any.
    cors: Option<Vec<u8>>,
}

fn code_for(status: u16) -> &'static [&'static str] {
    match status {
        400 => &["bad_request"],
        401 => &["unauthorized"],
        403 => &["forbidden"],
        404 => &["not_found"],
        405 => &["method_not_allowed"],
        409 => &["version_conflict"],
        413 => &["payload_too_large"],
        415 => &["unsupported_media_type"],
        422 => &["rejected", "idempotency_key_reused"],
        426 => &["upgrade_required"],
        429 => &["rate_limited"],
        _ => &[],
    }
}

fn judge(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let status = outcome.status;
    let body =
        || String::from_utf8_lossy(&outcome.body[..outcome.body.len().min(300)]).into_owned();
    if status >= 500 {
        return Err(format!("{status}: {}", body()));
    }
    if case.command && (200..300).contains(&status) {
        return Err(format!("the command was accepted ({status}): {}", body()));
    }
    if !case.expect.contains(&status) {
        return Err(format!(
            "expected {:?}, got {status}: {}",
            case.expect,
            body()
        ));
    }
    // No origin but an allowed one is ever let in, and only as itself. (That allowed
    // origins get the header on every answer is `cors.rs`'s to check.)
    if let Some(granted) = &outcome.cors {
        let allowed = case.origin.as_deref().filter(|o| origin_allowed(o));
        if allowed != Some(granted.as_slice()) {
            return Err(format!(
                "Origin {:?} got access-control-allow-origin {:?}",
                case.origin.as_deref().map(String::from_utf8_lossy),
                String::from_utf8_lossy(granted)
            ));
        }
    }
    if case.method == reqwest::Method::HEAD || case.method == reqwest::Method::OPTIONS {
        return Ok(());
    }
    if let Some(version) = case.expect_version
        && status == 200
    {
        let json: Value = serde_json::from_slice(&outcome.body)
            .map_err(|e| format!("the state is not JSON ({e}): {}", body()))?;
        if json["version"] != version {
            return Err(format!("another tenant's state was read: {json}"));
        }
    }
    if (400..500).contains(&status) {
        if !outcome.content_type.starts_with("application/json") {
            return Err(format!(
                "{status} with content type {:?}: {}",
                outcome.content_type,
                body()
            ));
        }
        let json: Value = serde_json::from_slice(&outcome.body)
            .map_err(|e| format!("{status} body is not JSON ({e}): {}", body()))?;
        let error = &json["error"];
        let code = error["code"].as_str().unwrap_or_default();
        if !code_for(status).contains(&code) {
            return Err(format!("{status} with code {code:?}: {json}"));
        }
        if error["message"].as_str().is_none_or(str::is_empty) {
            return Err(format!("{status} without a message: {json}"));
        }
    } else if outcome.content_type.starts_with("application/json")
        && serde_json::from_slice::<Value>(&outcome.body).is_err()
    {
        return Err(format!("{status} says JSON but is not: {}", body()));
    }
    Ok(())
}

async fn run(client: &Client, token: &str, case: &Case) -> Result<Outcome, String> {
    if case.socket {
        return run_socket(client, token, case).await;
    }
    let mut request = client
        .http()
        .request(case.method.clone(), client.url(&case.path));
    let mut headers = reqwest::header::HeaderMap::new();
    match &case.auth {
        Auth::Valid => {
            headers.append(
                "authorization",
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .expect("a token"),
            );
        }
        Auth::Omit => {}
        Auth::Raw(values) => {
            for value in values {
                headers.append(
                    "authorization",
                    reqwest::header::HeaderValue::from_bytes(value)
                        .map_err(|e| format!("unsendable header: {e}"))?,
                );
            }
        }
    }
    for (name, value) in &case.headers {
        headers.append(
            *name,
            reqwest::header::HeaderValue::from_bytes(value)
                .map_err(|e| format!("unsendable header: {e}"))?,
        );
    }
    request = request.headers(headers);
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("the request failed: {e:?}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cors = response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.as_bytes().to_vec());
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer failed: {e:?}"))?
        .to_vec();
    Ok(Outcome {
        status,
        content_type,
        body,
        cors,
    })
}

/// A WebSocket upgrade: 101 when accepted, else the refusal's status and body.
async fn run_socket(client: &Client, token: &str, case: &Case) -> Result<Outcome, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    use tokio_tungstenite::tungstenite::{Error, Message};
    let url = client.url(&case.path).replacen("http://", "ws://", 1);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("cannot build the upgrade: {e}"))?;
    let headers = request.headers_mut();
    let mut add = |name: &str, value: &[u8]| -> Result<(), String> {
        let value =
            HeaderValue::from_bytes(value).map_err(|e| format!("unsendable header: {e}"))?;
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value,
        );
        Ok(())
    };
    match &case.auth {
        Auth::Valid => add("authorization", format!("Bearer {token}").as_bytes())?,
        Auth::Omit => {}
        Auth::Raw(values) => {
            for value in values {
                add("authorization", value)?;
            }
        }
    }
    for (name, value) in &case.headers {
        add(name, value)?;
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(Duration::from_secs(60), connect).await {
        Err(_) => Err("the upgrade timed out".to_owned()),
        Ok(Ok((mut stream, _))) => {
            let _ = futures_util::SinkExt::send(&mut stream, Message::Close(None)).await;
            Ok(Outcome {
                status: 101,
                content_type: String::new(),
                body: b"(the upgrade was accepted)".to_vec(),
                cors: None,
            })
        }
        Ok(Err(Error::Http(response))) => Ok(Outcome {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: response.body().clone().unwrap_or_default(),
            cors: response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.as_bytes().to_vec()),
        }),
        Ok(Err(e)) => Err(format!("the upgrade failed: {e}")),
    }
}

// ---------------------------------------------------------------------------------------
// The victims

/// Everything about an aggregate that the fuzzing must not change.
#[derive(Debug, Clone, PartialEq)]
struct Footprint {
    status: u16,
    state: Option<Value>,
    events: Vec<Value>,
}

async fn footprint(c: &Client, target: &Target) -> Footprint {
    let reply = c.state(target.aggregate_type, &target.id, "").await;
    assert!(
        matches!(reply.status, 200 | 404),
        "reading {} answered {}: {}",
        target.id,
        reply.status,
        reply.text()
    );
    Footprint {
        status: reply.status,
        state: (reply.status == 200).then(|| reply.json()),
        events: c.all_events(target.aggregate_type, &target.id).await,
    }
}

async fn setup(worker: &Worker, seed: u64) -> (Fixture, Vec<(Client, Target)>) {
    let c = worker.client();
    let mut targets = Vec::new();
    for _ in 0..2 {
        let id = unique_id("fz-board");
        let steps = [
            cmd(
                "CreateBoard",
                json!({"title": "Victim", "columns": ["Todo", "Full", "Done"]}),
            ),
            cmd("SetWipLimit", json!({"column": "Full", "limit": 1})),
            cmd(
                "AddCard",
                json!({"card_id": "c1", "title": "one", "labels": ["x"]}),
            ),
            cmd(
                "AddCard",
                json!({"card_id": "c-full", "title": "full", "column": "Full"}),
            ),
            cmd("AddCard", json!({"card_id": "c-arch", "title": "gone"})),
            cmd("ArchiveCard", json!({"card_id": "c-arch"})),
            cmd(
                "CommentOnCard",
                json!({"card_id": "c1", "author": "ana", "text": "hi"}),
            ),
            cmd("EditCard", json!({"card_id": "c1", "title": "uno"})),
        ];
        for step in steps {
            c.ok("board", &id, step).await;
        }
        targets.push(Target {
            aggregate_type: "board",
            id,
            class: Class::BoardVictim,
            version: 8,
        });
    }
    let open = unique_id("fz-feedback");
    c.ok(
        "feedback",
        &open,
        cmd("SubmitFeedback", json!({"text": "slow", "source": "web"})),
    )
    .await;
    targets.push(Target {
        aggregate_type: "feedback",
        id: open,
        class: Class::FeedbackOpen,
        version: 1,
    });
    let closed = unique_id("fz-feedback");
    for step in [
        cmd(
            "SubmitFeedback",
            json!({"text": "broken", "source": "app", "severity": "high"}),
        ),
        cmd(
            "TriageFeedback",
            json!({"board_id": "b", "card_id": "c", "labels": ["bug"]}),
        ),
        cmd("CloseFeedback", json!({"reason": "fixed"})),
    ] {
        c.ok("feedback", &closed, step).await;
    }
    targets.push(Target {
        aggregate_type: "feedback",
        id: closed,
        class: Class::FeedbackClosed,
        version: 3,
    });
    for _ in 0..3 {
        targets.push(Target {
            aggregate_type: "board",
            id: unique_id("fz-fresh-board"),
            class: Class::BoardFresh,
            version: 0,
        });
    }
    for _ in 0..2 {
        targets.push(Target {
            aggregate_type: "feedback",
            id: unique_id("fz-fresh-feedback"),
            class: Class::FeedbackFresh,
            version: 0,
        });
    }

    // The first victim's id in another tenant: a victim too, though no request aims at it.
    let other =
        Client::new(worker.url()).with_token(Some(worker.token(ACTOR, OTHER_TENANT, ALL_SCOPES)));
    other
        .ok(
            "board",
            &targets[0].id,
            cmd("CreateBoard", json!({"title": "Other"})),
        )
        .await;
    let mut watched: Vec<(Client, Target)> =
        targets.iter().map(|t| (c.clone(), t.clone())).collect();
    watched.push((
        other,
        Target {
            version: 1,
            ..targets[0].clone()
        },
    ));

    let fixture = Fixture {
        targets,
        secret: worker.secret().as_bytes().to_vec(),
        token: worker.token(ACTOR, TENANT, ALL_SCOPES),
        no_commands: worker.token(ACTOR, TENANT, "read replay consume admin"),
        no_read: worker.token(ACTOR, TENANT, "commands replay consume admin"),
        seed,
    };
    (fixture, watched)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16)
                    .ok()
                    .and_then(|n| n.to_string().parse().ok()),
                None => text.parse().ok(),
            };
            parsed.unwrap_or_else(|| panic!("{name}={text} is not a number"))
        }
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_malformed_requests_get_4xx_json_and_change_nothing() {
    let seed: u64 = env_or("EDGELOOP_FUZZ_SEED", DEFAULT_SEED);
    let count: usize = env_or("EDGELOOP_FUZZ_REQUESTS", DEFAULT_REQUESTS);
    println!(
        "fuzz: seed {seed:#x} ({seed}), {count} requests (EDGELOOP_FUZZ_SEED / EDGELOOP_FUZZ_REQUESTS)"
    );
    let worker =
        &Worker::start_with(Options::new().var("CORS_ALLOWED_ORIGINS", CORS_ALLOWED_ORIGINS));
    let (fixture, watched) = setup(worker, seed).await;
    let mut before = Vec::new();
    let mut subscribers = Vec::new();
    for (c, target) in &watched {
        let footprint = footprint(c, target).await;
        assert_eq!(footprint.events.len() as u64, target.version, "{target:?}");
        let mut socket = c
            .subscribe(target.aggregate_type, &target.id, Some(target.version))
            .await;
        assert_eq!(socket.caught_up().await, target.version);
        subscribers.push(socket);
        before.push(footprint);
    }

    let client = Client::new(worker.url());
    let started = Instant::now();
    let fixture = &fixture;
    let results: Vec<(usize, Case, Result<Outcome, String>)> = futures_util::stream::iter(0..count)
        .map(|index| {
            let client = client.clone();
            async move {
                let case = generate(fixture, index);
                let outcome = run(&client, &fixture.token, &case).await;
                (index, case, outcome)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut failures: Vec<(usize, String)> = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut categories: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, case, outcome) in &results {
        *categories.entry(case.category).or_default() += 1;
        let verdict = outcome.as_ref().map_err(Clone::clone).and_then(|outcome| {
            *statuses.entry(outcome.status).or_default() += 1;
            judge(case, outcome)
        });
        if let Err(problem) = verdict {
            failures.push((
                *index,
                format!("{}\n    → {problem}", case.describe(*index)),
            ));
        }
    }
    failures.sort_by_key(|(index, _)| *index);
    println!(
        "fuzz: {} requests in {elapsed:.1?} ({:.0}/s, {IN_FLIGHT} in flight); statuses {statuses:?}; categories {categories:?}",
        results.len(),
        results.len() as f64 / elapsed.as_secs_f64()
    );

    // Nothing changed, and no subscriber heard of anything.
    let mut changed = Vec::new();
    for ((c, target), was) in watched.iter().zip(&before) {
        let now = footprint(c, target).await;
        if &now != was {
            changed.push(format!(
                "{:?} {}/{}: {} events before, {} after (status {} → {})",
                target.class,
                target.aggregate_type,
                target.id,
                was.events.len(),
                now.events.len(),
                was.status,
                now.status
            ));
        }
    }
    for ((_, target), socket) in watched.iter().zip(&mut subscribers) {
        match socket.try_frame_within(Duration::from_millis(300)).await {
            Ok(None) => {}
            Ok(Some(frame)) => changed.push(format!("a subscriber of {} got {frame}", target.id)),
            Err(e) => changed.push(format!("a subscriber of {} was closed: {e}", target.id)),
        }
    }
    let shown: Vec<&str> = failures
        .iter()
        .take(SHOWN_FAILURES)
        .map(|(_, f)| f.as_str())
        .collect();
    assert!(
        failures.is_empty() && changed.is_empty(),
        "seed {seed:#x}: {} of {} requests failed, {} aggregates changed\n{}\n{}{}",
        failures.len(),
        results.len(),
        changed.len(),
        changed.join("\n"),
        shown.join("\n"),
        if failures.len() > SHOWN_FAILURES {
            "\n…"
        } else {
            ""
        }
    );
    assert!(results.len() >= count);

    // The Worker still serves the victims after all that.
    let c = worker.client();
    let added = c
        .ok(
            "board",
            &fixture.targets[0].id,
            cmd("AddCard", json!({"card_id": "after-fuzz", "title": "t"})),
        )
        .await;
    assert_eq!(added["version"], 9);
}
