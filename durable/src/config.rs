//! Limits and tunables, read from the Worker's vars (`[vars]` in `wrangler.toml`).
//! Every value has a default so a bare deployment works.

use worker::Env;

#[derive(Debug, Clone)]
pub struct Config {
    /// Largest accepted request body (413 above). Var `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// Most events one command may append (413 above). Var `MAX_EVENTS_PER_COMMAND`.
    pub max_events_per_command: usize,
    /// Most events one batch may append (413 above). Var `MAX_EVENTS_PER_BATCH`.
    pub max_events_per_batch: usize,
    /// A snapshot is written every this many events (0 = never). Var `SNAPSHOT_EVERY`.
    pub snapshot_every: u64,
    /// Most live sockets on one aggregate (429 above). Var `MAX_SUBSCRIBERS_PER_AGGREGATE`.
    pub max_subscribers: usize,
    /// Most events sent to a socket and not yet acknowledged by it. A live subscriber past
    /// it is closed (4008); a catching-up one waits for acks. Var `WS_ACK_WINDOW`.
    pub ws_ack_window: u64,
    /// Most frames a client may send per second on one socket (4029 above).
    /// Var `WS_MAX_FRAMES_PER_SECOND`.
    pub ws_max_frames_per_second: u32,
    /// How many partitions each tenant's global stream has. Var `STREAM_PARTITIONS`
    /// (1–256, default 4). Changing it re-maps aggregates to partitions (README). An
    /// invalid value is an error — never a silent fallback that would move aggregates —
    /// kept here and reported (500, logged) by whatever needs the stream.
    pub stream_partitions: Result<stream::PartitionCount, String>,
    /// Events per archived segment; 0 disables archiving. Var `STREAM_SEGMENT_EVENTS`.
    pub stream_segment_events: u64,
    /// Newest events of a partition always kept hot (in the object's SQLite).
    /// Var `STREAM_HOT_EVENTS`.
    pub stream_hot_events: u64,
    /// Longest wait between two attempts to forward an aggregate's events to its
    /// partition (ms); retries back off from 100 ms up to it. Var `STREAM_RETRY_MAX_MS`.
    pub stream_retry_max_ms: u64,
    /// Whether immutable reads are cached in KV (`EDGE_CACHE`). Var `EDGE_CACHE_ENABLED`
    /// (`true`/`false`).
    pub edge_cache: bool,
    /// Longest a projection read given a consistency token waits for the command's effect
    /// before answering 503 (ms). Var `PROJECTION_WAIT_MS`.
    pub projection_wait_ms: u64,
    /// Largest read-model document (bytes of JSON); a fold producing a larger one faults
    /// its projection. Default 1 MiB, Convex's document limit.
    /// Var `PROJECTION_MAX_DOCUMENT_BYTES`.
    pub projection_max_document_bytes: usize,
    /// The Convex deployment read models are mirrored into (`https://….convex.cloud`), if
    /// any. Var `CONVEX_URL`; its deploy key is the secret `CONVEX_DEPLOY_KEY`.
    pub convex_url: Option<String>,
    /// The `auto_archive` policy: archive cards that sat in `auto_archive_column` longer
    /// than this (ms); 0 turns it off. Vars `AUTO_ARCHIVE_AFTER_MS`, `AUTO_ARCHIVE_COLUMN`.
    pub auto_archive_after_ms: u64,
    pub auto_archive_column: String,
    /// How long the ingestion object buffers a group's error reports before it records them
    /// as one `RecordOccurrences` (ms): at most one event per error group per window. Var
    /// `TELEMETRY_WINDOW_MS`.
    pub telemetry_window_ms: u64,
    /// Error reports a tenant may send per minute (token bucket: also the burst); over it,
    /// 429 with `Retry-After`. Var `TELEMETRY_RATE_PER_MINUTE`.
    pub telemetry_rate_per_minute: u64,
    /// The least time between two wakes of the projectors by a partition (ms): events that
    /// arrive within it after a wake are folded together in the next one, while the first
    /// event after a quiet spell wakes them at once ([`stream::pacing`]). Adds at most this
    /// much to commit → read model. Var `PROJECTION_WAKE_INTERVAL_MS`.
    pub projection_wake_interval_ms: u64,
    /// The least time between two forwards of an aggregate's events to its partition (ms),
    /// paced like the projectors' wakes: the first commit after a quiet spell is forwarded
    /// at once, commits right after a forward travel together in the next one. Adds at most
    /// this much to commit → stream. Var `STREAM_FORWARD_INTERVAL_MS`.
    pub stream_forward_interval_ms: u64,
    /// How many documents a knowledge search answers at most (`limit`'s ceiling). Var
    /// `KNOWLEDGE_MAX_RESULTS`.
    pub knowledge_max_results: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_command: 100,
            max_events_per_batch: 1000,
            snapshot_every: 100,
            max_subscribers: 1000,
            ws_ack_window: 1000,
            ws_max_frames_per_second: 200,
            stream_partitions: Ok(stream::PartitionCount::default()),
            stream_segment_events: 10_000,
            stream_hot_events: 50_000,
            stream_retry_max_ms: 10_000,
            edge_cache: true,
            projection_wait_ms: 5_000,
            projection_max_document_bytes: 1024 * 1024,
            convex_url: None,
            auto_archive_after_ms: 0,
            auto_archive_column: "Done".to_owned(),
            telemetry_window_ms: 10_000,
            telemetry_rate_per_minute: 60_000,
            knowledge_max_results: 50,
            projection_wake_interval_ms: 50,
            stream_forward_interval_ms: 20,
        }
    }
}

impl Config {
    /// The partition count, or the 500 a misconfigured `STREAM_PARTITIONS` means.
    pub fn partitions(&self) -> crate::ApiResult<stream::PartitionCount> {
        self.stream_partitions
            .clone()
            .map_err(crate::ApiError::internal)
    }

    pub fn from_env(env: &Env) -> Self {
        let defaults = Self::default();
        Self {
            max_body_bytes: var(env, "MAX_BODY_BYTES").unwrap_or(defaults.max_body_bytes),
            max_events_per_command: var(env, "MAX_EVENTS_PER_COMMAND")
                .unwrap_or(defaults.max_events_per_command),
            max_events_per_batch: var(env, "MAX_EVENTS_PER_BATCH")
                .unwrap_or(defaults.max_events_per_batch),
            snapshot_every: var(env, "SNAPSHOT_EVERY").unwrap_or(defaults.snapshot_every),
            max_subscribers: var(env, "MAX_SUBSCRIBERS_PER_AGGREGATE")
                .unwrap_or(defaults.max_subscribers),
            ws_ack_window: var(env, "WS_ACK_WINDOW")
                .filter(|w| *w > 0)
                .unwrap_or(defaults.ws_ack_window),
            ws_max_frames_per_second: var(env, "WS_MAX_FRAMES_PER_SECOND")
                .unwrap_or(defaults.ws_max_frames_per_second),
            stream_partitions: stream::PartitionCount::from_var(
                env.var("STREAM_PARTITIONS")
                    .ok()
                    .map(|v| v.to_string())
                    .as_deref(),
            )
            .map_err(|e| format!("STREAM_PARTITIONS: {e}")),
            stream_segment_events: var(env, "STREAM_SEGMENT_EVENTS")
                .unwrap_or(defaults.stream_segment_events),
            stream_hot_events: var(env, "STREAM_HOT_EVENTS").unwrap_or(defaults.stream_hot_events),
            stream_retry_max_ms: var(env, "STREAM_RETRY_MAX_MS")
                .filter(|ms| *ms >= 100)
                .unwrap_or(defaults.stream_retry_max_ms),
            edge_cache: var::<bool>(env, "EDGE_CACHE_ENABLED").unwrap_or(defaults.edge_cache),
            projection_wait_ms: var(env, "PROJECTION_WAIT_MS")
                .unwrap_or(defaults.projection_wait_ms),
            projection_max_document_bytes: var(env, "PROJECTION_MAX_DOCUMENT_BYTES")
                .unwrap_or(defaults.projection_max_document_bytes),
            convex_url: env
                .var("CONVEX_URL")
                .ok()
                .map(|v| v.to_string().trim().trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty()),
            auto_archive_after_ms: var(env, "AUTO_ARCHIVE_AFTER_MS")
                .unwrap_or(defaults.auto_archive_after_ms),
            auto_archive_column: env
                .var("AUTO_ARCHIVE_COLUMN")
                .ok()
                .map(|v| v.to_string())
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(defaults.auto_archive_column),
            telemetry_window_ms: var(env, "TELEMETRY_WINDOW_MS")
                .filter(|ms| *ms > 0)
                .unwrap_or(defaults.telemetry_window_ms),
            telemetry_rate_per_minute: var(env, "TELEMETRY_RATE_PER_MINUTE")
                .filter(|n| *n > 0)
                .unwrap_or(defaults.telemetry_rate_per_minute),
            projection_wake_interval_ms: var(env, "PROJECTION_WAKE_INTERVAL_MS")
                .map(|ms: u64| ms.min(10_000))
                .unwrap_or(defaults.projection_wake_interval_ms),
            stream_forward_interval_ms: var(env, "STREAM_FORWARD_INTERVAL_MS")
                .map(|ms: u64| ms.min(10_000))
                .unwrap_or(defaults.stream_forward_interval_ms),
            knowledge_max_results: var(env, "KNOWLEDGE_MAX_RESULTS")
                .filter(|n| *n > 0)
                .unwrap_or(defaults.knowledge_max_results),
        }
    }
}

/// A numeric var; a missing or unparsable one falls back to the default.
fn var<T: std::str::FromStr>(env: &Env, name: &str) -> Option<T> {
    env.var(name)
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
}
