//! Property tests of the `error_group` aggregate over random command sequences: the counts
//! that readers sum from the events are exactly the counts recorded, whatever resolutions,
//! regressions and ignores happen in between.
//!
//! 256 cases (proptest's default; `PROPTEST_CASES` overrides it), well under a second.
//! Native only: proptest needs OS randomness, which wasm32-unknown-unknown lacks.
#![cfg(not(target_arch = "wasm32"))]

use domain::aggregate::Aggregate;
use domain::error_group::{ErrorGroup, ErrorGroupCommand, ErrorGroupEvent, Status};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Record { count: u32, window: u64 },
    Resolve,
    Ignore(Option<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=1_000_000_u32, 0..50_u64).prop_map(|(count, window)| Op::Record { count, window }),
        1 => Just(Op::Resolve),
        1 => proptest::option::of(0..10_u64).prop_map(Op::Ignore),
    ]
}

fn command(op: &Op) -> ErrorGroupCommand {
    match *op {
        Op::Record { count, window } => ErrorGroupCommand::RecordOccurrences {
            error_type: "TypeError".into(),
            message: "x is undefined".into(),
            top_frame: None,
            release: None,
            url: None,
            user_agent: None,
            count,
            first_seen_ms: window * 60_000 + 5,
            last_seen_ms: window * 60_000 + 50,
            window_start_ms: window * 60_000,
        },
        Op::Resolve => ErrorGroupCommand::ResolveErrorGroup {
            release: None,
            note: None,
        },
        Op::Ignore(until_ms) => ErrorGroupCommand::IgnoreErrorGroup { until_ms },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn counts_in_the_events_add_up_to_the_counts_recorded(ops in proptest::collection::vec(op(), 1..200)) {
        let mut group = ErrorGroup::default();
        let (mut recorded, mut in_events, mut regressions) = (0_u64, 0_u64, 0_u32);
        for op in &ops {
            let was_resolved = group.opened && group.status == Status::Resolved;
            let Ok(events) = group.decide(command(op)) else {
                // Only resolve/ignore of an unopened or resolved group are refused.
                let is_record = matches!(op, Op::Record { .. });
                prop_assert!(!is_record, "{:?} refused", op);
                continue;
            };
            if let Op::Record { count, .. } = op {
                recorded += u64::from(*count);
                prop_assert!(events.len() <= 2, "one record decides at most two events");
                if was_resolved {
                    regressions += 1;
                    let regressed = matches!(events[0], ErrorGroupEvent::ErrorGroupRegressed { .. });
                    prop_assert!(regressed, "{:?}", events);
                }
            }
            for event in &events {
                match event {
                    ErrorGroupEvent::ErrorGroupOpened { count, .. }
                    | ErrorGroupEvent::ErrorGroupRecurred { count, .. } => in_events += u64::from(*count),
                    _ => {}
                }
                group.apply(event);
            }
        }
        prop_assert_eq!(in_events, recorded);
        prop_assert_eq!(group.total_count, recorded);
        prop_assert_eq!(group.regressions, regressions);
        let windows = ops.iter().filter_map(|op| match op {
            Op::Record { window, .. } => Some(*window),
            _ => None,
        });
        // Windows count the records that moved past every earlier window.
        let mut latest = None;
        let mut expected_windows = 0;
        for window in windows {
            if latest.is_none_or(|latest| window > latest) {
                expected_windows += 1;
                latest = Some(window);
            }
        }
        prop_assert_eq!(group.windows, expected_windows);
    }
}
