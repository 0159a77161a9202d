//! Edgeloop's Worker entry point.
//!
//! A request goes through three steps, each in its own module:
//! 1. [`routes::match_route`] — a pure matcher, the only reader of a public path — names
//!    the route (404 for unknown paths, 405 for a wrong method) and the scope it needs;
//! 2. [`gate::admit`] is the one place every request passes before it is handled: body
//!    limits, authentication (bearer JWT), authorization (scopes) and the tenant;
//! 3. [`handlers::dispatch`] validates the request and calls the Durable Object that owns
//!    the data with a typed [`durable::call::Call`].
//!
//! [`cors`] wraps the whole exchange for browsers. Every error is a
//! [`durable::ApiError`] with the documented status and JSON body.
//!
//! # Layout
//! * [`routes`] — the route table (method + path → route + scope).
//! * [`gate`] — limits, authentication, authorization, tenancy.
//! * [`handlers`] — one module per area (aggregates, …).
//! * [`cors`] — allowed origins, preflights, response headers.

pub mod cors;
pub mod gate;
pub mod handlers;
pub mod routes;

#[cfg(test)]
mod openapi_tests;

use durable::Config;
use worker::{Context, Env, Method, Request, Response, event};

// The Durable Object classes this Worker exports (see `wrangler.toml`).
pub use durable::{AggregateObject, ConsumerGroup, Projector, Reactor, StreamPartition};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let cors = cors::Cors::from_env(&env);
    let origin = req.headers().get("origin").ok().flatten();
    if req.method() == Method::Options {
        return Ok(cors.preflight(origin.as_deref(), &req));
    }
    let response = match handle(req, &env).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    Ok(cors.decorate(response, origin.as_deref()))
}

async fn handle(req: Request, env: &Env) -> durable::ApiResult<Response> {
    let config = Config::from_env(env);
    let path = req.path();
    let route = routes::match_route(&req.method(), &path).map_err(|e| e.into_error(&path))?;
    let admitted = gate::admit(&req, env, &config, &route)?;
    handlers::dispatch(req, env, &config, route, admitted).await
}
