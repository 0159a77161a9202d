// `npx vitest run --config web/client/vitest.config.ts` from the repository root, or
// `npm --prefix web/client test`: the root is this folder either way.
//
// The integration tests run against the real Worker on workerd, which test/global-setup.mjs
// starts once for the run when it is built (build/) and no EDGELOOP_URL names another.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    globalSetup: ["test/global-setup.mjs"],
  },
});
