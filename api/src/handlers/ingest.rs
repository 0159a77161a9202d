//! The feedback loop's inputs: `POST /v1/ingest/telemetry` (error reports and counters from
//! pages and services), `GET /v1/ingest/telemetry` (what was taken), `POST
//! /v1/ingest/github` (webhook deliveries), and the integration secrets those need
//! (`/v1/integrations`). Parsing, fingerprinting and coalescing are pure (`ingest`); the
//! tenant's ingestion object (`durable::ingestion`) buffers, rate-limits, verifies and
//! records.

use std::num::NonZeroU64;

use durable::call::{Call, Caller};
use durable::ingestion::{INGESTION, IngestOp, MAX_SECRET_BYTES, TelemetryBody};
use durable::names::ObjectName;
use durable::params::{self, check_params, query_pairs};
use durable::{ApiError, ApiResult, Config};
use serde_json::Value;
use worker::{Env, Request, Response, Stub};

use super::read_body;
use crate::gate::Admitted;
use crate::routes::IngestRoute;

/// The counter windows `GET /v1/ingest/telemetry` lists by default, and at most.
const DEFAULT_COUNTER_LIMIT: usize = 100;
const MAX_COUNTER_LIMIT: usize = 1_000;

fn stub(env: &Env, tenant: &str) -> ApiResult<Stub> {
    let name = ObjectName::Ingestion {
        tenant: tenant.to_owned(),
    };
    Ok(env
        .durable_object(INGESTION)?
        .id_from_name(&name.to_string())?
        .get_stub()?)
}

fn caller(admitted: &Admitted) -> ApiResult<(String, Caller)> {
    let principal = admitted.principal()?;
    Ok((
        principal.tenant.to_string(),
        Caller {
            actor: principal.actor.clone(),
            expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
        },
    ))
}

fn payload_error(e: ingest::PayloadError) -> ApiError {
    ApiError::with_status(e.status(), e.code(), e.to_string())
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    route: IngestRoute,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let query = query_pairs(&req.url()?);
    match route {
        IngestRoute::Telemetry => {
            check_params(&query, &["access_token"])?;
            let (tenant, caller) = caller(admitted)?;
            let content_type = req.headers().get("content-type")?;
            let body = read_body(&mut req, ingest::telemetry::MAX_BODY_BYTES).await?;
            let batch =
                ingest::telemetry::parse(content_type.as_deref(), &body).map_err(payload_error)?;
            let received_at_ms = durable::clock::now_ms();
            let window = NonZeroU64::new(config.telemetry_window_ms.max(1))
                .unwrap_or(ingest::telemetry::DEFAULT_WINDOW_MS);
            let occurrences =
                ingest::telemetry::coalesce(&batch.errors, received_at_ms.max(0) as u64, window);
            let hand_off = TelemetryBody {
                received_at_ms,
                occurrences,
                counters: batch.counters,
            };
            let hand_off = serde_json::to_vec(&hand_off).map_err(ApiError::internal)?;
            Call {
                caller: Some(caller),
                op: IngestOp::Telemetry {
                    reports: batch.errors.len() as u64,
                },
            }
            .send(&stub(env, &tenant)?, false, Some(hand_off))
            .await
        }
        IngestRoute::TelemetryStatus => {
            check_params(&query, &["name", "limit"])?;
            let (tenant, caller) = caller(admitted)?;
            let limit =
                params::limit_param(&query, DEFAULT_COUNTER_LIMIT, MAX_COUNTER_LIMIT, None)?;
            let op = IngestOp::TelemetryStatus {
                name: params::param(&query, "name").map(str::to_owned),
                limit,
            };
            Call {
                caller: Some(caller),
                op,
            }
            .send(&stub(env, &tenant)?, false, None)
            .await
        }
        IngestRoute::Github => {
            check_params(&query, &["tenant"])?;
            let tenant = params::param(&query, "tenant").ok_or_else(|| {
                ApiError::bad_request(
                    "`?tenant=` names the tenant the delivery is for (the webhook's payload URL ends with it)",
                )
            })?;
            let tenant = auth::Tenant::parse(tenant)
                .map_err(|e| ApiError::bad_request(format!("`tenant`: {e}")))?;
            let header = |name: &str| -> ApiResult<String> {
                Ok(req.headers().get(name)?.unwrap_or_default())
            };
            let signature = header(ingest::github::SIGNATURE_HEADER)?;
            let event = header(ingest::github::EVENT_HEADER)?;
            let delivery = header(ingest::github::DELIVERY_HEADER)?;
            // Only the bytes: the ingestion object checks the signature before any parsing.
            let body = read_body(&mut req, ingest::github::MAX_BODY_BYTES).await?;
            Call {
                caller: None,
                op: IngestOp::Github {
                    event,
                    delivery,
                    signature,
                },
            }
            .send(&stub(env, tenant.as_str())?, false, Some(body))
            .await
        }
    }
}

/// `GET /v1/integrations` and `PUT|DELETE /v1/integrations/{name}`. A `PUT` body is
/// `{"secret": "…"}` (1 to [`MAX_SECRET_BYTES`] bytes); the answer says whether it is
/// configured and since when, never the secret.
pub async fn integrations(
    mut req: Request,
    env: &Env,
    config: &Config,
    name: Option<(String, bool)>,
    admitted: &Admitted,
) -> ApiResult<Response> {
    check_params(&query_pairs(&req.url()?), &[])?;
    let (tenant, caller) = caller(admitted)?;
    let op = match name {
        None => IngestOp::Integrations,
        Some((integration, true)) => IngestOp::SetSecret {
            integration,
            secret: None,
        },
        Some((integration, false)) => {
            let body = read_body(&mut req, config.max_body_bytes).await?;
            let body: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body must be JSON `{{\"secret\": \"…\"}}`: {e}"
                ))
            })?;
            let Some(object) = body.as_object() else {
                return Err(ApiError::bad_request(
                    "the body must be a JSON object `{\"secret\": \"…\"}`",
                ));
            };
            if let Some(unknown) = object.keys().find(|k| *k != "secret") {
                return Err(ApiError::bad_request(format!(
                    "unknown field `{unknown}`; the body is `{{\"secret\": \"…\"}}`"
                )));
            }
            let secret = object
                .get("secret")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request("`secret` is required and must be a string")
                })?;
            if secret.trim().is_empty() || secret.len() > MAX_SECRET_BYTES {
                return Err(ApiError::bad_request(format!(
                    "`secret` must be 1 to {MAX_SECRET_BYTES} bytes and not blank"
                )));
            }
            IngestOp::SetSecret {
                integration,
                secret: Some(secret.to_owned()),
            }
        }
    };
    Call {
        caller: Some(caller),
        op,
    }
    .send(&stub(env, &tenant)?, false, None)
    .await
}
