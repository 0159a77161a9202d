//! What the triage agent makes of the knowledge base — the pure part: which card, if any, a
//! piece of feedback is a near-duplicate of; which error groups and failed CI runs look
//! related; the comments that say so; and the evidence the triage records.
//!
//! Similarity is [`projections::knowledge::similarity`] (stemmed-token Dice coefficient,
//! in `[0, 1]`), never the search's own score: bm25 is not normalized, so it cannot be
//! compared with a threshold. The search only chooses which few documents are compared.
//!
//! A card is compared twice and keeps the better of the two: with its title alone (for a
//! card the agent made, the feedback's own text), and with its title and text (labels and
//! comments, which matter when the title is a short summary). A card's text only grows,
//! and a Dice coefficient only falls as one side grows, so the title alone keeps a busy
//! card findable.

use client::{KnowledgeDocument, SearchHit};
use domain::board::MAX_COMMENT_CHARS;
use domain::feedback::{MAX_EVIDENCE_ID_CHARS, MAX_EVIDENCE_ITEMS};
use projections::knowledge::similarity;
use serde_json::{Value, json};

use super::classify::title_from;

/// Whether a hit's id fits a triage's evidence: a longer one (ids may reach 768 bytes)
/// cannot be recorded, so its document is neither a link target nor named as related.
fn recordable(hit: &SearchHit) -> bool {
    hit.doc_id.chars().count() <= MAX_EVIDENCE_ID_CHARS
}

/// The longest search text sent (the API takes at most 500 characters).
pub const MAX_QUERY_CHARS: usize = 400;

/// When a card is close enough to link to, and when another document is worth mentioning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Link to the best open card at or above this similarity.
    pub link: f64,
    /// Mention an unresolved error group or a failed CI run at or above this similarity.
    pub related: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            link: 0.5,
            related: 0.25,
        }
    }
}

/// An open card the feedback was compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct CardMatch {
    pub doc_id: String,
    /// Its rank in the search's answer (from 1).
    pub rank: u32,
    /// Rounded to 3 decimals (what the evidence records).
    pub similarity: f64,
    pub board_id: String,
    pub card_id: String,
    pub labels: Vec<String>,
}

/// An unresolved error group or a failed CI run that looks related.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub doc_id: String,
    pub kind: String,
    pub status: String,
    pub similarity: f64,
    /// What the comment says about it, e.g. `error group TypeError: x (seen 42 times, open)`.
    pub words: String,
}

/// What to do with the feedback's card.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Make the card `fb-<id>` (nothing close enough, or no knowledge base).
    NewCard,
    /// Join this card (the best of the matches, at or above the link threshold).
    Link(CardMatch),
}

impl Decision {
    /// The evidence's `decision`.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::NewCard => "new_card",
            Decision::Link(_) => "linked_to_existing_card",
        }
    }
}

/// The search text for a feedback: its words on one line, at most [`MAX_QUERY_CHARS`]
/// characters, cut at a space. `None` when nothing searchable is left.
pub fn query_text(text: &str) -> Option<String> {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let query = if folded.chars().count() <= MAX_QUERY_CHARS {
        folded
    } else {
        let cut: String = folded.chars().take(MAX_QUERY_CHARS).collect();
        match cut.rfind(' ') {
            Some(space) if space > 0 => cut[..space].to_owned(),
            _ => cut,
        }
    };
    query.chars().any(char::is_alphanumeric).then_some(query)
}

/// How close `text` is to a document: the better of its title alone and its title with
/// its text, rounded to 3 decimals.
pub fn closeness(text: &str, document: &KnowledgeDocument) -> f64 {
    let title = similarity(text, &document.title);
    let whole = similarity(text, &format!("{}\n{}", document.title, document.text));
    round3(title.max(whole))
}

/// Rounded to 3 decimals: what a person reads, and a number that survives JSON exactly.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn string_attribute(document: &KnowledgeDocument, name: &str) -> Option<String> {
    document
        .attributes
        .get(name)?
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

/// The open cards among `hits`, compared with the feedback `text`, best first (ties: the
/// better search rank): the feedback's own card (`own_board`/`own_card`, which an earlier
/// delivery may have made) and archived cards are left out, and so is anything that is
/// not a card.
pub fn card_matches(text: &str, hits: &[SearchHit], own: (&str, &str)) -> Vec<CardMatch> {
    let mut matches: Vec<CardMatch> = hits
        .iter()
        .filter(|hit| hit.kind == "card" && hit.body.status == "open" && recordable(hit))
        .filter_map(|hit| {
            let board_id = string_attribute(&hit.body, "board_id")?;
            let card_id = string_attribute(&hit.body, "card_id")?;
            if (board_id.as_str(), card_id.as_str()) == own {
                return None;
            }
            let labels = hit
                .body
                .attributes
                .get("labels")
                .and_then(Value::as_array)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Some(CardMatch {
                doc_id: hit.doc_id.clone(),
                rank: hit.rank,
                similarity: closeness(text, &hit.body),
                board_id,
                card_id,
                labels,
            })
        })
        .collect();
    matches.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.rank.cmp(&b.rank))
    });
    matches.truncate(MAX_EVIDENCE_ITEMS);
    matches
}

/// Whether any of `hits` is the feedback's own card: an earlier delivery made it.
pub fn own_card_is_among(hits: &[SearchHit], own: (&str, &str)) -> bool {
    hits.iter().any(|hit| {
        hit.kind == "card"
            && string_attribute(&hit.body, "board_id").as_deref() == Some(own.0)
            && string_attribute(&hit.body, "card_id").as_deref() == Some(own.1)
    })
}

/// Link to the best match if it reaches the threshold; else a new card.
pub fn decide(matches: &[CardMatch], thresholds: Thresholds) -> Decision {
    match matches.first() {
        Some(best) if best.similarity >= thresholds.link => Decision::Link(best.clone()),
        _ => Decision::NewCard,
    }
}

/// The error groups that are not resolved and the CI runs that failed, among `hits`, at or
/// above the related threshold, best first.
pub fn related(text: &str, hits: &[SearchHit], thresholds: Thresholds) -> Vec<Related> {
    let mut related: Vec<Related> = hits
        .iter()
        .filter(|hit| recordable(hit))
        .filter(|hit| match hit.kind.as_str() {
            "error_group" => hit.body.status != "resolved" && !hit.body.status.is_empty(),
            "ci_run" => hit.body.status == "failed",
            _ => false,
        })
        .map(|hit| Related {
            doc_id: hit.doc_id.clone(),
            kind: hit.kind.clone(),
            status: hit.body.status.clone(),
            similarity: closeness(text, &hit.body),
            words: words(&hit.kind, &hit.body),
        })
        .filter(|r| r.similarity >= thresholds.related)
        .collect();
    related.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    related.truncate(MAX_EVIDENCE_ITEMS);
    related
}

/// A related document in words.
fn words(kind: &str, document: &KnowledgeDocument) -> String {
    if kind == "ci_run" {
        let workflow = string_attribute(document, "workflow").unwrap_or_else(|| "?".to_owned());
        let mut words = format!("CI run failed: workflow {workflow}");
        if let Some(branch) = string_attribute(document, "branch") {
            words.push_str(&format!(" on {branch}"));
        }
        if let Some(url) = string_attribute(document, "url") {
            words.push_str(&format!(" ({url})"));
        }
        return words;
    }
    let seen = match document.attributes.get("count").and_then(Value::as_u64) {
        Some(1) => "seen once, ".to_owned(),
        Some(n) => format!("seen {n} times, "),
        None => String::new(),
    };
    format!(
        "error group {} ({seen}{})",
        title_from(&document.title),
        document.status
    )
}

/// The comment on a card the feedback joins: `Same as feedback f2: <text> (similarity 0.82)`.
pub fn link_comment(feedback_id: &str, text: &str, similarity: f64) -> String {
    cut(&format!(
        "Same as feedback {feedback_id}: {} (similarity {similarity:.2})",
        title_from(text)
    ))
}

/// The comment about related documents: `Possibly related: …; …`, or `None` for none.
pub fn related_comment(related: &[Related]) -> Option<String> {
    if related.is_empty() {
        return None;
    }
    let items: Vec<&str> = related.iter().map(|r| r.words.as_str()).collect();
    Some(cut(&format!("Possibly related: {}", items.join("; "))))
}

/// At most a comment's length.
fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_COMMENT_CHARS {
        text.to_owned()
    } else {
        let start: String = text.chars().take(MAX_COMMENT_CHARS - 1).collect();
        format!("{start}…")
    }
}

/// The triage's `evidence` (the feedback aggregate's `TriageEvidence` on the wire).
pub fn evidence(decision: &str, matches: &[CardMatch], related: &[Related]) -> Value {
    json!({
        "decision": decision,
        "matches": matches.iter().map(|m| json!({
            "doc_id": m.doc_id, "kind": "card", "similarity": m.similarity, "rank": m.rank
        })).collect::<Vec<_>>(),
        "related": related.iter().map(|r| json!({
            "doc_id": r.doc_id, "kind": r.kind, "status": r.status, "similarity": r.similarity
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rank: u32, kind: &str, doc: Value) -> SearchHit {
        serde_json::from_value(json!({
            "rank": rank, "doc_id": doc["doc_id"], "kind": kind, "score": 100.0 - f64::from(rank),
            "title": "t", "snippet": "s", "body": doc["body"]
        }))
        .unwrap()
    }

    fn card(rank: u32, card_id: &str, title: &str, status: &str) -> SearchHit {
        hit(
            rank,
            "card",
            json!({"doc_id": format!("card:triage:{card_id}"), "body": {
                "kind": "card", "title": title, "text": format!("{title}\nbug, severity:high"),
                "status": status,
                "attributes": {"board_id": "triage", "card_id": card_id,
                               "labels": ["bug", "severity:high"], "comments": 0}
            }}),
        )
    }

    fn error_group(rank: u32, title: &str, status: &str, count: u64) -> SearchHit {
        hit(
            rank,
            "error_group",
            json!({"doc_id": format!("error_group:fp{rank}"), "body": {
                "kind": "error_group", "title": title, "text": title, "status": status,
                "attributes": {"count": count, "error_type": "TypeError"}
            }}),
        )
    }

    fn ci_run(rank: u32, workflow: &str, branch: Option<&str>, status: &str) -> SearchHit {
        hit(
            rank,
            "ci_run",
            json!({"doc_id": format!("ci_run:acme~shop:{rank}"), "body": {
                "kind": "ci_run", "title": format!("{workflow} {status} on main"),
                "text": format!("{workflow}\nmain\nabc123\nfailure"), "status": status,
                "attributes": {"workflow": workflow, "branch": branch, "conclusion": "failure",
                               "url": "https://github.com/acme/shop/actions/runs/1"}
            }}),
        )
    }

    const OWN: (&str, &str) = ("triage", "fb-f2");

    #[test]
    fn a_near_duplicate_links_to_the_best_open_card() {
        let text = "The checkout page crashes when I click pay";
        let hits = [
            card(1, "fb-other", "Search is slow on mobile", "open"),
            card(
                2,
                "fb-f1",
                "Checkout page crashes after clicking pay",
                "open",
            ),
        ];
        let matches = card_matches(text, &hits, OWN);
        assert_eq!(matches.len(), 2);
        assert_eq!(
            matches[0].card_id, "fb-f1",
            "best similarity first, not best rank"
        );
        assert!(matches[0].similarity >= 0.8, "{matches:?}");
        assert_eq!(matches[0].labels, ["bug", "severity:high"]);
        match decide(&matches, Thresholds::default()) {
            Decision::Link(target) => assert_eq!(target.doc_id, "card:triage:fb-f1"),
            other => panic!("{other:?}"),
        }
        let strict = Thresholds {
            link: 1.01,
            ..Thresholds::default()
        };
        assert_eq!(decide(&matches, strict), Decision::NewCard);
    }

    #[test]
    fn distinct_feedback_gets_a_new_card() {
        let text = "Please add dark mode to the settings";
        let hits = [card(
            1,
            "fb-f1",
            "Checkout page crashes after clicking pay",
            "open",
        )];
        let matches = card_matches(text, &hits, OWN);
        assert!(matches[0].similarity < 0.5);
        assert_eq!(decide(&matches, Thresholds::default()), Decision::NewCard);
        assert_eq!(decide(&[], Thresholds::default()), Decision::NewCard);
    }

    #[test]
    fn the_own_card_archived_cards_and_other_kinds_are_never_link_targets() {
        let text = "Checkout crashes";
        let hits = [
            card(1, "fb-f2", "Checkout crashes", "open"),
            card(2, "fb-old", "Checkout crashes", "archived"),
            hit(
                3,
                "feedback",
                json!({"doc_id": "feedback:f2", "body": {"kind": "feedback",
                       "title": "Checkout crashes", "text": "Checkout crashes", "status": "open"}}),
            ),
        ];
        assert!(card_matches(text, &hits, OWN).is_empty());
        assert!(own_card_is_among(&hits, OWN));
        assert!(!own_card_is_among(&hits[1..], OWN));
    }

    #[test]
    fn a_busy_card_stays_findable_by_its_title() {
        let text = "Checkout crashes on pay";
        let mut busy = card(1, "fb-f1", "Checkout crashes on pay", "open");
        busy.body.text = format!(
            "{}\nbug\n{}",
            busy.body.title,
            "triage-agent: Possibly related: error group TypeError: undefined is not a function in vendor bundle minified\n"
                .repeat(5)
        );
        let matches = card_matches(text, &[busy], OWN);
        assert_eq!(matches[0].similarity, 1.0);
    }

    #[test]
    fn related_means_unresolved_error_groups_and_failed_ci_runs_that_are_close_enough() {
        let text = "Checkout fails: TypeError x is undefined when paying";
        let hits = [
            error_group(1, "TypeError: x is undefined", "open", 42),
            error_group(2, "TypeError: x is undefined", "resolved", 3),
            error_group(3, "RangeError: stack overflow in renderer", "regressed", 1),
            ci_run(4, "checkout", Some("main"), "failed"),
            ci_run(5, "checkout", Some("main"), "succeeded"),
        ];
        let found = related(text, &hits, Thresholds::default());
        let ids: Vec<&str> = found.iter().map(|r| r.doc_id.as_str()).collect();
        assert_eq!(ids, ["error_group:fp1", "ci_run:acme~shop:4"], "{found:?}");
        assert_eq!(
            found[0].words,
            "error group TypeError: x is undefined (seen 42 times, open)"
        );
        assert_eq!(
            found[1].words,
            "CI run failed: workflow checkout on main (https://github.com/acme/shop/actions/runs/1)"
        );
        let everything = Thresholds {
            related: 0.0,
            ..Thresholds::default()
        };
        assert_eq!(related(text, &hits, everything).len(), 3);
        assert_eq!(
            related_comment(&found).unwrap(),
            format!("Possibly related: {}; {}", found[0].words, found[1].words)
        );
        assert_eq!(related_comment(&[]), None);
    }

    #[test]
    fn words_for_sparse_documents() {
        let once = error_group(1, "Oops", "ignored", 1);
        assert_eq!(
            words("error_group", &once.body),
            "error group Oops (seen once, ignored)"
        );
        let branchless = ci_run(1, "nightly", None, "failed");
        assert!(
            words("ci_run", &branchless.body).starts_with("CI run failed: workflow nightly ("),
            "{}",
            words("ci_run", &branchless.body)
        );
    }

    #[test]
    fn comments_say_which_feedback_and_how_close() {
        assert_eq!(
            link_comment("f2", "The app\n crashes  on save", 0.8234),
            "Same as feedback f2: The app crashes on save (similarity 0.82)"
        );
        let long = link_comment("f2", &"word ".repeat(2000), 0.5);
        assert!(long.chars().count() <= MAX_COMMENT_CHARS);
    }

    #[test]
    fn the_query_is_the_text_folded_and_cut_at_a_word() {
        assert_eq!(
            query_text("  checkout\n\ncrashes ").as_deref(),
            Some("checkout crashes")
        );
        let long = "abcdefghi ".repeat(100);
        let query = query_text(&long).unwrap();
        assert!(query.chars().count() <= MAX_QUERY_CHARS);
        assert!(query.ends_with("abcdefghi"));
        assert_eq!(query_text("?!? …"), None);
    }

    /// The evidence has the feedback aggregate's `TriageEvidence` shape, within its bounds.
    #[test]
    fn the_evidence_has_the_triage_shape() {
        let text = "The checkout page crashes when I click pay";
        let cards: Vec<SearchHit> = (1..=5)
            .map(|n| {
                card(
                    n,
                    &format!("fb-{n}"),
                    "Checkout page crashes after pay",
                    "open",
                )
            })
            .collect();
        let matches = card_matches(text, &cards, OWN);
        let groups = [error_group(1, "TypeError: checkout crashes", "open", 2)];
        let found = related(text, &groups, Thresholds::default());
        let decision = decide(&matches, Thresholds::default());
        let evidence = evidence(decision.name(), &matches, &found);
        let similarity = matches[0].similarity;
        assert_eq!(similarity, round3(similarity));
        assert_eq!(
            evidence,
            json!({
                "decision": "linked_to_existing_card",
                "matches": (1..=5).map(|n| json!({"doc_id": format!("card:triage:fb-{n}"),
                    "kind": "card", "similarity": similarity, "rank": n})).collect::<Vec<_>>(),
                "related": [{"doc_id": "error_group:fp1", "kind": "error_group", "status": "open",
                             "similarity": found[0].similarity}]
            })
        );
        assert!(matches.len() <= MAX_EVIDENCE_ITEMS);
        assert_eq!(
            self::evidence("new_card", &[], &[]),
            json!({"decision": "new_card", "matches": [], "related": []})
        );
    }

    /// The end-to-end test's texts (tests/tests/agents.rs), decided here natively: the
    /// first report names the error group, its near-duplicates link to its card — also
    /// once the card carries the agent's comments — and distinct reports do not.
    #[test]
    fn the_checkout_story_decides_as_the_end_to_end_test_expects() {
        let first = "The checkout button does nothing on mobile Safari";
        let group = error_group(
            1,
            "TypeError: checkout button handler is undefined on Safari",
            "open",
            42,
        );
        let found = related(first, std::slice::from_ref(&group), Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let mut card = card(
            1,
            "fb-first",
            &crate::agent::classify::title_from(first),
            "open",
        );
        card.body.text = format!(
            "{}\nbug, ux, severity:high\ntriage-agent: {}",
            card.body.title,
            related_comment(&found).unwrap()
        );
        for duplicate in [
            "Checkout button not working on Safari mobile",
            "Tapping the checkout button on mobile Safari does nothing at all",
        ] {
            let matches = card_matches(duplicate, std::slice::from_ref(&card), OWN);
            assert!(
                matches!(decide(&matches, Thresholds::default()), Decision::Link(_)),
                "{duplicate}: {matches:?}"
            );
            card.body.text.push_str(&format!(
                "\ntriage-agent: {}",
                link_comment("dup", duplicate, matches[0].similarity)
            ));
        }
        for distinct in [
            "Dark mode colours are unreadable in the settings page",
            "Exporting a board to CSV loses all the unicode characters",
        ] {
            let matches = card_matches(distinct, std::slice::from_ref(&card), OWN);
            assert_eq!(
                decide(&matches, Thresholds::default()),
                Decision::NewCard,
                "{distinct}: {matches:?}"
            );
        }
    }

    #[test]
    fn documents_whose_ids_cannot_be_recorded_are_left_out() {
        let text = "Checkout crashes";
        let mut long = card(1, "fb-1", "Checkout crashes", "open");
        long.doc_id = format!("card:{}:fb-1", "b".repeat(600));
        assert!(card_matches(text, &[long], OWN).is_empty());
        let mut group = error_group(1, "Checkout crashes", "open", 3);
        group.doc_id = format!("error_group:{}", "f".repeat(600));
        assert!(related(text, &[group], Thresholds::default()).is_empty());
    }

    /// What this module writes is what the feedback aggregate accepts and records.
    #[test]
    fn the_evidence_is_a_valid_triage() {
        use domain::feedback::{Feedback, FeedbackEvent, Severity, TriageDecision};
        use domain::testing::given;

        let text = "The checkout page crashes when I click pay";
        let cards: Vec<SearchHit> = (1..=10)
            .map(|n| {
                card(
                    n,
                    &format!("fb-{n}"),
                    "Checkout page crashes after pay",
                    "open",
                )
            })
            .collect();
        let matches = card_matches(text, &cards, OWN);
        let groups: Vec<SearchHit> = (1..=12)
            .map(|n| error_group(n, "TypeError: checkout crashes", "open", 2))
            .collect();
        let found = related(text, &groups, Thresholds::default());
        let decision = decide(&matches, Thresholds::default());
        let evidence = evidence(decision.name(), &matches, &found);
        let submitted = FeedbackEvent::FeedbackSubmitted {
            text: text.to_owned(),
            source: "web".to_owned(),
            severity: Severity::High,
        };
        let feedback = given::<Feedback>([submitted])
            .when_json(
                "TriageFeedback",
                json!({"board_id": "triage", "card_id": "fb-1", "labels": ["bug"],
                       "evidence": evidence}),
            )
            .then_expect([json!({
                "type": "FeedbackTriaged",
                "data": {"board_id": "triage", "card_id": "fb-1", "labels": ["bug"],
                         "evidence": evidence}
            })]);
        let feedback: Feedback = serde_json::from_value(feedback.to_json()).unwrap();
        let recorded = feedback.triage.unwrap().evidence.unwrap();
        assert_eq!(recorded.decision, TriageDecision::LinkedToExistingCard);
        assert_eq!(recorded.matches.len(), MAX_EVIDENCE_ITEMS);
        assert_eq!(recorded.related.len(), MAX_EVIDENCE_ITEMS);
    }
}
