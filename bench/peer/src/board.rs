//! The board aggregate as a cqrs-es user would write it: the same commands, events and
//! rules as Edgeloop's `domain::board` for the paths the benchmark drives (create a board,
//! add a card, comment on a card), with the state kept the same way (cards in a map,
//! comments counted, not stored).

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

const DEFAULT_COLUMNS: [&str; 4] = ["Inbox", "Todo", "Doing", "Done"];
const MAX_CARDS: usize = 5000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Board {
    created: bool,
    title: String,
    columns: Vec<String>,
    cards: BTreeMap<String, Card>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Card {
    title: String,
    column: String,
    labels: Vec<String>,
    archived: bool,
    comments: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub enum BoardCommand {
    CreateBoard {
        title: String,
    },
    AddCard {
        card_id: String,
        title: String,
    },
    CommentOnCard {
        card_id: String,
        author: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BoardEvent {
    BoardCreated {
        title: String,
        columns: Vec<String>,
    },
    CardAdded {
        card_id: String,
        title: String,
        column: String,
        labels: Vec<String>,
    },
    CardCommented {
        card_id: String,
        author: String,
        text: String,
    },
}

impl DomainEvent for BoardEvent {
    fn event_type(&self) -> String {
        match self {
            BoardEvent::BoardCreated { .. } => "BoardCreated",
            BoardEvent::CardAdded { .. } => "CardAdded",
            BoardEvent::CardCommented { .. } => "CardCommented",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Rejection(&'static str);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Rejection {}

impl Aggregate for Board {
    const TYPE: &'static str = "board";
    type Command = BoardCommand;
    type Event = BoardEvent;
    type Error = Rejection;
    type Services = ();

    async fn handle(
        &mut self,
        command: BoardCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Rejection> {
        let event = match command {
            BoardCommand::CreateBoard { title } => {
                if self.created {
                    return Err(Rejection("board_already_exists"));
                }
                if title.is_empty() || title.chars().count() > 200 {
                    return Err(Rejection("invalid_title"));
                }
                BoardEvent::BoardCreated {
                    title,
                    columns: DEFAULT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
                }
            }
            BoardCommand::AddCard { card_id, title } => {
                if !self.created {
                    return Err(Rejection("board_not_found"));
                }
                let Some(column) = self.columns.first().cloned() else {
                    return Err(Rejection("column_not_found"));
                };
                if card_id.is_empty() || card_id.chars().count() > 100 {
                    return Err(Rejection("invalid_card_id"));
                }
                if title.is_empty() || title.chars().count() > 200 {
                    return Err(Rejection("invalid_title"));
                }
                if self.cards.contains_key(&card_id) {
                    return Err(Rejection("card_already_exists"));
                }
                if self.cards.len() >= MAX_CARDS {
                    return Err(Rejection("board_full"));
                }
                BoardEvent::CardAdded {
                    card_id,
                    title,
                    column,
                    labels: Vec::new(),
                }
            }
            BoardCommand::CommentOnCard {
                card_id,
                author,
                text,
            } => {
                let Some(card) = self.cards.get(&card_id) else {
                    return Err(Rejection("card_not_found"));
                };
                if card.archived {
                    return Err(Rejection("card_archived"));
                }
                if author.is_empty() || author.chars().count() > 100 {
                    return Err(Rejection("invalid_author"));
                }
                if text.is_empty() || text.chars().count() > 4000 {
                    return Err(Rejection("invalid_comment"));
                }
                BoardEvent::CardCommented {
                    card_id,
                    author,
                    text,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: BoardEvent) {
        match event {
            BoardEvent::BoardCreated { title, columns } => {
                self.created = true;
                self.title = title;
                self.columns = columns;
            }
            BoardEvent::CardAdded {
                card_id,
                title,
                column,
                labels,
            } => {
                self.cards.insert(
                    card_id,
                    Card {
                        title,
                        column,
                        labels,
                        archived: false,
                        comments: 0,
                    },
                );
            }
            BoardEvent::CardCommented { card_id, .. } => {
                if let Some(card) = self.cards.get_mut(&card_id) {
                    card.comments += 1;
                }
            }
        }
    }
}
