/**
 * The page reports its own uncaught errors (and unhandled promise rejections) to
 * `POST /v1/ingest/telemetry` with the client library's `Telemetry`, using the page's
 * token in the `Authorization` header — never in a URL, so no beacon (a beacon can only
 * carry a token in its query string).
 *
 * The page's token needs the `ingest` scope for this (the dev page's token has it,
 * `commands read ingest`); a token without it gets 403, a refused token 401, and a
 * deployment without the route answers 404; in each case the page stops reporting for the
 * rest of its life instead of sending every error into a refusal. Reports are capped per
 * page load. Checked in the browser tests (web/e2e/board.test.ts).
 *
 * @module
 */
import { Telemetry } from "../../client/src/index.ts";

declare const __BUILD__: string;

/** At most this many reports per page load. */
const MAX_REPORTS = 20;

/** Where the page is in reporting. */
type State = "unknown" | "available" | "absent";

/**
 * Installs the `error` and `unhandledrejection` listeners. `token` gives the current
 * bearer token at the time of each report.
 */
export function installErrorReporting(token: () => string, baseUrl = location.origin): void {
  let state: State = "unknown";
  let sent = 0;
  const report = (error: unknown) => {
    if (state === "absent" || sent >= MAX_REPORTS) return;
    sent += 1;
    let status = 0;
    const telemetry = new Telemetry({
      baseUrl,
      ingestToken: token(),
      release: `edgeloop-board@${__BUILD__}`,
      sendBeacon: null,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        status = response.status;
        return response;
      },
    });
    void telemetry.reportError(error).then(() => {
      if (status === 404 || status === 403 || status === 401) state = "absent";
      else if (status >= 200 && status < 300) state = "available";
    });
  };
  window.addEventListener("error", (event) => report(event.error ?? event.message));
  window.addEventListener("unhandledrejection", (event) => report(event.reason));
}
