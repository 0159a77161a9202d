//! Limits and tunables, read from the Worker's vars (`[vars]` in `wrangler.toml`).
//! Every value has a default so a bare deployment works.

use worker::Env;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest accepted request body (413 above). Var `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// Most events one command may append (413 above). Var `MAX_EVENTS_PER_COMMAND`.
    pub max_events_per_command: usize,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_command: 100,
            snapshot_every: 100,
            max_subscribers: 1000,
            ws_ack_window: 1000,
            ws_max_frames_per_second: 200,
        }
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Self {
        let defaults = Self::default();
        Self {
            max_body_bytes: var(env, "MAX_BODY_BYTES").unwrap_or(defaults.max_body_bytes),
            max_events_per_command: var(env, "MAX_EVENTS_PER_COMMAND")
                .unwrap_or(defaults.max_events_per_command),
            snapshot_every: var(env, "SNAPSHOT_EVERY").unwrap_or(defaults.snapshot_every),
            max_subscribers: var(env, "MAX_SUBSCRIBERS_PER_AGGREGATE")
                .unwrap_or(defaults.max_subscribers),
            ws_ack_window: var(env, "WS_ACK_WINDOW")
                .filter(|w| *w > 0)
                .unwrap_or(defaults.ws_ack_window),
            ws_max_frames_per_second: var(env, "WS_MAX_FRAMES_PER_SECOND")
                .unwrap_or(defaults.ws_max_frames_per_second),
        }
    }
}

/// A numeric var; a missing or unparsable one falls back to the default.
fn var<T: std::str::FromStr>(env: &Env, name: &str) -> Option<T> {
    env.var(name)
        .ok()
        .and_then(|v| v.to_string().trim().parse().ok())
}
