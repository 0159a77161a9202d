/**
 * The real Worker for `integration.test.ts`, started once for the run (vitest
 * `globalSetup`) unless one is named:
 *
 * - `EDGELOOP_URL` (and `EDGELOOP_TOKEN`, optionally `EDGELOOP_INGEST_TOKEN`) set: those
 *   are used as they are, nothing is started.
 * - else, when the Worker is built (`build/index.js`, from `scripts/build`): it runs on
 *   workerd exactly as the browser tests run it (`web/e2e/worker.ts`: `tests/harness/serve.mjs`,
 *   its own storage directory and `AUTH_SECRET`), with tokens minted for a fresh tenant,
 *   and is stopped (its process group, by PID) and its storage removed after the run.
 *   A Worker that is built but does not start fails the run; it is not a skip.
 * - else the integration tests report themselves skipped, saying why.
 *
 * What the tests get arrives through `inject("edgeloop")` (its shape: ./provided.ts).
 * JavaScript, not TypeScript: the client's tsconfig (browser types only) checks test/.
 */
import fs from "node:fs";
import path from "node:path";
import { ROOT, Worker } from "../../e2e/worker.ts";

/** A short window, so an error report's group is recorded within a test's patience. */
const TELEMETRY_WINDOW_MS = 1_000;

/**
 * @param {import("vitest/node").TestProject} project
 * @returns {Promise<(() => Promise<void>) | void>}
 */
export default async function setup(project) {
  const env = process.env;
  if (env["EDGELOOP_URL"] !== undefined) {
    const token = env["EDGELOOP_TOKEN"] ?? null;
    project.provide("edgeloop", {
      url: env["EDGELOOP_URL"],
      token,
      ingestToken: env["EDGELOOP_INGEST_TOKEN"] ?? null,
      telemetryWindowMs: null,
      skip: token === null ? "EDGELOOP_URL is set but EDGELOOP_TOKEN is not" : null,
    });
    return;
  }
  if (!fs.existsSync(path.join(ROOT, "build/index.js"))) {
    project.provide("edgeloop", {
      url: null,
      token: null,
      ingestToken: null,
      telemetryWindowMs: null,
      skip: "no Worker to test against: EDGELOOP_URL is unset and build/index.js does not exist (run scripts/build)",
    });
    return;
  }
  const started = Date.now();
  const worker = await Worker.start({ vars: { TELEMETRY_WINDOW_MS: String(TELEMETRY_WINDOW_MS) } });
  const tenant = `client-it-${Date.now().toString(36)}`;
  project.provide("edgeloop", {
    url: worker.url,
    token: worker.token("client-it", tenant, "commands read replay"),
    ingestToken: worker.token("client-it-page", tenant, "ingest"),
    telemetryWindowMs: TELEMETRY_WINDOW_MS,
    skip: null,
  });
  process.stderr.write(`[integration] Worker on workerd at ${worker.url} (pid ${worker.pid}), ready in ${Date.now() - started} ms\n`);
  return async () => {
    await worker.stop();
  };
}
