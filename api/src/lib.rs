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

use std::cell::OnceCell;
use std::rc::Rc;

use durable::Config;
use worker::{Context, Env, Method, Request, Response, event};

// The Durable Object classes this Worker exports (see `wrangler.toml`).
pub use durable::{AggregateObject, ConsumerGroup, Projector, Reactor, StreamPartition};

/// What the Worker reads from its environment: read on an isolate's first request and kept
/// for its life. An isolate runs one version of the Worker, whose vars and secrets never
/// change under it (a deploy or `wrangler secret put` makes a new version, served by new
/// isolates; locally, changing `.dev.vars` restarts the runtime). Read per request, the
/// ~25 vars — each a call into the runtime — were 1–2% of the isolate on the command path.
struct Settings {
    config: Config,
    cors: cors::Cors,
    secret: String,
}

thread_local! {
    static SETTINGS: OnceCell<Rc<Settings>> = const { OnceCell::new() };
}

fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| {
            Rc::new(Settings {
                config: Config::from_env(env),
                cors: cors::Cors::from_env(env),
                secret: gate::secret(env),
            })
        })
        .clone()
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let settings = settings(&env);
    let origin = req.headers().get("origin").ok().flatten();
    if req.method() == Method::Options {
        return Ok(settings.cors.preflight(origin.as_deref(), &req));
    }
    let response = match handle(req, &env, &settings).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    Ok(settings.cors.decorate(response, origin.as_deref()))
}

async fn handle(req: Request, env: &Env, settings: &Settings) -> durable::ApiResult<Response> {
    let path = req.path();
    let route = routes::match_route(&req.method(), &path).map_err(|e| e.into_error(&path))?;
    let admitted = gate::admit(&req, &settings.secret, &settings.config, &route)?;
    handlers::dispatch(req, env, &settings.config, route, admitted).await
}
