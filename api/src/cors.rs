//! CORS for browser clients.
//!
//! Allowed origins come from the var `CORS_ALLOWED_ORIGINS`: a comma-separated list of
//! exact origins (`https://app.example.com`), origins with any port
//! (`http://localhost:*`), or `*`. Empty (the production default) allows no cross-origin
//! browser access; `scripts/setup` allows localhost in `.dev.vars` for development.
//! Disallowed origins get no CORS headers, so the browser blocks the response; the request
//! itself is still authenticated like any other.

use worker::{Env, Headers, Request, Response};

/// Request headers a browser may send.
const ALLOW_HEADERS: &str = "authorization, content-type, accept, idempotency-key, prefer";
/// Response headers a browser script may read.
const EXPOSE_HEADERS: &str =
    "retry-after, idempotent-replayed, preference-applied, x-next-after, x-next-before";
const ALLOW_METHODS: &str = "GET, HEAD, POST, OPTIONS";
/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";

#[derive(Debug, Clone, Default)]
pub struct Cors {
    allowed: Vec<String>,
}

impl Cors {
    pub fn from_env(env: &Env) -> Self {
        Self::parse(
            &env.var("CORS_ALLOWED_ORIGINS")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        )
    }

    pub fn parse(list: &str) -> Self {
        Self {
            allowed: list
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|pattern| {
            pattern == "*"
                || pattern == origin
                || pattern.strip_suffix(":*").is_some_and(|base| {
                    origin.strip_prefix(base).is_some_and(|rest| {
                        rest.is_empty()
                            || rest.strip_prefix(':').is_some_and(|p| {
                                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                            })
                    })
                })
        })
    }

    /// Answers a preflight: 204 with the allowances for an allowed origin, a bare 204
    /// otherwise (the browser then refuses the real request).
    pub fn preflight(&self, origin: Option<&str>, _req: &Request) -> Response {
        let headers = Headers::new();
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            let _ = headers.set("access-control-allow-origin", origin);
            let _ = headers.set("access-control-allow-methods", ALLOW_METHODS);
            let _ = headers.set("access-control-allow-headers", ALLOW_HEADERS);
            let _ = headers.set("access-control-max-age", MAX_AGE);
        }
        let _ = headers.set("vary", "Origin");
        Response::empty()
            .map(|r| r.with_status(204).with_headers(headers))
            .unwrap_or_else(|_| durable::ApiError::internal("no response").into_response())
    }

    /// Adds CORS headers to an answer for an allowed origin. WebSocket upgrades are left
    /// alone: browsers do not apply CORS to them (the token is what protects sockets).
    ///
    /// An answer fetched from a Durable Object has immutable headers (setting one fails
    /// silently), so the headers are copied into a fresh, mutable set first.
    pub fn decorate(&self, mut response: Response, origin: Option<&str>) -> Response {
        if response.status_code() == 101 {
            return response;
        }
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            let headers = Headers::new();
            for (name, value) in response.headers().entries() {
                let _ = headers.append(&name, &value);
            }
            let _ = headers.set("access-control-allow-origin", origin);
            let _ = headers.set("access-control-expose-headers", EXPOSE_HEADERS);
            let _ = headers.append("vary", "Origin");
            *response.headers_mut() = headers;
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let cors = Cors::parse("https://app.example.com, http://localhost:*, http://127.0.0.1:*");
        assert!(cors.allows("https://app.example.com"));
        assert!(cors.allows("http://localhost:5173"));
        assert!(cors.allows("http://localhost"));
        assert!(cors.allows("http://127.0.0.1:8787"));
        assert!(!cors.allows("http://localhost.evil.com"));
        assert!(!cors.allows("http://localhost:80x"));
        assert!(!cors.allows("https://app.example.com.evil.com"));
        assert!(!cors.allows("http://evil.com"));
        assert!(!Cors::parse("").allows("http://localhost:5173"));
        assert!(Cors::parse("*").allows("https://anything.example"));
    }
}
