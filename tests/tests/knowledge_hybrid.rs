//! Hybrid knowledge search against a real Cloudflare deployment — Vectorize and Workers AI
//! exist only there (Miniflare has no simulation of either), so this test cannot run
//! against the local runtime. It is ignored unless asked for; `scripts/test` asks for it
//! when `EDGELOOP_DEPLOYED_URL` and `EDGELOOP_DEPLOYED_TOKEN` (scopes `commands read`) are
//! set, and the run's totals count it as skipped otherwise.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Client, unique_id};

#[tokio::test]
#[ignore = "needs a deployment with AI and VECTORIZE bound: set EDGELOOP_DEPLOYED_URL and EDGELOOP_DEPLOYED_TOKEN (scripts/test then runs it)"]
async fn a_paraphrase_finds_a_card_by_meaning_on_a_deployment_with_vectorize() {
    let (Ok(url), Ok(token)) = (
        std::env::var("EDGELOOP_DEPLOYED_URL"),
        std::env::var("EDGELOOP_DEPLOYED_TOKEN"),
    ) else {
        panic!("EDGELOOP_DEPLOYED_URL and EDGELOOP_DEPLOYED_TOKEN must be set to run this test");
    };
    let c = Client::new(&url).with_token(Some(token));
    let board = unique_id("hybrid");
    c.ok(
        "board",
        &board,
        json!({"type": "CreateBoard", "data": {"title": "Hybrid search check"}}),
    )
    .await;
    c.ok(
        "board",
        &board,
        json!({"type": "AddCard", "data": {"card_id": "pay", "title": "Checkout button does nothing when tapped"}}),
    )
    .await;
    // No word in common with the card: only the vector side can find it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let answer = c
            .get("/v1/knowledge/search?q=payment%20page%20frozen&kinds=card&match=any&limit=20")
            .await
            .expect(200);
        assert_eq!(answer["mode"], "hybrid", "{answer}");
        let found = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["doc_id"] == format!("card:{board}:pay"));
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the paraphrase never found the card: {answer}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
