//! CORS as a browser meets it: preflights, and the allowance on the real answers — every
//! answer a script in an allowed origin reads (successes from the aggregate, its refusals,
//! and the Worker's own 401/404) carries `access-control-allow-origin` for that origin, with
//! the headers a client needs exposed; a disallowed origin gets none of it.

use serde_json::json;
use tests::{Client, Options, Reply, Worker, cmd, unique_id};

const ALLOWED: &str = "https://app.example.com, http://localhost:*";

fn worker() -> Worker {
    Worker::start_with(Options::new().var("CORS_ALLOWED_ORIGINS", ALLOWED))
}

/// What is wrong with an answer's CORS headers for `origin` (`allowed` or not).
fn cors_problem(reply: &Reply, origin: &str, allowed: bool) -> Option<String> {
    let granted = reply.header("access-control-allow-origin");
    if !allowed {
        return granted.map(|g| format!("disallowed origin granted as {g:?}"));
    }
    if granted.as_deref() != Some(origin) {
        return Some(format!(
            "{} answer: access-control-allow-origin is {granted:?}",
            reply.status
        ));
    }
    let vary = reply
        .header("vary")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !vary.contains("origin") {
        return Some(format!("no `Vary: Origin` (vary: {vary:?})"));
    }
    None
}

#[tokio::test]
async fn preflights_allow_the_configured_origins_only() {
    let worker = worker();
    let anonymous = Client::new(worker.url());
    let path = format!("/v1/aggregates/board/{}/commands", unique_id("board-cors"));
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("http://localhost:5173", true),
        ("http://localhost", true),
        ("https://app.example.com.evil.example", false),
        ("http://localhost.evil.example", false),
        ("http://localhost:80x", false),
        ("null", false),
    ] {
        let request = anonymous
            .request(reqwest::Method::OPTIONS, &path)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            );
        let reply = anonymous.send(request).await;
        assert_eq!(
            reply.status,
            204,
            "preflight from {origin}: {}",
            reply.text()
        );
        if let Some(problem) = cors_problem(&reply, origin, allowed) {
            panic!("preflight from {origin}: {problem}");
        }
        if allowed {
            let methods = reply
                .header("access-control-allow-methods")
                .unwrap_or_default();
            assert!(methods.contains("POST"), "allow-methods: {methods}");
            let headers = reply
                .header("access-control-allow-headers")
                .unwrap_or_default()
                .to_ascii_lowercase();
            for needed in ["authorization", "content-type", "idempotency-key"] {
                assert!(
                    headers.contains(needed),
                    "allow-headers lacks {needed}: {headers}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_answer_to_an_allowed_origin_carries_the_allowance() {
    let worker = worker();
    let c = worker.client();
    let anonymous = Client::new(worker.url());
    let id = unique_id("board-cors");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "CORS"})))
        .await;
    let commands = format!("/v1/aggregates/board/{id}/commands");

    let mut failures = Vec::new();
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("https://app.example.com", true),
        ("https://evil.example", false),
    ] {
        let add = |card: &str| cmd("AddCard", json!({"card_id": card, "title": "t"}));
        let card = unique_id("card");
        let answers: Vec<(&str, Reply)> = vec![
            (
                "a command (200, from the aggregate)",
                c.send(
                    c.request(reqwest::Method::POST, &commands)
                        .header("origin", origin)
                        .header("idempotency-key", card.as_str())
                        .json(&add(&card)),
                )
                .await,
            ),
            (
                "a refused command (422, from the aggregate)",
                c.send(
                    c.request(reqwest::Method::POST, &commands)
                        .header("origin", origin)
                        .json(&add(&card)),
                )
                .await,
            ),
            (
                "the state (200)",
                c.send(
                    c.request(reqwest::Method::GET, &format!("/v1/aggregates/board/{id}"))
                        .header("origin", origin),
                )
                .await,
            ),
            (
                "the listing (200)",
                c.send(
                    c.request(
                        reqwest::Method::GET,
                        &format!("/v1/aggregates/board/{id}/events?limit=1"),
                    )
                    .header("origin", origin),
                )
                .await,
            ),
            (
                "no token (401, from the Worker)",
                anonymous
                    .send(
                        anonymous
                            .request(reqwest::Method::GET, &format!("/v1/aggregates/board/{id}"))
                            .header("origin", origin),
                    )
                    .await,
            ),
            (
                "an unknown type (404, from the Worker)",
                c.send(
                    c.request(reqwest::Method::GET, &format!("/v1/aggregates/nope/{id}"))
                        .header("origin", origin),
                )
                .await,
            ),
        ];
        for (what, reply) in &answers {
            assert!(reply.status < 500, "{what}: {}", reply.text());
            if let Some(problem) = cors_problem(reply, origin, allowed) {
                failures.push(format!("{origin}, {what}: {problem}"));
            } else if allowed {
                let exposed = reply
                    .header("access-control-expose-headers")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                for needed in ["idempotent-replayed", "retry-after", "x-next-after"] {
                    if !exposed.contains(needed) {
                        failures.push(format!(
                            "{origin}, {what}: {needed} not exposed ({exposed:?})"
                        ));
                    }
                }
            }
        }
    }
    // Without an Origin, no CORS headers at all.
    let reply = c.state("board", &id, "").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert!(
        failures.is_empty(),
        "{} answers without the right CORS headers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
