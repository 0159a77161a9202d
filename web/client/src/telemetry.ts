/**
 * {@link Telemetry}: reports a page's errors and counters to `POST /v1/ingest/telemetry`
 * (scope `ingest`), where they are grouped into `error_group` aggregates. The route answers
 * 202 `{accepted, groups, flush_within_ms}`; a group's aggregate shows the reports once the
 * window has passed.
 *
 * The route is strict and all or nothing: one field over its limit, a blank optional
 * field, a non-finite counter or more than 100 items refuses the whole batch. So what is
 * sent is first made acceptable — text cut to the route's limits (bytes of UTF-8), blank
 * optional fields left out, unusable counter samples dropped — and split into requests of
 * at most 100 items and about 60 KiB (what a beacon or a `keepalive` fetch may carry). A
 * deployment without the route (404), or a token without `ingest` (403), refuses reports:
 * they are dropped, and reporting never throws.
 *
 * @module
 */

/** One error report, as the route takes it. */
export interface ErrorReport {
  /** The error's class, e.g. `TypeError` (1–… characters, not blank). */
  type: string;
  message: string;
  stack?: string;
  /** The page it happened on. */
  url?: string;
  /** The application's release, e.g. `web@1.4.0`. */
  release?: string;
  user_agent?: string;
  /** When it happened, ms since the Unix epoch. */
  timestamp_ms?: number;
}

/** A counter sample, e.g. `{ name: "board.render_ms", value: 12.5 }`. */
export interface CounterSample {
  name: string;
  value: number;
  tags?: Record<string, string>;
}

/** How to reach the ingestion route. */
export interface TelemetryOptions {
  /** The deployment, as for {@link Edgeloop}. */
  baseUrl: string;
  /**
   * A publishable token with only the `ingest` scope: it ships in the page's code, so it
   * must be able to do nothing else. Sent as `Authorization: Bearer …` with `fetch`; a
   * beacon cannot set headers, so there it travels as `?access_token=` (which the route
   * accepts for this reason).
   */
  ingestToken: string;
  /** Added to every error report. */
  release?: string;
  /** Default: the global `fetch`. */
  fetch?: typeof globalThis.fetch;
  /**
   * Default: `navigator.sendBeacon` where it exists, so a report sent while the page
   * unloads still leaves. `null` to always use `fetch`.
   */
  sendBeacon?: ((url: string, data: string) => boolean) | null;
}

/**
 * Sends error reports and counters, fire-and-forget: with `navigator.sendBeacon` when
 * available (it survives the page unloading), else `fetch` with `keepalive`. The body is
 * `{"errors":[…],"counters":[…]}` as `text/plain` JSON (no CORS preflight for beacons).
 */
export class Telemetry {
  private readonly url: string;
  private readonly options: TelemetryOptions;

  constructor(options: TelemetryOptions) {
    this.options = options;
    this.url = `${options.baseUrl.replace(/\/+$/, "")}/v1/ingest/telemetry`;
  }

  /**
   * Reports an error (anything thrown: an `Error`, a string …) with the page's URL, the
   * user agent, the release and the time. Resolves to whether the report was handed over
   * (not whether the server took it); never rejects.
   */
  reportError(error: unknown, extra: Partial<ErrorReport> = {}): Promise<boolean> {
    const report: ErrorReport = { ...describe(error), timestamp_ms: Date.now(), ...environment(), ...extra };
    if (this.options.release !== undefined && report.release === undefined) report.release = this.options.release;
    return this.send({ errors: [report] });
  }

  /** Reports counter samples. Resolves to whether they were handed over; never rejects. */
  count(...samples: CounterSample[]): Promise<boolean> {
    return this.send({ counters: samples });
  }

  /**
   * Sends a batch, made acceptable to the route and split as needed (see the module docs).
   * Resolves to whether every request was handed over (with `fetch`: answered 2xx); never
   * rejects.
   */
  async send(batch: { errors?: ErrorReport[]; counters?: CounterSample[] }): Promise<boolean> {
    try {
      let handedOver = true;
      for (const body of requests(batch)) {
        if (!(await this.post(body))) handedOver = false;
      }
      return handedOver;
    } catch {
      return false; // telemetry must never become the page's next error
    }
  }

  private async post(body: string): Promise<boolean> {
    const beacon = this.options.sendBeacon === undefined ? defaultBeacon() : this.options.sendBeacon;
    try {
      const bytes = utf8Length(body);
      if (beacon !== null && beacon !== undefined && bytes <= MAX_KEEPALIVE_BYTES) {
        const url = `${this.url}?access_token=${encodeURIComponent(this.options.ingestToken)}`;
        if (beacon(url, body)) return true;
      }
      const fetchImpl = this.options.fetch ?? globalThis.fetch.bind(globalThis);
      const response = await fetchImpl(this.url, {
        method: "POST",
        headers: { "content-type": "text/plain;charset=UTF-8", authorization: `Bearer ${this.options.ingestToken}` },
        body,
        // Browsers refuse a keepalive request whose body is over 64 KiB.
        keepalive: bytes <= MAX_KEEPALIVE_BYTES,
      });
      return response.ok;
    } catch {
      return false;
    }
  }
}

/** The route's limits, in bytes of UTF-8 (`ingest::telemetry`'s `MAX_*` constants). */
const LIMITS = {
  type: 200,
  message: 2048,
  stack: 16 * 1024,
  url: 2048,
  release: 200,
  user_agent: 512,
  counterName: 200,
  tags: 20,
  tagKey: 100,
  tagValue: 200,
} as const;
/** Errors, and counters, the route takes in one batch. */
const MAX_ITEMS = 100;
/** What a beacon or a `keepalive` fetch may carry (64 KiB, shared by all in flight). */
const MAX_KEEPALIVE_BYTES = 64 * 1024;
/** A request's body is kept under this where its items allow. */
const TARGET_REQUEST_BYTES = 60 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/**
 * `text` as well-formed UTF-16 (a lone surrogate becomes U+FFFD: JSON with one would be
 * refused) and cut to at most `maxBytes` bytes of UTF-8 on a character boundary.
 */
function cut(text: string, maxBytes: number): string {
  const bytes = encoder.encode(text); // lone surrogates are encoded as U+FFFD
  if (bytes.length <= maxBytes) return decoder.decode(bytes);
  let end = maxBytes;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--; // not inside a character
  return decoder.decode(bytes.subarray(0, end));
}

/** An optional text field: cut to its limit, or left out when blank. */
function optional(text: unknown, maxBytes: number): string | undefined {
  if (typeof text !== "string") return undefined;
  const value = cut(text, maxBytes);
  return value.trim() === "" ? undefined : value;
}

/** A report the route accepts. */
function acceptableReport(report: ErrorReport): ErrorReport {
  const type = optional(report.type, LIMITS.type) ?? "Error";
  const out: ErrorReport = { type, message: cut(String(report.message ?? ""), LIMITS.message) };
  if (typeof report.stack === "string") out.stack = cut(report.stack, LIMITS.stack);
  const url = optional(report.url, LIMITS.url);
  if (url !== undefined) out.url = url;
  const release = optional(report.release, LIMITS.release);
  if (release !== undefined) out.release = release;
  const userAgent = optional(report.user_agent, LIMITS.user_agent);
  if (userAgent !== undefined) out.user_agent = userAgent;
  const t = report.timestamp_ms;
  if (typeof t === "number" && Number.isFinite(t) && t >= 0) out.timestamp_ms = Math.floor(t);
  return out;
}

/** A sample the route accepts, or `undefined` when it cannot be one (no name, no finite value). */
function acceptableSample(sample: CounterSample): CounterSample | undefined {
  const name = optional(sample.name, LIMITS.counterName);
  if (name === undefined || typeof sample.value !== "number" || !Number.isFinite(sample.value)) return undefined;
  const out: CounterSample = { name, value: sample.value };
  if (sample.tags !== undefined && sample.tags !== null) {
    const tags: Record<string, string> = {};
    for (const [key, value] of Object.entries(sample.tags)) {
      const k = optional(key, LIMITS.tagKey);
      if (k === undefined || Object.keys(tags).length >= LIMITS.tags) continue;
      tags[k] = cut(String(value), LIMITS.tagValue);
    }
    out.tags = tags;
  }
  return out;
}

/** The bodies to send for `batch`: acceptable items, at most {@link MAX_ITEMS} of each kind and about {@link TARGET_REQUEST_BYTES} per body. */
function requests(batch: { errors?: ErrorReport[]; counters?: CounterSample[] }): string[] {
  const items: Array<["errors", ErrorReport] | ["counters", CounterSample]> = [];
  for (const report of batch.errors ?? []) items.push(["errors", acceptableReport(report)]);
  for (const sample of batch.counters ?? []) {
    const acceptable = acceptableSample(sample);
    if (acceptable !== undefined) items.push(["counters", acceptable]);
  }
  const bodies: string[] = [];
  let current: { errors?: ErrorReport[]; counters?: CounterSample[] } = {};
  let bytes = 2;
  const flush = () => {
    if (current.errors !== undefined || current.counters !== undefined) bodies.push(JSON.stringify(current));
    current = {};
    bytes = 2;
  };
  for (const [kind, item] of items) {
    const size = utf8Length(JSON.stringify(item)) + kind.length + 4;
    const list = current[kind] as unknown[] | undefined;
    if ((list?.length ?? 0) >= MAX_ITEMS || (bytes > 2 && bytes + size > TARGET_REQUEST_BYTES)) flush();
    ((current[kind] ??= []) as unknown[]).push(item);
    bytes += size;
  }
  flush();
  return bodies;
}

function describe(error: unknown): Pick<ErrorReport, "type" | "message" | "stack"> {
  if (error instanceof Error) {
    const described: Pick<ErrorReport, "type" | "message" | "stack"> = { type: error.name || "Error", message: error.message };
    if (typeof error.stack === "string") described.stack = error.stack;
    return described;
  }
  return { type: typeof error === "string" ? "Error" : typeof error, message: String(error) };
}

function environment(): Partial<ErrorReport> {
  const env: Partial<ErrorReport> = {};
  const g = globalThis as { location?: { href?: string }; navigator?: { userAgent?: string } };
  if (typeof g.location?.href === "string") env.url = g.location.href;
  if (typeof g.navigator?.userAgent === "string") env.user_agent = g.navigator.userAgent;
  return env;
}

function defaultBeacon(): ((url: string, data: string) => boolean) | undefined {
  const nav = (globalThis as { navigator?: { sendBeacon?: (url: string, data: string) => boolean } }).navigator;
  if (nav === undefined || typeof nav.sendBeacon !== "function") return undefined;
  return (url, data) => (nav.sendBeacon as (url: string, data: string) => boolean).call(nav, url, data);
}
