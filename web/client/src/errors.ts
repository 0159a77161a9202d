/**
 * {@link EdgeloopError}: the one error type of the library.
 *
 * @module
 */

/**
 * What kind of failure an {@link EdgeloopError} is:
 * - `api` — the server refused the request with its documented error body
 *   `{"error":{"code","message",…details}}`; `status` and `code` are the server's.
 * - `unexpected` — a non-success HTTP answer without that body (a proxy's HTML page).
 * - `network` — no complete answer: connection refused or reset, offline, timed out. The
 *   request may or may not have reached the server (a command is still safe to resend
 *   with the same idempotency key).
 * - `decode` — a success answer or socket frame that is not what the API documents.
 * - `closed` — the server closed a subscription for a reason reconnecting cannot fix
 *   (`closeCode` 1008, an unknown code, or 4001 when no fresh token could be had).
 * - `protocol` — the server broke a guarantee (a gap in a sequence). Never expected.
 * - `handler` — a subscription callback threw; `cause` is what it threw.
 * - `invalid_argument` — refused before anything was sent.
 * - `aborted` — the caller's `AbortSignal` fired.
 */
export type ErrorKind =
  | "api"
  | "unexpected"
  | "network"
  | "decode"
  | "closed"
  | "protocol"
  | "handler"
  | "invalid_argument"
  | "aborted";

/** The fields of an {@link EdgeloopError}, for constructing one. */
export interface EdgeloopErrorInit {
  kind: ErrorKind;
  code: string;
  message: string;
  status?: number | undefined;
  details?: Record<string, unknown> | undefined;
  closeCode?: number | undefined;
  retryAfterMs?: number | undefined;
  attempts?: number | undefined;
  idempotencyKey?: string | undefined;
  cause?: unknown;
}

/**
 * Every failure the library reports. Decide on `kind`, `status` and `code`, never on
 * `message` (it is for people).
 *
 * `code` is the server's stable name for `api` errors — `bad_request` 400,
 * `unauthorized` 401, `forbidden` 403, `not_found` 404, `method_not_allowed` 405,
 * `version_conflict` 409, `payload_too_large` 413, `unsupported_media_type` 415,
 * `rejected` 422, `idempotency_key_reused` 422, `rate_limited` 429, `internal` 500,
 * `overloaded` 503 — and the frame's code for `closed` errors (`token_expired`,
 * `bad_request`, `rate_limited`). For the other kinds it is the kind's own name:
 * `network_error`, `unexpected_response`, `decode_error`, `protocol_error`,
 * `handler_error`, `invalid_argument`, `aborted`.
 */
export class EdgeloopError extends Error {
  override name = "EdgeloopError";
  /** See {@link ErrorKind}. */
  readonly kind: ErrorKind;
  /** The HTTP status for `api` and `unexpected` errors; 0 otherwise. */
  readonly status: number;
  /** The stable machine-readable name (see the class docs). */
  readonly code: string;
  /**
   * Every other field of the server's error object: `rule` for `rejected`, `expected` and
   * `actual` for `version_conflict`, `required_scope` for `forbidden`, `limit` for
   * `payload_too_large`, `allowed` for `method_not_allowed`, `resume_after` for `closed`.
   * Empty when there were none.
   */
  readonly details: Record<string, unknown>;
  /** The WebSocket close code, for `closed` errors. */
  readonly closeCode: number | undefined;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;
  /** How many attempts were made before this error was given up on (1 = no retry). */
  readonly attempts: number;
  /**
   * The `Idempotency-Key` of the command that failed: resending the same command with it
   * (`{ idempotencyKey }`) is safe — it is applied at most once.
   */
  readonly idempotencyKey: string | undefined;

  constructor(init: EdgeloopErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.status = init.status ?? 0;
    this.code = init.code;
    this.details = init.details ?? {};
    this.closeCode = init.closeCode;
    this.retryAfterMs = init.retryAfterMs;
    this.attempts = init.attempts ?? 1;
    this.idempotencyKey = init.idempotencyKey;
  }

  /**
   * Whether trying again later can succeed: a network failure, or a 429, 5xx. A 4xx is
   * about the request and fails the same way every time.
   */
  get transient(): boolean {
    return this.kind === "network" || ((this.kind === "api" || this.kind === "unexpected") && isTransientStatus(this.status));
  }

  /** For a 422 `rejected`: the domain rule's stable name (e.g. `wip_limit_reached`). */
  get rule(): string | undefined {
    const rule = this.details["rule"];
    return this.code === "rejected" && typeof rule === "string" ? rule : undefined;
  }

  /**
   * For a 409 `version_conflict`: the `expected_version` sent and the aggregate's actual
   * version.
   */
  get versionConflict(): { expected: unknown; actual: number } | undefined {
    const actual = this.details["actual"];
    if (this.code !== "version_conflict" || typeof actual !== "number") return undefined;
    return { expected: this.details["expected"], actual };
  }

  /** A copy that records the attempts made and the command's idempotency key. */
  withAttempts(attempts: number, idempotencyKey: string | undefined): EdgeloopError {
    return new EdgeloopError({ ...this.init(), attempts, idempotencyKey });
  }

  private init(): EdgeloopErrorInit {
    return {
      kind: this.kind,
      code: this.code,
      message: this.message,
      status: this.status,
      details: this.details,
      closeCode: this.closeCode,
      retryAfterMs: this.retryAfterMs,
      attempts: this.attempts,
      idempotencyKey: this.idempotencyKey,
      cause: this.cause,
    };
  }
}

/** Statuses that mean "not now": 429 and every 5xx but 501. */
export function isTransientStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/**
 * The error an HTTP answer with a failure status stands for: `api` when the body is the
 * documented error object, `unexpected` otherwise (its first 512 characters in the message).
 */
export function errorFromAnswer(status: number, text: string, retryAfterMs?: number): EdgeloopError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = isObject(parsed) ? parsed["error"] : undefined;
  const extra = retryAfterMs === undefined ? {} : { retryAfterMs };
  if (isObject(error) && typeof error["code"] === "string" && typeof error["message"] === "string") {
    const { code, message, ...details } = error;
    return new EdgeloopError({ kind: "api", status, code, message, details, ...extra });
  }
  return new EdgeloopError({
    kind: "unexpected",
    status,
    code: "unexpected_response",
    message: `unexpected HTTP ${status} answer: ${text.slice(0, 512)}`,
    ...extra,
  });
}

/** A network failure (fetch threw, the socket could not be opened). */
export function networkError(message: string, cause?: unknown): EdgeloopError {
  return new EdgeloopError({ kind: "network", code: "network_error", message: `network error: ${message}`, cause });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
