//! The feedback loop's inputs against workerd: production telemetry grouped into
//! `error_group` aggregates with a bounded event rate and exact counts, and GitHub webhook
//! deliveries verified by signature, deduplicated and recorded on `repository` aggregates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tests::{Client, Options, Worker, unique_id};

/// A short window, so the flood's groups are recorded within a test's patience.
const WINDOW_MS: u64 = 1_000;

fn worker() -> Worker {
    Worker::start_with(
        Options::new()
            .var("TELEMETRY_WINDOW_MS", WINDOW_MS)
            .var("TELEMETRY_RATE_PER_MINUTE", 10_000_000),
    )
}

/// A client with a publishable, ingest-only token of `tenant`.
fn ingest_client(worker: &Worker, tenant: &str) -> Client {
    Client::new(worker.url()).with_token(Some(worker.token("web-page", tenant, "ingest")))
}

/// One error report of group `g` (0..5): the messages differ in ids and numbers, which the
/// fingerprint normalizes away, and each group has its own type, message and top frame.
fn report(g: usize, n: usize) -> Value {
    let (error_type, message, frame) = [
        (
            "TypeError",
            format!("Cannot read properties of undefined (reading 'card{n}')"),
            "renderCard (https://app.example.com/assets/app.js:10:5)",
        ),
        (
            "RangeError",
            format!("Invalid array length {n}"),
            "layoutColumns (https://app.example.com/assets/app.js:220:17)",
        ),
        (
            "Error",
            format!("Request 0x{n:x} failed with status 503"),
            "fetchBoard (https://app.example.com/assets/api.js:41:9)",
        ),
        (
            "SyntaxError",
            format!("Unexpected token < in JSON at position {n}"),
            "parseReply (https://app.example.com/assets/api.js:88:3)",
        ),
        (
            "ReferenceError",
            format!("dragState{} is not defined", n % 7),
            "onDrop (https://app.example.com/assets/dnd.js:5:1)",
        ),
    ][g]
        .clone();
    let message = if g == 4 {
        "dragState is not defined".to_owned()
    } else {
        message
    };
    json!({
        "type": error_type,
        "message": message,
        "stack": format!("{error_type}: {message}\n    at {frame}\n    at main (https://app.example.com/assets/app.js:1:1)"),
        "url": format!("https://app.example.com/boards/{n}"),
        "release": "web@2.3.0",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    })
}

async fn post_batch(c: &Client, errors: Vec<Value>) -> tests::Reply {
    c.post_raw(
        "/v1/ingest/telemetry",
        Some("application/json"),
        serde_json::to_vec(&json!({ "errors": errors })).unwrap(),
    )
    .await
}

/// Waits until every group's total equals `expected` (fingerprint → count); returns the
/// groups' states.
async fn await_totals(c: &Client, expected: &BTreeMap<String, u64>) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut states = BTreeMap::new();
        for fingerprint in expected.keys() {
            let reply = c.state("error_group", fingerprint, "").await;
            if reply.status == 200 {
                states.insert(fingerprint.clone(), reply.json());
            }
        }
        let totals: BTreeMap<String, u64> = states
            .iter()
            .map(|(f, s)| (f.clone(), s["state"]["total_count"].as_u64().unwrap_or(0)))
            .collect();
        if &totals == expected {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "groups never reached their totals: {totals:?} vs {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_flood_of_reports_becomes_a_few_groups_with_exact_counts_and_a_bounded_event_count() {
    let worker = worker();
    let tenant = unique_id("flood");
    let page = ingest_client(&worker, &tenant);
    let reader =
        Client::new(worker.url()).with_token(Some(worker.token("e2e", &tenant, "commands read")));

    // 20,000 reports across 5 groups, in 200 batches of 100, 8 requests at a time.
    let started = Instant::now();
    let batches: Vec<Vec<Value>> = (0..200)
        .map(|b| (0..100).map(|i| report((b + i) % 5, b * 100 + i)).collect())
        .collect();
    let replies: Vec<tests::Reply> = futures_util::stream::iter(batches)
        .map(|batch| post_batch(&page, batch))
        .buffer_unordered(8)
        .collect()
        .await;
    let flood_secs = started.elapsed().as_secs_f64();
    let mut groups = BTreeSet::new();
    for reply in &replies {
        let body = reply.expect(202);
        assert_eq!(body["accepted"]["errors"], 100, "{body}");
        for g in body["groups"].as_array().unwrap() {
            groups.insert(g.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(groups.len(), 5, "five fingerprints: {groups:?}");
    let expected: BTreeMap<String, u64> = groups.iter().map(|g| (g.clone(), 4_000)).collect();
    let states = await_totals(&reader, &expected).await;

    // Bounded: at most one record per group per window of the flood (plus the last flush),
    // each an event; nothing like one event per report.
    let events: u64 = states
        .values()
        .map(|s| s["version"].as_u64().unwrap())
        .sum();
    let windows = (flood_secs * 1000.0 / WINDOW_MS as f64).ceil() as u64 + 2;
    assert!(
        events <= 5 * windows && events < 1_000,
        "{events} events for 20,000 reports over {flood_secs:.1}s"
    );
    println!(
        "flood: 20000 reports in {flood_secs:.2}s ({:.0} reports/s accepted) -> {events} events",
        20_000.0 / flood_secs
    );
    for (fingerprint, state) in &states {
        assert_eq!(state["state"]["status"], "open", "{fingerprint}: {state}");
        assert_eq!(state["state"]["last_release"], "web@2.3.0");
        // The events' counts add up to the total, exactly.
        let log = reader.all_events("error_group", fingerprint).await;
        let counted: u64 = log
            .iter()
            .filter(|e| e["type"] == "ErrorGroupOpened" || e["type"] == "ErrorGroupRecurred")
            .map(|e| e["data"]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, 4_000, "{fingerprint}");
        assert_eq!(log[0]["type"], "ErrorGroupOpened");
    }

    // Resolved, then it happens again: the group is marked regressed.
    let resolved = groups.iter().next().unwrap().clone();
    reader
        .ok(
            "error_group",
            &resolved,
            json!({"type": "ResolveErrorGroup", "data": {"release": "web@2.3.1", "note": "fixed"}}),
        )
        .await;
    let again: Vec<Value> = (0..10).map(|n| report(0, n)).collect();
    let again_reply = post_batch(&page, again).await.expect(202);
    let regressed = again_reply["groups"][0].as_str().unwrap().to_owned();
    let mut expected_after = expected.clone();
    *expected_after.get_mut(&regressed).unwrap() += 10;
    let states = await_totals(&reader, &expected_after).await;
    let log = reader.all_events("error_group", &regressed).await;
    let types: Vec<&str> = log.iter().map(|e| e["type"].as_str().unwrap()).collect();
    if regressed == resolved {
        assert!(types.contains(&"ErrorGroupRegressed"), "{types:?}");
        assert_eq!(states[&regressed]["state"]["status"], "open");
        assert_eq!(states[&regressed]["state"]["regressions"], 1);
    } else {
        // Group 0 is not the one resolved: resolve it too and send again.
        reader
            .ok(
                "error_group",
                &regressed,
                json!({"type": "ResolveErrorGroup", "data": {}}),
            )
            .await;
        post_batch(&page, vec![report(0, 1)]).await.expect(202);
        *expected_after.get_mut(&regressed).unwrap() += 1;
        let states = await_totals(&reader, &expected_after).await;
        assert_eq!(states[&regressed]["state"]["regressions"], 1);
        let log = reader.all_events("error_group", &regressed).await;
        assert!(log.iter().any(|e| e["type"] == "ErrorGroupRegressed"));
    }

    // The status route counts what was taken.
    let status = reader.get("/v1/ingest/telemetry").await.expect(200);
    assert!(
        status["totals"]["reports"].as_u64().unwrap() >= 20_010,
        "{status}"
    );
}

#[tokio::test]
async fn bad_telemetry_is_refused_whole_with_the_documented_errors() {
    let worker = worker();
    let tenant = unique_id("bad-telemetry");
    let page = ingest_client(&worker, &tenant);
    let reader =
        Client::new(worker.url()).with_token(Some(worker.token("e2e", &tenant, "commands read")));

    // Not JSON, wrong shapes, too many reports, a bad field in the last report: 400, and
    // nothing of the batch is taken.
    let reply = page
        .post_raw("/v1/ingest/telemetry", Some("application/json"), "{oops")
        .await;
    reply.expect_error(400, "bad_request");
    let mut too_many: Vec<Value> = (0..101).map(|n| report(1, n)).collect();
    post_batch(&page, too_many.clone())
        .await
        .expect_error(400, "bad_request");
    too_many.truncate(99);
    too_many.push(json!({"type": "", "message": "x"}));
    let error = post_batch(&page, too_many)
        .await
        .expect_error(400, "bad_request");
    assert!(
        error["message"].as_str().unwrap().contains("errors[99]"),
        "{error}"
    );
    page.post_raw("/v1/ingest/telemetry", Some("application/xml"), "<errors/>")
        .await
        .expect_error(415, "unsupported_media_type");
    // Over the body limit (1 MiB).
    let huge = vec![b' '; 1024 * 1024 + 1];
    page.post_raw("/v1/ingest/telemetry", Some("application/json"), huge)
        .await
        .expect_error(413, "payload_too_large");

    // Tokens: none → 401; a token without `ingest` → 403; the publishable ingest token
    // cannot read or command.
    Client::new(worker.url())
        .post_raw("/v1/ingest/telemetry", Some("application/json"), "{}")
        .await
        .expect_error(401, "unauthorized");
    reader
        .post_raw("/v1/ingest/telemetry", Some("application/json"), "{}")
        .await
        .expect_error(403, "forbidden");
    page.get("/v1/ingest/telemetry")
        .await
        .expect_error(403, "forbidden");
    page.command(
        "board",
        "b1",
        &json!({"type": "CreateBoard", "data": {"title": "x"}}),
    )
    .await
    .expect_error(403, "forbidden");

    let status = reader.get("/v1/ingest/telemetry").await.expect(200);
    assert_eq!(status["totals"].get("reports"), None, "{status}");
    assert_eq!(status["pending_groups"], 0);

    // A page's beacon: text/plain, the token in the query. Counters are summed per window.
    let token = worker.token("web-page", &tenant, "ingest");
    let beacon = json!({
        "errors": [report(2, 1)],
        "counters": [{"name": "board.render_ms", "value": 12.5, "tags": {"page": "board"}},
                     {"name": "board.render_ms", "value": 7.5, "tags": {"page": "board"}}],
    });
    Client::new(worker.url())
        .post_raw(
            &format!("/v1/ingest/telemetry?access_token={token}"),
            Some("text/plain;charset=UTF-8"),
            beacon.to_string(),
        )
        .await
        .expect(202);
    let status = reader
        .get("/v1/ingest/telemetry?name=board.render_ms")
        .await
        .expect(200);
    assert_eq!(status["totals"]["reports"], 1, "{status}");
    assert_eq!(status["counters"][0]["total"], 20.0, "{status}");
    assert_eq!(status["counters"][0]["samples"], 2);
    assert_eq!(status["counters"][0]["tags"], json!({"page": "board"}));
}

#[tokio::test]
async fn over_the_rate_a_batch_is_refused_whole_with_retry_after() {
    let worker = Worker::start_with(
        Options::new()
            .var("TELEMETRY_WINDOW_MS", WINDOW_MS)
            .var("TELEMETRY_RATE_PER_MINUTE", 150),
    );
    let tenant = unique_id("rate");
    let page = ingest_client(&worker, &tenant);
    post_batch(&page, (0..100).map(|n| report(3, n)).collect())
        .await
        .expect(202);
    let reply = post_batch(&page, (0..100).map(|n| report(3, n)).collect()).await;
    reply.expect_error(429, "rate_limited");
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another tenant has its own bucket.
    post_batch(
        &ingest_client(&worker, &unique_id("rate-b")),
        vec![report(3, 1)],
    )
    .await
    .expect(202);
    let reader = Client::new(worker.url()).with_token(Some(worker.token("e2e", &tenant, "read")));
    let status = reader.get("/v1/ingest/telemetry").await.expect(200);
    assert_eq!(status["totals"]["reports"], 100, "{status}");
}

// ── GitHub ────────────────────────────────────────────────────────────────────────────

const PUSH: &[u8] = include_bytes!("../../ingest/tests/fixtures/github/push.json");
const WORKFLOW_RUN: &[u8] =
    include_bytes!("../../ingest/tests/fixtures/github/workflow_run_completed.json");
const PING: &[u8] = include_bytes!("../../ingest/tests/fixtures/github/ping.json");
const REPOSITORY: &str = "codertocat~hello-world";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

async fn deliver(
    worker: &Worker,
    tenant: &str,
    event: &str,
    delivery: &str,
    signature: Option<&str>,
    body: &[u8],
) -> tests::Reply {
    let c = Client::new(worker.url());
    let mut request = c
        .request(
            reqwest::Method::POST,
            &format!("/v1/ingest/github?tenant={tenant}"),
        )
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    c.send(request).await
}

async fn set_secret(worker: &Worker, tenant: &str, secret: &str) {
    let admin = Client::new(worker.url()).with_token(Some(worker.token("ops", tenant, "admin")));
    let reply = admin
        .send(
            admin
                .request(reqwest::Method::PUT, "/v1/integrations/github")
                .header("content-type", "application/json")
                .body(json!({ "secret": secret }).to_string()),
        )
        .await;
    let body = reply.expect(200);
    assert_eq!(body["configured"], true, "{body}");
    assert!(!reply.text().contains(secret), "the secret was echoed");
}

#[tokio::test]
async fn github_deliveries_are_verified_deduplicated_and_recorded() {
    let worker = tests::shared();
    let tenant = unique_id("gh");
    let other = unique_id("gh-other");
    let secret = "It's a Secret to Everybody";
    set_secret(worker, &tenant, secret).await;
    set_secret(worker, &other, "another tenant's secret").await;
    let reader = Client::new(worker.url()).with_token(Some(worker.token("e2e", &tenant, "read")));

    // Integrations list what is configured, never the secret; only admins set them.
    let admin = Client::new(worker.url()).with_token(Some(worker.token("ops", &tenant, "admin")));
    let listed = admin.get("/v1/integrations").await;
    assert_eq!(listed.expect(200)["github"]["configured"], true);
    assert!(!listed.text().contains(secret));
    let not_admin = reader
        .send(
            reader
                .request(reqwest::Method::PUT, "/v1/integrations/github")
                .body(json!({"secret": "x"}).to_string()),
        )
        .await;
    not_admin.expect_error(403, "forbidden");

    // Missing, malformed, forged, and another tenant's signatures: 401, nothing recorded.
    let delivery = uuid_like("push-1");
    for signature in [
        None,
        Some("sha1=abc".to_owned()),
        Some(sign("wrong secret", PUSH)),
        Some(sign("another tenant's secret", PUSH)),
    ] {
        deliver(
            worker,
            &tenant,
            "push",
            &delivery,
            signature.as_deref(),
            PUSH,
        )
        .await
        .expect_error(401, "unauthorized");
    }
    // A body altered after signing.
    let mut altered = PUSH.to_vec();
    altered.extend_from_slice(b" ");
    deliver(
        worker,
        &tenant,
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        &altered,
    )
    .await
    .expect_error(401, "unauthorized");
    // Signed for this tenant, sent to another.
    deliver(
        worker,
        &other,
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        PUSH,
    )
    .await
    .expect_error(401, "unauthorized");
    reader
        .state("repository", REPOSITORY, "")
        .await
        .expect_error(404, "not_found");

    // Valid, twice: recorded once.
    let first = deliver(
        worker,
        &tenant,
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        PUSH,
    )
    .await;
    assert_eq!(first.expect(202)["status"], "recorded", "{}", first.text());
    let second = deliver(
        worker,
        &tenant,
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        PUSH,
    )
    .await;
    assert_eq!(
        second.expect(202)["status"],
        "duplicate",
        "{}",
        second.text()
    );
    let log = reader.all_events("repository", REPOSITORY).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["type"], "PushRecorded");

    // A failed CI run is an event, and searchable.
    let run = uuid_like("run-1");
    deliver(
        worker,
        &tenant,
        "workflow_run",
        &run,
        Some(&sign(secret, WORKFLOW_RUN)),
        WORKFLOW_RUN,
    )
    .await
    .expect(202);
    let log = reader.all_events("repository", REPOSITORY).await;
    assert_eq!(log.last().unwrap()["type"], "WorkflowRunFailed", "{log:?}");
    let version = log.len();
    let token = format!("repository/{REPOSITORY}@{version}");
    let found = reader
        .get(&format!(
            "/v1/knowledge/search?q=CI%20failed%20main&kinds=ci_run&consistency={token}"
        ))
        .await
        .expect(200);
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(results[0]["kind"], "ci_run");
    assert_eq!(results[0]["body"]["status"], "failed");
    assert!(
        results[0]["snippet"].as_str().unwrap().contains("<mark>"),
        "{found}"
    );

    // Unknown kinds are acknowledged and ignored; bad requests are the documented errors.
    let ping = deliver(
        worker,
        &tenant,
        "ping",
        &uuid_like("ping"),
        Some(&sign(secret, PING)),
        PING,
    )
    .await;
    assert_eq!(ping.expect(202)["status"], "ignored");
    deliver(
        worker,
        "not a tenant!",
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        PUSH,
    )
    .await
    .expect_error(400, "bad_request");
    let no_tenant = Client::new(worker.url())
        .post_raw("/v1/ingest/github", Some("application/json"), PUSH.to_vec())
        .await;
    no_tenant.expect_error(400, "bad_request");
    // Signed garbage is a 400 (GitHub shows it as a failed delivery), not a 5xx.
    let garbage = b"{\"not\": \"a push\"}";
    deliver(
        worker,
        &tenant,
        "push",
        &uuid_like("g"),
        Some(&sign(secret, garbage)),
        garbage,
    )
    .await
    .expect_error(400, "bad_request");
    // A tenant with no secret refuses everything.
    deliver(
        worker,
        &unique_id("no-secret"),
        "push",
        &delivery,
        Some(&sign(secret, PUSH)),
        PUSH,
    )
    .await
    .expect_error(401, "unauthorized");
    assert_eq!(
        reader.all_events("repository", REPOSITORY).await.len(),
        version
    );
}

/// A GUID-shaped delivery id unique to this run.
fn uuid_like(tag: &str) -> String {
    unique_id(tag)
}
