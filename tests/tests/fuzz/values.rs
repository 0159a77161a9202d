//! Values that make trouble: odd strings, raw JSON splices, and picking among them.

use super::*;

/// Valid UTF-8 strings that make trouble: empty and blank, NUL and controls, direction
/// marks, BOM, noncharacters, combining marks, emoji sequences, injection look-alikes,
/// near-misses of real names.
pub(super) const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\t\n \r",
    "\u{0}",
    "a\u{0}b",
    "\u{202E}gpj.exe",
    "\u{200F}\u{200E}\u{061C}\u{2066}x\u{2069}",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦",
    "🦀",
    "\u{FEFF}",
    "\u{FEFF}Todo",
    "\u{FFFD}",
    "\u{FFFE}\u{FFFF}",
    "\u{10FFFF}",
    "e\u{301}\u{301}\u{301}\u{301}",
    "Ω≈ç√∫˜µ≤",
    "日本語のカード",
    "\u{1b}[31mred\u{1b}[0m",
    "'; DROP TABLE events; --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00%ff%2F",
    "\\",
    "\"",
    "{\"a\":1}",
    "${jndi:ldap://x}",
    "\r\n\r\nHTTP/1.1 200 OK",
    "null",
    "0",
    "Todo ",
    " Full",
    "full",
    "C1",
    "c1\u{0}",
    "Inbox\u{200B}",
];

/// Characters repeated into long strings.
pub(super) const LONG_UNITS: &[&str] = &["a", "é", "🦀", "\u{301}", "\u{0}", " ", "\u{202E}"];

pub(super) fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

pub(super) fn pick_ref<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// An odd string, sometimes long (up to a few hundred kilobytes), never a reserved name.
pub(super) fn odd_string(rng: &mut fastrand::Rng) -> String {
    let s = match rng.u8(..100) {
        0..=69 => (pick(rng, ODD_STRINGS)).to_owned(),
        70..=89 => {
            let len = pick(rng, &[199, 200, 201, 256, 1000, 4001, 10_000]);
            pick(rng, LONG_UNITS).repeat(len)
        }
        90..=96 => {
            let mut s = String::new();
            for _ in 0..rng.usize(1..12) {
                s.push_str(pick(rng, ODD_STRINGS));
            }
            s
        }
        _ => pick(rng, LONG_UNITS).repeat(rng.usize(50_000..300_000)),
    };
    if RESERVED.contains(&s.as_str()) {
        format!("{s}\u{0}")
    } else {
        s
    }
}

/// A plain name nobody uses.
pub(super) fn fresh_name(rng: &mut fastrand::Rng, prefix: &str) -> String {
    format!("{prefix}-{:08x}", rng.u32(..))
}

/// JSON text spliced in raw where a value goes, and what it does to the request.
pub(super) struct Raw {
    pub(super) text: &'static [u8],
    /// Not valid JSON (or not decodable): the body is a 400 whatever else it holds.
    pub(super) broken: bool,
    /// A valid JSON number (else: a string).
    pub(super) number: bool,
}

pub(super) const RAW_VALUES: &[Raw] = &[
    // Huge and odd numbers.
    raw(b"1e400", true, true),
    raw(b"-1e400", true, true),
    raw(b"18446744073709551616", false, true),
    raw(b"18446744073709551615", false, true),
    raw(b"9007199254740993", false, true),
    raw(b"9007199254740992", false, true),
    raw(b"123456789012345678901234567890", false, true),
    raw(b"4294967296", false, true),
    raw(b"4294967295", false, true),
    raw(b"-1", false, true),
    raw(b"-0", false, true),
    raw(b"1.0", false, true),
    raw(b"1e2", false, true),
    raw(b"1E+2", false, true),
    raw(b"0.5", false, true),
    raw(b"-9223372036854775809", false, true),
    // Not JSON numbers at all.
    raw(b"01", true, true),
    raw(b"+1", true, true),
    raw(b".5", true, true),
    raw(b"NaN", true, true),
    raw(b"Infinity", true, true),
    raw(b"-Infinity", true, true),
    raw(b"0x10", true, true),
    raw(b"1_000", true, true),
    // Lone and mismatched surrogates, bad escapes.
    raw(br#""\ud800""#, true, false),
    raw(br#""\udc00""#, true, false),
    raw(br#""\ud800\ud800""#, true, false),
    raw(br#""x\ud83e""#, true, false),
    raw(br#""\uDFFF\uD800""#, true, false),
    raw(br#""\uZZZZ""#, true, false),
    raw(br#""\x41""#, true, false),
    raw(br#""\'""#, true, false),
    // Invalid UTF-8: overlong encodings, encoded surrogates, beyond U+10FFFF, stray and
    // truncated sequences; raw control characters inside a string.
    raw(b"\"\xC0\xAF\"", true, false),
    raw(b"\"\xE0\x80\xAF\"", true, false),
    raw(b"\"\xF0\x80\x80\xAF\"", true, false),
    raw(b"\"\xED\xA0\x80\"", true, false),
    raw(b"\"\xF4\x90\x80\x80\"", true, false),
    raw(b"\"\x80\"", true, false),
    raw(b"\"\xFF\xFE\"", true, false),
    raw(b"\"\xF0\x9F\xA6\"", true, false),
    raw(b"\"a\x00b\"", true, false),
    raw(b"\"tab\there\"", true, false),
    // Valid escapes.
    raw(br#""\uD83E\uDD80""#, false, false),
    raw(br#""\u0000""#, false, false),
    raw(br#""\u202e\u200f""#, false, false),
    raw(br#""\/\b\f\n\r\t""#, false, false),
];

pub(super) const fn raw(text: &'static [u8], broken: bool, number: bool) -> Raw {
    Raw {
        text,
        broken,
        number,
    }
}

/// Holds raw splices until the JSON is serialized.
#[derive(Default)]
pub(super) struct Splices(Vec<&'static [u8]>);

impl Splices {
    /// A placeholder string for `raw`, replaced in [`Splices::render`].
    pub(super) fn add(&mut self, raw: &'static [u8]) -> Value {
        self.0.push(raw);
        Value::String(format!("@@RAW{}@@", self.0.len() - 1))
    }

    pub(super) fn render(&self, value: &Value) -> Vec<u8> {
        let mut text = value.to_string().into_bytes();
        for (index, raw) in self.0.iter().enumerate() {
            let needle = format!("\"@@RAW{index}@@\"");
            if let Some(at) = find(&text, needle.as_bytes()) {
                text.splice(at..at + needle.len(), raw.iter().copied());
            }
        }
        text
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
