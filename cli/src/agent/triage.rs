//! `edgeloop agent triage`: turns submitted feedback into cards on a triage board.
//!
//! For each `FeedbackSubmitted` of its consumer group (made on first run with
//! `aggregate_type=feedback`, `types=["FeedbackSubmitted"]`, reading from the beginning):
//! 1. read the feedback; if it is already triaged or closed, there is nothing to do;
//! 2. classify it ([`Classifier`]: a model when `AGENT_LLM_URL` is set, else the rules);
//! 3. `AddCard {card_id: "fb-<feedback id>", title, labels}` on the board;
//! 4. `TriageFeedback {board_id, card_id, labels}` on the feedback.
//!
//! Both commands go through the agent's context: caused by the event, in its flow, under
//! idempotency keys derived from it. A redelivered event therefore repeats nothing, and the
//! rejections that mean "already done" count as success: `card_already_exists` (another
//! delivery added the card), `feedback_already_triaged`, and `idempotency_key_reused` (an
//! earlier delivery decided differently — a model's answer can change — and its decision
//! stands: the triage then carries the labels the card already has).

use client::agent::{Context, HandlerError};
use client::{At, Client, CommandBody, EventEnvelope, ExpectedVersion, GroupSettings, Start};
use domain::board::rules as board_rules;
use domain::feedback::rules as feedback_rules;
use serde_json::json;
use tracing::{debug, info, warn};

use super::classify::{Feedback, card_id};
use super::llm::Classifier;

/// What the triage handler needs: where the cards go, and how to decide.
#[derive(Debug)]
pub struct Triage {
    pub board: String,
    pub classifier: Classifier,
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

impl Triage {
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

        let decided = self.classifier.classify(&feedback).await;
        let card = card_id(id);
        let mut labels = decided.labels(feedback.severity);
        let add = CommandBody::new(
            "AddCard",
            json!({"card_id": card, "title": decided.title, "labels": labels}),
        );
        match ctx.command("board", &self.board, add).await {
            Ok(done) => debug!(card, replayed = done.replayed, "card added"),
            Err(e) if already_done(&e, &[board_rules::CARD_ALREADY_EXISTS]) => {
                // Added by an earlier delivery; the triage must say what the card says.
                let board = ctx.client().state("board", &self.board, At::Latest).await?;
                if let Some(existing) = board.state["cards"][&card]["labels"].as_array() {
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

        let triage = CommandBody::new(
            "TriageFeedback",
            json!({"board_id": self.board, "card_id": card, "labels": labels}),
        );
        match ctx.command("feedback", id, triage).await {
            Ok(_) => {}
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
            }
            Err(e) if e.rejection_rule().is_some() => return Err(HandlerError::park(e)),
            Err(e) => return Err(e.into()),
        }
        if ctx.attempt() > 1 {
            warn!(
                feedback = id,
                attempt = ctx.attempt(),
                "triaged on a redelivery"
            );
        }
        info!(
            feedback = id,
            card,
            labels = ?labels,
            by = ?decided.by,
            "triaged"
        );
        Ok(())
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
    fn the_group_reads_submitted_feedback_from_the_beginning() {
        let settings = serde_json::to_value(group_settings()).unwrap();
        assert_eq!(
            settings,
            json!({"start": "beginning", "aggregate_type": "feedback",
                   "types": ["FeedbackSubmitted"]})
        );
    }
}
