//! Read models: `GET /v1/projections` (every projection's version, status, checkpoints,
//! heads and lag), a page of documents, one document, a live document socket, and
//! `POST …/rebuild`. A projection's documents live in the projector object
//! `"{tenant}/projector/{name}"`; reads may carry a command's consistency token.

use durable::call::{Call, Caller, ConsistencyToken, ProjectorOp};
use durable::encoding::json_response;
use durable::names::{self, ObjectName};
use durable::params::{self, Query, check_params, query_pairs, u64_param};
use durable::projector::PROJECTORS;
use durable::{ApiError, ApiResult};
use projections::Projection;
use serde_json::{Value, json};
use worker::{Env, Request, Response};

use crate::gate::Admitted;
use crate::routes::ProjectionRoute;

/// Default and largest page of documents.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1_000;

pub async fn handle(
    req: Request,
    env: &Env,
    route: ProjectionRoute,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let principal = admitted.principal()?;
    let tenant = principal.tenant.as_str();
    let caller = Caller {
        actor: principal.actor.clone(),
        expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
    };
    let query = query_pairs(&req.url()?);
    let (projection, op, upgrade) = match route {
        ProjectionRoute::Index => {
            check_params(&query, &[])?;
            let statuses =
                futures_util::future::join_all(projections::registry().iter().map(|p| {
                    let caller = caller.clone();
                    async move {
                        let mut response =
                            call(env, tenant, *p, caller, ProjectorOp::Status, false).await?;
                        Ok::<Value, ApiError>(response.json().await?)
                    }
                }))
                .await
                .into_iter()
                .collect::<ApiResult<Vec<Value>>>()?;
            return Ok(json_response(&json!({ "projections": statuses }), 200));
        }
        ProjectionRoute::List { name } => {
            let projection = known(&name)?;
            let mut allowed = vec!["limit", "after", "consistency"];
            allowed.extend_from_slice(projection.list_filters());
            check_params(&query, &allowed)?;
            let filters = query
                .iter()
                .filter(|(k, _)| projection.list_filters().contains(&k.as_str()))
                .cloned()
                .collect();
            let limit = params::limit_param(&query, DEFAULT_LIMIT, MAX_LIMIT, None)?;
            let op = ProjectorOp::List {
                filters,
                limit,
                after: params::param(&query, "after").map(str::to_owned),
                consistency: consistency(&query)?,
            };
            (projection, op, false)
        }
        ProjectionRoute::Get { name, doc_id } => {
            let projection = known(&name)?;
            valid_doc_id(&doc_id)?;
            check_params(&query, &["consistency"])?;
            let op = ProjectorOp::Get {
                doc_id,
                consistency: consistency(&query)?,
            };
            (projection, op, false)
        }
        ProjectionRoute::Socket { name, doc_id } => {
            let projection = known(&name)?;
            valid_doc_id(&doc_id)?;
            let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
            if !upgrade.eq_ignore_ascii_case("websocket") {
                return Err(ApiError::upgrade_required());
            }
            check_params(&query, &["after", "access_token"])?;
            let op = ProjectorOp::Subscribe {
                doc_id,
                after: u64_param(&query, "after")?.unwrap_or(0),
                protocol: admitted.ws_protocol.map(str::to_owned),
            };
            (projection, op, true)
        }
        ProjectionRoute::Rebuild { name } => {
            let projection = known(&name)?;
            check_params(&query, &[])?;
            (projection, ProjectorOp::Rebuild, false)
        }
    };
    call(env, tenant, projection, caller, op, upgrade).await
}

async fn call(
    env: &Env,
    tenant: &str,
    projection: &dyn Projection,
    caller: Caller,
    op: ProjectorOp,
    upgrade: bool,
) -> ApiResult<Response> {
    let name = ObjectName::Projector {
        tenant: tenant.to_owned(),
        projection: projection.name().to_owned(),
    };
    let stub = env
        .durable_object(PROJECTORS)?
        .id_from_name(&name.to_string())?
        .get_stub()?;
    Call {
        caller: Some(caller),
        op,
    }
    .send(&stub, upgrade, None)
    .await
}

fn known(name: &str) -> ApiResult<&'static dyn Projection> {
    projections::by_name(name).ok_or_else(|| {
        let known: Vec<&str> = projections::registry().iter().map(|p| p.name()).collect();
        ApiError::not_found(format!(
            "no projection `{name}`; projections: {}",
            known.join(", ")
        ))
    })
}

/// The longest document id, in bytes: a knowledge document's id joins a kind and up to
/// two aggregate ids (`card:{board}:{card}`).
const MAX_DOC_ID_BYTES: usize = 3 * names::MAX_ID_BYTES;

/// Document ids are aggregate ids (a document per board, per feedback item) or, in the
/// knowledge base, a kind and aggregate ids joined by `:`: 1 to [`MAX_DOC_ID_BYTES`]
/// printable ASCII characters without `/` or `%`.
fn valid_doc_id(doc_id: &str) -> ApiResult<()> {
    let valid = !doc_id.is_empty()
        && doc_id.len() <= MAX_DOC_ID_BYTES
        && doc_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'%');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "document ids are 1 to {MAX_DOC_ID_BYTES} printable ASCII characters without `/` or `%`"
        )))
    }
}

fn consistency(query: &Query) -> ApiResult<Option<ConsistencyToken>> {
    params::param(query, "consistency")
        .map(|text| {
            ConsistencyToken::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`consistency` is a command's `consistency_token` (`{{type}}/{{id}}@{{version}}`), not `{text}`"
                ))
            })
        })
        .transpose()
}
