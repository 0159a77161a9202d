//! The gate: the one place every request passes before a handler runs.
//!
//! In order: the body-size limit (413), then — for every route but `/healthz` —
//! authentication (401), authorization by scope (403), and the tenant that namespaces
//! everything the request touches.
//!
//! Where the token comes from: `Authorization: Bearer <jwt>` everywhere. Browsers cannot
//! set headers on a WebSocket, so socket routes also accept the token as a
//! `Sec-WebSocket-Protocol` entry `bearer.<jwt>` offered next to `edgeloop.v1` (preferred:
//! it stays out of URLs, logs and browser history), or as an `access_token` query parameter
//! (for clients that cannot set subprotocols).

use auth::{AuthError, Principal, WS_PROTOCOL};
use durable::{ApiError, ApiResult, Config};
use worker::{Env, Request};

use crate::routes::Route;

/// What the gate established about an admitted request.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// The caller; `None` only on open routes.
    pub principal: Option<Principal>,
    /// The subprotocol a WebSocket upgrade must answer with.
    pub ws_protocol: Option<&'static str>,
}

impl Admitted {
    /// The authenticated caller. Every route that reaches data is authenticated, so a
    /// missing principal there is a bug, answered 500 rather than served untenanted.
    pub fn principal(&self) -> ApiResult<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::internal("a data route was admitted without a principal"))
    }
}

/// The secret binding tokens are verified with.
const SECRET: &str = "AUTH_SECRET";

/// Admits `req` to `route`: its body within the route's limit, and for a route that needs
/// a scope, a bearer token signed with `secret` (the `AUTH_SECRET` binding, [`secret`])
/// that grants it. Errors: 413, 401 (no or bad token, or no secret configured), 403.
pub fn admit(req: &Request, secret: &str, config: &Config, route: &Route) -> ApiResult<Admitted> {
    if let Some(length) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<u64>().ok())
        && length > route.body_limit(config.max_body_bytes) as u64
    {
        return Err(ApiError::body_too_large(
            route.body_limit(config.max_body_bytes),
        ));
    }
    let Some(scope) = route.scope() else {
        return Ok(Admitted::default());
    };
    let (token, ws_protocol) = credentials(req, route)?;
    let token = token.ok_or_else(|| unauthorized(AuthError::Missing))?;
    let now = (durable::clock::now_ms().max(0) / 1000) as u64;
    let principal = auth::verify(&token, secret.as_bytes(), now).map_err(|e| {
        if e == AuthError::Unconfigured {
            worker::console_error!(
                "token verification is not configured (is AUTH_SECRET set?): every authenticated route is refused"
            );
        }
        unauthorized(e)
    })?;
    principal.require(scope).map_err(|e| {
        ApiError::forbidden(e.to_string()).with_detail("required_scope", scope.to_string())
    })?;
    Ok(Admitted {
        principal: Some(principal),
        ws_protocol,
    })
}

fn unauthorized(e: AuthError) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

/// The `AUTH_SECRET` binding (a secret, or locally a var); empty when it is not set, which
/// refuses every token.
pub fn secret(env: &Env) -> String {
    env.secret(SECRET)
        .map(|s| s.to_string())
        .or_else(|_| env.var(SECRET).map(|v| v.to_string()))
        .unwrap_or_default()
}

/// The presented token, and the subprotocol to answer a socket upgrade with: a client that
/// offers `edgeloop.v1` gets it back however it authenticates (a handshake answered with no
/// protocol fails in browsers and most clients).
fn credentials(req: &Request, route: &Route) -> ApiResult<(Option<String>, Option<&'static str>)> {
    let offered = match route.is_socket() {
        true => req.headers().get("sec-websocket-protocol")?,
        false => None,
    };
    let offered = offered
        .as_deref()
        .map(auth::parse_ws_protocols)
        .unwrap_or_default();
    let ws_protocol = offered.offers_edgeloop_v1.then_some(WS_PROTOCOL);
    if let Some(header) = req.headers().get("authorization")? {
        let token = auth::bearer_from_header(&header).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
        return Ok((Some(token.to_owned()), ws_protocol));
    }
    if !route.token_in_query() {
        return Ok((None, None));
    }
    if let Some(token) = offered.token {
        if !offered.offers_edgeloop_v1 {
            return Err(ApiError::bad_request(format!(
                "a `bearer.` token in Sec-WebSocket-Protocol must be offered with `{WS_PROTOCOL}`"
            )));
        }
        return Ok((Some(token.to_owned()), ws_protocol));
    }
    let url = req.url()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned());
    Ok((token, ws_protocol))
}
