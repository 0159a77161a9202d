// The board page's tests: `npx vitest run --config web/e2e/vitest.config.ts` — its pure
// parts in Node (web/board/test), then the page in headless Chromium (web/e2e).
// One Worker (workerd) and one Chromium for the file, tests in order; generous timeouts
// because the runtime restarts once and a loaded 2-core CI machine is slow. Every wait
// inside a test is for a condition (15 s each), never a fixed sleep.
import { defineConfig } from "vitest/config";

const root = new URL("../..", import.meta.url).pathname;

export default defineConfig({
  test: {
    root,
    name: "browser",
    include: ["web/board/test/**/*.test.ts", "web/e2e/**/*.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 90_000,
    hookTimeout: 120_000,
  },
});
