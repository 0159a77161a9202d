//! A throwaway PostgreSQL: `initdb` into a temporary directory, `pg_ctl start` on a free
//! port of 127.0.0.1 (fsync on, the defaults otherwise), and a guard that always stops it
//! — on drop, on panic, and on Ctrl-C/SIGTERM (see [`stop_on_signal`]).
//!
//! PostgreSQL refuses to run as root: when this process is root, the server's commands
//! run as the `postgres` user (Debian's package creates it) through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The data directory of the running server, for the signal handler.
static RUNNING: Mutex<Option<(PathBuf, Option<String>)>> = Mutex::new(None);

/// Other temporary directories to remove when interrupted (destructors do not run then).
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `dir` too if the process is interrupted (its owner removes it otherwise).
pub fn remove_on_signal(dir: &Path) {
    SCRATCH
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_owned());
}

/// Debian's binaries, else whatever `PATH` holds.
fn binary(name: &str) -> PathBuf {
    let debian = Path::new("/usr/lib/postgresql/15/bin").join(name);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(name)
    }
}

/// `name args…`, as the `postgres` user when we are root.
fn command(user: Option<&str>, name: &str) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(binary(name));
            c
        }
        None => Command::new(binary(name)),
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stop(data: &Path, user: Option<&str>) {
    let mut c = command(user, "pg_ctl");
    c.arg("-D").arg(data).args(["-m", "fast", "-w", "stop"]);
    let _ = c.output();
}

/// One running server; stopped and removed when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    user: Option<String>,
    pub port: u16,
    pub version: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        let root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
            || std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
                .unwrap_or(false);
        let user = root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("edgeloop-peer-pg-")
            .tempdir()
            .expect("a directory for PostgreSQL");
        if let Some(user) = &user {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg(user).arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = command(user.as_deref(), "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        run(initdb, "initdb");
        let port = free_port();
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some((data.clone(), user.clone()));
        let mut start = command(user.as_deref(), "pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=50",
                dir.path().display()
            ))
            .args(["-w", "start"]);
        run(start, "pg_ctl start");
        let output = command(None, "postgres")
            .arg("--version")
            .output()
            .expect("postgres --version");
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Postgres {
            dir,
            user,
            port,
            version,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&self.dir.path().join("data"), self.user.as_deref());
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// On Ctrl-C or SIGTERM: stop the running server (if any), then exit.
pub fn stop_on_signal() {
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((data, user)) = running {
            eprintln!("peer: interrupted, stopping PostgreSQL");
            stop(&data, user.as_deref());
            if let Some(dir) = data.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        for dir in SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
