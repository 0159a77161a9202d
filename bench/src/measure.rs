//! Samples and what a report says about the machine: latency percentiles, rates, the CPU,
//! the load, and the Worker build that was measured.

use std::time::Duration;

/// Latency percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub p99: f64,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let at = |q: f64| {
            samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
        };
        Stats {
            median: at(0.5),
            p99: at(0.99),
        }
    }

    /// `median / p99 ms`, as every table prints latencies.
    pub fn cell(&self) -> String {
        format!("{:.2} / {:.2} ms", self.median, self.p99)
    }
}

/// A rate, and the latency of each request behind it.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: f64,
    pub latency: Stats,
}

/// `count` things in `elapsed`, per second.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// "2 cores, <CPU model>" from /proc/cpuinfo.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// The 1-, 5- and 15-minute load averages: other work on a shared machine moves every
/// figure, so a report says how busy the machine was.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The Worker build the harness runs (`build/index_bg.wasm`): size and modification time,
/// so that two reports can tell whether they measured the same build.
pub fn build() -> String {
    let wasm = tests::repo_root().join("build/index_bg.wasm");
    match std::fs::metadata(&wasm) {
        Ok(meta) => {
            let modified = meta
                .modified()
                .map(|t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .format("%Y-%m-%d %H:%M:%S UTC")
                        .to_string()
                })
                .unwrap_or_else(|_| "unknown time".into());
            format!("{} bytes, built {modified}", meta.len())
        }
        Err(e) => format!("unreadable ({e})"),
    }
}

/// A new empty directory under the system's temporary directory, named `prefix-PID-N`
/// (the caller removes it).
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
