/**
 * When to try again: capped exponential backoff with full jitter, honouring `Retry-After`.
 *
 * @module
 */

/**
 * How often and how long a request is retried after a transient failure (network error,
 * 429, 5xx). Attempt `n + 1` waits a random time in `[0, min(maxDelayMs, initialDelayMs ×
 * 2^(n-1))]` ("full jitter", so clients that failed together do not retry together), or
 * the server's `Retry-After` if that is longer. Retrying stops after `maxAttempts`
 * attempts (the first included) or when the next attempt could not start within
 * `maxElapsedMs` of the first — then the last error is thrown.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 = never retry. Default 5. */
  maxAttempts: number;
  /** The cap of the first retry's wait, in ms. Default 200. */
  initialDelayMs: number;
  /** The longest wait between attempts before `Retry-After`, in ms. Default 5,000. */
  maxDelayMs: number;
  /** The longest time from the first attempt to the start of the last, in ms. Default 30,000. */
  maxElapsedMs: number;
}

/** The default {@link RetryPolicy}: rides out a restart or a short overload. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  maxElapsedMs: 30_000,
};

/**
 * How a subscription gets its connection back after a drop: a random wait in
 * `[0, min(maxDelayMs, initialDelayMs × 2^(n-1))]` before attempt `n` of an outage. The
 * count starts again once a connection has been caught up for `healthyAfterMs`.
 */
export interface ReconnectPolicy {
  /** The cap of the first reconnect's wait, in ms. Default 1,000. */
  initialDelayMs: number;
  /** The longest wait, in ms. Default 30,000. */
  maxDelayMs: number;
  /** A connection caught up this long (ms) resets the backoff. Default 10,000. */
  healthyAfterMs: number;
  /**
   * Connection attempts in a row (the first included) that may fail before the
   * subscription gives up (status `closed`, `onError` with the last error). Default
   * `Infinity`: a page keeps trying.
   */
  maxAttempts: number;
}

/** The default {@link ReconnectPolicy}. */
export const DEFAULT_RECONNECT: ReconnectPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  healthyAfterMs: 10_000,
  maxAttempts: Infinity,
};

/**
 * The wait before retry number `retry` (1 = the first retry), for a `random` in `[0, 1)`:
 * full jitter over the capped exponential.
 */
export function backoff(retry: number, initialMs: number, maxMs: number, random: number): number {
  const exponent = Math.min(Math.max(retry - 1, 0), 30);
  const cap = Math.min(maxMs, initialMs * 2 ** exponent);
  return Math.floor(cap * Math.min(Math.max(random, 0), 1));
}

/**
 * After `attempts` failed attempts, the first `elapsedMs` ago, with the server's
 * `retryAfterMs` if it sent one: how long to wait before the next attempt, or `undefined`
 * to give up.
 */
export function decide(
  policy: RetryPolicy,
  attempts: number,
  elapsedMs: number,
  retryAfterMs: number | undefined,
  random: number,
): number | undefined {
  if (attempts >= policy.maxAttempts) return undefined;
  const wait = Math.max(backoff(attempts, policy.initialDelayMs, policy.maxDelayMs, random), retryAfterMs ?? 0);
  // Waiting past the budget would only end in a failure later: give up now.
  if (elapsedMs + wait >= policy.maxElapsedMs) return undefined;
  return wait;
}

/**
 * A `Retry-After` value — delay-seconds or an HTTP-date — as milliseconds from `nowMs`;
 * `undefined` when it is neither. A date in the past means 0.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, at - nowMs);
}

/** Resolves after `ms`, or rejects with `signal`'s reason when it fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
