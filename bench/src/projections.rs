//! Read-model figures that need a full stream: how long `board_summary` takes to catch up
//! after a fill, and how fast a rebuild folds the whole stream again.

use std::time::{Duration, Instant};

use client::reqwest::Method;
use serde_json::Value;

use crate::session::Session;

/// The projection every figure uses (one document per board).
const PROJECTION: &str = "board_summary";

/// `board_summary`'s entry in `GET /v1/projections`.
async fn status(session: &Session) -> Value {
    let all = session.ok(Method::GET, "/v1/projections").await;
    all["projections"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == PROJECTION))
        .cloned()
        .unwrap_or_else(|| panic!("no {PROJECTION} in {all}"))
}

/// Waits until the serving generation has applied `partition` up to `head`.
pub async fn await_caught_up(session: &Session, partition: u32, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = status(session).await;
        assert_ne!(status["status"], "faulted", "{status}");
        let checkpoint = status["checkpoints"][partition.to_string()].as_u64();
        if checkpoint == Some(head) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{PROJECTION} never caught up with {head}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /v1/projections/board_summary/rebuild`, then waits until the new generation
/// serves alone (status `active`, one generation); how long that took.
pub async fn rebuild(session: &Session) -> Duration {
    let started = Instant::now();
    let answer = session
        .ok(
            Method::POST,
            &format!("/v1/projections/{PROJECTION}/rebuild"),
        )
        .await;
    let generation = answer["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {answer}"));
    let deadline = started + Duration::from_secs(1800);
    loop {
        let status = status(session).await;
        assert_ne!(status["status"], "faulted", "{status}");
        let generations = status["generations"].as_array().expect("generations");
        if status["status"] == "active"
            && generations.len() == 1
            && generations[0]["generation"] == generation
        {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild never took over: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
