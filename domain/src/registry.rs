//! Aggregate types by name: the one list the runtime consults.

use crate::aggregate::{Aggregate, AggregateState, State};
use crate::board::Board;
use crate::codec::CodecError;
use crate::error_group::ErrorGroup;
use crate::feedback::Feedback;
use crate::repository::Repository;

/// Every aggregate type this build serves.
pub const AGGREGATE_TYPES: &[&str] = &[
    Board::TYPE,
    Feedback::TYPE,
    ErrorGroup::TYPE,
    Repository::TYPE,
];

pub fn is_known(aggregate_type: &str) -> bool {
    AGGREGATE_TYPES.contains(&aggregate_type)
}

/// A fresh (empty) state of the named type, or `None` for an unknown type.
pub fn new_state(aggregate_type: &str) -> Option<Box<dyn AggregateState>> {
    match aggregate_type {
        Board::TYPE => Some(Box::new(State::<Board>::default())),
        Feedback::TYPE => Some(Box::new(State::<Feedback>::default())),
        ErrorGroup::TYPE => Some(Box::new(State::<ErrorGroup>::default())),
        Repository::TYPE => Some(Box::new(State::<Repository>::default())),
        _ => None,
    }
}

/// A state restored from a snapshot; `None` for an unknown type.
pub fn restore_state(
    aggregate_type: &str,
    snapshot: &[u8],
) -> Option<Result<Box<dyn AggregateState>, CodecError>> {
    fn boxed<A: Aggregate>(snapshot: &[u8]) -> Result<Box<dyn AggregateState>, CodecError> {
        State::<A>::restore(snapshot).map(|s| Box::new(s) as Box<dyn AggregateState>)
    }
    match aggregate_type {
        Board::TYPE => Some(boxed::<Board>(snapshot)),
        Feedback::TYPE => Some(boxed::<Feedback>(snapshot)),
        ErrorGroup::TYPE => Some(boxed::<ErrorGroup>(snapshot)),
        Repository::TYPE => Some(boxed::<Repository>(snapshot)),
        _ => None,
    }
}
