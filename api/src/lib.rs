//! Edgeloop's Worker entry point.
//!
//! Every request passes through [`gate`] (limits today; authentication, tenancy and CORS
//! slot in there) before [`route`] matches it to a handler. Aggregate routes are
//! forwarded to the aggregate's Durable Object, which does the work; this crate owns
//! only the edge: routing, validation that needs no state, and error mapping.
//!
//! # Layout
//! * [`gate`] — the one place every request passes before it is handled.
//! * [`route`] — the route table.

use durable::http::{ApiError, ApiResult, json_response};
use durable::names::{self, ACTOR_HEADER, TENANT_HEADER};
use durable::Config;
use serde_json::json;
use worker::{Context, Env, Method, Request, Response, event};

// The Durable Object classes this Worker exports (see `wrangler.toml`).
pub use durable::AggregateObject;

/// The Durable Object namespace binding of aggregates.
const AGGREGATES: &str = "AGGREGATES";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(match handle(req, &env).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

/// Who is calling, as established by the gate.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    pub actor: Option<String>,
    pub tenant: Option<String>,
}

async fn handle(req: Request, env: &Env) -> ApiResult<Response> {
    let config = Config::from_env(env);
    let principal = gate(&req, &config)?;
    route(req, env, &principal).await
}

/// Checks that apply to every request before any handler runs.
pub fn gate(req: &Request, config: &Config) -> ApiResult<Principal> {
    if let Some(length) = req.headers().get("content-length")?.and_then(|v| v.parse::<u64>().ok()) {
        if length > config.max_body_bytes as u64 {
            return Err(durable::aggregate_object::too_large(config.max_body_bytes));
        }
    }
    Ok(Principal::default())
}

/// The route table. Unknown paths are 404, known paths with the wrong method 405.
async fn route(req: Request, env: &Env, principal: &Principal) -> ApiResult<Response> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["healthz"] => match method {
            Method::Get | Method::Head => Ok(json_response(&json!({ "status": "ok" }), 200)),
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        ["v1", "aggregates", aggregate_type, aggregate_id, rest @ ..] => {
            let allowed = match rest {
                [] | ["events"] | ["ws"] => "GET",
                ["commands"] => "POST",
                _ => return Err(ApiError::not_found(format!("no route for {path}"))),
            };
            if method.to_string() != allowed {
                return Err(ApiError::method_not_allowed(allowed));
            }
            if !domain::registry::is_known(aggregate_type) {
                return Err(ApiError::not_found(format!(
                    "unknown aggregate type `{aggregate_type}`; known types: {}",
                    domain::registry::AGGREGATE_TYPES.join(", ")
                )));
            }
            if !names::valid_aggregate_id(aggregate_id) {
                return Err(ApiError::bad_request(format!(
                    "aggregate ids are 1 to {} printable ASCII characters without `/`, `:` or `%`",
                    names::MAX_ID_BYTES
                )));
            }
            let name = names::object_name(principal.tenant.as_deref(), aggregate_type, aggregate_id);
            forward(req, env, &name, principal).await
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

/// Forwards a request to the named aggregate object, with the principal in trusted
/// headers (always overwritten, so a client cannot forge them).
async fn forward(req: Request, env: &Env, object: &str, principal: &Principal) -> ApiResult<Response> {
    let mut inner = req.clone_mut()?;
    let headers = inner.headers_mut()?;
    headers.delete(ACTOR_HEADER)?;
    headers.delete(TENANT_HEADER)?;
    if let Some(actor) = &principal.actor {
        headers.set(ACTOR_HEADER, actor)?;
    }
    if let Some(tenant) = &principal.tenant {
        headers.set(TENANT_HEADER, tenant)?;
    }
    let stub = env.durable_object(AGGREGATES)?.id_from_name(object)?.get_stub()?;
    Ok(stub.fetch_with_request(inner).await?)
}
