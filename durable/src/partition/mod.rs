//! `StreamPartition`: one Durable Object per partition of a tenant's global stream.
//!
//! Aggregates forward their committed events here ([`PartitionOp::Append`]); the
//! partition takes each aggregate's events exactly once and in seq order (its watermark,
//! `stream::watermark`), gives them dense offsets from 1, pushes them to live stream
//! sockets through the feed engine, and serves paged reads. Old ranges are sealed into
//! MessagePack segments in R2 (`STREAM_ARCHIVE`) by an alarm, keeping the newest
//! `STREAM_HOT_EVENTS` in SQLite; reads span archive and hot table.
//!
//! The object knows its tenant and number from its name (`"{tenant}/partition/{n}"`).

pub mod store;

use std::cell::{Cell, RefCell};

use domain::Position;
use stream::{ForwardBatch, ForwardRefusal, Segment, SegmentEvent, StreamFilter};
use worker::{
    Bucket, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::cache::{CACHE_HEADER, EdgeCache};
use crate::call::{Call, PartitionOp, ProjectorOp};
use crate::clock::{at_unix_ms, now_ms};
use crate::config::Config;
use crate::encoding::{Encoding, StreamPage, json_response, stream_page_response};
use crate::error::{ApiError, ApiResult};
use crate::feed::{Feed, FeedLimits, FeedLog, event_frame};
use crate::names::ObjectName;
use crate::sockets;
use store::{PartitionStore, READ_BUDGET_BYTES};

/// The R2 bucket binding of archived segments.
pub const ARCHIVE_BINDING: &str = "STREAM_ARCHIVE";

#[durable_object]
pub struct StreamPartition {
    state: State,
    env: Env,
    config: Config,
    /// Tenant and partition number, from the object's own name.
    identity: Option<(String, u32)>,
    store: RefCell<Option<PartitionStore>>,
    /// Whether the alarm is set to wake projectors (cleared when it fires).
    alarm_armed: Cell<bool>,
    /// When the projectors were last woken (Unix ms, 0 before the first): the next wake
    /// comes no sooner than `PROJECTION_WAKE_INTERVAL_MS` after it.
    last_wake_at: Cell<i64>,
    instance: String,
    /// The sockets' feeds, their attachments read back from memory.
    feeds: sockets::Feeds,
}

impl DurableObject for StreamPartition {
    fn new(state: State, env: Env) -> Self {
        let identity = match state.id().name().as_deref().and_then(ObjectName::parse) {
            Some(ObjectName::Partition { tenant, partition }) => Some((tenant, partition)),
            _ => None,
        };
        Self {
            config: Config::from_env(&env),
            state,
            env,
            identity,
            store: RefCell::new(None),
            alarm_armed: Cell::new(false),
            last_wake_at: Cell::new(0),
            instance: uuid::Uuid::new_v4().to_string(),
            feeds: sockets::Feeds::default(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        crate::call::answer(self.handle(req).await, &self.instance)
    }

    /// Wakes the projectors, archives what the policy allows, and closes sockets whose
    /// token expired.
    async fn alarm(&self) -> Result<Response> {
        self.alarm_armed.set(false);
        self.last_wake_at.set(now_ms());
        self.wake_projectors().await;
        if let Err(error) = self.archive().await {
            worker::console_error!("archiving failed: {error}");
            sockets::alarm_by(&self.state, now_ms() + 30_000).await;
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

impl StreamPartition {
    fn identity(&self) -> ApiResult<(&str, u32)> {
        self.identity
            .as_ref()
            .map(|(tenant, partition)| (tenant.as_str(), *partition))
            .ok_or_else(|| ApiError::internal("a partition object without a partition name"))
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut PartitionStore) -> ApiResult<T>) -> ApiResult<T> {
        let mut slot = self.store.borrow_mut();
        if slot.is_none() {
            *slot =
                Some(PartitionStore::open(self.state.storage().sql()).map_err(ApiError::internal)?);
        }
        let store = slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("partition store not open"))?;
        f(store)
    }

    async fn handle(&self, mut req: Request) -> ApiResult<Response> {
        let call: Call<PartitionOp> = Call::from_request(&req)?;
        let (_, partition) = self.identity()?;
        // Looked up lazily: an internal call has no caller, and building the error logs.
        let expires = call.caller.as_ref().map(|c| c.expires_at);
        let expires_at =
            || expires.ok_or_else(|| ApiError::internal("a client operation without a caller"));
        match call.op {
            PartitionOp::Append => {
                let body = req.bytes().await?;
                let batch = ForwardBatch::decode(&body)
                    .map_err(|e| ApiError::bad_request(format!("bad forward batch: {e}")))?;
                self.append(&batch)
            }
            PartitionOp::Read {
                after,
                limit,
                filter,
                encoding,
            } => self.read(after, limit, &filter, encoding).await,
            PartitionOp::Subscribe { after, protocol } => {
                self.subscribe(expires_at()?, after, protocol).await
            }
            PartitionOp::Status => {
                let status =
                    self.with_store(|s| s.status(partition).map_err(ApiError::internal))?;
                Ok(json_response(&status, 200))
            }
            PartitionOp::Pause | PartitionOp::Resume => {
                let paused = call.op == PartitionOp::Pause;
                let status = self.with_store(|s| {
                    s.set_paused(paused).map_err(ApiError::internal)?;
                    s.status(partition).map_err(ApiError::internal)
                })?;
                Ok(json_response(&status, 200))
            }
            PartitionOp::Archive => {
                self.archive().await.map_err(ApiError::internal)?;
                let status =
                    self.with_store(|s| s.status(partition).map_err(ApiError::internal))?;
                Ok(json_response(&status, 200))
            }
        }
    }

    /// Takes a forwarded batch: no `.await` from the watermark check to the fan-out.
    fn append(&self, batch: &ForwardBatch) -> ApiResult<Response> {
        let (_, partition) = self.identity()?;
        let outcome =
            self.with_store(|s| s.append(partition, batch).map_err(ApiError::internal))?;
        let (ack, appended) = match outcome {
            Ok(done) => done,
            Err(refusal @ ForwardRefusal::Gap { .. }) => return Ok(json_response(&refusal, 409)),
            Err(refusal @ ForwardRefusal::Paused) => return Ok(json_response(&refusal, 503)),
        };
        if !appended.is_empty() {
            self.broadcast(partition, &appended);
            // The alarm wakes the projectors and archives what the policy allows; it is
            // set in this synchronous step, so it commits with the events. Paced
            // (`PROJECTION_WAKE_INTERVAL_MS`, `stream::pacing`): at once after a quiet
            // spell; under load, appends share a wake, so each projector folds a page of
            // events per catch-up instead of one read and one document rewrite per event.
            if !self.alarm_armed.replace(true) {
                let storage = self.state.storage();
                let at = stream::pacing::next_run(
                    now_ms(),
                    self.last_wake_at.get(),
                    self.config.projection_wake_interval_ms,
                );
                let _ = futures_util::FutureExt::now_or_never(storage.set_alarm(at_unix_ms(at)));
            }
        }
        Ok(json_response(&ack, 200))
    }

    async fn read(
        &self,
        after: u64,
        limit: usize,
        filter: &StreamFilter,
        encoding: Encoding,
    ) -> ApiResult<Response> {
        let (tenant, partition) = self.identity()?;
        let (head, archived) = self.with_store(|s| {
            let head = s.head().map_err(ApiError::internal)?;
            let oldest_hot = s.oldest_hot().map_err(ApiError::internal)?;
            let archived = match oldest_hot {
                Some(oldest) if after + 1 >= oldest => None,
                _ => s.segment_holding(after + 1).map_err(ApiError::internal)?,
            };
            Ok((head, archived))
        })?;
        if archived.is_none() && encoding == Encoding::MessagePack {
            // The hot tail in MessagePack: the stored envelopes spliced into the page.
            let packed = self.with_store(|s| {
                s.read_packed(after, limit, filter)
                    .map_err(ApiError::internal)
            })?;
            if let Some(page) = packed {
                return crate::encoding::packed_page_response(
                    &page.envelopes,
                    page.count,
                    page.next_after,
                    head,
                );
            }
        }
        let mut cache_outcome = None;
        let (events, next_after) = match archived {
            Some((first, last)) => {
                let (bytes, outcome) = self.segment_bytes(tenant, partition, first, last).await?;
                cache_outcome = outcome;
                // At most an aggregate type: what projectors of one type ask for.
                let by_type_only = *filter
                    == StreamFilter {
                        aggregate_type: filter.aggregate_type.clone(),
                        ..StreamFilter::default()
                    };
                if encoding == Encoding::MessagePack && by_type_only {
                    // A MessagePack page of a segment that carries envelopes: those bytes
                    // spliced, no event decoded (a type filter reads only each envelope's
                    // `aggregate_type`). The cursor follows the decoding path below.
                    if let Some(view) = stream::segment::SegmentEnvelopes::decode(&bytes)
                        .map_err(ApiError::internal)?
                    {
                        let mut envelopes = Vec::new();
                        let mut count = 0;
                        let mut next_after = last;
                        let mut last_taken = after;
                        for (offset, envelope) in view.after(after) {
                            // Whole envelopes count against the budget here (a little more
                            // than the payloads a hot page counts), so such a page may end a
                            // few events earlier; the cursor says where.
                            if count >= limit || envelopes.len() >= READ_BUDGET_BYTES {
                                next_after = last_taken;
                                break;
                            }
                            if let Some(wanted) = filter.aggregate_type.as_deref()
                                && domain::codec::map_str_field(envelope, "aggregate_type")
                                    .map_err(ApiError::internal)?
                                    != Some(wanted)
                            {
                                continue;
                            }
                            envelopes.extend_from_slice(envelope);
                            count += 1;
                            last_taken = offset;
                        }
                        let mut response = crate::encoding::packed_page_response(
                            &envelopes,
                            count,
                            (next_after < head).then_some(next_after),
                            head,
                        )?;
                        if let Some(outcome) = cache_outcome {
                            response.headers_mut().set(CACHE_HEADER, outcome)?;
                        }
                        return Ok(response);
                    }
                }
                let segment = Segment::decode(&bytes).map_err(ApiError::internal)?;
                let mut events = Vec::new();
                let mut bytes = 0;
                let mut next_after = last;
                for event in segment.events_after(after) {
                    if events.len() >= limit || bytes >= READ_BUDGET_BYTES {
                        next_after = events.last().map_or(after, |e: &SegmentEvent| e.offset);
                        break;
                    }
                    if filter.matches(
                        &event.aggregate_type,
                        &event.event.event_type,
                        event.event.recorded_at_ms,
                    ) && filter.matches_chain(
                        &event.event.event_id,
                        event.event.metadata.correlation_id.as_deref(),
                    ) {
                        bytes += event.event.data_msgpack.len();
                        events.push(event.clone());
                    }
                }
                (events, (next_after < head).then_some(next_after))
            }
            None => {
                let page =
                    self.with_store(|s| s.read(after, limit, filter).map_err(ApiError::internal))?;
                (page.events, page.next_after)
            }
        };
        let envelopes = events
            .iter()
            .map(|e| e.envelope(partition))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        let mut response = stream_page_response(
            StreamPage {
                events: envelopes,
                next_after,
                head,
            },
            encoding,
        )?;
        if let Some(outcome) = cache_outcome {
            response.headers_mut().set(CACHE_HEADER, outcome)?;
        }
        Ok(response)
    }

    /// An archived segment's bytes, from the edge cache or R2, and whether the cache had it
    /// (`hit`), took it (`miss`), or is off (`None`).
    async fn segment_bytes(
        &self,
        tenant: &str,
        partition: u32,
        first: u64,
        last: u64,
    ) -> ApiResult<(Vec<u8>, Option<&'static str>)> {
        let key = stream::segment::object_key(tenant, partition, first, last);
        let cache = EdgeCache::from_env(&self.env, &self.config);
        let cache_key = EdgeCache::key(&["segment", &key]);
        let mut outcome = cache.is_on().then_some("miss");
        let bytes = match cache.get(&cache_key).await {
            Some(bytes) => {
                outcome = Some("hit");
                bytes
            }
            None => {
                let object = self
                    .archive_bucket()?
                    .get(&key)
                    .execute()
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal(format!("segment {key} is missing from R2"))
                    })?;
                let bytes = object
                    .body()
                    .ok_or_else(|| ApiError::internal(format!("segment {key} has no body")))?
                    .bytes()
                    .await?;
                cache.put(&cache_key, &bytes).await;
                bytes
            }
        };
        Ok((bytes, outcome))
    }

    fn archive_bucket(&self) -> ApiResult<Bucket> {
        Ok(self.env.bucket(ARCHIVE_BINDING)?)
    }

    /// Seals what the policy allows into segments in R2, then drops them from the hot
    /// table. A crash between the upload and the drop re-uploads the same key next time.
    async fn archive(&self) -> std::result::Result<(), String> {
        let segment_size = self.config.stream_segment_events;
        if segment_size == 0 {
            return Ok(());
        }
        let (tenant, partition) = self.identity().map_err(|e| e.message)?;
        loop {
            let ranges = self
                .with_store(|s| {
                    let head = s.head().map_err(ApiError::internal)?;
                    let Some(oldest) = s.oldest_hot().map_err(ApiError::internal)? else {
                        return Ok(Vec::new());
                    };
                    Ok(stream::segment::seal_ranges(
                        oldest,
                        head,
                        segment_size,
                        self.config.stream_hot_events,
                    ))
                })
                .map_err(|e| e.message)?;
            if ranges.is_empty() {
                return Ok(());
            }
            for (first, last) in ranges {
                let range = self
                    .with_store(|s| s.range(first, last).map_err(ApiError::internal))
                    .map_err(|e| e.message)?;
                let segment = Segment::with_envelopes(partition, range.events, range.envelopes)
                    .map_err(|e| e.to_string())?;
                let bytes = segment.encode();
                let key = segment.object_key(tenant);
                self.archive_bucket()
                    .map_err(|e| e.message)?
                    .put(&key, bytes.clone())
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
                self.with_store(|s| {
                    s.sealed(first, last, bytes.len())
                        .map_err(ApiError::internal)
                })
                .map_err(|e| e.message)?;
            }
        }
    }

    /// Tells every projector and reactor of the tenant that this partition took events. A projector
    /// that misses a wake catches up at the next one, or when a read waits for it.
    async fn wake_projectors(&self) {
        let Ok((tenant, partition)) = self.identity() else {
            return;
        };
        for projection in projections::registry() {
            let name = ObjectName::Projector {
                tenant: tenant.to_owned(),
                projection: projection.name().to_owned(),
            };
            let woken = async {
                let stub = self
                    .env
                    .durable_object(crate::projector::PROJECTORS)?
                    .id_from_name(&name.to_string())?
                    .get_stub()?;
                Call {
                    caller: None,
                    op: ProjectorOp::Wake { partition },
                }
                .send(&stub, false, None)
                .await
            };
            if let Err(error) = woken.await {
                worker::console_warn!("waking {name} failed: {}", error.message);
            }
        }
        for policy in crate::reactor::policies(&self.config) {
            let name = ObjectName::Reactor {
                tenant: tenant.to_owned(),
                policy: domain::policy::Policy::name(&policy).to_owned(),
            };
            let woken = async {
                let stub = self
                    .env
                    .durable_object(crate::reactor::REACTORS)?
                    .id_from_name(&name.to_string())?
                    .get_stub()?;
                Call {
                    caller: None,
                    op: crate::reactor::ReactorOp::Wake,
                }
                .send(&stub, false, None)
                .await
            };
            if let Err(error) = woken.await {
                worker::console_warn!("waking {name} failed: {}", error.message);
            }
        }
    }

    fn feed_limits(&self) -> FeedLimits {
        FeedLimits {
            window: self.config.ws_ack_window,
            max_frames_per_second: self.config.ws_max_frames_per_second,
            cursor: "offset",
        }
    }

    /// A live socket from `after` (hot offsets only: archived history is read with
    /// `GET /v1/stream`, then the socket continues from there).
    async fn subscribe(
        &self,
        expires_at: u64,
        after: u64,
        protocol: Option<String>,
    ) -> ApiResult<Response> {
        let (_, partition) = self.identity()?;
        if self.feeds.open_feeds(&self.state).len() >= self.config.max_subscribers {
            return Err(ApiError::rate_limited(
                format!(
                    "this partition has the maximum of {} live subscribers",
                    self.config.max_subscribers
                ),
                5,
            ));
        }
        let pair = WebSocketPair::new()?;
        let server = pair.server;
        let limits = self.feed_limits();
        self.with_store(|store| {
            let head = store.head().map_err(ApiError::internal)?;
            if after > head {
                return Err(ApiError::bad_request(format!(
                    "`after` ({after}) is beyond the partition's head ({head})"
                ))
                .with_detail("head", head));
            }
            if let Some(oldest) = store.oldest_hot().map_err(ApiError::internal)?
                && after + 1 < oldest
            {
                return Err(ApiError::bad_request(format!(
                    "offsets before {oldest} are archived: read them with GET /v1/stream, then subscribe from there"
                ))
                .with_detail("oldest_hot", oldest));
            }
            self.state.accept_web_socket(&server);
            let mut feed = Feed::new(after, Some(expires_at));
            let log = PartitionLog {
                store,
                partition,
                head,
            };
            match feed.pump(&log, &limits) {
                Ok(actions) => self.feeds.save_and_apply(&server, &feed, actions),
                Err(error) => {
                    let actions = feed.close_internal();
                    self.feeds.save_and_apply(&server, &feed, actions);
                    return Err(ApiError::internal(error));
                }
            }
            Ok(())
        })?;
        sockets::alarm_by(&self.state, sockets::secs_to_ms(expires_at)).await;
        let mut response = Response::from_websocket(pair.client)?;
        if let Some(protocol) = protocol {
            response
                .headers_mut()
                .set("sec-websocket-protocol", &protocol)?;
        }
        Ok(response)
    }

    /// Sends appended events to every open feed; builds no frames when none is open.
    fn broadcast(&self, partition: u32, events: &[SegmentEvent]) {
        let feeds = self.feeds.open_feeds(&self.state);
        if feeds.is_empty() {
            return;
        }
        let entries: Vec<(u64, String)> = events
            .iter()
            .filter_map(|e| Some((e.offset, event_frame(&e.envelope(partition).ok()?))))
            .collect();
        let now = now_ms();
        let limits = self.feed_limits();
        for (socket, mut feed) in feeds {
            let actions = feed.on_commit(&entries, now, &limits);
            if !actions.is_empty() {
                self.feeds.save_and_apply(&socket, &feed, actions);
            }
        }
    }

    fn on_client_frame(&self, socket: &WebSocket, text: Option<&str>) {
        let Some(mut feed) = self.feeds.load(socket) else {
            return;
        };
        let limits = self.feed_limits();
        let result = self.identity().and_then(|(_, partition)| {
            self.with_store(|store| {
                let head = store.head().map_err(ApiError::internal)?;
                let log = PartitionLog {
                    store,
                    partition,
                    head,
                };
                feed.on_client_frame(text, now_ms(), &log, &limits)
                    .map_err(ApiError::internal)
            })
        });
        let actions = result.unwrap_or_else(|_| feed.close_internal());
        self.feeds.save_and_apply(socket, &feed, actions);
    }
}

/// The hot table as the feed engine reads it.
struct PartitionLog<'a> {
    store: &'a PartitionStore,
    partition: u32,
    head: u64,
}

impl FeedLog for PartitionLog<'_> {
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> std::result::Result<Vec<(u64, String)>, String> {
        let page = self.store.read(after, limit, &StreamFilter::default())?;
        page.events
            .iter()
            .map(|e| {
                let envelope = e.envelope(self.partition).map_err(|e| e.to_string())?;
                Ok((e.offset, event_frame(&envelope)))
            })
            .collect()
    }

    fn head(&self) -> u64 {
        self.head
    }

    fn caught_up_frame(&self, head: u64) -> String {
        serde_json::json!({
            "kind": "caught_up",
            "position": Position { partition: self.partition, offset: head },
        })
        .to_string()
    }
}
