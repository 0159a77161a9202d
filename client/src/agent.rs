//! [`Agent`]: the loop of an agent that reacts to events — poll a consumer group, hand each
//! event to a handler in order, ack or nack its outcome, keep the lease alive while the
//! handler works, send the handler's commands so that a redelivered event cannot act twice,
//! and stop cleanly.
//!
//! ```no_run
//! use client::agent::{Agent, Context, HandlerError};
//! use client::{Client, CommandBody, EventEnvelope};
//! use serde_json::json;
//!
//! # async fn run(token: String) -> Result<(), client::Error> {
//! let edgeloop = Client::new("http://127.0.0.1:8787")?.with_token(token);
//! let agent = Agent::new(edgeloop, "closer", "closer-1").handler(
//!     |ctx: Context, event: EventEnvelope| async move {
//!         if event.data["severity"] == "low" {
//!             let close = CommandBody::new("CloseFeedback", json!({"reason": "low severity"}));
//!             ctx.command("feedback", &event.aggregate_id, close).await?;
//!         }
//!         Ok::<(), HandlerError>(())
//!     },
//! );
//! let stats = agent.stats(); // counters, readable while it runs
//! agent.run().await?; // until SIGINT or SIGTERM
//! println!("{:?}", stats.snapshot());
//! # Ok(())
//! # }
//! ```
//!
//! # What the loop does
//! * **Poll** the group (a long-poll of [`AgentOptions::poll_wait`]) for a batch: one
//!   partition's events, in offset order, under one lease.
//! * **Handle in order.** Each event goes to the handler; the next one only once it is
//!   answered. `Ok` → ack; the acks of a batch go in one call at its end (the batch holds
//!   its partition until every event is answered anyway), or sooner once the oldest waited
//!   [`AgentOptions::ack_interval`]. An error → nack with the error's [`NackAction`] (`retry`
//!   unless the handler chose [`HandlerError::park`] or [`HandlerError::skip`]), its message
//!   as the reason an operator sees with a parked event. A `retry` holds back the rest of
//!   its partition (the server redelivers it after its backoff, and nothing after it in the
//!   partition goes out before), so the loop releases the lease at once: the rest of the
//!   batch comes back after the retry without losing an attempt. A panic in the handler
//!   counts as an error.
//! * **Renew** the lease every third of the group's `lease_ms` while a batch is in hand, so
//!   a slow handler (a model call) keeps its events. If the lease is lost anyway, the batch
//!   ends after the current event (its events are redelivered, to this or another consumer).
//! * **Back off** polling after errors — a failed call, a handler error, a lost lease —
//!   exponentially from [`AgentOptions::error_backoff`] to
//!   [`AgentOptions::max_error_backoff`], with jitter; the server's own backoff decides when
//!   a retried event comes back. A 400/401/403/404 (a bad name, a bad or expired token, a
//!   deleted group) ends the run with the error: waiting cannot fix it.
//! * **Stop** when the shutdown future completes ([`Agent::run`]: SIGINT or SIGTERM): the
//!   current event is finished, what was handled is acked, the lease is released (the rest
//!   of the batch goes straight to another consumer, no attempt counted), and `run_until`
//!   returns. A long-poll in progress is abandoned rather than waited for; if the server
//!   granted a batch in that instant, it comes back when its lease expires (one attempt
//!   counted).
//!
//! # Exactly-once effects from at-least-once delivery
//! An event can be delivered more than once (a crash before the ack, a lease that ran out).
//! Commands sent through [`Context::command`] carry an `Idempotency-Key` derived from the
//! event — `"{group}:{event_id}:{n}"` for the handler's `n`-th command ([`command_key`]) — so
//! a redelivery that sends the same commands in the same order is answered from the
//! idempotency records instead of acting again. They are also marked as caused by the event
//! ([`CommandBody::caused_by`]): `causation_id` is its id and `correlation_id` its flow.
//!
//! That makes two demands of a handler: send its commands one after another (the count
//! decides the key), and send the same commands on a redelivery. A handler whose decision
//! can change (a model's answer) sees a 422 `idempotency_key_reused` when it sends a
//! different command under a key already used: the earlier decision stands, and the
//! handler should treat that answer as "already done".

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use domain::{EventEnvelope, Position};
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::consumer::{Batch, Delivery, Fate, GroupSettings, LeaseId, NackAction, PollRequest};
use crate::{BoxError, Client, CommandBody, CommandResult, Error, RetryPolicy};

/// The `Idempotency-Key` of the `n`-th command (from 1) a handler of `group` sends for the
/// event `event_id`.
pub fn command_key(group: &str, event_id: &str, n: u32) -> String {
    format!("{group}:{event_id}:{n}")
}

/// How an [`Agent`] polls and backs off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOptions {
    /// At most this many events per batch. Small batches let several consumers share the
    /// partitions; a batch holds its partition until every event in it is answered.
    pub max_events: u32,
    /// How long the server may hold a poll when nothing is deliverable (at most 20 s).
    pub poll_wait: Duration,
    /// The wait after a first error before polling again; it doubles per consecutive error.
    pub error_backoff: Duration,
    /// The longest wait after errors.
    pub max_error_backoff: Duration,
    /// Handled events are acked together, at the end of their batch or once the oldest of
    /// them waited this long (`ZERO`: each at once). A crash repeats at most this much work.
    pub ack_interval: Duration,
    /// Create the group with these settings when it does not exist (`None`: it must exist).
    pub create_group: Option<GroupSettings>,
}

impl Default for AgentOptions {
    /// 10 events a batch, 10 s long-polls, backoff 250 ms doubling to 30 s, acks at least
    /// every second; the group must exist.
    fn default() -> Self {
        Self {
            max_events: 10,
            poll_wait: Duration::from_secs(10),
            error_backoff: Duration::from_millis(250),
            max_error_backoff: Duration::from_secs(30),
            ack_interval: Duration::from_secs(1),
            create_group: None,
        }
    }
}

impl AgentOptions {
    /// The wait before polling again after `failures` consecutive errors (≥ 1), for a
    /// `jitter` in `[0, 1]`: between half and all of `error_backoff × 2^(failures − 1)`,
    /// at most `max_error_backoff`.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: self.error_backoff,
            max_backoff: self.max_error_backoff,
            max_elapsed: Duration::MAX,
        }
        .backoff(failures.max(1), jitter)
    }
}

/// A handler's failure: the error, and what the group should do with the event.
///
/// Any error converts into one with `?` (as a `retry`); [`HandlerError::park`] sets an
/// event aside for an operator at once (it cannot succeed however often it is tried: bad
/// data), [`HandlerError::skip`] drops it.
pub struct HandlerError {
    action: NackAction,
    error: BoxError,
}

impl HandlerError {
    /// Try again after the group's backoff; parked once the group's attempts are used up.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            action: NackAction::Retry,
            error: error.into(),
        }
    }

    /// Park the event now.
    pub fn park(error: impl Into<BoxError>) -> Self {
        Self {
            action: NackAction::Park,
            error: error.into(),
        }
    }

    /// Settle the event without handling it.
    pub fn skip(error: impl Into<BoxError>) -> Self {
        Self {
            action: NackAction::Skip,
            error: error.into(),
        }
    }

    pub fn action(&self) -> NackAction {
        self.action
    }

    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.error.as_ref()
    }
}

/// `?` on any error: a retry.
impl<E: Into<BoxError>> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HandlerError({}: {:?})", self.action, self.error)
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.action)
    }
}

/// What a handler gets with each event: where it came from, and a way to send commands
/// caused by it.
#[derive(Clone)]
pub struct Context {
    client: Client,
    group: Arc<str>,
    consumer: Arc<str>,
    event: Arc<EventEnvelope>,
    position: Position,
    attempt: u32,
    sent: Arc<AtomicU32>,
    stats: Stats,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("event_id", &self.event.event_id)
            .field("position", &self.position)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The client the agent runs with (for reads; send commands with [`Context::command`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The event being handled.
    pub fn event(&self) -> &EventEnvelope {
        &self.event
    }

    /// Where the event is in the stream.
    pub fn position(&self) -> Position {
        self.position
    }

    /// 1 for a first delivery, 2 for the first redelivery, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The key the handler's next command will be sent with.
    pub fn next_idempotency_key(&self) -> String {
        command_key(
            &self.group,
            &self.event.event_id,
            self.sent.load(Ordering::SeqCst) + 1,
        )
    }

    /// Sends `body` to the aggregate `aggregate_type`/`id` as a reaction to the event: with
    /// `causation_id` = the event's id, `correlation_id` = its correlation id (or its id),
    /// and the `Idempotency-Key` [`command_key`]`(group, event_id, n)` for the handler's
    /// `n`-th command — the same key on every delivery of the event, so a redelivery that
    /// sends the same commands is answered from the idempotency record
    /// ([`CommandResult::replayed`]) instead of acting twice. Retried like
    /// [`Client::command`].
    pub async fn command(
        &self,
        aggregate_type: &str,
        id: &str,
        body: CommandBody,
    ) -> Result<CommandResult, Error> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let key = command_key(&self.group, &self.event.event_id, n);
        let body = body.caused_by(&self.event);
        self.stats.0.commands_sent.fetch_add(1, Ordering::Relaxed);
        let result = self
            .client
            .command_with_key(aggregate_type, id, &body, &key)
            .await;
        match &result {
            Ok(done) => debug!(
                aggregate_type,
                id,
                command = %body.command_type,
                key,
                version = done.version,
                replayed = done.replayed,
                "command applied"
            ),
            Err(e) => {
                debug!(aggregate_type, id, command = %body.command_type, key, error = %e, "command failed")
            }
        }
        result
    }
}

/// The agent's counters, shared with the running loop: [`Stats::snapshot`] reads them at
/// any time.
#[derive(Clone, Default)]
pub struct Stats(Arc<Counters>);

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    parked: AtomicU64,
    skipped: AtomicU64,
    errors: AtomicU64,
    commands_sent: AtomicU64,
    batches: AtomicU64,
    leases_lost: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Events handed to the handler (a redelivered event counts again).
    pub delivered: u64,
    /// Events the server accepted an ack for.
    pub acked: u64,
    /// Events nacked with `retry` that have attempts left.
    pub retried: u64,
    /// Events parked: nacked with `park`, or with `retry` on their last attempt.
    pub parked: u64,
    /// Events nacked with `skip`.
    pub skipped: u64,
    /// Handler errors and failed calls to the server.
    pub errors: u64,
    /// Commands sent through [`Context::command`] (whatever their answer).
    pub commands_sent: u64,
    /// Batches (leases) received.
    pub batches: u64,
    /// Leases that were lost before their batch was done.
    pub leases_lost: u64,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Stats {
    pub fn snapshot(&self) -> Counts {
        let c = &self.0;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Counts {
            delivered: get(&c.delivered),
            acked: get(&c.acked),
            retried: get(&c.retried),
            parked: get(&c.parked),
            skipped: get(&c.skipped),
            errors: get(&c.errors),
            commands_sent: get(&c.commands_sent),
            batches: get(&c.batches),
            leases_lost: get(&c.leases_lost),
        }
    }

    fn add(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        counter(&self.0).fetch_add(1, Ordering::Relaxed);
    }
}

/// Completes on the first SIGINT or SIGTERM (Ctrl-C elsewhere than Unix). Once it has been
/// called, those signals no longer end the process by themselves.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A consumer of one consumer group that hands every event to a handler. See the
/// [module docs](self).
///
/// `H` is the handler (`()` until [`Agent::handler`] sets one).
pub struct Agent<H = ()> {
    client: Client,
    group: Arc<str>,
    consumer: Arc<str>,
    options: AgentOptions,
    stats: Stats,
    handler: H,
}

impl<H> std::fmt::Debug for Agent<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent consuming `group` under the name `consumer` (unique among the group's
    /// running consumers: leases are held by name).
    pub fn new(client: Client, group: impl Into<String>, consumer: impl Into<String>) -> Self {
        Agent {
            client,
            group: Arc::from(group.into()),
            consumer: Arc::from(consumer.into()),
            options: AgentOptions::default(),
            stats: Stats::default(),
            handler: (),
        }
    }
}

impl<H> Agent<H> {
    /// The same agent with `handler`: an async function of the [`Context`] and the event
    /// that answers `Ok(())` when the event is handled.
    pub fn handler<F, Fut>(self, handler: F) -> Agent<F>
    where
        F: Fn(Context, EventEnvelope) -> Fut,
        Fut: Future<Output = Result<(), HandlerError>>,
    {
        Agent {
            client: self.client,
            group: self.group,
            consumer: self.consumer,
            options: self.options,
            stats: self.stats,
            handler,
        }
    }

    pub fn options(mut self, options: AgentOptions) -> Self {
        self.options = options;
        self
    }

    pub fn max_events(mut self, max_events: u32) -> Self {
        self.options.max_events = max_events;
        self
    }

    pub fn poll_wait(mut self, poll_wait: Duration) -> Self {
        self.options.poll_wait = poll_wait;
        self
    }

    /// Create the group with `settings` when it does not exist yet.
    pub fn create_group(mut self, settings: GroupSettings) -> Self {
        self.options.create_group = Some(settings);
        self
    }

    /// The agent's counters (a handle: it keeps counting while the agent runs).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

/// An answer the server gives that waiting cannot change: a bad argument or name, a bad or
/// expired token, a missing scope, a group that does not exist.
fn is_fatal(error: &Error) -> bool {
    matches!(error.last(), Error::InvalidArgument(_))
        || matches!(
            error.status(),
            Some(400 | 401 | 403 | 404 | 405 | 413 | 415)
        )
}

/// One call to the server the loop makes after a handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// Every offset listed was handled.
    Ack(Vec<u64>),
    Nack(u64, NackAction),
    /// Hand the rest of the batch back.
    Release,
}

/// The answers of one batch: which calls to make after each event, and when.
///
/// * A handled event's ack waits, so that one call acks several events: the batch holds its
///   partition until every event is answered anyway, so acking sooner frees nothing. Acks
///   go out when the batch ends, before any nack or release, and once the oldest waiting
///   one is `ack_interval` old — so a slow handler's progress is still recorded as it goes,
///   and a crash repeats at most that much work.
/// * A `retry` ends the batch: the partition's later events must not overtake the retried
///   one (the server holds them back anyway), so they are released — handed back without
///   losing an attempt — rather than handled out of order.
/// * Parked and skipped events stop blocking, so the batch goes on after them.
/// * Stopping ends the batch after the current event: it is answered, the rest released.
#[derive(Debug)]
pub(crate) struct Answers {
    ack_interval: Duration,
    acks: Vec<u64>,
    /// When the oldest waiting ack was decided.
    oldest: Option<Instant>,
}

impl Answers {
    pub(crate) fn new(ack_interval: Duration) -> Self {
        Self {
            ack_interval,
            acks: Vec::new(),
            oldest: None,
        }
    }

    /// After the handler answered the event at `offset` — `Ok`, or the action of its error
    /// — at `now`, with `rest` events of the batch still to come: the calls to make, in
    /// order, and whether the batch goes on.
    pub(crate) fn after(
        &mut self,
        offset: u64,
        outcome: Result<(), NackAction>,
        rest: usize,
        stopping: bool,
        now: Instant,
    ) -> (Vec<Call>, bool) {
        let mut calls = Vec::new();
        let go_on = rest > 0 && !stopping && outcome != Err(NackAction::Retry);
        match outcome {
            Ok(()) => {
                self.acks.push(offset);
                self.oldest.get_or_insert(now);
            }
            Err(action) => {
                self.flush(&mut calls);
                calls.push(Call::Nack(offset, action));
            }
        }
        let due = self
            .oldest
            .is_some_and(|oldest| now.duration_since(oldest) >= self.ack_interval);
        if !go_on || due {
            self.flush(&mut calls);
        }
        if rest > 0 && !go_on {
            calls.push(Call::Release);
        }
        (calls, go_on)
    }

    /// Stopping before the next event: what was handled is acked, the rest handed back.
    pub(crate) fn stop(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        self.flush(&mut calls);
        calls.push(Call::Release);
        calls
    }

    fn flush(&mut self, calls: &mut Vec<Call>) {
        self.oldest = None;
        if !self.acks.is_empty() {
            calls.push(Call::Ack(std::mem::take(&mut self.acks)));
        }
    }
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    /// Every event handled and acked.
    Clean,
    /// A handler error, a failed call or a lost lease: back off before polling again.
    Troubled,
}

/// The group's settings the loop needs.
#[derive(Debug, Clone, Copy)]
struct Limits {
    lease: Duration,
    max_attempts: u32,
}

impl<F, Fut> Agent<F>
where
    F: Fn(Context, EventEnvelope) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    /// Runs until SIGINT or SIGTERM ([`shutdown_signal`]), then stops cleanly.
    pub async fn run(self) -> Result<Counts, Error> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes, then finishes the current event, acks what was
    /// handled, releases the lease and returns the counters.
    ///
    /// Errors: what waiting cannot fix — [`Error::InvalidArgument`] for a bad group name,
    /// and from the server `bad_request` 400 (a bad consumer name), `unauthorized` 401 (a
    /// bad or expired token), `forbidden` 403 (no `consume` scope), `not_found` 404 (no such
    /// group). Everything else is logged, counted and retried with backoff.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<Counts, Error> {
        crate::consumer::check_group_name(&self.group)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Keep the sender alive: a dropped sender would end `stopped` waits too.
            std::future::pending::<()>().await;
        };
        let span = info_span!("agent", group = %self.group, consumer = %self.consumer);
        let work = self.work(stop_rx).instrument(span);
        tokio::select! {
            result = work => result,
            () = watcher => unreachable!("the watcher never completes"),
        }
    }

    async fn work(&self, stop: watch::Receiver<bool>) -> Result<Counts, Error> {
        let Some(limits) = self.start(&stop).await? else {
            return Ok(self.stats.snapshot());
        };
        info!(
            lease_ms = limits.lease.as_millis() as u64,
            max_attempts = limits.max_attempts,
            "agent started"
        );
        let request = PollRequest {
            consumer: self.consumer.to_string(),
            max_events: self.options.max_events.max(1),
            wait_ms: self.options.poll_wait.as_millis() as u64,
        };
        let mut failures = 0u32;
        while !*stop.borrow() {
            let started = Instant::now();
            let polled = tokio::select! {
                polled = self.client.poll(&self.group, &request) => polled,
                () = stopped(&stop) => break,
            };
            let end = match polled {
                Ok(Batch {
                    lease: Some(lease),
                    events,
                }) => {
                    self.stats.add(|c| &c.batches);
                    let span = info_span!("batch", partition = lease.partition, lease = %lease.id);
                    self.batch(&lease.id, events, limits, &stop)
                        .instrument(span)
                        .await
                }
                Ok(Batch { lease: None, .. }) => {
                    // Nothing deliverable. A server that answers at once (another consumer
                    // took what woke it) should not make this loop spin.
                    if started.elapsed() < Duration::from_millis(250) {
                        pause(Duration::from_millis(250), &stop).await;
                    }
                    BatchEnd::Clean
                }
                Err(error) if is_fatal(&error) => {
                    error!(error = %error, "poll refused; stopping");
                    return Err(error);
                }
                Err(error) => {
                    self.stats.add(|c| &c.errors);
                    warn!(error = %error, "poll failed");
                    BatchEnd::Troubled
                }
            };
            match end {
                BatchEnd::Clean => failures = 0,
                BatchEnd::Troubled => {
                    failures = failures.saturating_add(1);
                    let wait = self.options.backoff(failures, fastrand::f64());
                    debug!(wait_ms = wait.as_millis() as u64, failures, "backing off");
                    pause(wait, &stop).await;
                }
            }
        }
        let counts = self.stats.snapshot();
        info!(
            delivered = counts.delivered,
            acked = counts.acked,
            retried = counts.retried,
            parked = counts.parked,
            errors = counts.errors,
            commands_sent = counts.commands_sent,
            "agent stopped"
        );
        Ok(counts)
    }

    /// Reads the group's settings (creating the group first if asked to), retrying what
    /// can be retried. `None` when stopped before it succeeded.
    async fn start(&self, stop: &watch::Receiver<bool>) -> Result<Option<Limits>, Error> {
        let mut failures = 0u32;
        loop {
            let attempt = async {
                match (
                    &self.options.create_group,
                    self.client.group(&self.group).await,
                ) {
                    (Some(settings), Err(e)) if e.is_not_found() => {
                        match self.client.create_group(&self.group, settings).await {
                            Ok(created) => info!(created, "consumer group ready"),
                            // Created meanwhile by someone else, with other settings: use it.
                            Err(e) if e.status() == Some(409) => {
                                warn!(error = %e, "the group exists with other settings; using them")
                            }
                            Err(e) => return Err(e),
                        }
                        self.client.group(&self.group).await
                    }
                    (_, status) => status,
                }
            };
            let outcome = tokio::select! {
                outcome = attempt => outcome,
                () = stopped(stop) => return Ok(None),
            };
            match outcome {
                Ok(status) => {
                    return Ok(Some(Limits {
                        lease: Duration::from_millis(status.settings.lease_ms.max(1)),
                        max_attempts: status.settings.max_attempts,
                    }));
                }
                Err(error) if is_fatal(&error) => {
                    error!(error = %error, "cannot read the consumer group");
                    return Err(error);
                }
                Err(error) => {
                    self.stats.add(|c| &c.errors);
                    failures = failures.saturating_add(1);
                    warn!(error = %error, "cannot read the consumer group yet");
                    pause(self.options.backoff(failures, fastrand::f64()), stop).await;
                }
            }
        }
    }

    /// Handles one batch while keeping its lease renewed.
    async fn batch(
        &self,
        lease: &LeaseId,
        events: Vec<Delivery>,
        limits: Limits,
        stop: &watch::Receiver<bool>,
    ) -> BatchEnd {
        let lost = AtomicBool::new(false);
        // A third of the lease leaves two renewals' time for one to fail or come late.
        let every = (limits.lease / 3).max(Duration::from_millis(10));
        tokio::select! {
            biased;
            end = self.handle_batch(lease, events, limits, &lost, stop) => end,
            never = self.keep_renewed(lease, every, &lost) => match never {},
        }
    }

    /// Renews the lease every `every` until it is lost (then waits forever: the batch ends
    /// at its next step).
    async fn keep_renewed(
        &self,
        lease: &LeaseId,
        every: Duration,
        lost: &AtomicBool,
    ) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(every).await;
            match self.client.renew(&self.group, &self.consumer, lease).await {
                Ok(expires_at) => debug!(%expires_at, "lease renewed"),
                Err(error) if error.is_lease_lost() => {
                    warn!(error = %error, "lease lost while renewing");
                    lost.store(true, Ordering::SeqCst);
                    return std::future::pending().await;
                }
                Err(error) => {
                    self.stats.add(|c| &c.errors);
                    warn!(error = %error, "cannot renew the lease; trying again");
                }
            }
        }
    }

    async fn handle_batch(
        &self,
        lease: &LeaseId,
        events: Vec<Delivery>,
        limits: Limits,
        lost: &AtomicBool,
        stop: &watch::Receiver<bool>,
    ) -> BatchEnd {
        let count = events.len();
        debug!(events = count, "batch received");
        let mut answers = Answers::new(self.options.ack_interval);
        let mut end = BatchEnd::Clean;
        for (index, delivery) in events.into_iter().enumerate() {
            if lost.load(Ordering::SeqCst) {
                self.stats.add(|c| &c.leases_lost);
                return BatchEnd::Troubled;
            }
            if *stop.borrow() {
                // Stopped between events: ack what was handled, hand back what is left.
                return match self.make(lease, answers.stop(), Answer::NONE).await {
                    CallEnd::Done => end,
                    _ => BatchEnd::Troubled,
                };
            }
            let position = match delivery.position() {
                Ok(position) => position,
                Err(error) => {
                    // `Client::poll` checks positions; never expected.
                    error!(error = %error, "a delivery without a position");
                    self.make(lease, answers.stop(), Answer::NONE).await;
                    return BatchEnd::Troubled;
                }
            };
            let last_attempt = delivery.attempt >= limits.max_attempts;
            let span = info_span!(
                "event",
                offset = position.offset,
                event_type = %delivery.event.event_type,
                event_id = %delivery.event.event_id,
                attempt = delivery.attempt,
            );
            let outcome = self
                .handle(delivery, position)
                .instrument(span.clone())
                .await;
            let (outcome, reason) = match outcome {
                Ok(()) => (Ok(()), String::new()),
                Err((action, reason)) => {
                    end = BatchEnd::Troubled;
                    (Err(action), reason)
                }
            };
            let answer = Answer {
                reason: &reason,
                last_attempt,
            };
            let rest = count - index - 1;
            let (calls, go_on) = answers.after(
                position.offset,
                outcome,
                rest,
                *stop.borrow(),
                Instant::now(),
            );
            match self.make(lease, calls, answer).instrument(span).await {
                CallEnd::Done => {}
                CallEnd::LeaseLost | CallEnd::Failed => return BatchEnd::Troubled,
            }
            if !go_on {
                break;
            }
        }
        end
    }

    /// Makes `calls` in order. A lost lease ends them (nothing more can be answered under
    /// it); a failed call too, after handing the batch back so that nothing waits for the
    /// lease to run out longer than needed.
    async fn make(&self, lease: &LeaseId, calls: Vec<Call>, answer: Answer<'_>) -> CallEnd {
        for call in calls {
            let release = call == Call::Release;
            match self.call(lease, call, answer).await {
                CallEnd::Done => {}
                CallEnd::LeaseLost => {
                    self.stats.add(|c| &c.leases_lost);
                    return CallEnd::LeaseLost;
                }
                CallEnd::Failed => {
                    if !release {
                        self.call(lease, Call::Release, Answer::NONE).await;
                    }
                    return CallEnd::Failed;
                }
            }
        }
        CallEnd::Done
    }

    /// Runs the handler on one event: `Ok`, or the action its error (or panic) asks for and
    /// the error's text.
    async fn handle(
        &self,
        delivery: Delivery,
        position: Position,
    ) -> Result<(), (NackAction, String)> {
        self.stats.add(|c| &c.delivered);
        debug!("delivered");
        let attempt = delivery.attempt;
        let event = Arc::new(delivery.event);
        let context = Context {
            client: self.client.clone(),
            group: Arc::clone(&self.group),
            consumer: Arc::clone(&self.consumer),
            event: Arc::clone(&event),
            position,
            attempt,
            sent: Arc::new(AtomicU32::new(0)),
            stats: self.stats.clone(),
        };
        let handled = AssertUnwindSafe((self.handler)(context, EventEnvelope::clone(&event)))
            .catch_unwind()
            .await;
        let failure = match handled {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => failure,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                HandlerError::retry(format!("the handler panicked: {message}"))
            }
        };
        self.stats.add(|c| &c.errors);
        warn!(error = %failure.error, action = %failure.action, "handler failed");
        Err((failure.action, failure.error.to_string()))
    }

    /// Makes one call.
    async fn call(&self, lease: &LeaseId, call: Call, answer: Answer<'_>) -> CallEnd {
        let (group, consumer) = (&*self.group, &*self.consumer);
        let release = call == Call::Release;
        let what = match &call {
            Call::Ack(_) => "ack",
            Call::Nack(..) => "nack",
            Call::Release => "release",
        };
        let result = match call {
            Call::Ack(offsets) => {
                self.client
                    .ack(group, consumer, lease, &offsets)
                    .await
                    .map(|cursor| {
                        let acked = offsets.len() as u64;
                        self.stats.0.acked.fetch_add(acked, Ordering::Relaxed);
                        debug!(cursor, acked, "acked");
                    })
            }
            Call::Nack(offset, action) => self
                .client
                .nack(group, consumer, lease, offset, action, answer.reason)
                .await
                .map(|fate| {
                    // The server says what became of the event; an older one may not, and
                    // then a retry of the last attempt is what parks it.
                    let fate = fate.unwrap_or(match action {
                        NackAction::Retry if answer.last_attempt => Fate::Parked,
                        NackAction::Retry => Fate::Retry { at: None },
                        NackAction::Park => Fate::Parked,
                        NackAction::Skip => Fate::Skipped,
                    });
                    match fate {
                        Fate::Retry { at } => {
                            self.stats.add(|c| &c.retried);
                            debug!(at = ?at, "event will be retried");
                        }
                        Fate::Parked => {
                            self.stats.add(|c| &c.parked);
                            error!(reason = answer.reason, "event parked");
                        }
                        Fate::Skipped => {
                            self.stats.add(|c| &c.skipped);
                            info!(reason = answer.reason, "event skipped");
                        }
                    }
                }),
            Call::Release => self
                .client
                .release(group, consumer, lease)
                .await
                .map(|()| debug!("lease released")),
        };
        match result {
            Ok(()) => CallEnd::Done,
            // Releasing a lease that is gone has nothing left to do.
            Err(error) if error.is_lease_lost() && release => CallEnd::Done,
            Err(error) if error.is_lease_lost() => {
                warn!(error = %error, call = what, "lease lost");
                CallEnd::LeaseLost
            }
            Err(error) => {
                self.stats.add(|c| &c.errors);
                warn!(error = %error, call = what, "call failed");
                CallEnd::Failed
            }
        }
    }
}

/// What a nack says about the event it answers.
#[derive(Debug, Clone, Copy)]
struct Answer<'a> {
    /// The handler's error, kept by the server with a parked event.
    reason: &'a str,
    /// The event has no delivery left: a `retry` parks it.
    last_attempt: bool,
}

impl Answer<'_> {
    const NONE: Answer<'static> = Answer {
        reason: "",
        last_attempt: false,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallEnd {
    Done,
    LeaseLost,
    Failed,
}

/// Completes once `stop` is set.
async fn stopped(stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps `wait`, or less if stopped meanwhile.
async fn pause(wait: Duration, stop: &watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = stopped(stop) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    // ---- the pure decisions ----------------------------------------------------------

    #[test]
    fn keys_name_the_group_the_event_and_the_command_number() {
        let event = "01890a5d-ac96-774b-bcce-b302099a8057";
        assert_eq!(command_key("triage", event, 1), format!("triage:{event}:1"));
        assert_ne!(
            command_key("triage", event, 1),
            command_key("triage", event, 2)
        );
        assert_ne!(command_key("a", event, 1), command_key("b", event, 1));
        // The longest group and a UUID stay far inside the 255 characters a key may have.
        assert!(command_key(&"g".repeat(64), event, u32::MAX).len() < 255);
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_to_the_cap_with_jitter_below() {
        let options = AgentOptions {
            error_backoff: Duration::from_millis(100),
            max_error_backoff: Duration::from_millis(1000),
            ..AgentOptions::default()
        };
        let full: Vec<u64> = (1..=6)
            .map(|n| options.backoff(n, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(options.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(options.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(options.backoff(u32::MAX, 1.0), Duration::from_millis(1000));
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// Feeds `outcomes` (offsets 1, 2, …) to one batch's [`Answers`], one event every
    /// `pace`, stopping as signalled; answers every call and where the batch ended.
    fn answers(
        outcomes: &[Result<(), NackAction>],
        pace: Duration,
        stop_after: Option<usize>,
    ) -> (Vec<Call>, usize) {
        let mut answers = Answers::new(SECOND);
        let mut calls = Vec::new();
        let start = Instant::now();
        for (index, outcome) in outcomes.iter().enumerate() {
            let rest = outcomes.len() - index - 1;
            let stopping = stop_after == Some(index + 1);
            let now = start + pace * (index as u32 + 1);
            let (made, go_on) = answers.after(index as u64 + 1, *outcome, rest, stopping, now);
            calls.extend(made);
            if !go_on {
                return (calls, index + 1);
            }
        }
        (calls, outcomes.len())
    }

    const OK: Result<(), NackAction> = Ok(());
    const RETRY: Result<(), NackAction> = Err(NackAction::Retry);
    const PARK: Result<(), NackAction> = Err(NackAction::Park);
    const SKIP: Result<(), NackAction> = Err(NackAction::Skip);
    const FAST: Duration = Duration::from_millis(10);

    #[test]
    fn handled_events_are_acked_together_at_the_end_of_the_batch() {
        assert_eq!(
            answers(&[OK, OK, OK], FAST, None),
            (vec![Call::Ack(vec![1, 2, 3])], 3)
        );
        assert_eq!(answers(&[OK], FAST, None), (vec![Call::Ack(vec![1])], 1));
    }

    #[test]
    fn a_slow_batch_acks_as_it_goes() {
        // One event every 600 ms: the first ack waits past a second at the third event.
        let (calls, _) = answers(&[OK, OK, OK, OK, OK], Duration::from_millis(600), None);
        assert_eq!(calls, [Call::Ack(vec![1, 2, 3]), Call::Ack(vec![4, 5])]);
        // With no interval, each event at once.
        let mut each = Answers::new(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(
            each.after(1, OK, 1, false, now),
            (vec![Call::Ack(vec![1])], true)
        );
        assert_eq!(
            each.after(2, OK, 0, false, now),
            (vec![Call::Ack(vec![2])], false)
        );
    }

    #[test]
    fn a_retry_acks_what_came_before_and_hands_the_rest_back() {
        assert_eq!(
            answers(&[OK, OK, RETRY, OK, OK], FAST, None),
            (
                vec![
                    Call::Ack(vec![1, 2]),
                    Call::Nack(3, NackAction::Retry),
                    Call::Release
                ],
                3
            )
        );
        // Nothing left to hand back after the last event.
        assert_eq!(
            answers(&[RETRY], FAST, None),
            (vec![Call::Nack(1, NackAction::Retry)], 1)
        );
    }

    #[test]
    fn parked_and_skipped_events_do_not_hold_the_batch_back() {
        assert_eq!(
            answers(&[OK, PARK, SKIP, OK], FAST, None),
            (
                vec![
                    Call::Ack(vec![1]),
                    Call::Nack(2, NackAction::Park),
                    Call::Nack(3, NackAction::Skip),
                    Call::Ack(vec![4])
                ],
                4
            )
        );
    }

    #[test]
    fn stopping_answers_the_current_event_then_releases() {
        assert_eq!(
            answers(&[OK, OK, OK, OK], FAST, Some(2)),
            (vec![Call::Ack(vec![1, 2]), Call::Release], 2)
        );
        assert_eq!(
            answers(&[OK, PARK, OK], FAST, Some(2)),
            (
                vec![
                    Call::Ack(vec![1]),
                    Call::Nack(2, NackAction::Park),
                    Call::Release
                ],
                2
            )
        );
        // A stop noticed between events acks what was handled and releases the rest.
        let mut between = Answers::new(SECOND);
        let now = Instant::now();
        assert_eq!(between.after(1, OK, 2, false, now), (vec![], true));
        assert_eq!(between.stop(), [Call::Ack(vec![1]), Call::Release]);
        assert_eq!(Answers::new(SECOND).stop(), [Call::Release]);
    }

    #[test]
    fn handler_errors_retry_unless_they_say_otherwise() {
        fn fails() -> Result<(), HandlerError> {
            Err(Error::Decode("x".into()))?
        }
        assert_eq!(fails().unwrap_err().action(), NackAction::Retry);
        assert_eq!(HandlerError::park("bad data").action(), NackAction::Park);
        assert_eq!(HandlerError::skip("not mine").action(), NackAction::Skip);
        assert_eq!(
            HandlerError::park("bad data").to_string(),
            "bad data (park)"
        );
    }

    #[test]
    fn only_answers_waiting_cannot_change_are_fatal() {
        let api = |status: u16, code: &str| {
            let body = json!({"error": {"code": code, "message": "m"}}).to_string();
            Error::from_answer(status, body.as_bytes())
        };
        for (status, code) in [
            (400, "bad_request"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "not_found"),
        ] {
            assert!(is_fatal(&api(status, code)), "{status}");
        }
        for (status, code) in [
            (409, "lease_lost"),
            (429, "rate_limited"),
            (500, "internal"),
            (503, "overloaded"),
        ] {
            assert!(!is_fatal(&api(status, code)), "{status}");
        }
        assert!(!is_fatal(&Error::network("reset")));
        assert!(is_fatal(&Error::InvalidArgument("x".into())));
    }

    // ---- the loop against a fake consumer group ----------------------------------------

    /// A request the fake received.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        key: Option<String>,
        body: Value,
    }

    impl Seen {
        /// `ack:1`, `nack:2:retry`, `renew`, `release`, `poll`, `command:<key>`.
        fn short(&self) -> String {
            let tail = self.path.rsplit('/').next().unwrap_or_default();
            match tail {
                "ack" => {
                    let offsets: Vec<String> = self.body["offsets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(Value::to_string)
                        .collect();
                    format!("ack:{}", offsets.join(","))
                }
                "nack" => format!(
                    "nack:{}:{}",
                    self.body["offset"],
                    self.body["action"].as_str().unwrap()
                ),
                "commands" => format!("command:{}", self.key.clone().unwrap_or_default()),
                other => other.to_owned(),
            }
        }
    }

    /// What the fake answers to a poll.
    enum Polled {
        Batch(Value),
        Fail(u16),
    }

    #[derive(Default)]
    struct FakeState {
        status: Option<u16>,
        polls: VecDeque<Polled>,
        seen: Vec<Seen>,
        lose_lease_on_ack: Option<u64>,
        lose_lease_on_renew: bool,
    }

    #[derive(Clone)]
    struct Fake {
        url: String,
        state: Arc<Mutex<FakeState>>,
    }

    const LEASE_MS: u64 = 3000;
    const MAX_ATTEMPTS: u32 = 3;

    impl Fake {
        async fn start() -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let fake = Fake {
                url,
                state: Arc::default(),
            };
            let server = fake.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let server = server.clone();
                    tokio::spawn(async move { server.serve(tcp).await });
                }
            });
            fake
        }

        fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
            f(&mut self.state.lock().unwrap())
        }

        fn batch(&self, batch: Value) {
            self.with(|s| s.polls.push_back(Polled::Batch(batch)));
        }

        /// The consumer-group and command calls so far, without polls and status reads.
        fn calls(&self) -> Vec<String> {
            self.with(|s| {
                s.seen
                    .iter()
                    .map(Seen::short)
                    .filter(|c| c != "poll" && c != "g")
                    .collect()
            })
        }

        fn seen(&self) -> Vec<Seen> {
            self.with(|s| s.seen.clone())
        }

        fn client(&self) -> Client {
            Client::new(&self.url)
                .unwrap()
                .with_token("t")
                .with_retry(RetryPolicy {
                    max_attempts: 2,
                    initial_backoff: Duration::from_millis(5),
                    max_backoff: Duration::from_millis(5),
                    max_elapsed: Duration::from_secs(5),
                })
        }

        async fn serve(&self, mut tcp: TcpStream) {
            let Some(seen) = read_request(&mut tcp).await else {
                return;
            };
            let tail = seen.path.rsplit('/').next().unwrap_or_default().to_owned();
            self.with(|s| s.seen.push(seen.clone()));
            let (status, body) = match (seen.method.as_str(), tail.as_str()) {
                ("GET", "g") => match self.with(|s| s.status) {
                    Some(status) => (status, error_body("not_found")),
                    None => (200, status_body()),
                },
                ("POST", "poll") => match self.with(|s| s.polls.pop_front()) {
                    Some(Polled::Batch(batch)) => (200, batch),
                    Some(Polled::Fail(status)) => (status, error_body("overloaded")),
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        (200, json!({"lease": null, "events": []}))
                    }
                },
                ("POST", "ack") => {
                    let offset = seen.body["offsets"][0].as_u64();
                    if offset.is_some() && self.with(|s| s.lose_lease_on_ack) == offset {
                        (409, error_body("lease_lost"))
                    } else {
                        (200, json!({"cursor": offset}))
                    }
                }
                ("POST", "renew") if self.with(|s| s.lose_lease_on_renew) => {
                    (409, error_body("lease_lost"))
                }
                ("POST", "renew") => (200, json!({"expires_at": "2030-01-01T00:00:00Z"})),
                // The Worker's answer says what became of the event; without it (retries
                // here) the agent infers it from the attempt.
                ("POST", "nack") => match seen.body["action"].as_str() {
                    Some("park") => (200, json!({"outcome": {"fate": "parked"}})),
                    Some("skip") => (200, json!({"outcome": {"fate": "skipped"}})),
                    _ => (200, json!({})),
                },
                ("POST", "release") => (200, json!({})),
                ("POST", "commands") => (
                    200,
                    json!({"aggregate_type": "board", "aggregate_id": "b", "version": 1, "events": []}),
                ),
                _ => (404, error_body("not_found")),
            };
            let body = body.to_string();
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
    }

    fn error_body(code: &str) -> Value {
        json!({"error": {"code": code, "message": code}})
    }

    fn status_body() -> Value {
        json!({
            "group": "g",
            "settings": {"lease_ms": LEASE_MS, "max_attempts": MAX_ATTEMPTS, "retry_backoff_ms": 100,
                         "aggregate_type": null, "types": null},
            "partitions": [], "parked": 0
        })
    }

    async fn read_request(tcp: &mut TcpStream) -> Option<Seen> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            bytes.extend_from_slice(&chunk[..n]);
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        while bytes.len() < head_end + length {
            let n = tcp.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        let mut request_line = head.lines().next()?.split(' ');
        Some(Seen {
            method: request_line.next()?.to_owned(),
            path: request_line.next()?.to_owned(),
            key: header("idempotency-key"),
            body: serde_json::from_slice(&bytes[head_end..head_end + length])
                .unwrap_or(Value::Null),
        })
    }

    fn delivery(offset: u64, attempt: u32, correlation: Option<&str>) -> Value {
        json!({"attempt": attempt, "event": {
            "aggregate_type": "feedback", "aggregate_id": format!("f{offset}"), "seq": 1,
            "event_id": format!("e{offset}"), "type": "FeedbackSubmitted", "schema_version": 1,
            "data": {"text": "t"}, "recorded_at": "2026-01-01T00:00:00.000Z",
            "command_id": null, "correlation_id": correlation, "causation_id": null,
            "actor": "a", "position": {"partition": 1, "offset": offset}
        }})
    }

    fn batch(lease: &str, deliveries: Vec<Value>) -> Value {
        json!({
            "lease": {"id": lease, "partition": 1, "expires_at": "2030-01-01T00:00:00Z"},
            "events": deliveries
        })
    }

    /// Waits (at most 5 s) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    type Handled = Arc<Mutex<Vec<u64>>>;

    /// Runs an agent of group `g` over `fake` with `handler` until `calls` consumer calls
    /// were made (then stops it); answers what it handled, in order, and its counters.
    async fn run_agent<F, Fut>(fake: &Fake, calls: usize, handler: F) -> (Vec<u64>, Counts)
    where
        F: Fn(Context, EventEnvelope, Handled) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handled: Handled = Arc::default();
        let log = Arc::clone(&handled);
        let agent = Agent::new(fake.client(), "g", "c1")
            .options(AgentOptions {
                error_backoff: Duration::from_millis(10),
                max_error_backoff: Duration::from_millis(20),
                ..AgentOptions::default()
            })
            .handler(move |ctx, event| {
                log.lock().unwrap().push(ctx.position().offset);
                handler(ctx, event, Arc::clone(&log))
            });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(agent.run_until(async {
            let _ = stopped.await;
        }));
        until("the calls", || fake.calls().len() >= calls).await;
        let _ = stop.send(());
        let counts = running.await.unwrap().unwrap();
        let handled = handled.lock().unwrap().clone();
        (handled, counts)
    }

    #[tokio::test]
    async fn events_are_handled_in_order_acked_and_a_retry_hands_the_rest_back() {
        let fake = Fake::start().await;
        let events = (1..=4).map(|o| delivery(o, 1, None)).collect();
        fake.batch(batch("l1", events));
        let (handled, counts) = run_agent(&fake, 3, |ctx, _, _| async move {
            if ctx.position().offset == 3 {
                Err(HandlerError::retry("offset 3 fails"))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(handled, [1, 2, 3], "offset 4 waits for the retried one");
        assert_eq!(fake.calls(), ["ack:1,2", "nack:3:retry", "release"]);
        let lease_ids: Vec<Value> = fake
            .seen()
            .iter()
            .filter(|s| s.path.ends_with("/ack") || s.path.ends_with("/release"))
            .map(|s| s.body["lease"].clone())
            .collect();
        assert!(lease_ids.iter().all(|l| l == "l1"), "{lease_ids:?}");
        assert_eq!(
            (
                counts.delivered,
                counts.acked,
                counts.retried,
                counts.errors,
                counts.batches
            ),
            (3, 2, 1, 1, 1)
        );
    }

    #[tokio::test]
    async fn parked_skipped_and_panicking_handlers_are_answered_and_counted() {
        let fake = Fake::start().await;
        fake.batch(batch(
            "l1",
            vec![
                delivery(1, 1, None),
                delivery(2, 1, None),
                delivery(3, 1, None),
            ],
        ));
        // The last attempt of a retried event parks it.
        fake.batch(batch("l2", vec![delivery(4, MAX_ATTEMPTS, None)]));
        let (handled, counts) = run_agent(&fake, 4, |ctx, _, _| async move {
            match ctx.position().offset {
                1 => Err(HandlerError::park("bad data")),
                2 => Err(HandlerError::skip("not mine")),
                3 => panic!("boom"),
                _ => Err(HandlerError::retry("still failing")),
            }
        })
        .await;
        assert_eq!(handled, [1, 2, 3, 4]);
        assert_eq!(
            fake.calls(),
            ["nack:1:park", "nack:2:skip", "nack:3:retry", "nack:4:retry"]
        );
        assert_eq!(
            (counts.parked, counts.skipped, counts.retried, counts.errors),
            (2, 1, 1, 4)
        );
        let reasons: Vec<Value> = fake
            .seen()
            .iter()
            .filter(|s| s.path.ends_with("/nack"))
            .map(|s| s.body["reason"].clone())
            .collect();
        assert_eq!(
            reasons,
            [
                "bad data",
                "not mine",
                "the handler panicked: boom",
                "still failing"
            ]
        );
    }

    #[tokio::test]
    async fn commands_are_keyed_by_the_event_and_caused_by_it_on_every_delivery() {
        let fake = Fake::start().await;
        fake.batch(batch(
            "l1",
            vec![delivery(1, 1, Some("flow-9")), delivery(2, 1, None)],
        ));
        // Offset 1 again, as after an expired lease.
        fake.batch(batch("l2", vec![delivery(1, 2, Some("flow-9"))]));
        let (_, counts) = run_agent(&fake, 8, |ctx, event, _| async move {
            for n in 0..2 {
                let body = CommandBody::new("AddCard", json!({"card_id": format!("c{n}")}));
                ctx.command("board", "b", body).await?;
            }
            assert_eq!(
                ctx.next_idempotency_key(),
                format!("g:{}:3", event.event_id)
            );
            Ok(())
        })
        .await;
        let commands: Vec<Seen> = fake
            .seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/commands"))
            .collect();
        let keys: Vec<_> = commands.iter().map(|s| s.key.clone().unwrap()).collect();
        assert_eq!(
            keys,
            ["g:e1:1", "g:e1:2", "g:e2:1", "g:e2:2", "g:e1:1", "g:e1:2"]
        );
        let metadata: Vec<(&str, &str)> = commands
            .iter()
            .map(|s| {
                (
                    s.body["causation_id"].as_str().unwrap(),
                    s.body["correlation_id"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(metadata[0], ("e1", "flow-9"));
        assert_eq!(
            metadata[2],
            ("e2", "e2"),
            "an event without a flow starts one"
        );
        assert_eq!(
            metadata[4], metadata[0],
            "a redelivery sends the same metadata"
        );
        assert_eq!(commands[4].body, commands[0].body);
        assert_eq!(counts.commands_sent, 6);
    }

    #[tokio::test]
    async fn a_long_handler_keeps_its_lease_renewed() {
        let fake = Fake::start().await;
        fake.batch(batch("l1", vec![delivery(1, 1, None)]));
        // LEASE_MS / 3 = 1 s between renewals; the handler takes 2.5 s.
        let (_, counts) = run_agent(&fake, 3, |_, _, _| async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            Ok(())
        })
        .await;
        assert_eq!(fake.calls(), ["renew", "renew", "ack:1"]);
        assert_eq!(counts.acked, 1);
    }

    #[tokio::test]
    async fn stopping_finishes_the_current_event_and_releases_the_rest() {
        let fake = Fake::start().await;
        let events = (1..=3).map(|o| delivery(o, 1, None)).collect();
        fake.batch(batch("l1", events));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stop = Mutex::new(Some(stop));
        let agent = Agent::new(fake.client(), "g", "c1").handler(move |ctx, _| {
            // The signal arrives while the first event is being handled.
            if let Some(stop) = stop.lock().unwrap().take() {
                let _ = stop.send(());
            }
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert_eq!(ctx.position().offset, 1, "no event starts after the stop");
                Ok(())
            }
        });
        let counts = tokio::time::timeout(
            Duration::from_secs(5),
            agent.run_until(async {
                let _ = stopped.await;
            }),
        )
        .await
        .expect("the agent stops")
        .unwrap();
        assert_eq!(fake.calls(), ["ack:1", "release"]);
        assert_eq!((counts.delivered, counts.acked), (1, 1));
    }

    #[tokio::test]
    async fn a_lease_lost_while_renewing_ends_the_batch_after_the_current_event() {
        let fake = Fake::start().await;
        fake.with(|s| s.lose_lease_on_renew = true);
        fake.batch(batch(
            "l1",
            vec![delivery(1, 1, None), delivery(2, 1, None)],
        ));
        // The renewal at 1 s is refused while offset 1 is handled; then an ack is refused.
        fake.batch(batch("l2", vec![delivery(3, 1, None)]));
        fake.with(|s| s.lose_lease_on_ack = Some(3));
        let (handled, counts) = run_agent(&fake, 2, |ctx, _, _| async move {
            if ctx.position().offset == 1 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            Ok(())
        })
        .await;
        // Offset 1 is finished but not answered (the lease is gone: it comes back to some
        // consumer), offset 2 is not started, nothing is released.
        assert_eq!(handled, [1, 3]);
        assert_eq!(fake.calls(), ["renew", "ack:3"]);
        assert_eq!((counts.leases_lost, counts.acked), (2, 0));
    }

    #[tokio::test]
    async fn poll_failures_are_retried_and_a_missing_group_ends_the_run() {
        let fake = Fake::start().await;
        fake.with(|s| {
            s.polls.push_back(Polled::Fail(503));
            s.polls.push_back(Polled::Fail(500));
        });
        fake.batch(batch("l1", vec![delivery(1, 1, None)]));
        let (handled, counts) = run_agent(&fake, 1, |_, _, _| async move { Ok(()) }).await;
        assert_eq!(handled, [1]);
        assert_eq!((counts.errors, counts.acked), (2, 1));

        let missing = Fake::start().await;
        missing.with(|s| s.status = Some(404));
        let agent = Agent::new(missing.client(), "g", "c1")
            .handler(|_, _| async { Ok::<(), HandlerError>(()) });
        let error = agent.run_until(std::future::pending()).await.unwrap_err();
        assert!(error.is_not_found(), "{error}");
        let bad = Agent::new(missing.client(), "Bad Name", "c1")
            .handler(|_, _| async { Ok::<(), HandlerError>(()) });
        let error = bad.run_until(std::future::pending()).await.unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    }
}
