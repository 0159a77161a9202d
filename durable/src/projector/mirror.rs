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
//! A stretch with no change for Convex moves its cursor at most once a second
//! ([`Unsent`]).

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

/// How long at most Convex's cursor stays behind a stretch the mirror has read and found
/// nothing to send for (ms). A projection of one aggregate type (`board_summary`) finds
/// such stretches in every run while other types flow; each sent at once was one Convex
/// function call per projector wake that carried no change, only a cursor.
const EMPTY_BATCH_EVERY_MS: i64 = 1_000;

/// A stretch past Convex's cursor that holds no change for it: offsets in
/// `(acked, through]`, read first at `since_ms` (Unix ms). Kept in memory (lost with the
/// instance, which then reads the stretch again) and trusted only while the stored cursor
/// is still `acked` and the serving generation still `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsent {
    pub generation: u64,
    pub acked: u64,
    pub through: u64,
    pub since_ms: i64,
}

impl Unsent {
    /// Whether it still continues Convex's cursor `acked` in `generation`.
    fn continues(&self, generation: u64, acked: u64) -> bool {
        self.generation == generation && self.acked == acked && self.through > acked
    }

    /// When it is to be sent as an empty batch, if nothing with changes carries it first.
    fn due_at(&self) -> i64 {
        self.since_ms + EMPTY_BATCH_EVERY_MS
    }
}

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

/// The mirror's state for `/v1/projections`: `null` when Convex is not configured or
/// the projection is not mirrored (`Projection::mirrored`).
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
/// partition against Convex's cursor, to send what did not fit in this run, or to move
/// Convex's cursor past a stretch with nothing for it ([`Unsent`]).
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
        let unsent = projector
            .mirror_unsent(partition)
            .filter(|u| u.continues(generation, cursor));
        let target = Target {
            url,
            key,
            projection: projection.name(),
            version,
            partition,
            after: cursor,
        };
        if let Some(unsent) = unsent.filter(|u| now_ms() >= u.due_at()) {
            // Convex's cursor moves past the stretch, with no change to carry.
            send_batch(projector, &target, unsent.through, &[]).await?;
            continue;
        }
        // Where reading resumes: past what is known to hold nothing for Convex.
        let from = unsent.map_or(cursor, |u| u.through);
        let come_back = unsent.map(|u| u.due_at());
        if from >= checkpoint {
            if come_back.is_some() {
                return Ok(come_back);
            }
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
                after: from,
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
        let events = page.events.iter().map(|event| {
            let offset = event.position.map_or(0, |p| p.offset);
            (offset, projection.document_ids(event))
        });
        let scanned_through = page.next_after.unwrap_or(page.head);
        let (touches, through) = covered(events, from, checkpoint, scanned_through);
        if through == from {
            return Ok(come_back); // nothing readable yet
        }
        if touches.iter().all(|(_, docs)| docs.is_empty()) {
            projector.set_mirror_unsent(
                partition,
                Some(Unsent {
                    generation,
                    acked: cursor,
                    through,
                    since_ms: unsent.map_or_else(now_ms, |u| u.since_ms),
                }),
            );
            continue;
        }
        let bodies: BTreeMap<&str, Value> = projector.with_store(|s| {
            let mut bodies = BTreeMap::new();
            for doc_id in touches.iter().flat_map(|(_, docs)| docs) {
                if !bodies.contains_key(doc_id.as_str()) {
                    let body = s
                        .document(generation, doc_id)
                        .map_err(ApiError::internal)?
                        .map_or(Value::Null, |d| d.body);
                    bodies.insert(doc_id.as_str(), body);
                }
            }
            Ok(bodies)
        })?;
        let (through, changes) = plan(&touches, through, |doc_id| bodies[doc_id].to_string().len());
        let changes: Vec<(u64, &str, &Value)> = changes
            .into_iter()
            .map(|(offset, doc_id)| (offset, doc_id, &bodies[doc_id]))
            .collect();
        send_batch(projector, &target, through, &changes).await?;
    }
    Ok(Some(now_ms()))
}

/// Where a batch goes and what it continues: a projection's partition in Convex, from
/// Convex's cursor `after`.
struct Target<'a> {
    url: &'a str,
    key: &'a str,
    projection: &'a str,
    version: u32,
    partition: u32,
    after: u64,
}

/// Sends one batch (`mirror:applyBatch`): the `changes` (offset, document, current body)
/// in `(target.after, through]`, none for a batch that only moves Convex's cursor. Records
/// the cursor Convex then holds — `through`, or the cursor a refused gap names — and
/// forgets the partition's [`Unsent`] stretch. Errors: the network, a 5xx, or a refusal
/// other than a gap.
async fn send_batch(
    projector: &Projector,
    target: &Target<'_>,
    through: u64,
    changes: &[(u64, &str, &Value)],
) -> ApiResult<()> {
    let args = json!({
        "projection": target.projection,
        "version": target.version,
        "partition": target.partition,
        "after": target.after,
        "through": through,
        "changes": changes
            .iter()
            .map(|(offset, doc_id, body)| json!({ "offset": offset, "doc_id": doc_id, "body": body }))
            .collect::<Vec<_>>(),
    });
    let held = match call_function(
        target.url,
        target.key,
        "mutation",
        "mirror:applyBatch",
        args,
    )
    .await?
    {
        Answer::Success { value } => offset_of(&value["cursor"]).unwrap_or(through),
        Answer::Error {
            error_message,
            error_data,
        } => {
            let data = error_data.unwrap_or(Value::Null);
            match (data["code"].as_str(), offset_of(&data["expected"])) {
                // Convex holds another cursor (it lost data, or an answer was lost):
                // continue from where it is.
                (Some("gap"), Some(expected)) => expected,
                _ => {
                    return Err(ApiError::internal(format!(
                        "Convex refused the batch: {error_message}"
                    )));
                }
            }
        }
    };
    projector.set_mirror_unsent(target.partition, None);
    projector.with_store(|s| {
        s.mirror_acknowledged(target.partition, held)
            .map_err(ApiError::internal)
    })
}

/// The events of a page that the next batch covers, as (offset, documents touched), and
/// the offset through which the batch covers the partition.
///
/// The events are those up to the projector's `checkpoint` (the documents read reflect
/// no more), while they touch at most [`MAX_DOCUMENTS`] documents. When the page is taken
/// whole, the batch also covers what the partition looked at past its last event
/// (`scanned_through`: the page's `next_after`, or the head; a filtered read's cursor moves
/// past the events it left out), up to the checkpoint. `through == cursor`: nothing to send.
fn covered(
    events: impl Iterator<Item = (u64, Vec<String>)>,
    cursor: u64,
    checkpoint: u64,
    scanned_through: u64,
) -> (Vec<(u64, Vec<String>)>, u64) {
    let mut touches = Vec::new();
    let mut documents = std::collections::BTreeSet::new();
    let mut through = cursor;
    let mut whole = true;
    for (offset, docs) in events {
        if offset > checkpoint {
            break;
        }
        if documents.len() >= MAX_DOCUMENTS {
            whole = false;
            break;
        }
        documents.extend(docs.iter().cloned());
        touches.push((offset, docs));
        through = offset;
    }
    if whole {
        through = through.max(scanned_through.min(checkpoint));
    }
    (touches, through)
}

/// The batch for `touches` (from [`covered`], in offset order): each document touched with
/// the offset of its last touch, in offset order, and the batch's `through`.
///
/// Documents join in the order of the events that touch them, until the one whose body
/// (`size` bytes) would take the batch past [`MAX_BYTES`] (the first always joins). The
/// batch then stops before that event: `through` is the offset before it, so no document
/// touched up to `through` is left out and no change lies beyond it (Convex refuses a batch
/// whose `through` is below a change's offset). The rest goes in the next batch.
fn plan(
    touches: &[(u64, Vec<String>)],
    through: u64,
    size: impl Fn(&str) -> usize,
) -> (u64, Vec<(u64, &str)>) {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bytes = 0;
    let mut through = through;
    for (offset, docs) in touches {
        let new: usize = docs
            .iter()
            .filter(|d| !last.contains_key(d.as_str()))
            .map(|d| size(d))
            .sum();
        if bytes + new > MAX_BYTES && !last.is_empty() {
            through = offset - 1;
            break;
        }
        bytes += new;
        for doc_id in docs {
            last.insert(doc_id, *offset);
        }
    }
    let mut changes: Vec<(u64, &str)> = last.into_iter().map(|(d, o)| (o, d)).collect();
    changes.sort();
    (through, changes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_stretch_with_nothing_to_send_holds_only_while_convex_holds_its_cursor() {
        let unsent = Unsent {
            generation: 2,
            acked: 100,
            through: 10_100,
            since_ms: 5_000,
        };
        assert!(unsent.continues(2, 100));
        // Convex's cursor moved (a batch, a gap, data lost) or a rebuild took over: read
        // again from the stored cursor.
        assert!(!unsent.continues(2, 90));
        assert!(!unsent.continues(2, 10_100));
        assert!(!unsent.continues(3, 100));
        assert!(
            !Unsent {
                through: 100,
                ..unsent
            }
            .continues(2, 100)
        );
        assert_eq!(unsent.due_at(), 5_000 + EMPTY_BATCH_EVERY_MS);
    }

    #[test]
    fn a_whole_page_covers_what_the_partition_looked_at_up_to_the_checkpoint() {
        let events = vec![(12, docs(&["a"])), (15, docs(&["b"]))];
        // A filtered page whose cursor moved to 40: covered through 40, or the checkpoint.
        assert_eq!(covered(events.clone().into_iter(), 10, 100, 40).1, 40);
        assert_eq!(covered(events.clone().into_iter(), 10, 30, 40).1, 30);
        // Events past the checkpoint are left for later, and the rest is still covered.
        let (touches, through) = covered(events.clone().into_iter(), 10, 13, 40);
        assert_eq!((touches.len(), through), (1, 13));
        // An empty filtered page moves the batch on all the same.
        assert_eq!(covered(std::iter::empty(), 10, 20_000, 10_010).1, 10_010);
        // Nothing new: nothing to send.
        assert_eq!(covered(std::iter::empty(), 10, 10, 10).1, 10);
    }

    #[test]
    fn a_page_cut_at_the_document_limit_covers_only_the_events_taken() {
        let events = (1..=MAX_DOCUMENTS as u64 + 5).map(|o| (o, vec![format!("d{o}")]));
        let (touches, through) = covered(events, 0, u64::MAX, 10_000);
        assert_eq!(touches.len(), MAX_DOCUMENTS);
        assert_eq!(through, MAX_DOCUMENTS as u64);
    }

    #[test]
    fn the_byte_budget_stops_before_an_event_and_leaves_out_nothing_it_covers() {
        // `a` is touched early and late, `b` and `c` share offset 7; every body is a
        // third of the budget and more, so `c` does not fit.
        let touches = vec![(5, docs(&["a"])), (7, docs(&["b", "c"])), (9, docs(&["a"]))];
        let third = MAX_BYTES / 3 + 1;
        let (through, changes) = plan(&touches, 9, |_| third);
        assert_eq!(through, 6);
        assert_eq!(changes, [(5, "a")]);
        // With room for all, every document goes with its last touch.
        let (through, changes) = plan(&touches, 20, |_| 10);
        assert_eq!(through, 20);
        assert_eq!(changes, [(7, "b"), (7, "c"), (9, "a")]);
        // A first document over the budget alone still goes (it must, to move on).
        let (through, changes) = plan(&touches, 9, |_| MAX_BYTES + 1);
        assert_eq!((through, changes), (6, vec![(5, "a")]));
    }
}
