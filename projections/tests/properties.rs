//! The independent check: for random command sequences run through the domain's own command
//! service, every projection document agrees with its aggregate's state (`Loaded.state`, what
//! the aggregate endpoints serve) — for a board its title, columns, WIP limits and fullness,
//! the live cards of each column and the archived count; for a feedback every field. Card
//! order, which the aggregate does not keep, is checked against its rule restated on the log:
//! a column lists its cards by the seq of the event that put them there.
//!
//! The stream mixes two boards and three feedback items, some `CardAdded` events are
//! rewritten to their stored v1 form (labels as one comma-separated string), and the
//! projector's way of folding (one event at a time, bodies stored as JSON text, every event
//! delivered twice) must give what [`fold_all`] gives.
//!
//! 256 cases of up to 100 commands (proptest's default count; `PROPTEST_CASES` overrides it),
//! 2–4 seconds in a debug build. Native only: proptest needs OS randomness, which
//! wasm32-unknown-unknown lacks.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::collections::BTreeMap;

use domain::EventEnvelope;
use projections::board_summary::BoardSummary;
use projections::feedback_inbox::FeedbackInbox;
use projections::{Projection, fold_all, fold_event};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Map, Value, json};
use support::World;

const BOARDS: &[&str] = &["b1", "b2"];
const FEEDBACK: &[&str] = &["f1", "f2", "f3"];
const COLUMNS: &[&str] = &["Inbox", "Todo", "Doing", "Done", "Review"];
const CARDS: &[&str] = &["c1", "c2", "c3", "c4", "c5", "c6"];
const TITLES: &[&str] = &["Ship", "Fix login", "Write docs"];
const LABELS: &[&str] = &["x", "bug", "ui"];

// ---------- strategies ----------

fn names(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<Value>> {
    subsequence(pool, 0..=max).prop_map(|names| names.into_iter().map(Value::from).collect())
}

/// `{type, data}` with `data`'s absent optional fields left out.
fn command(command_type: &str, fields: &[(&str, Option<Value>)]) -> Value {
    let data: Map<String, Value> = fields
        .iter()
        .filter_map(|(name, value)| value.clone().map(|v| ((*name).to_owned(), v)))
        .collect();
    json!({"type": command_type, "data": data})
}

/// Board commands over small pools of names, so most of them pass the rules.
fn board_command() -> impl Strategy<Value = Value> {
    let column = || select(COLUMNS).prop_map(Value::from);
    let card = || select(CARDS).prop_map(Value::from);
    let limit = || proptest::option::of(1u32..5).prop_map(|l| l.map(Value::from));
    prop_oneof![
        1 => proptest::option::of(names(COLUMNS, 4)).prop_map(|columns| command(
            "CreateBoard",
            &[("title", Some(json!("Again"))), ("columns", columns.map(Value::from))],
        )),
        1 => (column(), limit()).prop_map(|(name, wip_limit)| command(
            "AddColumn", &[("name", Some(name)), ("wip_limit", wip_limit)],
        )),
        2 => (column(), limit()).prop_map(|(column, limit)| command(
            "SetWipLimit", &[("column", Some(column)), ("limit", Some(limit.unwrap_or(Value::Null)))],
        )),
        5 => (card(), select(TITLES), proptest::option::of(column()), proptest::option::of(names(LABELS, 3)))
            .prop_map(|(card_id, title, column, labels)| command(
                "AddCard",
                &[("card_id", Some(card_id)), ("title", Some(title.into())), ("column", column),
                  ("labels", labels.map(Value::from))],
            )),
        8 => (card(), column()).prop_map(|(card_id, to_column)| command(
            "MoveCard", &[("card_id", Some(card_id)), ("to_column", Some(to_column))],
        )),
        2 => (card(), proptest::option::of(select(TITLES)), proptest::option::of(names(LABELS, 3)))
            .prop_map(|(card_id, title, labels)| command(
                "EditCard",
                &[("card_id", Some(card_id)), ("title", title.map(Value::from)),
                  ("labels", labels.map(Value::from))],
            )),
        2 => card().prop_map(|card_id| command(
            "CommentOnCard",
            &[("card_id", Some(card_id)), ("author", Some(json!("ana"))), ("text", Some(json!("ok")))],
        )),
        1 => card().prop_map(|card_id| command("ArchiveCard", &[("card_id", Some(card_id))])),
    ]
}

fn feedback_command() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (select(&["Login is slow", "Export fails"][..]), select(&["web", "ios"][..]),
              proptest::option::of(select(&["low", "medium", "high", "critical"][..])))
            .prop_map(|(text, source, severity)| command(
                "SubmitFeedback",
                &[("text", Some(text.into())), ("source", Some(source.into())),
                  ("severity", severity.map(Value::from))],
            )),
        2 => (select(BOARDS), select(CARDS), names(LABELS, 3)).prop_map(|(board_id, card_id, labels)| command(
            "TriageFeedback",
            &[("board_id", Some(board_id.into())), ("card_id", Some(card_id.into())),
              ("labels", Some(labels.into()))],
        )),
        1 => select(&["fixed", "duplicate"][..]).prop_map(|reason| command(
            "CloseFeedback", &[("reason", Some(reason.into()))],
        )),
    ]
}

/// A command and the aggregate it goes to.
fn step() -> impl Strategy<Value = (&'static str, &'static str, Value)> {
    prop_oneof![
        3 => (select(BOARDS), board_command()).prop_map(|(id, c)| ("board", id, c)),
        1 => (select(FEEDBACK), feedback_command()).prop_map(|(id, c)| ("feedback", id, c)),
    ]
}

// ---------- the model: what each document must be, from the aggregate's state ----------

/// The envelopes of one aggregate, in seq order.
fn log_of<'a>(
    stream: &'a [EventEnvelope],
    aggregate_type: &str,
    id: &str,
) -> Vec<&'a EventEnvelope> {
    stream
        .iter()
        .filter(|e| e.aggregate_type == aggregate_type && e.aggregate_id == id)
        .collect()
}

/// The board summary the aggregate's state implies. Card order is the rule restated on the
/// log: the seq of the last `CardAdded` or `CardMoved` of each card.
fn expected_summary(board_id: &str, version: u64, state: &Value, log: &[&EventEnvelope]) -> Value {
    let mut arrived: BTreeMap<&str, u64> = BTreeMap::new();
    for event in log {
        if matches!(event.event_type.as_str(), "CardAdded" | "CardMoved") {
            arrived.insert(event.data["card_id"].as_str().unwrap(), event.seq);
        }
    }
    let cards = state["cards"].as_object().unwrap();
    let columns: Vec<Value> = state["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|column| {
            let mut live: Vec<(&String, &Value)> = cards
                .iter()
                .filter(|(_, card)| card["archived"] == false && card["column"] == column["name"])
                .collect();
            live.sort_by_key(|(id, _)| arrived[id.as_str()]);
            let count = live.len() as u64;
            let full = column["wip_limit"]
                .as_u64()
                .is_some_and(|limit| count >= limit);
            json!({
                "name": column["name"], "wip_limit": column["wip_limit"],
                "card_count": count, "full": full,
                "cards": live.iter().map(|(id, card)| json!({
                    "card_id": id, "title": card["title"], "labels": card["labels"],
                    "comments": card["comments"],
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let archived = cards.values().filter(|c| c["archived"] == true).count();
    json!({
        "board_id": board_id, "title": state["title"], "version": version,
        "last_activity_at": log.last().unwrap().recorded_at,
        "columns": columns, "archived_count": archived,
    })
}

/// The inbox document the feedback's state implies.
fn expected_inbox(feedback_id: &str, version: u64, state: &Value, log: &[&EventEnvelope]) -> Value {
    let triage = &state["triage"];
    json!({
        "feedback_id": feedback_id, "text": state["text"], "source": state["source"],
        "severity": state["severity"], "status": state["status"],
        "card": if triage.is_null() { Value::Null }
                else { json!({"board_id": triage["board_id"], "card_id": triage["card_id"]}) },
        "labels": if triage.is_null() { json!([]) } else { triage["labels"].clone() },
        "closed_reason": state["close_reason"],
        "submitted_at": log[0].recorded_at, "updated_at": log.last().unwrap().recorded_at,
        "version": version,
    })
}

/// `CardAdded` v2 → the v1 form an old writer stored: labels as `"a, b"`, or absent.
fn to_v1(event: &mut EventEnvelope) {
    let labels: Vec<&str> = event.data["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let text = labels.join(", ");
    let fields = event.data.as_object_mut().unwrap();
    if text.is_empty() {
        fields.remove("labels");
    } else {
        fields.insert("labels".to_owned(), text.into());
    }
    event.schema_version = 1;
}

/// The projector's way: one event at a time, each delivered twice, bodies kept as JSON text.
fn fold_as_the_projector_does(
    projection: &dyn Projection,
    stream: &[EventEnvelope],
) -> BTreeMap<String, Value> {
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for event in stream.iter().flat_map(|e| [e, e]) {
        let changes = fold_event(projection, event, |id| {
            stored
                .get(id)
                .map(|text| serde_json::from_str(text).unwrap())
        })
        .unwrap();
        for change in changes {
            match change.body {
                Some(body) => stored.insert(change.doc_id, body.to_string()),
                None => stored.remove(&change.doc_id),
            };
        }
    }
    stored
        .into_iter()
        .map(|(id, text)| (id, serde_json::from_str(&text).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn documents_agree_with_the_aggregates_state(
        columns in BOARDS.iter().map(|_| proptest::option::of(names(COLUMNS, 4))).collect::<Vec<_>>(),
        steps in proptest::collection::vec(step(), 0..100),
        v1 in proptest::collection::vec(any::<bool>(), 100),
    ) {
        let mut world = World::new();
        for (board_id, columns) in BOARDS.iter().zip(columns) {
            let create = command(
                "CreateBoard",
                &[("title", Some(json!(format!("Board {board_id}")))), ("columns", columns.map(Value::from))],
            );
            prop_assert!(world.send("board", board_id, create));
        }
        for (aggregate_type, id, command) in steps {
            world.send(aggregate_type, id, command);
        }
        let mut stream = world.stream.clone();
        for (event, old) in stream.iter_mut().filter(|e| e.event_type == "CardAdded").zip(v1) {
            if old {
                to_v1(event);
            }
        }

        let summaries = fold_all(&BoardSummary, &stream).unwrap();
        prop_assert_eq!(summaries.keys().collect::<Vec<_>>(), BOARDS);
        for board_id in BOARDS {
            let (version, state) = world.state("board", board_id).unwrap();
            let log = log_of(&stream, "board", board_id);
            prop_assert_eq!(&summaries[*board_id], &expected_summary(board_id, version, &state, &log));
        }

        let inbox = fold_all(&FeedbackInbox, &stream).unwrap();
        let submitted: Vec<&str> = FEEDBACK
            .iter()
            .copied()
            .filter(|id| world.state("feedback", id).is_some_and(|(v, _)| v > 0))
            .collect();
        prop_assert_eq!(inbox.keys().map(String::as_str).collect::<Vec<_>>(), submitted);
        for (feedback_id, body) in &inbox {
            let (version, state) = world.state("feedback", feedback_id).unwrap();
            let log = log_of(&stream, "feedback", feedback_id);
            prop_assert_eq!(body, &expected_inbox(feedback_id, version, &state, &log));
        }

        prop_assert_eq!(fold_as_the_projector_does(&BoardSummary, &stream), summaries);
        prop_assert_eq!(fold_as_the_projector_does(&FeedbackInbox, &stream), inbox);
    }
}
