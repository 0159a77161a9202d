//! The storage ceiling: the appends an aggregate's object makes, through SQLite directly
//! (rusqlite, bundled SQLite, WAL), with no runtime, no network and no JSON in between.
//! Rows of ~200 bytes (a MessagePack event envelope, as Edgeloop stores them).

use std::time::Instant;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A stored event, shaped like Edgeloop's: ~200 bytes of MessagePack.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    event_id: String,
    event_type: String,
    schema_version: u32,
    recorded_at: String,
    actor: String,
    data: Data,
}

#[derive(Debug, Serialize, Deserialize)]
struct Data {
    card_id: String,
    author: String,
    text: String,
}

fn row(seq: u64) -> Vec<u8> {
    let stored = Stored {
        seq,
        event_id: format!("0193a6f2-7c1e-7d3a-9b1f-{seq:012x}"),
        event_type: "CardCommented".into(),
        schema_version: 1,
        recorded_at: "2026-12-07T08:00:00.000Z".into(),
        actor: "bench".into(),
        data: Data {
            card_id: "c0".into(),
            author: "bench".into(),
            text: "a comment of about the length a person writes, give or take a few words".into(),
        },
    };
    rmp_serde::to_vec_named(&stored).expect("encode")
}

fn open(path: &std::path::Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).expect("open SQLite");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    conn.pragma_update(None, "synchronous", synchronous)
        .expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             aggregate_id TEXT NOT NULL,
             seq INTEGER NOT NULL,
             payload BLOB NOT NULL,
             PRIMARY KEY (aggregate_id, seq)
         ) WITHOUT ROWID;",
    )
    .expect("schema");
    conn
}

/// `rows` appends in transactions of `per_tx` rows: rows per second.
fn appends(dir: &std::path::Path, synchronous: &str, rows: usize, per_tx: usize) -> f64 {
    let path = dir.join(format!("{synchronous}-{per_tx}.sqlite"));
    let mut conn = open(&path, synchronous);
    let payloads: Vec<Vec<u8>> = (1..=rows as u64).map(row).collect();
    let started = Instant::now();
    for chunk in payloads.chunks(per_tx).enumerate() {
        let (c, chunk) = chunk;
        let tx = conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (aggregate_id, seq, payload) VALUES (?1, ?2, ?3)",
                )
                .expect("prepare");
            for (i, payload) in chunk.iter().enumerate() {
                let seq = (c * per_tx + i + 1) as i64;
                insert
                    .execute(params!["board-1", seq, payload])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// Reads every row of the aggregate in order and decodes each: rows per second.
fn scan(dir: &std::path::Path, synchronous: &str, per_tx: usize) -> (f64, usize) {
    let path = dir.join(format!("{synchronous}-{per_tx}.sqlite"));
    let conn = open(&path, synchronous);
    let started = Instant::now();
    let mut statement = conn
        .prepare("SELECT seq, payload FROM events WHERE aggregate_id = ?1 ORDER BY seq")
        .expect("prepare");
    let mut rows = statement.query(params!["board-1"]).expect("query");
    let mut count = 0usize;
    while let Some(row) = rows.next().expect("row") {
        let payload = row.get_ref(1).expect("payload").as_blob().expect("blob");
        let stored: Stored = rmp_serde::from_slice(payload).expect("decode");
        assert!(stored.seq > 0);
        count += 1;
    }
    (count as f64 / started.elapsed().as_secs_f64(), count)
}

/// The counts: rows for one-row transactions with FULL and NORMAL, and rows for 100-row
/// transactions (each mode).
pub struct Counts {
    pub single_full: usize,
    pub single_normal: usize,
    pub batched: usize,
}

pub fn run(counts: &Counts) -> Value {
    let dir = tempfile::Builder::new()
        .prefix("edgeloop-peer-sqlite-")
        .tempdir()
        .expect("a directory");
    crate::pg::remove_on_signal(dir.path());
    let row_bytes = row(1).len();
    eprintln!("peer: sqlite, 1 row per transaction");
    let single_full = appends(dir.path(), "FULL", counts.single_full, 1);
    let single_normal = appends(dir.path(), "NORMAL", counts.single_normal, 1);
    eprintln!("peer: sqlite, 100 rows per transaction");
    let batch_full = appends(dir.path(), "FULL", counts.batched, 100);
    let batch_normal = appends(dir.path(), "NORMAL", counts.batched, 100);
    eprintln!("peer: sqlite, scan + decode");
    let (scan_rate, scanned) = scan(dir.path(), "FULL", 100);
    json!({
        "version": rusqlite::version(),
        "row_bytes": row_bytes,
        "single_full": { "rows": counts.single_full, "per_second": single_full },
        "single_normal": { "rows": counts.single_normal, "per_second": single_normal },
        "batch100_full": { "rows": counts.batched, "per_second": batch_full },
        "batch100_normal": { "rows": counts.batched, "per_second": batch_normal },
        "scan_decode": { "rows": scanned, "per_second": scan_rate },
    })
}
