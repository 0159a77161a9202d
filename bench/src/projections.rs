//! Read-model figures that need a full stream: how long `board_summary` takes to catch up
//! after a fill, and how fast a rebuild folds the whole stream again.

use std::cell::Cell;
use std::time::{Duration, Instant};

use client::reqwest::Method;
use serde_json::Value;

use crate::measure::Stats;
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

/// What a rebuild cost, and what readers saw meanwhile.
pub struct Rebuilt {
    /// `POST …/rebuild` → the new generation serving alone.
    pub elapsed: Duration,
    /// Reads of one document, back to back, during the rebuild (the old generation serves).
    pub reads: Option<Stats>,
    pub slowest_read: Duration,
    /// Reads answered with anything but 200.
    pub failed_reads: usize,
    /// The slowest `GET /v1/projections` of the polling loop.
    pub slowest_status: Duration,
}

/// `POST /v1/projections/board_summary/rebuild`, then waits until the new generation
/// serves alone (status `active`, one generation), while another reader reads `doc_id`
/// back to back. Both use a long timeout: a busy projector shows as a slow answer.
pub async fn rebuild(session: &Session, doc_id: &str) -> Rebuilt {
    let session = session.patient();
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
    let done = Cell::new(false);
    let deadline = started + Duration::from_secs(1800);
    let poll = async {
        let mut slowest = Duration::ZERO;
        loop {
            let asked = Instant::now();
            let status = status(&session).await;
            slowest = slowest.max(asked.elapsed());
            assert_ne!(status["status"], "faulted", "{status}");
            let generations = status["generations"].as_array().expect("generations");
            if status["status"] == "active"
                && generations.len() == 1
                && generations[0]["generation"] == generation
            {
                done.set(true);
                return (started.elapsed(), slowest);
            }
            assert!(
                Instant::now() < deadline,
                "the rebuild never took over: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let read = async {
        let path = format!("/v1/projections/{PROJECTION}/{doc_id}");
        let mut samples = Vec::new();
        let mut failed = 0;
        while !done.get() {
            let asked = Instant::now();
            let reply = session.client.get(&path).await.expect("a document read");
            samples.push(asked.elapsed());
            if reply.status != 200 {
                failed += 1;
            }
        }
        (samples, failed)
    };
    let ((elapsed, slowest_status), (samples, failed_reads)) = tokio::join!(poll, read);
    Rebuilt {
        elapsed,
        slowest_read: samples.iter().max().copied().unwrap_or_default(),
        reads: (!samples.is_empty()).then(|| Stats::of(samples)),
        failed_reads,
        slowest_status,
    }
}
