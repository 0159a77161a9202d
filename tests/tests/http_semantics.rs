//! HTTP details the contract test found missing: a 405 names the allowed methods in
//! `Allow`, a 401 carries `WWW-Authenticate: Bearer` (RFC 9110), operational routes refuse
//! unknown query parameters, and a trace finds a correlation id that had to be escaped.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Client, cmd, shared};

#[tokio::test]
async fn a_405_says_allow_and_a_401_says_bearer() {
    let c = shared().client();
    let reply = c
        .send(c.request(reqwest::Method::PATCH, "/v1/stream"))
        .await;
    reply.expect_error(405, "method_not_allowed");
    assert_eq!(reply.header("allow").as_deref(), Some("GET"));
    let anonymous = Client::new(shared().url()).with_token(None);
    let reply = anonymous.get("/v1/stream?partition=0").await;
    reply.expect_error(401, "unauthorized");
    assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
    c.post_raw("/v1/stream/partitions/0/resume?bogus=1", None, "")
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn a_trace_finds_an_escaped_correlation_id() {
    let c = shared().client();
    let id = tests::unique_id("escaped");
    let mut body = cmd("SubmitFeedback", json!({"text": "t", "source": "web"}));
    body["correlation_id"] = json!("flow 1/a");
    c.ok("feedback", &id, body).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trace = c.get("/v1/trace/flow%201%2Fa").await.expect(200);
        assert_eq!(trace["correlation_id"], "flow 1/a");
        if trace["events"].as_array().is_some_and(|e| e.len() == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "{trace}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
