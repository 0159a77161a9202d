//! The global stream's figures: filling one partition from concurrent writers, the time
//! until the stream holds everything, and replay — reading the whole partition page by
//! page (`GET /v1/stream?partition=P&after=O&limit=M`) in each encoding, hot or archived.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use client::reqwest::Method;
use client::reqwest::header::ACCEPT;
use client::{EventEnvelope, StreamPage};

use crate::measure::per_second;
use crate::session::{Session, add_card, create_board};

/// Events per board in a fill: well inside a board's 5,000 cards, and a read-model
/// document stays small.
const EVENTS_PER_BOARD: usize = 500;

/// The encodings a stream page is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Ndjson,
    MessagePack,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::Json, Encoding::Ndjson, Encoding::MessagePack];

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::Ndjson => "NDJSON",
            Encoding::MessagePack => "MessagePack",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::MessagePack => "application/msgpack",
        }
    }
}

/// `events` commands from `clients` concurrent writers, each writing its own boards one
/// after another (`CreateBoard`, then `AddCard`s): one event per command. Returns the
/// commands per second.
pub async fn fill(session: &Session, prefix: &str, events: usize, clients: usize) -> f64 {
    let started = Instant::now();
    let writers = (0..clients).map(|c| {
        let share = events / clients + usize::from(c < events % clients);
        async move {
            let mut board = String::new();
            for k in 0..share {
                if k % EVENTS_PER_BOARD == 0 {
                    board = format!("{prefix}-{c}-{}", k / EVENTS_PER_BOARD);
                    session.command(&board, &create_board("fill")).await;
                } else {
                    session.command(&board, &add_card(&format!("c{k}"))).await;
                }
            }
        }
    });
    futures_util::future::join_all(writers).await;
    per_second(events, started.elapsed())
}

/// Waits until `partition`'s head reaches `head` (forwarding is asynchronous).
pub async fn await_head(session: &Session, partition: u32, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let partitions = session.client.partitions().await.expect("partitions");
        let now = partitions[partition as usize].head;
        assert!(
            now <= head,
            "partition {partition} holds {now} events, expected {head}"
        );
        if now == head {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partition {partition} stuck at {now} of {head}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What reading a whole partition cost.
#[derive(Debug, Clone)]
pub struct Replay {
    pub encoding: Encoding,
    pub events: u64,
    pub pages: usize,
    pub bytes: usize,
    pub elapsed: Duration,
    /// The part of `elapsed` spent decoding pages in this process.
    pub decoding: Duration,
    /// `x-edgeloop-cache` answers (`hit`, `miss`) and how many pages had each; pages of the
    /// hot table have none.
    pub cache: BTreeMap<String, usize>,
}

impl Replay {
    pub fn events_per_second(&self) -> f64 {
        per_second(self.events as usize, self.elapsed)
    }

    /// `"10 pages, 9 hit"`: where the pages came from.
    pub fn pages_cell(&self) -> String {
        let mut cell = format!(
            "{} page{}",
            self.pages,
            if self.pages == 1 { "" } else { "s" }
        );
        for (outcome, n) in &self.cache {
            cell.push_str(&format!(", {n} {outcome}"));
        }
        cell
    }
}

/// Reads `partition` from the start to its head in pages of `limit`, in `encoding`, and
/// decodes every envelope (as a consumer would). Checks that the offsets are exactly
/// `1..=head`, in order, and that `head` is the partition's head.
pub async fn replay(
    session: &Session,
    partition: u32,
    limit: u32,
    encoding: Encoding,
    head: u64,
) -> Replay {
    let mut replay = Replay {
        encoding,
        events: 0,
        pages: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
        decoding: Duration::ZERO,
        cache: BTreeMap::new(),
    };
    let mut after = 0;
    let started = Instant::now();
    loop {
        let path = format!("/v1/stream?partition={partition}&after={after}&limit={limit}");
        let request = session
            .client
            .request(Method::GET, &path)
            .header(ACCEPT, encoding.accept());
        let reply = session.client.send(request).await.expect("a stream page");
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        replay.pages += 1;
        replay.bytes += reply.body.len();
        if let Some(outcome) = reply.header("x-edgeloop-cache") {
            *replay.cache.entry(outcome.to_owned()).or_default() += 1;
        }
        let decoding = Instant::now();
        let (events, next_after) = match encoding {
            Encoding::Json => {
                let page: StreamPage = serde_json::from_slice(&reply.body).expect("a JSON page");
                assert_eq!(page.head, head, "{path}");
                (page.events, page.next_after)
            }
            Encoding::MessagePack => {
                let page: StreamPage =
                    rmp_serde::from_slice(&reply.body).expect("a MessagePack page");
                assert_eq!(page.head, head, "{path}");
                (page.events, page.next_after)
            }
            Encoding::Ndjson => {
                let events = reply
                    .body
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| serde_json::from_slice::<EventEnvelope>(line).expect("a line"))
                    .collect::<Vec<_>>();
                let next_after = match reply.header("x-next-after").expect("x-next-after") {
                    "null" => None,
                    n => Some(n.parse().expect("a cursor")),
                };
                (events, next_after)
            }
        };
        replay.decoding += decoding.elapsed();
        for event in &events {
            let position = event.position.expect("a stream event has a position");
            assert_eq!(
                (position.partition, position.offset),
                (partition, replay.events + 1),
                "a gap or a repeat in the stream"
            );
            replay.events += 1;
        }
        match next_after {
            Some(next) => {
                assert!(next > after, "the cursor did not move: {path}");
                after = next;
            }
            None => break,
        }
    }
    replay.elapsed = started.elapsed();
    assert_eq!(replay.events, head, "read {} of {head}", replay.events);
    replay
}

/// What `POST /v1/stream/partitions/{p}/archive` did.
pub struct Archived {
    pub elapsed: Duration,
    pub segments: u64,
    pub hot_events: u64,
}

/// `POST /v1/stream/partitions/{p}/archive`: seals what the policy allows into R2 now.
pub async fn archive(session: &Session, partition: u32) -> Archived {
    let started = Instant::now();
    let status = session
        .ok(
            Method::POST,
            &format!("/v1/stream/partitions/{partition}/archive"),
        )
        .await;
    let count = |field: &str| {
        status[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    };
    Archived {
        elapsed: started.elapsed(),
        segments: count("archived_segments"),
        hot_events: count("hot_events"),
    }
}
