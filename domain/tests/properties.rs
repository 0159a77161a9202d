//! Property tests: whatever a client or a storage row contains, the domain answers with a
//! value or an error — it never panics — and what it stores reads back unchanged.
//!
//! Case counts: every property runs proptest's default of 256 cases (set explicitly below,
//! `PROPTEST_CASES` overrides it): about 1–2 seconds for the whole file in a debug build.
//! Native only: proptest needs OS randomness, which wasm32-unknown-unknown lacks.
#![cfg(not(target_arch = "wasm32"))]

use domain::aggregate::{Aggregate, AggregateState, CommandError, DomainEvent, State};
use domain::board::{self, Board, BoardEvent};
use domain::command_service::CommandRequest;
use domain::feedback::{self, Feedback, FeedbackEvent, Severity};
use domain::{EventEnvelope, ExpectedVersion, Position, codec};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

const CASES: u32 = 256;

// ---------- strategies ----------

/// Floats that survive JSON text exactly. serde_json (without its `float_roundtrip`
/// feature) may parse a long decimal 1 ULP off; a short dyadic fraction such as 12.015625
/// is within its exact fast path. MessagePack stores the bits, so it gets any finite float.
fn json_exact_float() -> impl Strategy<Value = f64> {
    any::<i16>().prop_map(|n| f64::from(n) / 64.0)
}

fn leaf(float: BoxedStrategy<f64>) -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float.prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
    .boxed()
}

/// A JSON tree up to 4 levels deep and about 48 nodes.
fn json_tree(float: BoxedStrategy<f64>) -> BoxedStrategy<Value> {
    leaf(float)
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    json_tree(json_exact_float().boxed())
}

fn arb_json_any_float() -> BoxedStrategy<Value> {
    json_tree(
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .boxed(),
    )
}

fn arb_expected_version() -> impl Strategy<Value = ExpectedVersion> {
    prop_oneof![
        Just(ExpectedVersion::Any),
        Just(ExpectedVersion::None),
        Just(ExpectedVersion::Exists),
        any::<u64>().prop_map(ExpectedVersion::Exact),
    ]
}

fn arb_envelope(data: BoxedStrategy<Value>) -> impl Strategy<Value = EventEnvelope> {
    let ids = (
        any::<String>(),
        any::<String>(),
        any::<u64>(),
        any::<String>(),
        any::<String>(),
        any::<u32>(),
    );
    let meta = (
        any::<String>(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        proptest::option::of(
            (any::<u32>(), any::<u64>())
                .prop_map(|(partition, offset)| Position { partition, offset }),
        ),
    );
    (ids, data, meta).prop_map(
        |(
            (aggregate_type, aggregate_id, seq, event_id, event_type, schema_version),
            data,
            (recorded_at, command_id, correlation_id, causation_id, actor, position),
        )| EventEnvelope {
            aggregate_type,
            aggregate_id,
            seq,
            event_id,
            event_type,
            schema_version,
            data,
            recorded_at,
            command_id,
            correlation_id,
            causation_id,
            actor,
            position,
        },
    )
}

/// What a command field holds, so generated data is mostly well-typed and reaches the rules.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Name,
    Names,
    /// Optional: absent or a number.
    Limit,
    /// Required: a number or `null` (`SetWipLimit.limit`).
    NullableLimit,
    Severity,
}

/// Values that look like what the field expects (names the given states use, long and
/// blank strings, small limits, lists of names) four times in five, anything at all the
/// fifth time, so cases reach the rules and not only the decoder.
fn field_value(kind: Kind) -> BoxedStrategy<Value> {
    const NAMES: &[&str] = &[
        "Inbox", "Todo", "Doing", "Done", "c1", "c2", "c3", "", " ", "bug", "web", "b1",
    ];
    let name = prop_oneof![
        6 => select(NAMES).prop_map(str::to_owned),
        1 => (195usize..206).prop_map(|n| "x".repeat(n)),
        1 => any::<String>(),
    ];
    let typed = match kind {
        Kind::Name => name.prop_map(Value::from).boxed(),
        Kind::Names => vec(name, 0..4).prop_map(|names| json!(names)).boxed(),
        Kind::Limit => (0u64..4).prop_map(Value::from).boxed(),
        Kind::NullableLimit => {
            prop_oneof![Just(Value::Null), (0u64..4).prop_map(Value::from)].boxed()
        }
        Kind::Severity => select(&["low", "medium", "high", "critical", "urgent"][..])
            .prop_map(Value::from)
            .boxed(),
    };
    prop_oneof![4 => typed, 1 => arb_json()].boxed()
}

type CommandShapes = &'static [(&'static str, &'static [(&'static str, Kind)])];

const BOARD_COMMANDS: CommandShapes = &[
    (
        "CreateBoard",
        &[("title", Kind::Name), ("columns", Kind::Names)],
    ),
    (
        "AddColumn",
        &[("name", Kind::Name), ("wip_limit", Kind::Limit)],
    ),
    (
        "SetWipLimit",
        &[("column", Kind::Name), ("limit", Kind::NullableLimit)],
    ),
    (
        "AddCard",
        &[
            ("card_id", Kind::Name),
            ("title", Kind::Name),
            ("column", Kind::Name),
            ("labels", Kind::Names),
        ],
    ),
    (
        "MoveCard",
        &[("card_id", Kind::Name), ("to_column", Kind::Name)],
    ),
    (
        "EditCard",
        &[
            ("card_id", Kind::Name),
            ("title", Kind::Name),
            ("labels", Kind::Names),
        ],
    ),
    (
        "CommentOnCard",
        &[
            ("card_id", Kind::Name),
            ("author", Kind::Name),
            ("text", Kind::Name),
        ],
    ),
    ("ArchiveCard", &[("card_id", Kind::Name)]),
];

const FEEDBACK_COMMANDS: CommandShapes = &[
    (
        "SubmitFeedback",
        &[
            ("text", Kind::Name),
            ("source", Kind::Name),
            ("severity", Kind::Severity),
        ],
    ),
    (
        "TriageFeedback",
        &[
            ("board_id", Kind::Name),
            ("card_id", Kind::Name),
            ("labels", Kind::Names),
        ],
    ),
    ("CloseFeedback", &[("reason", Kind::Name)]),
];

/// `(command type, data)`: mostly a known type with most of its fields (and now and then
/// an unknown one); sometimes a known type with arbitrary data; sometimes anything at all.
fn arb_command(shapes: CommandShapes) -> BoxedStrategy<(String, Value)> {
    let shaped = (0..shapes.len()).prop_flat_map(move |i| {
        let (name, fields) = shapes[i];
        let values: Vec<_> = fields
            .iter()
            .map(|&(_, kind)| proptest::option::weighted(0.9, field_value(kind)))
            .collect();
        (
            values,
            proptest::option::weighted(0.05, (any::<String>(), arb_json())),
        )
            .prop_map(move |(values, extra)| {
                let mut data = serde_json::Map::new();
                for ((field, _), value) in fields.iter().zip(values) {
                    if let Some(value) = value {
                        data.insert((*field).to_owned(), value);
                    }
                }
                if let Some((key, value)) = extra {
                    data.insert(key, value);
                }
                (name.to_owned(), Value::Object(data))
            })
    });
    let any_data = (0..shapes.len())
        .prop_flat_map(move |i| arb_json().prop_map(move |data| (shapes[i].0.to_owned(), data)));
    prop_oneof![8 => shaped, 1 => any_data, 1 => (any::<String>(), arb_json())].boxed()
}

// ---------- the states commands are decided against ----------

fn board_states() -> Vec<State<Board>> {
    let s = |text: &str| text.to_owned();
    let history = [
        BoardEvent::BoardCreated {
            title: s("B"),
            columns: board::DEFAULT_COLUMNS.iter().map(|c| s(c)).collect(),
        },
        BoardEvent::WipLimitSet {
            column: s("Doing"),
            limit: Some(1),
        },
        BoardEvent::CardAdded {
            card_id: s("c1"),
            title: s("One"),
            column: s("Doing"),
            labels: vec![s("bug")],
        },
        BoardEvent::CardAdded {
            card_id: s("c2"),
            title: s("Two"),
            column: s("Todo"),
            labels: vec![],
        },
        BoardEvent::CardArchived {
            card_id: s("c2"),
            column: s("Todo"),
        },
    ];
    (0..=history.len())
        .map(|n| state_after::<Board>(&history[..n]))
        .collect()
}

fn feedback_states() -> Vec<State<Feedback>> {
    let submitted = FeedbackEvent::FeedbackSubmitted {
        text: "t".into(),
        source: "web".into(),
        severity: Severity::High,
    };
    let triaged = FeedbackEvent::FeedbackTriaged {
        board_id: "b1".into(),
        card_id: "c1".into(),
        labels: vec![],
        evidence: None,
    };
    let closed = FeedbackEvent::FeedbackClosed {
        reason: "done".into(),
    };
    vec![
        state_after::<Feedback>(&[]),
        state_after::<Feedback>(std::slice::from_ref(&submitted)),
        state_after::<Feedback>(&[submitted.clone(), triaged]),
        state_after::<Feedback>(&[submitted, closed]),
    ]
}

fn state_after<A: Aggregate>(history: &[A::Event]) -> State<A> {
    let mut state = A::default();
    for event in history {
        state.apply(event);
    }
    State(state)
}

/// Decides through the wire path; checks the only three outcomes and what each promises.
fn check_decide(
    state: &dyn AggregateState,
    rules: &[&str],
    command_type: &str,
    data: Value,
) -> Result<(), TestCaseError> {
    match state.decide(command_type, data) {
        Ok(events) => {
            // Whatever was decided must apply (the store would refuse to write otherwise)
            // and the resulting state must snapshot.
            let mut next = state.clone_box();
            for event in events {
                prop_assert!(event.schema_version >= 1);
                let applied =
                    next.apply(event.event_type, event.schema_version, event.data.clone());
                prop_assert!(
                    applied.is_ok(),
                    "{} {} does not apply: {:?}",
                    event.event_type,
                    event.data,
                    applied
                );
            }
            prop_assert!(!next.to_snapshot().is_empty());
        }
        Err(CommandError::Rejected(rejection)) => {
            prop_assert!(
                rules.contains(&rejection.rule),
                "undocumented rule `{}`",
                rejection.rule
            );
            prop_assert!(!rejection.message.is_empty());
        }
        Err(CommandError::BadCommand(message)) => prop_assert!(!message.is_empty()),
        Err(CommandError::Encoding(error)) => {
            prop_assert!(
                false,
                "a decided event does not survive its encoding: {error}"
            )
        }
    }
    Ok(())
}

/// Every command's optional fields: absent or of their type, never `null`.
const OPTIONAL_FIELDS: &[(&str, &[&str])] = &[
    ("CreateBoard", &["columns"]),
    ("AddColumn", &["wip_limit"]),
    ("AddCard", &["column", "labels"]),
    ("EditCard", &["title", "labels"]),
    ("SubmitFeedback", &["severity"]),
];

/// Whatever else a command holds, `null` in one of its optional fields is never read as
/// absent: the answer is a 400 about the command's data (that field, or an earlier bad
/// one — an unknown field, say). The unit tests check the field is named.
fn check_null_optional_field(
    state: &dyn AggregateState,
    command_type: &str,
    data: Value,
    pick: prop::sample::Index,
) -> Result<(), TestCaseError> {
    let Some((_, optional)) = OPTIONAL_FIELDS
        .iter()
        .find(|(name, _)| *name == command_type)
    else {
        return Ok(());
    };
    let Value::Object(mut fields) = data else {
        return Ok(());
    };
    let field = optional[pick.index(optional.len())];
    fields.insert(field.to_owned(), Value::Null);
    match state.decide(command_type, Value::Object(fields.clone())) {
        Err(CommandError::BadCommand(message)) => prop_assert!(
            message.starts_with(&format!("invalid `{command_type}` command: ")),
            "{message}"
        ),
        other => prop_assert!(
            false,
            "{command_type} {} was not refused: {other:?}",
            Value::Object(fields)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    // ---------- expected versions and requests ----------

    #[test]
    fn expected_version_round_trips_through_json_and_msgpack(version in arb_expected_version()) {
        let json = serde_json::to_string(&version).unwrap();
        prop_assert_eq!(serde_json::from_str::<ExpectedVersion>(&json).unwrap(), version);
        prop_assert_eq!(codec::decode::<ExpectedVersion>(&codec::encode(&version)).unwrap(), version);
    }

    #[test]
    fn expected_version_check_matches_its_definition(version in arb_expected_version(), actual in any::<u64>()) {
        let holds = match version {
            ExpectedVersion::Any => true,
            ExpectedVersion::None => actual == 0,
            ExpectedVersion::Exists => actual != 0,
            ExpectedVersion::Exact(n) => n == actual,
        };
        prop_assert_eq!(version.check(actual).is_ok(), holds);
    }

    #[test]
    fn any_json_decodes_as_a_command_request_or_errors(value in arb_json()) {
        match CommandRequest::from_json(&value) {
            Ok(request) => {
                prop_assert!(value.is_object(), "{value} is not an object");
                prop_assert_eq!(Some(request.command_type.as_str()), value["type"].as_str());
            }
            Err(CommandError::BadCommand(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "{value}: not a bad command: {other:?}"),
        }
    }

    #[test]
    fn request_like_json_decodes_or_errors(
        command_type in prop_oneof![any::<String>().prop_map(Value::from), arb_json()],
        data in proptest::option::of(arb_json()),
        expected in proptest::option::of(prop_oneof![
            arb_expected_version().prop_map(|v| serde_json::to_value(v).unwrap()),
            arb_json(),
        ]),
        extra in proptest::option::weighted(0.1, any::<String>().prop_map(|key| format!("x_{key}"))),
    ) {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), command_type.clone());
        if let Some(data) = data.clone() { object.insert("data".into(), data); }
        if let Some(expected) = expected.clone() { object.insert("expected_version".into(), expected); }
        if let Some(extra) = extra.clone() { object.insert(extra, Value::Null); }
        match CommandRequest::from_json(&Value::Object(object)) {
            Ok(request) => {
                prop_assert_eq!(Some(request.command_type.as_str()), command_type.as_str());
                // Absent data is no fields; present data is an object, never `null`.
                prop_assert_eq!(Value::Object(request.data), data.unwrap_or(json!({})));
                prop_assert!(expected.is_none_or(|e| !e.is_null()), "`expected_version: null` was accepted");
                prop_assert!(extra.is_none(), "an unknown field was accepted");
            }
            Err(CommandError::BadCommand(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "not a bad command: {other:?}"),
        }
    }

    #[test]
    fn a_null_optional_board_field_is_a_bad_command(
        (command_type, data) in arb_command(BOARD_COMMANDS),
        pick in any::<prop::sample::Index>(),
    ) {
        check_null_optional_field(&State(Board::default()), &command_type, data, pick)?;
    }

    #[test]
    fn a_null_optional_feedback_field_is_a_bad_command(
        (command_type, data) in arb_command(FEEDBACK_COMMANDS),
        pick in any::<prop::sample::Index>(),
    ) {
        check_null_optional_field(&State(Feedback::default()), &command_type, data, pick)?;
    }

    // ---------- deciding arbitrary commands ----------

    #[test]
    fn board_commands_never_panic((command_type, data) in arb_command(BOARD_COMMANDS)) {
        for state in board_states() {
            check_decide(&state, board::rules::ALL, &command_type, data.clone())?;
        }
    }

    #[test]
    fn feedback_commands_never_panic((command_type, data) in arb_command(FEEDBACK_COMMANDS)) {
        for state in feedback_states() {
            check_decide(&state, feedback::rules::ALL, &command_type, data.clone())?;
        }
    }

    // ---------- the codec ----------

    #[test]
    fn json_values_round_trip_through_json_and_msgpack(value in arb_json()) {
        let text = serde_json::to_string(&value).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Value>(&text).unwrap(), &value);
        prop_assert_eq!(codec::decode::<Value>(&codec::encode(&value)).unwrap(), value);
    }

    #[test]
    fn any_finite_float_round_trips_through_msgpack(value in arb_json_any_float()) {
        prop_assert_eq!(codec::decode::<Value>(&codec::encode(&value)).unwrap(), value);
    }

    #[test]
    fn envelopes_round_trip_through_json_and_msgpack(envelope in arb_envelope(arb_json())) {
        let text = serde_json::to_string(&envelope).unwrap();
        prop_assert_eq!(&serde_json::from_str::<EventEnvelope>(&text).unwrap(), &envelope);
        prop_assert_eq!(codec::decode::<EventEnvelope>(&codec::encode(&envelope)).unwrap(), envelope);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<Value>(&bytes);
        let _ = codec::decode::<EventEnvelope>(&bytes);
        let _ = codec::decode::<ExpectedVersion>(&bytes);
        let _ = State::<Board>::restore(&bytes);
        let _ = State::<Feedback>::restore(&bytes);
    }

    #[test]
    fn truncated_msgpack_is_an_error(envelope in arb_envelope(arb_json()), cut in any::<prop::sample::Index>()) {
        let bytes = codec::encode(&envelope);
        let cut = cut.index(bytes.len());
        prop_assert!(codec::decode::<EventEnvelope>(&bytes[..cut]).is_err());
        let _ = codec::decode::<Value>(&bytes[..cut]);
    }

    #[test]
    fn corrupted_msgpack_never_panics(value in arb_json(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = codec::encode(&value);
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let _ = codec::decode::<Value>(&bytes);
        let _ = codec::decode::<EventEnvelope>(&bytes);
    }

    // ---------- stored events ----------

    #[test]
    fn arbitrary_stored_events_never_panic_apply(
        event_type in prop_oneof![select(&["CardAdded", "BoardCreated", "CardMoved", "FeedbackSubmitted"][..]).prop_map(str::to_owned), any::<String>()],
        schema_version in 0u32..4,
        data in prop_oneof![arb_json(), btree_map(select(&["card_id", "title", "column", "labels"][..]).prop_map(str::to_owned), field_value(Kind::Name), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))],
    ) {
        let mut board: Box<dyn AggregateState> = Box::new(State::<Board>::default());
        let _ = board.apply(&event_type, schema_version, data.clone());
        let mut feedback: Box<dyn AggregateState> = Box::new(State::<Feedback>::default());
        let _ = feedback.apply(&event_type, schema_version, data);
    }

    #[test]
    fn board_events_survive_the_store(card_id in any::<String>(), title in any::<String>(), labels in vec(any::<String>(), 0..4)) {
        let event = BoardEvent::CardAdded { card_id, title, column: "Todo".into(), labels };
        let stored = domain::aggregate::encode_event(&event).unwrap();
        let data: Value = codec::decode(&codec::encode(&stored.data)).unwrap();
        prop_assert_eq!(stored.schema_version, event.schema_version());
        prop_assert_eq!(domain::aggregate::decode_event::<Board>(stored.event_type, stored.schema_version, data).unwrap(), event);
    }
}

/// Every command type of both aggregates, with data of every JSON kind: a fixed sweep so
/// coverage of each type does not depend on the random draw.
#[test]
fn every_command_type_survives_odd_data() {
    let odd = [
        Value::Null,
        json!(0),
        json!(-1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!({"unknown": 1}),
        json!([{"title": "t"}]),
    ];
    let board_states = board_states();
    let feedback_states = feedback_states();
    for data in odd {
        for (command_type, _) in BOARD_COMMANDS {
            for state in &board_states {
                check_decide(state, board::rules::ALL, command_type, data.clone()).unwrap();
            }
        }
        for (command_type, _) in FEEDBACK_COMMANDS {
            for state in &feedback_states {
                check_decide(state, feedback::rules::ALL, command_type, data.clone()).unwrap();
            }
        }
    }
}
