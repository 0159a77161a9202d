//! `Projector`: one Durable Object per tenant and projection (`"{tenant}/projector/{name}"`).
//!
//! It folds the tenant's global stream into read-model documents with the pure projection
//! from `projections/`, keeps them in SQLite, and serves them: one document, a filtered
//! page, live document sockets, status. Partitions wake it when they take events; it then
//! reads each partition after its checkpoint and applies every page — documents,
//! per-aggregate watermarks and the checkpoint — in one synchronous step, so each event is
//! applied exactly once.
//!
//! Read-your-writes: a command's answer carries a consistency token `"{type}/{id}@{v}"`;
//! a read given it waits (up to `PROJECTION_WAIT_MS`) until the projection's watermark of
//! that aggregate reaches `v`, pulling from the aggregate's partition meanwhile, and
//! answers 503 with `Retry-After` if it does not.
//!
//! Rebuilds: the next generation is built from offset 0 beside the serving one, which
//! keeps answering; once it has caught up with every partition it takes over in one
//! synchronous step. A fold error stops only its generation (`fault` in the status).
//!
//! Convex: with `CONVEX_URL` and the `CONVEX_DEPLOY_KEY` secret, the serving generation is
//! mirrored into Convex (`mirror:applyBatch`), per partition, one request in flight, from
//! the cursor Convex holds (see [`mirror`]).

pub mod mirror;
pub mod store;

use std::cell::RefCell;

use domain::EventEnvelope;
use projections::Projection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{
    DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
    WebSocketPair, durable_object,
};

use crate::call::{Call, ConsistencyToken, PartitionOp, ProjectorOp};
use crate::clock::{at_unix_ms, now_ms};
use crate::config::Config;
use crate::encoding::{Encoding, json_response};
use crate::error::{ApiError, ApiResult};
use crate::feed::{Feed, FeedLimits, FeedLog};
use crate::names::ObjectName;
use crate::sockets;
use store::{Document, ProjectorStore, ReadPage};

/// The Durable Object namespace binding of projectors.
pub const PROJECTORS: &str = "PROJECTORS";

/// Events read from a partition per page.
const PAGE: usize = 1000;

#[durable_object]
pub struct Projector {
    state: State,
    env: Env,
    config: Config,
    /// Tenant and projection, from the object's own name.
    identity: Option<(String, &'static dyn Projection)>,
    store: RefCell<Option<ProjectorStore>>,
    /// Partitions that woke the projector since its last catch-up; `None`: all of them
    /// (after a start, or a failed catch-up).
    woken: RefCell<Option<std::collections::BTreeSet<u32>>>,
    /// When each partition's mirror cursor was last checked against Convex's (Unix ms).
    mirror_verified: RefCell<std::collections::BTreeMap<u32, i64>>,
    /// Per partition, a stretch past Convex's cursor read and found to hold nothing for
    /// it, not yet sent as an empty batch ([`mirror::Unsent`]).
    mirror_unsent: RefCell<std::collections::BTreeMap<u32, mirror::Unsent>>,
    instance: String,
    /// The sockets' feeds, their attachments read back from memory.
    feeds: sockets::Feeds,
}

/// A stream page as the partition sends it (MessagePack).
#[derive(Deserialize)]
struct Page {
    events: Vec<EventEnvelope>,
    next_after: Option<u64>,
    head: u64,
}

impl DurableObject for Projector {
    fn new(state: State, env: Env) -> Self {
        let identity = match state.id().name().as_deref().and_then(ObjectName::parse) {
            Some(ObjectName::Projector { tenant, projection }) => {
                projections::by_name(&projection).map(|p| (tenant, p))
            }
            _ => None,
        };
        Self {
            config: Config::from_env(&env),
            state,
            env,
            identity,
            store: RefCell::new(None),
            woken: RefCell::new(None),
            mirror_verified: RefCell::new(std::collections::BTreeMap::new()),
            mirror_unsent: RefCell::new(std::collections::BTreeMap::new()),
            instance: uuid::Uuid::new_v4().to_string(),
            feeds: sockets::Feeds::default(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        crate::call::answer(self.handle(req).await, &self.instance)
    }

    /// Catches every fed generation up with every partition, lets a caught-up rebuild take
    /// over, mirrors into Convex, and comes back while there is more to do.
    async fn alarm(&self) -> Result<Response> {
        let mut again: Option<i64> = None;
        if let Err(error) = self.catch_up_all().await {
            worker::console_warn!("projector catch-up failed: {}", error.message);
            again = Some(now_ms() + 1_000);
        }
        match self.finish_rebuild() {
            Ok(true) => again = Some(now_ms()),
            Ok(false) => {}
            Err(error) => worker::console_error!("rebuild take-over failed: {}", error.message),
        }
        if let Some(retry_at) = mirror::run(self).await {
            again = Some(again.map_or(retry_at, |a| a.min(retry_at)));
        }
        if let Some(next) = self.feeds.close_expired(&self.state, now_ms()) {
            let at = sockets::secs_to_ms(next);
            again = Some(again.map_or(at, |a| a.min(at)));
        }
        if let Some(at) = again {
            // Never later than an alarm a wake set while this one ran.
            sockets::alarm_by(&self.state, at).await;
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

impl Projector {
    fn identity(&self) -> ApiResult<(&str, &'static dyn Projection)> {
        self.identity
            .as_ref()
            .map(|(tenant, projection)| (tenant.as_str(), *projection))
            .ok_or_else(|| ApiError::internal("a projector object without a projection name"))
    }

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn mirror_verified_at(&self, partition: u32) -> i64 {
        self.mirror_verified
            .borrow()
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn set_mirror_verified_at(&self, partition: u32, at_ms: i64) {
        self.mirror_verified.borrow_mut().insert(partition, at_ms);
    }

    pub(crate) fn mirror_unsent(&self, partition: u32) -> Option<mirror::Unsent> {
        self.mirror_unsent.borrow().get(&partition).copied()
    }

    /// Records a stretch with nothing for Convex (`None` forgets it: it was sent, or Convex's
    /// cursor moved).
    pub(crate) fn set_mirror_unsent(&self, partition: u32, unsent: Option<mirror::Unsent>) {
        let mut map = self.mirror_unsent.borrow_mut();
        match unsent {
            Some(unsent) => map.insert(partition, unsent),
            None => map.remove(&partition),
        };
    }

    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut ProjectorStore) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let (_, projection) = self.identity()?;
        let mut slot = self.store.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                ProjectorStore::open(self.state.storage().sql(), projection.version(), now_ms())
                    .map_err(ApiError::internal)?,
            );
        }
        let store = slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("projector store not open"))?;
        f(store)
    }

    async fn handle(&self, req: Request) -> ApiResult<Response> {
        let call: Call<ProjectorOp> = Call::from_request(&req)?;
        let (_, projection) = self.identity()?;
        // Looked up lazily: an internal call has no caller, and building the error logs.
        let expires = call.caller.as_ref().map(|c| c.expires_at);
        let expires_at =
            || expires.ok_or_else(|| ApiError::internal("a client operation without a caller"));
        match call.op {
            ProjectorOp::Wake { partition } => {
                if let Some(woken) = self.woken.borrow_mut().as_mut() {
                    woken.insert(partition);
                }
                let _ = self.state.storage().set_alarm(at_unix_ms(now_ms())).await;
                Ok(json_response(&json!({ "woken": true }), 202))
            }
            ProjectorOp::Status => self.status(),
            ProjectorOp::Get {
                doc_id,
                consistency,
            } => {
                let generation = self.consistent(consistency.as_ref()).await?;
                let document = self
                    .with_store(|s| s.document(generation, &doc_id).map_err(ApiError::internal))?
                    .ok_or_else(|| {
                        ApiError::not_found(format!(
                            "{} has no document `{doc_id}`",
                            projection.name()
                        ))
                    })?;
                Ok(json_response(&self.document_json(&document), 200))
            }
            ProjectorOp::List {
                filters,
                limit,
                after,
                consistency,
            } => {
                let after = match after {
                    Some(cursor) => Some(parse_list_cursor(&cursor)?),
                    None => None,
                };
                for (name, _) in &filters {
                    if !projection.list_filters().contains(&name.as_str()) {
                        return Err(ApiError::bad_request(format!(
                            "{} lists filter by {}; not `{name}`",
                            projection.name(),
                            if projection.list_filters().is_empty() {
                                "nothing".to_owned()
                            } else {
                                projection.list_filters().join(", ")
                            }
                        )));
                    }
                }
                let generation = self.consistent(consistency.as_ref()).await?;
                let (documents, next) = self.with_store(|s| {
                    s.list(generation, &filters, limit, after)
                        .map_err(ApiError::internal)
                })?;
                let documents: Vec<Value> =
                    documents.iter().map(|d| self.document_json(d)).collect();
                Ok(json_response(
                    &json!({ "projection": projection.name(), "version": projection.version(), "documents": documents, "next_after": next }),
                    200,
                ))
            }
            ProjectorOp::Subscribe {
                doc_id,
                after,
                protocol,
            } => self.subscribe(expires_at()?, doc_id, after, protocol).await,
            ProjectorOp::Search {
                query,
                kinds,
                limit,
                consistency,
                vector_hits,
            } => {
                if !projection.searchable() {
                    return Err(ApiError::not_found(format!(
                        "{} is not searchable",
                        projection.name()
                    )));
                }
                let generation = self.consistent(consistency.as_ref()).await?;
                let results =
                    self.search(generation, query.as_deref(), &kinds, limit, &vector_hits)?;
                Ok(json_response(
                    &json!({
                        "projection": projection.name(),
                        "version": projection.version(),
                        "mode": if vector_hits.is_empty() { "keyword" } else { "hybrid" },
                        "results": results,
                    }),
                    200,
                ))
            }
            ProjectorOp::Rebuild => {
                let generation = self.with_store(|s| {
                    s.begin_rebuild(projection.version(), now_ms())
                        .map_err(ApiError::internal)
                })?;
                let _ = self.state.storage().set_alarm(at_unix_ms(now_ms())).await;
                Ok(json_response(
                    &json!({ "projection": projection.name(), "version": projection.version(), "generation": generation, "state": "building" }),
                    202,
                ))
            }
        }
    }

    /// Keyword hits (FTS5, bm25) — fused by reciprocal rank with `vector_hits` when there
    /// are any — as result objects, best first: `rank` (from 1), `doc_id`, `kind`,
    /// `score` (bm25 alone, or the fused score), `title` and `snippet` with matches in
    /// `<mark>`, and the document's `body`.
    fn search(
        &self,
        generation: u64,
        query: Option<&str>,
        kinds: &[String],
        limit: usize,
        vector_hits: &[String],
    ) -> ApiResult<Vec<Value>> {
        // Fusion wants more than `limit` candidates from each side.
        let wanted = if vector_hits.is_empty() {
            limit
        } else {
            limit * 3
        };
        let keyword = match query {
            Some(query) => self.with_store(|s| {
                s.search(generation, query, kinds, wanted)
                    .map_err(ApiError::internal)
            })?,
            None => Vec::new(),
        };
        let hit_json = |rank: usize, hit: &store::SearchHit, score: f64| {
            json!({
                "rank": rank,
                "doc_id": hit.doc_id,
                "kind": hit.kind,
                "score": score,
                "title": hit.title,
                "snippet": hit.snippet,
                "body": hit.body,
            })
        };
        if vector_hits.is_empty() {
            return Ok(keyword
                .iter()
                .enumerate()
                .map(|(i, hit)| hit_json(i + 1, hit, hit.score))
                .collect());
        }
        let keyword_ids: Vec<String> = keyword.iter().map(|h| h.doc_id.clone()).collect();
        let fused = projections::knowledge::fuse(
            &keyword_ids,
            vector_hits,
            projections::knowledge::RRF_K,
            limit,
        );
        let mut results = Vec::new();
        for (doc_id, score) in fused {
            if let Some(hit) = keyword.iter().find(|h| h.doc_id == doc_id) {
                results.push(hit_json(results.len() + 1, hit, score));
                continue;
            }
            // A vector-only hit: its document, with the title as it is and no snippet.
            let Some(document) =
                self.with_store(|s| s.document(generation, &doc_id).map_err(ApiError::internal))?
            else {
                continue; // deleted since it was embedded
            };
            let kind = document.body["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !kinds.is_empty() && !kinds.contains(&kind) {
                continue;
            }
            let hit = store::SearchHit {
                doc_id,
                kind,
                score,
                title: document.body["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                snippet: String::new(),
                body: document.body,
            };
            results.push(hit_json(results.len() + 1, &hit, score));
        }
        Ok(results)
    }

    fn document_json(&self, document: &Document) -> Value {
        let name = self
            .identity
            .as_ref()
            .map(|(_, p)| p.name())
            .unwrap_or_default();
        json!({
            "projection": name,
            "doc_id": document.doc_id,
            "revision": document.revision,
            "body": document.body,
        })
    }

    fn status(&self) -> ApiResult<Response> {
        let (_, projection) = self.identity()?;
        let generations = self.with_store(|s| s.generations().map_err(ApiError::internal))?;
        let mirror = mirror::status(self)?;
        let serving = generations.iter().find(|g| g.state == store::ACTIVE);
        let state = match serving {
            Some(g) if g.fault.is_some() => "faulted",
            Some(_) if generations.iter().any(|g| g.state == store::BUILDING) => "rebuilding",
            Some(_) => "active",
            None => "starting",
        };
        Ok(json_response(
            &json!({
                "name": projection.name(),
                "version": serving.map_or(projection.version(), |g| g.version),
                "code_version": projection.version(),
                "status": state,
                "checkpoints": serving.map(|g| &g.checkpoints),
                "heads": serving.map(|g| &g.heads),
                "lag": serving.map_or(0, |g| g.lag),
                "fault": serving.and_then(|g| g.fault.clone()),
                "generations": generations,
                "mirror": mirror,
            }),
            200,
        ))
    }

    /// The serving generation once the command behind `token` is folded in (bounded wait).
    async fn consistent(&self, token: Option<&ConsistencyToken>) -> ApiResult<u64> {
        let (generation, _) = self.with_store(|s| s.active().map_err(ApiError::internal))?;
        let Some(token) = token else {
            return Ok(generation);
        };
        let (_, projection) = self.identity()?;
        if projection
            .aggregate_type()
            .is_some_and(|t| t != token.aggregate_type)
        {
            // Events of another type never change this projection's documents: every
            // generation already reflects the command behind the token.
            return Ok(generation);
        }
        let aggregate = format!("{}/{}", token.aggregate_type, token.aggregate_id);
        let partition = self
            .config
            .partitions()?
            .partition_of(&token.aggregate_type, &token.aggregate_id);
        let deadline = now_ms() + self.config.projection_wait_ms as i64;
        loop {
            let (generation, _) = self.with_store(|s| s.active().map_err(ApiError::internal))?;
            let seen = self.with_store(|s| {
                s.watermark(generation, &aggregate)
                    .map_err(ApiError::internal)
            })?;
            if seen >= token.version {
                return Ok(generation);
            }
            if now_ms() >= deadline {
                return Err(ApiError::overloaded(
                    format!(
                        "the read model has not caught up with {aggregate} version {} yet (it has {seen}); retry",
                        token.version
                    ),
                    1,
                ));
            }
            let _ = self.catch_up(generation, partition).await;
            worker::Delay::from(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Catches every fed generation up with every partition.
    /// The serving generation reads the partitions that woke it (all of them after a
    /// start or a failure); a generation being built reads them all.
    async fn catch_up_all(&self) -> ApiResult<()> {
        let partitions = self.config.partitions()?;
        let woken = self.woken.replace(Some(std::collections::BTreeSet::new()));
        let (serving, _) = self.with_store(|s| s.active().map_err(ApiError::internal))?;
        let generations = self.with_store(|s| s.fed_generations().map_err(ApiError::internal))?;
        let result: ApiResult<()> = async {
            for generation in generations {
                for partition in partitions.partitions() {
                    let wanted = generation != serving
                        || woken.as_ref().is_none_or(|w| w.contains(&partition));
                    if wanted {
                        self.catch_up(generation, partition).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            *self.woken.borrow_mut() = None; // read everything next time
        }
        result
    }

    /// Reads `partition` after the generation's checkpoint and applies page after page
    /// until it reaches the head (or the generation faults).
    async fn catch_up(&self, generation: u64, partition: u32) -> ApiResult<()> {
        let (tenant, projection) = self.identity()?;
        let stub = self
            .env
            .durable_object(crate::aggregate::PARTITIONS)?
            .id_from_name(&ObjectName::partition(tenant, partition).to_string())?
            .get_stub()?;
        loop {
            if self.with_store(|s| s.faulted(generation).map_err(ApiError::internal))? {
                return Ok(());
            }
            let after = self.with_store(|s| {
                s.checkpoint(generation, partition)
                    .map_err(ApiError::internal)
            })?;
            // A projection of one aggregate type reads only that type's events: the
            // partition skips the others, and the page's cursor still moves past them.
            let filter = stream::StreamFilter {
                aggregate_type: projection.aggregate_type().map(str::to_owned),
                ..Default::default()
            };
            let call = Call {
                caller: None,
                op: PartitionOp::Read {
                    after,
                    limit: PAGE,
                    filter,
                    encoding: Encoding::MessagePack,
                },
            };
            let mut response = call.send(&stub, false, None).await?;
            if response.status_code() != 200 {
                let text = response.text().await.unwrap_or_default();
                return Err(ApiError::internal(format!(
                    "partition {partition} answered {}: {text}",
                    response.status_code()
                )));
            }
            let page: Page = rmp_serde::from_slice(&crate::call::body_bytes(response).await?)
                .map_err(|e| ApiError::internal(format!("a stream page: {e}")))?;
            let store::Applied { changes, moved } = self.with_store(|s| {
                s.apply_page(
                    projection,
                    generation,
                    partition,
                    ReadPage {
                        events: &page.events,
                        scanned_through: page.next_after.unwrap_or(page.head),
                        head: page.head,
                    },
                    self.config.projection_max_document_bytes,
                )
                .map_err(ApiError::internal)
            })?;
            let serving = self
                .with_store(|s| s.active().map_err(ApiError::internal))?
                .0;
            if generation == serving {
                self.broadcast(&changes);
                if projection.searchable() {
                    self.index_vectors(tenant, projection, &changes).await;
                }
            }
            // A filtered page may hold no event and still move the checkpoint on (to
            // `next_after`); a page that moved nothing ends the loop.
            if page.next_after.is_none() || !moved {
                return Ok(());
            }
        }
    }

    /// Embeds the changed documents into Vectorize when it is configured (best effort:
    /// see `crate::vectors`).
    async fn index_vectors(
        &self,
        tenant: &str,
        projection: &dyn Projection,
        changes: &[(u64, projections::DocChange, u64)],
    ) {
        let Some(vectors) = crate::vectors::Vectors::from_env(&self.env) else {
            return;
        };
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (_, change, _) in changes {
            match change.body.as_ref().and_then(|b| projection.search_text(b)) {
                Some(text) => upserts.push(crate::vectors::ToIndex {
                    doc_id: change.doc_id.clone(),
                    kind: text.kind,
                    text: format!("{}\n{}", text.title, text.text),
                }),
                None => deletes.push(change.doc_id.clone()),
            }
        }
        for chunk in upserts.chunks(50) {
            if let Err(e) = vectors.upsert(tenant, chunk).await {
                worker::console_warn!("vector index: {}", e.message);
            }
        }
        if let Err(e) = vectors.delete(tenant, &deletes).await {
            worker::console_warn!("vector index: {}", e.message);
        }
    }

    /// A rebuild that has caught up with every partition takes over. True if it did.
    fn finish_rebuild(&self) -> ApiResult<bool> {
        let partitions = self.config.partitions()?;
        self.with_store(|s| {
            let building: Vec<u64> = s
                .generations()
                .map_err(ApiError::internal)?
                .into_iter()
                .filter(|g| g.state == store::BUILDING && g.fault.is_none())
                .map(|g| g.generation)
                .collect();
            for generation in building {
                if s.caught_up(generation, partitions.partitions())
                    .map_err(ApiError::internal)?
                {
                    s.take_over(generation).map_err(ApiError::internal)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    fn feed_limits(&self) -> FeedLimits {
        FeedLimits {
            window: self.config.ws_ack_window,
            max_frames_per_second: self.config.ws_max_frames_per_second,
            cursor: "revision",
        }
    }

    /// A live socket on one document: its current body (if newer than `after`), a
    /// `caught_up` frame, then every change.
    async fn subscribe(
        &self,
        expires_at: u64,
        doc_id: String,
        after: u64,
        protocol: Option<String>,
    ) -> ApiResult<Response> {
        if self.feeds.open_feeds(&self.state).len() >= self.config.max_subscribers {
            return Err(ApiError::rate_limited(
                format!(
                    "this projection has the maximum of {} live subscribers",
                    self.config.max_subscribers
                ),
                5,
            ));
        }
        let pair = WebSocketPair::new()?;
        let server = pair.server;
        let limits = self.feed_limits();
        self.with_store(|store| {
            let (generation, _) = store.active().map_err(ApiError::internal)?;
            let document = store
                .document(generation, &doc_id)
                .map_err(ApiError::internal)?;
            self.state.accept_websocket_with_tags(&server, &[&doc_id]);
            let mut feed = Feed::new(after, Some(expires_at));
            let log = DocumentLog {
                doc_id: &doc_id,
                document: document.as_ref(),
            };
            let actions = feed.pump(&log, &limits).map_err(ApiError::internal)?;
            self.feeds.save_and_apply(&server, &feed, actions);
            Ok(())
        })?;
        // Wake at the token's expiry even if no partition wakes this projector by then.
        sockets::alarm_by(&self.state, sockets::secs_to_ms(expires_at)).await;
        let mut response = Response::from_websocket(pair.client)?;
        if let Some(protocol) = protocol {
            response
                .headers_mut()
                .set("sec-websocket-protocol", &protocol)?;
        }
        Ok(response)
    }

    /// Sends document changes to the sockets following those documents.
    fn broadcast(&self, changes: &[(u64, projections::DocChange, u64)]) {
        if changes.is_empty() {
            return;
        }
        let now = now_ms();
        let limits = self.feed_limits();
        for (_, change, revision) in changes {
            let sockets = self.state.get_websockets_with_tag(&change.doc_id);
            if sockets.is_empty() {
                continue; // nobody watches it: don't serialize the body for nothing
            }
            let frame = document_frame(&change.doc_id, *revision, change.body.as_ref());
            let entries = [(*revision, frame)];
            for socket in sockets {
                let Some(mut feed) = self.feeds.load(&socket) else {
                    continue;
                };
                let actions = feed.on_commit(&entries, now, &limits);
                if !actions.is_empty() {
                    self.feeds.save_and_apply(&socket, &feed, actions);
                }
            }
        }
    }

    fn on_client_frame(&self, socket: &WebSocket, text: Option<&str>) {
        let Some(mut feed) = self.feeds.load(socket) else {
            return;
        };
        let doc_id = self
            .state
            .get_tags(socket)
            .into_iter()
            .next()
            .unwrap_or_default();
        let limits = self.feed_limits();
        let result = self.with_store(|store| {
            let (generation, _) = store.active().map_err(ApiError::internal)?;
            let document = store
                .document(generation, &doc_id)
                .map_err(ApiError::internal)?;
            let log = DocumentLog {
                doc_id: &doc_id,
                document: document.as_ref(),
            };
            feed.on_client_frame(text, now_ms(), &log, &limits)
                .map_err(ApiError::internal)
        });
        let actions = result.unwrap_or_else(|_| feed.close_internal());
        self.feeds.save_and_apply(socket, &feed, actions);
    }
}

/// One document as the feed engine reads it: its history is its latest revision (a
/// subscriber gets the current body, never the bodies in between).
struct DocumentLog<'a> {
    doc_id: &'a str,
    document: Option<&'a Document>,
}

impl FeedLog for DocumentLog<'_> {
    fn read_after(
        &self,
        after: u64,
        _limit: usize,
    ) -> std::result::Result<Vec<(u64, String)>, String> {
        Ok(self
            .document
            .filter(|d| d.revision > after)
            .map(|d| {
                vec![(
                    d.revision,
                    document_frame(self.doc_id, d.revision, Some(&d.body)),
                )]
            })
            .unwrap_or_default())
    }

    fn head(&self) -> u64 {
        self.document.map_or(0, |d| d.revision)
    }

    fn caught_up_frame(&self, head: u64) -> String {
        json!({ "kind": "caught_up", "revision": head }).to_string()
    }
}

/// `{"kind":"document","doc_id","revision","body"}` (`body: null`: deleted).
fn document_frame(doc_id: &str, revision: u64, body: Option<&Value>) -> String {
    /// Borrows the body: `json!` would copy the whole document first.
    #[derive(Serialize)]
    struct Frame<'a> {
        kind: &'static str,
        doc_id: &'a str,
        revision: u64,
        body: Option<&'a Value>,
    }
    serde_json::to_string(&Frame {
        kind: "document",
        doc_id,
        revision,
        body,
    })
    .unwrap_or_default()
}

/// A list cursor `"{sort_key}:{doc_id}"`.
fn parse_list_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    cursor
        .split_once(':')
        .and_then(|(k, d)| Some((k.parse().ok()?, d.to_owned())))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`after` is a cursor from a previous page, not `{cursor}`"
            ))
        })
}
