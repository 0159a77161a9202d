//! `AggregateObject`: one Durable Object per aggregate.
//!
//! The object owns the aggregate's SQLite event log and serves its commands, state,
//! listings and live sockets. Requests arrive from the Worker already authenticated and
//! routed; the path is the public one (`/v1/aggregates/{type}/{id}/…`).
//!
//! Atomicity: after the body has been read, a command runs from the version check to the
//! append and the socket fan-out with no `.await`, so no other request can interleave
//! and the object's write coalescing commits it as one unit. Live sockets use the
//! hibernation API: idle subscribers cost nothing and survive the object's eviction.

use std::cell::RefCell;

use domain::envelope::{Metadata, parse_timestamp};
use domain::store::{
    CommandInputs, CommandRequest, Direction, EventStore, Loaded, ReadQuery, StoredEvent,
};
use domain::{EventEnvelope, registry};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use worker::{
    DurableObject, Env, Method, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::config::Config;
use crate::http::{
    self, ApiError, ApiResult, Encoding, EventPage, Query, check_params, json_response,
    listing_params, page_response, query_pairs, u64_param,
};
use crate::names::{ACTOR_HEADER, EXPIRES_HEADER, INSTANCE_HEADER, WS_PROTOCOL_HEADER};
use crate::sqlite::SqliteStore;
use crate::subscription::{
    CLOSE_PROTOCOL_ERROR, CLOSE_RATE_LIMITED, CLOSE_SLOW_CONSUMER, CLOSE_TOKEN_EXPIRED,
    ClientFrame, Subscriber, close_with_error, event_frame, pump,
};

/// Longest accepted `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[durable_object]
pub struct AggregateObject {
    state: State,
    config: Config,
    /// Opened lazily: `new` cannot fail, opening can.
    store: RefCell<Option<SqliteStore>>,
    /// The aggregate's state and version, cached between requests; rebuilt on wake.
    loaded: RefCell<Option<Loaded>>,
    /// Changes every time the runtime constructs this object (diagnostics and tests).
    instance: String,
}

/// The answer to a command (field order as documented).
#[derive(Serialize)]
struct CommandResponse<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: u64,
    events: &'a [EventEnvelope],
}

/// The answer to a state read.
#[derive(Serialize)]
struct StateResponse<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: u64,
    state: serde_json::Value,
}

/// The route inside the object, from the public path.
enum Route {
    Commands,
    State,
    Events,
    Socket,
}

impl DurableObject for AggregateObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            config: Config::from_env(&env),
            store: RefCell::new(None),
            loaded: RefCell::new(None),
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let mut response = match self.handle(req).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        let _ = response.headers_mut().set(INSTANCE_HEADER, &self.instance);
        Ok(response)
    }

    /// The alarm closes sockets whose token has expired (see `close_expired_by`).
    async fn alarm(&self) -> Result<Response> {
        self.close_expired_sockets().await;
        Response::empty()
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let text = match message {
            WebSocketIncomingMessage::String(text) => Some(text),
            WebSocketIncomingMessage::Binary(_) => None,
        };
        if let Err(error) = self.on_client_frame(&ws, text) {
            close_with_error(&ws, 1011, error.code, &error.message, json!({}));
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake; the socket may already be gone.
        let code = u16::try_from(code)
            .ok()
            .filter(|c| *c == 1000 || (3000..5000).contains(c))
            .unwrap_or(1000);
        let _ = ws.close(Some(code), Some(reason));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let _ = ws.close(Some(1011), Some("socket error"));
        Ok(())
    }
}

impl AggregateObject {
    async fn handle(&self, req: Request) -> ApiResult<Response> {
        let url = req.url()?;
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        let (aggregate_type, aggregate_id, route) = match segments.as_slice() {
            ["v1", "aggregates", t, id] => (*t, *id, Route::State),
            ["v1", "aggregates", t, id, "commands"] => (*t, *id, Route::Commands),
            ["v1", "aggregates", t, id, "events"] => (*t, *id, Route::Events),
            ["v1", "aggregates", t, id, "ws"] => (*t, *id, Route::Socket),
            _ => return Err(ApiError::not_found("no such route")),
        };
        if !registry::is_known(aggregate_type) {
            return Err(ApiError::not_found(format!(
                "unknown aggregate type `{aggregate_type}`"
            )));
        }
        let id = Identity {
            aggregate_type,
            aggregate_id,
        };
        let query = query_pairs(&url);
        match route {
            Route::Commands => self.command(req, &id).await,
            Route::State => self.read_state(&id, &query),
            Route::Events => self.list_events(&req, &id, &query),
            Route::Socket => self.subscribe(&req, &id, &query).await,
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
            *loaded_slot = Some(Loaded::load(store, id.aggregate_type, id.aggregate_id)?);
        }
        let loaded = loaded_slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("aggregate not loaded"))?;
        f(store, loaded)
    }

    async fn command(&self, mut req: Request, id: &Identity<'_>) -> ApiResult<Response> {
        if req.method() != Method::Post {
            return Err(ApiError::method_not_allowed("POST"));
        }
        let idempotency_key = idempotency_key(&req)?;
        let actor = req.headers().get(ACTOR_HEADER)?;
        let body = read_body(&mut req, self.config.max_body_bytes).await?;
        let request = decode_command(&req, &body)?;
        // From here to the fan-out there is no `.await`: the command is atomic.
        let metadata = Metadata {
            command_id: Some(request.command_id.clone().unwrap_or_else(new_event_id)),
            correlation_id: request.correlation_id.clone(),
            causation_id: request.causation_id.clone(),
            actor,
        };
        let mut next_event_id = new_event_id;
        let inputs = CommandInputs {
            now_ms: now_ms(),
            metadata,
            idempotency_key: idempotency_key.as_deref(),
            next_event_id: &mut next_event_id,
            max_events: self.config.max_events_per_command,
        };
        let snapshot_every = self.config.snapshot_every;
        let outcome = self.with_aggregate(id, |store, loaded| {
            Ok(loaded.execute(store, request, inputs, snapshot_every)?)
        })?;
        let envelopes: Vec<EventEnvelope> = outcome.events.iter().map(|e| id.envelope(e)).collect();
        if !outcome.replayed {
            self.broadcast(&envelopes);
        }
        let mut response = json_response(
            &CommandResponse {
                aggregate_type: id.aggregate_type,
                aggregate_id: id.aggregate_id,
                version: outcome.version,
                events: &envelopes,
            },
            200,
        );
        if outcome.replayed {
            let _ = response.headers_mut().set("idempotent-replayed", "true");
        }
        Ok(response)
    }

    fn read_state(&self, id: &Identity, query: &Query) -> ApiResult<Response> {
        check_params(query, &["at_version", "as_of"])?;
        let at_version = u64_param(query, "at_version")?;
        let as_of = match http::param(query, "as_of") {
            Some(text) => Some(parse_timestamp(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`as_of` must be an RFC 3339 timestamp, got `{text}`"
                ))
            })?),
            None => None,
        };
        if at_version.is_some() && as_of.is_some() {
            return Err(ApiError::bad_request(
                "give `at_version` or `as_of`, not both",
            ));
        }
        let (version, state) = self.with_aggregate(id, |store, loaded| {
            if loaded.version == 0 {
                return Err(id.no_events());
            }
            let target = match (at_version, as_of) {
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
            let past = Loaded::at_version(store, id.aggregate_type, id.aggregate_id, target)?;
            Ok((past.version, past.state.to_json()))
        })?;
        Ok(json_response(
            &StateResponse {
                aggregate_type: id.aggregate_type,
                aggregate_id: id.aggregate_id,
                version,
                state,
            },
            200,
        ))
    }

    fn list_events(&self, req: &Request, id: &Identity, query: &Query) -> ApiResult<Response> {
        let params = listing_params(query)?;
        let encoding = Encoding::from_accept(req.headers().get("accept")?.as_deref());
        let page = self.with_aggregate(id, |store, loaded| {
            if loaded.version == 0 {
                return Err(id.no_events());
            }
            let version = loaded.version;
            let events = store
                .read(&ReadQuery {
                    direction: params.direction,
                    after: params.after,
                    before: params.before,
                    limit: params.limit,
                })
                .map_err(ApiError::internal)?;
            let last = events.last().map(|e| e.seq);
            let envelopes = events.iter().map(|e| id.envelope(e)).collect();
            Ok(match params.direction {
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

    /// Accepts a hibernating WebSocket and replays the log after `?after=N` within the
    /// subscriber's acknowledgement window, then `caught_up` (see [`crate::subscription`]).
    /// The replay and the registration happen with no `.await` between them, so no event
    /// committed in the meantime can be missed or sent twice.
    async fn subscribe(
        &self,
        req: &Request,
        id: &Identity<'_>,
        query: &Query,
    ) -> ApiResult<Response> {
        if req.method() != Method::Get {
            return Err(ApiError::method_not_allowed("GET"));
        }
        let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Err(ApiError::upgrade_required());
        }
        check_params(query, &["after", "access_token"])?;
        let after = u64_param(query, "after")?.unwrap_or(0);
        let expires_at: Option<u64> = req
            .headers()
            .get(EXPIRES_HEADER)?
            .and_then(|v| v.parse().ok());
        let protocol = req.headers().get(WS_PROTOCOL_HEADER)?;
        if self.state.get_websockets().len() >= self.config.max_subscribers {
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
        let window = self.config.ws_ack_window;
        self.with_aggregate(id, |store, loaded| {
            if after > loaded.version {
                return Err(ApiError::bad_request(format!(
                    "`after` ({after}) is beyond the aggregate's version ({})",
                    loaded.version
                ))
                .with_detail("version", loaded.version));
            }
            self.state.accept_websocket_with_tags(
                &server,
                &[&format!("{}:{}", id.aggregate_type, id.aggregate_id)],
            );
            let mut subscriber = Subscriber::new(after, expires_at);
            if let Err(error) = pump(
                &server,
                &mut subscriber,
                store,
                loaded.version,
                window,
                |e| id.envelope(e),
            ) {
                // Never leave an accepted socket behind that would count against the
                // subscriber limit and receive nothing.
                let _ = server.close(Some(1011), Some("internal error"));
                return Err(ApiError::internal(error));
            }
            subscriber.save(&server);
            Ok(())
        })?;
        if let Some(expires_at) = expires_at {
            self.close_expired_by(expires_at).await;
        }
        let mut response = Response::from_websocket(pair.client)?;
        if let Some(protocol) = protocol {
            response
                .headers_mut()
                .set("sec-websocket-protocol", &protocol)?;
        }
        Ok(response)
    }

    /// Makes sure the alarm fires by `expires_at` (Unix seconds), so sockets whose token
    /// expires are closed even when no event is ever written to them.
    async fn close_expired_by(&self, expires_at: u64) {
        let at_ms = expires_at.saturating_mul(1000).min(http::MAX_SAFE_INTEGER) as i64;
        let storage = self.state.storage();
        let current = storage.get_alarm().await.ok().flatten();
        if current.is_none_or(|current| current > at_ms) {
            // An absolute time: an `i64` given to `set_alarm` means an offset from now.
            let at = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
            let _ = storage.set_alarm(worker::ScheduledTime::new(at)).await;
        }
    }

    /// Closes every socket whose token has expired (4001); the alarm is then set again for
    /// the next expiry among those left.
    async fn close_expired_sockets(&self) {
        let now = now_ms();
        let mut next: Option<u64> = None;
        for socket in self.state.get_websockets() {
            let Some(subscriber) = Subscriber::load(&socket) else {
                continue;
            };
            if subscriber.expired(now) {
                close_token_expired(&socket, &subscriber);
            } else if let Some(expires_at) = subscriber.expires_at {
                next = Some(next.map_or(expires_at, |n| n.min(expires_at)));
            }
        }
        if let Some(next) = next {
            self.close_expired_by(next).await;
        }
    }

    /// Sends committed events to every live subscriber; closes those whose unacknowledged
    /// events would pass the window, and those whose token has expired. Each frame is
    /// serialized once, whatever the number of sockets.
    fn broadcast(&self, events: &[EventEnvelope]) {
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        let frames: Vec<(u64, String)> = events
            .iter()
            .filter_map(|e| Some((e.seq, event_frame(e)?)))
            .collect();
        let now = now_ms();
        for socket in self.state.get_websockets() {
            let Some(mut subscriber) = Subscriber::load(&socket) else {
                continue;
            };
            if subscriber.expired(now) {
                close_token_expired(&socket, &subscriber);
                continue;
            }
            if !subscriber.live {
                continue; // catching up from the log as it acks
            }
            let fresh = frames.iter().filter(|(seq, _)| *seq > subscriber.sent);
            if subscriber.sent + fresh.clone().count() as u64 - subscriber.acked
                > self.config.ws_ack_window
            {
                close_with_error(
                    &socket,
                    CLOSE_SLOW_CONSUMER,
                    "slow_consumer",
                    &format!(
                        "more than {} events unacknowledged; reconnect with after={}",
                        self.config.ws_ack_window, subscriber.acked
                    ),
                    json!({ "resume_after": subscriber.acked }),
                );
                continue;
            }
            for (_, frame) in fresh {
                // A closing socket fails to send; the runtime drops it.
                let _ = socket.send_with_str(frame);
            }
            subscriber.sent = subscriber.sent.max(last);
            subscriber.save(&socket);
        }
    }

    /// A client frame: an ack of a seq it was sent, counted against the per-second frame
    /// limit. Anything else — not JSON, another kind, an ack of a seq never sent (which
    /// would defeat the window) — is a protocol error: error frame, close 1008.
    fn on_client_frame(&self, socket: &WebSocket, text: Option<String>) -> ApiResult<()> {
        let Some(mut subscriber) = Subscriber::load(socket) else {
            return Ok(());
        };
        if !subscriber.count_frame(now_ms(), self.config.ws_max_frames_per_second) {
            close_with_error(
                socket,
                CLOSE_RATE_LIMITED,
                "rate_limited",
                &format!(
                    "more than {} frames per second",
                    self.config.ws_max_frames_per_second
                ),
                json!({ "resume_after": subscriber.acked }),
            );
            return Ok(());
        }
        if subscriber.expired(now_ms()) {
            close_token_expired(socket, &subscriber);
            return Ok(());
        }
        let seq = match text.as_deref().map(serde_json::from_str::<ClientFrame>) {
            Some(Ok(ClientFrame::Ack { seq })) if seq <= subscriber.sent => seq,
            Some(Ok(ClientFrame::Ack { seq })) => {
                let message = format!("ack of seq {seq}, but only {} was sent", subscriber.sent);
                close_with_error(
                    socket,
                    CLOSE_PROTOCOL_ERROR,
                    "bad_request",
                    &message,
                    json!({ "resume_after": subscriber.acked }),
                );
                return Ok(());
            }
            _ => {
                let message = r#"client frames are {"kind":"ack","seq":N}"#;
                close_with_error(
                    socket,
                    CLOSE_PROTOCOL_ERROR,
                    "bad_request",
                    message,
                    json!({ "resume_after": subscriber.acked }),
                );
                return Ok(());
            }
        };
        subscriber.acked = subscriber.acked.max(seq);
        if !subscriber.live
            && let Some(id) = self.socket_identity(socket)
        {
            let window = self.config.ws_ack_window;
            self.with_aggregate(&id.borrow(), |store, loaded| {
                pump(
                    socket,
                    &mut subscriber,
                    store,
                    loaded.version,
                    window,
                    |e| id.borrow().envelope(e),
                )
                .map_err(ApiError::internal)
            })?;
        }
        subscriber.save(socket);
        Ok(())
    }

    /// The aggregate a socket belongs to, from the tags it was accepted with.
    fn socket_identity(&self, socket: &WebSocket) -> Option<OwnedIdentity> {
        let tags = self.state.get_tags(socket);
        let (aggregate_type, aggregate_id) = tags.first()?.split_once(':')?;
        Some(OwnedIdentity {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        })
    }
}

struct OwnedIdentity {
    aggregate_type: String,
    aggregate_id: String,
}

impl OwnedIdentity {
    fn borrow(&self) -> Identity<'_> {
        Identity {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
        }
    }
}

/// The aggregate an object serves, from the request path.
struct Identity<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
}

impl Identity<'_> {
    fn envelope(&self, event: &StoredEvent) -> EventEnvelope {
        event.envelope(self.aggregate_type, self.aggregate_id)
    }

    fn no_events(&self) -> ApiError {
        ApiError::not_found(format!(
            "{}/{} has no events",
            self.aggregate_type, self.aggregate_id
        ))
    }
}

fn close_token_expired(socket: &WebSocket, subscriber: &Subscriber) {
    close_with_error(
        socket,
        CLOSE_TOKEN_EXPIRED,
        "token_expired",
        "the token has expired; reconnect with a fresh one",
        json!({ "resume_after": subscriber.acked }),
    );
}

fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
    let Some(key) = req.headers().get("idempotency-key")? else {
        return Ok(None);
    };
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(ApiError::bad_request(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )));
    }
    Ok(Some(key))
}

/// Reads the body, refusing more than `limit` bytes (413) whatever `Content-Length` says:
/// the stream is read chunk by chunk and abandoned as soon as it passes the limit, so a
/// chunked body cannot make the object buffer more than `limit` bytes.
async fn read_body(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    if let Some(length) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(ApiError::too_large(limit));
    }
    let unreadable = |_| ApiError::bad_request("the request body could not be read");
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(body); // no body at all
    };
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(unreadable)?);
        if body.len() > limit {
            return Err(ApiError::too_large(limit));
        }
    }
    Ok(body)
}

/// Decodes a command body: JSON by default, MessagePack with `Content-Type:
/// application/msgpack`. Either way the body must be an object (serde would also accept
/// the fields as a positional array, which is not part of the contract).
fn decode_command(req: &Request, body: &[u8]) -> ApiResult<CommandRequest> {
    let content_type = req
        .headers()
        .get("content-type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    let value: serde_json::Value = match media {
        "" | "application/json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?,
        "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
            http::msgpack_to_json(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is not valid MessagePack for a command: {e}"
                ))
            })?
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "commands are `application/json` or `application/msgpack`, not `{other}`"
            )));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            r#"a command is an object: {"type": …, "data": {…}, "expected_version": …}"#,
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid command: {e}")))
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A UUID v7: time-ordered, so ids sort roughly by recording time.
fn new_event_id() -> String {
    let ms = now_ms().max(0) as u64;
    let ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    uuid::Uuid::new_v7(ts).to_string()
}
