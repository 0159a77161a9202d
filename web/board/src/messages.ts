/**
 * Server refusals in words a board user understands. The server's answers carry a stable
 * `code` (and, for a 422 `rejected`, a stable `rule`); the page never shows those raw —
 * it says what happened and what to do next, using what it knows of the board.
 *
 * Pure: no DOM, no network.
 *
 * @module
 */

/** The parts of a refusal the page reads (an `EdgeloopError`, or a network failure). */
export interface Refusal {
  /** HTTP status; 0 or absent when no answer came. */
  status?: number;
  /** The server's error `code`, e.g. `rejected`, `version_conflict`. */
  code: string;
  /** The server's own message (English, technical): the last resort. */
  message: string;
  /** The rule of a 422 `rejected`, e.g. `wip_limit_reached`. */
  rule?: string;
  /** `actual` of a 409 `version_conflict`: the board's version now. */
  actual?: number;
}

/** What the page knows about the command that was refused, to name things in the message. */
export interface Context {
  /** The card's title, when the command was about a card. */
  cardTitle?: string;
  /** The column the card was going to (add or move). */
  column?: string;
  /** That column's WIP limit, when it has one. */
  wipLimit?: number | null;
  /** What the user tried, as a verb phrase: "move the card", "save your edit". */
  action?: string;
}

const quote = (s: string) => `“${s}”`;

/**
 * A sentence or two for the user: what went wrong and what to do. Unknown codes and rules
 * fall back to the server's message, prefixed so it still reads as a sentence.
 */
export function describeRefusal(refusal: Refusal, context: Context = {}): string {
  const card = context.cardTitle ? `the card ${quote(context.cardTitle)}` : "this card";
  const Card = card.charAt(0).toUpperCase() + card.slice(1);
  const column = context.column ? quote(context.column) : "that column";
  const action = context.action ?? "do that";
  switch (refusal.code) {
    case "version_conflict":
      return `Someone else changed the board while you were working, so your change was not saved. The board now shows their change${
        refusal.actual ? ` (version ${refusal.actual})` : ""
      }; check it and try again.`;
    case "rejected":
      return describeRule(refusal, { card, Card, column, action, wipLimit: context.wipLimit });
    case "unauthorized":
      return "Your session has expired or its token is not valid. Paste a fresh token to continue.";
    case "forbidden":
      return `Your token does not allow you to ${action}. Ask for a token with the “commands” scope.`;
    case "not_found":
      return "That board does not exist (yet). Pick another one or create it.";
    case "rate_limited":
    case "overloaded":
      return "The server is busy right now. Wait a moment and try again.";
    case "payload_too_large":
      return "That is too long to save. Shorten it and try again.";
    case "network_error":
      return `Could not reach the server to ${action}. Check your connection; nothing was changed twice, so you can simply try again.`;
    case "bad_request":
      return `The server could not accept that: ${lowerFirst(refusal.message)}`;
    default:
      return `Could not ${action}: ${lowerFirst(refusal.message)}`;
  }
}

function describeRule(
  refusal: Refusal,
  c: { card: string; Card: string; column: string; action: string; wipLimit?: number | null },
): string {
  switch (refusal.rule) {
    case "wip_limit_reached": {
      const limit = c.wipLimit ? ` of ${c.wipLimit} card${c.wipLimit === 1 ? "" : "s"}` : "";
      return `${c.column} is at its work-in-progress limit${limit}. Finish or move a card out of it first, or raise the limit.`;
    }
    case "card_archived":
      return `${c.Card} is archived; archived cards can no longer be moved, edited or commented on.`;
    case "card_not_found":
      return `${c.Card} is no longer on this board.`;
    case "card_already_exists":
      return "A card with that id is already on this board. Try again.";
    case "column_not_found":
      return `The column ${c.column} is not on this board any more.`;
    case "board_not_found":
      return "This board does not exist yet. Create it first.";
    case "board_already_exists":
      return "A board with that id already exists. Open it, or choose another id.";
    case "invalid_title":
      return "A title needs 1 to 200 characters (not only spaces).";
    case "invalid_labels":
      return "Labels must be distinct and non-empty, at most 20 of up to 50 characters each.";
    case "nothing_to_edit":
      return "Nothing changed, so there was nothing to save.";
    case "invalid_comment":
      return "A comment needs some text (at most 4,000 characters).";
    case "invalid_author":
      return "Comments need an author name.";
    case "invalid_column_name":
      return "A column name needs 1 to 100 characters.";
    case "column_already_exists":
      return "The board already has a column with that name.";
    case "invalid_wip_limit":
      return "A work-in-progress limit must be 1 or more (or none).";
    case "too_many_columns":
      return "A board can have at most 50 columns.";
    case "board_full":
      return "This board holds the most cards a board can (5,000, archived ones included).";
    default:
      return `Could not ${c.action}: ${lowerFirst(refusal.message)}`;
  }
}

function lowerFirst(s: string): string {
  const text = s.trim() || "the server refused it.";
  return text.charAt(0).toLowerCase() + text.slice(1);
}
