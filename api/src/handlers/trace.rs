//! `GET /v1/trace/{correlation_id}` (scope `read`): a causal chain across aggregates — the
//! root event (whose id is the correlation id) and every event correlated to it — from
//! every partition of the tenant's stream, in recorded order.

use domain::EventEnvelope;
use durable::call::{Call, PartitionOp};
use durable::encoding::{Encoding, json_response};
use durable::names::ObjectName;
use durable::params::{check_params, query_pairs};
use durable::{ApiError, ApiResult, Config};
use serde::Deserialize;
use serde_json::json;
use stream::StreamFilter;
use worker::{Env, Request, Response};

use crate::gate::Admitted;

/// Most events a trace answers.
const MAX_EVENTS: usize = 10_000;

#[derive(Deserialize)]
struct Page {
    events: Vec<EventEnvelope>,
    next_after: Option<u64>,
}

pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    correlation_id: &str,
    admitted: &Admitted,
) -> ApiResult<Response> {
    check_params(&query_pairs(&req.url()?), &[])?;
    // The route matcher sees the path as sent; a correlation id with characters a URL
    // escapes arrives percent-encoded.
    let correlation_id = percent_encoding::percent_decode_str(correlation_id)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the correlation id is not UTF-8"))?;
    let correlation_id = correlation_id.as_ref();
    let principal = admitted.principal()?;
    let filter =
        StreamFilter::from_query(&[("correlation_id".to_owned(), correlation_id.to_owned())])
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut events = Vec::new();
    for partition in config.partitions()?.partitions() {
        let name = ObjectName::partition(principal.tenant.as_str(), partition).to_string();
        let stub = env
            .durable_object(durable::aggregate::PARTITIONS)?
            .id_from_name(&name)?
            .get_stub()?;
        let mut after = 0;
        loop {
            let response = Call {
                caller: None,
                op: PartitionOp::Read {
                    after,
                    limit: 10_000,
                    filter: filter.clone(),
                    encoding: Encoding::MessagePack,
                },
            }
            .send(&stub, false, None)
            .await?;
            let page: Page = rmp_serde::from_slice(&durable::call::body_bytes(response).await?)
                .map_err(|e| ApiError::internal(format!("a stream page: {e}")))?;
            events.extend(page.events);
            if events.len() > MAX_EVENTS {
                return Err(ApiError::bad_request(format!(
                    "the trace has more than {MAX_EVENTS} events"
                )));
            }
            match page.next_after {
                Some(next) if next > after => after = next,
                _ => break,
            }
        }
    }
    events.sort_by(|a, b| {
        (&a.recorded_at, a.position.map(|p| (p.partition, p.offset)))
            .cmp(&(&b.recorded_at, b.position.map(|p| (p.partition, p.offset))))
    });
    Ok(json_response(
        &json!({ "correlation_id": correlation_id, "events": events }),
        200,
    ))
}
