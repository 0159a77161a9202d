/**
 * {@link Telemetry}: reports a page's errors and counters to `POST /v1/ingest/telemetry`,
 * where they are grouped into `error_group` aggregates.
 *
 * **Needs the ingestion route**, which is being built separately: until a deployment
 * serves `/v1/ingest/telemetry`, reports are refused (404) and dropped — reporting never
 * throws.
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
   * beacon cannot set headers, so there it travels as `?access_token=` — the route must
   * accept that (it is not built yet; see the module docs).
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

  /** Sends a batch as it is. Resolves to whether it was handed over; never rejects. */
  async send(batch: { errors?: ErrorReport[]; counters?: CounterSample[] }): Promise<boolean> {
    const body = JSON.stringify(batch);
    const beacon = this.options.sendBeacon === undefined ? defaultBeacon() : this.options.sendBeacon;
    try {
      if (beacon !== null && beacon !== undefined) {
        const url = `${this.url}?access_token=${encodeURIComponent(this.options.ingestToken)}`;
        if (beacon(url, body)) return true;
      }
      const fetchImpl = this.options.fetch ?? globalThis.fetch.bind(globalThis);
      const response = await fetchImpl(this.url, {
        method: "POST",
        headers: { "content-type": "text/plain;charset=UTF-8", authorization: `Bearer ${this.options.ingestToken}` },
        body,
        keepalive: true,
      });
      return response.ok;
    } catch {
      return false; // telemetry must never become the page's next error
    }
  }
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
