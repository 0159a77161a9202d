//! A benchmark's view of one running Worker: raw commands, the no-op baseline, sockets that
//! never hang the run.

use std::time::{Duration, Instant};

use client::reqwest::{self, Method};
use client::{Client, Incoming, Socket, Upgrade};
use serde_json::{Value, json};
use tests::Worker;

use crate::measure::{Rate, Stats, per_second};

/// The tenant every benchmark writes to.
pub const TENANT: &str = "bench";

/// Longest wait for one socket frame before the run fails (a lost frame is a bug, not a
/// slow figure).
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Session {
    pub client: Client,
}

impl Session {
    /// A client of `worker` with a token for `scopes`, on a connection pool large enough
    /// for the concurrent figures.
    pub fn new(worker: &Worker, scopes: &str) -> Session {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .no_proxy()
            .build()
            .expect("http client");
        let client = Client::new(worker.url())
            .expect("the harness gives an http:// URL")
            .with_http(http)
            .with_token(worker.token("bench", TENANT, scopes));
        Session { client }
    }

    /// The same client with a 10-minute request timeout, for requests to an object that may
    /// be busy for a long time (a rebuilding projector): the figure is how long they wait.
    pub fn patient(&self) -> Session {
        Session {
            client: self
                .client
                .clone()
                .with_request_timeout(Duration::from_secs(600)),
        }
    }

    /// One command through the client's raw layer: no idempotency key and no retries, so
    /// the figure is the server's cost alone, as in earlier results.
    pub async fn command(&self, id: &str, body: &Value) -> Duration {
        self.command_answer(id, body).await.0
    }

    /// [`Session::command`], with the answer's body (version, consistency token).
    pub async fn command_answer(&self, id: &str, body: &Value) -> (Duration, Value) {
        let started = Instant::now();
        let request = self
            .client
            .request(Method::POST, &format!("/v1/aggregates/board/{id}/commands"))
            .json(body);
        let reply = self.client.send(request).await.expect("command sent");
        let elapsed = started.elapsed();
        assert!(
            reply.is_success(),
            "command failed: {} {}",
            reply.status,
            reply.text()
        );
        (elapsed, reply.json().expect("a command's answer is JSON"))
    }

    /// A request that must succeed; its JSON body.
    pub async fn ok(&self, method: Method, path: &str) -> Value {
        let reply = self
            .client
            .send(self.client.request(method, path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            reply.is_success(),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
        reply.json().expect("a JSON answer")
    }

    /// `GET /healthz` in a loop: the runtime's ceiling for one connection, the baseline
    /// every other figure is compared with.
    pub async fn noop(&self, n: usize) -> Rate {
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            self.client.get("/healthz").await.expect("healthz");
            samples.push(t.elapsed());
        }
        Rate {
            per_second: per_second(n, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// Opens a socket on `path` (authenticated by the `Authorization` header).
    pub async fn socket(&self, path: &str) -> Socket {
        match self.client.upgrade(path, &[]).await.expect("upgrade") {
            Upgrade::Accepted(socket) => *socket,
            Upgrade::Refused(reply) => {
                panic!("{path} refused: {} {}", reply.status, reply.text())
            }
        }
    }
}

/// A new board, `CreateBoard`; its version is then 1.
pub fn create_board(title: &str) -> Value {
    json!({ "type": "CreateBoard", "data": { "title": title } })
}

/// `AddCard` with this card id: one `CardAdded` event.
pub fn add_card(card_id: &str) -> Value {
    json!({ "type": "AddCard", "data": { "card_id": card_id, "title": "a card" } })
}

/// The next text frame as JSON; panics when the socket closes or stays silent.
pub async fn next_frame(socket: &mut Socket) -> Value {
    let incoming = tokio::time::timeout(FRAME_TIMEOUT, socket.recv())
        .await
        .unwrap_or_else(|_| panic!("no frame within {FRAME_TIMEOUT:?}"))
        .expect("socket read");
    match incoming {
        Some(Incoming::Text(text)) => serde_json::from_str(&text).expect("a JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}
