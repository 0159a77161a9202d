//! `board_summary@1`: one document per board (doc id = board id), what a board page shows —
//! its columns in board order, each with its live cards in the order they arrived there.
//!
//! ```json
//! {"board_id": "b1", "title": "Roadmap", "version": 17,
//!  "last_activity_at": "2026-11-29T10:00:00.000Z",
//!  "columns": [{"name": "Inbox", "wip_limit": null, "card_count": 2, "full": false,
//!               "cards": [{"card_id": "c1", "title": "Ship", "labels": ["x"], "comments": 0}]}],
//!  "archived_count": 0}
//! ```
//!
//! * `version` is the seq of the last board event folded in and `last_activity_at` its
//!   `recorded_at` (RFC 3339 UTC, milliseconds, `Z`).
//! * A card joins the end of its column when added or moved there.
//! * `card_count` counts the cards listed in the column (archived cards are not), which is
//!   what a WIP limit counts; `full` is `wip_limit` set and `card_count >= wip_limit`. A column
//!   may hold more cards than its limit (the limit was lowered under it): it stays `full`.
//! * An archived card leaves its column and is counted in `archived_count`; nothing else of
//!   it is kept, since no event can touch an archived card again.
//! * Comments are counted (`comments`); their texts stay in the `CardCommented` events.
//!
//! Events are decoded with the board's own upcasters ([`domain::aggregate::decode_event`]),
//! so a stored `CardAdded` v1 (labels as `"a, b"`) folds like a v2 one. The fold enforces
//! no business rule (a WIP limit, a title length): the aggregate decided those. It does
//! check that each event fits the document — the next seq, a card or column that exists —
//! and faults otherwise, since a mismatch means events were lost or the fold is wrong.
//!
//! List index: newest activity first; no filters.

use domain::EventEnvelope;
use domain::aggregate::{Aggregate, decode_event};
use domain::board::{Board, BoardEvent};
use domain::envelope::{format_timestamp, parse_timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::{
    FoldError, ListIndex, Projection, Sequence, apply_events_typed, decode_body, encode_body,
    recorded_at_ms, sequence,
};

/// The projection's name.
pub const NAME: &str = "board_summary";
/// The fold's version.
pub const VERSION: u32 = 1;

/// The `board_summary` projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoardSummary;

/// A board summary, the document's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub board_id: String,
    pub title: String,
    /// The seq of the last event folded in.
    pub version: u64,
    /// The `recorded_at` of the last event folded in.
    pub last_activity_at: String,
    /// In board order.
    pub columns: Vec<Column>,
    /// Cards archived on this board.
    pub archived_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `None`: no limit.
    pub wip_limit: Option<u32>,
    /// `cards.len()`: the column's cards that are not archived.
    pub card_count: u32,
    /// `wip_limit` is set and `card_count >= wip_limit`: the column takes no new card.
    pub full: bool,
    /// In the order they arrived in this column.
    pub cards: Vec<Card>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub card_id: String,
    pub title: String,
    pub labels: Vec<String>,
    /// How many `CardCommented` events the card has.
    pub comments: u32,
}

impl Projection for BoardSummary {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn aggregate_type(&self) -> Option<&'static str> {
        Some(Board::TYPE)
    }

    fn document_ids(&self, event: &EventEnvelope) -> Vec<String> {
        if event.aggregate_type == Board::TYPE {
            vec![event.aggregate_id.clone()]
        } else {
            Vec::new()
        }
    }

    fn apply(
        &self,
        doc_id: &str,
        current: Option<&Value>,
        event: &EventEnvelope,
    ) -> Result<Option<Value>, FoldError> {
        check_board(doc_id, event)?;
        let document: Option<Document> = current.map(|b| decode_body(b, event)).transpose()?;
        let version = document.as_ref().map_or(0, |d| d.version);
        if sequence(version, event)? == Sequence::AlreadyFolded {
            return Ok(current.cloned());
        }
        Ok(Some(encode_body(&fold_document(doc_id, document, event)?)))
    }

    /// Decodes the board once, folds every event into it, encodes it once: a board's body
    /// holds all its cards, so per event that would be O(cards) twice over.
    fn apply_events(
        &self,
        doc_id: &str,
        current: Option<Value>,
        events: &[&EventEnvelope],
    ) -> Result<Option<Value>, FoldError> {
        apply_events_typed(
            current,
            events,
            |event| check_board(doc_id, event),
            |document: Option<&Document>, event| {
                let version = document.map_or(0, |d| d.version);
                Ok(sequence(version, event)? == Sequence::AlreadyFolded)
            },
            |document, event| fold_document(doc_id, document, event),
        )
    }

    fn index(&self, body: &Value) -> ListIndex {
        // Bodies are ours: `last_activity_at` is always a formatted timestamp.
        let sort_key = body["last_activity_at"]
            .as_str()
            .and_then(parse_timestamp)
            .unwrap_or(0);
        ListIndex {
            sort_key,
            filters: Vec::new(),
        }
    }

    fn list_filters(&self) -> &'static [&'static str] {
        &[]
    }
}

impl Column {
    fn new(name: String) -> Self {
        Column {
            name,
            wip_limit: None,
            card_count: 0,
            full: false,
            cards: Vec::new(),
        }
    }

    /// Recomputes `card_count` and `full` after the cards or the limit changed.
    fn recount(&mut self) {
        // At most 5,000 cards per board (domain::board::MAX_CARDS), far below u32::MAX.
        self.card_count = u32::try_from(self.cards.len()).unwrap_or(u32::MAX);
        self.full = self.wip_limit.is_some_and(|limit| self.card_count >= limit);
    }
}

impl Document {
    /// Folds one event of an existing board. An `Err` says why the event does not fit.
    fn fold(&mut self, event: BoardEvent) -> Result<(), String> {
        match event {
            BoardEvent::BoardCreated { .. } => {
                return Err("the board was already created".to_owned());
            }
            BoardEvent::ColumnAdded { name, wip_limit } => {
                if self.columns.iter().any(|c| c.name == name) {
                    return Err(format!("column `{name}` is already on the board"));
                }
                let mut column = Column::new(name);
                column.wip_limit = wip_limit;
                column.recount();
                self.columns.push(column);
            }
            BoardEvent::WipLimitSet { column, limit } => {
                let column = self.column_mut(&column)?;
                column.wip_limit = limit;
                column.recount();
            }
            BoardEvent::CardAdded {
                card_id,
                title,
                column,
                labels,
            } => {
                if self.find_card(&card_id).is_some() {
                    return Err(format!("card `{card_id}` is already on the board"));
                }
                let column = self.column_mut(&column)?;
                column.cards.push(Card {
                    card_id,
                    title,
                    labels,
                    comments: 0,
                });
                column.recount();
            }
            BoardEvent::CardMoved {
                card_id,
                from_column,
                to_column,
            } => {
                // On an error the caller drops this copy, so a half-done move is never stored.
                let card = self.take_card(&card_id, &from_column)?;
                let column = self.column_mut(&to_column)?;
                column.cards.push(card);
                column.recount();
            }
            BoardEvent::CardEdited {
                card_id,
                title,
                labels,
            } => {
                let card = self.card_mut(&card_id)?;
                if let Some(title) = title {
                    card.title = title;
                }
                if let Some(labels) = labels {
                    card.labels = labels;
                }
            }
            BoardEvent::CardCommented { card_id, .. } => {
                let card = self.card_mut(&card_id)?;
                card.comments = card.comments.saturating_add(1);
            }
            BoardEvent::CardArchived { card_id, column } => {
                self.take_card(&card_id, &column)?;
                self.archived_count = self.archived_count.saturating_add(1);
            }
        }
        Ok(())
    }

    fn column_mut(&mut self, name: &str) -> Result<&mut Column, String> {
        self.columns
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("column `{name}` is not on the board"))
    }

    /// The (column index, card index) of a live card.
    fn find_card(&self, card_id: &str) -> Option<(usize, usize)> {
        self.columns.iter().enumerate().find_map(|(c, column)| {
            column
                .cards
                .iter()
                .position(|card| card.card_id == card_id)
                .map(|i| (c, i))
        })
    }

    fn card_mut(&mut self, card_id: &str) -> Result<&mut Card, String> {
        let (c, i) = self
            .find_card(card_id)
            .ok_or_else(|| format!("card `{card_id}` is not on the board (or is archived)"))?;
        Ok(&mut self.columns[c].cards[i])
    }

    /// Removes a live card from its column, which must be `from` (the column the event
    /// says the card was in).
    fn take_card(&mut self, card_id: &str, from: &str) -> Result<Card, String> {
        let (c, i) = self
            .find_card(card_id)
            .ok_or_else(|| format!("card `{card_id}` is not on the board (or is archived)"))?;
        let column = &mut self.columns[c];
        if column.name != from {
            return Err(format!(
                "card `{card_id}` is in column `{}`, not `{from}`",
                column.name
            ));
        }
        let card = column.cards.remove(i);
        column.recount();
        Ok(card)
    }
}

/// The error of an event that is not about the board `doc_id`.
fn check_board(doc_id: &str, event: &EventEnvelope) -> Result<(), FoldError> {
    if event.aggregate_type != Board::TYPE || event.aggregate_id != doc_id {
        return Err(FoldError::new(
            event,
            format!("board_summary document `{doc_id}` folds only that board's events"),
        ));
    }
    Ok(())
}

/// Folds an event that is next in the board's sequence into its summary (`None`: none yet).
fn fold_document(
    doc_id: &str,
    document: Option<Document>,
    event: &EventEnvelope,
) -> Result<Document, FoldError> {
    let last_activity_at = format_timestamp(recorded_at_ms(event)?);
    let decoded =
        decode_event::<Board>(&event.event_type, event.schema_version, event.data.clone())
            .map_err(|e| FoldError::new(event, e.0))?;
    let mut document = match (document, decoded) {
        (None, BoardEvent::BoardCreated { title, columns }) => Document {
            board_id: doc_id.to_owned(),
            title,
            version: 0,
            last_activity_at: String::new(),
            columns: columns.into_iter().map(Column::new).collect(),
            archived_count: 0,
        },
        (None, _) => {
            return Err(FoldError::new(
                event,
                "the board has no summary yet: its first event must be BoardCreated",
            ));
        }
        (Some(mut document), decoded) => {
            document
                .fold(decoded)
                .map_err(|reason| FoldError::new(event, reason))?;
            document
        }
    };
    document.version = event.seq;
    document.last_activity_at = last_activity_at;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use domain::feedback::{FeedbackEvent, Severity};
    use serde_json::json;

    use super::*;
    use crate::fold_all;
    use crate::testing::{T0_MS, envelope, given, history, recorded_at, stored};

    fn s(text: &str) -> String {
        text.to_owned()
    }

    fn created() -> BoardEvent {
        BoardEvent::BoardCreated {
            title: s("Roadmap"),
            columns: vec![s("Inbox"), s("Doing"), s("Done")],
        }
    }

    fn added(card_id: &str, column: &str) -> BoardEvent {
        BoardEvent::CardAdded {
            card_id: s(card_id),
            title: format!("Card {card_id}"),
            column: s(column),
            labels: vec![],
        }
    }

    fn moved(card_id: &str, from: &str, to: &str) -> BoardEvent {
        BoardEvent::CardMoved {
            card_id: s(card_id),
            from_column: s(from),
            to_column: s(to),
        }
    }

    fn limit(column: &str, limit: Option<u32>) -> BoardEvent {
        BoardEvent::WipLimitSet {
            column: s(column),
            limit,
        }
    }

    fn archived(card_id: &str, column: &str) -> BoardEvent {
        BoardEvent::CardArchived {
            card_id: s(card_id),
            column: s(column),
        }
    }

    /// Board `b1`'s events, seqs from 1.
    fn board(events: &[BoardEvent]) -> Vec<EventEnvelope> {
        history("board", "b1", events)
    }

    /// Board `b1`'s event at `seq`.
    fn at(seq: u64, event: &BoardEvent) -> EventEnvelope {
        envelope("board", "b1", seq, event)
    }

    fn card(card_id: &str) -> Value {
        json!({"card_id": card_id, "title": format!("Card {card_id}"), "labels": [], "comments": 0})
    }

    fn column(name: &str, wip_limit: Option<u32>, full: bool, cards: &[&str]) -> Value {
        json!({
            "name": name, "wip_limit": wip_limit, "card_count": cards.len(), "full": full,
            "cards": cards.iter().map(|id| card(id)).collect::<Vec<_>>(),
        })
    }

    /// The columns of a body as `name: [card ids]`, for tests about where cards are.
    fn layout(body: &Value) -> Vec<String> {
        body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let cards: Vec<&str> = c["cards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|card| card["card_id"].as_str().unwrap())
                    .collect();
                format!("{}: {}", c["name"].as_str().unwrap(), cards.join(" "))
            })
            .collect()
    }

    // ---- BoardCreated, ColumnAdded ----

    #[test]
    fn board_created_makes_the_summary_with_its_columns_in_order() {
        given(&BoardSummary, &[])
            .when(&at(1, &created()))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 1,
                    "last_activity_at": "2026-11-29T10:01:00.000Z",
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", None, false, &[]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
    }

    #[test]
    fn a_board_created_without_columns_has_none() {
        let created = BoardEvent::BoardCreated {
            title: s("Empty"),
            columns: vec![],
        };
        let body = given(&BoardSummary, &[])
            .when(&at(1, &created))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Empty", "version": 1,
                    "last_activity_at": recorded_at(1), "columns": [], "archived_count": 0,
                }),
            );
        assert_eq!(body["columns"], json!([]));
    }

    #[test]
    fn column_added_goes_last_with_its_limit() {
        let history = board(&[created(), added("c1", "Inbox")]);
        let added_column = BoardEvent::ColumnAdded {
            name: s("Review"),
            wip_limit: Some(2),
        };
        given(&BoardSummary, &history)
            .when(&at(3, &added_column))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 3,
                    "last_activity_at": "2026-11-29T10:03:00.000Z",
                    "columns": [
                        column("Inbox", None, false, &["c1"]),
                        column("Doing", None, false, &[]),
                        column("Done", None, false, &[]),
                        column("Review", Some(2), false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
    }

    // ---- WipLimitSet: fullness ----

    #[test]
    fn a_column_is_full_when_its_cards_reach_the_limit() {
        let history = board(&[created(), added("c1", "Doing"), added("c2", "Doing")]);
        let body = given(&BoardSummary, &history)
            .when(&at(4, &limit("Doing", Some(2))))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 4,
                    "last_activity_at": "2026-11-29T10:04:00.000Z",
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(2), true, &["c1", "c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        assert_eq!(body["columns"][1]["full"], true);
    }

    #[test]
    fn a_limit_above_the_count_is_not_full_and_a_cleared_limit_never_is() {
        let mut events = vec![created(), added("c1", "Doing"), added("c2", "Doing")];
        events.push(limit("Doing", Some(2)));
        let body = given(&BoardSummary, &board(&events))
            .when(&at(5, &limit("Doing", Some(3))))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 5,
                    "last_activity_at": recorded_at(5),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(3), false, &["c1", "c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        assert_eq!(body["columns"][1]["full"], false);
        events.push(limit("Doing", Some(3)));
        let cleared = given(&BoardSummary, &board(&events))
            .when(&at(6, &limit("Doing", None)))
            .then_document("b1", {
                let mut expected = body.clone();
                expected["version"] = json!(6);
                expected["last_activity_at"] = json!(recorded_at(6));
                expected["columns"][1]["wip_limit"] = Value::Null;
                expected
            });
        assert_eq!(cleared["columns"][1]["full"], false);
    }

    #[test]
    fn a_limit_lowered_under_the_count_keeps_the_cards_and_the_column_full() {
        let history = board(&[created(), added("c1", "Doing"), added("c2", "Doing")]);
        let body = given(&BoardSummary, &history)
            .when(&at(4, &limit("Doing", Some(1))))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 4,
                    "last_activity_at": recorded_at(4),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(1), true, &["c1", "c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        assert_eq!(body["columns"][1]["card_count"], 2);
    }

    // ---- CardAdded, with upcasting ----

    #[test]
    fn card_added_goes_to_the_end_of_its_column_with_its_labels() {
        let history = board(&[created(), added("c1", "Inbox")]);
        let with_labels = BoardEvent::CardAdded {
            card_id: s("c2"),
            title: s("Ship"),
            column: s("Inbox"),
            labels: vec![s("x"), s("y")],
        };
        given(&BoardSummary, &history)
            .when(&at(3, &with_labels))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 3,
                    "last_activity_at": recorded_at(3),
                    "columns": [
                        {"name": "Inbox", "wip_limit": null, "card_count": 2, "full": false,
                         "cards": [card("c1"),
                                   {"card_id": "c2", "title": "Ship", "labels": ["x", "y"], "comments": 0}]},
                        column("Doing", None, false, &[]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
    }

    #[test]
    fn a_stored_v1_card_added_folds_with_its_comma_separated_labels_as_a_list() {
        let v1 = stored(
            "board",
            "b1",
            2,
            "CardAdded",
            1,
            json!({"card_id": "c1", "title": "Old", "column": "Doing", "labels": "bug, ui,,"}),
        );
        let body = given(&BoardSummary, &board(&[created()]))
            .when(&v1)
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 2,
                    "last_activity_at": recorded_at(2),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        {"name": "Doing", "wip_limit": null, "card_count": 1, "full": false,
                         "cards": [{"card_id": "c1", "title": "Old", "labels": ["bug", "ui"], "comments": 0}]},
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        // A v1 card is an ordinary card afterwards; v1 without labels has none.
        let mut events = board(&[created()]);
        events.push(v1);
        events.push(stored(
            "board",
            "b1",
            3,
            "CardAdded",
            1,
            json!({"card_id": "c2", "title": "Older", "column": "Doing"}),
        ));
        events.push(at(4, &moved("c1", "Doing", "Done")));
        let documents = fold_all(&BoardSummary, &events).unwrap();
        assert_eq!(
            layout(&documents["b1"]),
            ["Inbox: ", "Doing: c2", "Done: c1"]
        );
        assert_eq!(
            documents["b1"]["columns"][1]["cards"][0]["labels"],
            json!([])
        );
        assert_eq!(
            documents["b1"]["columns"][2]["cards"][0]["labels"],
            body["columns"][1]["cards"][0]["labels"]
        );
    }

    #[test]
    fn a_card_added_into_a_full_column_fills_it() {
        let history = board(&[created(), limit("Doing", Some(2)), added("c1", "Doing")]);
        let body = given(&BoardSummary, &history)
            .when(&at(4, &added("c2", "Doing")))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 4,
                    "last_activity_at": recorded_at(4),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(2), true, &["c1", "c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        assert_eq!(body["columns"][1]["full"], true);
    }

    // ---- CardMoved ----

    #[test]
    fn a_moved_card_goes_to_the_end_of_its_new_column() {
        let history = board(&[
            created(),
            added("c1", "Inbox"),
            added("c2", "Inbox"),
            added("c3", "Doing"),
        ]);
        given(&BoardSummary, &history)
            .when(&at(5, &moved("c1", "Inbox", "Doing")))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 5,
                    "last_activity_at": recorded_at(5),
                    "columns": [
                        column("Inbox", None, false, &["c2"]),
                        column("Doing", None, false, &["c3", "c1"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
    }

    #[test]
    fn a_card_moved_back_goes_to_the_end_not_to_its_old_place() {
        let history = board(&[
            created(),
            added("c1", "Inbox"),
            added("c2", "Inbox"),
            moved("c1", "Inbox", "Doing"),
        ]);
        let documents = given(&BoardSummary, &history)
            .when(&at(5, &moved("c1", "Doing", "Inbox")))
            .then_document("b1", {
                let mut expected = fold_all(&BoardSummary, &history).unwrap()["b1"].clone();
                expected["version"] = json!(5);
                expected["last_activity_at"] = json!(recorded_at(5));
                expected["columns"][0] = column("Inbox", None, false, &["c2", "c1"]);
                expected["columns"][1] = column("Doing", None, false, &[]);
                expected
            });
        assert_eq!(layout(&documents), ["Inbox: c2 c1", "Doing: ", "Done: "]);
    }

    #[test]
    fn a_card_moved_into_a_full_column_stays_consistent() {
        // The aggregate refuses this move today, but an event is a fact (a history from
        // before the rule, a limit lowered by a concurrent writer): the fold counts what is
        // there, and a column over its limit stays full.
        let history = board(&[
            created(),
            limit("Doing", Some(1)),
            added("c1", "Doing"),
            added("c2", "Inbox"),
        ]);
        given(&BoardSummary, &history)
            .when(&at(5, &moved("c2", "Inbox", "Doing")))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 5,
                    "last_activity_at": recorded_at(5),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(1), true, &["c1", "c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 0,
                }),
            );
        // Moving one out leaves it at its limit (still full); moving the other out frees it.
        let mut events = history.clone();
        events.push(at(5, &moved("c2", "Inbox", "Doing")));
        events.push(at(6, &moved("c1", "Doing", "Done")));
        let documents = fold_all(&BoardSummary, &events).unwrap();
        assert_eq!(
            documents["b1"]["columns"][1],
            column("Doing", Some(1), true, &["c2"])
        );
        events.push(at(7, &moved("c2", "Doing", "Done")));
        let documents = fold_all(&BoardSummary, &events).unwrap();
        assert_eq!(
            documents["b1"]["columns"][1],
            column("Doing", Some(1), false, &[])
        );
        assert_eq!(
            documents["b1"]["columns"][2],
            column("Done", None, false, &["c1", "c2"])
        );
    }

    // ---- CardEdited, CardCommented ----

    #[test]
    fn an_edit_changes_only_the_fields_it_carries() {
        let history = board(&[
            created(),
            BoardEvent::CardAdded {
                card_id: s("c1"),
                title: s("Ship"),
                column: s("Inbox"),
                labels: vec![s("x")],
            },
        ]);
        let title_only = BoardEvent::CardEdited {
            card_id: s("c1"),
            title: Some(s("Ship it")),
            labels: None,
        };
        let body = given(&BoardSummary, &history)
            .when(&at(3, &title_only))
            .then_document("b1", {
                let mut expected = fold_all(&BoardSummary, &history).unwrap()["b1"].clone();
                expected["version"] = json!(3);
                expected["last_activity_at"] = json!(recorded_at(3));
                expected["columns"][0]["cards"][0]["title"] = json!("Ship it");
                expected
            });
        assert_eq!(body["columns"][0]["cards"][0]["labels"], json!(["x"]));
        let labels_only = BoardEvent::CardEdited {
            card_id: s("c1"),
            title: None,
            labels: Some(vec![]),
        };
        let mut events = history.clone();
        events.push(at(3, &title_only));
        let body = given(&BoardSummary, &events)
            .when(&at(4, &labels_only))
            .then_document("b1", {
                let mut expected = body.clone();
                expected["version"] = json!(4);
                expected["last_activity_at"] = json!(recorded_at(4));
                expected["columns"][0]["cards"][0]["labels"] = json!([]);
                expected
            });
        assert_eq!(
            body["columns"][0]["cards"][0],
            json!({"card_id": "c1", "title": "Ship it", "labels": [], "comments": 0})
        );
    }

    #[test]
    fn comments_are_counted_per_card() {
        let comment = |card_id: &str| BoardEvent::CardCommented {
            card_id: s(card_id),
            author: s("ana"),
            text: s("Looks good"),
        };
        let history = board(&[
            created(),
            added("c1", "Inbox"),
            added("c2", "Inbox"),
            comment("c1"),
        ]);
        let body = given(&BoardSummary, &history)
            .when(&at(5, &comment("c1")))
            .then_document("b1", {
                let mut expected = fold_all(&BoardSummary, &history).unwrap()["b1"].clone();
                expected["version"] = json!(5);
                expected["last_activity_at"] = json!(recorded_at(5));
                expected["columns"][0]["cards"][0]["comments"] = json!(2);
                expected
            });
        assert_eq!(body["columns"][0]["cards"][1]["comments"], 0);
    }

    // ---- CardArchived ----

    #[test]
    fn an_archived_card_leaves_its_column_and_is_counted() {
        let history = board(&[
            created(),
            limit("Doing", Some(2)),
            added("c1", "Doing"),
            added("c2", "Doing"),
        ]);
        given(&BoardSummary, &history)
            .when(&at(5, &archived("c1", "Doing")))
            .then_document(
                "b1",
                json!({
                    "board_id": "b1", "title": "Roadmap", "version": 5,
                    "last_activity_at": recorded_at(5),
                    "columns": [
                        column("Inbox", None, false, &[]),
                        column("Doing", Some(2), false, &["c2"]),
                        column("Done", None, false, &[]),
                    ],
                    "archived_count": 1,
                }),
            );
    }

    #[test]
    fn an_archived_card_cannot_be_folded_into_again() {
        let history = board(&[created(), added("c1", "Inbox"), archived("c1", "Inbox")]);
        let error = given(&BoardSummary, &history)
            .when(&at(4, &moved("c1", "Inbox", "Done")))
            .then_fault();
        assert_eq!(
            error.reason,
            "card `c1` is not on the board (or is archived)"
        );
    }

    // ---- what does not fit ----

    #[test]
    fn other_aggregates_are_ignored() {
        let submitted = FeedbackEvent::FeedbackSubmitted {
            text: s("slow"),
            source: s("web"),
            severity: Severity::High,
        };
        given(&BoardSummary, &board(&[created()]))
            .when(&envelope("feedback", "b1", 1, &submitted))
            .then_ignored();
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let history = board(&[created(), added("c1", "Inbox")]);
        let before = fold_all(&BoardSummary, &history).unwrap();
        for event in &history {
            let again = BoardSummary.apply("b1", Some(&before["b1"]), event);
            assert_eq!(again, Ok(Some(before["b1"].clone())), "seq {}", event.seq);
        }
    }

    #[test]
    fn a_gap_in_the_seqs_is_a_fault_that_names_the_event() {
        let error = given(&BoardSummary, &board(&[created()]))
            .when(&at(3, &added("c1", "Inbox")))
            .then_fault();
        assert_eq!(
            error.to_string(),
            "cannot fold CardAdded v2 of board:b1 at seq 3: \
             the document has folded up to seq 1; seq 2 is missing"
        );
        given(&BoardSummary, &[])
            .when(&at(2, &created()))
            .then_fault();
    }

    #[test]
    fn events_that_do_not_fit_the_board_are_faults() {
        let cases: [(Vec<BoardEvent>, BoardEvent, &str); 7] = [
            (
                vec![],
                added("c1", "Inbox"),
                "the board has no summary yet: its first event must be BoardCreated",
            ),
            (vec![created()], created(), "the board was already created"),
            (
                vec![created()],
                BoardEvent::ColumnAdded {
                    name: s("Doing"),
                    wip_limit: None,
                },
                "column `Doing` is already on the board",
            ),
            (
                vec![created()],
                limit("Review", Some(1)),
                "column `Review` is not on the board",
            ),
            (
                vec![created()],
                added("c1", "Review"),
                "column `Review` is not on the board",
            ),
            (
                vec![created(), added("c1", "Inbox")],
                added("c1", "Done"),
                "card `c1` is already on the board",
            ),
            (
                vec![created(), added("c1", "Inbox")],
                moved("c1", "Doing", "Done"),
                "card `c1` is in column `Inbox`, not `Doing`",
            ),
        ];
        for (history, event, reason) in cases {
            let seq = history.len() as u64 + 1;
            let error = given(&BoardSummary, &board(&history))
                .when(&at(seq, &event))
                .then_fault();
            assert_eq!(error.reason, reason, "{event:?}");
            assert_eq!((error.seq, error.aggregate_id.as_str()), (seq, "b1"));
        }
        let history = board(&[created(), added("c1", "Inbox")]);
        let error = given(&BoardSummary, &history)
            .when(&at(3, &moved("c1", "Inbox", "Review")))
            .then_fault();
        assert_eq!(error.reason, "column `Review` is not on the board");
    }

    #[test]
    fn a_payload_that_does_not_decode_is_a_fault() {
        // v1 labels claimed as v2: the upcaster is skipped and the payload does not decode.
        let bad = stored(
            "board",
            "b1",
            2,
            "CardAdded",
            2,
            json!({"card_id": "c1", "title": "t", "column": "Inbox", "labels": "bug"}),
        );
        let error = given(&BoardSummary, &board(&[created()]))
            .when(&bad)
            .then_fault();
        assert!(
            error
                .to_string()
                .starts_with("cannot fold CardAdded v2 of board:b1 at seq 2: "),
            "{error}"
        );
        let unknown = stored("board", "b1", 2, "BoardRenamed", 1, json!({"title": "t"}));
        given(&BoardSummary, &board(&[created()]))
            .when(&unknown)
            .then_fault();
        let mut late = at(2, &added("c1", "Inbox"));
        late.recorded_at = s("yesterday");
        let error = given(&BoardSummary, &board(&[created()]))
            .when(&late)
            .then_fault();
        assert_eq!(
            error.reason,
            r#"`recorded_at` "yesterday" is not an RFC 3339 time"#
        );
    }

    #[test]
    fn a_stored_body_that_does_not_decode_is_a_fault() {
        let error = BoardSummary
            .apply(
                "b1",
                Some(&json!({"board_id": "b1"})),
                &at(2, &added("c1", "Inbox")),
            )
            .unwrap_err();
        assert!(
            error
                .reason
                .starts_with("the stored document does not decode: "),
            "{error}"
        );
    }

    #[test]
    fn a_document_folds_only_its_own_board() {
        let error = BoardSummary
            .apply("b2", None, &at(1, &created()))
            .unwrap_err();
        assert_eq!(
            error.reason,
            "board_summary document `b2` folds only that board's events"
        );
    }

    #[test]
    fn recorded_at_is_normalised_to_utc_milliseconds() {
        let mut event = at(1, &created());
        event.recorded_at = s("2026-11-29T11:00:00+01:00");
        let documents = fold_all(&BoardSummary, &[event]).unwrap();
        assert_eq!(
            documents["b1"]["last_activity_at"],
            "2026-11-29T10:00:00.000Z"
        );
    }

    // ---- the list index ----

    #[test]
    fn boards_are_listed_by_last_activity_without_filters() {
        let history = board(&[created(), added("c1", "Inbox")]);
        let documents = fold_all(&BoardSummary, &history).unwrap();
        assert_eq!(
            BoardSummary.index(&documents["b1"]),
            ListIndex {
                sort_key: T0_MS + 2 * 60_000,
                filters: vec![],
            }
        );
        assert!(BoardSummary.list_filters().is_empty());
    }

    #[test]
    fn bodies_decode_into_the_document_type() {
        let history = board(&[created(), added("c1", "Inbox"), limit("Doing", Some(3))]);
        let documents = fold_all(&BoardSummary, &history).unwrap();
        let document: Document = serde_json::from_value(documents["b1"].clone()).unwrap();
        assert_eq!(document.columns[1].wip_limit, Some(3));
        assert_eq!(document.columns[0].cards[0].card_id, "c1");
        assert_eq!(serde_json::to_value(&document).unwrap(), documents["b1"]);
    }

    // ---- apply_events: a page folded at once ----

    /// Every way to cut a history into a stored prefix and a page folded by `apply_events`
    /// gives what `apply` gives one event at a time, redeliveries included.
    #[test]
    fn a_page_folded_at_once_equals_its_events_folded_one_by_one() {
        let mut events = board(&[
            created(),
            added("c1", "Inbox"),
            added("c2", "Inbox"),
            moved("c1", "Inbox", "Doing"),
            limit("Doing", Some(1)),
            archived("c2", "Inbox"),
        ]);
        events.insert(3, events[2].clone()); // a redelivery inside the page
        for cut in 0..events.len() {
            let stored = fold_all(&BoardSummary, &events[..cut])
                .unwrap()
                .remove("b1");
            let page: Vec<&EventEnvelope> = events[cut..].iter().collect();
            let mut one_by_one = stored.clone();
            for event in &page {
                one_by_one = BoardSummary
                    .apply("b1", one_by_one.as_ref(), event)
                    .unwrap();
            }
            let at_once = BoardSummary.apply_events("b1", stored, &page).unwrap();
            assert_eq!(at_once, one_by_one, "cut after {cut} events");
        }
    }

    #[test]
    fn a_page_fails_at_its_first_event_that_cannot_fold() {
        let events = board(&[created(), added("c1", "Inbox")]);
        let stored = fold_all(&BoardSummary, &events).unwrap().remove("b1");
        let bad = at(3, &archived("nope", "Inbox"));
        let after = at(4, &added("c9", "Inbox"));
        let error = BoardSummary
            .apply_events("b1", stored.clone(), &[&bad, &after])
            .unwrap_err();
        assert_eq!(error.seq, 3);
        let gap = at(5, &added("c9", "Inbox"));
        let error = BoardSummary
            .apply_events("b1", stored, &[&gap])
            .unwrap_err();
        assert_eq!(error.seq, 5);
        let elsewhere = envelope("board", "b2", 1, &created());
        assert!(
            BoardSummary
                .apply_events("b1", None, &[&elsewhere])
                .is_err()
        );
    }
}
