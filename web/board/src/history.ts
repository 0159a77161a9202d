/**
 * The board's history as the page shows it: events in words for the timeline, the
 * comments of a card, and a past state (`GET …?at_version=N`) laid out like a
 * `board_summary` document so one renderer draws the live board and the past.
 *
 * Pure: no DOM, no network.
 *
 * @module
 */
import type { BoardEvent, BoardState, BoardSummary, Envelope } from "../../client/src/index.ts";

/** One event of a board's log. */
export type BoardEnvelope = Envelope<BoardEvent>;

/** Card id → its latest title, from `CardAdded` and `CardEdited` events. */
export function cardTitles(events: readonly BoardEnvelope[]): Map<string, string> {
  const titles = new Map<string, string>();
  for (const e of events) {
    if (e.type === "CardAdded") titles.set(e.data.card_id, e.data.title);
    else if (e.type === "CardEdited" && e.data.title !== null) titles.set(e.data.card_id, e.data.title);
  }
  return titles;
}

/** One event in words, e.g. `alice moved “Ship it” from Todo to Doing`. */
export function describeEvent(e: BoardEnvelope, titles: ReadonlyMap<string, string>): string {
  const who = e.actor ?? "someone";
  const card = (id: string) => `“${titles.get(id) ?? id}”`;
  switch (e.type) {
    case "BoardCreated":
      return `${who} created the board “${e.data.title}” with ${e.data.columns.length} columns`;
    case "ColumnAdded":
      return `${who} added the column ${e.data.name}${e.data.wip_limit ? ` (limit ${e.data.wip_limit})` : ""}`;
    case "WipLimitSet":
      return e.data.limit === null
        ? `${who} removed the WIP limit of ${e.data.column}`
        : `${who} set the WIP limit of ${e.data.column} to ${e.data.limit}`;
    case "CardAdded":
      return `${who} added ${card(e.data.card_id)} to ${e.data.column}`;
    case "CardMoved":
      return `${who} moved ${card(e.data.card_id)} from ${e.data.from_column} to ${e.data.to_column}`;
    case "CardEdited": {
      const what = [e.data.title !== null ? "title" : null, e.data.labels !== null ? "labels" : null]
        .filter(Boolean)
        .join(" and ");
      return `${who} edited the ${what} of ${card(e.data.card_id)}`;
    }
    case "CardCommented":
      return `${e.data.author} commented on ${card(e.data.card_id)}: ${e.data.text}`;
    case "CardArchived":
      return `${who} archived ${card(e.data.card_id)}`;
    default: {
      const unknown = e as { type: string };
      return `${who}: ${unknown.type}`;
    }
  }
}

/** A card's comments, oldest first. */
export function commentsOf(
  events: readonly BoardEnvelope[],
  cardId: string,
): { author: string; text: string; at: string; seq: number }[] {
  const comments = [];
  for (const e of events) {
    if (e.type === "CardCommented" && e.data.card_id === cardId) {
      comments.push({ author: e.data.author, text: e.data.text, at: e.recorded_at, seq: e.seq });
    }
  }
  return comments;
}

/**
 * The board at `version`, shaped like a `board_summary` document: columns in board order,
 * each with its live cards in the order they arrived there (as the projection orders
 * them). `state` is the aggregate's state at that version; `events` the log through at
 * least that version (later events are ignored), used only for the cards' order.
 */
export function summaryAt(
  boardId: string,
  version: number,
  state: BoardState,
  events: readonly BoardEnvelope[],
  recordedAt = "",
): BoardSummary {
  const arrived = new Map<string, number>();
  for (const e of events) {
    if (e.seq > version) break;
    if (e.type === "CardAdded" || e.type === "CardMoved") arrived.set(e.data.card_id, e.seq);
  }
  const columns = state.columns.map((column) => {
    const cards = Object.entries(state.cards)
      .filter(([, card]) => !card.archived && card.column === column.name)
      .sort(([a], [b]) => (arrived.get(a) ?? 0) - (arrived.get(b) ?? 0) || a.localeCompare(b))
      .map(([card_id, card]) => ({ card_id, title: card.title, labels: card.labels, comments: card.comments }));
    return {
      name: column.name,
      wip_limit: column.wip_limit,
      card_count: cards.length,
      full: column.wip_limit !== null && cards.length >= column.wip_limit,
      cards,
    };
  });
  return {
    board_id: boardId,
    title: state.title,
    version,
    last_activity_at: recordedAt,
    columns,
    archived_count: Object.values(state.cards).filter((c) => c.archived).length,
  };
}

/**
 * Inserts `event` into `events` (kept sorted by seq), ignoring one already there; returns
 * whether it was new. Subscriptions deliver each event once, but a page may also have
 * read a listing, so this keeps the timeline free of duplicates whatever the source.
 */
export function addEvent(events: BoardEnvelope[], event: BoardEnvelope): boolean {
  const last = events[events.length - 1];
  if (last === undefined || event.seq > last.seq) {
    events.push(event);
    return true;
  }
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].seq < event.seq) lo = mid + 1;
    else hi = mid;
  }
  if (events[lo]?.seq === event.seq) return false;
  events.splice(lo, 0, event);
  return true;
}
