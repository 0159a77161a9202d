//! What the triage agent decides about one piece of feedback — its labels and the card's
//! title — and the rule-based classifier that decides it without a model.
//!
//! The rules are keywords: deterministic, explainable, and the fallback whenever a model is
//! not configured or fails. A label is one of [`CATEGORIES`]; the feedback's severity (from
//! the event) is added as `severity:<level>`.

use domain::board::{MAX_CARD_ID_CHARS, MAX_TITLE_CHARS};
use domain::feedback::Severity;

/// The category labels a classification may give, in the order labels are listed.
pub const CATEGORIES: [&str; 6] = ["bug", "performance", "ux", "question", "feature", "other"];

/// The label for feedback that no rule matched.
pub const OTHER: &str = "other";

/// The feedback a classifier looks at (`FeedbackSubmitted.data`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Feedback {
    pub text: String,
    pub source: String,
    pub severity: Severity,
}

/// Which classifier decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    Rules,
    Model,
}

/// A decision: category labels (from [`CATEGORIES`], at least one) and the card's title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub categories: Vec<String>,
    pub title: String,
    pub by: DecidedBy,
}

impl Classification {
    /// The labels the card and the triage carry: the categories, then the severity.
    pub fn labels(&self, severity: Severity) -> Vec<String> {
        let mut labels = self.categories.clone();
        labels.push(severity_label(severity));
        labels
    }
}

/// `severity:low` … `severity:critical`.
pub fn severity_label(severity: Severity) -> String {
    let level = match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    };
    format!("severity:{level}")
}

/// Keywords per category. A keyword with a space matches as a phrase; one without matches a
/// whole word (so `bug` does not match `debugger`, and `ui` not `build`).
const RULES: [(&str, &[&str]); 5] = [
    (
        "bug",
        &[
            "bug",
            "bugs",
            "crash",
            "crashes",
            "crashed",
            "crashing",
            "error",
            "errors",
            "exception",
            "broken",
            "breaks",
            "fails",
            "failed",
            "failing",
            "failure",
            "wrong",
            "incorrect",
            "glitch",
            "500",
            "404",
            "doesn't work",
            "does not work",
            "not working",
            "stopped working",
            "can't log in",
            "cannot log in",
            "lost my",
            "data loss",
        ],
    ),
    (
        "performance",
        &[
            "slow",
            "slowly",
            "slower",
            "sluggish",
            "lag",
            "laggy",
            "lags",
            "latency",
            "timeout",
            "timeouts",
            "hangs",
            "hanging",
            "freezes",
            "frozen",
            "performance",
            "memory",
            "cpu",
            "battery",
            "timed out",
            "takes forever",
            "takes ages",
            "loading forever",
        ],
    ),
    (
        "ux",
        &[
            "confusing",
            "confused",
            "unclear",
            "ugly",
            "layout",
            "design",
            "button",
            "buttons",
            "usability",
            "ux",
            "ui",
            "intuitive",
            "unintuitive",
            "clunky",
            "font",
            "contrast",
            "navigation",
            "menu",
            "hard to find",
            "can't find",
            "cannot find",
            "hard to use",
            "dark mode",
            "too many clicks",
        ],
    ),
    (
        "question",
        &[
            "question",
            "wondering",
            "how do i",
            "how can i",
            "how to",
            "is there a way",
            "is it possible",
            "can i",
            "what is",
            "where is",
            "why does",
            "why is",
        ],
    ),
    (
        "feature",
        &[
            "feature",
            "wish",
            "please add",
            "could you add",
            "would be nice",
            "would be great",
            "it would be",
            "support for",
            "request",
            "add an option",
            "add a way",
            "suggestion",
        ],
    ),
];

/// Classifies by keywords: every category with a matching keyword, in [`CATEGORIES`]
/// order; `question` also for text that ends with `?`; [`OTHER`] when nothing matches.
pub fn by_rules(feedback: &Feedback) -> Classification {
    let text = feedback.text.to_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let matches = |keyword: &str| {
        if keyword.contains(' ') {
            // A phrase: whole words in a row (the text's words joined by single spaces).
            format!(" {} ", words.join(" ")).contains(&format!(" {keyword} "))
        } else {
            words.contains(&keyword)
        }
    };
    let mut categories: Vec<String> = RULES
        .iter()
        .filter(|(category, keywords)| {
            keywords.iter().any(|k| matches(k))
                || (*category == "question" && text.trim_end().ends_with('?'))
        })
        .map(|(category, _)| (*category).to_owned())
        .collect();
    if categories.is_empty() {
        categories.push(OTHER.to_owned());
    }
    Classification {
        categories,
        title: title_from(&feedback.text),
        by: DecidedBy::Rules,
    }
}

/// The card's title from the feedback's text: whitespace folded to single spaces, at most
/// [`MAX_TITLE_CHARS`] characters (cut with `…`). Feedback text is never empty (a domain
/// rule), so neither is the title.
pub fn title_from(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= MAX_TITLE_CHARS {
        folded
    } else {
        let cut: String = folded.chars().take(MAX_TITLE_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

/// The id of the card for the feedback `feedback_id`: `fb-<feedback id>`, the same on every
/// delivery and by every agent, so a card can only be added once. An id too long for a card
/// (at most [`MAX_CARD_ID_CHARS`]) keeps its start and ends in a hash of the whole id.
pub fn card_id(feedback_id: &str) -> String {
    let plain = format!("fb-{feedback_id}");
    if plain.chars().count() <= MAX_CARD_ID_CHARS {
        return plain;
    }
    let hash = format!("{:016x}", fnv1a(feedback_id.as_bytes()));
    let keep = MAX_CARD_ID_CHARS - "fb-".len() - 1 - hash.len();
    let start: String = feedback_id.chars().take(keep).collect();
    format!("fb-{start}-{hash}")
}

/// FNV-1a, 64 bits: a stable hash (unlike `std`'s, it is the same in every build).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback(text: &str) -> Feedback {
        Feedback {
            text: text.to_owned(),
            source: "web".to_owned(),
            severity: Severity::Medium,
        }
    }

    fn categories(text: &str) -> Vec<String> {
        by_rules(&feedback(text)).categories
    }

    #[test]
    fn keywords_pick_the_categories_in_a_fixed_order() {
        assert_eq!(categories("The app crashes when I upload a photo"), ["bug"]);
        assert_eq!(
            categories("Search is so slow, it takes forever"),
            ["performance"]
        );
        assert_eq!(categories("The settings menu is confusing"), ["ux"]);
        assert_eq!(categories("How do I export my data"), ["question"]);
        assert_eq!(
            categories("It would be nice to have dark mode"),
            ["ux", "feature"]
        );
        assert_eq!(
            categories("Checkout is slow and then fails with an error"),
            ["bug", "performance"]
        );
        assert_eq!(categories("Love it, thanks!"), ["other"]);
    }

    #[test]
    fn words_match_whole_and_case_blind_and_questions_end_with_a_question_mark() {
        assert_eq!(categories("The debugger build is fine"), ["other"]);
        assert_eq!(categories("CRASH on STARTUP"), ["bug"]);
        assert_eq!(categories("Does it sync across devices?"), ["question"]);
        assert_eq!(categories("It doesn't work after the update"), ["bug"]);
    }

    #[test]
    fn the_same_feedback_always_gets_the_same_answer() {
        let text = "Dashboard is laggy and the export button is hard to find?";
        let first = by_rules(&feedback(text));
        for _ in 0..10 {
            assert_eq!(by_rules(&feedback(text)), first);
        }
        assert_eq!(first.categories, ["performance", "ux", "question"]);
        assert_eq!(first.by, DecidedBy::Rules);
    }

    #[test]
    fn labels_end_with_the_severity_from_the_event() {
        let mut critical = feedback("crash");
        critical.severity = Severity::Critical;
        let decided = by_rules(&critical);
        assert_eq!(
            decided.labels(critical.severity),
            ["bug", "severity:critical"]
        );
        assert_eq!(severity_label(Severity::Low), "severity:low");
    }

    #[test]
    fn titles_are_the_text_folded_and_cut_to_200_characters() {
        assert_eq!(
            title_from("  Two\n\nlines\tand  spaces "),
            "Two lines and spaces"
        );
        let long = "界".repeat(500);
        let title = title_from(&long);
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with('…'));
        let exact = "x".repeat(MAX_TITLE_CHARS);
        assert_eq!(title_from(&exact), exact);
    }

    #[test]
    fn card_ids_are_derived_from_the_feedback_id_and_fit_a_card() {
        assert_eq!(card_id("f-123"), "fb-f-123");
        let long_a = format!("{}a", "x".repeat(200));
        let long_b = format!("{}b", "x".repeat(200));
        let (a, b) = (card_id(&long_a), card_id(&long_b));
        assert_eq!(a.chars().count(), MAX_CARD_ID_CHARS);
        assert_ne!(a, b, "ids that share their start still differ");
        assert_eq!(card_id(&long_a), a, "deterministic");
        assert!(a.starts_with("fb-xxxx"));
    }
}
