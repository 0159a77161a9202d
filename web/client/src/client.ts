/**
 * {@link Edgeloop}: the client of one Edgeloop deployment — commands, reads and live
 * subscriptions over its v1 HTTP and WebSocket API.
 *
 * @module
 */
import type { AnyCommand, CommandOf, EventOf, StateOf } from "./domain.ts";
import { EdgeloopError, errorFromAnswer, isObject, networkError } from "./errors.ts";
import { DEFAULT_RECONNECT, DEFAULT_RETRY, decide, parseRetryAfter, sleep, type ReconnectPolicy, type RetryPolicy } from "./retry.ts";
import { PROTOCOL, type WebSocketConstructor, type WebSocketLike } from "./socket.ts";
import {
  Feed,
  aggregateSpec,
  projectionSpec,
  streamSpec,
  type AggregateSubscriptionOptions,
  type FeedSpec,
  type ProjectionSubscriptionOptions,
  type StreamSubscriptionOptions,
  type Subscription,
  type SubscriptionOptions,
} from "./subscription.ts";
import type {
  AggregateState,
  BackwardEventPage,
  BodyOf,
  CommandResult,
  DocumentPage,
  Envelope,
  EventPage,
  ExpectedVersion,
  PartitionStatus,
  ProjectionDocument,
  ProjectionStatus,
  StreamPage,
  Trace,
} from "./types.ts";
import type { DomainEvent } from "./domain.ts";

/** A bearer token (a JWT), or a function that returns the current one. */
export type TokenSource = string | (() => string | Promise<string>);

/** How to reach and authenticate with a deployment. */
export interface EdgeloopOptions {
  /** `https://edgeloop.example.com`, `http://127.0.0.1:8787`, optionally with a path prefix. */
  baseUrl: string;
  /** The bearer token sent with every request (and as a socket subprotocol), or a function returning it (called per request). */
  token: TokenSource;
  /**
   * Called for a fresh token when the server answers 401 (`unauthorized`, which includes an
   * expired token) or closes a socket with 4001 `token_expired`, and before a socket
   * reconnects with a JWT whose `exp` has passed. The request or socket is then retried
   * once with the token it returns, which is used from then on. Concurrent callers share
   * one refresh.
   */
  refreshToken?: () => string | Promise<string>;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof globalThis.fetch;
  /** The `WebSocket` constructor to use. Default: the global one. */
  WebSocket?: WebSocketConstructor;
  /** How requests are retried after transient failures ({@link DEFAULT_RETRY} otherwise). */
  retry?: Partial<RetryPolicy>;
  /** How subscriptions reconnect ({@link DEFAULT_RECONNECT} otherwise). */
  reconnect?: Partial<ReconnectPolicy>;
  /** The longest one HTTP attempt may take, in ms. Default 30,000. */
  timeoutMs?: number;
  /** The random source of backoff jitter and idempotency-key fallbacks, `[0, 1)`. Default `Math.random`. */
  random?: () => number;
}

/** Options of {@link Edgeloop.command} and {@link Edgeloop.batch}. */
export interface CommandOptions {
  /** What the aggregate's version must be; a mismatch is a 409 `version_conflict`. Default `"any"`. */
  expectedVersion?: ExpectedVersion;
  /**
   * The `Idempotency-Key` (1–255 printable ASCII characters, scoped to the aggregate).
   * Default: a fresh UUID, reused by every retry of this call. Keep your own to resend a
   * command safely after a reload; the same key with a different command is a 422
   * `idempotency_key_reused`.
   */
  idempotencyKey?: string;
  /** Your id for the command (≤ 256 characters), recorded on its events; the server makes one otherwise. */
  commandId?: string;
  /** The flow the command belongs to (≤ 256 characters), recorded on its events. */
  correlationId?: string;
  /** The event that caused the command (≤ 256 characters), recorded on its events. */
  causationId?: string;
  /** Cancels the call (and its retries); the promise rejects with an `aborted` error. */
  signal?: AbortSignal;
}

/** Options every read takes. */
export interface ReadOptions {
  signal?: AbortSignal;
}

/** Which state {@link Edgeloop.state} reads: now (neither), right after event `atVersion`, or as of a time. */
export interface StateOptions extends ReadOptions {
  /** The state right after this `seq` (a 404 `not_found` when the log is shorter). */
  atVersion?: number;
  /** The state of every event recorded at or before this time (a `Date` or RFC 3339 text). */
  asOf?: Date | string;
}

/** A forward page of an aggregate's log. */
export interface EventsOptions extends ReadOptions {
  /** Events with `seq` above this. Default 0. */
  after?: number;
  /** At most this many (1–10,000; server default 100). */
  limit?: number;
}

/** A backward page of an aggregate's log, newest first. */
export interface EventsBackwardOptions extends ReadOptions {
  /** Events with `seq` below this. Default: from the newest. */
  before?: number;
  /** At most this many (1–10,000; server default 100). */
  limit?: number;
}

/** A projection read that can wait for your own write. */
export interface ConsistentReadOptions extends ReadOptions {
  /**
   * A command's `consistency_token` (`board/b1@7`): the server answers once the
   * projection has folded that aggregate through that version. It waits up to its
   * `PROJECTION_WAIT_MS` (5 s), then answers 503 `overloaded` with `Retry-After`, which is
   * retried within the client's retry policy.
   */
  consistency?: string;
}

/** A page of a projection's documents. */
export interface DocumentsOptions extends ConsistentReadOptions {
  /** 1–1,000; server default 50. */
  limit?: number;
  /** The previous page's `next_after`. */
  after?: string;
  /** The projection's filters, e.g. `{ status: "open", severity: "high" }` for `feedback_inbox`. */
  filters?: Record<string, string>;
}

/** A page of one partition of the global stream (scope `replay`). */
export interface StreamPageOptions extends ReadOptions {
  /** The partition, from 0 ({@link Edgeloop.partitions}). */
  partition: number;
  /** Events with an offset above this. Default 0. */
  after?: number;
  /** At most this many (server default 100, at most 10,000). */
  limit?: number;
  /** Only events of this aggregate type. */
  aggregateType?: string;
  /** Only events of these types (at most 100). */
  types?: string[];
  /** Only events recorded at or after this time. */
  since?: Date | string;
  /** Only events recorded before this time. */
  until?: Date | string;
}

/** One HTTP request of the raw layer. */
interface Call {
  method: "GET" | "POST";
  path: string[];
  query?: [string, string][];
  body?: unknown;
  idempotencyKey?: string;
  signal?: AbortSignal | undefined;
}

/** A success answer, decoded. */
interface Answer {
  json: unknown;
  headers: Headers;
}

/**
 * The client of one Edgeloop deployment. Safe to share; create one per deployment.
 *
 * - **Commands apply at most once.** Every command carries an `Idempotency-Key` (a fresh
 *   UUID unless given) that each retry reuses, so a retry after a lost answer gets the
 *   original result instead of applying again.
 * - **Transient failures are retried, boundedly**: network errors, 429 and 5xx, with
 *   capped, jittered exponential backoff that honours `Retry-After`. 4xx are not retried.
 * - **Subscriptions have no gap and no duplicate**: they acknowledge what the callbacks
 *   processed, reconnect with backoff and resume after the last frame received.
 * - **Errors are typed**: every failure is an {@link EdgeloopError}.
 */
export class Edgeloop {
  private readonly base: string;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly retryPolicy: RetryPolicy;
  private readonly reconnectPolicy: ReconnectPolicy;
  private readonly timeoutMs: number;
  private readonly random: () => number;
  private readonly refreshTokenFn: (() => string | Promise<string>) | undefined;
  private tokenSource: TokenSource;
  private refreshing: Promise<string> | undefined;

  /**
   * @throws {EdgeloopError} `invalid_argument` when `baseUrl` is not an `http(s)` URL
   * without query or fragment, the token is empty, or there is no `fetch`.
   */
  constructor(options: EdgeloopOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch (cause) {
      throw invalid(`baseUrl \`${options.baseUrl}\` is not a URL`, cause);
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "") {
      throw invalid(`baseUrl \`${options.baseUrl}\` must be http(s)://host[:port][/prefix]`);
    }
    this.base = url.href.replace(/\/+$/, "");
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") throw invalid("no fetch: pass `fetch` in the options");
    // Called unbound, a browser's fetch throws "Illegal invocation".
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.retryPolicy = { ...DEFAULT_RETRY, ...options.retry };
    this.reconnectPolicy = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.random = options.random ?? Math.random;
    if (options.token === "" || (typeof options.token !== "string" && typeof options.token !== "function")) {
      throw invalid("token must be a non-empty string or a function returning one");
    }
    this.refreshTokenFn = options.refreshToken;
    this.tokenSource = options.token;
  }

  /** Replaces the token (a string or a function returning it) for every later request and reconnect. */
  setToken(token: TokenSource): void {
    this.tokenSource = token;
  }

  // ------------------------------------------------------------ commands

  /**
   * Runs a command: `POST /v1/aggregates/{type}/{id}/commands`. For a registered
   * aggregate type the command is checked against its {@link CommandOf} union.
   *
   * @returns the aggregate's version after it, the events it appended (maybe none) and
   *   the `consistency_token` for read-your-writes projection reads.
   * @throws {EdgeloopError} `api`: `bad_request` 400, `unauthorized` 401 (after one
   *   refresh), `forbidden` 403, `not_found` 404, `version_conflict` 409
   *   ({@link EdgeloopError.versionConflict}), `payload_too_large` 413, `rejected` 422
   *   ({@link EdgeloopError.rule}), `idempotency_key_reused` 422; or the last transient
   *   error (`network`, 429, 5xx) once retries ran out — its `idempotencyKey` makes a
   *   resend safe.
   */
  async command<T extends string>(
    aggregateType: T,
    aggregateId: string,
    command: CommandOf<T>,
    options: CommandOptions = {},
  ): Promise<CommandResult<EventOf<T>>> {
    const c = command as AnyCommand;
    if (!isObject(c) || typeof c.type !== "string") throw invalid("a command is {type, data}");
    const body: Record<string, unknown> = { type: c.type };
    if (c.data !== undefined) body["data"] = c.data;
    return this.runCommand("commands", aggregateType, aggregateId, body, options);
  }

  /**
   * Runs several commands in order, all or none: `POST /v1/aggregates/{type}/{id}/batch`
   * (1–1,000 commands, one idempotency key). A refusal's message starts with
   * `commands[i]:`. The answer and errors are {@link Edgeloop.command}'s.
   */
  async batch<T extends string>(
    aggregateType: T,
    aggregateId: string,
    commands: CommandOf<T>[],
    options: CommandOptions = {},
  ): Promise<CommandResult<EventOf<T>>> {
    if (!Array.isArray(commands) || commands.length === 0) throw invalid("a batch holds 1 to 1,000 commands");
    const list = (commands as AnyCommand[]).map((c) => {
      if (!isObject(c) || typeof c.type !== "string") throw invalid("a command is {type, data}");
      return c.data === undefined ? { type: c.type } : { type: c.type, data: c.data };
    });
    return this.runCommand("batch", aggregateType, aggregateId, { commands: list }, options);
  }

  private async runCommand<E extends { type: string; data: unknown }>(
    route: "commands" | "batch",
    aggregateType: string,
    aggregateId: string,
    body: Record<string, unknown>,
    options: CommandOptions,
  ): Promise<CommandResult<E>> {
    if (options.expectedVersion !== undefined) body["expected_version"] = options.expectedVersion;
    if (options.commandId !== undefined) body["command_id"] = options.commandId;
    if (options.correlationId !== undefined) body["correlation_id"] = options.correlationId;
    if (options.causationId !== undefined) body["causation_id"] = options.causationId;
    const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey(this.random);
    const answer = await this.call({
      method: "POST",
      path: ["v1", "aggregates", aggregateType, aggregateId, route],
      body,
      idempotencyKey,
      signal: options.signal,
    });
    const result = expectObject(answer.json, "a command result");
    if (typeof result["version"] !== "number" || !Array.isArray(result["events"])) {
      throw decodeError(`a command result without version and events: ${JSON.stringify(result).slice(0, 200)}`);
    }
    return {
      ...(result as unknown as Omit<CommandResult<E>, "replayed" | "idempotencyKey">),
      replayed: answer.headers.get("idempotent-replayed") === "true",
      idempotencyKey,
    };
  }

  // ------------------------------------------------------------ reads

  /**
   * An aggregate's state: `GET /v1/aggregates/{type}/{id}`, now or — time travel — at a
   * version (`atVersion`) or as of a time (`asOf`).
   *
   * @throws {EdgeloopError} `not_found` 404 when the aggregate has no events (or not that
   *   many); `bad_request` 400 for both `atVersion` and `asOf`.
   */
  async state<T extends string>(
    aggregateType: T,
    aggregateId: string,
    options: StateOptions = {},
  ): Promise<AggregateState<StateOf<T>>> {
    const query: [string, string][] = [];
    if (options.atVersion !== undefined) query.push(["at_version", String(options.atVersion)]);
    if (options.asOf !== undefined) query.push(["as_of", time(options.asOf)]);
    const answer = await this.call({
      method: "GET",
      path: ["v1", "aggregates", aggregateType, aggregateId],
      query,
      signal: options.signal,
    });
    return expectObject(answer.json, "an aggregate state") as unknown as AggregateState<StateOf<T>>;
  }

  /**
   * A forward page of an aggregate's log: `GET …/events?after=N&limit=M`, oldest first.
   * Page on with `next_after` until it is `null` (or use {@link Edgeloop.allEvents}).
   *
   * @throws {EdgeloopError} `not_found` 404 when the aggregate has no events; `protocol`
   *   when the page is not dense from `after + 1`.
   */
  async events<T extends string>(
    aggregateType: T,
    aggregateId: string,
    options: EventsOptions = {},
  ): Promise<EventPage<EventOf<T>>> {
    const after = options.after ?? 0;
    const query: [string, string][] = [["after", String(after)]];
    if (options.limit !== undefined) query.push(["limit", String(options.limit)]);
    const answer = await this.call({
      method: "GET",
      path: ["v1", "aggregates", aggregateType, aggregateId, "events"],
      query,
      signal: options.signal,
    });
    const page = expectObject(answer.json, "an event page") as unknown as EventPage<EventOf<T>>;
    if (!Array.isArray(page.events)) throw decodeError("an event page without events");
    page.events.forEach((event, i) => {
      if (event.seq !== after + 1 + i) {
        throw new EdgeloopError({
          kind: "protocol",
          code: "protocol_error",
          message: `a page after ${after} holds seq ${event.seq} where ${after + 1 + i} belongs`,
        });
      }
    });
    return page;
  }

  /** A backward page of an aggregate's log, newest first: `GET …/events?direction=backward&before=N&limit=M`. */
  async eventsBackward<T extends string>(
    aggregateType: T,
    aggregateId: string,
    options: EventsBackwardOptions = {},
  ): Promise<BackwardEventPage<EventOf<T>>> {
    const query: [string, string][] = [["direction", "backward"]];
    if (options.before !== undefined) query.push(["before", String(options.before)]);
    if (options.limit !== undefined) query.push(["limit", String(options.limit)]);
    const answer = await this.call({
      method: "GET",
      path: ["v1", "aggregates", aggregateType, aggregateId, "events"],
      query,
      signal: options.signal,
    });
    return expectObject(answer.json, "an event page") as unknown as BackwardEventPage<EventOf<T>>;
  }

  /**
   * Every event with `seq > after`, oldest first, fetched a page (`pageSize`, default
   * 1,000) at a time as the loop consumes them: `for await (const e of client.allEvents(…))`.
   */
  async *allEvents<T extends string>(
    aggregateType: T,
    aggregateId: string,
    options: EventsOptions & { pageSize?: number } = {},
  ): AsyncGenerator<Envelope<EventOf<T>>, void, undefined> {
    let after: number | null = options.after ?? 0;
    while (after !== null) {
      const readOptions: EventsOptions = { after, limit: options.pageSize ?? 1_000 };
      if (options.signal !== undefined) readOptions.signal = options.signal;
      const page: EventPage<EventOf<T>> = await this.events(aggregateType, aggregateId, readOptions);
      yield* page.events;
      after = page.next_after;
    }
  }

  /**
   * One read-model document: `GET /v1/projections/{name}/{doc_id}`, optionally after your
   * own write (`consistency`).
   *
   * @throws {EdgeloopError} `not_found` 404 (no such projection or document);
   *   `overloaded` 503 when the projection did not catch up within the retry budget.
   */
  async document<N extends string>(
    projection: N,
    docId: string,
    options: ConsistentReadOptions = {},
  ): Promise<ProjectionDocument<BodyOf<N>>> {
    const query: [string, string][] = [];
    if (options.consistency !== undefined) query.push(["consistency", options.consistency]);
    const answer = await this.call({ method: "GET", path: ["v1", "projections", projection, docId], query, signal: options.signal });
    return expectObject(answer.json, "a document") as unknown as ProjectionDocument<BodyOf<N>>;
  }

  /**
   * A page of a projection's documents, newest first: `GET /v1/projections/{name}`, with
   * the projection's filters and optionally after your own write (`consistency`). Page on
   * with `after: page.next_after`.
   */
  async documents<N extends string>(projection: N, options: DocumentsOptions = {}): Promise<DocumentPage<BodyOf<N>>> {
    const query: [string, string][] = [];
    if (options.limit !== undefined) query.push(["limit", String(options.limit)]);
    if (options.after !== undefined) query.push(["after", options.after]);
    for (const [name, value] of Object.entries(options.filters ?? {})) query.push([name, value]);
    if (options.consistency !== undefined) query.push(["consistency", options.consistency]);
    const answer = await this.call({ method: "GET", path: ["v1", "projections", projection], query, signal: options.signal });
    return expectObject(answer.json, "a document page") as unknown as DocumentPage<BodyOf<N>>;
  }

  /** Every projection's status, checkpoints and lag: `GET /v1/projections`. */
  async projections(options: ReadOptions = {}): Promise<ProjectionStatus[]> {
    const answer = await this.call({ method: "GET", path: ["v1", "projections"], signal: options.signal });
    const list = expectObject(answer.json, "the projections")["projections"];
    if (!Array.isArray(list)) throw decodeError("`projections` is not a list");
    return list as ProjectionStatus[];
  }

  /**
   * A page of one partition of the tenant's global stream (scope `replay`):
   * `GET /v1/stream?partition=P&after=O…`. Page on with `after: next_after` until `null`.
   */
  async streamPage(options: StreamPageOptions): Promise<StreamPage> {
    const query: [string, string][] = [
      ["partition", String(options.partition)],
      ["after", String(options.after ?? 0)],
    ];
    if (options.limit !== undefined) query.push(["limit", String(options.limit)]);
    if (options.aggregateType !== undefined) query.push(["aggregate_type", options.aggregateType]);
    if (options.types !== undefined && options.types.length > 0) query.push(["types", options.types.join(",")]);
    if (options.since !== undefined) query.push(["since", time(options.since)]);
    if (options.until !== undefined) query.push(["until", time(options.until)]);
    const answer = await this.call({ method: "GET", path: ["v1", "stream"], query, signal: options.signal });
    return expectObject(answer.json, "a stream page") as unknown as StreamPage;
  }

  /** Every partition's head and retention (scope `replay`): `GET /v1/stream/partitions`. */
  async partitions(options: ReadOptions = {}): Promise<PartitionStatus[]> {
    const answer = await this.call({ method: "GET", path: ["v1", "stream", "partitions"], signal: options.signal });
    const list = expectObject(answer.json, "the partitions")["partitions"];
    if (!Array.isArray(list)) throw decodeError("`partitions` is not a list");
    return list as PartitionStatus[];
  }

  /** A causal chain across aggregates: `GET /v1/trace/{correlation_id}`. */
  async trace(correlationId: string, options: ReadOptions = {}): Promise<Trace<DomainEvent>> {
    const answer = await this.call({ method: "GET", path: ["v1", "trace", correlationId], signal: options.signal });
    return expectObject(answer.json, "a trace") as unknown as Trace<DomainEvent>;
  }

  // ------------------------------------------------------------ subscriptions

  /**
   * Follows an aggregate live: `GET /v1/aggregates/{type}/{id}/ws?after=N`. Every event
   * after `after` goes to `onEvent` once, in `seq` order, then `onCaughtUp`, then live
   * events — across drops, restarts and 4008 closes, with no gap and no duplicate.
   *
   * @throws {EdgeloopError} `invalid_argument` for a bad `after` or no `WebSocket`.
   *   Everything later goes to `onError` / `onStatus`.
   */
  subscribeAggregate<T extends string>(
    aggregateType: T,
    aggregateId: string,
    options: AggregateSubscriptionOptions<EventOf<T>>,
  ): Subscription {
    const spec = aggregateSpec(`${aggregateType}/${aggregateId}`, options);
    return this.feed(spec, ["v1", "aggregates", aggregateType, aggregateId, "ws"], [], options, options.after ?? 0);
  }

  /**
   * Follows one partition of the tenant's global stream live (scope `replay`):
   * `GET /v1/stream/ws?partition=P&after=O`, acknowledged by offset.
   */
  subscribeStream(partition: number, options: StreamSubscriptionOptions<DomainEvent>): Subscription {
    const spec = streamSpec(partition, options);
    return this.feed(spec, ["v1", "stream", "ws"], [["partition", String(partition)]], options, options.after ?? 0);
  }

  /**
   * Follows one read-model document live: `GET /v1/projections/{name}/{doc_id}/ws`.
   * `onSnapshot` gets the document once caught up, `onChange` every later change.
   */
  subscribeProjection<N extends string>(
    projection: N,
    docId: string,
    options: ProjectionSubscriptionOptions<BodyOf<N>>,
  ): Subscription {
    const spec = projectionSpec(projection, docId, options);
    return this.feed(spec, ["v1", "projections", projection, docId, "ws"], [], options, options.after ?? 0);
  }

  private feed(
    spec: FeedSpec,
    path: string[],
    query: [string, string][],
    options: SubscriptionOptions,
    after: number,
  ): Subscription {
    const WebSocketImpl = this.WebSocketImpl;
    if (WebSocketImpl === undefined) throw invalid("no WebSocket: pass `WebSocket` in the options");
    const wsBase = this.base.replace(/^http/, "ws");
    return new Feed(
      spec,
      {
        open: (from: number, token: string): WebSocketLike => {
          const url = `${wsBase}/${path.map(encodeURIComponent).join("/")}?${new URLSearchParams([...query, ["after", String(from)]])}`;
          return new WebSocketImpl(url, [PROTOCOL, `bearer.${token}`]);
        },
        token: () => this.socketToken(),
        refresh: () => this.refreshOrReread(),
        random: this.random,
        reconnect: { ...this.reconnectPolicy, ...options.reconnect },
      },
      options,
      after,
    );
  }

  // ------------------------------------------------------------ tokens

  private async currentToken(): Promise<string> {
    const source = this.tokenSource;
    let token: unknown = source;
    if (typeof source === "function") {
      try {
        token = await source();
      } catch (cause) {
        throw invalid(`the token function failed: ${String(cause)}`, cause);
      }
    }
    if (typeof token !== "string" || token === "") throw invalid("the token is not a non-empty string");
    return token;
  }

  /** One refresh at a time: concurrent 401s share it. */
  private refresh(): Promise<string> {
    const refreshTokenFn = this.refreshTokenFn;
    if (refreshTokenFn === undefined) return Promise.reject(invalid("no refreshToken"));
    if (this.refreshing !== undefined) return this.refreshing;
    const refreshing = (async () => {
      let token: unknown;
      try {
        token = await refreshTokenFn();
      } catch (cause) {
        throw cause instanceof EdgeloopError ? cause : invalid(`refreshToken failed: ${String(cause)}`, cause);
      }
      if (typeof token !== "string" || token === "") throw invalid("refreshToken returned no token");
      this.tokenSource = token;
      return token;
    })();
    this.refreshing = refreshing;
    const settled = (): void => {
      if (this.refreshing === refreshing) this.refreshing = undefined;
    };
    refreshing.then(settled, settled);
    return refreshing;
  }

  /** After a 4001: a refreshed token, or the token function's newest; `undefined` when only the expired string is known. */
  private async refreshOrReread(): Promise<string | undefined> {
    if (this.refreshTokenFn !== undefined) return this.refresh();
    if (typeof this.tokenSource === "function") return this.currentToken();
    return undefined;
  }

  /** The token a socket connects with: refreshed first when it is a JWT known to have expired. */
  private async socketToken(): Promise<string> {
    const token = await this.currentToken();
    if (this.refreshTokenFn !== undefined) {
      const exp = jwtExpiry(token);
      if (exp !== undefined && exp * 1000 <= Date.now()) return this.refresh();
    }
    return token;
  }

  // ------------------------------------------------------------ the raw layer

  /**
   * Sends one logical request: retries transient failures under the retry policy (the
   * same body and idempotency key every time), and a 401 once after a token refresh.
   */
  private async call(call: Call): Promise<Answer> {
    const url = `${this.base}/${call.path.map(encodeURIComponent).join("/")}${call.query !== undefined && call.query.length > 0 ? `?${new URLSearchParams(call.query)}` : ""}`;
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    const started = Date.now();
    let attempts = 0;
    let refreshed = false;
    for (;;) {
      attempts += 1;
      let error: EdgeloopError;
      try {
        return await this.attempt(url, call, body);
      } catch (caught) {
        if (!(caught instanceof EdgeloopError)) throw caught;
        error = caught;
      }
      if (error.kind === "aborted") throw error;
      if (error.status === 401 && !refreshed && this.refreshTokenFn !== undefined) {
        refreshed = true;
        attempts -= 1; // an expired token is not a failed attempt
        try {
          await this.refresh();
        } catch {
          throw error; // the 401 is what the caller needs to see
        }
        continue;
      }
      if (!error.transient) throw error.withAttempts(attempts, call.idempotencyKey);
      const wait = decide(this.retryPolicy, attempts, Date.now() - started, error.retryAfterMs, this.random());
      if (wait === undefined) throw error.withAttempts(attempts, call.idempotencyKey);
      try {
        await sleep(wait, call.signal);
      } catch (cause) {
        throw aborted(cause);
      }
    }
  }

  /** One HTTP attempt, within the timeout; a failure status becomes an {@link EdgeloopError}. */
  private async attempt(url: string, call: Call, body: string | undefined): Promise<Answer> {
    const token = await this.currentToken();
    const headers: Record<string, string> = { accept: "application/json", authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (call.idempotencyKey !== undefined) headers["idempotency-key"] = call.idempotencyKey;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    const onAbort = (): void => controller.abort();
    call.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (call.signal?.aborted) throw aborted(call.signal.reason);
      let response: Response;
      try {
        const init: RequestInit = { method: call.method, headers, signal: controller.signal };
        if (body !== undefined) init.body = body;
        response = await this.fetchImpl(url, init);
      } catch (cause) {
        if (call.signal?.aborted) throw aborted(cause);
        const message = controller.signal.aborted
          ? `${call.method} ${url} timed out after ${this.timeoutMs} ms`
          : `${call.method} ${url}: ${String(cause)}`;
        throw networkError(message, cause);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (cause) {
        if (call.signal?.aborted) throw aborted(cause);
        throw networkError(`${call.method} ${url}: the answer broke off: ${String(cause)}`, cause);
      }
      if (!response.ok) {
        throw errorFromAnswer(response.status, text, parseRetryAfter(response.headers.get("retry-after"), Date.now()));
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw decodeError(`HTTP ${response.status} answer is not JSON: ${text.slice(0, 200)}`, cause);
      }
      return { json, headers: response.headers };
    } finally {
      clearTimeout(timer);
      call.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * A fresh idempotency key: `crypto.randomUUID()`, or — where that is missing (pages
 * served over plain http from another host) — a UUID v4 from `crypto.getRandomValues`,
 * or from `random` as a last resort.
 */
export function newIdempotencyKey(random: () => number = Math.random): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c !== undefined && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c !== undefined && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(random() * 256);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The `exp` claim (Unix seconds) of a JWT, or `undefined` when the token is not one. */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims: unknown = JSON.parse(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), "=")));
    return isObject(claims) && typeof claims["exp"] === "number" ? claims["exp"] : undefined;
  } catch {
    return undefined;
  }
}

function time(value: Date | string): string {
  return typeof value === "string" ? value : value.toISOString();
}

function expectObject(json: unknown, what: string): Record<string, unknown> {
  if (!isObject(json)) throw decodeError(`${what} is not a JSON object`);
  return json;
}

function invalid(message: string, cause?: unknown): EdgeloopError {
  return new EdgeloopError({ kind: "invalid_argument", code: "invalid_argument", message, cause });
}

function decodeError(message: string, cause?: unknown): EdgeloopError {
  return new EdgeloopError({ kind: "decode", code: "decode_error", message, cause });
}

function aborted(cause: unknown): EdgeloopError {
  return new EdgeloopError({ kind: "aborted", code: "aborted", message: "the call was aborted", cause });
}
