/**
 * What the page needs from Edgeloop, in the page's own terms. `api.ts` implements it with
 * the client library (`@edgeloop/client`, `web/client`); the views depend only on this.
 *
 * @module
 */
import type {
  BoardCommand,
  BoardState,
  AggregateState,
  BoardSummary,
  CommandResult,
  ExpectedVersion,
  FeedbackInboxItem,
} from "../../client/src/index.ts";
import type { BoardEnvelope } from "./history.ts";

/** A live subscription's connection, as the page shows it. */
export type Connection = "connecting" | "live" | "reconnecting" | "stopped";

/** A running subscription. */
export interface Watch {
  /** Stops it (no more callbacks). */
  close(): void;
}

/** Callbacks of a live subscription. */
export interface WatchHandlers<T> {
  /** Each new value, in order, never twice. */
  onValue(value: T): void;
  /** The connection changed (connecting → live → reconnecting → live …). */
  onConnection(connection: Connection): void;
  /** A failure reconnecting cannot fix (the subscription has stopped). */
  onError(error: unknown): void;
}

/** Everything the page sends to and reads from the Worker. */
export interface Backend {
  /** Runs a command on board `boardId` (idempotent retries are the client's). */
  boardCommand(boardId: string, command: BoardCommand, expected?: ExpectedVersion): Promise<CommandResult>;
  /** The board's aggregate state as of `version` (time travel). */
  boardAt(boardId: string, version: number): Promise<AggregateState<BoardState>>;
  /** Every board's summary, most recently active first (up to `limit`). */
  boards(limit: number): Promise<BoardSummary[]>;
  /** The feedback inbox, newest first, optionally only one status. */
  feedback(status: FeedbackInboxItem["status"] | null, limit: number): Promise<FeedbackInboxItem[]>;
  /** The board's `board_summary` document, live (`null` while the board has none). */
  watchSummary(boardId: string, handlers: WatchHandlers<BoardSummary | null>): Watch;
  /** The board's events from the first, then live. */
  watchEvents(boardId: string, handlers: WatchHandlers<BoardEnvelope>): Watch;
}
