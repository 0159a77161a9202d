/**
 * `@edgeloop/client` — the browser client of Edgeloop: commands that apply at most once,
 * reads (state, time travel, logs, read models with read-your-writes), and live
 * subscriptions that reconnect and resume with no gap and no duplicate.
 *
 * ```ts
 * import { Edgeloop } from "@edgeloop/client";
 * const edgeloop = new Edgeloop({ baseUrl: "https://edgeloop.example.com", token });
 * const done = await edgeloop.command("board", "roadmap", { type: "AddCard", data: { card_id: "c1", title: "Ship it" } });
 * edgeloop.subscribeAggregate("board", "roadmap", { onEvent: (e) => console.log(e.seq, e.type) });
 * ```
 *
 * @module
 */
export {
  Edgeloop,
  newIdempotencyKey,
  jwtExpiry,
  type EdgeloopOptions,
  type TokenSource,
  type CommandOptions,
  type ReadOptions,
  type StateOptions,
  type EventsOptions,
  type EventsBackwardOptions,
  type ConsistentReadOptions,
  type DocumentsOptions,
  type StreamPageOptions,
} from "./client.ts";
export { EdgeloopError, isTransientStatus, type ErrorKind, type EdgeloopErrorInit } from "./errors.ts";
export {
  DEFAULT_RETRY,
  DEFAULT_RECONNECT,
  backoff,
  parseRetryAfter,
  type RetryPolicy,
  type ReconnectPolicy,
} from "./retry.ts";
export { CloseCode, PROTOCOL, type WebSocketLike, type WebSocketConstructor } from "./socket.ts";
export type {
  Subscription,
  SubscriptionStatus,
  StatusDetail,
  SubscriptionOptions,
  AggregateSubscriptionOptions,
  StreamSubscriptionOptions,
  ProjectionSubscriptionOptions,
} from "./subscription.ts";
export { Telemetry, type TelemetryOptions, type ErrorReport, type CounterSample } from "./telemetry.ts";
export type * from "./types.ts";
export type * from "./domain.ts";
