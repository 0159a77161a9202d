/**
 * The page's addresses. Everything is one page (`/`) told apart by its query string, so
 * the Worker's static assets need no routing rules and a reload shows the same view:
 * `/` the board picker, `/?board=ID[&card=CARD]` a board, `/?view=inbox` the feedback inbox.
 *
 * @module
 */

/** Which view an address shows. */
export type Route =
  | { view: "picker" }
  | { view: "board"; boardId: string; cardId: string | null }
  | { view: "inbox" };

/** The route of a query string such as `location.search`. */
export function parseRoute(search: string): Route {
  const params = new URLSearchParams(search);
  const board = params.get("board");
  if (board) return { view: "board", boardId: board, cardId: params.get("card") };
  if (params.get("view") === "inbox") return { view: "inbox" };
  return { view: "picker" };
}

/** The address of a board, optionally bringing one of its cards into view. */
export function boardHref(boardId: string, cardId?: string): string {
  const params = new URLSearchParams({ board: boardId });
  if (cardId) params.set("card", cardId);
  return `/?${params}`;
}

/** The address of the feedback inbox. */
export const INBOX_HREF = "/?view=inbox";
