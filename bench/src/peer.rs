//! Runs `bench/peer` (its own Cargo workspace: cqrs-es + postgres-es on a PostgreSQL it
//! starts and stops itself, and SQLite through rusqlite) and reads the JSON it prints.
//! Kept out of this workspace so that sqlx, PostgreSQL and SQLite never enter the
//! product's build.

use std::process::{Command, Stdio};

use serde_json::Value;

/// `cargo run --release` of the peer (built on first use; `scripts/bench` builds it first),
/// with `--quick` when asked. Its progress goes to our stderr.
pub fn run(quick: bool) -> Value {
    let manifest = tests::repo_root().join("bench/peer/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args(["run", "--release", "--locked", "-q", "--manifest-path"])
        .arg(&manifest)
        .arg("--");
    if quick {
        command.arg("--quick");
    }
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the peer benchmark");
    assert!(
        output.status.success(),
        "the peer benchmark failed ({})",
        output.status
    );
    serde_json::from_slice(&output.stdout).expect("the peer prints one JSON object")
}

/// A number at `path` (`/`-separated keys) of the peer's JSON.
pub fn num(peer: &Value, path: &str) -> Option<f64> {
    path.split('/')
        .try_fold(peer, |v, key| v.get(key))
        .and_then(Value::as_f64)
}

/// A string at `path`.
pub fn text(peer: &Value, path: &str) -> Option<String> {
    path.split('/')
        .try_fold(peer, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
