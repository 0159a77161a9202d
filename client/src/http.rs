//! [`Client`]: where the server is, who is asking, how to retry — and the raw request
//! layer the typed methods are built on.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Url};

use crate::retry::{self, Failure, RetryPolicy};
use crate::{Error, Reply};

/// How long one HTTP request (or WebSocket handshake) may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Edgeloop deployment.
///
/// Cheap to clone (the connection pool is shared), safe to share between tasks. It
/// carries a bearer token, sent as `Authorization: Bearer …` on every request (and as a
/// WebSocket subprotocol by subscriptions); a token is minted by whoever runs the
/// deployment (`edgeloop token …` for development).
///
/// Typed methods — [`Client::command`], [`Client::state`], [`Client::events`],
/// [`Client::subscribe`] … — retry transient failures under the client's [`RetryPolicy`].
/// The raw layer — [`Client::request`], [`Client::send`], [`Client::upgrade`] — sends
/// exactly one request and returns whatever came back.
#[derive(Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
    retry: RetryPolicy,
    request_timeout: Duration,
    minimal_answers: bool,
}

/// Never prints the token: a client is often logged, a bearer token must not be.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the deployment at `base_url` (`http://127.0.0.1:8787`,
    /// `https://edgeloop.example.com`, or with a path prefix), without a token.
    ///
    /// Errors: [`Error::InvalidArgument`] when `base_url` is not an `http(s)` URL without
    /// query or fragment. (`https` needs a TLS feature of `reqwest`; see the crate docs.)
    pub fn new(base_url: &str) -> Result<Client, Error> {
        let base = Url::parse(base_url)
            .map_err(|e| Error::InvalidArgument(format!("base URL `{base_url}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(Error::InvalidArgument(format!(
                "base URL `{base_url}` must be http(s)://host[:port][/prefix]"
            )));
        }
        let http = reqwest::Client::builder().build().map_err(from_reqwest)?;
        Ok(Client {
            base,
            http,
            token: None,
            retry: RetryPolicy::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            minimal_answers: false,
        })
    }

    /// The same client with a bearer token (a JWT) for every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    /// The same client without a token (only `/healthz` answers it).
    pub fn without_token(mut self) -> Client {
        self.token = None;
        self
    }

    /// The same client with another retry policy for its typed methods
    /// ([`RetryPolicy::none`] to never retry).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Client {
        self.retry = policy;
        self
    }

    /// The same client with another timeout per HTTP request or WebSocket handshake
    /// (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = timeout;
        self
    }

    /// The same client sending through `http`: for proxies, TLS roots, pool sizes. Its own
    /// timeout, if set, applies on top of the client's per-request timeout.
    pub fn with_http(mut self, http: reqwest::Client) -> Client {
        self.http = http;
        self
    }

    /// The same client asking for minimal answers to commands (`Prefer: return=minimal`):
    /// [`CommandResult::events`](crate::CommandResult::events) is then empty, and the
    /// server neither builds nor sends the appended events' envelopes. For bulk writers
    /// that only need the new version.
    pub fn with_minimal_answers(mut self, minimal: bool) -> Client {
        self.minimal_answers = minimal;
        self
    }

    /// Whether commands ask for minimal answers ([`Client::with_minimal_answers`]).
    pub(crate) fn minimal_answers(&self) -> bool {
        self.minimal_answers
    }

    /// The token sent with every request, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL, as given.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The underlying `reqwest` client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    // ---- the raw layer -------------------------------------------------------------

    /// The absolute URL of `path_and_query` (which starts with `/`, sent as it is: no
    /// escaping), under the base URL.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{path_and_query}",
            self.base.as_str().trim_end_matches('/')
        )
    }

    /// A request to `path_and_query` with this client's token and request timeout, to
    /// finish (headers, body) and give to [`Client::send`].
    pub fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        self.authorize(self.http.request(method, self.url(path_and_query)))
    }

    /// Sends `request` once and reads the whole answer, whatever its status.
    ///
    /// Errors: [`Error::Network`] when no complete answer came back;
    /// [`Error::InvalidArgument`] when the request could not be built (a header value
    /// that is not valid in HTTP).
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, Error> {
        let response = request.send().await.map_err(from_reqwest)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // Into the Vec without a copy when the body came whole into one buffer (`bytes`
        // hands its allocation over), which a multi-MiB stream page always does.
        let body = Vec::from(response.bytes().await.map_err(from_reqwest)?);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET path_and_query`, once.
    pub async fn get(&self, path_and_query: &str) -> Result<Reply, Error> {
        self.send(self.request(Method::GET, path_and_query)).await
    }

    /// `GET /healthz`: `Ok` when the Worker answers 200. Retried like any read.
    pub async fn health(&self) -> Result<(), Error> {
        let url = self.endpoint(&["healthz"], &[]);
        self.call(None, || self.http.get(url.clone()))
            .await
            .map(|_| ())
    }

    // ---- for the typed layer -----------------------------------------------------

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.timeout(self.request_timeout);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The URL of a route: `segments` percent-encoded (so an id can never change the
    /// route), then `query`.
    pub(crate) fn endpoint(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path (checked in Client::new)")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends the request `build` makes under the retry policy: a fresh request per
    /// attempt, each with at most the time left. Returns the first 2xx reply, or the error.
    pub(crate) async fn call(
        &self,
        idempotency_key: Option<&str>,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, Error> {
        retry::run(self.retry, idempotency_key, |remaining| {
            let request = self
                .authorize(build())
                .timeout(self.request_timeout.min(remaining));
            async move {
                let reply = self.send(request).await?;
                if reply.is_success() {
                    Ok(reply)
                } else {
                    Err(Failure {
                        retry_after: reply.retry_after(),
                        error: Error::from_answer(reply.status, &reply.body),
                    })
                }
            }
        })
        .await
    }
}

/// A `reqwest` failure: a request that could not be built is the caller's argument;
/// anything else happened on the way (connect, send, timeout, reading the body).
pub(crate) fn from_reqwest(error: reqwest::Error) -> Error {
    if error.is_builder() {
        Error::InvalidArgument(error.to_string())
    } else {
        Error::network(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_http_without_query() {
        assert!(Client::new("http://127.0.0.1:8787").is_ok());
        assert!(Client::new("https://edgeloop.example.com/prefix/").is_ok());
        for bad in [
            "127.0.0.1:8787",
            "ftp://x",
            "http://x/?a=1",
            "http://x/#f",
            "",
        ] {
            assert!(
                matches!(Client::new(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoints_escape_segments_so_an_id_cannot_change_the_route() {
        let c = Client::new("http://h:1/").unwrap();
        let url = c.endpoint(&["v1", "aggregates", "board", "a/b?c#d%"], &[]);
        assert_eq!(
            url.as_str(),
            "http://h:1/v1/aggregates/board/a%2Fb%3Fc%23d%25"
        );
        let prefixed = Client::new("https://h/edge/").unwrap();
        let url = prefixed.endpoint(
            &["v1", "x"],
            &[("as_of", "2024-01-01T00:00:00.000Z".into())],
        );
        assert_eq!(
            url.as_str(),
            "https://h/edge/v1/x?as_of=2024-01-01T00%3A00%3A00.000Z"
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = Client::new("http://h:1")
            .unwrap()
            .with_token("secret.jwt.value");
        let printed = format!("{c:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn raw_urls_are_sent_as_given() {
        let c = Client::new("http://h:1/").unwrap();
        assert_eq!(
            c.url("/v1/a?after=1&x=%zz"),
            "http://h:1/v1/a?after=1&x=%zz"
        );
    }
}
