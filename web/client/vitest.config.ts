// `npx vitest run --config web/client/vitest.config.ts` from the repository root, or
// `npm --prefix web/client test`: the root is this folder either way.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
