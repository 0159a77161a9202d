//! Consumer groups: `/v1/consumers[/{group}[/…]]`, scope `consume`. The Worker validates
//! the group name and each body's shape; the group's object
//! (`"{tenant}/consumer_group/{group}"`) decides. The tenant's registry object
//! (`"{tenant}/consumer_group/_registry"`) lists its groups.

use std::collections::BTreeSet;

use durable::call::{Call, Caller};
use durable::consumer_group::{CONSUMER_GROUPS, GroupOp, GroupSettings, MAX_WAIT_MS, REGISTRY};
use durable::encoding::json_response;
use durable::names::ObjectName;
use durable::params::{check_params, query_pairs};
use durable::{ApiError, ApiResult, Config};
use serde_json::{Map, Value, json};
use stream::consumer::GroupConfig;
use worker::{Env, Request, Response, Stub};

use crate::gate::Admitted;
use crate::routes::{ConsumerAction, ConsumerRoute};

/// Largest body of a consumer-group request.
const MAX_BODY: usize = 64 * 1024;

pub async fn handle(
    mut req: Request,
    env: &Env,
    _config: &Config,
    route: ConsumerRoute,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let principal = admitted.principal()?;
    let tenant = principal.tenant.as_str();
    let caller = Caller {
        actor: principal.actor.clone(),
        expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
    };
    check_params(&query_pairs(&req.url()?), &[])?;
    let call = |group: &str, op: GroupOp| {
        let caller = caller.clone();
        let group = group.to_owned();
        async move {
            Call {
                caller: Some(caller),
                op,
            }
            .send(&stub(env, tenant, &group)?, false, None)
            .await
        }
    };
    match route {
        ConsumerRoute::List => {
            let mut listed = call(REGISTRY, GroupOp::List).await?;
            let names: Value = listed.json().await?;
            let mut groups = Vec::new();
            for name in names["groups"].as_array().into_iter().flatten() {
                let Some(name) = name.as_str() else { continue };
                let mut status = call(name, GroupOp::Status).await?;
                if status.status_code() == 200 {
                    groups.push(status.json::<Value>().await?);
                }
            }
            Ok(json_response(&json!({ "groups": groups }), 200))
        }
        ConsumerRoute::Create { group } => {
            valid_group(&group)?;
            let body = json_body(&mut req).await?;
            let settings = settings(&body)?;
            let response = call(&group, GroupOp::Create { settings }).await?;
            if matches!(response.status_code(), 200 | 201) {
                call(REGISTRY, GroupOp::Register { name: group }).await?;
            }
            Ok(response)
        }
        ConsumerRoute::Status { group } => {
            valid_group(&group)?;
            call(&group, GroupOp::Status).await
        }
        ConsumerRoute::Delete { group } => {
            valid_group(&group)?;
            let response = call(&group, GroupOp::Delete).await?;
            if response.status_code() == 204 {
                call(REGISTRY, GroupOp::Unregister { name: group }).await?;
            }
            Ok(response)
        }
        ConsumerRoute::Parked { group } => {
            valid_group(&group)?;
            call(&group, GroupOp::Parked).await
        }
        ConsumerRoute::Replay { group } => {
            valid_group(&group)?;
            let selection = json_body(&mut req).await?;
            call(
                &group,
                GroupOp::Replay {
                    selection: Value::Object(selection),
                },
            )
            .await
        }
        ConsumerRoute::Action { group, action } => {
            valid_group(&group)?;
            let body = json_body(&mut req).await?;
            let op = action_op(action, &body)?;
            call(&group, op).await
        }
    }
}

fn stub(env: &Env, tenant: &str, group: &str) -> ApiResult<Stub> {
    let name = ObjectName::ConsumerGroup {
        tenant: tenant.to_owned(),
        group: group.to_owned(),
    };
    Ok(env
        .durable_object(CONSUMER_GROUPS)?
        .id_from_name(&name.to_string())?
        .get_stub()?)
}

/// Group names: 1–64 of `[a-z0-9_-]`, not starting with `_` (reserved).
fn valid_group(group: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&group.len())
        && !group.starts_with('_')
        && group
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "group names are 1 to 64 of a-z, 0-9, `_` and `-`, not starting with `_`",
        ))
    }
}

/// A JSON object body (empty body: `{}`), at most [`MAX_BODY`] bytes.
async fn json_body(req: &mut Request) -> ApiResult<Map<String, Value>> {
    let bytes = super::read_body(req, MAX_BODY).await?;
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body is a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Reads the named fields of `body`, refusing any other field; each is absent or of its
/// type (never `null`).
struct Fields<'a> {
    body: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Map<String, Value>, allowed: &[&str]) -> ApiResult<Self> {
        if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown field `{unknown}`; fields: {}",
                allowed.join(", ")
            )));
        }
        Ok(Self { body })
    }

    fn get(&self, name: &str) -> ApiResult<Option<&'a Value>> {
        match self.body.get(name) {
            Some(Value::Null) => Err(ApiError::bad_request(format!(
                "`{name}`: null is not allowed; leave the field out instead"
            ))),
            other => Ok(other),
        }
    }

    fn u64(&self, name: &str) -> ApiResult<Option<u64>> {
        self.get(name)?
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` is a non-negative integer"))
                })
            })
            .transpose()
    }

    fn string(&self, name: &str) -> ApiResult<Option<String>> {
        self.get(name)?
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request(format!("`{name}` is a string")))
            })
            .transpose()
    }

    fn required_string(&self, name: &str) -> ApiResult<String> {
        let value = self
            .string(name)?
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required")))?;
        if value.is_empty() || value.chars().count() > 256 {
            return Err(ApiError::bad_request(format!(
                "`{name}` is 1 to 256 characters"
            )));
        }
        Ok(value)
    }

    /// A lease id: the string the poll answered (a number is accepted too).
    fn lease(&self) -> ApiResult<u64> {
        match self.get("lease")? {
            Some(Value::String(s)) => s.parse().ok(),
            Some(v) => v.as_u64(),
            None => None,
        }
        .ok_or_else(|| ApiError::bad_request("`lease` is the lease id a poll answered"))
    }
}

fn settings(body: &Map<String, Value>) -> ApiResult<GroupSettings> {
    let fields = Fields::new(
        body,
        &[
            "start",
            "lease_ms",
            "max_attempts",
            "retry_backoff_ms",
            "max_backoff_ms",
            "max_batch",
            "aggregate_type",
            "types",
        ],
    )?;
    let defaults = GroupConfig {
        lease_ms: 30_000,
        max_batch: 100,
        ..GroupConfig::default()
    };
    let retry_backoff_ms = fields
        .u64("retry_backoff_ms")?
        .unwrap_or(defaults.retry_backoff_ms);
    let config = GroupConfig {
        lease_ms: fields.u64("lease_ms")?.unwrap_or(defaults.lease_ms),
        max_attempts: fields
            .u64("max_attempts")?
            .map_or(Ok(defaults.max_attempts), |n| {
                u32::try_from(n).map_err(|_| ApiError::bad_request("`max_attempts` is at most 100"))
            })?,
        retry_backoff_ms,
        max_backoff_ms: fields
            .u64("max_backoff_ms")?
            .unwrap_or(defaults.max_backoff_ms.max(retry_backoff_ms)),
        max_batch: fields
            .u64("max_batch")?
            .map_or(Ok(defaults.max_batch), |n| {
                u32::try_from(n).map_err(|_| ApiError::bad_request("`max_batch` is at most 1000"))
            })?,
    };
    let types = match fields.get("types")? {
        None => None,
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 100 => Some(
            items
                .iter()
                .map(|t| {
                    t.as_str()
                        .filter(|t| !t.is_empty() && t.len() <= 128)
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::bad_request("`types` holds event type names"))
                })
                .collect::<ApiResult<BTreeSet<String>>>()?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`types` is a list of 1 to 100 event types",
            ));
        }
    };
    Ok(GroupSettings {
        start: fields.get("start")?.cloned().unwrap_or(json!("beginning")),
        config,
        aggregate_type: fields.string("aggregate_type")?,
        types,
    })
}

fn action_op(action: ConsumerAction, body: &Map<String, Value>) -> ApiResult<GroupOp> {
    Ok(match action {
        ConsumerAction::Poll => {
            let fields = Fields::new(body, &["consumer", "max_events", "wait_ms"])?;
            let wait_ms = fields.u64("wait_ms")?.unwrap_or(0);
            if wait_ms > MAX_WAIT_MS {
                return Err(ApiError::bad_request(format!(
                    "`wait_ms` is at most {MAX_WAIT_MS}"
                )));
            }
            let max_events = match fields.u64("max_events")? {
                None => None,
                Some(n @ 1..=1000) => Some(n as u32),
                Some(_) => return Err(ApiError::bad_request("`max_events` is 1 to 1000")),
            };
            GroupOp::Poll {
                consumer: fields.required_string("consumer")?,
                max_events,
                wait_ms,
            }
        }
        ConsumerAction::Ack => {
            let fields = Fields::new(body, &["consumer", "lease", "offsets"])?;
            let offsets = match fields.get("offsets")? {
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= 1000 => items
                    .iter()
                    .map(|o| {
                        o.as_u64()
                            .ok_or_else(|| ApiError::bad_request("`offsets` holds offsets"))
                    })
                    .collect::<ApiResult<Vec<u64>>>()?,
                _ => {
                    return Err(ApiError::bad_request(
                        "`offsets` is a list of 1 to 1000 offsets",
                    ));
                }
            };
            GroupOp::Ack {
                consumer: fields.required_string("consumer")?,
                lease: fields.lease()?,
                offsets,
            }
        }
        ConsumerAction::Nack => {
            let fields = Fields::new(body, &["consumer", "lease", "offset", "action", "reason"])?;
            GroupOp::Nack {
                consumer: fields.required_string("consumer")?,
                lease: fields.lease()?,
                offset: fields
                    .u64("offset")?
                    .ok_or_else(|| ApiError::bad_request("`offset` is required"))?,
                action: fields.required_string("action")?,
                reason: fields.string("reason")?,
            }
        }
        ConsumerAction::Renew | ConsumerAction::Release => {
            let fields = Fields::new(body, &["consumer", "lease"])?;
            let consumer = fields.required_string("consumer")?;
            let lease = fields.lease()?;
            if action == ConsumerAction::Renew {
                GroupOp::Renew { consumer, lease }
            } else {
                GroupOp::Release { consumer, lease }
            }
        }
    })
}
