//! Error fingerprints: which reports are "the same error", and so one `error_group`.
//!
//! A fingerprint is SHA-256 over the normalized type, the normalized message and the
//! normalized top frame, as [`FINGERPRINT_HEX_CHARS`] hex digits — also the group's aggregate
//! id. Normalizing removes what differs between occurrences of one bug and would otherwise
//! split it into thousands of groups:
//!
//! * **message**: quoted strings (`'…'`, `"…"`, `` `…` `` opened at the start of a word) →
//!   `<str>`; UUIDs → `<uuid>`; hex ids (`0x1f`, or a word of ≥ 8 hex digits holding both a
//!   digit and a letter) → `<hex>`; numbers (digit runs, with one decimal part) → `<n>`;
//!   whitespace collapsed to one space and trimmed. `Cannot find card 'c-42' (id 1837)`
//!   becomes `Cannot find card <str> (id <n>)`.
//! * **top frame** ([`top_frame`]): the first line of the stack that looks like a frame —
//!   V8's `at f (url:1:2)`, SpiderMonkey's and JavaScriptCore's `f@url:1:2`, or for a Python
//!   traceback the *last* `File "…", line N, in f` (Python prints the innermost call last).
//!   [`normalize_frame`] drops line and column numbers, the query string and fragment, and
//!   the scheme and host (one bug on staging and production is one bug), then replaces
//!   numbers and hex ids as in messages, so a bundle's content hash (`app.3f2a9c1b.js`) does
//!   not make each deploy a new group. Quoted strings are kept: in a frame they are file names.
//! * **type**: numbers and hex ids replaced, whitespace collapsed.
//!
//! What it does not do: map minified frames through source maps, or unify the messages
//! different engines give one bug (V8's "Cannot read properties of undefined" and
//! SpiderMonkey's "x is undefined" are two groups).
//!
//! Normalizing a message is idempotent (normalizing a normalized message changes nothing),
//! which `tests/properties.rs` checks over arbitrary text, with the stability that matters:
//! messages differing only in numbers, ids and quoted strings, and frames differing only in
//! positions, queries and hosts, have one fingerprint. (Normalizing a frame is not
//! idempotent — it parses the frame's shape — and need not be: it runs once, on a raw line.)

use sha2::{Digest, Sha256};

use crate::telemetry::ErrorReport;

/// A fingerprint is this many lowercase hex digits (64 bits): ample to keep one tenant's
/// groups apart, short enough to read in a URL.
pub const FINGERPRINT_HEX_CHARS: usize = 16;

/// The fingerprint of a report: the id of its `error_group`.
pub fn fingerprint(report: &ErrorReport) -> String {
    let frame = report
        .stack
        .as_deref()
        .and_then(top_frame)
        .map(normalize_frame)
        .unwrap_or_default();
    fingerprint_of(&report.error_type, &report.message, &frame)
}

/// The fingerprint of a type, a message and an already normalized frame.
fn fingerprint_of(error_type: &str, message: &str, normalized_frame: &str) -> String {
    let mut hasher = Sha256::new();
    // A separator that normalized text cannot contain (whitespace is collapsed to spaces),
    // so ("a\nb", "c") and ("a", "b\nc") hash differently.
    for (index, part) in [
        normalize(error_type, false),
        normalize_message(message),
        normalized_frame.to_owned(),
    ]
    .iter()
    .enumerate()
    {
        if index > 0 {
            hasher.update(b"\n");
        }
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(FINGERPRINT_HEX_CHARS / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The message with its variable parts replaced by placeholders (see the module docs).
pub fn normalize_message(message: &str) -> String {
    normalize(message, true)
}

/// The first line of `stack` that looks like a frame, trimmed (see the module docs).
pub fn top_frame(stack: &str) -> Option<&str> {
    let lines = || stack.lines().map(str::trim);
    if let Some(frame) = lines().find(|line| line.starts_with("at ") && line.len() > 3) {
        return Some(frame);
    }
    if let Some(frame) = lines().find(|line| {
        line.split_once('@')
            .is_some_and(|(_, location)| ends_with_line_number(location))
    }) {
        return Some(frame);
    }
    // Python prints the innermost call last.
    lines()
        .rev()
        .find(|line| line.starts_with("File \"") && line.contains(", line "))
}

/// `…:12` or `…:12:5`, possibly in parentheses.
fn ends_with_line_number(location: &str) -> bool {
    let location = location.strip_suffix(')').unwrap_or(location);
    location
        .rsplit_once(':')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A frame without what changes between builds and hosts (see the module docs).
pub fn normalize_frame(frame: &str) -> String {
    let frame = frame.trim();
    let frame = frame.strip_prefix("at ").unwrap_or(frame).trim();
    let (function, location) = if let Some(inner) = frame.strip_suffix(')') {
        match inner.rsplit_once(" (") {
            Some((function, location)) => (function, location),
            None => ("", frame),
        }
    } else if let Some((function, location)) = frame.split_once('@') {
        (function, location)
    } else {
        ("", frame)
    };
    let location = strip_location(location);
    let joined = match (function.trim(), location.as_str()) {
        ("", location) => location.to_owned(),
        (function, "") => function.to_owned(),
        (function, location) => format!("{function} ({location})"),
    };
    normalize(&joined, false)
}

/// `https://host/app.js?v=3#x:10:15` → `/app.js`.
fn strip_location(location: &str) -> String {
    let mut location = location.trim();
    // Line, then column (either may be missing).
    for _ in 0..2 {
        if let Some((rest, n)) = location.rsplit_once(':')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            location = rest;
        }
    }
    let location = location.split(['?', '#']).next().unwrap_or(location);
    match location.split_once("://") {
        Some((_, after_scheme)) => match after_scheme.find('/') {
            Some(path) => after_scheme[path..].to_owned(),
            None => String::new(),
        },
        None => location.to_owned(),
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text` starts with a word character.
fn starts_word(text: &str) -> bool {
    text.chars().next().is_some_and(is_word)
}

/// The length of a UUID (8-4-4-4-12 hex digits) at the start of `text`.
fn uuid_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.len() < 36 {
        return None;
    }
    let ok = bytes[..36].iter().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    ok.then_some(36)
}

/// The length of a hex id at the start of `text`: `0x` and hex digits, or ≥ 8 hex digits
/// holding both a digit and a letter.
fn hex_len(text: &str) -> Option<usize> {
    let run = |from: usize| {
        text.as_bytes()[from..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
    };
    if text.starts_with("0x") || text.starts_with("0X") {
        let digits = run(2);
        return (digits > 0).then_some(2 + digits);
    }
    let len = run(0);
    let digits = text.as_bytes()[..len]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .count();
    (len >= 8 && digits > 0 && digits < len).then_some(len)
}

/// The length of a number at the start of `text`: digits, optionally `.` and more digits.
fn number_len(text: &str) -> usize {
    let digits = |from: usize| {
        text.as_bytes()[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(0);
    match text.as_bytes().get(whole) {
        Some(b'.') if digits(whole + 1) > 0 => whole + 1 + digits(whole + 1),
        _ => whole,
    }
}

/// Replaces the variable parts of `text` (quoted strings only when `quoted_strings`).
///
/// Whether a token starts a word is judged by the last character *written*, not read: a
/// placeholder ends in `>`, which is not a word character, so normalizing the output again
/// sees the same word boundaries and changes nothing.
fn normalize(text: &str, quoted_strings: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let at_word_start = !out.chars().next_back().is_some_and(is_word);
        if quoted_strings
            && at_word_start
            && matches!(c, '\'' | '"' | '`')
            && let Some(end) = rest[1..].find(c)
        {
            out.push_str("<str>");
            rest = &rest[1 + end + 1..];
            continue;
        }
        if at_word_start {
            let id = uuid_len(rest)
                .map(|len| (len, "<uuid>"))
                .or_else(|| hex_len(rest).map(|len| (len, "<hex>")));
            if let Some((len, placeholder)) = id
                && !starts_word(&rest[len..])
            {
                out.push_str(placeholder);
                rest = &rest[len..];
                continue;
            }
        }
        if c.is_ascii_digit() {
            out.push_str("<n>");
            rest = &rest[number_len(rest)..];
            continue;
        }
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(error_type: &str, message: &str, stack: Option<&str>) -> ErrorReport {
        ErrorReport {
            error_type: error_type.into(),
            message: message.into(),
            stack: stack.map(Into::into),
            url: None,
            release: None,
            user_agent: None,
            timestamp_ms: None,
        }
    }

    #[test]
    fn messages_lose_their_variable_parts() {
        let cases = [
            (
                "Cannot find card 'c-42' (id 1837)",
                "Cannot find card <str> (id <n>)",
            ),
            (
                "Request 3fa85f64-5717-4562-b3fc-2c963f66afa6 failed after 2.5s",
                "Request <uuid> failed after <n>s",
            ),
            (
                "object 507f1f77bcf86cd799439011 at 0x7ffd5a1c not found",
                "object <hex> at <hex> not found",
            ),
            (
                "Unexpected token \"}\" in JSON at position 12",
                "Unexpected token <str> in JSON at position <n>",
            ),
            ("  timeout \n\t after   30000 ms ", "timeout after <n> ms"),
            // Apostrophes inside words are not quotes.
            (
                "Can't load 'x' in it's place",
                "Can't load <str> in it's place",
            ),
            // Hex-looking words need a digit and a letter: neither `deadbeef` nor `12345678`.
            ("deadbeef 12345678 cafe1234", "deadbeef <n> <hex>"),
            ("version v2.10.3", "version v<n>.<n>"),
            ("unclosed 'quote", "unclosed 'quote"),
            ("", ""),
        ];
        for (message, normalized) in cases {
            assert_eq!(normalize_message(message), normalized, "{message:?}");
            assert_eq!(
                normalize_message(normalized),
                normalized,
                "idempotent: {normalized:?}"
            );
        }
    }

    #[test]
    fn the_top_frame_is_the_first_frame_line_of_any_engine() {
        let v8 = "TypeError: Cannot read properties of undefined (reading 'id')\n    at renderCard (https://app.example.com/assets/app.3f2a9c1b.js?v=7:1:2045)\n    at Array.map (<anonymous>)";
        assert_eq!(
            top_frame(v8),
            Some("at renderCard (https://app.example.com/assets/app.3f2a9c1b.js?v=7:1:2045)")
        );
        // A message that looks like a Gecko frame does not fool the V8 reading.
        let tricky = "Error: mail me@example.com:25\n    at send (app.js:3:4)";
        assert_eq!(top_frame(tricky), Some("at send (app.js:3:4)"));
        let gecko = "renderCard@https://app.example.com/assets/app.js:1:2045\n@https://app.example.com/assets/app.js:9:1";
        assert_eq!(
            top_frame(gecko),
            Some("renderCard@https://app.example.com/assets/app.js:1:2045")
        );
        let python = "Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 10, in <module>\n    run()\n  File \"/srv/app/handlers.py\", line 42, in create_card\n    card.id\nAttributeError: 'NoneType' object has no attribute 'id'";
        assert_eq!(
            top_frame(python),
            Some("File \"/srv/app/handlers.py\", line 42, in create_card")
        );
        assert_eq!(top_frame("Error: boom"), None);
        assert_eq!(top_frame(""), None);
    }

    #[test]
    fn frames_lose_positions_queries_hosts_and_build_hashes() {
        let cases = [
            (
                "at renderCard (https://app.example.com/assets/app.3f2a9c1b.js?v=7:1:2045)",
                "renderCard (/assets/app.<hex>.js)",
            ),
            ("at https://cdn.example.com/app.js:10:15", "/app.js"),
            ("at Array.map (<anonymous>)", "Array.map (<anonymous>)"),
            (
                "renderCard@https://app.example.com/assets/app.js#top:1:2045",
                "renderCard (/assets/app.js)",
            ),
            (
                "@https://app.example.com/assets/app.js:9:1",
                "/assets/app.js",
            ),
            (
                "File \"/srv/app/handlers.py\", line 42, in create_card",
                "File \"/srv/app/handlers.py\", line <n>, in create_card",
            ),
            (
                "at async Promise.all (index 0)",
                "async Promise.all (index <n>)",
            ),
        ];
        for (frame, normalized) in cases {
            assert_eq!(normalize_frame(frame), normalized, "{frame}");
        }
    }

    #[test]
    fn occurrences_of_one_bug_share_a_fingerprint() {
        let a = report(
            "TypeError",
            "Cannot read properties of undefined (reading 'id') for card 17",
            Some(
                "TypeError: x\n    at renderCard (https://app.example.com/assets/app.3f2a9c1b.js:1:2045)",
            ),
        );
        let b = report(
            "TypeError",
            "Cannot read properties of undefined (reading 'title') for card 9001",
            Some(
                "TypeError: y\n    at renderCard (https://staging.example.com/assets/app.9e8d7c6b.js?x=1:1:2101)",
            ),
        );
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let fp = fingerprint(&a);
        assert_eq!(fp.len(), FINGERPRINT_HEX_CHARS);
        assert!(
            fp.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{fp}"
        );
    }

    #[test]
    fn different_bugs_do_not() {
        let base = report("TypeError", "x is undefined", Some("at f (app.js:1:1)"));
        let others = [
            report("RangeError", "x is undefined", Some("at f (app.js:1:1)")),
            report("TypeError", "y is undefined", Some("at f (app.js:1:1)")),
            report("TypeError", "x is undefined", Some("at g (app.js:1:1)")),
            report("TypeError", "x is undefined", Some("at f (lib.js:1:1)")),
            report("TypeError", "x is undefined", None),
            // The parts are kept apart: moving a line between them is another bug.
            report("TypeError x", "is undefined", Some("at f (app.js:1:1)")),
        ];
        for other in others {
            assert_ne!(fingerprint(&base), fingerprint(&other), "{other:?}");
        }
    }

    #[test]
    fn a_fingerprint_is_stable_across_releases_of_this_code() {
        // The fingerprint is an aggregate id: changing the function splits every group in
        // two. Changing this value must be a deliberate, migrated decision.
        assert_eq!(
            fingerprint(&report(
                "TypeError",
                "x is undefined",
                Some("at f (https://a.example/app.js:1:1)")
            )),
            fingerprint_of("TypeError", "x is undefined", "f (/app.js)")
        );
        assert_eq!(
            fingerprint_of("TypeError", "x is undefined", "f (/app.js)"),
            "ae55ba1cb7de7848"
        );
    }
}
