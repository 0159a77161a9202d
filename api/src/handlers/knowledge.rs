//! `GET /v1/knowledge/search?q=…&kinds=…&limit=…&match=all|any&consistency=…`: ranked
//! documents of the knowledge base — the `knowledge` projection, full-text indexed by its
//! projector (SQLite FTS5, `porter unicode61`), and also by meaning when Vectorize and
//! Workers AI are configured (`durable::vectors`; ranks fused by `projections::knowledge::fuse`).

use durable::call::{Call, Caller, ConsistencyToken, ProjectorOp};
use durable::names::ObjectName;
use durable::params::{self, check_params, query_pairs};
use durable::projector::PROJECTORS;
use durable::{ApiError, ApiResult, Config};
use projections::knowledge;
use worker::{Env, Request, Response};

use crate::gate::Admitted;

/// Results answered when `limit` is absent.
const DEFAULT_LIMIT: usize = 10;
/// The longest query, in characters.
const MAX_QUERY_CHARS: usize = 500;

pub async fn search(
    req: Request,
    env: &Env,
    config: &Config,
    admitted: &Admitted,
) -> ApiResult<Response> {
    let principal = admitted.principal()?;
    let tenant = principal.tenant.as_str();
    let query = query_pairs(&req.url()?);
    check_params(&query, &["q", "kinds", "limit", "match", "consistency"])?;
    let text = params::param(&query, "q").unwrap_or_default();
    if text.trim().is_empty() || text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "`q` is the text to search for: 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    let match_all = match params::param(&query, "match") {
        None | Some("all") => true,
        Some("any") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`match` is `all` (every word; the default) or `any` (ranked by how many match), not `{other}`"
            )));
        }
    };
    let kinds: Vec<String> = match params::param(&query, "kinds") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|kind| {
                if knowledge::KINDS.contains(&kind) {
                    Ok(kind.to_owned())
                } else {
                    Err(ApiError::bad_request(format!(
                        "unknown kind `{kind}`; kinds: {}",
                        knowledge::KINDS.join(", ")
                    )))
                }
            })
            .collect::<ApiResult<_>>()?,
    };
    let limit = params::limit_param(
        &query,
        DEFAULT_LIMIT,
        config.knowledge_max_results,
        Some("KNOWLEDGE_MAX_RESULTS"),
    )?;
    let consistency = params::param(&query, "consistency")
        .map(|t| {
            ConsistencyToken::parse(t).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`consistency` is a command's `consistency_token` (`{{type}}/{{id}}@{{version}}`), not `{t}`"
                ))
            })
        })
        .transpose()?;
    let fts = knowledge::fts_query(text, match_all);
    // By meaning too, where Vectorize and Workers AI are bound (Cloudflare only).
    let vector_hits = match durable::vectors::Vectors::from_env(env) {
        Some(vectors) => match vectors.query(tenant, text, limit * 3).await {
            Ok(hits) => hits,
            Err(e) => {
                worker::console_warn!("vector search (keyword only this time): {}", e.message);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    if fts.is_none() && vector_hits.is_empty() {
        return Err(ApiError::bad_request(
            "`q` has no words to search for (only punctuation or operators)",
        ));
    }
    let name = ObjectName::Projector {
        tenant: tenant.to_owned(),
        projection: knowledge::NAME.to_owned(),
    };
    let stub = env
        .durable_object(PROJECTORS)?
        .id_from_name(&name.to_string())?
        .get_stub()?;
    Call {
        caller: Some(Caller {
            actor: principal.actor.clone(),
            expires_at: principal.expires_at.saturating_add(auth::LEEWAY_SECS),
        }),
        op: ProjectorOp::Search {
            query: fts,
            kinds,
            limit,
            consistency,
            vector_hits,
        },
    }
    .send(&stub, false, None)
    .await
}
