/**
 * What test/global-setup.mjs gives the integration tests (`inject("edgeloop")`).
 *
 * @module
 */

/** The Worker the integration tests run against. */
export interface IntegrationTarget {
  /** The Worker's origin, or `null` when there is none (then `skip` says why). */
  url: string | null;
  /** Scopes `commands read`, plus `replay` when minted by the setup. */
  token: string | null;
  /** A publishable token with only `ingest`, when one is known. */
  ingestToken: string | null;
  /** The telemetry window the Worker flushes error groups in, when known. */
  telemetryWindowMs: number | null;
  /** Why the tests are skipped (when `url` or `token` is `null`). */
  skip: string | null;
}

declare module "vitest" {
  export interface ProvidedContext {
    edgeloop: IntegrationTarget;
  }
}
