//! Aggregate routes: commands, state and time travel, listings, live sockets.
//!
//! The Worker validates everything a client sent — the aggregate type and id, query
//! parameters, the command body (size, media type, shape) and the `Idempotency-Key` —
//! and hands the aggregate's object a typed [`AggregateOp`]. The object decides.

use domain::command_service::{BatchRequest, CommandRequest, ExecuteError};
use domain::envelope::parse_timestamp;
use domain::registry;
use domain::store::Direction;
use durable::cache::{CACHE_HEADER, EdgeCache};
use durable::call::{AggregateOp, Call, Caller};
use durable::encoding::{Encoding, MSGPACK_MEDIA_TYPES, bytes_response, msgpack_to_json};
use durable::names::{self, ObjectName};
use durable::params::{self, Query, check_params, listing_params, query_pairs, u64_param};
use durable::{ApiError, ApiResult, Config};
use worker::{Env, Request, Response};

use crate::gate::Admitted;
use crate::routes::AggregateRoute;

use durable::aggregate::AGGREGATES;

/// Longest accepted `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A validated aggregate address.
pub struct Target<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
}

impl<'a> Target<'a> {
    /// 404 for an unknown type, 400 for a malformed id.
    pub fn new(aggregate_type: &'a str, aggregate_id: &'a str) -> ApiResult<Self> {
        if !registry::is_known(aggregate_type) {
            return Err(ApiError::not_found(format!(
                "unknown aggregate type `{aggregate_type}`; known types: {}",
                registry::AGGREGATE_TYPES.join(", ")
            )));
        }
        if !names::valid_aggregate_id(aggregate_id) {
            return Err(ApiError::bad_request(format!(
                "aggregate ids are 1 to {} printable ASCII characters without `/`, `:` or `%`",
                names::MAX_ID_BYTES
            )));
        }
        Ok(Self {
            aggregate_type,
            aggregate_id,
        })
    }
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    target: &Target<'_>,
    route: AggregateRoute,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let principal = admitted.principal()?;
    let caller = Caller {
        actor: principal.actor.clone(),
        expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
    };
    let query = query_pairs(&req.url()?);
    let mut body = None;
    let op = match route {
        AggregateRoute::Command | AggregateRoute::Batch => {
            check_params(&query, &[])?;
            let idempotency_key = idempotency_key(&req)?;
            let minimal = prefers_minimal(&req)?;
            let bytes = super::read_body(&mut req, config.max_body_bytes).await?;
            let value = decode_body(&req, &bytes)?;
            if route == AggregateRoute::Command {
                CommandRequest::from_json(&value)
                    .map_err(|e| ApiError::from(ExecuteError::Command(e)))?
                    .check_metadata()
                    .map_err(|e| ApiError::from(ExecuteError::Command(e)))?;
                body = Some(serde_json::to_vec(&value).map_err(ApiError::internal)?);
                AggregateOp::Command {
                    idempotency_key,
                    minimal,
                }
            } else {
                BatchRequest::from_json(&value)
                    .map_err(|e| ApiError::from(ExecuteError::Command(e)))?;
                body = Some(serde_json::to_vec(&value).map_err(ApiError::internal)?);
                AggregateOp::Batch {
                    idempotency_key,
                    minimal,
                }
            }
        }
        AggregateRoute::State => state_op(&query)?,
        AggregateRoute::Events => {
            let listing = listing_params(&query)?;
            let encoding = Encoding::from_accept(req.headers().get("accept")?.as_deref());
            AggregateOp::Events {
                after: listing.after,
                before: listing.before,
                limit: listing.limit,
                backward: listing.direction == Direction::Backward,
                encoding,
            }
        }
        AggregateRoute::Socket => {
            let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
            if !upgrade.eq_ignore_ascii_case("websocket") {
                return Err(ApiError::upgrade_required());
            }
            check_params(&query, &["after", "access_token"])?;
            AggregateOp::Subscribe {
                after: u64_param(&query, "after")?.unwrap_or(0),
                protocol: admitted.ws_protocol.map(str::to_owned),
            }
        }
    };
    let name = ObjectName::aggregate(
        principal.tenant.as_str(),
        target.aggregate_type,
        target.aggregate_id,
    );
    let stub = env
        .durable_object(AGGREGATES)?
        .id_from_name(&name.to_string())?
        .get_stub()?;
    let upgrade = route == AggregateRoute::Socket;
    // The state at a version that exists never changes: cached at the edge.
    let cache_key = match op {
        AggregateOp::State {
            at_version: Some(version),
            ..
        } => Some(EdgeCache::key(&[
            principal.tenant.as_str(),
            "state",
            target.aggregate_type,
            target.aggregate_id,
            &version.to_string(),
        ])),
        _ => None,
    };
    let call = Call {
        caller: Some(caller),
        op,
    };
    let Some(key) = cache_key else {
        return call.send(&stub, upgrade, body).await;
    };
    let cache = EdgeCache::from_env(env, config);
    if !cache.is_on() {
        return call.send(&stub, upgrade, body).await;
    }
    if let Some(cached) = cache.get(&key).await {
        return Ok(cached_response(cached, "hit"));
    }
    let response = call.send(&stub, upgrade, body).await?;
    if response.status_code() != 200 {
        return Ok(response);
    }
    let bytes = durable::call::body_bytes(response).await?;
    cache.put(&key, &bytes).await;
    Ok(cached_response(bytes, "miss"))
}

/// A JSON answer that went through the edge cache, saying whether it came from it.
fn cached_response(body: Vec<u8>, outcome: &str) -> Response {
    let mut response = bytes_response(body, "application/json", 200);
    let _ = response.headers_mut().set(CACHE_HEADER, outcome);
    response
}

/// `?at_version=N` or `?as_of=RFC3339` (not both), or neither for the current state.
fn state_op(query: &Query) -> ApiResult<AggregateOp> {
    check_params(query, &["at_version", "as_of"])?;
    let at_version = u64_param(query, "at_version")?;
    let as_of_ms = match params::param(query, "as_of") {
        Some(text) => Some(parse_timestamp(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`as_of` must be an RFC 3339 timestamp, got `{text}`"
            ))
        })?),
        None => None,
    };
    if at_version.is_some() && as_of_ms.is_some() {
        return Err(ApiError::bad_request(
            "give `at_version` or `as_of`, not both",
        ));
    }
    Ok(AggregateOp::State {
        at_version,
        as_of_ms,
    })
}

/// Whether the request carries the preference `return=minimal` (`Prefer`, RFC 7240 §4.2):
/// the answer then leaves out `events`. Preferences are comma-separated, compared without
/// regard to case, their parameters (after `;`) ignored; any other preference is ignored,
/// as the RFC asks.
fn prefers_minimal(req: &Request) -> ApiResult<bool> {
    Ok(req.headers().get("prefer")?.is_some_and(|prefer| {
        prefer.split(',').any(|preference| {
            let token = preference.split(';').next().unwrap_or("");
            let mut parts = token.splitn(2, '=');
            let name = parts.next().unwrap_or("").trim();
            let value = parts.next().unwrap_or("").trim().trim_matches('"');
            name.eq_ignore_ascii_case("return") && value.eq_ignore_ascii_case("minimal")
        })
    }))
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

/// Decodes a command or batch body — JSON by default, MessagePack with `Content-Type:
/// application/msgpack` — into the JSON value the domain's decoders read (and the object
/// is sent).
fn decode_body(req: &Request, body: &[u8]) -> ApiResult<serde_json::Value> {
    let content_type = req
        .headers()
        .get("content-type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "" | "application/json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        m if MSGPACK_MEDIA_TYPES.contains(&m) => msgpack_to_json(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid MessagePack for a command: {e}"
            ))
        }),
        other => Err(ApiError::unsupported_media_type(format!(
            "commands are `application/json` or `application/msgpack`, not `{other}`"
        ))),
    }
}
