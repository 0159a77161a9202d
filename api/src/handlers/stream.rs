//! The global stream: `GET /v1/stream` (pages of one partition), `/v1/stream/ws` (its
//! live feed), `/v1/stream/partitions` (heads and retention), and the partition admin
//! operations. Everything is confined to the caller's tenant: a partition is the object
//! `"{tenant}/partition/{n}"`.

use durable::call::{Call, Caller, PartitionOp};
use durable::encoding::{Encoding, json_response};
use durable::names::ObjectName;
use durable::params::{
    self, DEFAULT_LIMIT, MAX_LIMIT, Query, check_params, query_pairs, u64_param,
};
use durable::{ApiError, ApiResult, Config};
use serde_json::{Value, json};
use stream::{PartitionCount, StreamFilter};
use worker::{Env, Request, Response, Stub};

use crate::gate::Admitted;
use crate::routes::{PartitionAction, StreamRoute};

/// The Durable Object namespace binding of stream partitions.
const PARTITIONS: &str = "PARTITIONS";

pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    route: StreamRoute,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let principal = admitted.principal()?;
    let tenant = principal.tenant.as_str();
    let partitions = config.partitions()?;
    let query = query_pairs(&req.url()?);
    let caller = Caller {
        actor: principal.actor.clone(),
        expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
    };
    match route {
        StreamRoute::Read => {
            check_params(
                &query,
                &[
                    "partition",
                    "after",
                    "limit",
                    "aggregate_type",
                    "types",
                    "since",
                    "until",
                    "correlation_id",
                ],
            )?;
            let partition = partition_param(&query, partitions)?;
            let filter = StreamFilter::from_query(&query)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let op = PartitionOp::Read {
                after: u64_param(&query, "after")?.unwrap_or(0),
                limit: limit_param(&query)?,
                filter,
                encoding: Encoding::from_accept(req.headers().get("accept")?.as_deref()),
            };
            call(env, tenant, partition, Some(caller), op, false).await
        }
        StreamRoute::Socket => {
            let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
            if !upgrade.eq_ignore_ascii_case("websocket") {
                return Err(ApiError::upgrade_required());
            }
            check_params(&query, &["partition", "after", "access_token"])?;
            let partition = partition_param(&query, partitions)?;
            let op = PartitionOp::Subscribe {
                after: u64_param(&query, "after")?.unwrap_or(0),
                protocol: admitted.ws_protocol.map(str::to_owned),
            };
            call(env, tenant, partition, Some(caller), op, true).await
        }
        StreamRoute::Partitions => {
            check_params(&query, &[])?;
            let statuses = futures_util::future::join_all(partitions.partitions().map(|p| {
                let caller = caller.clone();
                async move {
                    let mut response =
                        call(env, tenant, p, Some(caller), PartitionOp::Status, false).await?;
                    Ok::<Value, ApiError>(response.json().await?)
                }
            }))
            .await
            .into_iter()
            .collect::<ApiResult<Vec<Value>>>()?;
            Ok(json_response(
                &json!({ "partitions": statuses, "count": partitions.get() }),
                200,
            ))
        }
    }
}

/// `POST /v1/stream/partitions/{n}/{action}`; 404 for a partition that does not exist.
pub async fn admin(
    req: &Request,
    env: &Env,
    config: &Config,
    partition: &str,
    action: PartitionAction,
    admitted: &Admitted,
) -> ApiResult<Response> {
    check_params(&query_pairs(&req.url()?), &[])?;
    let principal = admitted.principal()?;
    let partitions = config.partitions()?;
    let partition = partition
        .parse::<u32>()
        .ok()
        .filter(|p| partitions.partitions().contains(p) && !partition.starts_with('+'))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no partition `{partition}`: partitions are 0 to {}",
                partitions.get() - 1
            ))
        })?;
    let op = match action {
        PartitionAction::Pause => PartitionOp::Pause,
        PartitionAction::Resume => PartitionOp::Resume,
        PartitionAction::Archive => PartitionOp::Archive,
    };
    let caller = Caller {
        actor: principal.actor.clone(),
        expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
    };
    call(
        env,
        principal.tenant.as_str(),
        partition,
        Some(caller),
        op,
        false,
    )
    .await
}

async fn call(
    env: &Env,
    tenant: &str,
    partition: u32,
    caller: Option<Caller>,
    op: PartitionOp,
    upgrade: bool,
) -> ApiResult<Response> {
    Call { caller, op }
        .send(&stub(env, tenant, partition)?, upgrade, None)
        .await
}

fn stub(env: &Env, tenant: &str, partition: u32) -> ApiResult<Stub> {
    let name = ObjectName::partition(tenant, partition).to_string();
    Ok(env
        .durable_object(PARTITIONS)?
        .id_from_name(&name)?
        .get_stub()?)
}

/// `partition=P`: required, and within the tenant's partition count (400 otherwise).
fn partition_param(query: &Query, partitions: PartitionCount) -> ApiResult<u32> {
    let value = params::param(query, "partition").ok_or_else(|| {
        ApiError::bad_request(format!(
            "`partition` is required: 0 to {}",
            partitions.get() - 1
        ))
    })?;
    value
        .parse::<u32>()
        .ok()
        .filter(|p| partitions.partitions().contains(p) && !value.starts_with('+'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`partition` must be 0 to {}, got `{value}`",
                partitions.get() - 1
            ))
            .with_detail("partitions", partitions.get())
        })
}

/// `limit=M`: default 100, 1 to 10,000.
fn limit_param(query: &Query) -> ApiResult<usize> {
    match u64_param(query, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::bad_request("`limit` must be at least 1")),
        Some(n) if n > MAX_LIMIT as u64 => Err(ApiError::bad_request(format!(
            "`limit` must be at most {MAX_LIMIT}, got {n}"
        ))),
        Some(n) => Ok(n as usize),
    }
}
