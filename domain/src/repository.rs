//! The `repository` aggregate: what happened in one source repository — pushes, pull
//! requests, CI runs and releases — recorded as development events the knowledge base and
//! the agents read next to production errors and user feedback.
//!
//! Commands arrive from webhooks (the `ingest` crate maps GitHub's deliveries to them), one
//! command per delivery; every event carries the `delivery_id` it came from.
//!
//! **Aggregate id.** A repository is `owner/name` on GitHub, but an aggregate id may not hold
//! `/`. The id is `{owner}~{name}` in lowercase ([`repository_id`]): `~` is in neither an
//! owner nor a repository name on GitHub, is unreserved in URLs (no escaping in routes), and
//! GitHub treats names case-insensitively, so `Octo-Org/App` and `octo-org/app` are one
//! aggregate. A renamed repository becomes a new aggregate (its old events stay under the old
//! id).
//!
//! Decisions:
//! * **Deliveries are deduplicated**: the state remembers the last
//!   [`MAX_REMEMBERED_DELIVERIES`] delivery ids, and a command with one of them decides no
//!   events — not an error, since the sender (GitHub retrying, or someone pressing
//!   "Redeliver") must see success. The check runs before every other rule: what was
//!   accepted once is answered the same way. Older ids are forgotten, which keeps the state
//!   bounded; an idempotency key on the request covers the rest.
//! * **The aggregate records what the source says happened and checks no life cycle**: a
//!   pull request may be merged without an "opened" on record (the webhook was connected
//!   later, or a delivery was lost), and deliveries arrive out of order. What it does check
//!   is that each command is consistent in itself: a pull request whose `action` is
//!   `merged` must say `merged: true`, and one `opened` or `reopened` must not.
//! * `RecordPullRequest` with `action: "closed"` and `merged: true` is a merge
//!   (`PullRequestMerged`): that is how GitHub reports one.
//! * **Workflow runs**: `success` → `WorkflowRunSucceeded`; `failure`, `timed_out` and
//!   `startup_failure` → `WorkflowRunFailed` (with the conclusion); `cancelled`, `skipped`,
//!   `neutral`, `action_required` and `stale` say nothing about the code and decide no
//!   events.
//! * **Pushes are bounded**: at most [`MAX_COMMITS`] commits per command (the mapper keeps the
//!   newest), `commit_count` says how many were pushed in all; commit messages longer than
//!   [`MAX_COMMIT_MESSAGE_CHARS`] are cut to that many characters, the last being `…` — a
//!   long message is not worth refusing a push over.
//! * **The state is bounded**: counters, the latest push, workflow run and release, and the
//!   recent delivery ids. Per pull request or per branch history is in the log.
//! * Commit ids and SHAs are 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent, Rejection};
use crate::fields;
use crate::validate;

/// The state remembers this many of the latest delivery ids.
pub const MAX_REMEMBERED_DELIVERIES: usize = 1000;
/// A delivery id is 1..=this many characters (GitHub's are 36-character GUIDs).
pub const MAX_DELIVERY_ID_CHARS: usize = 100;
/// A push lists at most this many commits.
pub const MAX_COMMITS: usize = 100;
/// Commit messages are cut to this many characters.
pub const MAX_COMMIT_MESSAGE_CHARS: usize = 1000;
/// A git ref or tag is 1..=this many characters.
pub const MAX_REF_CHARS: usize = 255;
/// A person (commit author, pusher, pull request author) is 1..=this many characters.
pub const MAX_PERSON_CHARS: usize = 200;
/// A pull request title, workflow name or release name is 1..=this many characters.
pub const MAX_TITLE_CHARS: usize = 1000;
/// A URL is 1..=this many characters.
pub const MAX_URL_CHARS: usize = 2048;
/// A GitHub owner is 1..=this many characters.
pub const MAX_OWNER_CHARS: usize = 39;
/// A GitHub repository name is 1..=this many characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The aggregate id of the repository `owner/name` (GitHub's `full_name`): `owner~name` in
/// lowercase, or `None` when `full_name` is not an owner (ASCII letters, digits, `-`) and a
/// name (ASCII letters, digits, `-`, `_`, `.`) of GitHub's lengths joined by one `/`.
pub fn repository_id(full_name: &str) -> Option<String> {
    let (owner, name) = full_name.split_once('/')?;
    let owner_ok = (1..=MAX_OWNER_CHARS).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let name_ok = (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (owner_ok && name_ok).then(|| format!("{owner}~{name}").to_ascii_lowercase())
}

/// The stable names of the repository's rules ([`Rejection::rule`]).
pub mod rules {
    /// A delivery id that is empty (or whitespace) or over [`super::MAX_DELIVERY_ID_CHARS`].
    pub const INVALID_DELIVERY_ID: &str = "invalid_delivery_id";
    /// A commit id or SHA that is not 40 or 64 lowercase hex digits.
    pub const INVALID_SHA: &str = "invalid_sha";
    /// A ref or tag that is empty (or whitespace) or over [`super::MAX_REF_CHARS`].
    pub const INVALID_REF: &str = "invalid_ref";
    /// An author or pusher that is empty (or whitespace) or over [`super::MAX_PERSON_CHARS`].
    pub const INVALID_PERSON: &str = "invalid_person";
    /// A title or name that is empty (or whitespace) or over [`super::MAX_TITLE_CHARS`].
    pub const INVALID_TITLE: &str = "invalid_title";
    /// A URL that is empty (or whitespace) or over [`super::MAX_URL_CHARS`].
    pub const INVALID_URL: &str = "invalid_url";
    /// A push with more than [`super::MAX_COMMITS`] commits, or a `commit_count` below the
    /// number listed.
    pub const INVALID_COMMITS: &str = "invalid_commits";
    /// A pull request whose `action` and `merged` contradict each other.
    pub const CONTRADICTORY_PULL_REQUEST: &str = "contradictory_pull_request";

    /// Every rule above.
    pub const ALL: &[&str] = &[
        INVALID_DELIVERY_ID,
        INVALID_SHA,
        INVALID_REF,
        INVALID_PERSON,
        INVALID_TITLE,
        INVALID_URL,
        INVALID_COMMITS,
        CONTRADICTORY_PULL_REQUEST,
    ];
}

/// One commit of a push, as `RecordPush` lists it: unknown fields are refused, like
/// everywhere in a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedCommit {
    pub id: String,
    pub message: String,
    pub author: String,
}

/// One commit of a push, as `PushRecorded` holds it (message cut). A separate type from
/// [`PushedCommit`] because events ignore unknown fields on decoding, so that a newer writer
/// may add one without breaking an older reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub id: String,
    pub message: String,
    pub author: String,
}

/// What happened to a pull request, as the source says it. On the wire in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullRequestAction {
    Opened,
    Closed,
    Reopened,
    Merged,
}

/// How a workflow run ended (GitHub's `conclusion`). On the wire in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    TimedOut,
    StartupFailure,
    Cancelled,
    Skipped,
    Neutral,
    ActionRequired,
    Stale,
}

impl PullRequestAction {
    /// The action as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestAction::Opened => "opened",
            PullRequestAction::Closed => "closed",
            PullRequestAction::Reopened => "reopened",
            PullRequestAction::Merged => "merged",
        }
    }
}

impl Conclusion {
    /// Whether the run says the code is broken.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Conclusion::Failure | Conclusion::TimedOut | Conclusion::StartupFailure
        )
    }
}

/// The latest push, as the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPush {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    pub pusher: String,
    pub commit_count: u32,
}

/// The latest completed workflow run that succeeded or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWorkflowRun {
    pub run_id: u64,
    pub name: String,
    pub conclusion: Conclusion,
    pub head_sha: String,
    pub branch: Option<String>,
    pub url: String,
}

/// The latest release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRelease {
    pub tag: String,
    pub name: String,
    pub url: String,
}

/// The repository's state, as clients see it and as it is snapshotted. Bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub pushes: u64,
    pub pull_requests_opened: u64,
    pub pull_requests_reopened: u64,
    pub pull_requests_merged: u64,
    pub pull_requests_closed: u64,
    pub workflow_runs_succeeded: u64,
    pub workflow_runs_failed: u64,
    pub releases: u64,
    pub last_push: Option<LastPush>,
    pub last_workflow_run: Option<LastWorkflowRun>,
    pub last_release: Option<LastRelease>,
    /// The latest [`MAX_REMEMBERED_DELIVERIES`] delivery ids, oldest first.
    pub recent_deliveries: VecDeque<String>,
}

/// The repository's commands, on the wire `{"type": "RecordPush", "data": {...}}`. Unknown
/// fields are refused (400), and so is `null` for an optional field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum RepositoryCommand {
    /// `commit_count` absent: the number of `commits` listed.
    RecordPush {
        delivery_id: String,
        #[serde(rename = "ref")]
        git_ref: String,
        before: String,
        after: String,
        commits: Vec<PushedCommit>,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        commit_count: Option<u32>,
        pusher: String,
    },
    RecordPullRequest {
        delivery_id: String,
        number: u64,
        action: PullRequestAction,
        title: String,
        author: String,
        url: String,
        merged: bool,
    },
    /// `branch`: the run's head branch, when it has one.
    RecordWorkflowRun {
        delivery_id: String,
        run_id: u64,
        name: String,
        conclusion: Conclusion,
        head_sha: String,
        #[serde(
            default,
            deserialize_with = "fields::never_null",
            skip_serializing_if = "Option::is_none"
        )]
        branch: Option<String>,
        url: String,
    },
    RecordRelease {
        delivery_id: String,
        tag: String,
        name: String,
        url: String,
    },
}

/// The repository's events. Every one carries the delivery it came from; unknown fields are
/// ignored on decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RepositoryEvent {
    /// `commits` are the newest ones (messages cut), `commit_count` all of them.
    PushRecorded {
        delivery_id: String,
        #[serde(rename = "ref")]
        git_ref: String,
        before: String,
        after: String,
        commits: Vec<Commit>,
        commit_count: u32,
        pusher: String,
    },
    PullRequestOpened(PullRequestRecorded),
    PullRequestReopened(PullRequestRecorded),
    PullRequestMerged(PullRequestRecorded),
    PullRequestClosed(PullRequestRecorded),
    WorkflowRunSucceeded(WorkflowRunRecorded),
    WorkflowRunFailed(WorkflowRunRecorded),
    ReleasePublished {
        delivery_id: String,
        tag: String,
        name: String,
        url: String,
    },
}

/// The payload of the pull request events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRecorded {
    pub delivery_id: String,
    pub number: u64,
    pub title: String,
    pub author: String,
    pub url: String,
}

/// The payload of the workflow run events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRunRecorded {
    pub delivery_id: String,
    pub run_id: u64,
    pub name: String,
    pub conclusion: Conclusion,
    pub head_sha: String,
    pub branch: Option<String>,
    pub url: String,
}

impl RepositoryEvent {
    /// The delivery the event came from.
    pub fn delivery_id(&self) -> &str {
        match self {
            RepositoryEvent::PushRecorded { delivery_id, .. }
            | RepositoryEvent::ReleasePublished { delivery_id, .. } => delivery_id,
            RepositoryEvent::PullRequestOpened(pr)
            | RepositoryEvent::PullRequestReopened(pr)
            | RepositoryEvent::PullRequestMerged(pr)
            | RepositoryEvent::PullRequestClosed(pr) => &pr.delivery_id,
            RepositoryEvent::WorkflowRunSucceeded(run)
            | RepositoryEvent::WorkflowRunFailed(run) => &run.delivery_id,
        }
    }
}

impl DomainEvent for RepositoryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RepositoryEvent::PushRecorded { .. } => "PushRecorded",
            RepositoryEvent::PullRequestOpened(_) => "PullRequestOpened",
            RepositoryEvent::PullRequestReopened(_) => "PullRequestReopened",
            RepositoryEvent::PullRequestMerged(_) => "PullRequestMerged",
            RepositoryEvent::PullRequestClosed(_) => "PullRequestClosed",
            RepositoryEvent::WorkflowRunSucceeded(_) => "WorkflowRunSucceeded",
            RepositoryEvent::WorkflowRunFailed(_) => "WorkflowRunFailed",
            RepositoryEvent::ReleasePublished { .. } => "ReleasePublished",
        }
    }
}

fn check_sha(what: &str, value: &str) -> Result<(), Rejection> {
    let hex = value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && matches!(value.len(), 40 | 64) {
        Ok(())
    } else {
        Err(Rejection::new(
            rules::INVALID_SHA,
            format!("{what} must be 40 or 64 lowercase hex digits"),
        ))
    }
}

/// `message` cut to [`MAX_COMMIT_MESSAGE_CHARS`] characters, the last one `…` when cut.
fn cut_message(message: String) -> String {
    match message.char_indices().nth(MAX_COMMIT_MESSAGE_CHARS - 1) {
        Some((end, _)) if message[end..].chars().nth(1).is_some() => {
            format!("{}…", &message[..end])
        }
        _ => message,
    }
}

impl Repository {
    fn seen(&self, delivery_id: &str) -> bool {
        self.recent_deliveries
            .iter()
            .any(|seen| seen == delivery_id)
    }

    fn remember(&mut self, delivery_id: &str) {
        if self.recent_deliveries.len() == MAX_REMEMBERED_DELIVERIES {
            self.recent_deliveries.pop_front();
        }
        self.recent_deliveries.push_back(delivery_id.to_owned());
    }
}

impl Aggregate for Repository {
    const TYPE: &'static str = "repository";
    type Command = RepositoryCommand;
    type Event = RepositoryEvent;

    fn decide(&self, command: RepositoryCommand) -> Result<Vec<RepositoryEvent>, Rejection> {
        let delivery_id = match &command {
            RepositoryCommand::RecordPush { delivery_id, .. }
            | RepositoryCommand::RecordPullRequest { delivery_id, .. }
            | RepositoryCommand::RecordWorkflowRun { delivery_id, .. }
            | RepositoryCommand::RecordRelease { delivery_id, .. } => delivery_id,
        };
        if self.seen(delivery_id) {
            return Ok(vec![]);
        }
        validate::text(
            rules::INVALID_DELIVERY_ID,
            "the delivery id",
            delivery_id,
            MAX_DELIVERY_ID_CHARS,
        )?;
        let url_rule =
            |url: &str| validate::text(rules::INVALID_URL, "the URL", url, MAX_URL_CHARS);
        match command {
            RepositoryCommand::RecordPush {
                delivery_id,
                git_ref,
                before,
                after,
                commits,
                commit_count,
                pusher,
            } => {
                validate::text(rules::INVALID_REF, "the ref", &git_ref, MAX_REF_CHARS)?;
                check_sha("`before`", &before)?;
                check_sha("`after`", &after)?;
                validate::text(
                    rules::INVALID_PERSON,
                    "the pusher",
                    &pusher,
                    MAX_PERSON_CHARS,
                )?;
                if commits.len() > MAX_COMMITS {
                    return Err(Rejection::new(
                        rules::INVALID_COMMITS,
                        format!(
                            "a push lists at most {MAX_COMMITS} commits (got {}); \
                             give the total in commit_count",
                            commits.len()
                        ),
                    ));
                }
                // At most MAX_COMMITS (100), so it fits a u32 on every target.
                let listed = commits.len() as u32;
                let commit_count = commit_count.unwrap_or(listed);
                if commit_count < listed {
                    return Err(Rejection::new(
                        rules::INVALID_COMMITS,
                        format!("commit_count {commit_count} is below the {listed} commits listed"),
                    ));
                }
                let commits = commits
                    .into_iter()
                    .enumerate()
                    .map(|(index, commit)| {
                        check_sha(&format!("commit {}'s id", index + 1), &commit.id)?;
                        validate::text(
                            rules::INVALID_PERSON,
                            &format!("commit {}'s author", index + 1),
                            &commit.author,
                            MAX_PERSON_CHARS,
                        )?;
                        Ok(Commit {
                            id: commit.id,
                            message: cut_message(commit.message),
                            author: commit.author,
                        })
                    })
                    .collect::<Result<_, Rejection>>()?;
                Ok(vec![RepositoryEvent::PushRecorded {
                    delivery_id,
                    git_ref,
                    before,
                    after,
                    commits,
                    commit_count,
                    pusher,
                }])
            }
            RepositoryCommand::RecordPullRequest {
                delivery_id,
                number,
                action,
                title,
                author,
                url,
                merged,
            } => {
                validate::text(rules::INVALID_TITLE, "the title", &title, MAX_TITLE_CHARS)?;
                validate::text(
                    rules::INVALID_PERSON,
                    "the author",
                    &author,
                    MAX_PERSON_CHARS,
                )?;
                url_rule(&url)?;
                let contradiction = match (action, merged) {
                    (PullRequestAction::Merged, false) => Some("`merged` must be true"),
                    (PullRequestAction::Opened | PullRequestAction::Reopened, true) => {
                        Some("`merged` must be false")
                    }
                    _ => None,
                };
                if let Some(why) = contradiction {
                    return Err(Rejection::new(
                        rules::CONTRADICTORY_PULL_REQUEST,
                        format!(
                            "pull request #{number}: {why} with action `{}`",
                            action.as_str()
                        ),
                    ));
                }
                let recorded = PullRequestRecorded {
                    delivery_id,
                    number,
                    title,
                    author,
                    url,
                };
                Ok(vec![match action {
                    PullRequestAction::Opened => RepositoryEvent::PullRequestOpened(recorded),
                    PullRequestAction::Reopened => RepositoryEvent::PullRequestReopened(recorded),
                    PullRequestAction::Merged | PullRequestAction::Closed if merged => {
                        RepositoryEvent::PullRequestMerged(recorded)
                    }
                    PullRequestAction::Merged | PullRequestAction::Closed => {
                        RepositoryEvent::PullRequestClosed(recorded)
                    }
                }])
            }
            RepositoryCommand::RecordWorkflowRun {
                delivery_id,
                run_id,
                name,
                conclusion,
                head_sha,
                branch,
                url,
            } => {
                validate::text(
                    rules::INVALID_TITLE,
                    "the workflow name",
                    &name,
                    MAX_TITLE_CHARS,
                )?;
                check_sha("`head_sha`", &head_sha)?;
                if let Some(branch) = &branch {
                    validate::text(rules::INVALID_REF, "the branch", branch, MAX_REF_CHARS)?;
                }
                url_rule(&url)?;
                let recorded = WorkflowRunRecorded {
                    delivery_id,
                    run_id,
                    name,
                    conclusion,
                    head_sha,
                    branch,
                    url,
                };
                Ok(match conclusion {
                    Conclusion::Success => vec![RepositoryEvent::WorkflowRunSucceeded(recorded)],
                    c if c.is_failure() => vec![RepositoryEvent::WorkflowRunFailed(recorded)],
                    _ => vec![],
                })
            }
            RepositoryCommand::RecordRelease {
                delivery_id,
                tag,
                name,
                url,
            } => {
                validate::text(rules::INVALID_REF, "the tag", &tag, MAX_REF_CHARS)?;
                validate::text(
                    rules::INVALID_TITLE,
                    "the release name",
                    &name,
                    MAX_TITLE_CHARS,
                )?;
                url_rule(&url)?;
                Ok(vec![RepositoryEvent::ReleasePublished {
                    delivery_id,
                    tag,
                    name,
                    url,
                }])
            }
        }
    }

    fn apply(&mut self, event: &RepositoryEvent) {
        self.remember(event.delivery_id());
        match event {
            RepositoryEvent::PushRecorded {
                git_ref,
                after,
                commit_count,
                pusher,
                ..
            } => {
                self.pushes += 1;
                self.last_push = Some(LastPush {
                    git_ref: git_ref.clone(),
                    after: after.clone(),
                    pusher: pusher.clone(),
                    commit_count: *commit_count,
                });
            }
            RepositoryEvent::PullRequestOpened(_) => self.pull_requests_opened += 1,
            RepositoryEvent::PullRequestReopened(_) => self.pull_requests_reopened += 1,
            RepositoryEvent::PullRequestMerged(_) => self.pull_requests_merged += 1,
            RepositoryEvent::PullRequestClosed(_) => self.pull_requests_closed += 1,
            RepositoryEvent::WorkflowRunSucceeded(run)
            | RepositoryEvent::WorkflowRunFailed(run) => {
                if matches!(event, RepositoryEvent::WorkflowRunFailed(_)) {
                    self.workflow_runs_failed += 1;
                } else {
                    self.workflow_runs_succeeded += 1;
                }
                self.last_workflow_run = Some(LastWorkflowRun {
                    run_id: run.run_id,
                    name: run.name.clone(),
                    conclusion: run.conclusion,
                    head_sha: run.head_sha.clone(),
                    branch: run.branch.clone(),
                    url: run.url.clone(),
                });
            }
            RepositoryEvent::ReleasePublished { tag, name, url, .. } => {
                self.releases += 1;
                self.last_release = Some(LastRelease {
                    tag: tag.clone(),
                    name: name.clone(),
                    url: url.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::testing::given;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    const SHA_A: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const SHA_B: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
    const ZEROS: &str = "0000000000000000000000000000000000000000";

    fn pushed_commit(message: &str) -> PushedCommit {
        PushedCommit {
            id: s(SHA_B),
            message: s(message),
            author: s("Mona Lisa"),
        }
    }

    fn push(delivery_id: &str, commits: Vec<PushedCommit>) -> RepositoryCommand {
        RepositoryCommand::RecordPush {
            delivery_id: s(delivery_id),
            git_ref: s("refs/heads/main"),
            before: s(SHA_A),
            after: s(SHA_B),
            commits,
            commit_count: None,
            pusher: s("octocat"),
        }
    }

    fn push_recorded(delivery_id: &str) -> RepositoryEvent {
        RepositoryEvent::PushRecorded {
            delivery_id: s(delivery_id),
            git_ref: s("refs/heads/main"),
            before: s(SHA_A),
            after: s(SHA_B),
            commits: vec![Commit {
                id: s(SHA_B),
                message: s("Fix the login timeout"),
                author: s("Mona Lisa"),
            }],
            commit_count: 1,
            pusher: s("octocat"),
        }
    }

    fn pull_request(action: PullRequestAction, merged: bool) -> RepositoryCommand {
        RepositoryCommand::RecordPullRequest {
            delivery_id: s("d-pr"),
            number: 42,
            action,
            title: s("Guard against a missing card"),
            author: s("octocat"),
            url: s("https://github.com/octo-org/app/pull/42"),
            merged,
        }
    }

    fn pr_recorded() -> PullRequestRecorded {
        PullRequestRecorded {
            delivery_id: s("d-pr"),
            number: 42,
            title: s("Guard against a missing card"),
            author: s("octocat"),
            url: s("https://github.com/octo-org/app/pull/42"),
        }
    }

    fn workflow_run(delivery_id: &str, conclusion: Conclusion) -> RepositoryCommand {
        RepositoryCommand::RecordWorkflowRun {
            delivery_id: s(delivery_id),
            run_id: 30433642,
            name: s("CI"),
            conclusion,
            head_sha: s(SHA_B),
            branch: Some(s("main")),
            url: s("https://github.com/octo-org/app/actions/runs/30433642"),
        }
    }

    fn run_recorded(delivery_id: &str, conclusion: Conclusion) -> WorkflowRunRecorded {
        WorkflowRunRecorded {
            delivery_id: s(delivery_id),
            run_id: 30433642,
            name: s("CI"),
            conclusion,
            head_sha: s(SHA_B),
            branch: Some(s("main")),
            url: s("https://github.com/octo-org/app/actions/runs/30433642"),
        }
    }

    #[test]
    fn repository_ids_encode_owner_and_name_without_a_slash() {
        assert_eq!(
            repository_id("Octo-Org/Hello_World.rs").as_deref(),
            Some("octo-org~hello_world.rs")
        );
        for bad in [
            "octo-org",
            "/app",
            "octo-org/",
            "octo/org/app",
            "octo org/app",
            "octo.org/app",
            "octo-org/a~b",
            "octo-org/app%2F",
        ] {
            assert_eq!(repository_id(bad), None, "{bad}");
        }
        let longest = format!(
            "{}/{}",
            "o".repeat(MAX_OWNER_CHARS),
            "n".repeat(MAX_NAME_CHARS)
        );
        assert!(repository_id(&longest).is_some());
        let too_long = format!("{}/n", "o".repeat(MAX_OWNER_CHARS + 1));
        assert_eq!(repository_id(&too_long), None);
    }

    #[test]
    fn a_push_is_recorded_with_its_commits() {
        let repository = given::<Repository>([])
            .when(push("d-1", vec![pushed_commit("Fix the login timeout")]))
            .then_expect([push_recorded("d-1")]);
        assert_eq!(repository.pushes, 1);
        assert_eq!(
            repository.last_push,
            Some(LastPush {
                git_ref: s("refs/heads/main"),
                after: s(SHA_B),
                pusher: s("octocat"),
                commit_count: 1
            })
        );
        assert_eq!(repository.recent_deliveries, [s("d-1")]);
    }

    #[test]
    fn a_repeated_delivery_decides_nothing() {
        let repository = given::<Repository>([push_recorded("d-1")])
            .when(push("d-1", vec![pushed_commit("Fix the login timeout")]))
            .then_expect([]);
        assert_eq!(repository.pushes, 1);
        // Whatever the repeated delivery holds: it was answered once already.
        given::<Repository>([push_recorded("d-1")])
            .when(RepositoryCommand::RecordRelease {
                delivery_id: s("d-1"),
                tag: s(""),
                name: s(""),
                url: s(""),
            })
            .then_expect([]);
    }

    #[test]
    fn only_the_latest_1000_deliveries_are_remembered() {
        let history: Vec<_> = (0..=MAX_REMEMBERED_DELIVERIES)
            .map(|n| push_recorded(&format!("d-{n}")))
            .collect();
        let repository = given::<Repository>(history.clone()).state().clone();
        assert_eq!(
            repository.recent_deliveries.len(),
            MAX_REMEMBERED_DELIVERIES
        );
        assert_eq!(repository.recent_deliveries.front(), Some(&s("d-1")));
        // d-0 has been forgotten: it would be recorded again; d-1 still is not.
        given::<Repository>(history.clone())
            .when(push("d-0", vec![pushed_commit("Fix the login timeout")]))
            .then_expect([push_recorded("d-0")]);
        given::<Repository>(history)
            .when(push("d-1", vec![pushed_commit("Fix the login timeout")]))
            .then_expect([]);
    }

    #[test]
    fn push_values_are_checked() {
        given::<Repository>([])
            .when(push(" ", vec![]))
            .then_reject(rules::INVALID_DELIVERY_ID);
        let rejection = given::<Repository>([])
            .when(RepositoryCommand::RecordPush {
                delivery_id: s("d"),
                git_ref: s("refs/heads/main"),
                before: s("6DCB09B5B57875F334F61AEBED695E2E4193DB5E"),
                after: s(SHA_B),
                commits: vec![],
                commit_count: None,
                pusher: s("octocat"),
            })
            .then_reject(rules::INVALID_SHA);
        assert_eq!(
            rejection.message,
            "`before` must be 40 or 64 lowercase hex digits"
        );
        let mut bad_commit = pushed_commit("x");
        bad_commit.id = s("abc");
        let rejection = given::<Repository>([])
            .when(push("d", vec![pushed_commit("x"), bad_commit]))
            .then_reject(rules::INVALID_SHA);
        assert_eq!(
            rejection.message,
            "commit 2's id must be 40 or 64 lowercase hex digits"
        );
        let mut no_author = pushed_commit("x");
        no_author.author = s("");
        given::<Repository>([])
            .when(push("d", vec![no_author]))
            .then_reject(rules::INVALID_PERSON);
    }

    #[test]
    fn a_branch_deletion_and_an_empty_commit_message_are_pushes_too() {
        let repository = given::<Repository>([])
            .when(RepositoryCommand::RecordPush {
                delivery_id: s("d"),
                git_ref: s("refs/heads/feature"),
                before: s(SHA_A),
                after: s(ZEROS),
                commits: vec![pushed_commit("")],
                commit_count: None,
                pusher: s("octocat"),
            })
            .then_expect([RepositoryEvent::PushRecorded {
                delivery_id: s("d"),
                git_ref: s("refs/heads/feature"),
                before: s(SHA_A),
                after: s(ZEROS),
                commits: vec![Commit {
                    id: s(SHA_B),
                    message: s(""),
                    author: s("Mona Lisa"),
                }],
                commit_count: 1,
                pusher: s("octocat"),
            }]);
        assert_eq!(repository.pushes, 1);
    }

    #[test]
    fn pushes_are_bounded_and_long_messages_cut() {
        let rejection = given::<Repository>([])
            .when(push("d", vec![pushed_commit("x"); MAX_COMMITS + 1]))
            .then_reject(rules::INVALID_COMMITS);
        assert_eq!(
            rejection.message,
            "a push lists at most 100 commits (got 101); give the total in commit_count"
        );
        let mut big = push("d", vec![pushed_commit("x"); 2]);
        if let RepositoryCommand::RecordPush { commit_count, .. } = &mut big {
            *commit_count = Some(1);
        }
        given::<Repository>([])
            .when(big)
            .then_reject(rules::INVALID_COMMITS);

        let exact = "é".repeat(MAX_COMMIT_MESSAGE_CHARS);
        let long = format!("{exact}!");
        let mut command = push("d", vec![pushed_commit(&exact), pushed_commit(&long)]);
        if let RepositoryCommand::RecordPush { commit_count, .. } = &mut command {
            *commit_count = Some(2048);
        }
        let events = given::<Repository>([]).when(command);
        let Ok(events) = events.outcome() else {
            panic!("{events:?}")
        };
        let RepositoryEvent::PushRecorded {
            commits,
            commit_count,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*commit_count, 2048);
        assert_eq!(commits[0].message, exact, "a message at the limit is kept");
        assert_eq!(
            commits[1].message,
            format!("{}…", "é".repeat(MAX_COMMIT_MESSAGE_CHARS - 1))
        );
        assert_eq!(commits[1].message.chars().count(), MAX_COMMIT_MESSAGE_CHARS);
    }

    #[test]
    fn pull_requests_are_opened_merged_closed_and_reopened() {
        use PullRequestAction::*;
        let cases = [
            (
                Opened,
                false,
                RepositoryEvent::PullRequestOpened(pr_recorded()),
            ),
            (
                Reopened,
                false,
                RepositoryEvent::PullRequestReopened(pr_recorded()),
            ),
            (
                Closed,
                false,
                RepositoryEvent::PullRequestClosed(pr_recorded()),
            ),
            // GitHub reports a merge as `closed` with `merged: true`.
            (
                Closed,
                true,
                RepositoryEvent::PullRequestMerged(pr_recorded()),
            ),
            (
                Merged,
                true,
                RepositoryEvent::PullRequestMerged(pr_recorded()),
            ),
        ];
        for (action, merged, event) in cases {
            given::<Repository>([])
                .when(pull_request(action, merged))
                .then_expect([event]);
        }
        let repository = given::<Repository>([RepositoryEvent::PullRequestOpened(pr_recorded())])
            .state()
            .clone();
        assert_eq!(repository.pull_requests_opened, 1);
        // No life cycle is checked: a merge without an opening on record is recorded.
        let repository = given::<Repository>([])
            .when(pull_request(Closed, true))
            .then_expect([RepositoryEvent::PullRequestMerged(pr_recorded())]);
        assert_eq!(
            (
                repository.pull_requests_merged,
                repository.pull_requests_closed
            ),
            (1, 0)
        );
    }

    #[test]
    fn a_pull_request_may_not_contradict_itself() {
        let rejection = given::<Repository>([])
            .when(pull_request(PullRequestAction::Merged, false))
            .then_reject(rules::CONTRADICTORY_PULL_REQUEST);
        assert_eq!(
            rejection.message,
            "pull request #42: `merged` must be true with action `merged`"
        );
        let rejection = given::<Repository>([])
            .when(pull_request(PullRequestAction::Reopened, true))
            .then_reject(rules::CONTRADICTORY_PULL_REQUEST);
        assert_eq!(
            rejection.message,
            "pull request #42: `merged` must be false with action `reopened`"
        );
        let mut untitled = pull_request(PullRequestAction::Opened, false);
        if let RepositoryCommand::RecordPullRequest { title, .. } = &mut untitled {
            *title = s("");
        }
        given::<Repository>([])
            .when(untitled)
            .then_reject(rules::INVALID_TITLE);
    }

    #[test]
    fn workflow_runs_succeed_fail_or_say_nothing() {
        let repository = given::<Repository>([])
            .when(workflow_run("d-1", Conclusion::Success))
            .then_expect([RepositoryEvent::WorkflowRunSucceeded(run_recorded(
                "d-1",
                Conclusion::Success,
            ))]);
        assert_eq!(repository.workflow_runs_succeeded, 1);
        for conclusion in [
            Conclusion::Failure,
            Conclusion::TimedOut,
            Conclusion::StartupFailure,
        ] {
            let repository = given::<Repository>([])
                .when(workflow_run("d-2", conclusion))
                .then_expect([RepositoryEvent::WorkflowRunFailed(run_recorded(
                    "d-2", conclusion,
                ))]);
            assert_eq!(repository.workflow_runs_failed, 1);
            assert_eq!(
                repository.last_workflow_run.map(|run| run.conclusion),
                Some(conclusion)
            );
        }
        for conclusion in [
            Conclusion::Cancelled,
            Conclusion::Skipped,
            Conclusion::Neutral,
            Conclusion::ActionRequired,
            Conclusion::Stale,
        ] {
            given::<Repository>([])
                .when(workflow_run("d-3", conclusion))
                .then_expect([]);
        }
        let mut unnamed = workflow_run("d-4", Conclusion::Failure);
        if let RepositoryCommand::RecordWorkflowRun { head_sha, .. } = &mut unnamed {
            *head_sha = s("main");
        }
        given::<Repository>([])
            .when(unnamed)
            .then_reject(rules::INVALID_SHA);
    }

    #[test]
    fn a_release_is_published() {
        let repository = given::<Repository>([])
            .when(RepositoryCommand::RecordRelease {
                delivery_id: s("d-r"),
                tag: s("v1.4.1"),
                name: s("1.4.1"),
                url: s("https://github.com/octo-org/app/releases/tag/v1.4.1"),
            })
            .then_expect([RepositoryEvent::ReleasePublished {
                delivery_id: s("d-r"),
                tag: s("v1.4.1"),
                name: s("1.4.1"),
                url: s("https://github.com/octo-org/app/releases/tag/v1.4.1"),
            }]);
        assert_eq!(repository.releases, 1);
        assert_eq!(
            repository.last_release.map(|release| release.tag),
            Some(s("v1.4.1"))
        );
        given::<Repository>([])
            .when(RepositoryCommand::RecordRelease {
                delivery_id: s("d-r"),
                tag: s("v1"),
                name: s("1"),
                url: s(" "),
            })
            .then_reject(rules::INVALID_URL);
    }

    #[test]
    fn the_wire_shape_of_commands_and_events() {
        given::<Repository>([])
            .when_json(
                "RecordPullRequest",
                json!({
                    "delivery_id": "d", "number": 7, "action": "closed", "title": "T",
                    "author": "octocat", "url": "https://github.com/o/a/pull/7", "merged": true
                }),
            )
            .then_expect([json!({"type": "PullRequestMerged", "data": {
                "delivery_id": "d", "number": 7, "title": "T", "author": "octocat",
                "url": "https://github.com/o/a/pull/7"
            }})]);
        given::<Repository>([])
            .when_json(
                "RecordPush",
                json!({
                    "delivery_id": "d", "ref": "refs/tags/v1", "before": ZEROS, "after": SHA_A,
                    "commits": [], "pusher": "octocat"
                }),
            )
            .then_expect([json!({"type": "PushRecorded", "data": {
                "delivery_id": "d", "ref": "refs/tags/v1", "before": ZEROS, "after": SHA_A,
                "commits": [], "commit_count": 0, "pusher": "octocat"
            }})]);
        given::<Repository>([])
            .when_json(
                "RecordWorkflowRun",
                json!({
                    "delivery_id": "d", "run_id": 9, "name": "CI", "conclusion": "timed_out",
                    "head_sha": SHA_A, "url": "https://github.com/o/a/actions/runs/9"
                }),
            )
            .then_expect([json!({"type": "WorkflowRunFailed", "data": {
                "delivery_id": "d", "run_id": 9, "name": "CI", "conclusion": "timed_out",
                "head_sha": SHA_A, "branch": null, "url": "https://github.com/o/a/actions/runs/9"
            }})]);
    }

    /// Every field, given `null`, a wrong type or an unknown value, is a bad command (400)
    /// naming it; unknown fields are refused, inside commits too.
    #[test]
    fn a_field_is_absent_or_of_its_type_never_null() {
        let valid_push = json!({
            "delivery_id": "d", "ref": "refs/heads/main", "before": SHA_A, "after": SHA_B,
            "commits": [{"id": SHA_B, "message": "m", "author": "a"}], "pusher": "p"
        });
        let valid_pr = json!({
            "delivery_id": "d", "number": 1, "action": "opened", "title": "t",
            "author": "a", "url": "u", "merged": false
        });
        let valid_run = json!({
            "delivery_id": "d", "run_id": 1, "name": "CI", "conclusion": "success",
            "head_sha": SHA_A, "url": "u"
        });
        let cases: [(&str, &Value, &str, Value, &str); 8] = [
            (
                "RecordPush",
                &valid_push,
                "ref",
                json!(null),
                "invalid type: null, expected a string",
            ),
            (
                "RecordPush",
                &valid_push,
                "commit_count",
                json!(null),
                "null is not allowed; leave the field out instead",
            ),
            (
                "RecordPush",
                &valid_push,
                "commits",
                json!([{"id": SHA_B, "message": "m", "author": "a", "sha": SHA_B}]),
                "unknown field `sha`, expected one of `id`, `message`, `author`",
            ),
            (
                "RecordPullRequest",
                &valid_pr,
                "action",
                json!("synchronize"),
                "unknown variant `synchronize`, expected one of `opened`, `closed`, `reopened`, `merged`",
            ),
            (
                "RecordPullRequest",
                &valid_pr,
                "merged",
                json!(null),
                "invalid type: null, expected a boolean",
            ),
            (
                "RecordPullRequest",
                &valid_pr,
                "number",
                json!(-1),
                "invalid value: integer `-1`, expected u64",
            ),
            (
                "RecordWorkflowRun",
                &valid_run,
                "branch",
                json!(null),
                "null is not allowed; leave the field out instead",
            ),
            (
                "RecordWorkflowRun",
                &valid_run,
                "conclusion",
                json!(null),
                "invalid type: null, expected string or map",
            ),
        ];
        for (command_type, valid, field, value, error) in cases {
            let mut data = valid.clone();
            data[field] = value.clone();
            let message = given::<Repository>([])
                .when_json(command_type, data)
                .then_bad_command();
            assert!(
                message.starts_with(&format!(
                    "invalid `{command_type}` command: `data.{field}`: {error}"
                )),
                "{command_type}.{field} = {value}: {message}"
            );
        }
        let mut data = valid_pr.clone();
        data["repository"] = json!("o/a");
        let message = given::<Repository>([])
            .when_json("RecordPullRequest", data)
            .then_bad_command();
        assert!(message.contains("unknown field `repository`"), "{message}");
    }

    #[test]
    fn a_serialized_command_decodes_to_itself() {
        for command in [
            push("d", vec![pushed_commit("m")]),
            pull_request(PullRequestAction::Merged, true),
            workflow_run("d", Conclusion::StartupFailure),
            RepositoryCommand::RecordRelease {
                delivery_id: s("d"),
                tag: s("t"),
                name: s("n"),
                url: s("u"),
            },
        ] {
            let wire = serde_json::to_value(&command).unwrap();
            assert_eq!(
                serde_json::from_value::<RepositoryCommand>(wire.clone()).ok(),
                Some(command),
                "{wire}"
            );
        }
    }

    #[test]
    fn rule_names_are_distinct_snake_case() {
        for (index, rule) in rules::ALL.iter().enumerate() {
            assert!(
                rule.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{rule}"
            );
            assert!(!rules::ALL[..index].contains(rule), "{rule} twice");
        }
    }
}
