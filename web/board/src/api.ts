/**
 * The page's {@link Backend}, built on the client library (`@edgeloop/client`, imported
 * from its sources in `web/client/src` and bundled by esbuild): commands with automatic
 * idempotency keys and retries, reads, and subscriptions that reconnect and resume
 * without a gap or a duplicate. The token comes from the {@link Session}; when the
 * server says it expired, the client calls `refreshToken`, which asks the user for a new
 * one.
 *
 * @module
 */
import { Edgeloop, type BoardSummary, type SubscriptionStatus } from "../../client/src/index.ts";
import type { Backend, Connection, WatchHandlers } from "./backend.ts";
import type { BoardEnvelope } from "./history.ts";
import type { Session } from "./session.ts";

const connectionOf: Record<SubscriptionStatus, Connection> = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  closed: "stopped",
};

/** The page's backend for the deployment at `baseUrl`, on one client. */
export function createBackend(baseUrl: string, session: Session): Backend {
  const client = new Edgeloop({
    baseUrl,
    token: () => session.token,
    refreshToken: () => session.askForToken("Your session has expired. Paste a fresh token to continue where you were."),
    // A page left open comes back soon after the server does: wait at most 5 s between
    // attempts (the client keeps trying for as long as the page is open).
    reconnect: { maxDelayMs: 5_000 },
  });

  const backend: Backend = {
    boardCommand: (boardId, command, expected = "any") =>
      client.command("board", boardId, command, { expectedVersion: expected }),

    boardAt: (boardId, version) => client.state("board", boardId, { atVersion: version }),

    async boards(limit) {
      const page = await client.documents("board_summary", { limit });
      return page.documents.map((d) => d.body);
    },

    async feedback(status, limit) {
      const page = await client.documents("feedback_inbox", { limit, filters: status ? { status } : {} });
      return page.documents.map((d) => d.body);
    },

    watchSummary(boardId, handlers: WatchHandlers<BoardSummary | null>) {
      const subscription = client.subscribeProjection("board_summary", boardId, {
        onSnapshot: (document) => handlers.onValue(document?.body ?? null),
        onChange: (document) => handlers.onValue(document.body),
        onStatus: (status) => handlers.onConnection(connectionOf[status]),
        onError: (error) => handlers.onError(error),
      });
      return { close: () => subscription.close() };
    },

    watchEvents(boardId, handlers: WatchHandlers<BoardEnvelope>) {
      const subscription = client.subscribeAggregate("board", boardId, {
        onEvent: (event) => handlers.onValue(event),
        onStatus: (status) => handlers.onConnection(connectionOf[status]),
        onError: (error) => handlers.onError(error),
      });
      return { close: () => subscription.close() };
    },
  };
  return backend;
}
