//! `Ingestion`: one Durable Object per tenant (`"{tenant}/ingest"`) for the feedback loop's
//! inputs that do not come as commands — production telemetry and GitHub webhooks — and the
//! tenant's integration secrets.
//!
//! # Telemetry: bounded events under a flood
//! The Worker parses a telemetry body and coalesces its error reports per (fingerprint,
//! window) (`ingest::telemetry`); this object then *buffers* them across requests: one
//! `pending` row per fingerprint adds up every report until the row is flushed, which
//! happens from the alarm `TELEMETRY_WINDOW_MS` after the row opened. A flush sends one
//! `RecordOccurrences` per pending fingerprint to its `error_group` aggregate. So a
//! tenant's telemetry produces at most one event per error group per window (plus a
//! `…Regressed` when a resolved group comes back), however many reports arrive.
//!
//! Nothing acknowledged is lost: a batch is written to this object's SQLite in one
//! synchronous step before the 202 goes out (all or nothing: the rate check comes first).
//! A flush first *moves* each pending row to `flushing` (same step, so later reports open a
//! new row instead of racing the send), then sends it under the idempotency key
//! `telemetry:{row}` — the row number is never reused (`AUTOINCREMENT`) — and deletes it
//! when the aggregate answers. A failed send stays in `flushing` and is retried from the
//! alarm with backoff under the same key, so a retry after a lost answer applies nothing
//! twice. Counters are summed per (name, tags, window) in `counters` and kept
//! `COUNTER_RETENTION_MS`.
//!
//! The rate limit is a token bucket per tenant (`TELEMETRY_RATE_PER_MINUTE` reports, as
//! burst and as refill per minute), in memory: an evicted object starts full, which can
//! only let a little more in.
//!
//! # GitHub deliveries
//! The Worker reads the raw body and the three headers; here the signature is checked with
//! the tenant's webhook secret **before** anything parses the body
//! (`ingest::github::verify_signature`), then the delivery becomes one `repository` command
//! sent with the idempotency key `github:{delivery id}` — a redelivery replays the first
//! answer and records nothing (and the aggregate also refuses a delivery id it has seen).
//! Kinds we do not map are acknowledged and ignored.
//!
//! # Integration secrets
//! `secrets` holds each integration's secret (today: `github`). Set and deleted through the
//! admin routes; no operation ever answers with a secret.

use std::cell::RefCell;

use ingest::telemetry::{Counter, Occurrences};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{
    DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State,
    durable_object,
};

use crate::call::{AggregateOp, Call, Caller};
use crate::clock::now_ms;
use crate::config::Config;
use crate::encoding::json_response;
use crate::error::{ApiError, ApiResult};
use crate::names::ObjectName;
use crate::sql::{int, integer, migrate, scalar, text};

/// The binding of the `Ingestion` class.
pub const INGESTION: &str = "INGESTION";

/// Counter windows older than this are dropped (7 days).
pub const COUNTER_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The integrations that have a secret. `github`: the webhook secret GitHub signs
/// deliveries with (`X-Hub-Signature-256`).
pub const INTEGRATIONS: &[&str] = &["github"];

/// A secret is 1..=this many bytes.
pub const MAX_SECRET_BYTES: usize = 1024;

const MIGRATIONS: &[&str] = &["
CREATE TABLE pending (
    row             INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint     TEXT    NOT NULL UNIQUE,
    occurrences     TEXT    NOT NULL,
    opened_at       INTEGER NOT NULL
);
CREATE TABLE flushing (
    row             INTEGER PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    command         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    last_error      TEXT
);
CREATE TABLE counters (
    name            TEXT    NOT NULL,
    tags            TEXT    NOT NULL,
    window_start    INTEGER NOT NULL,
    total           REAL    NOT NULL,
    samples         INTEGER NOT NULL,
    PRIMARY KEY (name, tags, window_start)
) WITHOUT ROWID;
CREATE TABLE totals (
    key             TEXT    PRIMARY KEY,
    value           INTEGER NOT NULL
);
CREATE TABLE secrets (
    integration     TEXT    PRIMARY KEY,
    secret          TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL
);
"];

/// The operations of a tenant's ingestion object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IngestOp {
    /// Buffer the [`TelemetryBody`] in the request body (JSON). 202 with what was accepted;
    /// 429 `rate_limited` (nothing recorded) over the tenant's rate.
    Telemetry { reports: u64 },
    /// Telemetry totals, pending groups and the newest counter windows (`name`: one counter).
    TelemetryStatus { name: Option<String>, limit: usize },
    /// A GitHub delivery: the raw body is the request body.
    Github {
        event: String,
        delivery: String,
        signature: String,
    },
    /// Which integrations have a secret, and since when (never the secret).
    Integrations,
    /// Set (`Some`) or delete (`None`) an integration's secret.
    SetSecret {
        integration: String,
        secret: Option<String>,
    },
}

/// What the Worker hands over for one telemetry request: its reports coalesced per
/// (fingerprint, window) and its counters, with the time it arrived (Unix ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryBody {
    pub received_at_ms: i64,
    pub occurrences: Vec<Occurrences>,
    pub counters: Vec<Counter>,
}

/// A token bucket: `capacity` reports, refilled at `capacity` per minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

#[durable_object]
pub struct Ingestion {
    state: State,
    env: Env,
    config: Config,
    tenant: Option<String>,
    bucket: RefCell<Option<Bucket>>,
    instance: String,
}

impl DurableObject for Ingestion {
    fn new(state: State, env: Env) -> Self {
        let tenant = match state.id().name().as_deref().and_then(ObjectName::parse) {
            Some(ObjectName::Ingestion { tenant }) => Some(tenant),
            _ => None,
        };
        Self {
            config: Config::from_env(&env),
            state,
            env,
            tenant,
            bucket: RefCell::new(None),
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        crate::call::answer(self.handle(req).await, &self.instance)
    }

    async fn alarm(&self) -> Result<Response> {
        match self.flush().await {
            Ok(Some(at)) => crate::sockets::alarm_by(&self.state, at).await,
            Ok(None) => {}
            Err(error) => {
                worker::console_warn!("ingestion flush: {}", error.message);
                crate::sockets::alarm_by(&self.state, now_ms() + 5_000).await;
            }
        }
        Response::empty()
    }
}

impl Ingestion {
    fn tenant(&self) -> ApiResult<&str> {
        self.tenant
            .as_deref()
            .ok_or_else(|| ApiError::internal("an ingestion object without a tenant name"))
    }

    fn sql(&self) -> ApiResult<SqlStorage> {
        let sql = self.state.storage().sql();
        migrate(&sql, MIGRATIONS).map_err(ApiError::internal)?;
        Ok(sql)
    }

    async fn handle(&self, mut req: Request) -> ApiResult<Response> {
        let call: Call<IngestOp> = Call::from_request(&req)?;
        match call.op {
            IngestOp::Telemetry { reports } => {
                let body: TelemetryBody = serde_json::from_slice(&req.bytes().await?)
                    .map_err(|e| ApiError::internal(format!("a telemetry hand-off: {e}")))?;
                let answer = self.buffer(&body, reports)?;
                let first_open = self.first_open()?;
                if let Some(opened) = first_open {
                    let at = opened + self.config.telemetry_window_ms as i64;
                    crate::sockets::alarm_by(&self.state, at).await;
                }
                Ok(json_response(&answer, 202))
            }
            IngestOp::TelemetryStatus { name, limit } => {
                Ok(json_response(&self.telemetry_status(name, limit)?, 200))
            }
            IngestOp::Github {
                event,
                delivery,
                signature,
            } => {
                let body = req.bytes().await?;
                self.github(&event, &delivery, &signature, &body).await
            }
            IngestOp::Integrations => Ok(json_response(&self.integrations()?, 200)),
            IngestOp::SetSecret {
                integration,
                secret,
            } => self.set_secret(&integration, secret.as_deref()),
        }
    }

    /// Takes `reports` tokens from the tenant's bucket, or says when to come back.
    fn take_tokens(&self, reports: u64) -> ApiResult<()> {
        let capacity = self.config.telemetry_rate_per_minute.max(1) as f64;
        let now = now_ms();
        let mut slot = self.bucket.borrow_mut();
        let bucket = slot.get_or_insert(Bucket {
            tokens: capacity,
            at_ms: now,
        });
        let refilled = (bucket.tokens + (now - bucket.at_ms).max(0) as f64 * capacity / 60_000.0)
            .min(capacity);
        let wanted = reports as f64;
        if wanted > refilled {
            let missing = wanted - refilled;
            let wait_secs = (missing * 60.0 / capacity).ceil().max(1.0) as u32;
            bucket.tokens = refilled;
            bucket.at_ms = now;
            return Err(ApiError::rate_limited(
                format!(
                    "this tenant's telemetry is over {} reports per minute (TELEMETRY_RATE_PER_MINUTE); nothing of this batch was recorded",
                    capacity as u64
                ),
                wait_secs,
            ));
        }
        bucket.tokens = refilled - wanted;
        bucket.at_ms = now;
        Ok(())
    }

    /// One synchronous step: the rate check, then every occurrence and counter of the batch.
    fn buffer(&self, body: &TelemetryBody, reports: u64) -> ApiResult<Value> {
        self.take_tokens(reports)?;
        let sql = self.sql()?;
        let window_ms = self.config.telemetry_window_ms.max(1) as i64;
        for occurrences in &body.occurrences {
            let existing = sql
                .exec(
                    "SELECT occurrences FROM pending WHERE fingerprint = ?",
                    vec![occurrences.fingerprint.as_str().into()],
                )
                .map_err(ApiError::internal)?
                .raw()
                .next()
                .transpose()
                .map_err(ApiError::internal)?;
            let merged = match existing
                .as_deref()
                .and_then(|row| row.first())
                .and_then(text)
            {
                Some(stored) => {
                    let mut stored: Occurrences =
                        serde_json::from_str(&stored).map_err(ApiError::internal)?;
                    stored.merge(occurrences);
                    stored
                }
                None => occurrences.clone(),
            };
            let encoded = serde_json::to_string(&merged).map_err(ApiError::internal)?;
            sql.exec(
                "INSERT INTO pending (fingerprint, occurrences, opened_at) VALUES (?, ?, ?)
                 ON CONFLICT (fingerprint) DO UPDATE SET occurrences = excluded.occurrences",
                vec![
                    occurrences.fingerprint.as_str().into(),
                    encoded.into(),
                    body.received_at_ms.into(),
                ],
            )
            .map_err(ApiError::internal)?;
        }
        for counter in &body.counters {
            let tags = serde_json::to_string(&counter.tags).map_err(ApiError::internal)?;
            let window = body.received_at_ms - body.received_at_ms.rem_euclid(window_ms);
            sql.exec(
                "INSERT INTO counters (name, tags, window_start, total, samples) VALUES (?, ?, ?, ?, 1)
                 ON CONFLICT (name, tags, window_start) DO UPDATE SET
                     total = max(min(total + excluded.total, 1.7976931348623157e308), -1.7976931348623157e308),
                     samples = samples + 1",
                vec![
                    counter.name.as_str().into(),
                    tags.into(),
                    window.into(),
                    counter.value.into(),
                ],
            )
            .map_err(ApiError::internal)?;
        }
        if !body.counters.is_empty() {
            sql.exec(
                "DELETE FROM counters WHERE window_start < ?",
                vec![(body.received_at_ms - COUNTER_RETENTION_MS).into()],
            )
            .map_err(ApiError::internal)?;
        }
        add_total(&sql, "reports", reports)?;
        add_total(&sql, "counter_samples", body.counters.len() as u64)?;
        add_total(&sql, "batches", 1)?;
        Ok(json!({
            "accepted": {"errors": reports, "counters": body.counters.len()},
            "groups": body.occurrences.iter().map(|o| o.fingerprint.as_str()).collect::<Vec<_>>(),
            "flush_within_ms": window_ms,
        }))
    }

    /// When the oldest pending row opened (Unix ms), if any.
    fn first_open(&self) -> ApiResult<Option<i64>> {
        scalar(&self.sql()?, "SELECT min(opened_at) FROM pending", vec![])
            .map_err(ApiError::internal)
    }

    /// Moves every pending row that has waited a window to `flushing` (one synchronous
    /// step), then sends every `flushing` row to its aggregate. Returns when to run next.
    async fn flush(&self) -> ApiResult<Option<i64>> {
        let tenant = self.tenant()?.to_owned();
        let sql = self.sql()?;
        let now = now_ms();
        let window_ms = self.config.telemetry_window_ms.max(1) as i64;
        let due: Vec<Vec<SqlStorageValue>> = sql
            .exec(
                "SELECT row, fingerprint, occurrences FROM pending WHERE opened_at <= ? ORDER BY row",
                vec![(now - window_ms).into()],
            )
            .map_err(ApiError::internal)?
            .raw()
            .collect::<std::result::Result<_, _>>()
            .map_err(ApiError::internal)?;
        for row in &due {
            let [number, fingerprint, occurrences] = row.as_slice() else {
                continue;
            };
            let stored: Occurrences = serde_json::from_str(&text(occurrences).unwrap_or_default())
                .map_err(ApiError::internal)?;
            sql.exec(
                "INSERT INTO flushing (row, fingerprint, command, attempts) VALUES (?, ?, ?, 0)",
                vec![
                    number.clone(),
                    fingerprint.clone(),
                    stored.command_json().to_string().into(),
                ],
            )
            .map_err(ApiError::internal)?;
            sql.exec("DELETE FROM pending WHERE row = ?", vec![number.clone()])
                .map_err(ApiError::internal)?;
        }
        let sending: Vec<Vec<SqlStorageValue>> = sql
            .exec(
                "SELECT row, fingerprint, command, attempts FROM flushing ORDER BY row LIMIT 200",
                vec![],
            )
            .map_err(ApiError::internal)?
            .raw()
            .collect::<std::result::Result<_, _>>()
            .map_err(ApiError::internal)?;
        let mut failed_attempts = 0_i64;
        let caller = Caller {
            actor: "ingest:telemetry".into(),
            expires_at: u64::MAX / 1000,
        };
        for row in sending {
            let [number, fingerprint, command, attempts] = row.as_slice() else {
                continue;
            };
            let number = integer(number).map_err(ApiError::internal)?;
            let fingerprint = text(fingerprint).unwrap_or_default();
            let name = ObjectName::aggregate(&tenant, "error_group", &fingerprint).to_string();
            let stub = self
                .env
                .durable_object(crate::aggregate::AGGREGATES)?
                .id_from_name(&name)?
                .get_stub()?;
            let sent = Call {
                caller: Some(caller.clone()),
                op: AggregateOp::Command {
                    idempotency_key: Some(format!("telemetry:{number}")),
                    minimal: true,
                },
            }
            .send(&stub, false, text(command).map(String::into_bytes))
            .await;
            match sent {
                Ok(response) if response.status_code() < 500 => {
                    if response.status_code() >= 400 {
                        // A refusal will not change on a retry: log it and let it go.
                        worker::console_warn!(
                            "telemetry flush: error_group:{} refused {}: {}",
                            fingerprint,
                            number,
                            response.status_code()
                        );
                    } else {
                        add_total(&sql, "records_sent", 1)?;
                    }
                    sql.exec("DELETE FROM flushing WHERE row = ?", vec![number.into()])
                        .map_err(ApiError::internal)?;
                }
                failure => {
                    let error = match failure {
                        Ok(response) => format!("status {}", response.status_code()),
                        Err(e) => e.message,
                    };
                    let attempts = integer(attempts).unwrap_or(0) + 1;
                    failed_attempts = failed_attempts.max(attempts);
                    sql.exec(
                        "UPDATE flushing SET attempts = ?, last_error = ? WHERE row = ?",
                        vec![attempts.into(), error.into(), number.into()],
                    )
                    .map_err(ApiError::internal)?;
                }
            }
        }
        let left = scalar(&sql, "SELECT count(*) FROM flushing", vec![])
            .map_err(ApiError::internal)?
            .unwrap_or(0);
        let retry = (left > 0).then(|| {
            let backoff = 500_i64 << failed_attempts.clamp(0, 6);
            now + backoff.min(self.config.stream_retry_max_ms as i64)
        });
        let next_window = self.first_open()?.map(|opened| opened + window_ms);
        Ok(match (retry, next_window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn telemetry_status(&self, name: Option<String>, limit: usize) -> ApiResult<Value> {
        let sql = self.sql()?;
        let totals: serde_json::Map<String, Value> = sql
            .exec("SELECT key, value FROM totals ORDER BY key", vec![])
            .map_err(ApiError::internal)?
            .raw()
            .filter_map(|row| {
                let row = row.ok()?;
                Some((text(row.first()?)?, json!(integer(row.get(1)?).ok()?)))
            })
            .collect();
        let pending = scalar(&sql, "SELECT count(*) FROM pending", vec![])
            .map_err(ApiError::internal)?
            .unwrap_or(0);
        let flushing = scalar(&sql, "SELECT count(*) FROM flushing", vec![])
            .map_err(ApiError::internal)?
            .unwrap_or(0);
        let (query, bindings) = match &name {
            Some(name) => (
                "SELECT name, tags, window_start, total, samples FROM counters WHERE name = ?1
                 ORDER BY window_start DESC, tags LIMIT ?2",
                vec![name.as_str().into(), int(limit as u64)],
            ),
            None => (
                "SELECT name, tags, window_start, total, samples FROM counters
                 ORDER BY window_start DESC, name, tags LIMIT ?1",
                vec![int(limit as u64)],
            ),
        };
        let counters: Vec<Value> = sql
            .exec(query, bindings)
            .map_err(ApiError::internal)?
            .raw()
            .filter_map(|row| {
                let row = row.ok()?;
                let tags: Value = serde_json::from_str(&text(row.get(1)?)?).ok()?;
                let total = match row.get(3)? {
                    SqlStorageValue::Float(f) => *f,
                    SqlStorageValue::Integer(i) => *i as f64,
                    _ => return None,
                };
                Some(json!({
                    "name": text(row.first()?)?,
                    "tags": tags,
                    "window_start_ms": integer(row.get(2)?).ok()?,
                    "total": total,
                    "samples": integer(row.get(4)?).ok()?,
                }))
            })
            .collect();
        Ok(json!({
            "totals": totals,
            "pending_groups": pending,
            "unsent_records": flushing,
            "window_ms": self.config.telemetry_window_ms,
            "rate_per_minute": self.config.telemetry_rate_per_minute,
            "counters": counters,
        }))
    }

    fn secret(&self, integration: &str) -> ApiResult<Option<String>> {
        Ok(self
            .sql()?
            .exec(
                "SELECT secret FROM secrets WHERE integration = ?",
                vec![integration.into()],
            )
            .map_err(ApiError::internal)?
            .raw()
            .next()
            .transpose()
            .map_err(ApiError::internal)?
            .and_then(|row| row.first().and_then(text)))
    }

    async fn github(
        &self,
        event: &str,
        delivery: &str,
        signature: &str,
        body: &[u8],
    ) -> ApiResult<Response> {
        let secret = self.secret("github")?.unwrap_or_default();
        // Before anything reads the body.
        ingest::github::verify_signature(secret.as_bytes(), body, signature)
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let command = ingest::github::to_command(event, delivery, body)
            .map_err(|e| ApiError::with_status(e.status(), e.code(), e.to_string()))?;
        let Some(command) = command else {
            return Ok(json_response(
                &json!({"status": "ignored", "event": event, "delivery": delivery}),
                202,
            ));
        };
        let tenant = self.tenant()?;
        let name = ObjectName::aggregate(tenant, "repository", &command.aggregate_id).to_string();
        let stub = self
            .env
            .durable_object(crate::aggregate::AGGREGATES)?
            .id_from_name(&name)?
            .get_stub()?;
        let mut body = command.command_json();
        body["correlation_id"] = json!(format!("github:{delivery}"));
        let mut answer = Call {
            caller: Some(Caller {
                actor: "ingest:github".into(),
                expires_at: u64::MAX / 1000,
            }),
            op: AggregateOp::Command {
                idempotency_key: Some(format!("github:{delivery}")),
                minimal: false,
            },
        }
        .send(&stub, false, Some(body.to_string().into_bytes()))
        .await?;
        let status = answer.status_code();
        let replayed = answer.headers().get("idempotent-replayed")?.is_some();
        let result: Value = answer.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            return Ok(json_response(&result, status));
        }
        // A delivery id the aggregate remembers decides nothing (`domain::repository`).
        let duplicate = replayed || result["events"].as_array().is_some_and(Vec::is_empty);
        Ok(json_response(
            &json!({
                "status": if duplicate { "duplicate" } else { "recorded" },
                "event": event,
                "delivery": delivery,
                "aggregate_type": "repository",
                "aggregate_id": command.aggregate_id,
                "version": result["version"],
            }),
            202,
        ))
    }

    fn integrations(&self) -> ApiResult<Value> {
        let sql = self.sql()?;
        let mut out = serde_json::Map::new();
        for integration in INTEGRATIONS {
            let updated = scalar(
                &sql,
                "SELECT updated_at FROM secrets WHERE integration = ?",
                vec![(*integration).into()],
            )
            .map_err(ApiError::internal)?;
            out.insert(
                (*integration).to_owned(),
                json!({
                    "configured": updated.is_some(),
                    "updated_at": updated.map(domain::envelope::format_timestamp),
                }),
            );
        }
        Ok(Value::Object(out))
    }

    fn set_secret(&self, integration: &str, secret: Option<&str>) -> ApiResult<Response> {
        if !INTEGRATIONS.contains(&integration) {
            return Err(ApiError::not_found(format!(
                "no integration `{integration}` (known: {})",
                INTEGRATIONS.join(", ")
            )));
        }
        let sql = self.sql()?;
        match secret {
            Some(secret) => {
                sql.exec(
                    "INSERT INTO secrets (integration, secret, updated_at) VALUES (?, ?, ?)
                     ON CONFLICT (integration) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
                    vec![integration.into(), secret.into(), now_ms().into()],
                )
                .map_err(ApiError::internal)?;
            }
            None => {
                sql.exec(
                    "DELETE FROM secrets WHERE integration = ?",
                    vec![integration.into()],
                )
                .map_err(ApiError::internal)?;
            }
        }
        Ok(json_response(&self.integrations()?[integration], 200))
    }
}

fn add_total(sql: &SqlStorage, key: &str, by: u64) -> ApiResult<()> {
    sql.exec(
        "INSERT INTO totals (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        vec![key.into(), int(by)],
    )
    .map_err(ApiError::internal)?;
    Ok(())
}
