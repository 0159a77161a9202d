//! The aggregate abstraction.
//!
//! All business rules live in [`Aggregate::decide`]; [`Aggregate::apply`] only folds an
//! already-accepted event into the state and never refuses one (an event is a fact).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::codec::{self, CodecError};
use crate::fields::{self, Blamed};

/// A domain rule refused a command. Maps to HTTP 422 `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// Stable, machine-readable rule name, e.g. `wip_limit_reached`.
    pub rule: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Rejection {
    pub fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}

/// Why a command could not be decided.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The command's shape is wrong: unknown type, missing field, wrong type. HTTP 400 `bad_request`.
    #[error("{0}")]
    BadCommand(String),
    /// A domain rule refused it. HTTP 422 `rejected`.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The aggregate decided an event it cannot encode and decode back: a bug in the
    /// aggregate, not the client's mistake. HTTP 500.
    #[error(transparent)]
    Encoding(CodecError),
}

/// An event type of one aggregate: one enum per aggregate, adjacently tagged
/// (`{"type": "CardAdded", "data": {...}}`) so that `data` holds exactly the event's fields.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq {
    /// The event's type name, e.g. `CardAdded`.
    fn event_type(&self) -> &'static str;

    /// The current schema version of this event's type. Bump it when the payload shape
    /// changes, and teach [`DomainEvent::upcast`] to lift the older shape.
    fn schema_version(&self) -> u32 {
        1
    }

    /// Lifts a stored payload of `(event_type, schema_version)` to the current schema,
    /// returning the new schema version. Runs before decoding. The default is identity.
    fn upcast(
        event_type: &str,
        schema_version: u32,
        data: Value,
    ) -> Result<(u32, Value), CodecError> {
        let _ = event_type;
        Ok((schema_version, data))
    }
}

/// An event decided by a command, not yet given a sequence number, id or time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub data: Value,
}

/// What [`AggregateState::decide_typed`] decided: the events as they are stored, and the
/// same events in the aggregate's own type ([`TypedEvents`]), which
/// [`AggregateState::apply_decided`] folds into the state without decoding them back.
#[derive(Debug)]
pub struct Decision {
    pub events: Vec<NewEvent>,
    pub typed: TypedEvents,
}

/// A decision's events in the aggregate's own type, opaque outside the aggregate that
/// decided them (a `Vec<A::Event>`).
pub struct TypedEvents(Box<dyn std::any::Any>);

impl std::fmt::Debug for TypedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedEvents(..)")
    }
}

/// One aggregate type: its state, commands, events and rules.
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + std::fmt::Debug + 'static
{
    /// The aggregate type name used in routes, e.g. `board`.
    const TYPE: &'static str;
    /// Commands, adjacently tagged: `{"type": "AddCard", "data": {...}}`.
    type Command: DeserializeOwned + std::fmt::Debug;
    type Event: DomainEvent + 'static;

    /// Decides a command against the current state. All rules live here.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Rejection>;

    /// Folds one event into the state. Never fails and enforces no rule.
    fn apply(&mut self, event: &Self::Event);
}

/// Object-safe view of an aggregate's state, so the runtime can serve any aggregate type
/// chosen by name at request time. Implemented for every [`Aggregate`] by [`State`].
pub trait AggregateState: std::fmt::Debug {
    fn aggregate_type(&self) -> &'static str;
    /// Decodes `{type, data}` into the aggregate's command and decides it. `data` must be
    /// an object; a decoding error is a [`CommandError::BadCommand`] naming the field.
    /// Every event is checked to decode back to itself, so an event that could be written
    /// but never replayed is refused here ([`CommandError::Encoding`]).
    fn decide_typed(&self, command_type: &str, data: Value) -> Result<Decision, CommandError>;
    /// [`AggregateState::decide_typed`], keeping only the events as stored.
    fn decide(&self, command_type: &str, data: Value) -> Result<Vec<NewEvent>, CommandError> {
        self.decide_typed(command_type, data)
            .map(|decision| decision.events)
    }
    /// Folds the events of a decision this state's aggregate type made — the command path's
    /// apply, with no decoding. Fails only for another aggregate type's events.
    fn apply_decided(&mut self, typed: TypedEvents) -> Result<(), CodecError>;
    /// Upcasts, decodes and applies one stored event.
    fn apply(
        &mut self,
        event_type: &str,
        schema_version: u32,
        data: Value,
    ) -> Result<(), CodecError>;
    /// The state as clients see it.
    fn to_json(&self) -> Value;
    /// The state as a snapshot (MessagePack).
    fn to_snapshot(&self) -> Vec<u8>;
    fn clone_box(&self) -> Box<dyn AggregateState>;
}

impl Clone for Box<dyn AggregateState> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// The [`AggregateState`] implementation for any [`Aggregate`].
#[derive(Debug, Clone, Default)]
pub struct State<A: Aggregate>(pub A);

impl<A: Aggregate> State<A> {
    pub fn restore(snapshot: &[u8]) -> Result<Self, CodecError> {
        codec::decode(snapshot).map(State)
    }
}

/// Decodes a stored event of `A` (running its upcasters first).
pub fn decode_event<A: Aggregate>(
    event_type: &str,
    schema_version: u32,
    data: Value,
) -> Result<A::Event, CodecError> {
    let (_, data) = A::Event::upcast(event_type, schema_version, data)?;
    // The adjacently tagged form `{"type": …, "data": …}`, handed to serde as a map whose
    // tag comes first: serde then decodes `data` straight into the variant. (A
    // `serde_json` object orders its keys, `data` first, which made serde buffer the
    // whole payload before it knew the variant.)
    let tagged = serde::de::value::MapDeserializer::new(
        [
            ("type", Value::String(event_type.to_owned())),
            ("data", data),
        ]
        .into_iter(),
    );
    A::Event::deserialize(tagged).map_err(|e: serde_json::Error| {
        CodecError::new(format!("cannot decode {} event {event_type}: {e}", A::TYPE))
    })
}

/// Splits a typed event into the name, schema version and `data` that are stored.
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<NewEvent, CodecError> {
    let mut tagged = serde_json::to_value(event).map_err(|e| CodecError::new(e.to_string()))?;
    let data = tagged
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Object(Default::default()));
    Ok(NewEvent {
        event_type: event.event_type(),
        schema_version: event.schema_version(),
        data,
    })
}

impl<A: Aggregate> AggregateState for State<A> {
    fn aggregate_type(&self) -> &'static str {
        A::TYPE
    }

    fn decide_typed(&self, command_type: &str, data: Value) -> Result<Decision, CommandError> {
        if !data.is_object() {
            // serde would take a struct variant's fields as a positional array too.
            return Err(CommandError::BadCommand(format!(
                "invalid `{command_type}` command: `data` must be an object"
            )));
        }
        let command: A::Command = fields::decode(
            &json!({ "type": command_type, "data": data }),
            |command| command["data"].as_object(),
            |data| json!({ "type": command_type, "data": data }),
        )
        .map_err(|e| CommandError::BadCommand(command_decode_message(A::TYPE, command_type, &e)))?;
        let events = self.0.decide(command)?;
        let encoded = events
            .iter()
            .map(|event| {
                let encoded = encode_event(event)?;
                // An event that does not decode back to itself could be written but never
                // applied or replayed. Catch such a serde bug here, before anything is
                // written, so the command service can apply events without a fallback.
                let decoded = decode_event::<A>(
                    encoded.event_type,
                    encoded.schema_version,
                    encoded.data.clone(),
                )?;
                if decoded != *event {
                    return Err(CodecError::new(format!(
                        "{} event {} does not survive its own encoding",
                        A::TYPE,
                        encoded.event_type
                    )));
                }
                Ok(encoded)
            })
            .collect::<Result<_, _>>()
            .map_err(CommandError::Encoding)?;
        Ok(Decision {
            events: encoded,
            typed: TypedEvents(Box::new(events)),
        })
    }

    fn apply_decided(&mut self, typed: TypedEvents) -> Result<(), CodecError> {
        let events = typed.0.downcast::<Vec<A::Event>>().map_err(|_| {
            CodecError::new(format!(
                "events decided by another aggregate type applied to a {}",
                A::TYPE
            ))
        })?;
        for event in events.iter() {
            self.0.apply(event);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        event_type: &str,
        schema_version: u32,
        data: Value,
    ) -> Result<(), CodecError> {
        let event = decode_event::<A>(event_type, schema_version, data)?;
        self.0.apply(&event);
        Ok(())
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).unwrap_or(Value::Null)
    }

    fn to_snapshot(&self) -> Vec<u8> {
        codec::encode(&self.0)
    }

    fn clone_box(&self) -> Box<dyn AggregateState> {
        Box::new(self.clone())
    }
}

/// serde's message for an unknown variant lists every variant; keep it, it helps clients.
fn command_decode_message(aggregate_type: &str, command_type: &str, e: &Blamed) -> String {
    if e.field.is_none() && e.error.starts_with("unknown variant") {
        format!(
            "unknown command type `{command_type}` for aggregate type `{aggregate_type}`: {}",
            e.error
        )
    } else {
        format!("invalid `{command_type}` command: {}", e.message("data."))
    }
}
