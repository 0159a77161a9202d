//! `AggregateObject`: one Durable Object per aggregate.
//!
//! The object owns the aggregate's SQLite event log and serves its commands, state,
//! listings and live sockets. It knows which aggregate it is from its own name
//! (`state.id().name()`, see [`crate::names`]); requests arrive from the Worker already
//! routed, authenticated and validated, as a typed [`Call`] (see [`crate::call`]).
//!
//! Atomicity: a command runs from the version check to the append and the socket
//! fan-out with no `.await`, so no other request can interleave and the object's write
//! coalescing commits it as one unit. Live sockets use the hibernation API and the feed
//! engine ([`crate::feed`]): idle subscribers cost nothing and survive eviction.

use std::cell::{Cell, RefCell};

use domain::EventEnvelope;
use domain::command_service::{BatchRequest, CommandInputs, CommandRequest, Loaded};
use domain::envelope::Metadata;
use domain::store::{Direction, EventStore, ReadQuery, StoredEvent};
use serde::Serialize;
use worker::{
    DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
    WebSocketPair, durable_object,
};

use crate::call::{AggregateOp, Call, Caller, ConsistencyToken, PartitionOp};
use crate::clock::{at_unix_ms, new_event_id, now_ms};
use crate::config::Config;
use crate::encoding::{Encoding, EventPage, json_response, page_response};
use crate::error::{ApiError, ApiResult};
use crate::feed::{Feed, FeedLimits, FeedLog, event_frame};
use crate::names::ObjectName;
use crate::sockets;
pub mod store;

use store::SqliteStore;

/// The Durable Object namespace binding of aggregates.
pub const AGGREGATES: &str = "AGGREGATES";

/// The Durable Object namespace binding of stream partitions.
pub const PARTITIONS: &str = "PARTITIONS";

/// Most events per forwarded batch (a batch is also bounded by the read budget).
const FORWARD_BATCH: usize = 500;

#[durable_object]
pub struct AggregateObject {
    state: State,
    env: Env,
    config: Config,
    /// Which aggregate this is, from the object's own name.
    identity: Option<Identity>,
    /// Whether an alarm is already set to forward what was committed (cleared when it
    /// fires), so a burst of commands sets it once.
    forward_armed: Cell<bool>,
    /// When the last forward started (Unix ms, 0 before the first): the next one runs no
    /// sooner than `STREAM_FORWARD_INTERVAL_MS` after it.
    last_forward_at: Cell<i64>,
    /// While forwarding backs off after a failure (Unix ms): commands committed meanwhile
    /// leave the retry alarm where it is instead of trying at once.
    forward_backoff_until: Cell<i64>,
    /// Opened lazily: `new` cannot fail, opening can.
    store: RefCell<Option<SqliteStore>>,
    /// The aggregate's state and version, cached between requests; rebuilt on wake.
    loaded: RefCell<Option<Loaded>>,
    /// Changes every time the runtime constructs this object (diagnostics and tests).
    instance: String,
    /// The sockets' feeds, their attachments read back from memory.
    feeds: sockets::Feeds,
}

/// How [`AggregateObject::command`] runs a command or batch: its `Idempotency-Key`, the
/// most events it may append, and whether the answer leaves out `events`.
struct Run<'a> {
    idempotency_key: Option<&'a str>,
    max_events: usize,
    minimal: bool,
}

/// The answer to a command (field order as documented).
#[derive(Serialize)]
struct CommandResponse<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: u64,
    /// Absent when the client asked for `Prefer: return=minimal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [EventEnvelope]>,
    /// `"{type}/{id}@{version}"`: a projection read given it waits for this command.
    consistency_token: String,
}

/// The answer to a state read.
#[derive(Serialize)]
struct StateResponse<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: u64,
    state: serde_json::Value,
}

impl DurableObject for AggregateObject {
    fn new(state: State, env: Env) -> Self {
        let identity = state
            .id()
            .name()
            .as_deref()
            .and_then(ObjectName::parse)
            .and_then(|name| match name {
                ObjectName::Aggregate {
                    aggregate_type,
                    aggregate_id,
                    tenant,
                } => Some(Identity {
                    tenant,
                    aggregate_type,
                    aggregate_id,
                }),
                _ => None,
            });
        Self {
            state,
            config: Config::from_env(&env),
            env,
            identity,
            forward_armed: Cell::new(false),
            last_forward_at: Cell::new(0),
            forward_backoff_until: Cell::new(0),
            store: RefCell::new(None),
            loaded: RefCell::new(None),
            instance: uuid::Uuid::new_v4().to_string(),
            feeds: sockets::Feeds::default(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        crate::call::answer(self.handle(req).await, &self.instance)
    }

    /// The alarm forwards committed events to the stream partition (retrying with
    /// backoff until it acknowledges them) and closes sockets whose token has expired.
    async fn alarm(&self) -> Result<Response> {
        self.forward_armed.set(false);
        self.last_forward_at.set(now_ms());
        let retry_at = self.forward().await;
        self.forward_backoff_until.set(retry_at.unwrap_or(0));
        if let Some(retry_at) = retry_at {
            sockets::alarm_by(&self.state, retry_at).await;
        }
        if let Some(next) = self.feeds.close_expired(&self.state, now_ms()) {
            sockets::alarm_by(&self.state, sockets::secs_to_ms(next)).await;
        }
        Response::empty()
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.on_client_frame(&ws, sockets::frame_text(message).as_deref());
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.feeds.closed_by_client(&ws, code, reason);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.feeds.failed(&ws);
        Ok(())
    }
}

impl AggregateObject {
    async fn handle(&self, mut req: Request) -> ApiResult<Response> {
        let call: Call<AggregateOp> = Call::from_request(&req)?;
        let id = self
            .identity
            .as_ref()
            .ok_or_else(|| ApiError::internal("an aggregate object without an aggregate name"))?;
        // Looked up lazily: building the error logs it.
        let caller = call.caller.clone();
        let caller = || {
            caller
                .clone()
                .ok_or_else(|| ApiError::internal("a client operation without a caller"))
        };
        match call.op {
            AggregateOp::Command {
                idempotency_key,
                minimal,
            } => {
                let caller = &caller()?;
                let body = req.bytes().await?;
                let request: CommandRequest = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::internal(format!("the Worker sent a bad command: {e}"))
                })?;
                let ids = request.metadata_ids();
                let max_events = self.config.max_events_per_command;
                self.command(
                    id,
                    caller,
                    ids,
                    Run {
                        idempotency_key: idempotency_key.as_deref(),
                        max_events,
                        minimal,
                    },
                    |store, loaded, inputs, every| loaded.execute(store, request, inputs, every),
                )
            }
            AggregateOp::Batch {
                idempotency_key,
                minimal,
            } => {
                let caller = &caller()?;
                let body = req.bytes().await?;
                let batch: BatchRequest = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::internal(format!("the Worker sent a bad batch: {e}")))?;
                let ids = batch.metadata_ids();
                let max_events = self.config.max_events_per_batch;
                self.command(
                    id,
                    caller,
                    ids,
                    Run {
                        idempotency_key: idempotency_key.as_deref(),
                        max_events,
                        minimal,
                    },
                    |store, loaded, inputs, every| {
                        loaded.execute_batch(store, batch, inputs, every)
                    },
                )
            }
            AggregateOp::State {
                at_version,
                as_of_ms,
            } => self.read_state(id, at_version, as_of_ms),
            AggregateOp::Events {
                after,
                before,
                limit,
                backward,
                encoding,
            } => {
                let query = ReadQuery {
                    direction: if backward {
                        Direction::Backward
                    } else {
                        Direction::Forward
                    },
                    after,
                    before,
                    limit,
                };
                self.list_events(id, query, encoding)
            }
            AggregateOp::Subscribe { after, protocol } => {
                self.subscribe(id, &caller()?, after, protocol).await
            }
        }
    }

    /// Runs `f` with the store and the loaded aggregate (loading it on first use).
    fn with_aggregate<T>(
        &self,
        id: &Identity,
        f: impl FnOnce(&mut SqliteStore, &mut Loaded) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let mut store_slot = self.store.borrow_mut();
        if store_slot.is_none() {
            *store_slot =
                Some(SqliteStore::open(self.state.storage().sql()).map_err(ApiError::internal)?);
        }
        let store = store_slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("store not open"))?;
        let mut loaded_slot = self.loaded.borrow_mut();
        if loaded_slot.is_none() {
            *loaded_slot = Some(Loaded::load(store, &id.aggregate_type, &id.aggregate_id)?);
        }
        let loaded = loaded_slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("aggregate not loaded"))?;
        f(store, loaded)
    }

    /// Runs a command or a batch (`execute`): no `.await` from here to the fan-out, so it
    /// is atomic. `ids` are the request's `command_id`, `correlation_id`, `causation_id`.
    fn command(
        &self,
        id: &Identity,
        caller: &Caller,
        ids: [Option<String>; 3],
        options: Run<'_>,
        execute: impl FnOnce(
            &mut SqliteStore,
            &mut Loaded,
            CommandInputs<'_>,
            u64,
        ) -> Result<
            domain::command_service::CommandOutcome,
            domain::command_service::ExecuteError,
        >,
    ) -> ApiResult<Response> {
        let Run {
            idempotency_key,
            max_events,
            minimal,
        } = options;
        let [command_id, correlation_id, causation_id] = ids;
        let metadata = Metadata {
            command_id: Some(command_id.unwrap_or_else(new_event_id)),
            correlation_id,
            causation_id,
            actor: Some(caller.actor.clone()),
        };
        let mut next_event_id = new_event_id;
        let inputs = CommandInputs {
            now_ms: now_ms(),
            metadata,
            idempotency_key,
            next_event_id: &mut next_event_id,
            max_events,
        };
        let snapshot_every = self.config.snapshot_every;
        let outcome = self.with_aggregate(id, |store, loaded| {
            Ok(execute(store, loaded, inputs, snapshot_every)?)
        })?;
        // Envelopes are built only for someone: the answer (unless minimal) or a socket.
        let answered: Option<Vec<EventEnvelope>> =
            (!minimal).then(|| outcome.events.iter().map(|e| id.envelope(e)).collect());
        if !outcome.replayed && !outcome.events.is_empty() {
            self.arm_forwarding();
            self.broadcast(|| match &answered {
                Some(envelopes) => envelopes.iter().map(|e| (e.seq, event_frame(e))).collect(),
                None => outcome
                    .events
                    .iter()
                    .map(|e| (e.seq, event_frame(&id.envelope(e))))
                    .collect(),
            });
        }
        let mut response = json_response(
            &CommandResponse {
                aggregate_type: &id.aggregate_type,
                aggregate_id: &id.aggregate_id,
                version: outcome.version,
                events: answered.as_deref(),
                consistency_token: ConsistencyToken {
                    aggregate_type: id.aggregate_type.clone(),
                    aggregate_id: id.aggregate_id.clone(),
                    version: outcome.version,
                }
                .to_string(),
            },
            200,
        );
        if outcome.replayed {
            let _ = response.headers_mut().set("idempotent-replayed", "true");
        }
        if minimal {
            let _ = response
                .headers_mut()
                .set("preference-applied", "return=minimal");
        }
        Ok(response)
    }

    fn read_state(
        &self,
        id: &Identity,
        at_version: Option<u64>,
        as_of_ms: Option<i64>,
    ) -> ApiResult<Response> {
        let (version, state) = self.with_aggregate(id, |store, loaded| {
            if loaded.version == 0 {
                return Err(id.no_events());
            }
            let target = match (at_version, as_of_ms) {
                (Some(v), _) => v,
                (_, Some(t)) => store.seq_at_time(t).map_err(ApiError::internal)?,
                _ => return Ok((loaded.version, loaded.state.to_json())),
            };
            if target == 0 || target > loaded.version {
                return Err(ApiError::not_found(format!(
                    "{}/{} has no version {target} (its versions are 1 to {})",
                    id.aggregate_type, id.aggregate_id, loaded.version
                ))
                .with_detail("version", loaded.version));
            }
            if target == loaded.version {
                return Ok((loaded.version, loaded.state.to_json()));
            }
            let past = Loaded::at_version(store, &id.aggregate_type, &id.aggregate_id, target)?;
            Ok((past.version, past.state.to_json()))
        })?;
        Ok(json_response(
            &StateResponse {
                aggregate_type: &id.aggregate_type,
                aggregate_id: &id.aggregate_id,
                version,
                state,
            },
            200,
        ))
    }

    fn list_events(
        &self,
        id: &Identity,
        query: ReadQuery,
        encoding: Encoding,
    ) -> ApiResult<Response> {
        let page = self.with_aggregate(id, |store, loaded| {
            if loaded.version == 0 {
                return Err(id.no_events());
            }
            let version = loaded.version;
            let events = store.read(&query).map_err(ApiError::internal)?;
            let last = events.last().map(|e| e.seq);
            let envelopes = events.iter().map(|e| id.envelope(e)).collect();
            Ok(match query.direction {
                Direction::Forward => EventPage {
                    events: envelopes,
                    next_after: Some(last.filter(|seq| *seq < version)),
                    next_before: None,
                },
                Direction::Backward => EventPage {
                    events: envelopes,
                    next_after: None,
                    next_before: Some(last.filter(|seq| *seq > 1)),
                },
            })
        })?;
        Ok(page_response(&page, encoding))
    }

    fn feed_limits(&self) -> FeedLimits {
        FeedLimits {
            window: self.config.ws_ack_window,
            max_frames_per_second: self.config.ws_max_frames_per_second,
            cursor: "seq",
        }
    }

    /// Accepts a hibernating WebSocket and starts its feed from `after`. The replay and
    /// the registration happen with no `.await` between them, so no event committed in
    /// the meantime can be missed or sent twice.
    async fn subscribe(
        &self,
        id: &Identity,
        caller: &Caller,
        after: u64,
        protocol: Option<String>,
    ) -> ApiResult<Response> {
        if self.feeds.open_feeds(&self.state).len() >= self.config.max_subscribers {
            return Err(ApiError::rate_limited(
                format!(
                    "this aggregate has the maximum of {} live subscribers",
                    self.config.max_subscribers
                ),
                5,
            ));
        }
        let pair = WebSocketPair::new()?;
        let server = pair.server;
        let limits = self.feed_limits();
        self.with_aggregate(id, |store, loaded| {
            if after > loaded.version {
                return Err(ApiError::bad_request(format!(
                    "`after` ({after}) is beyond the aggregate's version ({})",
                    loaded.version
                ))
                .with_detail("version", loaded.version));
            }
            self.state.accept_web_socket(&server);
            let mut feed = Feed::new(after, Some(caller.expires_at));
            let log = AggregateLog {
                id,
                store,
                version: loaded.version,
            };
            match feed.pump(&log, &limits) {
                Ok(actions) => self.feeds.save_and_apply(&server, &feed, actions),
                Err(error) => {
                    // Never leave an accepted socket behind that would receive nothing.
                    let actions = feed.close_internal();
                    self.feeds.save_and_apply(&server, &feed, actions);
                    return Err(ApiError::internal(error));
                }
            }
            Ok(())
        })?;
        sockets::alarm_by(&self.state, sockets::secs_to_ms(caller.expires_at)).await;
        let mut response = Response::from_websocket(pair.client)?;
        if let Some(protocol) = protocol {
            response
                .headers_mut()
                .set("sec-websocket-protocol", &protocol)?;
        }
        Ok(response)
    }

    /// Sets the alarm to forward, in the same synchronous step as the append it follows:
    /// at once after a quiet spell, else `STREAM_FORWARD_INTERVAL_MS` after the last forward
    /// started, so commits in between travel in one batch ([`stream::pacing`]). The alarm
    /// write joins the append's write (the object's write coalescing
    /// commits both or neither), so committed events are always forwarded — after a crash
    /// too — without an `.await` inside the command. Polling `set_alarm` once issues the
    /// runtime call; nothing is left to wait for.
    fn arm_forwarding(&self) {
        if now_ms() < self.forward_backoff_until.get() || self.forward_armed.replace(true) {
            return; // an alarm is set already: the next attempt, or the retry after a failure
        }
        let at = stream::pacing::next_run(
            now_ms(),
            self.last_forward_at.get(),
            self.config.stream_forward_interval_ms,
        );
        let storage = self.state.storage();
        let _ = futures_util::FutureExt::now_or_never(storage.set_alarm(at_unix_ms(at)));
    }

    /// Forwards what the partition has not acknowledged yet. Returns when to try again
    /// if the partition could not take it (paused, unreachable, misconfigured).
    async fn forward(&self) -> Option<i64> {
        let id = self.identity.as_ref()?;
        match self.forward_pending(id).await {
            Ok(()) => None,
            Err(error) => {
                let attempts = self
                    .with_aggregate(id, |store, _| Ok(store.forward_failed()?))
                    .unwrap_or(1);
                let backoff = 100u64
                    .saturating_mul(1 << attempts.min(20).saturating_sub(1))
                    .min(self.config.stream_retry_max_ms);
                if attempts == 1 || attempts.is_multiple_of(10) {
                    worker::console_warn!(
                        "forwarding {}/{} to its partition failed ({attempts} in a row; next try in {backoff} ms): {error}",
                        id.aggregate_type,
                        id.aggregate_id
                    );
                }
                Some(now_ms() + backoff as i64)
            }
        }
    }

    async fn forward_pending(&self, id: &Identity) -> ApiResult<()> {
        let partitions = self.config.partitions()?;
        let partition = partitions.partition_of(&id.aggregate_type, &id.aggregate_id);
        let name = ObjectName::partition(&id.tenant, partition).to_string();
        let stub = self
            .env
            .durable_object(PARTITIONS)?
            .id_from_name(&name)?
            .get_stub()?;
        loop {
            let events =
                self.with_aggregate(id, |store, _| Ok(store.read_unforwarded(FORWARD_BATCH)?))?;
            if events.is_empty() {
                return Ok(());
            }
            let batch = stream::ForwardBatch {
                aggregate_type: id.aggregate_type.clone(),
                aggregate_id: id.aggregate_id.clone(),
                events,
            };
            let call = Call {
                caller: None,
                op: PartitionOp::Append,
            };
            let mut response = call.send(&stub, false, Some(batch.encode())).await?;
            let through = match response.status_code() {
                200 => {
                    crate::call::body_json::<stream::ForwardAck>(response)
                        .await?
                        .accepted_through
                }
                409 => match crate::call::body_json::<stream::ForwardRefusal>(response).await? {
                    stream::ForwardRefusal::Gap { expected } => expected.saturating_sub(1),
                    refusal => return Err(ApiError::internal(format!("refused: {refusal:?}"))),
                },
                status => {
                    let text = response.text().await.unwrap_or_default();
                    return Err(ApiError::internal(format!(
                        "partition answered {status}: {text}"
                    )));
                }
            };
            // Commands may have committed during the call; when none did, the log is
            // forwarded through its end and there is nothing to read again.
            let caught_up = self.with_aggregate(id, |store, loaded| {
                store.set_forwarded_through(through)?;
                Ok(through >= loaded.version)
            })?;
            if caught_up {
                return Ok(());
            }
        }
    }

    /// Sends committed events to every open feed. Each frame is serialized once,
    /// whatever the number of sockets, and not at all when no socket is open.
    /// Sends the new events' frames (`(seq, frame)`, built only if a socket is open) to
    /// every open feed.
    fn broadcast(&self, frames: impl FnOnce() -> Vec<(u64, String)>) {
        let feeds = self.feeds.open_feeds(&self.state);
        if feeds.is_empty() {
            return;
        }
        let entries = frames();
        let now = now_ms();
        let limits = self.feed_limits();
        for (socket, mut feed) in feeds {
            let actions = feed.on_commit(&entries, now, &limits);
            if !actions.is_empty() {
                self.feeds.save_and_apply(&socket, &feed, actions);
            }
        }
    }

    /// A client frame, through the feed engine (acks, limits, catch-up).
    fn on_client_frame(&self, socket: &WebSocket, text: Option<&str>) {
        let Some(mut feed) = self.feeds.load(socket) else {
            return;
        };
        let Some(id) = self.identity.as_ref() else {
            let actions = feed.close_internal();
            self.feeds.save_and_apply(socket, &feed, actions);
            return;
        };
        let limits = self.feed_limits();
        let result = self.with_aggregate(id, |store, loaded| {
            let log = AggregateLog {
                id,
                store,
                version: loaded.version,
            };
            feed.on_client_frame(text, now_ms(), &log, &limits)
                .map_err(ApiError::internal)
        });
        let actions = result.unwrap_or_else(|_| feed.close_internal());
        self.feeds.save_and_apply(socket, &feed, actions);
    }
}

/// The aggregate's log as the feed engine reads it.
struct AggregateLog<'a> {
    id: &'a Identity,
    store: &'a SqliteStore,
    version: u64,
}

impl FeedLog for AggregateLog<'_> {
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> std::result::Result<Vec<(u64, String)>, String> {
        let events = self
            .store
            .read(&ReadQuery::forward(after, limit))
            .map_err(|e| e.to_string())?;
        Ok(events
            .iter()
            .map(|e| (e.seq, event_frame(&self.id.envelope(e))))
            .collect())
    }

    fn head(&self) -> u64 {
        self.version
    }

    fn caught_up_frame(&self, head: u64) -> String {
        serde_json::json!({ "kind": "caught_up", "version": head }).to_string()
    }
}

/// The aggregate an object serves, from its name.
struct Identity {
    tenant: String,
    aggregate_type: String,
    aggregate_id: String,
}

impl Identity {
    fn envelope(&self, event: &StoredEvent) -> EventEnvelope {
        event.envelope(&self.aggregate_type, &self.aggregate_id)
    }

    fn no_events(&self) -> ApiError {
        ApiError::not_found(format!(
            "{}/{} has no events",
            self.aggregate_type, self.aggregate_id
        ))
    }
}
