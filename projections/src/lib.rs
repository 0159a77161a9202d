//! Edgeloop's projections, the pure part: the folds from events to read-model documents.
//!
//! A *projection* (DESIGN.md, "Projections") is a pure fold from events to *documents*
//! keyed by id, named and versioned (`board_summary@1`). A Projector Durable Object feeds it
//! the tenant's global stream in order, stores each document's body (JSON) with its
//! [`ListIndex`] in SQLite, and serves them; a Convex mirror receives the same documents.
//! Everything here is what that object decides without storage: which documents an event
//! touches, their new bodies, and how they are listed.
//!
//! Like `domain`, this crate does no IO, reads no clock and no random numbers, is not
//! async and does not depend on `worker`: it builds for the host and for
//! `wasm32-unknown-unknown`, and its tests run natively. Events are decoded with the
//! aggregates' own types and upcasters, so a projection reads old schema versions exactly
//! as the aggregate does.
//!
//! # Layout
//! * [`projection`] — the [`Projection`] trait, [`DocChange`], [`ListIndex`], [`FoldError`],
//!   [`fold_event`] (one event against stored documents: the projector's step) and
//!   [`fold_all`] (a whole history: the reference the projector must agree with), and
//!   [`projection::sequence`], the "next seq, or already folded" rule of a document that
//!   follows one aggregate.
//! * [`board_summary`] — `board_summary@1`: a board's columns, live cards, WIP fullness.
//! * [`feedback_inbox`] — `feedback_inbox@1`: feedback items by status and severity.
//! * [`knowledge`] — `knowledge@1`: searchable documents from feedback, cards, error groups
//!   and repository events, with the pure search helpers (FTS5 query, rank fusion,
//!   near-duplicate similarity).
//! * [`testing`] — envelope builders and the given/when/then harness for folds.
//! * [`registry`] / [`by_name`] — every projection, by name.
//!
//! Adding a projection: one file implementing [`Projection`], its `pub mod` line and one
//! line in [`registry`].

pub mod board_summary;
pub mod feedback_inbox;
pub mod knowledge;
pub mod projection;
pub mod testing;

pub use projection::{DocChange, FoldError, ListIndex, Projection, fold_all, fold_event};

/// Every projection, once each (names are unique).
static REGISTRY: &[&dyn Projection] = &[
    &board_summary::BoardSummary,
    &feedback_inbox::FeedbackInbox,
    &knowledge::Knowledge,
];

/// Every projection.
pub fn registry() -> &'static [&'static dyn Projection] {
    REGISTRY
}

/// The projection called `name` (without `@version`), if any.
pub fn by_name(name: &str) -> Option<&'static dyn Projection> {
    REGISTRY.iter().copied().find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The projector reads a projection that names its aggregate type through a filter, so
    /// the events it no longer sees must be ones it ignored anyway: no document of its
    /// comes from another type, whatever the event.
    #[test]
    fn a_projection_of_one_aggregate_type_ignores_every_other_type() {
        let filtered: Vec<_> = registry()
            .iter()
            .filter_map(|p| Some((p, p.aggregate_type()?)))
            .collect();
        assert_eq!(
            filtered
                .iter()
                .map(|(p, t)| (p.name(), *t))
                .collect::<Vec<_>>(),
            [("board_summary", "board"), ("feedback_inbox", "feedback")]
        );
        for (projection, own) in filtered {
            assert!(domain::registry::AGGREGATE_TYPES.contains(&own), "{own}");
            for other in domain::registry::AGGREGATE_TYPES
                .iter()
                .filter(|t| **t != own)
            {
                for event_type in ["BoardCreated", "CardAdded", "FeedbackSubmitted", "Anything"] {
                    let event =
                        testing::stored(other, "x", 1, event_type, 1, serde_json::json!({}));
                    assert!(
                        projection.document_ids(&event).is_empty(),
                        "{} folds {other}/{event_type}",
                        projection.name()
                    );
                }
            }
        }
    }

    /// The Convex mirror sends a projection's documents only if Convex has a home for
    /// them: the mirrored projections are exactly the keys of `projections` in
    /// `convex/mirror.ts` (Convex refuses the others as `unknown_projection`).
    #[test]
    fn the_mirrored_projections_are_the_ones_convex_holds() {
        let source =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../convex/mirror.ts"))
                .unwrap();
        let block = source
            .split_once("\nconst projections = {\n")
            .and_then(|(_, rest)| rest.split_once("\n} as const;"))
            .map(|(block, _)| block)
            .expect("`const projections = { … } as const;` in convex/mirror.ts");
        let in_convex: Vec<&str> = block
            .lines()
            .filter_map(|line| line.strip_prefix("  ")?.strip_suffix(": {"))
            .filter(|name| !name.starts_with(' '))
            .collect();
        let mirrored: Vec<&str> = registry()
            .iter()
            .filter(|p| p.mirrored())
            .map(|p| p.name())
            .collect();
        assert_eq!(mirrored, in_convex);
        assert_eq!(mirrored, ["board_summary", "feedback_inbox"]);
    }

    #[test]
    fn projections_are_found_by_their_unique_snake_case_names() {
        let names: Vec<&str> = registry().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["board_summary", "feedback_inbox", "knowledge"]);
        for (index, name) in names.iter().enumerate() {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(!names[..index].contains(name), "{name} twice");
            assert_eq!(by_name(name).map(|p| p.name()), Some(*name));
        }
        assert!(by_name("board_summary@1").is_none());
        assert!(by_name("nope").is_none());
        let versioned: Vec<String> = registry().iter().map(|p| p.versioned_name()).collect();
        assert_eq!(
            versioned,
            ["board_summary@1", "feedback_inbox@1", "knowledge@1"]
        );
    }
}
