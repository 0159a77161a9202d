//! `POST /v1/ingest/github`: GitHub webhook deliveries, verified and mapped to `repository`
//! commands.
//!
//! The route's order, which this module's two functions make hard to get wrong:
//! 1. [`verify_signature`] over the raw body with the tenant's webhook secret, **before
//!    anything parses it**: an unsigned body is attacker-controlled input, and a parser is
//!    attack surface. Any failure is 401 and nothing is recorded.
//! 2. [`to_command`] with the `X-GitHub-Event` and `X-GitHub-Delivery` headers: `Ok(None)`
//!    means "acknowledged and ignored" (answer 2xx so GitHub does not retry), `Ok(Some)` is
//!    one command for the `repository` aggregate it names, and a [`PayloadError`] is 400.
//!    Deduplication by delivery id is the aggregate's (see `domain::repository`).
//!
//! Mapped deliveries: `push`; `pull_request` with action `opened`, `closed` (a merge when
//! `pull_request.merged` is true) or `reopened`; `workflow_run` with action `completed` and a
//! conclusion the aggregate knows; `release` with action `published`. Everything else —
//! `ping`, other kinds, other actions — is `Ok(None)`, without reading the body.
//!
//! GitHub's payloads are read leniently (a third-party schema that grows): the fields we
//! need must be there with their types, `null` counts as absent, the rest is ignored. Both
//! of GitHub's content types are read: `application/json` and
//! `application/x-www-form-urlencoded` (the body is `payload=` and the JSON, percent-encoded;
//! the signature covers the encoded body as sent). Values GitHub allows to be longer than
//! the aggregate does (names, titles) are cut to the aggregate's limits, so that a valid
//! delivery never becomes a 422 that GitHub would retry in vain.

use domain::repository::{self, Conclusion, PullRequestAction, PushedCommit, RepositoryCommand};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::error::{self, PayloadError};
use crate::json::At;

/// The header carrying the signature: `sha256=` and 64 hex digits.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The header naming the kind of delivery (`push`, `pull_request`, …).
pub const EVENT_HEADER: &str = "X-GitHub-Event";
/// The header carrying the delivery's unique id (a GUID).
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";
/// A webhook body is at most this many bytes. GitHub caps payloads at 25 MB; a push of
/// thousands of commits can pass 1 MiB, so this is larger than the API's default limit —
/// and a refusal shows as a failed delivery in the repository's webhook settings.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Why a delivery's signature was not accepted. Every variant is HTTP 401 `unauthorized`,
/// and nothing of the delivery is read or recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is absent or empty.
    #[error("the delivery is not signed: X-Hub-Signature-256 is missing")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("X-Hub-Signature-256 must be `sha256=` followed by 64 hex digits")]
    Malformed,
    /// The signature does not match the body under the secret: a forged or altered body,
    /// or a delivery for another tenant.
    #[error("the signature does not match the delivery")]
    Mismatch,
    /// No webhook secret is configured for the tenant (an empty secret would let anyone sign).
    #[error("no webhook secret is configured for this tenant")]
    NoSecret,
}

/// Checks `X-Hub-Signature-256` (`header`; pass `""` when it is absent): HMAC-SHA-256 of the
/// raw `body` under `secret`, compared in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let hex = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex_32(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::NoSecret)?;
    mac.update(body);
    // `verify_slice` compares in constant time: no timing tells a forger how many leading
    // bytes were right.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// 64 hex digits (either case) as 32 bytes.
fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16);
    let mut out = [0_u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        // Each digit is < 16, so the byte fits.
        out[i] = u8::try_from(nibble(pair[0])? * 16 + nibble(pair[1])?).ok()?;
    }
    Some(out)
}

/// One delivery mapped to a command of a `repository` aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCommand {
    /// The repository's aggregate id (`owner~name`, see [`repository::repository_id`]).
    pub aggregate_id: String,
    pub command: RepositoryCommand,
}

impl WebhookCommand {
    /// The command as the command route takes it: `{"type": "RecordPush", "data": …}`.
    pub fn command_json(&self) -> Value {
        // A derived Serialize of strings, integers and lists into a Value cannot fail.
        serde_json::to_value(&self.command).unwrap_or(Value::Null)
    }
}

/// Maps a verified delivery to a `repository` command (see the module docs). `event` is
/// `X-GitHub-Event`, `delivery_id` is `X-GitHub-Delivery`.
pub fn to_command(
    event: &str,
    delivery_id: &str,
    body: &[u8],
) -> Result<Option<WebhookCommand>, PayloadError> {
    if !matches!(event, "push" | "pull_request" | "workflow_run" | "release") {
        return Ok(None);
    }
    let delivery_chars = delivery_id.chars().count();
    if delivery_id.trim().is_empty() || delivery_chars > repository::MAX_DELIVERY_ID_CHARS {
        return Err(PayloadError::invalid(
            DELIVERY_HEADER,
            format!(
                "must be 1 to {} characters",
                repository::MAX_DELIVERY_ID_CHARS
            ),
        ));
    }
    error::check_size(body, MAX_BODY_BYTES)?;
    let document = error::parse_json(&form_payload(body)?)?;
    let root = At::root(&document);
    let action = root.field("action").str_or_null()?;
    let delivery_id = delivery_id.to_owned();
    let command = match (event, action) {
        ("push", _) => push(&root, delivery_id)?,
        ("pull_request", Some(action @ ("opened" | "closed" | "reopened"))) => {
            pull_request(&root, action, delivery_id)?
        }
        ("workflow_run", Some("completed")) => match workflow_run(&root, delivery_id)? {
            Some(command) => command,
            None => return Ok(None),
        },
        ("release", Some("published")) => release(&root, delivery_id)?,
        _ => return Ok(None),
    };
    let full_name = root.field("repository").field("full_name");
    let aggregate_id = repository::repository_id(full_name.str()?)
        .ok_or_else(|| full_name.error("expected `owner/name` as GitHub spells repositories"))?;
    Ok(Some(WebhookCommand {
        aggregate_id,
        command,
    }))
}

/// The JSON of a delivery: the body itself, or the `payload` field of a form-encoded one.
fn form_payload(body: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let Some(encoded) = body.strip_prefix(b"payload=") else {
        return Ok(body.to_vec());
    };
    // GitHub sends `payload` alone; stop at a next field if there is one.
    let encoded = encoded.split(|&b| b == b'&').next().unwrap_or_default();
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&b) = bytes.next() {
        decoded.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [
                    bytes.next().copied().unwrap_or_default(),
                    bytes.next().copied().unwrap_or_default(),
                ];
                std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        PayloadError::NotJson(
                            "the form's `payload` is badly percent-encoded".into(),
                        )
                    })?
            }
            other => other,
        });
    }
    Ok(decoded)
}

/// `value` cut to `max` characters (values GitHub allows to be longer than we keep).
fn cut(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

fn push(root: &At<'_>, delivery_id: String) -> Result<RepositoryCommand, PayloadError> {
    let commits_at = root.field("commits");
    let all = commits_at.array()?;
    // GitHub lists the oldest first; keep the newest.
    let first_kept = all.len().saturating_sub(repository::MAX_COMMITS);
    let commits = (first_kept..all.len())
        .map(|i| {
            let commit = commits_at.item(all, i);
            let author = commit.field("author");
            let name = author
                .field("username")
                .str_or_null()?
                .filter(|name| !name.trim().is_empty())
                .or(author.field("name").str_or_null()?)
                .filter(|name| !name.trim().is_empty())
                .unwrap_or("unknown");
            Ok(PushedCommit {
                id: commit.field("id").str()?.to_owned(),
                message: commit.field("message").str()?.to_owned(),
                author: cut(name, repository::MAX_PERSON_CHARS),
            })
        })
        .collect::<Result<Vec<_>, PayloadError>>()?;
    let pusher = root.field("pusher").field("name");
    Ok(RepositoryCommand::RecordPush {
        delivery_id,
        git_ref: root.field("ref").str()?.to_owned(),
        before: root.field("before").str()?.to_owned(),
        after: root.field("after").str()?.to_owned(),
        commit_count: Some(u32::try_from(all.len()).unwrap_or(u32::MAX)),
        commits,
        pusher: cut(pusher.str()?, repository::MAX_PERSON_CHARS),
    })
}

fn pull_request(
    root: &At<'_>,
    action: &str,
    delivery_id: String,
) -> Result<RepositoryCommand, PayloadError> {
    let pr = root.field("pull_request");
    let merged = pr.field("merged").bool_or_null()?.unwrap_or(false);
    let action = match action {
        "opened" => PullRequestAction::Opened,
        "reopened" => PullRequestAction::Reopened,
        _ if merged => PullRequestAction::Merged,
        _ => PullRequestAction::Closed,
    };
    Ok(RepositoryCommand::RecordPullRequest {
        delivery_id,
        number: root.field("number").u64()?,
        action,
        title: cut(pr.field("title").str()?, repository::MAX_TITLE_CHARS),
        author: cut(
            pr.field("user").field("login").str()?,
            repository::MAX_PERSON_CHARS,
        ),
        url: pr.field("html_url").str()?.to_owned(),
        // An opened or reopened pull request is not merged, whatever a payload says.
        merged: merged && matches!(action, PullRequestAction::Merged),
    })
}

/// `None` for a conclusion the aggregate does not know (GitHub may add some): ignored.
fn workflow_run(
    root: &At<'_>,
    delivery_id: String,
) -> Result<Option<RepositoryCommand>, PayloadError> {
    let run = root.field("workflow_run");
    let Some(conclusion) = run.field("conclusion").str_or_null()? else {
        return Ok(None);
    };
    let Ok(conclusion) = serde_json::from_value::<Conclusion>(Value::from(conclusion)) else {
        return Ok(None);
    };
    let name = run
        .field("name")
        .str_or_null()?
        .filter(|name| !name.trim().is_empty())
        .unwrap_or("workflow");
    Ok(Some(RepositoryCommand::RecordWorkflowRun {
        delivery_id,
        run_id: run.field("id").u64()?,
        name: cut(name, repository::MAX_TITLE_CHARS),
        conclusion,
        head_sha: run.field("head_sha").str()?.to_owned(),
        branch: run
            .field("head_branch")
            .str_or_null()?
            .filter(|branch| !branch.trim().is_empty())
            .map(|branch| cut(branch, repository::MAX_REF_CHARS)),
        url: run.field("html_url").str()?.to_owned(),
    }))
}

fn release(root: &At<'_>, delivery_id: String) -> Result<RepositoryCommand, PayloadError> {
    let release = root.field("release");
    let tag = release.field("tag_name").str()?;
    // A release may have no name; GitHub shows the tag then, and so do we.
    let name = release
        .field("name")
        .str_or_null()?
        .filter(|name| !name.trim().is_empty())
        .unwrap_or(tag);
    Ok(RepositoryCommand::RecordRelease {
        delivery_id,
        tag: tag.to_owned(),
        name: cut(name, repository::MAX_TITLE_CHARS),
        url: release.field("html_url").str()?.to_owned(),
    })
}
