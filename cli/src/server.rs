//! Where the Worker is and who is asking — `--url` and `--token`, shared by every command
//! that talks to a running Worker — and the one-line messages its failures become.

use std::fmt;

use anyhow::anyhow;
use client::{Client, Error};

/// Arguments of every command that talks to a Worker (flatten into its `Args`).
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Base URL of the Edgeloop Worker, e.g. http://127.0.0.1:8787
    #[arg(long, value_name = "URL")]
    url: String,

    /// Bearer token (a JWT; `edgeloop token` mints one) [default: $EDGELOOP_TOKEN]
    #[arg(
        long,
        env = "EDGELOOP_TOKEN",
        hide_env_values = true,
        value_name = "JWT"
    )]
    token: String,
}

// Hand-written so that `{:?}` of the arguments never prints the token.
impl fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerArgs")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl ServerArgs {
    /// A client of the Worker at `--url` carrying `--token`.
    pub fn client(&self) -> anyhow::Result<Client> {
        let client = Client::new(&self.url).map_err(|_| {
            anyhow!(
                "bad --url `{}`: expected http(s)://host[:port][/prefix]",
                self.url
            )
        })?;
        Ok(client.with_token(self.token.trim()))
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `error` from a request to `url` as one line that says what to do about it. `scope` is
/// the scope the command needs (for a 401/403).
pub fn explain(error: Error, url: &str, scope: &str) -> anyhow::Error {
    let last = error.last();
    let message = match (last.status(), last) {
        (Some(401), Error::Api { message, .. }) => format!(
            "the server refused the token (401 unauthorized: {message}); mint a valid one, \
             e.g. `edgeloop token --tenant T --scopes \"{scope}\"`"
        ),
        (Some(403), Error::Api { message, .. }) => format!(
            "the token lacks the `{scope}` scope (403 forbidden: {message}); mint one with \
             --scopes \"{scope}\""
        ),
        (Some(400), Error::Api { message, .. }) => {
            format!("the server refused the request (400 bad_request): {message}")
        }
        (_, Error::Network(_)) => {
            let attempts = match &error {
                Error::GaveUp {
                    attempts, elapsed, ..
                } => format!(" (gave up after {attempts} attempts in {elapsed:.1?})"),
                _ => String::new(),
            };
            format!("cannot reach the Edgeloop server at {url}{attempts}: {last}")
        }
        (_, Error::Unexpected { status, body }) => format!(
            "{url} answered HTTP {status} without Edgeloop's error body (is it an Edgeloop \
             Worker?): {}",
            one_line(body)
        ),
        _ => error.to_string(),
    };
    anyhow!(one_line(&message))
}

/// Newlines (from a server's HTML page, say) folded into spaces: errors are one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn api(status: u16, code: &str, message: &str) -> Error {
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        Error::from_answer(status, body.to_string().as_bytes())
    }

    #[test]
    fn refused_tokens_and_bad_filters_say_so_in_one_line() {
        let url = "http://h:1";
        let expired = explain(api(401, "unauthorized", "token expired"), url, "replay");
        assert!(
            expired
                .to_string()
                .starts_with("the server refused the token (401"),
            "{expired}"
        );
        let scope = explain(api(403, "forbidden", "needs replay"), url, "replay");
        assert!(
            scope.to_string().contains("lacks the `replay` scope"),
            "{scope}"
        );
        let filter = explain(
            api(400, "bad_request", "`since` must be before `until`"),
            url,
            "replay",
        );
        assert!(
            filter
                .to_string()
                .ends_with("`since` must be before `until`"),
            "{filter}"
        );
        let html = Error::from_answer(502, b"<html>\n<b>Bad gateway</b>\n</html>");
        let proxy = explain(html, url, "replay").to_string();
        assert!(
            !proxy.contains('\n') && proxy.contains("HTTP 502"),
            "{proxy}"
        );
    }

    #[test]
    fn an_unreachable_server_is_named_with_the_retries_spent() {
        let refused = Error::GaveUp {
            attempts: 5,
            elapsed: Duration::from_millis(1500),
            idempotency_key: None,
            last: Box::new(Error::Network("connection refused".into())),
        };
        let message = explain(refused, "http://127.0.0.1:9", "replay").to_string();
        assert!(
            message.starts_with(
                "cannot reach the Edgeloop server at http://127.0.0.1:9 (gave up after 5 attempts"
            ),
            "{message}"
        );
        assert!(message.ends_with("connection refused"), "{message}");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let args = ServerArgs {
            url: "http://h:1".into(),
            token: "secret.jwt.value".into(),
        };
        assert!(!format!("{args:?}").contains("secret"));
    }

    #[test]
    fn a_bad_url_is_refused_before_any_request() {
        let args = ServerArgs {
            url: "127.0.0.1:8787".into(),
            token: "t".into(),
        };
        let error = args.client().unwrap_err().to_string();
        assert!(error.starts_with("bad --url `127.0.0.1:8787`"), "{error}");
    }
}
