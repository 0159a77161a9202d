// Builds dist/: one ESM bundle (esbuild) and the type declarations (tsc).
// Run from anywhere: `npm --prefix web/client run build`.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { build } = await import("esbuild");

rmSync(join(here, "dist"), { recursive: true, force: true });

await build({
  entryPoints: [join(here, "src/index.ts")],
  outfile: join(here, "dist/index.js"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: ["es2022"],
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
});

// tsc is the package's own binary, resolved the way Node resolves the import above.
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin/tsc");
execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.build.json")], { stdio: "inherit" });

// The sources import each other as `./x.ts`; published declarations say `./x.js`, which
// every resolver maps to `./x.d.ts`.
for (const name of readdirSync(join(here, "dist"))) {
  if (!name.endsWith(".d.ts")) continue;
  const file = join(here, "dist", name);
  writeFileSync(file, readFileSync(file, "utf8").replace(/(from\s+"\.\/[\w-]+)\.ts"/g, '$1.js"'));
}
