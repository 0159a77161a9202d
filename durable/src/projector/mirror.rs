//! The Convex mirror: the serving generation's documents, copied into a Convex deployment
//! through its HTTP API (`POST {CONVEX_URL}/api/mutation`, `Authorization: Convex <key>`,
//! function `mirror:applyBatch` in `convex/mirror.ts`).
//!
//! Per partition, Convex keeps a cursor: the offset through which its documents reflect
//! the stream. A batch says where it continues from (`after`) and how far it goes
//! (`through`), and carries, for every document the events in `(after, through]` touched,
//! the document's *current* body (or `null` once deleted) — documents are whole bodies, so
//! sending the newest one is always right, and a batch is idempotent. Convex refuses a
//! batch whose `after` is not its cursor (a gap) and names the cursor it has; the mirror
//! then continues from there. So the mirror needs no queue of its own: the stream is the
//! queue, and a Convex deployment that lost data (or a new one) is healed by resending
//! from its cursor. One request is in flight per partition (the alarm runs them in
//! turn); batches are bounded in documents and bytes; network errors and 5xx back off.

use std::collections::BTreeMap;

use domain::EventEnvelope;
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Fetch, Headers, Method, Request, RequestInit};

use super::Projector;
use crate::call::{Call, PartitionOp};
use crate::clock::now_ms;
use crate::encoding::Encoding;
use crate::error::{ApiError, ApiResult};
use crate::names::ObjectName;

/// The secret holding the Convex deploy key.
pub const DEPLOY_KEY: &str = "CONVEX_DEPLOY_KEY";

/// Most documents per batch, and the body bytes after which a batch stops growing.
const MAX_DOCUMENTS: usize = 500;
const MAX_BYTES: usize = 1024 * 1024;

/// Most batches per partition per alarm (the alarm comes back for the rest).
const MAX_ROUNDS: usize = 20;

/// How often, at most, an idle partition's cursor is checked against the one Convex holds
/// (ms). A deployment that lost data (restored, recreated) is noticed this way even when no
/// new event would make it refuse a batch.
const VERIFY_EVERY_MS: i64 = 5_000;

/// A stream page as the partition answers it in MessagePack: the events, the cursor to
/// continue after (absent at the head) and the head.
#[derive(Deserialize)]
struct Page {
    events: Vec<EventEnvelope>,
    next_after: Option<u64>,
    head: u64,
}

/// What Convex's HTTP API answers (HTTP 200 either way).
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Answer {
    Success {
        value: Value,
    },
    Error {
        #[serde(rename = "errorMessage")]
        error_message: String,
        #[serde(rename = "errorData", default)]
        error_data: Option<Value>,
    },
}

/// The mirror's configuration, when both the URL and the key are set and the projection
/// is one Convex holds (`Projection::mirrored`).
fn target(projector: &Projector) -> Option<(String, String)> {
    let (_, projection) = projector.identity().ok()?;
    if !projection.mirrored() {
        return None;
    }
    let url = projector.config().convex_url.clone()?;
    let env = projector.env();
    let key = env
        .secret(DEPLOY_KEY)
        .map(|s| s.to_string())
        .or_else(|_| env.var(DEPLOY_KEY).map(|v| v.to_string()))
        .ok()
        .filter(|k| !k.is_empty())?;
    Some((url, key))
}

/// The mirror's state for `/v1/projections`: `null` when Convex is not configured.
pub fn status(projector: &Projector) -> ApiResult<Value> {
    let Some((url, _)) = target(projector) else {
        return Ok(Value::Null);
    };
    let partitions = projector.with_store(|s| {
        let (generation, _) = s.active().map_err(ApiError::internal)?;
        let mut out = Vec::new();
        for p in s.mirror_status().map_err(ApiError::internal)? {
            let partition = p["partition"].as_u64().unwrap_or(0) as u32;
            let checkpoint = s
                .checkpoint(generation, partition)
                .map_err(ApiError::internal)?;
            let mut p = p;
            p["lag"] = json!(checkpoint.saturating_sub(p["cursor"].as_u64().unwrap_or(0)));
            out.push(p);
        }
        Ok(out)
    })?;
    Ok(json!({ "url": url, "partitions": partitions }))
}

/// Mirrors what Convex lacks. Returns when to try again after a failure.
pub async fn run(projector: &Projector) -> Option<i64> {
    let (url, key) = target(projector)?;
    let partitions = projector.config().partitions().ok()?;
    let mut retry_at: Option<i64> = None;
    for partition in partitions.partitions() {
        match mirror_partition(projector, &url, &key, partition).await {
            Ok(None) => {}
            Ok(Some(at)) => retry_at = Some(retry_at.map_or(at, |r| r.min(at))),
            Err(error) => {
                let attempts = projector
                    .with_store(|s| {
                        s.mirror_failed(partition, &error.message)
                            .map_err(ApiError::internal)
                    })
                    .unwrap_or(1);
                let backoff = 200u64
                    .saturating_mul(1 << attempts.min(10).saturating_sub(1))
                    .min(30_000) as i64;
                if attempts == 1 || attempts.is_multiple_of(10) {
                    worker::console_warn!(
                        "mirroring partition {partition} into Convex failed ({attempts} in a row): {}",
                        error.message
                    );
                }
                let at = now_ms() + backoff;
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
            }
        }
    }
    retry_at
}

/// Sends one partition's missing changes. Returns when to come back: to check an idle
/// partition against Convex's cursor, or to send what did not fit in this run.
async fn mirror_partition(
    projector: &Projector,
    url: &str,
    key: &str,
    partition: u32,
) -> ApiResult<Option<i64>> {
    let (tenant, projection) = projector.identity()?;
    let stub = projector
        .env()
        .durable_object(crate::aggregate::PARTITIONS)?
        .id_from_name(&ObjectName::partition(tenant, partition).to_string())?
        .get_stub()?;
    for _ in 0..MAX_ROUNDS {
        let (generation, version, cursor, checkpoint) = projector.with_store(|s| {
            let (generation, version) = s.active().map_err(ApiError::internal)?;
            Ok((
                generation,
                version,
                s.mirror_cursor(partition).map_err(ApiError::internal)?,
                s.checkpoint(generation, partition)
                    .map_err(ApiError::internal)?,
            ))
        })?;
        if cursor >= checkpoint {
            let now = now_ms();
            let verified = projector.mirror_verified_at(partition);
            if now - verified < VERIFY_EVERY_MS {
                return Ok(Some(verified + VERIFY_EVERY_MS));
            }
            projector.set_mirror_verified_at(partition, now);
            let args = json!({ "projection": projection.name(), "partition": partition });
            let held = match call_function(url, key, "query", "mirror:cursor", args).await? {
                Answer::Success { value } => offset_of(&value),
                Answer::Error { error_message, .. } => {
                    return Err(ApiError::internal(format!(
                        "Convex cursor query: {error_message}"
                    )));
                }
            };
            match held {
                Some(held) if held < cursor => {
                    // Convex has less than it acknowledged (data lost): resend from there.
                    projector.with_store(|s| {
                        s.mirror_acknowledged(partition, held)
                            .map_err(ApiError::internal)
                    })?;
                    continue;
                }
                _ => return Ok(None),
            }
        }
        // The events Convex has not seen, up to what the projector has applied; for a
        // projection of one aggregate type, only that type's (as the projector reads them).
        let call = Call {
            caller: None,
            op: PartitionOp::Read {
                after: cursor,
                limit: MAX_DOCUMENTS,
                filter: stream::StreamFilter {
                    aggregate_type: projection.aggregate_type().map(str::to_owned),
                    ..Default::default()
                },
                encoding: Encoding::MessagePack,
            },
        };
        let response = call.send(&stub, false, None).await?;
        if response.status_code() != 200 {
            return Err(ApiError::internal(format!(
                "partition {partition} answered {}",
                response.status_code()
            )));
        }
        let page: Page = rmp_serde::from_slice(&crate::call::body_bytes(response).await?)
            .map_err(|e| ApiError::internal(format!("a stream page: {e}")))?;
        let mut touched: BTreeMap<String, u64> = BTreeMap::new();
        let mut through = cursor;
        let mut whole = true;
        for event in &page.events {
            let offset = event.position.map_or(0, |p| p.offset);
            if offset > checkpoint {
                break;
            }
            if touched.len() >= MAX_DOCUMENTS {
                whole = false;
                break;
            }
            for doc_id in projection.document_ids(event) {
                touched.insert(doc_id, offset);
            }
            through = offset;
        }
        if whole {
            // Every event of the page up to the checkpoint is in the batch, so it also
            // covers what the partition looked at and left out (a filtered read), up to
            // what the projector has applied.
            through = through.max(page.next_after.unwrap_or(page.head).min(checkpoint));
        }
        if through == cursor {
            return Ok(None); // nothing readable yet
        }
        let mut changes: Vec<(u64, String, Value)> = projector.with_store(|s| {
            let mut changes = Vec::new();
            for (doc_id, offset) in &touched {
                let body = s
                    .document(generation, doc_id)
                    .map_err(ApiError::internal)?
                    .map_or(Value::Null, |d| d.body);
                changes.push((*offset, doc_id.clone(), body));
            }
            Ok(changes)
        })?;
        changes.sort_by_key(|(offset, _, _)| *offset);
        let mut bytes = 0;
        let mut cut = changes.len();
        for (i, (_, _, body)) in changes.iter().enumerate() {
            bytes += body.to_string().len();
            if bytes > MAX_BYTES && i > 0 {
                cut = i;
                break;
            }
        }
        if cut < changes.len() {
            // Stop before the document that passed the byte budget; go on from there.
            through = changes[cut].0 - 1;
            changes.truncate(cut);
        }
        let args = json!({
            "projection": projection.name(),
            "version": version,
            "partition": partition,
            "after": cursor,
            "through": through,
            "changes": changes
                .iter()
                .map(|(offset, doc_id, body)| json!({ "offset": offset, "doc_id": doc_id, "body": body }))
                .collect::<Vec<_>>(),
        });
        match call_function(url, key, "mutation", "mirror:applyBatch", args).await? {
            Answer::Success { value } => {
                let held = offset_of(&value["cursor"]).unwrap_or(through);
                projector.with_store(|s| {
                    s.mirror_acknowledged(partition, held)
                        .map_err(ApiError::internal)
                })?;
            }
            Answer::Error {
                error_message,
                error_data,
            } => {
                let data = error_data.unwrap_or(Value::Null);
                match (data["code"].as_str(), offset_of(&data["expected"])) {
                    (Some("gap"), Some(expected)) => {
                        // Convex holds another cursor (it lost data, or an answer was
                        // lost): continue from where it is.
                        projector.with_store(|s| {
                            s.mirror_acknowledged(partition, expected)
                                .map_err(ApiError::internal)
                        })?;
                    }
                    _ => {
                        return Err(ApiError::internal(format!(
                            "Convex refused the batch: {error_message}"
                        )));
                    }
                }
            }
        }
    }
    Ok(Some(now_ms()))
}

/// An offset in a Convex answer: Convex numbers are floats in JSON (`4.0`).
fn offset_of(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// `POST {url}/api/{kind}` (`mutation` or `query`) with Convex's JSON shape; network errors
/// and non-200 answers are errors (retried by the caller), function errors are an
/// [`Answer::Error`].
async fn call_function(
    url: &str,
    key: &str,
    kind: &str,
    path: &str,
    args: Value,
) -> ApiResult<Answer> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &format!("Convex {key}"))?;
    let body = json!({ "path": path, "args": args, "format": "json" }).to_string();
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request = Request::new_with_init(&format!("{url}/api/{kind}"), &init)?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| ApiError::internal(format!("Convex unreachable: {e}")))?;
    let status = response.status_code();
    let text = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(ApiError::internal(format!(
            "Convex answered {status}: {text}"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("Convex's answer: {e}: {text}")))
}
