//! Property tests of fingerprints and coalescing.
//!
//! 256 cases per property (proptest's default; `PROPTEST_CASES` overrides it): about a
//! second for the file in a debug build. Native only: proptest needs OS randomness, which
//! wasm32-unknown-unknown lacks.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use domain::aggregate::Aggregate;
use domain::error_group::ErrorGroup;
use ingest::fingerprint::{fingerprint, normalize_message};
use ingest::telemetry::{ErrorReport, MAX_REPORT_AGE_MS, coalesce};
use proptest::prelude::*;
use proptest::sample::select;

fn report(error_type: &str, message: String, stack: Option<String>) -> ErrorReport {
    ErrorReport {
        error_type: error_type.into(),
        message,
        stack,
        url: None,
        release: None,
        user_agent: None,
        timestamp_ms: None,
    }
}

/// Text from an alphabet rich in what the normalizer treats specially: digits, hex letters,
/// `x`, quotes, dashes, dots, brackets of placeholders, whitespace, and a non-ASCII letter.
fn tricky_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        select(vec![
            '0', '1', '7', '9', 'a', 'b', 'f', 'A', 'F', 'x', 'X', 'g', 'z', '_', '-', '.', ':',
            '\'', '"', '`', '<', '>', ' ', '\n', '\t', '(', ')', '@', '/', '?', '#', 'é',
        ]),
        0..60,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// What varies between occurrences of one bug, each rendered to text.
#[derive(Debug, Clone)]
enum Variable {
    Number(u64),
    Decimal(u32, u32),
    Uuid(u128),
    Hex(u64),
    Quoted(char, String),
}

fn variable() -> impl Strategy<Value = Variable> {
    prop_oneof![
        any::<u64>().prop_map(Variable::Number),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Variable::Decimal(a, b)),
        any::<u128>().prop_map(Variable::Uuid),
        any::<u64>().prop_map(Variable::Hex),
        (select(vec!['\'', '"', '`']), "[^'\"`]{0,20}").prop_map(|(q, s)| Variable::Quoted(q, s)),
    ]
}

impl Variable {
    fn render(&self) -> String {
        match self {
            Variable::Number(n) => n.to_string(),
            Variable::Decimal(a, b) => format!("{a}.{b}"),
            Variable::Uuid(n) => {
                let h = format!("{n:032x}");
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            // A 24-digit object id, with a letter and a digit wherever the random bits fall.
            Variable::Hex(n) => format!("a{n:016x}1b2c3d4"),
            Variable::Quoted(q, s) => format!("{q}{s}{q}"),
        }
    }

    /// Another value of the same kind.
    fn other(&self, seed: u64) -> Variable {
        match self {
            Variable::Number(_) => Variable::Number(seed),
            Variable::Decimal(..) => Variable::Decimal(seed as u32, (seed >> 32) as u32),
            Variable::Uuid(_) => Variable::Uuid(u128::from(seed) * 0x9e37_79b9_7f4a_7c15),
            Variable::Hex(_) => Variable::Hex(seed.rotate_left(17)),
            Variable::Quoted(q, _) => Variable::Quoted(*q, format!("v{seed}")),
        }
    }
}

/// A message template: fixed words, each followed by a separator and maybe a variable.
fn template() -> impl Strategy<Value = Vec<(&'static str, &'static str, Option<Variable>)>> {
    proptest::collection::vec(
        (
            select(vec![
                "Cannot",
                "read",
                "card",
                "column",
                "failed",
                "user",
                "not found",
                "id",
                "at",
            ]),
            select(vec![" ", ": ", ", ", " (", ") ", " = ", " #"]),
            proptest::option::of(variable()),
        ),
        1..8,
    )
}

fn render(template: &[(&str, &str, Option<Variable>)], seed: Option<u64>) -> String {
    let mut text = String::new();
    for (word, separator, variable) in template {
        text.push_str(word);
        text.push_str(separator);
        if let Some(variable) = variable {
            let variable = seed.map_or_else(|| variable.clone(), |seed| variable.other(seed));
            text.push_str(&variable.render());
            text.push(' ');
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalizing_a_message_is_idempotent(text in tricky_text()) {
        let once = normalize_message(&text);
        prop_assert_eq!(normalize_message(&once), once);
    }

    /// Messages that differ only in numbers, ids and quoted strings are one group.
    #[test]
    fn variable_parts_do_not_change_the_fingerprint(template in template(), seed in any::<u64>()) {
        let first = report("TypeError", render(&template, None), None);
        let second = report("TypeError", render(&template, Some(seed)), None);
        prop_assert_eq!(
            fingerprint(&first),
            fingerprint(&second),
            "{:?} vs {:?}", first.message, second.message
        );
    }

    /// Line and column numbers, query strings and hosts do not change the fingerprint.
    #[test]
    fn frame_positions_do_not_change_the_fingerprint(
        function in "[a-zA-Z_][a-zA-Z0-9_.]{0,12}",
        file in "[a-z]{1,8}",
        lines in (1..100_000_u32, 1..10_000_u32, 1..100_000_u32, 1..10_000_u32),
        host in select(vec!["https://app.example.com", "http://localhost:8787", "https://cdn.example.net"]),
        query in select(vec!["", "?v=3", "?build=4f2a9c1b&x=1", "#frag"]),
        engine in select(vec!["v8", "gecko"]),
    ) {
        let frame = |line: u32, column: u32, host: &str, query: &str| match engine {
            "v8" => format!("Error: x\n    at {function} ({host}/assets/{file}.js{query}:{line}:{column})"),
            _ => format!("{function}@{host}/assets/{file}.js{query}:{line}:{column}"),
        };
        let a = report("Error", "boom".into(), Some(frame(lines.0, lines.1, "https://app.example.com", "")));
        let b = report("Error", "boom".into(), Some(frame(lines.2, lines.3, host, query)));
        prop_assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    /// Every report is counted once, in the group and window it belongs to, and every
    /// command is one the aggregate accepts.
    #[test]
    fn coalescing_preserves_the_total_count(
        reports in proptest::collection::vec(
            (0..5_usize, proptest::option::of(0..(3 * MAX_REPORT_AGE_MS))),
            0..300,
        ),
        received_at_ms in MAX_REPORT_AGE_MS..(3 * MAX_REPORT_AGE_MS),
        window_ms in 1..600_000_u64,
    ) {
        let messages = ["a is undefined", "b is undefined", "card 1 not found", "timeout", "x"];
        let errors: Vec<ErrorReport> = reports
            .iter()
            .map(|(kind, timestamp_ms)| ErrorReport {
                timestamp_ms: *timestamp_ms,
                ..report("Error", messages[*kind].into(), None)
            })
            .collect();
        let window = NonZeroU64::new(window_ms).unwrap();
        let occurrences = coalesce(&errors, received_at_ms, window);
        let total: u64 = occurrences.iter().map(|o| u64::from(o.count)).sum();
        prop_assert_eq!(total, errors.len() as u64);
        let keys: BTreeSet<_> = occurrences.iter().map(|o| (o.window_start_ms, &o.fingerprint)).collect();
        prop_assert_eq!(keys.len(), occurrences.len(), "one command per (window, fingerprint)");
        for o in &occurrences {
            prop_assert_eq!(o.window_start_ms % window_ms, 0);
            prop_assert!(o.window_start_ms <= o.first_seen_ms && o.first_seen_ms <= o.last_seen_ms);
            prop_assert!(o.last_seen_ms < o.window_start_ms + window_ms);
            prop_assert!(o.last_seen_ms <= received_at_ms);
            prop_assert!(o.first_seen_ms >= received_at_ms - MAX_REPORT_AGE_MS);
            let decided = ErrorGroup::default().decide(o.command());
            prop_assert!(decided.is_ok(), "{:?}", decided);
        }
    }
}
