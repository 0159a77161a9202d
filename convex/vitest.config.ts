// `npm run test:convex`: the Convex functions under convex-test (edge-runtime, as Convex's
// docs set it up), then the HTTP side — the stand-in deployment, the official
// ConvexHttpClient against it, and the smoke test of a real deployment (skipped unless
// CONVEX_URL and CONVEX_DEPLOY_KEY are set) — under Node.
import { defineConfig } from "vitest/config";

const root = new URL("..", import.meta.url).pathname;

export default defineConfig({
  test: {
    root,
    projects: [
      {
        test: {
          name: "functions",
          root,
          include: ["convex/**/*.test.ts"],
          environment: "edge-runtime",
          server: { deps: { inline: ["convex-test"] } },
        },
      },
      {
        test: {
          name: "http",
          root,
          include: ["tests/convex-standin/**/*.test.mjs"],
          environment: "node",
          testTimeout: 20_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
