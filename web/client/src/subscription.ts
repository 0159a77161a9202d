/**
 * Live subscriptions: one engine ({@link Feed}) behind the three kinds of socket — an
 * aggregate's events (`seq`), a stream partition's events (`offset`) and a projection
 * document's revisions (`revision`).
 *
 * The protocol (README, "WebSocket"): `?after=N` replays what came after `N`, then a
 * `caught_up` frame, then live frames. The server keeps at most its window
 * (`WS_ACK_WINDOW`) of unacknowledged frames in flight: catch-up waits for acks, and a
 * live subscriber that falls further behind is closed with 4008 and must resume. The
 * engine acknowledges what the application's callbacks have finished with, resumes after
 * the last frame received, and drops anything at or below it — so the application sees
 * every event once, in order.
 *
 * @module
 */
import { EdgeloopError, isObject, networkError } from "./errors.ts";
import { backoff, type ReconnectPolicy } from "./retry.ts";
import { CloseCode, OPEN, type WebSocketLike } from "./socket.ts";
import type { Envelope, Position, ProjectionDocument, StreamEnvelope } from "./types.ts";

/**
 * Where a subscription is, for a UI:
 * - `connecting` — the first connection is being made or is catching up;
 * - `live` — every event up to the server's head has been handed to the callbacks, and
 *   new ones follow as they happen;
 * - `reconnecting` — the connection dropped; the subscription waits (`delayMs`) and
 *   resumes where it left off, losing nothing;
 * - `closed` — for good: `close()` was called, the server ended the subscription, or an
 *   error that reconnecting cannot fix happened (`onError` says which).
 */
export type SubscriptionStatus = "connecting" | "live" | "reconnecting" | "closed";

/** What comes with a status change. */
export interface StatusDetail {
  /** Failed connections in a row so far (0 once healthy). */
  attempt: number;
  /** For `reconnecting`: how long (ms) until the next connection attempt. */
  delayMs?: number;
  /** Why the connection ended, when it ended badly. */
  error?: EdgeloopError;
  /** The close code of the connection that ended, if it got one. */
  closeCode?: number;
}

/** Options every kind of subscription takes. */
export interface SubscriptionOptions {
  /** Called on every status change (and on every scheduled reconnect attempt). */
  onStatus?: (status: SubscriptionStatus, detail: StatusDetail) => void;
  /**
   * Called once when the subscription stops because of an error (its status is then
   * `closed`): a close code a reconnect cannot fix (1008, 4001 without a fresh token), a
   * callback that threw (`kind` `handler`, the event was not acknowledged), a protocol
   * breach, or `reconnect.maxAttempts` failed connections in a row. Transient problems
   * are reported through `onStatus('reconnecting', { error })` instead.
   */
  onError?: (error: EdgeloopError) => void;
  /** Acknowledge at least every this many processed frames. Default 100; keep it under the server's window (1,000). */
  ackEvery?: number;
  /** At most one ack per this many ms (the server closes sockets sending > 200 frames/s). Default 50. */
  ackIntervalMs?: number;
  /** Overrides of the client's reconnect policy for this subscription. */
  reconnect?: Partial<ReconnectPolicy>;
}

/**
 * Options of {@link Edgeloop.subscribeAggregate}. Callbacks may return a promise: frames
 * are handed over one at a time, the next only after the promise settles, and an event
 * counts as processed (and is acknowledged) only then.
 */
export interface AggregateSubscriptionOptions<E extends { type: string; data: unknown }> extends SubscriptionOptions {
  /** Start after this `seq`: the last event the application already has. Default 0 (the whole log). */
  after?: number;
  /** Each event, once, in `seq` order. */
  onEvent: (event: Envelope<E>) => void | Promise<void>;
  /** Every event up to `version` has been handed over; live events follow. Again after each reconnect. */
  onCaughtUp?: (info: { version: number }) => void | Promise<void>;
}

/** Options of {@link Edgeloop.subscribeStream}. Callbacks may return a promise (see {@link AggregateSubscriptionOptions}). */
export interface StreamSubscriptionOptions<E extends { type: string; data: unknown }> extends SubscriptionOptions {
  /**
   * Start after this offset. Default 0. A live socket starts within the partition's hot
   * tail: an older `after` is refused (page through {@link Edgeloop.streamPage} first).
   */
  after?: number;
  /** Each event of the partition, once, in offset order. */
  onEvent: (event: StreamEnvelope<E>) => void | Promise<void>;
  /** Every event up to `position.offset` has been handed over. Again after each reconnect. */
  onCaughtUp?: (info: { position: Position }) => void | Promise<void>;
}

/** Options of {@link Edgeloop.subscribeProjection}. Callbacks may return a promise. */
export interface ProjectionSubscriptionOptions<B> extends SubscriptionOptions {
  /** The revision the application already has. Default 0: start with the current body. */
  after?: number;
  /**
   * Once, when the first connection has caught up: the document as it is now, or `null`
   * when it does not exist (or, with `after`, has not changed since that revision).
   */
  onSnapshot?: (document: ProjectionDocument<B> | null) => void | Promise<void>;
  /**
   * Every later change (the newest body; revisions in between may be skipped). `body` is
   * `null` when the document was deleted.
   */
  onChange?: (document: ProjectionDocument<B | null>) => void | Promise<void>;
  /** Every change up to `revision` has been handed over. Again after each reconnect. */
  onCaughtUp?: (info: { revision: number }) => void | Promise<void>;
}

/** A live subscription. */
export interface Subscription {
  /** See {@link SubscriptionStatus}. */
  readonly status: SubscriptionStatus;
  /**
   * The last `seq` / `offset` / `revision` the callbacks finished with: subscribe with
   * `after` = this to continue elsewhere (another page load) without a gap or a repeat.
   */
  readonly cursor: number;
  /** Stops for good: closes the socket, cancels any reconnect, drops frames not yet handed over. */
  close(): void;
}

/** A frame as the engine queues it for the callbacks. */
export type Parsed =
  | { kind: "item"; cursor: number; value: unknown }
  | { kind: "caught_up"; cursor: number; value: unknown };

/** What differs between the three kinds of socket. */
export interface FeedSpec {
  /** The ack frame's field: `{"kind":"ack","<cursorName>":N}`. */
  cursorName: "seq" | "offset" | "revision";
  /** Whether every cursor follows the previous one by exactly 1 (events), or may skip (revisions). */
  dense: boolean;
  /** What the subscription follows, for messages: `board/b1`, `partition 2`, `board_summary/b1`. */
  what: string;
  /** A frame of kind other than `error`, decoded; `undefined` for a kind to skip. Throws on a bad shape. */
  parse(frame: Record<string, unknown>): Parsed | undefined;
  /** Hands a queued frame to the application's callbacks. */
  deliver(parsed: Parsed): void | Promise<void>;
}

/** What the engine needs from the client. */
export interface FeedDeps {
  /** Opens a socket resuming after `after`, authenticated with `token`. */
  open(after: number, token: string): WebSocketLike;
  /** The token to connect with (refreshed first when it is known to have expired). */
  token(): Promise<string>;
  /** A fresh token after a 4001, or `undefined` when none can be had. */
  refresh(): Promise<string | undefined>;
  random(): number;
  reconnect: ReconnectPolicy;
}

/** The engine behind every {@link Subscription}. */
export class Feed implements Subscription {
  status: SubscriptionStatus = "connecting";
  cursor: number;

  /** The cursor of the last frame admitted (queued or handed over): where a resume starts. */
  private received: number;
  /** What the server has been told (or counts as told: a resume point). */
  private acked: number;
  private lastAckAt: number | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private queue: Parsed[] = [];
  private draining = false;
  private socket: WebSocketLike | undefined;
  /** Identifies the current connection, so a stale socket's late events are ignored. */
  private connection = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Failed connections in a row. */
  private attempts = 0;
  /** 4001 closes in a row without a caught-up connection in between. */
  private expiries = 0;
  private caughtUpAt: number | undefined;
  private closingFrame: Record<string, unknown> | undefined;
  private stopped = false;
  private readonly ackEvery: number;
  private readonly ackIntervalMs: number;
  private readonly onOnline: () => void;

  constructor(
    private readonly spec: FeedSpec,
    private readonly deps: FeedDeps,
    private readonly options: SubscriptionOptions,
    after: number,
  ) {
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new EdgeloopError({
        kind: "invalid_argument",
        code: "invalid_argument",
        message: `after must be a non-negative integer, got ${String(after)}`,
      });
    }
    this.cursor = after;
    this.received = after;
    this.acked = after;
    this.ackEvery = Math.max(1, options.ackEvery ?? 100);
    this.ackIntervalMs = Math.max(0, options.ackIntervalMs ?? 50);
    this.emitStatus("connecting", { attempt: 0 });
    // In a browser, coming back online ends a backoff wait at once.
    this.onOnline = () => {
      if (this.reconnectTimer === undefined || this.stopped) return;
      clearTimeout(this.reconnectTimer);
      void this.connect();
    };
    onlineTarget()?.addEventListener("online", this.onOnline);
    void this.connect();
  }

  close(): void {
    if (this.stopped) return;
    this.stop();
    this.emitStatus("closed", { attempt: this.attempts });
  }

  // ------------------------------------------------------------ connecting

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    let token: string;
    try {
      token = await this.deps.token();
    } catch (cause) {
      // Tokens come back (the user signs in again, the refresh endpoint recovers): retry.
      this.dropped(asError(cause, "could not get a token"), undefined);
      return;
    }
    if (this.stopped) return;
    const after = this.received;
    let socket: WebSocketLike;
    try {
      socket = this.deps.open(after, token);
    } catch (cause) {
      this.fail(
        new EdgeloopError({
          kind: "invalid_argument",
          code: "invalid_argument",
          message: `cannot open a socket for ${this.spec.what}: ${String(cause)}`,
          cause,
        }),
      );
      return;
    }
    const id = ++this.connection;
    this.socket = socket;
    this.acked = after;
    this.lastAckAt = undefined;
    this.closingFrame = undefined;
    this.caughtUpAt = undefined;
    socket.onmessage = (event) => {
      if (id === this.connection) this.onFrame(event.data);
    };
    socket.onclose = (event) => {
      if (id === this.connection) this.onClose(event.code, event.reason);
    };
    // A failed connection is followed by its close event, which decides what to do.
    socket.onerror = () => undefined;
    socket.onopen = () => undefined;
  }

  private onFrame(data: unknown): void {
    if (this.stopped) return;
    let frame: unknown;
    try {
      frame = typeof data === "string" ? JSON.parse(data) : undefined;
    } catch {
      frame = undefined;
    }
    if (!isObject(frame) || typeof frame["kind"] !== "string") {
      this.fail(decodeError(`a socket frame that is not the protocol's: ${excerpt(data)}`));
      return;
    }
    if (frame["kind"] === "error") {
      this.closingFrame = frame;
      return;
    }
    let parsed: Parsed | undefined;
    try {
      parsed = this.spec.parse(frame);
    } catch (cause) {
      this.fail(decodeError(`a ${frame["kind"]} frame of ${this.spec.what} (${String(cause)}): ${excerpt(data)}`));
      return;
    }
    if (parsed === undefined) return;
    if (parsed.kind === "item") {
      if (parsed.cursor <= this.received) return; // replayed: already handed over or queued
      if (this.spec.dense && parsed.cursor !== this.received + 1) {
        this.protocolBreach(`${this.spec.cursorName} ${parsed.cursor} arrived where ${this.received + 1} was due`);
        return;
      }
      this.received = parsed.cursor;
    } else {
      if (this.spec.dense && parsed.cursor < this.received) {
        this.fail(
          new EdgeloopError({
            kind: "invalid_argument",
            code: "invalid_argument",
            message: `${this.spec.what} is at ${this.spec.cursorName} ${parsed.cursor}, below ${this.received}, where this subscription resumes (is \`after\` right?)`,
          }),
        );
        return;
      }
      if (this.spec.dense && parsed.cursor > this.received) {
        this.protocolBreach(`caught up at ${parsed.cursor}, but only up to ${this.received} was sent`);
        return;
      }
      this.caughtUpAt = Date.now();
      this.expiries = 0;
    }
    this.queue.push(parsed);
    void this.drain();
  }

  /** Hands queued frames to the callbacks, one at a time, acknowledging as they finish. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const parsed = this.queue.shift() as Parsed;
        try {
          const result = this.spec.deliver(parsed);
          if (result !== undefined && typeof (result as Promise<void>).then === "function") {
            // Waiting on the application: acknowledge what is finished meanwhile.
            this.scheduleAck(true);
            await result;
          }
        } catch (cause) {
          this.fail(
            new EdgeloopError({
              kind: "handler",
              code: "handler_error",
              message: `a callback of the subscription to ${this.spec.what} threw: ${String(cause)}`,
              cause,
            }),
          );
          return;
        }
        if (this.stopped) return;
        if (parsed.kind === "item") {
          this.cursor = parsed.cursor;
        } else if (this.status !== "live") {
          this.emitStatus("live", { attempt: this.attempts });
        }
        this.scheduleAck(this.queue.length === 0);
      }
    } finally {
      this.draining = false;
    }
  }

  // ------------------------------------------------------------ acknowledging

  /**
   * Acks what the callbacks finished with — when `idle` (nothing queued, or waiting on a
   * callback's promise) or `ackEvery` behind — at most one per `ackIntervalMs`.
   */
  private scheduleAck(idle: boolean): void {
    if (this.cursor <= this.acked || this.ackTimer !== undefined) return;
    if (!idle && this.cursor - this.acked < this.ackEvery) return;
    const now = Date.now();
    const at = this.lastAckAt === undefined ? now : this.lastAckAt + this.ackIntervalMs;
    if (at <= now) {
      this.sendAck();
    } else {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined;
        this.sendAck();
      }, at - now);
    }
  }

  private sendAck(): void {
    const socket = this.socket;
    if (this.stopped || socket === undefined || socket.readyState !== OPEN || this.cursor <= this.acked) return;
    const ack = this.cursor;
    try {
      socket.send(`{"kind":"ack","${this.spec.cursorName}":${ack}}`);
    } catch {
      return; // the socket is going away; its close event resumes
    }
    this.acked = ack;
    this.lastAckAt = Date.now();
  }

  // ------------------------------------------------------------ closes and reconnects

  private onClose(code: number, reason: string): void {
    this.socket = undefined;
    this.clearAckTimer();
    if (this.stopped) return;
    const frame = this.closingFrame;
    this.closingFrame = undefined;
    const policy = this.deps.reconnect;
    if (this.caughtUpAt !== undefined && Date.now() - this.caughtUpAt >= policy.healthyAfterMs) this.attempts = 0;
    this.caughtUpAt = undefined;
    const closed = (): EdgeloopError => closedError(code, reason, frame, this.spec.what);
    switch (code) {
      case CloseCode.NORMAL:
        // The server ended the subscription on purpose.
        this.stop();
        this.emitStatus("closed", { attempt: this.attempts, closeCode: code });
        return;
      case CloseCode.TOKEN_EXPIRED:
        void this.afterExpiry(closed());
        return;
      case CloseCode.SLOW_CONSUMER:
        // Behind by a window: resume at once after what was received (nothing is lost).
        this.emitStatus("reconnecting", { attempt: this.attempts, delayMs: 0, closeCode: code, error: closed() });
        this.reconnectTimer = setTimeout(() => void this.connect(), 0);
        return;
      case CloseCode.RATE_LIMITED:
        this.dropped(closed(), code, Math.max(1_000, policy.initialDelayMs));
        return;
      case 1001: // going away
      case 1005: // no status
      case 1006: // no close frame: the network, or a refused upgrade (401, 429 …)
      case CloseCode.INTERNAL:
      case 1012: // restarting
      case 1013: // try again later
      case 1014: // bad gateway
        this.dropped(
          code === 1006 || code === 1005 ? networkError(`the socket of ${this.spec.what} dropped (${code})`) : closed(),
          code,
        );
        return;
      default:
        // 1008 (a frame the server refused) and anything unknown fail the same way again.
        this.fail(closed());
    }
  }

  /** 4001: try once with a fresh token; a second expiry without progress is final. */
  private async afterExpiry(error: EdgeloopError): Promise<void> {
    this.expiries += 1;
    let fresh: string | undefined;
    if (this.expiries <= 1) {
      try {
        fresh = await this.deps.refresh();
      } catch (cause) {
        this.dropped(asError(cause, "refreshing the token failed"), CloseCode.TOKEN_EXPIRED);
        return;
      }
    }
    if (this.stopped) return;
    if (fresh === undefined) {
      this.fail(error);
      return;
    }
    this.emitStatus("reconnecting", { attempt: this.attempts, delayMs: 0, closeCode: CloseCode.TOKEN_EXPIRED, error });
    void this.connect();
  }

  /** A connection ended in a way a resume fixes: back off, then reconnect. */
  private dropped(error: EdgeloopError, closeCode: number | undefined, minDelayMs = 0): void {
    this.socket = undefined;
    this.attempts += 1;
    const policy = this.deps.reconnect;
    if (this.attempts >= policy.maxAttempts) {
      this.fail(error.withAttempts(this.attempts, undefined));
      return;
    }
    const delayMs = Math.max(
      minDelayMs,
      backoff(this.attempts, policy.initialDelayMs, policy.maxDelayMs, this.deps.random()),
    );
    const detail: StatusDetail = { attempt: this.attempts, delayMs, error };
    if (closeCode !== undefined) detail.closeCode = closeCode;
    this.emitStatus("reconnecting", detail);
    this.reconnectTimer = setTimeout(() => void this.connect(), delayMs);
  }

  /** The server broke a guarantee: drop this connection and resume from what is known good. */
  private protocolBreach(message: string): void {
    const socket = this.socket;
    this.connection += 1; // ignore the rest of this socket
    this.socket = undefined;
    this.clearAckTimer();
    closeQuietly(socket, 1000);
    this.dropped(new EdgeloopError({ kind: "protocol", code: "protocol_error", message: `${this.spec.what}: ${message}` }), undefined);
  }

  private fail(error: EdgeloopError): void {
    if (this.stopped) return;
    this.stop();
    const detail: StatusDetail = { attempt: this.attempts, error };
    if (error.closeCode !== undefined) detail.closeCode = error.closeCode;
    this.emitStatus("closed", detail);
    this.options.onError?.(error);
  }

  private stop(): void {
    this.stopped = true;
    onlineTarget()?.removeEventListener("online", this.onOnline);
    this.queue = [];
    this.clearAckTimer();
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    this.connection += 1;
    closeQuietly(socket, 1000);
  }

  private clearAckTimer(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private emitStatus(status: SubscriptionStatus, detail: StatusDetail): void {
    this.status = status;
    try {
      this.options.onStatus?.(status, detail);
    } catch {
      // A status callback's failure must not break the subscription.
    }
  }
}

/** The window a browser fires `online` on; `undefined` elsewhere. */
function onlineTarget(): Pick<EventTarget, "addEventListener" | "removeEventListener"> | undefined {
  const g = globalThis as Partial<Pick<EventTarget, "addEventListener" | "removeEventListener">>;
  return typeof g.addEventListener === "function" && typeof g.removeEventListener === "function"
    ? (g as Pick<EventTarget, "addEventListener" | "removeEventListener">)
    : undefined;
}

function closeQuietly(socket: WebSocketLike | undefined, code: number): void {
  if (socket === undefined) return;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
  socket.onopen = null;
  try {
    socket.close(code);
  } catch {
    // already closed
  }
}

function closedError(
  closeCode: number,
  reason: string,
  frame: Record<string, unknown> | undefined,
  what: string,
): EdgeloopError {
  const code = typeof frame?.["code"] === "string" ? frame["code"] : "closed";
  const message = typeof frame?.["message"] === "string" ? frame["message"] : reason || "no reason given";
  const details: Record<string, unknown> = {};
  if (frame !== undefined) {
    for (const [key, value] of Object.entries(frame)) {
      if (key !== "kind" && key !== "code" && key !== "message") details[key] = value;
    }
  }
  return new EdgeloopError({
    kind: "closed",
    code,
    closeCode,
    details,
    message: `the server closed the subscription to ${what} (${closeCode} ${code}): ${message}`,
  });
}

function decodeError(message: string): EdgeloopError {
  return new EdgeloopError({ kind: "decode", code: "decode_error", message });
}

function asError(cause: unknown, context: string): EdgeloopError {
  return cause instanceof EdgeloopError ? cause : networkError(`${context}: ${String(cause)}`, cause);
}

function excerpt(data: unknown): string {
  const text = typeof data === "string" ? data : Object.prototype.toString.call(data);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

// ------------------------------------------------------------ the three kinds

function number(frame: Record<string, unknown>, field: string): number {
  const value = frame[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new Error(`\`${field}\` is not a count`);
  return value;
}

function object(frame: Record<string, unknown>, field: string): Record<string, unknown> {
  const value = frame[field];
  if (!isObject(value)) throw new Error(`\`${field}\` is not an object`);
  return value;
}

/** The spec of an aggregate socket: events by `seq`, `caught_up` with `version`. */
export function aggregateSpec<E extends { type: string; data: unknown }>(
  what: string,
  options: AggregateSubscriptionOptions<E>,
): FeedSpec {
  return {
    cursorName: "seq",
    dense: true,
    what,
    parse(frame) {
      if (frame["kind"] === "event") {
        const event = object(frame, "event");
        return { kind: "item", cursor: number(event, "seq"), value: event };
      }
      if (frame["kind"] === "caught_up") {
        const version = number(frame, "version");
        return { kind: "caught_up", cursor: version, value: { version } };
      }
      return undefined;
    },
    deliver(parsed) {
      if (parsed.kind === "item") return options.onEvent(parsed.value as Envelope<E>);
      return options.onCaughtUp?.(parsed.value as { version: number });
    },
  };
}

/** The spec of a stream socket: events by `position.offset` within one partition. */
export function streamSpec<E extends { type: string; data: unknown }>(
  partition: number,
  options: StreamSubscriptionOptions<E>,
): FeedSpec {
  const inPartition = (position: Record<string, unknown>): number => {
    if (number(position, "partition") !== partition) throw new Error(`a position of another partition than ${partition}`);
    return number(position, "offset");
  };
  return {
    cursorName: "offset",
    dense: true,
    what: `stream partition ${partition}`,
    parse(frame) {
      if (frame["kind"] === "event") {
        const event = object(frame, "event");
        return { kind: "item", cursor: inPartition(object(event, "position")), value: event };
      }
      if (frame["kind"] === "caught_up") {
        const position = object(frame, "position");
        return { kind: "caught_up", cursor: inPartition(position), value: { position } };
      }
      return undefined;
    },
    deliver(parsed) {
      if (parsed.kind === "item") return options.onEvent(parsed.value as StreamEnvelope<E>);
      return options.onCaughtUp?.(parsed.value as { position: Position });
    },
  };
}

/**
 * The spec of a projection document socket: `document` frames by `revision` (which may
 * skip: a subscriber gets the newest body), `caught_up` with `revision`. Frames before the
 * first `caught_up` make the snapshot; every later one is a change.
 */
export function projectionSpec<B>(
  projection: string,
  docId: string,
  options: ProjectionSubscriptionOptions<B>,
): FeedSpec {
  let pending: ProjectionDocument<B> | null = null;
  let snapshotDone = false;
  return {
    cursorName: "revision",
    dense: false,
    what: `${projection}/${docId}`,
    parse(frame) {
      if (frame["kind"] === "document") {
        const revision = number(frame, "revision");
        const doc_id = typeof frame["doc_id"] === "string" ? frame["doc_id"] : docId;
        const document = { projection, doc_id, revision, body: frame["body"] ?? null };
        return { kind: "item", cursor: revision, value: document };
      }
      if (frame["kind"] === "caught_up") {
        const revision = number(frame, "revision");
        return { kind: "caught_up", cursor: revision, value: { revision } };
      }
      return undefined;
    },
    deliver(parsed) {
      if (parsed.kind === "item") {
        const document = parsed.value as ProjectionDocument<B | null>;
        if (!snapshotDone && options.onSnapshot !== undefined) {
          pending = document.body === null ? null : (document as ProjectionDocument<B>);
          return undefined;
        }
        return options.onChange?.(document);
      }
      if (!snapshotDone) {
        snapshotDone = true;
        const snapshot = pending;
        pending = null;
        const done = options.onSnapshot?.(snapshot);
        if (done !== undefined && typeof (done as Promise<void>).then === "function") {
          return (done as Promise<void>).then(() => options.onCaughtUp?.(parsed.value as { revision: number }));
        }
      }
      return options.onCaughtUp?.(parsed.value as { revision: number });
    },
  };
}
