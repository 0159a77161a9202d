//! Value rules shared by the reference aggregates (lengths, labels).
//!
//! Lengths count characters (Unicode scalar values), not bytes, so "200 characters" means
//! the same to a client typing Japanese as to one typing ASCII. A value made only of
//! whitespace counts as empty: it would render as nothing. Messages never echo a whole
//! value back (it may be very long); they say which rule it broke and by how much.

use crate::aggregate::Rejection;

/// At most this many labels on one card or one triage.
pub const MAX_LABELS: usize = 20;
/// A label is 1..=this many characters.
pub const MAX_LABEL_CHARS: usize = 50;

/// Checks that `value` has 1..=`max` characters and is not only whitespace.
/// `what` names the field in the message, e.g. "the card title".
pub(crate) fn text(
    rule: &'static str,
    what: &str,
    value: &str,
    max: usize,
) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::new(rule, format!("{what} must not be empty")));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Rejection::new(
            rule,
            format!("{what} must be at most {max} characters (got {chars})"),
        ));
    }
    Ok(())
}

/// Checks a list of labels: at most [`MAX_LABELS`], each 1..=[`MAX_LABEL_CHARS`] characters,
/// no label twice (exact comparison).
pub(crate) fn labels(rule: &'static str, labels: &[String]) -> Result<(), Rejection> {
    if labels.len() > MAX_LABELS {
        return Err(Rejection::new(
            rule,
            format!(
                "at most {MAX_LABELS} labels are allowed (got {})",
                labels.len()
            ),
        ));
    }
    for (index, label) in labels.iter().enumerate() {
        text(
            rule,
            &format!("label {}", index + 1),
            label,
            MAX_LABEL_CHARS,
        )?;
        if labels[..index].contains(label) {
            return Err(Rejection::new(
                rule,
                format!("label `{label}` is given more than once"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        // 200 three-byte characters are 600 bytes but within a 200-character limit.
        assert_eq!(text("r", "the title", &"界".repeat(200), 200), Ok(()));
        let err = text("r", "the title", &"界".repeat(201), 200).unwrap_err();
        assert_eq!(
            err.message,
            "the title must be at most 200 characters (got 201)"
        );
    }

    #[test]
    fn whitespace_only_is_empty() {
        let err = text("r", "the title", " \t\n", 200).unwrap_err();
        assert_eq!(
            (err.rule, err.message.as_str()),
            ("r", "the title must not be empty")
        );
    }

    #[test]
    fn labels_are_bounded_non_empty_and_distinct() {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(labels("r", &strings(&["bug", "ui"])), Ok(()));
        assert_eq!(labels("r", &[]), Ok(()));
        assert_eq!(
            labels("r", &strings(&["bug", " "])).unwrap_err().message,
            "label 2 must not be empty"
        );
        assert_eq!(
            labels("r", &strings(&["bug", "bug"])).unwrap_err().message,
            "label `bug` is given more than once"
        );
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        assert_eq!(
            labels("r", &many).unwrap_err().message,
            "at most 20 labels are allowed (got 21)"
        );
    }
}
