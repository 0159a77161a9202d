//! `Reactor`: one Durable Object per tenant and policy (`"{tenant}/reactor/{policy}"`) that
//! runs a `domain::policy::Policy` next to the data, with no external process.
//!
//! It consumes the stream through its own consumer group (`_reactor-{policy}`, the same
//! machinery agents use: at least once, in order per aggregate), turns each event into timer
//! changes stored in its SQLite, and from its alarm sends each due timer's command to its
//! aggregate with the timer's idempotency key — so the policy acts once per situation,
//! across redeliveries, crashes and restarts. Partitions wake it when they take events, as
//! they wake projectors.
//!
//! The one policy shipped: `auto_archive` — cards in `AUTO_ARCHIVE_COLUMN` longer than
//! `AUTO_ARCHIVE_AFTER_MS` are archived (0, the default, turns it off).

use domain::EventEnvelope;
use domain::policy::{AutoArchive, Policy, TimerChange};
use serde::Deserialize;
use serde_json::{Value, json};
use worker::{DurableObject, Env, Request, Response, Result, State, Stub, durable_object};

use crate::call::{AggregateOp, Call, Caller};
use crate::clock::{at_unix_ms, now_ms};
use crate::config::Config;
use crate::consumer_group::{CONSUMER_GROUPS, GroupOp, GroupSettings};
use crate::encoding::json_response;
use crate::error::{ApiError, ApiResult};
use crate::names::ObjectName;
use crate::sql::{migrate, text};

/// The Durable Object namespace binding of reactors.
pub const REACTORS: &str = "REACTORS";

/// The consumer name the reactor polls its group with.
const CONSUMER: &str = "reactor";

const MIGRATIONS: &[&str] = &["
CREATE TABLE timers (
    key             TEXT    PRIMARY KEY,
    due_at          INTEGER NOT NULL,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    command         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL
);
CREATE INDEX timers_by_due ON timers (due_at);
"];

/// The policies the Worker runs, with their settings; empty when all are off.
pub fn policies(config: &Config) -> Vec<AutoArchive> {
    (config.auto_archive_after_ms > 0)
        .then(|| AutoArchive {
            column: config.auto_archive_column.clone(),
            after_ms: config.auto_archive_after_ms as i64,
        })
        .into_iter()
        .collect()
}

/// The operations of a reactor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReactorOp {
    /// New events may be there: consume them (from the alarm).
    Wake,
}

#[durable_object]
pub struct Reactor {
    state: State,
    env: Env,
    /// Tenant and policy, from the object's own name.
    identity: Option<(String, AutoArchive)>,
    instance: String,
}

#[derive(Deserialize)]
struct Polled {
    lease: Option<Lease>,
    events: Vec<Delivered>,
}

#[derive(Deserialize)]
struct Lease {
    id: String,
}

#[derive(Deserialize)]
struct Delivered {
    event: EventEnvelope,
}

impl DurableObject for Reactor {
    fn new(state: State, env: Env) -> Self {
        let config = Config::from_env(&env);
        let identity = match state.id().name().as_deref().and_then(ObjectName::parse) {
            Some(ObjectName::Reactor { tenant, policy }) => policies(&config)
                .into_iter()
                .find(|p| p.name() == policy)
                .map(|p| (tenant, p)),
            _ => None,
        };
        Self {
            state,
            env,
            identity,
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result: ApiResult<Response> = async {
            let _call: Call<ReactorOp> = Call::from_request(&req)?;
            self.state.storage().set_alarm(at_unix_ms(now_ms())).await?;
            Ok(json_response(&json!({ "woken": true }), 202))
        }
        .await;
        crate::call::answer(result, &self.instance)
    }

    /// Consumes what is new, then sends the due commands; comes back at the next due time.
    async fn alarm(&self) -> Result<Response> {
        let next = match self.run().await {
            Ok(next) => next,
            Err(error) => {
                worker::console_warn!("reactor: {}", error.message);
                Some(now_ms() + 5_000)
            }
        };
        if let Some(at) = next {
            // Never later than an alarm a wake set while this one ran.
            crate::sockets::alarm_by(&self.state, at).await;
        }
        Response::empty()
    }
}

impl Reactor {
    fn identity(&self) -> ApiResult<(&str, &AutoArchive)> {
        self.identity
            .as_ref()
            .map(|(t, p)| (t.as_str(), p))
            .ok_or_else(|| ApiError::internal("a reactor for a policy that is off or unknown"))
    }

    fn group_name(policy: &dyn Policy) -> String {
        format!("_reactor-{}", policy.name())
    }

    fn group_stub(&self, tenant: &str, policy: &dyn Policy) -> ApiResult<Stub> {
        let name = ObjectName::ConsumerGroup {
            tenant: tenant.to_owned(),
            group: Self::group_name(policy),
        };
        Ok(self
            .env
            .durable_object(CONSUMER_GROUPS)?
            .id_from_name(&name.to_string())?
            .get_stub()?)
    }

    async fn group_call(&self, stub: &Stub, op: GroupOp) -> ApiResult<Response> {
        Call {
            caller: Some(self.caller()?),
            op,
        }
        .send(stub, false, None)
        .await
    }

    fn caller(&self) -> ApiResult<Caller> {
        let (_, policy) = self.identity()?;
        Ok(Caller {
            actor: format!("policy:{}", policy.name()),
            expires_at: u64::MAX / 1000,
        })
    }

    async fn run(&self) -> ApiResult<Option<i64>> {
        let (tenant, policy) = self.identity()?;
        let sql = self.state.storage().sql();
        migrate(&sql, MIGRATIONS).map_err(ApiError::internal)?;
        let stub = self.group_stub(tenant, policy)?;
        // The group (created on first use; the same settings are an idempotent create).
        let settings = GroupSettings {
            start: json!("beginning"),
            config: stream::consumer::GroupConfig {
                lease_ms: 60_000,
                max_batch: 500,
                ..Default::default()
            },
            aggregate_type: Some(policy.aggregate_type().to_owned()),
            types: Some(
                policy
                    .event_types()
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect(),
            ),
        };
        let created = self.group_call(&stub, GroupOp::Create { settings }).await?;
        if !matches!(created.status_code(), 200 | 201) {
            return Err(ApiError::internal(format!(
                "creating the reactor's group: {}",
                created.status_code()
            )));
        }
        // Consume: timer changes are idempotent, so a crash before the ack only repeats them.
        for _ in 0..100 {
            let mut polled = self
                .group_call(
                    &stub,
                    GroupOp::Poll {
                        consumer: CONSUMER.into(),
                        max_events: None,
                        wait_ms: 0,
                    },
                )
                .await?;
            let polled: Polled = polled.json().await?;
            let Some(lease) = polled.lease else { break };
            let mut offsets = Vec::new();
            for delivered in &polled.events {
                for change in policy.on_event(&delivered.event) {
                    apply(&sql, change)?;
                }
                if let Some(position) = delivered.event.position {
                    offsets.push(position.offset);
                }
            }
            let lease: u64 = lease.id.parse().map_err(ApiError::internal)?;
            let acked = self
                .group_call(
                    &stub,
                    GroupOp::Ack {
                        consumer: CONSUMER.into(),
                        lease,
                        offsets,
                    },
                )
                .await?;
            if acked.status_code() != 200 {
                return Err(ApiError::internal(format!(
                    "acking the reactor's batch: {}",
                    acked.status_code()
                )));
            }
        }
        self.fire_due(&sql).await
    }

    /// Sends every due command; a timer is dropped once its aggregate has answered (done,
    /// or refused because the situation is gone). Returns the next due time.
    async fn fire_due(&self, sql: &worker::SqlStorage) -> ApiResult<Option<i64>> {
        let (tenant, _) = self.identity()?;
        let now = now_ms();
        let cursor = sql
            .exec(
                "SELECT key, aggregate_type, aggregate_id, command, idempotency_key, causation_id, correlation_id
                 FROM timers WHERE due_at <= ? ORDER BY due_at LIMIT 100",
                vec![now.into()],
            )
            .map_err(ApiError::internal)?;
        let due: Vec<Vec<worker::SqlStorageValue>> = cursor
            .raw()
            .collect::<std::result::Result<_, _>>()
            .map_err(ApiError::internal)?;
        let mut retry = false;
        for row in due {
            let [
                key,
                aggregate_type,
                aggregate_id,
                command,
                idempotency_key,
                causation_id,
                correlation_id,
            ] = row.as_slice()
            else {
                continue;
            };
            let (key, aggregate_type, aggregate_id) = (
                text(key).unwrap_or_default(),
                text(aggregate_type).unwrap_or_default(),
                text(aggregate_id).unwrap_or_default(),
            );
            let mut body: Value = serde_json::from_str(&text(command).unwrap_or_default())
                .map_err(ApiError::internal)?;
            body["causation_id"] = json!(text(causation_id));
            body["correlation_id"] = json!(text(correlation_id));
            let name = ObjectName::aggregate(tenant, &aggregate_type, &aggregate_id).to_string();
            let stub = self
                .env
                .durable_object(crate::aggregate::AGGREGATES)?
                .id_from_name(&name)?
                .get_stub()?;
            let answer = Call {
                caller: Some(self.caller()?),
                op: AggregateOp::Command {
                    idempotency_key: text(idempotency_key),
                    minimal: true,
                },
            }
            .send(&stub, false, Some(body.to_string().into_bytes()))
            .await;
            match answer {
                Ok(response) if response.status_code() < 500 => {
                    sql.exec("DELETE FROM timers WHERE key = ?", vec![key.into()])
                        .map_err(ApiError::internal)?;
                }
                _ => retry = true,
            }
        }
        let next = crate::sql::scalar(sql, "SELECT min(due_at) FROM timers", vec![])
            .map_err(ApiError::internal)?;
        Ok(match (next, retry) {
            (_, true) => Some(now + 5_000),
            (Some(at), false) => Some(at.max(now)),
            (None, false) => None,
        })
    }
}

fn apply(sql: &worker::SqlStorage, change: TimerChange) -> ApiResult<()> {
    match change {
        TimerChange::Set(t) => sql
            .exec(
                "INSERT OR REPLACE INTO timers (key, due_at, aggregate_type, aggregate_id, command, idempotency_key, causation_id, correlation_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    t.key.into(),
                    t.due_at_ms.into(),
                    t.aggregate_type.into(),
                    t.aggregate_id.into(),
                    t.command.to_string().into(),
                    t.idempotency_key.into(),
                    t.causation_id.into(),
                    t.correlation_id.into(),
                ],
            )
            .map(|_| ())
            .map_err(ApiError::internal),
        TimerChange::Cancel { key } => sql
            .exec("DELETE FROM timers WHERE key = ?", vec![key.into()])
            .map(|_| ())
            .map_err(ApiError::internal),
    }
}
