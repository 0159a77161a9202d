//! `ConsumerGroup`: one Durable Object per tenant and group
//! (`"{tenant}/consumer_group/{group}"`), for agent loops.
//!
//! Everything the group decides is `stream::consumer::GroupState` (leases, ack/nack,
//! retries, parking, replay, status); this object stores that state in its SQLite in the
//! same synchronous step as each change, reads the events of a granted batch from the
//! partitions, settles at once the events the group's filter does not want (so consumers
//! only see matching events), and long-polls: a poll with nothing deliverable waits up to
//! `wait_ms`, looking again as partitions' heads move.
//!
//! The group named `_registry` of each tenant is not a group: it lists the tenant's groups
//! (group names never start with `_`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use domain::{EventEnvelope, Position};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stream::consumer::{GroupConfig, GroupState, LeaseId, NackAction, ParkedSelection, StartFrom};
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::call::{Call, PartitionOp};
use crate::clock::now_ms;
use crate::config::Config;
use crate::encoding::{Encoding, json_response};
use crate::error::{ApiError, ApiResult};
use crate::names::ObjectName;
use crate::sql::{migrate, text};

/// The Durable Object namespace binding of consumer groups.
pub const CONSUMER_GROUPS: &str = "CONSUMER_GROUPS";

/// The per-tenant object that lists groups.
pub const REGISTRY: &str = "_registry";

/// Longest long-poll (ms), and how often a waiting poll looks again.
pub const MAX_WAIT_MS: u64 = 20_000;
const LOOK_AGAIN_MS: u64 = 100;

const MIGRATIONS: &[&str] = &["
CREATE TABLE group_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    state    TEXT NOT NULL
);
CREATE TABLE registry (name TEXT PRIMARY KEY);
"];

/// A group's settings, as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    pub start: Value,
    pub config: GroupConfig,
    /// Deliver only events of this aggregate type (others are settled unseen).
    pub aggregate_type: Option<String>,
    /// Deliver only these event types.
    pub types: Option<BTreeSet<String>>,
}

impl GroupSettings {
    fn wants(&self, event: &EventEnvelope) -> bool {
        self.aggregate_type
            .as_ref()
            .is_none_or(|t| *t == event.aggregate_type)
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&event.event_type))
    }
}

/// The operations of a consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupOp {
    Create {
        settings: GroupSettings,
    },
    Status,
    Delete,
    Poll {
        consumer: String,
        max_events: Option<u32>,
        wait_ms: u64,
    },
    Ack {
        consumer: String,
        lease: u64,
        offsets: Vec<u64>,
    },
    Nack {
        consumer: String,
        lease: u64,
        offset: u64,
        action: String,
        reason: Option<String>,
    },
    Renew {
        consumer: String,
        lease: u64,
    },
    Release {
        consumer: String,
        lease: u64,
    },
    Parked,
    Replay {
        selection: Value,
    },
    /// Registry only: remember or forget a group name; list them.
    Register {
        name: String,
    },
    Unregister {
        name: String,
    },
    List,
}

#[durable_object]
pub struct ConsumerGroup {
    state: State,
    env: Env,
    config: Config,
    /// Tenant and group, from the object's own name.
    identity: Option<(String, String)>,
    /// Settings and state, loaded on first use.
    loaded: RefCell<Option<(GroupSettings, GroupState)>>,
    instance: String,
}

impl DurableObject for ConsumerGroup {
    fn new(state: State, env: Env) -> Self {
        let identity = match state.id().name().as_deref().and_then(ObjectName::parse) {
            Some(ObjectName::ConsumerGroup { tenant, group }) => Some((tenant, group)),
            _ => None,
        };
        Self {
            config: Config::from_env(&env),
            state,
            env,
            identity,
            loaded: RefCell::new(None),
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        crate::call::answer(self.handle(req).await, &self.instance)
    }
}

fn consumer_error(e: stream::consumer::ConsumerError) -> ApiError {
    ApiError::with_status(e.status(), e.code(), e.to_string())
}

impl ConsumerGroup {
    fn identity(&self) -> ApiResult<(&str, &str)> {
        self.identity
            .as_ref()
            .map(|(t, g)| (t.as_str(), g.as_str()))
            .ok_or_else(|| ApiError::internal("a consumer-group object without a group name"))
    }

    fn migrate(&self) -> ApiResult<()> {
        migrate(&self.state.storage().sql(), MIGRATIONS).map_err(ApiError::internal)
    }

    /// Runs `f` on the group's settings and state and stores the state it leaves — one
    /// synchronous step.
    fn with_group<T>(
        &self,
        f: impl FnOnce(&GroupSettings, &mut GroupState) -> ApiResult<T>,
    ) -> ApiResult<T> {
        self.migrate()?;
        let mut slot = self.loaded.borrow_mut();
        if slot.is_none() {
            let sql = self.state.storage().sql();
            let cursor = sql
                .exec("SELECT settings, state FROM group_state", None)
                .map_err(ApiError::internal)?;
            let row = cursor
                .raw()
                .next()
                .transpose()
                .map_err(ApiError::internal)?;
            let Some(row) = row else {
                let (_, group) = self.identity()?;
                return Err(ApiError::not_found(format!("no consumer group `{group}`")));
            };
            let settings = row.first().and_then(text).unwrap_or_default();
            let state = row.get(1).and_then(text).unwrap_or_default();
            *slot = Some((
                serde_json::from_str(&settings).map_err(ApiError::internal)?,
                serde_json::from_str(&state).map_err(ApiError::internal)?,
            ));
        }
        let (settings, state) = slot
            .as_mut()
            .ok_or_else(|| ApiError::internal("group not loaded"))?;
        let mut next = state.clone();
        let out = f(settings, &mut next)?;
        if next != *state {
            self.state
                .storage()
                .sql()
                .exec(
                    "UPDATE group_state SET state = ?",
                    vec![
                        serde_json::to_string(&next)
                            .map_err(ApiError::internal)?
                            .into(),
                    ],
                )
                .map_err(ApiError::internal)?;
            *state = next;
        }
        Ok(out)
    }

    async fn handle(&self, req: Request) -> ApiResult<Response> {
        let call: Call<GroupOp> = Call::from_request(&req)?;
        let (_, group) = self.identity()?;
        match call.op {
            GroupOp::Register { name } => {
                self.migrate()?;
                self.state
                    .storage()
                    .sql()
                    .exec(
                        "INSERT OR IGNORE INTO registry (name) VALUES (?)",
                        vec![name.into()],
                    )
                    .map_err(ApiError::internal)?;
                Ok(json_response(&json!({}), 200))
            }
            GroupOp::Unregister { name } => {
                self.migrate()?;
                self.state
                    .storage()
                    .sql()
                    .exec("DELETE FROM registry WHERE name = ?", vec![name.into()])
                    .map_err(ApiError::internal)?;
                Ok(json_response(&json!({}), 200))
            }
            GroupOp::List => {
                self.migrate()?;
                let cursor = self
                    .state
                    .storage()
                    .sql()
                    .exec("SELECT name FROM registry ORDER BY name", None)
                    .map_err(ApiError::internal)?;
                let names: Vec<String> = cursor
                    .raw()
                    .filter_map(|r| r.ok().and_then(|r| r.first().and_then(text)))
                    .collect();
                Ok(json_response(&json!({ "groups": names }), 200))
            }
            _ if group == REGISTRY => Err(ApiError::not_found("no such consumer group")),
            GroupOp::Create { settings } => self.create(settings).await,
            GroupOp::Status => {
                let heads = self.heads().await?;
                let now = now_ms().max(0) as u64;
                let status = self.with_group(|settings, state| {
                    Ok(self.status_json(settings, state, &heads, now))
                })?;
                Ok(json_response(&status, 200))
            }
            GroupOp::Delete => {
                self.with_group(|_, _| Ok(()))?;
                self.state.storage().delete_all().await?;
                *self.loaded.borrow_mut() = None;
                let mut response = Response::empty()?.with_status(204);
                let _ = response
                    .headers_mut()
                    .set("content-type", "application/json");
                Ok(response)
            }
            GroupOp::Poll {
                consumer,
                max_events,
                wait_ms,
            } => self.poll(&consumer, max_events, wait_ms).await,
            GroupOp::Ack {
                consumer,
                lease,
                offsets,
            } => {
                let now = now_ms().max(0) as u64;
                let outcome = self.with_group(|_, state| {
                    state
                        .ack(&consumer, LeaseId(lease), &offsets, now)
                        .map_err(consumer_error)
                })?;
                Ok(json_response(
                    &json!({ "partition": outcome.partition, "cursor": outcome.cursor, "acked": outcome.acked, "lease_done": outcome.lease_done }),
                    200,
                ))
            }
            GroupOp::Nack {
                consumer,
                lease,
                offset,
                action,
                reason,
            } => {
                let action = match action.as_str() {
                    "retry" => NackAction::Retry,
                    "park" => NackAction::Park,
                    "skip" => NackAction::Skip,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "`action` is `retry`, `park` or `skip`, not `{other}`"
                        )));
                    }
                };
                let now = now_ms().max(0) as u64;
                let outcome = self.with_group(|settings, state| {
                    state
                        .nack(
                            &consumer,
                            LeaseId(lease),
                            offset,
                            action,
                            reason.as_deref(),
                            now,
                            &settings.config,
                        )
                        .map_err(consumer_error)
                })?;
                let fate = match outcome.fate {
                    stream::consumer::Fate::Retry { at_ms } => {
                        json!({ "fate": "retry", "at": domain::envelope::format_timestamp(at_ms as i64) })
                    }
                    stream::consumer::Fate::Parked => json!({ "fate": "parked" }),
                    stream::consumer::Fate::Skipped => json!({ "fate": "skipped" }),
                };
                Ok(json_response(
                    &json!({ "partition": outcome.partition, "offset": outcome.offset, "cursor": outcome.cursor, "outcome": fate }),
                    200,
                ))
            }
            GroupOp::Renew { consumer, lease } => {
                let now = now_ms().max(0) as u64;
                let expires = self.with_group(|settings, state| {
                    state
                        .renew(&consumer, LeaseId(lease), now, &settings.config)
                        .map_err(consumer_error)
                })?;
                Ok(json_response(
                    &json!({ "expires_at": domain::envelope::format_timestamp(expires as i64) }),
                    200,
                ))
            }
            GroupOp::Release { consumer, lease } => {
                let now = now_ms().max(0) as u64;
                let released = self.with_group(|_, state| {
                    state
                        .release(&consumer, LeaseId(lease), now)
                        .map_err(consumer_error)
                })?;
                Ok(json_response(
                    &json!({ "partition": released.partition, "returned": released.returned }),
                    200,
                ))
            }
            GroupOp::Parked => self.parked().await,
            GroupOp::Replay { selection } => {
                let selection = parse_selection(&selection)?;
                let mut replayed = Vec::new();
                for which in selection {
                    replayed.extend(self.with_group(|_, state| {
                        state.replay_parked(which).map_err(consumer_error)
                    })?);
                }
                Ok(json_response(&json!({ "replayed": replayed }), 200))
            }
        }
    }

    async fn create(&self, settings: GroupSettings) -> ApiResult<Response> {
        settings.config.check().map_err(consumer_error)?;
        self.migrate()?;
        let existing = self.with_group(|s, _| Ok(s.clone()));
        match existing {
            Ok(existing) if existing == settings => {
                return self.status_response(200).await;
            }
            Ok(_) => {
                let (_, group) = self.identity()?;
                return Err(ApiError::with_status(
                    409,
                    "conflict",
                    format!("consumer group `{group}` exists with other settings; delete it first"),
                ));
            }
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
        let partitions = self.config.partitions()?;
        let start = match &settings.start {
            Value::String(s) if s == "beginning" => StartFrom::Beginning,
            Value::String(s) if s == "end" => StartFrom::End,
            Value::Object(o) if o.len() == 1 && o.get("offsets").is_some_and(Value::is_object) => {
                let mut offsets = BTreeMap::new();
                for (p, o) in o["offsets"].as_object().into_iter().flatten() {
                    let p: u32 = p.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "`start.offsets` keys are partitions, not `{p}`"
                        ))
                    })?;
                    let o = o.as_u64().ok_or_else(|| {
                        ApiError::bad_request("`start.offsets` values are offsets")
                    })?;
                    offsets.insert(p, o);
                }
                StartFrom::After(offsets)
            }
            _ => {
                return Err(ApiError::bad_request(
                    r#"`start` is "beginning", "end" or {"offsets":{"<partition>":<offset>,…}}"#,
                ));
            }
        };
        let heads = self.heads().await?;
        let state = GroupState::new(partitions, &start, &heads).map_err(consumer_error)?;
        self.state
            .storage()
            .sql()
            .exec(
                "INSERT INTO group_state (id, settings, state) VALUES (1, ?, ?)",
                vec![
                    serde_json::to_string(&settings)
                        .map_err(ApiError::internal)?
                        .into(),
                    serde_json::to_string(&state)
                        .map_err(ApiError::internal)?
                        .into(),
                ],
            )
            .map_err(ApiError::internal)?;
        *self.loaded.borrow_mut() = Some((settings, state));
        self.status_response(201).await
    }

    async fn status_response(&self, status: u16) -> ApiResult<Response> {
        let heads = self.heads().await?;
        let now = now_ms().max(0) as u64;
        let body =
            self.with_group(|settings, state| Ok(self.status_json(settings, state, &heads, now)))?;
        Ok(json_response(&body, status))
    }

    fn status_json(
        &self,
        settings: &GroupSettings,
        state: &GroupState,
        heads: &BTreeMap<u32, u64>,
        now: u64,
    ) -> Value {
        let (_, group) = self.identity().unwrap_or(("", ""));
        let status = state.status(heads, now);
        let partitions: Vec<Value> = status
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "cursor": p.cursor,
                    "head": p.head,
                    "lag": p.lag,
                    "in_flight": p.in_flight,
                    "waiting": p.waiting,
                    "parked": p.parked,
                    "leased_by": p.lease.as_ref().map(|l| l.consumer.clone()),
                    "lease_expires_at": p.lease.as_ref().map(|l| domain::envelope::format_timestamp(l.expires_at_ms as i64)),
                })
            })
            .collect();
        json!({
            "group": group,
            "settings": settings,
            "partitions": partitions,
            "lag": status.lag,
            "in_flight": status.in_flight,
            "parked": status.parked,
        })
    }

    /// Every partition's head, from the partitions.
    async fn heads(&self) -> ApiResult<BTreeMap<u32, u64>> {
        let (tenant, _) = self.identity()?;
        let partitions = self.config.partitions()?;
        let mut heads = BTreeMap::new();
        let statuses =
            futures_util::future::join_all(partitions.partitions().map(|p| async move {
                let stub = self.partition_stub(tenant, p)?;
                let mut response = Call {
                    caller: None,
                    op: PartitionOp::Status,
                }
                .send(&stub, false, None)
                .await?;
                let status: Value = response.json().await?;
                Ok::<(u32, u64), ApiError>((p, status["head"].as_u64().unwrap_or(0)))
            }))
            .await;
        for status in statuses {
            let (p, head) = status?;
            heads.insert(p, head);
        }
        Ok(heads)
    }

    fn partition_stub(&self, tenant: &str, partition: u32) -> ApiResult<worker::Stub> {
        Ok(self
            .env
            .durable_object(crate::aggregate::PARTITIONS)?
            .id_from_name(&ObjectName::partition(tenant, partition).to_string())?
            .get_stub()?)
    }

    /// Events `first..=last` of a partition (offset → envelope).
    async fn read_range(
        &self,
        partition: u32,
        first: u64,
        last: u64,
    ) -> ApiResult<BTreeMap<u64, EventEnvelope>> {
        #[derive(Deserialize)]
        struct Page {
            events: Vec<EventEnvelope>,
            next_after: Option<u64>,
        }
        let (tenant, _) = self.identity()?;
        let stub = self.partition_stub(tenant, partition)?;
        let mut events = BTreeMap::new();
        let mut after = first.saturating_sub(1);
        while after < last {
            let response = Call {
                caller: None,
                op: PartitionOp::Read {
                    after,
                    limit: (last - after).min(10_000) as usize,
                    filter: stream::StreamFilter::default(),
                    encoding: Encoding::MessagePack,
                },
            }
            .send(&stub, false, None)
            .await?;
            if response.status_code() != 200 {
                return Err(ApiError::internal(format!(
                    "partition {partition} answered {}",
                    response.status_code()
                )));
            }
            let page: Page = rmp_serde::from_slice(&crate::call::body_bytes(response).await?)
                .map_err(ApiError::internal)?;
            for event in page.events {
                if let Some(position) = event.position
                    && position.offset <= last
                {
                    events.insert(position.offset, event);
                }
            }
            match page.next_after {
                Some(next) if next > after => after = next,
                _ => break,
            }
        }
        Ok(events)
    }

    /// Grants a batch of wanted events, settling unwanted ones on the way; waits up to
    /// `wait_ms` for one.
    async fn poll(
        &self,
        consumer: &str,
        max_events: Option<u32>,
        wait_ms: u64,
    ) -> ApiResult<Response> {
        let deadline = now_ms() + wait_ms.min(MAX_WAIT_MS) as i64;
        loop {
            let heads = self.heads().await?;
            // A few rounds: a batch made only of events the filter does not want is
            // settled at once, and the next one is looked at.
            for _ in 0..20 {
                let now = now_ms().max(0) as u64;
                let outcome = self.with_group(|settings, state| {
                    let mut config = settings.config.clone();
                    if let Some(max) = max_events {
                        config.max_batch = max.clamp(1, config.max_batch);
                    }
                    Ok(state.poll(consumer, now, &heads, &config))
                })?;
                let Some(batch) = outcome.batch else { break };
                let first = batch.events.first().map_or(0, |d| d.offset);
                let last = batch.events.last().map_or(0, |d| d.offset);
                let events = match self.read_range(batch.partition, first, last).await {
                    Ok(events) => events,
                    Err(error) => {
                        let _ = self.with_group(|_, state| {
                            state
                                .release(consumer, batch.lease, now)
                                .map_err(consumer_error)
                        });
                        return Err(error);
                    }
                };
                let settings = self.with_group(|settings, _| Ok(settings.clone()))?;
                let mut delivered = Vec::new();
                let mut unwanted = Vec::new();
                for delivery in &batch.events {
                    match events.get(&delivery.offset) {
                        Some(event) if settings.wants(event) => delivered.push(json!({
                            "attempt": delivery.attempt,
                            "event": event,
                        })),
                        _ => unwanted.push(delivery.offset),
                    }
                }
                if !unwanted.is_empty() {
                    self.with_group(|_, state| {
                        state
                            .ack(consumer, batch.lease, &unwanted, now)
                            .map_err(consumer_error)
                    })?;
                }
                if !delivered.is_empty() {
                    return Ok(json_response(
                        &json!({
                            "lease": {
                                "id": batch.lease.0.to_string(),
                                "partition": batch.partition,
                                "expires_at": domain::envelope::format_timestamp(batch.expires_at_ms as i64),
                            },
                            "events": delivered,
                        }),
                        200,
                    ));
                }
            }
            if now_ms() >= deadline {
                return Ok(json_response(&json!({ "lease": null, "events": [] }), 200));
            }
            worker::Delay::from(std::time::Duration::from_millis(LOOK_AGAIN_MS)).await;
        }
    }

    async fn parked(&self) -> ApiResult<Response> {
        let parked: Vec<stream::consumer::ParkedEvent> =
            self.with_group(|_, state| Ok(state.parked().cloned().collect()))?;
        let mut out = Vec::new();
        for p in parked {
            let event = self
                .read_range(p.position.partition, p.position.offset, p.position.offset)
                .await?
                .remove(&p.position.offset);
            out.push(json!({
                "partition": p.position.partition,
                "offset": p.position.offset,
                "attempts": p.deliveries,
                "parked_at": domain::envelope::format_timestamp(p.parked_at_ms as i64),
                "cause": p.cause,
                "reason": p.reason,
                "event": event,
            }));
        }
        Ok(json_response(&json!({ "parked": out }), 200))
    }
}

fn parse_selection(selection: &Value) -> ApiResult<Vec<ParkedSelection>> {
    if selection.get("all") == Some(&Value::Bool(true))
        && selection.as_object().is_some_and(|o| o.len() == 1)
    {
        return Ok(vec![ParkedSelection::All]);
    }
    let offsets = selection
        .get("offsets")
        .and_then(Value::as_array)
        .filter(|_| selection.as_object().is_some_and(|o| o.len() == 1))
        .ok_or_else(|| {
            ApiError::bad_request(
                r#"replay {"all":true} or {"offsets":[{"partition":P,"offset":O},…]}"#,
            )
        })?;
    offsets
        .iter()
        .map(|o| {
            let position: Position = serde_json::from_value(o.clone())
                .map_err(|e| ApiError::bad_request(format!("a parked position: {e}")))?;
            Ok(ParkedSelection::Event(position))
        })
        .collect()
}
