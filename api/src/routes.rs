//! The route table.

use durable::http::{ApiError, ApiResult, json_response};
use durable::names::{self, ACTOR_HEADER, EXPIRES_HEADER, TRUSTED_HEADERS, WS_PROTOCOL_HEADER};
use serde_json::json;
use worker::{Env, Method, Request, Response};

use crate::gate::Admitted;

/// The Durable Object namespace binding of aggregates.
const AGGREGATES: &str = "AGGREGATES";

/// A matched route and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Aggregate {
        aggregate_type: String,
        aggregate_id: String,
        op: AggregateOp,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Command,
    State,
    Events,
    Socket,
}

impl Route {
    /// The scope a caller needs; `None` for open routes.
    pub fn scope(&self) -> Option<auth::Scope> {
        match self {
            Route::Health => None,
            Route::Aggregate {
                op: AggregateOp::Command,
                ..
            } => Some(auth::Scope::Commands),
            Route::Aggregate { .. } => Some(auth::Scope::Read),
        }
    }

    pub fn is_socket(&self) -> bool {
        matches!(
            self,
            Route::Aggregate {
                op: AggregateOp::Socket,
                ..
            }
        )
    }
}

/// Names the route of a request: 404 for unknown paths, 405 for a known path with the
/// wrong method. Nothing else is looked at yet (authentication comes next).
pub fn match_route(req: &Request) -> ApiResult<Route> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method();
    let expect = |allowed: Method| -> ApiResult<()> {
        let ok = method == allowed || (allowed == Method::Get && method == Method::Head);
        if ok {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(allowed.as_ref()))
        }
    };
    match segments.as_slice() {
        ["healthz"] => expect(Method::Get).map(|_| Route::Health),
        ["v1", "aggregates", aggregate_type, aggregate_id, rest @ ..] => {
            let op = match rest {
                [] => AggregateOp::State,
                ["events"] => AggregateOp::Events,
                ["ws"] => AggregateOp::Socket,
                ["commands"] => AggregateOp::Command,
                _ => return Err(ApiError::not_found(format!("no route for {path}"))),
            };
            expect(if op == AggregateOp::Command {
                Method::Post
            } else {
                Method::Get
            })?;
            Ok(Route::Aggregate {
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: aggregate_id.to_string(),
                op,
            })
        }
        _ => Err(ApiError::not_found(format!("no route for {path}"))),
    }
}

/// Runs an admitted request.
pub async fn dispatch(
    req: Request,
    env: &Env,
    route: Route,
    admitted: Admitted,
) -> ApiResult<Response> {
    match route {
        Route::Health => Ok(json_response(&json!({ "status": "ok" }), 200)),
        Route::Aggregate {
            aggregate_type,
            aggregate_id,
            ..
        } => {
            if !domain::registry::is_known(&aggregate_type) {
                return Err(ApiError::not_found(format!(
                    "unknown aggregate type `{aggregate_type}`; known types: {}",
                    domain::registry::AGGREGATE_TYPES.join(", ")
                )));
            }
            if !names::valid_aggregate_id(&aggregate_id) {
                return Err(ApiError::bad_request(format!(
                    "aggregate ids are 1 to {} printable ASCII characters without `/`, `:` or `%`",
                    names::MAX_ID_BYTES
                )));
            }
            let principal = admitted.principal()?;
            let object =
                names::object_name(principal.tenant.as_str(), &aggregate_type, &aggregate_id);
            forward(req, env, &object, principal, admitted.ws_protocol).await
        }
    }
}

/// Forwards a request to the named aggregate object, with the principal in trusted
/// headers. Client-sent copies of those headers are always removed first. The expiry
/// passed on includes auth's clock leeway, so sockets end when the gate would start
/// refusing the token.
async fn forward(
    req: Request,
    env: &Env,
    object: &str,
    principal: &auth::Principal,
    ws_protocol: Option<&str>,
) -> ApiResult<Response> {
    let mut inner = req.clone_mut()?;
    let headers = inner.headers_mut()?;
    for header in TRUSTED_HEADERS {
        headers.delete(header)?;
    }
    headers.set(ACTOR_HEADER, &principal.actor)?;
    let expires = principal.expires_at.saturating_add(auth::LEEWAY_SECS);
    headers.set(EXPIRES_HEADER, &expires.to_string())?;
    if let Some(protocol) = ws_protocol {
        headers.set(WS_PROTOCOL_HEADER, protocol)?;
    }
    let stub = env
        .durable_object(AGGREGATES)?
        .id_from_name(object)?
        .get_stub()?;
    Ok(stub.fetch_with_request(inner).await?)
}
