//! `edgeloop agent triage`: turns submitted feedback into cards on a triage board, using
//! the knowledge base as context.
//!
//! For each `FeedbackSubmitted` of its consumer group (made on first run with
//! `aggregate_type=feedback`, `types=["FeedbackSubmitted"]`, reading from the beginning):
//! 1. read the feedback; if it is already triaged or closed, there is nothing to do;
//! 2. search the knowledge base (`GET /v1/knowledge/search`, `match=any`, 5 results) with
//!    the feedback's text: for cards, and for error groups and CI runs. Each open card is
//!    compared with the feedback ([`context`]: a similarity in `[0, 1]`, never the search's
//!    score); the best one at or above `--link-threshold` is a near-duplicate. Error groups
//!    that are not resolved and CI runs that failed, at or above `--related-threshold`,
//!    are related;
//! 3. a near-duplicate: `CommentOnCard` on that card ("Same as feedback f2: … (similarity
//!    0.82)", and what is related), and the feedback joins it with the card's labels — no
//!    new card. Otherwise: classify ([`Classifier`]: a model when `AGENT_LLM_URL` is set,
//!    else the rules), `AddCard {card_id: "fb-<feedback id>", title, labels}`, and, when
//!    something is related, a `CommentOnCard` on it saying so ("Possibly related: error
//!    group TypeError: x is undefined (seen 42 times, open)");
//! 4. `TriageFeedback {board_id, card_id, labels, evidence}` on the feedback: the decision
//!    (`new_card` or `linked_to_existing_card`), the cards compared (doc id, similarity,
//!    search rank) and the related documents (doc id, kind, status, similarity). The
//!    decision and its evidence are also logged.
//!
//! Only cards are link targets: the feedback itself is in the knowledge base too (kind
//! `feedback`) but is never searched for, and its own card `fb-<id>` (made by an earlier
//! delivery) is never a target — when the search shows it, the earlier delivery's decision
//! (a new card) stands. Archived cards are not targets. A link whose card was archived or
//! removed in the meantime becomes a new card.
//!
//! **Without a knowledge base.** A failed search — a 404 from a Worker that predates it, a
//! timeout — is logged as a warning and the feedback is triaged as before, without
//! context; the event is not retried or parked for it. A Worker whose `TriageFeedback`
//! does not know `evidence` (a 400 naming it), or that refuses it (`invalid_evidence`), gets
//! the triage again without it: the triage matters more than its record.
//!
//! **Near-duplicates in quick succession.** Read models follow commands asynchronously, so
//! a card added a moment ago may not be searchable yet. Each search carries the
//! consistency token of this process's latest `AddCard` (the search waits until the
//! knowledge base has folded it), so feedback this agent handles in order sees the cards
//! this agent made. Cards made by another agent process a moment earlier may still be
//! missed; such a pair ends on two cards (accepted: both point at the same problem, and a
//! person can merge them).
//!
//! Every command goes through the agent's context: caused by the event, in its flow, under
//! idempotency keys derived from it (`{group}:{event id}:{n}` for the handler's n-th
//! command, so one event's several commands to one board never share a key). A redelivered
//! event therefore repeats nothing, and the rejections that mean "already done" count as
//! success: `card_already_exists` (another delivery added the card),
//! `feedback_already_triaged`, and `idempotency_key_reused` (an earlier delivery decided
//! differently — a model's answer or the knowledge base can change — and its decision
//! stands: the triage then carries the labels the card already has).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use client::agent::{Context, HandlerError};
use client::{
    At, Client, CommandBody, EventEnvelope, ExpectedVersion, GroupSettings, RetryPolicy, SearchHit,
    SearchOptions, Start,
};
use domain::board::rules as board_rules;
use domain::feedback::rules as feedback_rules;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::classify::{Feedback, card_id};
use super::context::{self, CardMatch, Decision, Related, Thresholds};
use super::llm::Classifier;

/// The author of the agent's comments.
pub const AUTHOR: &str = "triage-agent";
/// Results asked of each search.
const SEARCH_LIMIT: u32 = 5;

/// What the triage handler needs: where the cards go, and how to decide.
#[derive(Debug)]
pub struct Triage {
    board: String,
    classifier: Classifier,
    thresholds: Thresholds,
    /// The consistency token of this process's latest `AddCard`.
    last_card: Mutex<Option<String>>,
    /// A missing knowledge base is warned about once, then logged at debug.
    warned_no_search: AtomicBool,
}

/// What the knowledge base said about one feedback.
#[derive(Debug, Default)]
struct Found {
    matches: Vec<CardMatch>,
    related: Vec<Related>,
    /// The feedback's own card is already there: an earlier delivery made it.
    own_card: bool,
}

/// The group's settings when the agent creates it.
pub fn group_settings() -> GroupSettings {
    GroupSettings::default()
        .start(Start::Beginning)
        .aggregate_type("feedback")
        .types(["FeedbackSubmitted"])
}

/// Creates the board unless it exists (`expected_version: "none"`; a 409 means it does).
pub async fn ensure_board(client: &Client, board: &str) -> Result<(), client::Error> {
    let create = CommandBody::new("CreateBoard", json!({"title": "Feedback triage"}))
        .expecting(ExpectedVersion::None);
    match client.command("board", board, &create).await {
        Ok(_) => {
            info!(board, "created the triage board");
            Ok(())
        }
        Err(e)
            if e.version_conflict().is_some()
                || e.rejection_rule() == Some(board_rules::BOARD_ALREADY_EXISTS) =>
        {
            debug!(board, "the triage board exists");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// An answer that means the command's effect already holds.
fn already_done(error: &client::Error, rules: &[&str]) -> bool {
    error.code() == Some("idempotency_key_reused")
        || error
            .rejection_rule()
            .is_some_and(|rule| rules.contains(&rule))
}

/// A `TriageFeedback` that would pass without its evidence: a Worker that predates
/// `evidence` (a 400 naming the field), or evidence the domain refused (`invalid_evidence`).
/// The triage matters more than its record.
fn evidence_unknown(error: &client::Error) -> bool {
    (error.status() == Some(400) && error.to_string().contains("evidence"))
        || error.rejection_rule() == Some("invalid_evidence")
}

/// Searches wait little: the triage goes on without context rather than stall.
fn search_client(client: &Client) -> Client {
    client.clone().with_retry(RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(15),
    })
}

fn comment(card: &str, text: &str) -> CommandBody {
    CommandBody::new(
        "CommentOnCard",
        json!({"card_id": card, "author": AUTHOR, "text": text}),
    )
}

impl Triage {
    pub fn new(board: String, classifier: Classifier, thresholds: Thresholds) -> Self {
        Self {
            board,
            classifier,
            thresholds,
            last_card: Mutex::new(None),
            warned_no_search: AtomicBool::new(false),
        }
    }

    fn last_card(&self) -> Option<String> {
        self.last_card.lock().map(|t| t.clone()).unwrap_or(None)
    }

    fn remember_card(&self, token: String) {
        if let Ok(mut last) = self.last_card.lock() {
            *last = Some(token);
        }
    }

    /// One search; with a consistency token that did not catch up, once more without.
    async fn search(
        &self,
        client: &Client,
        q: &str,
        kinds: &[&str],
    ) -> Result<Vec<SearchHit>, client::Error> {
        let mut options = SearchOptions::default()
            .kinds(kinds.iter().copied())
            .limit(SEARCH_LIMIT)
            .match_any();
        options.consistency = self.last_card();
        match client.search_knowledge(q, &options).await {
            Ok(answer) => Ok(answer.results),
            Err(e) if options.consistency.is_some() && !e.is_not_found() => {
                debug!(error = %e, "search with a consistency token failed; once more without");
                options.consistency = None;
                Ok(client.search_knowledge(q, &options).await?.results)
            }
            Err(e) => Err(e),
        }
    }

    fn no_context(&self, feedback: &str, what: &str, error: &client::Error) {
        if !self.warned_no_search.swap(true, Ordering::Relaxed) {
            warn!(feedback, error = %error, "knowledge search failed ({what}); triaging without context");
        } else {
            debug!(feedback, error = %error, "knowledge search failed ({what}); triaging without context");
        }
    }

    /// What the knowledge base knows about the feedback (nothing when it cannot answer).
    async fn look(&self, ctx: &Context, id: &str, text: &str, own: (&str, &str)) -> Found {
        let Some(q) = context::query_text(text) else {
            debug!(feedback = id, "no words to search for");
            return Found::default();
        };
        let client = search_client(ctx.client());
        let cards = match self.search(&client, &q, &["card"]).await {
            Ok(hits) => hits,
            Err(e) => {
                self.no_context(id, "cards", &e);
                return Found::default();
            }
        };
        let related = match self.search(&client, &q, &["error_group", "ci_run"]).await {
            Ok(hits) => context::related(text, &hits, self.thresholds),
            Err(e) => {
                self.no_context(id, "error groups and CI runs", &e);
                Vec::new()
            }
        };
        Found {
            matches: context::card_matches(text, &cards, own),
            related,
            own_card: context::own_card_is_among(&cards, own),
        }
    }

    /// Whether the board already holds the feedback's own card (read on redeliveries).
    async fn own_card_exists(&self, ctx: &Context, card: &str) -> Result<bool, client::Error> {
        match ctx.client().state("board", &self.board, At::Latest).await {
            Ok(board) => Ok(!board.state["cards"][card].is_null()),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn handle(&self, ctx: Context, event: EventEnvelope) -> Result<(), HandlerError> {
        if event.aggregate_type != "feedback" || event.event_type != "FeedbackSubmitted" {
            // A group made by hand with a wider filter: not ours to triage.
            debug!("not a FeedbackSubmitted; nothing to do");
            return Ok(());
        }
        let feedback: Feedback = serde_json::from_value(event.data.clone()).map_err(|e| {
            // No retry can fix the event's own data.
            HandlerError::park(format!("FeedbackSubmitted data is not as documented: {e}"))
        })?;
        let id = event.aggregate_id.as_str();

        let now = ctx.client().state("feedback", id, At::Latest).await?;
        match now.state["status"].as_str() {
            Some("open") => {}
            status => {
                info!(
                    feedback = id,
                    ?status,
                    "already triaged or closed; nothing to do"
                );
                return Ok(());
            }
        }

        let card = card_id(id);
        let found = self
            .look(&ctx, id, &feedback.text, (&self.board, &card))
            .await;
        let mut decision = context::decide(&found.matches, self.thresholds);
        if matches!(decision, Decision::Link(_))
            && (found.own_card || (ctx.attempt() > 1 && self.own_card_exists(&ctx, &card).await?))
        {
            // An earlier delivery made the feedback's own card: its decision stands.
            debug!(feedback = id, "the feedback's own card exists; keeping it");
            decision = Decision::NewCard;
        }
        let related_comment = context::related_comment(&found.related);

        let mut target = None;
        if let Decision::Link(best) = &decision {
            let mut text = context::link_comment(id, &feedback.text, best.similarity);
            if let Some(related) = &related_comment {
                text = format!("{text}\n{related}");
            }
            match ctx
                .command("board", &best.board_id, comment(&best.card_id, &text))
                .await
            {
                Ok(_) => target = Some(best.clone()),
                Err(e) if already_done(&e, &[]) => target = Some(best.clone()),
                Err(e) if e.rejection_rule().is_some() => {
                    // Archived or gone since the search: the feedback gets its own card.
                    warn!(feedback = id, card = %best.doc_id, error = %e, "cannot link; adding a card instead");
                }
                Err(e) => return Err(e.into()),
            }
        }

        let (board_id, card_id, labels, decided_by) = match target {
            Some(best) => (best.board_id, best.card_id, best.labels, None),
            None => {
                decision = Decision::NewCard;
                let (labels, by) = self.add_card(&ctx, &feedback, &card).await?;
                if let Some(related) = &related_comment {
                    match ctx
                        .command("board", &self.board, comment(&card, related))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if already_done(&e, &[]) => {}
                        Err(e) if e.rejection_rule().is_some() => {
                            warn!(feedback = id, card, error = %e, "could not comment on the card");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                (self.board.clone(), card.clone(), labels, Some(by))
            }
        };

        let evidence = context::evidence(decision.name(), &found.matches, &found.related);
        self.triage(&ctx, id, &board_id, &card_id, &labels, &evidence)
            .await?;
        if ctx.attempt() > 1 {
            warn!(
                feedback = id,
                attempt = ctx.attempt(),
                "triaged on a redelivery"
            );
        }
        info!(
            feedback = id,
            decision = decision.name(),
            board = board_id,
            card = card_id,
            labels = ?labels,
            by = ?decided_by,
            evidence = %evidence,
            "triaged"
        );
        Ok(())
    }

    /// Classifies the feedback and adds its card; returns the card's labels and who decided.
    async fn add_card(
        &self,
        ctx: &Context,
        feedback: &Feedback,
        card: &str,
    ) -> Result<(Vec<String>, super::classify::DecidedBy), HandlerError> {
        let decided = self.classifier.classify(feedback).await;
        let mut labels = decided.labels(feedback.severity);
        let add = CommandBody::new(
            "AddCard",
            json!({"card_id": card, "title": decided.title, "labels": labels}),
        );
        match ctx.command("board", &self.board, add).await {
            Ok(done) => {
                debug!(card, replayed = done.replayed, "card added");
                self.remember_card(done.consistency_token());
            }
            Err(e) if already_done(&e, &[board_rules::CARD_ALREADY_EXISTS]) => {
                // Added by an earlier delivery; the triage must say what the card says.
                let board = ctx.client().state("board", &self.board, At::Latest).await?;
                if let Some(existing) = board.state["cards"][card]["labels"].as_array() {
                    labels = existing
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect();
                }
                debug!(card, "the card was already there");
            }
            Err(e) if e.rejection_rule() == Some(board_rules::BOARD_NOT_FOUND) => {
                // Someone else's board id, or a store that lost it: make it, then try again.
                ensure_board(ctx.client(), &self.board).await?;
                return Err(HandlerError::retry(e));
            }
            Err(e) if e.rejection_rule().is_some() => {
                // A domain rule refused the card (a full board, a WIP limit on the first
                // column): waiting will not change it on its own.
                return Err(HandlerError::park(e));
            }
            Err(e) => return Err(e.into()),
        }
        Ok((labels, decided.by))
    }

    /// `TriageFeedback` with the evidence (without it for a Worker that predates it).
    async fn triage(
        &self,
        ctx: &Context,
        id: &str,
        board_id: &str,
        card_id: &str,
        labels: &[String],
        evidence: &Value,
    ) -> Result<(), HandlerError> {
        let mut data = json!({"board_id": board_id, "card_id": card_id, "labels": labels,
                              "evidence": evidence});
        loop {
            let triage = CommandBody::new("TriageFeedback", data.clone());
            match ctx.command("feedback", id, triage).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if already_done(
                        &e,
                        &[
                            feedback_rules::FEEDBACK_ALREADY_TRIAGED,
                            feedback_rules::FEEDBACK_CLOSED,
                        ],
                    ) =>
                {
                    debug!(feedback = id, "triaged or closed meanwhile");
                    return Ok(());
                }
                Err(e) if evidence_unknown(&e) && data.get("evidence").is_some() => {
                    warn!(feedback = id, error = %e, "the triage evidence was refused; triaging without it");
                    if let Some(fields) = data.as_object_mut() {
                        fields.remove("evidence");
                    }
                }
                Err(e) if e.rejection_rule().is_some() => return Err(HandlerError::park(e)),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str, rule: Option<&str>) -> client::Error {
        let mut error = json!({"error": {"code": code, "message": "m"}});
        if let Some(rule) = rule {
            error["error"]["rule"] = json!(rule);
        }
        client::Error::from_answer(status, error.to_string().as_bytes())
    }

    #[test]
    fn already_done_means_the_named_rules_or_a_key_used_before() {
        let exists = refused(422, "rejected", Some(board_rules::CARD_ALREADY_EXISTS));
        assert!(already_done(&exists, &[board_rules::CARD_ALREADY_EXISTS]));
        assert!(!already_done(
            &exists,
            &[feedback_rules::FEEDBACK_ALREADY_TRIAGED]
        ));
        let reused = refused(422, "idempotency_key_reused", None);
        assert!(already_done(&reused, &[]));
        let full = refused(422, "rejected", Some(board_rules::BOARD_FULL));
        assert!(!already_done(&full, &[board_rules::CARD_ALREADY_EXISTS]));
        assert!(!already_done(&refused(503, "overloaded", None), &[]));
    }

    #[test]
    fn a_triage_is_resent_without_evidence_an_older_worker_or_the_rules_refuse() {
        let old = client::Error::from_answer(
            400,
            json!({"error": {"code": "bad_request", "message":
                "invalid `TriageFeedback` command: `data`: unknown field `evidence`, expected one of `board_id`, `card_id`, `labels`"}})
                .to_string()
                .as_bytes(),
        );
        assert!(evidence_unknown(&old));
        assert!(!evidence_unknown(&refused(400, "bad_request", None)));
        let closed = refused(422, "rejected", Some(feedback_rules::FEEDBACK_CLOSED));
        assert!(!evidence_unknown(&closed));
        assert!(evidence_unknown(&refused(
            422,
            "rejected",
            Some("invalid_evidence")
        )));
    }

    #[test]
    fn the_group_reads_submitted_feedback_from_the_beginning() {
        let settings = serde_json::to_value(group_settings()).unwrap();
        assert_eq!(
            settings,
            json!({"start": "beginning", "aggregate_type": "feedback",
                   "types": ["FeedbackSubmitted"]})
        );
    }
}
