//! Commands that must be refused, and their mutations: each knows what it may be answered.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    OptStr,
    OptU32,
    /// Present, a number or null (`SetWipLimit.limit`).
    NullableU32,
    StrList,
    OptStrList,
    OptSeverity,
}

#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Whether any string content keeps the command refused.
    pub(super) free: bool,
    pub(super) value: Value,
}

pub(super) fn field(name: &'static str, kind: Kind, free: bool, value: Value) -> Field {
    Field {
        name,
        kind,
        free,
        value,
    }
}

/// A command the target refuses by a domain rule, whatever the content of its free fields.
pub(super) fn refusable(rng: &mut fastrand::Rng, class: Class) -> (&'static str, Vec<Field>) {
    use Kind::*;
    let text = |rng: &mut fastrand::Rng| Value::String(fresh_name(rng, "fz"));
    // A card the victim refuses to touch: archived, or not there.
    let dead_card = |rng: &mut fastrand::Rng| {
        if rng.bool() {
            json!("c-arch")
        } else {
            Value::String(fresh_name(rng, "fz-none"))
        }
    };
    match class {
        Class::BoardVictim => match rng.u8(..8) {
            // The board exists.
            0 => (
                "CreateBoard",
                vec![
                    field("title", Str, true, text(rng)),
                    field("columns", OptStrList, true, json!([text(rng), text(rng)])),
                ],
            ),
            // The column exists (its name must stay as it is).
            1 => (
                "AddColumn",
                vec![
                    field(
                        "name",
                        Str,
                        false,
                        json!(pick(rng, &["Todo", "Full", "Done"])),
                    ),
                    field("wip_limit", OptU32, true, json!(rng.u32(0..5))),
                ],
            ),
            // No such column.
            2 => (
                "SetWipLimit",
                vec![
                    field("column", Str, true, text(rng)),
                    field("limit", NullableU32, true, json!(rng.u32(0..5))),
                ],
            ),
            // The column is full (or, once mutated, not there).
            3 => (
                "AddCard",
                vec![
                    field("card_id", Str, true, text(rng)),
                    field("title", Str, true, text(rng)),
                    field("column", OptStr, true, json!("Full")),
                    field("labels", OptStrList, true, json!([text(rng)])),
                ],
            ),
            4 => (
                "MoveCard",
                vec![
                    field("card_id", Str, true, dead_card(rng)),
                    field("to_column", Str, true, json!(pick(rng, &["Todo", "Done"]))),
                ],
            ),
            5 => (
                "EditCard",
                vec![
                    field("card_id", Str, true, dead_card(rng)),
                    field("title", OptStr, true, text(rng)),
                    field("labels", OptStrList, true, json!([text(rng)])),
                ],
            ),
            6 => (
                "CommentOnCard",
                vec![
                    field("card_id", Str, true, dead_card(rng)),
                    field("author", Str, true, text(rng)),
                    field("text", Str, true, text(rng)),
                ],
            ),
            _ => (
                "ArchiveCard",
                vec![field("card_id", Str, true, dead_card(rng))],
            ),
        },
        // The board does not exist: every command but CreateBoard is refused.
        Class::BoardFresh => match rng.u8(..7) {
            0 => (
                "AddColumn",
                vec![
                    field("name", Str, true, text(rng)),
                    field("wip_limit", OptU32, true, json!(3)),
                ],
            ),
            1 => (
                "SetWipLimit",
                vec![
                    field("column", Str, true, json!("Todo")),
                    field("limit", NullableU32, true, json!(2)),
                ],
            ),
            2 => (
                "AddCard",
                vec![
                    field("card_id", Str, true, text(rng)),
                    field("title", Str, true, text(rng)),
                    field("column", OptStr, true, json!("Todo")),
                    field("labels", OptStrList, true, json!([])),
                ],
            ),
            3 => (
                "MoveCard",
                vec![
                    field("card_id", Str, true, text(rng)),
                    field("to_column", Str, true, json!("Done")),
                ],
            ),
            4 => (
                "EditCard",
                vec![
                    field("card_id", Str, true, text(rng)),
                    field("title", OptStr, true, text(rng)),
                    field("labels", OptStrList, true, json!(["x"])),
                ],
            ),
            5 => (
                "CommentOnCard",
                vec![
                    field("card_id", Str, true, text(rng)),
                    field("author", Str, true, text(rng)),
                    field("text", Str, true, text(rng)),
                ],
            ),
            _ => ("ArchiveCard", vec![field("card_id", Str, true, text(rng))]),
        },
        // Already submitted.
        Class::FeedbackOpen => (
            "SubmitFeedback",
            vec![
                field("text", Str, true, text(rng)),
                field("source", Str, true, text(rng)),
                field(
                    "severity",
                    OptSeverity,
                    true,
                    json!(pick(rng, &["low", "medium", "high"])),
                ),
            ],
        ),
        // Closed: nothing more happens to it.
        Class::FeedbackClosed => match rng.u8(..3) {
            0 => (
                "SubmitFeedback",
                vec![
                    field("text", Str, true, text(rng)),
                    field("source", Str, true, text(rng)),
                    field("severity", OptSeverity, true, json!("high")),
                ],
            ),
            1 => (
                "TriageFeedback",
                vec![
                    field("board_id", Str, true, text(rng)),
                    field("card_id", Str, true, text(rng)),
                    field("labels", StrList, true, json!([text(rng)])),
                ],
            ),
            _ => ("CloseFeedback", vec![field("reason", Str, true, text(rng))]),
        },
        // Not submitted: triage and close are refused.
        Class::FeedbackFresh => match rng.u8(..2) {
            0 => (
                "TriageFeedback",
                vec![
                    field("board_id", Str, true, text(rng)),
                    field("card_id", Str, true, text(rng)),
                    field("labels", StrList, true, json!([])),
                ],
            ),
            _ => ("CloseFeedback", vec![field("reason", Str, true, text(rng))]),
        },
    }
}

/// A value of the wrong type for a field of `kind` (never `null` where `null` is allowed).
pub(super) fn wrong_type(rng: &mut fastrand::Rng, kind: Kind) -> Value {
    let strings = [
        json!(5),
        json!(-1),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"a": "b"}),
    ];
    let numbers = [
        json!("3"),
        json!(""),
        json!(true),
        json!([]),
        json!({}),
        json!(-1),
        json!(1.5),
        json!(4_294_967_296_u64),
        json!(u64::MAX),
        json!(-9_007_199_254_740_993_i64),
    ];
    let lists = [
        json!("a,b"),
        json!(5),
        json!([1]),
        json!([null]),
        json!([["x"]]),
        json!({"0": "a"}),
        json!(true),
        json!([{"label": "x"}]),
    ];
    let severities = [
        json!("urgent"),
        json!("HIGH"),
        json!(" high"),
        json!(1),
        json!(true),
        json!([]),
        json!({}),
    ];
    match kind {
        Kind::Str if rng.u8(..9) == 0 => Value::Null,
        Kind::Str | Kind::OptStr => pick_ref(rng, &strings).clone(),
        Kind::OptU32 | Kind::NullableU32 => pick_ref(rng, &numbers).clone(),
        Kind::StrList if rng.u8(..9) == 0 => Value::Null,
        Kind::StrList | Kind::OptStrList => pick_ref(rng, &lists).clone(),
        Kind::OptSeverity => pick_ref(rng, &severities).clone(),
    }
}

pub(super) fn is_optional(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::OptStr | Kind::OptU32 | Kind::OptStrList | Kind::OptSeverity
    )
}

pub(super) fn is_numeric(kind: Kind) -> bool {
    matches!(kind, Kind::OptU32 | Kind::NullableU32)
}

/// What the mutations did to a command body, and so what it may be answered.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Defects {
    /// Not decodable at all (not JSON, bad UTF-8…) or the wrong top-level shape: 400.
    pub(super) broken: bool,
    /// A field of `data` (or the command type) is wrong: 400, unless a version conflict
    /// comes first.
    pub(super) data: bool,
    /// Something that may or may not be a 400 (a number that may be out of range).
    maybe_400: bool,
    /// `expected_version` was changed to something that may or may not hold: 409 possible.
    pub(super) version: bool,
    /// A `command_id`, `correlation_id` or `causation_id` over 256 characters: a 400,
    /// checked before the version and the rules.
    pub(super) metadata: bool,
}

impl Defects {
    /// The statuses a body with these defects may get; 422 is the refusal the command was
    /// built around.
    pub(super) fn expect(self) -> Vec<u16> {
        if self.broken || self.metadata {
            return vec![400];
        }
        let mut statuses = vec![if self.data { 400 } else { 422 }];
        if self.maybe_400 && !self.data {
            statuses.push(400);
        }
        if self.version {
            statuses.push(409);
        }
        statuses
    }
}

/// Commands of the other aggregate type: unknown here.
pub(super) fn foreign_command(rng: &mut fastrand::Rng, aggregate_type: &str) -> &'static str {
    if aggregate_type == "board" {
        pick(rng, &["SubmitFeedback", "TriageFeedback", "CloseFeedback"])
    } else {
        pick(rng, &["CreateBoard", "AddCard", "MoveCard", "ArchiveCard"])
    }
}

/// A refusable command for `target` with 0–3 mutations, as a JSON value (with raw
/// splices when `allow_raw`), and its defects.
pub(super) fn mutated_command(
    rng: &mut fastrand::Rng,
    target: &Target,
    case: &mut Case,
    splices: &mut Splices,
    allow_raw: bool,
) -> (Value, Defects) {
    let (command_type, mut fields) = refusable(rng, target.class);
    case.note(format!("{command_type} on {:?}", target.class));
    let mut defects = Defects::default();
    let mut top = serde_json::Map::new();
    top.insert("type".to_owned(), json!(command_type));
    // What the last mutation of each field did to it (a later one replaces an earlier one).
    #[derive(Clone, Copy, PartialEq)]
    enum Damage {
        None,
        Removed,
        Data,
        Broken,
        Maybe400,
    }
    let mut damage = vec![Damage::None; fields.len()];
    let mut unknown: Vec<&'static str> = Vec::new();
    let mut top_damage: BTreeMap<&'static str, Defects> = BTreeMap::new();
    let mutations = pick(rng, &[0, 1, 1, 1, 2, 2, 3]);
    for _ in 0..mutations {
        let index = rng.usize(..fields.len());
        let f = &mut fields[index];
        match rng.u8(..100) {
            // Odd content in a free string field.
            0..=29 if f.free && matches!(f.kind, Kind::Str | Kind::OptStr) => {
                f.value = Value::String(odd_string(rng));
                damage[index] = Damage::None;
                case.note(format!("{} = odd string {:?}", f.name, f.value));
            }
            0..=29 if f.free && matches!(f.kind, Kind::StrList | Kind::OptStrList) => {
                let n = pick(rng, &[0, 1, 2, 21]);
                f.value = Value::Array((0..n).map(|_| Value::String(odd_string(rng))).collect());
                damage[index] = Damage::None;
                case.note(format!("{} = {n} odd strings", f.name));
            }
            30..=54 => {
                f.value = wrong_type(rng, f.kind);
                damage[index] = Damage::Data;
                case.note(format!("{} = {} (wrong type)", f.name, f.value));
            }
            55..=62 if !is_optional(f.kind) => {
                damage[index] = Damage::Removed;
                case.note(format!("{} removed", f.name));
            }
            63..=69 => {
                let key = pick(
                    rng,
                    &["colour", "Title", "card_id ", "__proto__", "", "\u{0}"],
                );
                unknown.push(key);
                case.note(format!("unknown data field {key:?}"));
            }
            70..=84 if allow_raw => {
                let raw = pick_ref(rng, RAW_VALUES);
                let string_field = matches!(f.kind, Kind::Str | Kind::OptStr);
                damage[index] = if raw.broken {
                    Damage::Broken
                } else if raw.number && is_numeric(f.kind) {
                    // In range for a u32 or not: a 400, or the refusal.
                    Damage::Maybe400
                } else if raw.number {
                    Damage::Data
                } else if f.free && string_field {
                    Damage::None
                } else {
                    // A valid string only goes where any string keeps the command refused.
                    continue;
                };
                f.value = splices.add(raw.text);
                case.note(format!(
                    "{} = raw {}",
                    f.name,
                    String::from_utf8_lossy(raw.text)
                ));
            }
            _ => {
                // The last mutation of a member decides what it does.
                let (key, damage) = mutate_top(rng, target, &mut top, case, splices, allow_raw);
                top_damage.insert(key, damage);
            }
        }
    }
    for damage in top_damage.values() {
        defects.broken |= damage.broken;
        defects.data |= damage.data;
        defects.maybe_400 |= damage.maybe_400;
        defects.version |= damage.version;
        defects.metadata |= damage.metadata;
    }
    if !top.contains_key("data") {
        let mut data = serde_json::Map::new();
        for (f, damage) in fields.iter().zip(&damage) {
            match damage {
                Damage::Removed => {
                    defects.data = true;
                    continue;
                }
                Damage::Data => defects.data = true,
                Damage::Broken => defects.broken = true,
                Damage::Maybe400 => defects.maybe_400 = true,
                Damage::None => {}
            }
            data.insert(f.name.to_owned(), f.value.clone());
        }
        if !unknown.is_empty() {
            defects.data = true;
        }
        for key in unknown {
            data.insert(key.to_owned(), json!(1));
        }
        top.insert("data".to_owned(), Value::Object(data));
    }
    (Value::Object(top), defects)
}

/// Mutates a top-level member: the type, `data`, `expected_version`, metadata, or an
/// unknown member.
pub(super) fn mutate_top(
    rng: &mut fastrand::Rng,
    target: &Target,
    top: &mut serde_json::Map<String, Value>,
    case: &mut Case,
    splices: &mut Splices,
    allow_raw: bool,
) -> (&'static str, Defects) {
    let command_type = top["type"].as_str().unwrap_or("AddCard").to_owned();
    let mut defects = Defects::default();
    match rng.u8(..6) {
        0 => {
            // The type: not a string (400 before anything) or an unknown name (400 from
            // the decider, after the version check).
            let value = match rng.u8(..8) {
                0 => json!(5),
                1 => Value::Null,
                2 => json!([command_type]),
                3 => json!({"type": command_type}),
                4 => json!(command_type.to_ascii_lowercase()),
                5 => json!(format!(" {command_type}")),
                6 => json!(foreign_command(rng, target.aggregate_type)),
                _ => Value::String(odd_string(rng)),
            };
            if value.is_string() {
                defects.data = true;
            } else {
                defects.broken = true;
            }
            case.note(format!("type = {value}"));
            top.insert("type".to_owned(), value);
            ("type", defects)
        }
        1 => {
            let value = match rng.u8(..6) {
                0 => json!("x"),
                1 => json!(5),
                2 => json!([1, 2]),
                3 => json!(true),
                // `data` is an object; null is not one.
                4 => Value::Null,
                _ => json!([{"card_id": "x"}]),
            };
            defects.data = true;
            case.note(format!("data = {value}"));
            top.insert("data".to_owned(), value);
            ("data", defects)
        }
        2 | 3 => {
            let valid = [
                json!("any"),
                json!("none"),
                json!("exists"),
                json!(0),
                json!(target.version),
                json!(target.version + 1),
            ];
            let huge = [json!(9_007_199_254_740_993_u64), json!(u64::MAX)];
            let invalid = [
                json!("sometimes"),
                json!("ANY"),
                json!(" any"),
                json!(""),
                json!("1"),
                json!(-1),
                json!(1.5),
                json!(true),
                json!([]),
                json!({"exact": 1}),
                // Not "any": a field is absent or of its documented type.
                Value::Null,
            ];
            let value = match rng.u8(..10) {
                0..=3 => {
                    defects.version = true;
                    pick_ref(rng, &valid).clone()
                }
                4 => {
                    // Beyond what JavaScript counts exactly: a 400 or a conflict.
                    defects.version = true;
                    defects.maybe_400 = true;
                    pick_ref(rng, &huge).clone()
                }
                5..=7 => {
                    defects.broken = true;
                    pick_ref(rng, &invalid).clone()
                }
                _ if allow_raw => {
                    let numbers: Vec<&Raw> = RAW_VALUES.iter().filter(|r| r.number).collect();
                    let raw = numbers[rng.usize(..numbers.len())];
                    if raw.broken {
                        defects.broken = true;
                    } else {
                        defects.version = true;
                        defects.maybe_400 = true;
                    }
                    splices.add(raw.text)
                }
                _ => {
                    defects.version = true;
                    json!("none")
                }
            };
            case.note(format!("expected_version = {value}"));
            top.insert("expected_version".to_owned(), value);
            ("expected_version", defects)
        }
        4 => {
            let key = pick(rng, &["command_id", "correlation_id", "causation_id"]);
            let value = if rng.bool() {
                defects.broken = true;
                pick_ref(rng, &[json!(5), json!(true), json!([]), json!({})]).clone()
            } else {
                let text = odd_string(rng);
                defects.metadata = text.chars().count() > MAX_METADATA_CHARS;
                Value::String(text)
            };
            case.note(format!("{key} = {value}"));
            top.insert(key.to_owned(), value);
            (key, defects)
        }
        _ => {
            let key = pick(
                rng,
                &["extra", "Type", "data ", "expectedVersion", "", "__proto__"],
            );
            defects.broken = true;
            case.note(format!("unknown member {key:?}"));
            top.insert(key.to_owned(), json!(1));
            (key, defects)
        }
    }
}
