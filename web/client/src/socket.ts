/**
 * The little of the WebSocket API the library uses, so that a browser's `WebSocket`,
 * Node ≥ 22's global one, the `ws` package or a test double all fit.
 *
 * @module
 */

/** A callback slot, checked bivariantly so the DOM's own event types fit it. */
type Slot<E> = { bivarianceHack(event: E): void }["bivarianceHack"] | null;

/** A WebSocket as the library drives it (the DOM `WebSocket` is one). */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Slot<unknown>;
  onmessage: Slot<{ data: unknown }>;
  onclose: Slot<{ code: number; reason: string }>;
  onerror: Slot<unknown>;
}

/** A `WebSocket` constructor: `new WebSocket(url, protocols)`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The subprotocol of Edgeloop's socket protocol, version 1. */
export const PROTOCOL = "edgeloop.v1";

/** The `readyState` of an open socket. */
export const OPEN = 1;

/**
 * Close codes the server uses (besides RFC 6455's own), and what a subscription does:
 * `TOKEN_EXPIRED` 4001 — refresh the token and reconnect; `SLOW_CONSUMER` 4008 — resume at
 * once after the last event received; `RATE_LIMITED` 4029 — resume after a backoff;
 * `PROTOCOL_ERROR` 1008 — stop with an error; `INTERNAL` 1011 — resume after a backoff.
 */
export const CloseCode = {
  NORMAL: 1000,
  PROTOCOL_ERROR: 1008,
  INTERNAL: 1011,
  TOKEN_EXPIRED: 4001,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
} as const;
