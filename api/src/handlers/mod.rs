//! Handlers: one module per area, each turning an admitted route into a typed call to
//! the object that owns the data (or an answer the Worker gives itself).

mod aggregates;
mod consumers;
mod ingest;
mod knowledge;
mod projections;
mod stream;
mod trace;

use durable::ApiError;
use durable::encoding::json_response;
use durable::{ApiResult, Config};
use futures_util::StreamExt;
use serde_json::json;
use worker::{Env, Request, Response};

use crate::gate::Admitted;
use crate::routes::Route;

/// The OpenAPI 3.1 description of the API (`api/openapi.json`), kept true by the contract
/// test that drives the running Worker from it.
const OPENAPI: &str = include_str!("../../openapi.json");

/// Runs an admitted request.
pub async fn dispatch(
    req: Request,
    env: &Env,
    config: &Config,
    route: Route,
    admitted: Admitted,
) -> ApiResult<Response> {
    match route {
        Route::Health => Ok(json_response(&json!({ "status": "ok" }), 200)),
        Route::OpenApi => Ok(durable::encoding::bytes_response(
            OPENAPI.as_bytes().to_vec(),
            "application/json",
            200,
        )),
        Route::Aggregate {
            aggregate_type,
            aggregate_id,
            op,
        } => {
            let target = aggregates::Target::new(&aggregate_type, &aggregate_id)?;
            aggregates::handle(req, env, config, &target, op, &admitted).await
        }
        Route::Consumers(route) => consumers::handle(req, env, config, route, &admitted).await,
        Route::Trace { correlation_id } => {
            trace::handle(req, env, config, &correlation_id, &admitted).await
        }
        Route::Projection(route) => projections::handle(req, env, route, &admitted).await,
        Route::Stream(route) => stream::handle(req, env, config, route, &admitted).await,
        Route::PartitionAdmin { partition, action } => {
            stream::admin(&req, env, config, &partition, action, &admitted).await
        }
        Route::Ingest(route) => ingest::handle(req, env, config, route, &admitted).await,
        Route::Integrations => ingest::integrations(req, env, config, None, &admitted).await,
        Route::Integration { name, delete } => {
            ingest::integrations(req, env, config, Some((name, delete)), &admitted).await
        }
        Route::KnowledgeSearch => knowledge::search(req, env, config, &admitted).await,
    }
}

/// Reads the body, refusing more than `limit` bytes (413) whatever `Content-Length` says:
/// the stream is read chunk by chunk and abandoned as soon as it passes the limit, so a
/// chunked body cannot make the Worker buffer more than `limit` bytes.
///
/// A body with a `Content-Length` within `limit` is read in one `arrayBuffer()` call instead:
/// HTTP framing holds it to that length, and the chunk-by-chunk reader costs several runtime
/// crossings per chunk (5% of the isolate's time on the command path in a CPU profile).
pub(crate) async fn read_body(req: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    let unreadable = |_| ApiError::bad_request("the request body could not be read");
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length <= limit) {
        return req.bytes().await.map_err(unreadable);
    }
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(body); // no body at all
    };
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(unreadable)?);
        if body.len() > limit {
            // Read on without keeping anything, so a client still sending gets the 413
            // instead of a reset connection — within a bound of bytes and of time, past
            // which it does not (a body that never ends is answered all the same).
            let mut drained = body.len();
            drop(body);
            let drain = async {
                while drained < DRAIN_LIMIT_BYTES {
                    match stream.next().await {
                        Some(Ok(chunk)) => drained += chunk.len(),
                        _ => break,
                    }
                }
            };
            let deadline = worker::Delay::from(DRAIN_LIMIT_TIME);
            futures_util::pin_mut!(drain);
            let _ = futures_util::future::select(drain, deadline).await;
            return Err(ApiError::body_too_large(limit));
        }
    }
    Ok(body)
}

/// How much of an oversized body is read (and discarded) before answering 413.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// How long an oversized body is read before answering 413.
const DRAIN_LIMIT_TIME: std::time::Duration = std::time::Duration::from_secs(1);
