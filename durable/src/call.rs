//! The typed hand-off from the Worker to a Durable Object.
//!
//! The Worker is the only place that reads a public path: it matches the route,
//! authenticates, validates the parameters and the body, and then calls the object with
//! a [`Call`] — the caller and a typed operation — serialized as JSON into the
//! [`CALL_HEADER`] of an internal request. A command's body travels as the request body
//! (already decoded and validated by the Worker, re-encoded as JSON). Objects read the
//! call and nothing else from the request: not its path, not its query.
//!
//! Why a header and not workers-rs' RPC: a WebSocket upgrade must reach the object as an
//! HTTP request (the object answers 101 with its end of the pair), and one mechanism for
//! every operation keeps a single code path. The Worker overwrites the header on every
//! request, so a client cannot forge a call.
//!
//! Header values must be ASCII, while an actor (`sub`) may be any Unicode text, so the
//! JSON is written with every non-ASCII character escaped (`\uXXXX`), which any JSON
//! parser reads back unchanged.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Headers, Method, Request, RequestInit, Response, Stub};

use crate::encoding::Encoding;
use crate::error::{ApiError, ApiResult};

/// The header carrying a [`Call`] into an object.
pub const CALL_HEADER: &str = "x-edgeloop-call";

/// Diagnostic response header naming the object instance that answered (it changes
/// when the runtime re-creates the object, e.g. after eviction).
pub const INSTANCE_HEADER: &str = "x-edgeloop-instance";

/// Who is calling, as established by the Worker's gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The token's `sub`, recorded as the events' actor.
    pub actor: String,
    /// When the token stops being accepted: its `exp` plus auth's clock leeway (Unix
    /// seconds). Sockets opened with it are closed then.
    pub expires_at: u64,
}

/// A call: the caller and the operation `Op` (one enum per object kind). `caller` is
/// `None` for calls one object makes to another (an aggregate forwarding its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call<Op> {
    pub caller: Option<Caller>,
    pub op: Op,
}

impl<Op> Call<Op> {
    /// The authenticated caller an operation needs; its absence is our bug (500).
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("a client operation without a caller"))
    }
}

/// The operations of a stream partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartitionOp {
    /// Take the `stream::ForwardBatch` in the body (MessagePack), from an aggregate.
    /// 200 `ForwardAck`; 409 `ForwardRefusal::Gap`; 503 `ForwardRefusal::Paused`.
    Append,
    /// A page of the partition after `after`, narrowed by `filter`.
    Read {
        after: u64,
        limit: usize,
        filter: stream::StreamFilter,
        encoding: Encoding,
    },
    /// Open a live socket from `after`.
    Subscribe {
        after: u64,
        protocol: Option<String>,
    },
    /// Head, oldest hot and retained offsets, pause state.
    Status,
    /// Refuse forwarded events until resumed (operations, and how tests make a partition
    /// unable to take events).
    Pause,
    Resume,
    /// Seal and archive what the policy allows now, instead of waiting for the alarm.
    Archive,
}

/// The operations of an aggregate object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AggregateOp {
    /// Run the command in the request body (JSON, validated by the Worker). `minimal`:
    /// answer without `events` (`Prefer: return=minimal`).
    Command {
        idempotency_key: Option<String>,
        #[serde(default)]
        minimal: bool,
    },
    /// Run the batch in the request body (JSON, validated by the Worker), all or none.
    /// `minimal` as for a command.
    Batch {
        idempotency_key: Option<String>,
        #[serde(default)]
        minimal: bool,
    },
    /// The state now, at a version, or as of a time (Unix ms).
    State {
        at_version: Option<u64>,
        as_of_ms: Option<i64>,
    },
    /// A page of the log: `after < seq < before`, forward or newest first.
    Events {
        after: u64,
        before: Option<u64>,
        limit: usize,
        backward: bool,
        encoding: Encoding,
    },
    /// Open a live socket from `after`; answer the upgrade with `protocol` if given.
    Subscribe {
        after: u64,
        protocol: Option<String>,
    },
}

/// The operations of a projector (one per tenant and projection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProjectorOp {
    /// A partition took new events: catch up (from the partition, after the alarm).
    Wake { partition: u32 },
    /// Version, state, checkpoints, heads and lag of every generation; mirror state.
    Status,
    /// One document. With `consistency`, wait (bounded) until the command behind the token
    /// is folded in.
    Get {
        doc_id: String,
        consistency: Option<ConsistencyToken>,
    },
    /// A page of documents, newest first, filtered by the projection's list filters.
    List {
        filters: Vec<(String, String)>,
        limit: usize,
        after: Option<String>,
        consistency: Option<ConsistencyToken>,
    },
    /// Open a live socket on one document: its current body, then every change.
    Subscribe {
        doc_id: String,
        after: u64,
        protocol: Option<String>,
    },
    /// Build the next generation from offset 0 beside the live one (scope admin).
    Rebuild,
    /// Full-text search of a searchable projection (the knowledge base): `query` is an FTS5
    /// expression the Worker built from the user's text, `kinds` narrows (empty: all).
    /// `vector_hits` are doc ids a vector index ranked for the same text, best first (empty
    /// unless Vectorize is configured): keyword and vector ranks are then fused.
    Search {
        query: Option<String>,
        kinds: Vec<String>,
        limit: usize,
        consistency: Option<ConsistencyToken>,
        vector_hits: Vec<String>,
    },
}

/// What a command's answer carries so that a projection read can wait for its effect:
/// the aggregate and the version the command left it at. On the wire (the command's
/// `consistency_token`, a read's `?consistency=`) it is `"{type}/{id}@{version}"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyToken {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

impl ConsistencyToken {
    /// Parses `"{type}/{id}@{version}"` (ids may contain `@`: the last one splits).
    pub fn parse(text: &str) -> Option<Self> {
        let (aggregate, version) = text.rsplit_once('@')?;
        let (aggregate_type, aggregate_id) = aggregate.split_once('/')?;
        if aggregate_type.is_empty() || !crate::names::valid_aggregate_id(aggregate_id) {
            return None;
        }
        Some(Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version: version
                .parse()
                .ok()
                .filter(|_| version.bytes().all(|b| b.is_ascii_digit()))?,
        })
    }
}

impl std::fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}@{}",
            self.aggregate_type, self.aggregate_id, self.version
        )
    }
}

impl<Op: Serialize> Call<Op> {
    /// Sends the call to an object. `upgrade` marks a WebSocket upgrade (the object
    /// answers 101); `body` is the command body, if any.
    pub async fn send(
        &self,
        stub: &Stub,
        upgrade: bool,
        body: Option<Vec<u8>>,
    ) -> ApiResult<Response> {
        let headers = Headers::new();
        headers.set(CALL_HEADER, &ascii_json(self)?)?;
        let mut init = RequestInit::new();
        if upgrade {
            headers.set("upgrade", "websocket")?;
            init.with_method(Method::Get);
        } else {
            init.with_method(Method::Post);
        }
        if let Some(body) = body {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        init.with_headers(headers);
        let request = Request::new_with_init("https://object.internal/", &init)?;
        Ok(stub.fetch_with_request(request).await?)
    }
}

impl<Op: DeserializeOwned> Call<Op> {
    /// Reads the call an object was sent. A request without a valid call did not come
    /// from the Worker: that is our bug, answered 500.
    pub fn from_request(req: &Request) -> ApiResult<Self> {
        let text = req
            .headers()
            .get(CALL_HEADER)?
            .ok_or_else(|| ApiError::internal("a request reached an object without a call"))?;
        serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("bad call: {e}")))
    }
}

/// An object's answer: the error's documented response if it failed, with the
/// [`INSTANCE_HEADER`] of the object instance that answered either way.
pub fn answer(result: ApiResult<Response>, instance: &str) -> worker::Result<Response> {
    let mut response = result.unwrap_or_else(ApiError::into_response);
    let _ = response.headers_mut().set(INSTANCE_HEADER, instance);
    Ok(response)
}

/// JSON with every non-ASCII character escaped, so it fits in a header value.
pub fn ascii_json(value: &impl Serialize) -> ApiResult<String> {
    let text = serde_json::to_string(value).map_err(ApiError::internal)?;
    if text.is_ascii() {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    Ok(out)
}

/// The whole body of a response (from another object, or a binding's fetch), read by the
/// runtime in one `arrayBuffer()` call. `worker::Response::bytes` pulls a streamed body
/// chunk by chunk through a stream reader in wasm, several runtime crossings per chunk; the
/// CPU profile of a projector's catch-up showed that reader among its top costs.
pub async fn body_bytes(response: Response) -> worker::Result<Vec<u8>> {
    let response: worker::web_sys::Response = response.into();
    let buffer = worker::wasm_bindgen_futures::JsFuture::from(response.array_buffer()?).await?;
    Ok(worker::js_sys::Uint8Array::new(&buffer).to_vec())
}

/// A JSON body read with [`body_bytes`]. Errors: the body is unreadable or not `T`.
pub async fn body_json<T: DeserializeOwned>(response: Response) -> worker::Result<T> {
    let bytes = body_bytes(response).await?;
    serde_json::from_slice(&bytes).map_err(|e| worker::Error::RustError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_tokens_round_trip() {
        let token = ConsistencyToken {
            aggregate_type: "board".into(),
            aggregate_id: "b@1".into(),
            version: 17,
        };
        assert_eq!(token.to_string(), "board/b@1@17");
        assert_eq!(ConsistencyToken::parse("board/b@1@17"), Some(token));
        for bad in [
            "board/b1",
            "board/b1@",
            "board/b1@x",
            "board/b1@+1",
            "/b1@1",
            "board@1",
            "board/a:b@1",
        ] {
            assert_eq!(ConsistencyToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn calls_round_trip_through_ascii_json() {
        let call = Call {
            caller: Some(Caller {
                actor: "zoë 🦀".into(),
                expires_at: 1_700_000_000,
            }),
            op: AggregateOp::Events {
                after: 3,
                before: None,
                limit: 100,
                backward: false,
                encoding: Encoding::Ndjson,
            },
        };
        let text = ascii_json(&call).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert_eq!(
            serde_json::from_str::<Call<AggregateOp>>(&text).unwrap(),
            call
        );
    }
}
