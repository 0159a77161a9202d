// Builds the live board page into web/board/dist: one ES module bundle (the page and the
// client library it imports from ../client/src), its stylesheet and index.html.
//
//   node web/board/build.mjs [--watch]
//
// esbuild from the repository's node_modules; nothing is fetched, at build or at run time.
// The Worker serves dist/ as static assets ([assets] in wrangler.toml).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const watch = process.argv.includes("--watch");

// Empty dist/ rather than delete it: `wrangler dev` watches the directory itself.
fs.mkdirSync(dist, { recursive: true });
for (const entry of fs.readdirSync(dist)) fs.rmSync(path.join(dist, entry), { recursive: true, force: true });
/** Files served as they are (`_headers`: Workers static assets' response headers). */
const STATIC = ["index.html", "styles.css", "_headers"];
const copy = (file) => fs.copyFileSync(path.join(here, file), path.join(dist, file));
STATIC.forEach(copy);

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: [path.join(here, "src/main.ts")],
  outfile: path.join(dist, "app.js"),
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  minify: !watch,
  sourcemap: "linked",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  define: { __BUILD__: JSON.stringify(process.env.EDGELOOP_BUILD_ID ?? "dev") },
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
  for (const file of STATIC) fs.watch(path.join(here, file), () => copy(file));
  process.stderr.write("web/board: watching src/ (Ctrl-C stops)\n");
} else {
  const result = await esbuild.build(options);
  const bytes = result.metafile.outputs[path.relative(process.cwd(), options.outfile)]?.bytes
    ?? fs.statSync(options.outfile).size;
  process.stderr.write(`web/board: dist/app.js ${(bytes / 1024).toFixed(1)} KiB\n`);
}
