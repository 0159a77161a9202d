// Loads the project's Convex functions (convex/*.ts) into convex-test outside Vite.
//
// convex-test wants a map of module path → loader, which Vite builds with `import.meta.glob`;
// plain Node has no such thing and cannot import TypeScript with extensionless imports
// (`./_generated/server`). So the modules are bundled with esbuild (from npm, offline) into
// a directory under node_modules/.cache — inside the repository, so that the bare imports
// left external (`convex/server`, `convex/values`) resolve to the same `convex` package
// convex-test uses — and imported from there.
//
// Which files are modules follows Convex's own bundler (convex/dist/cjs/bundler/index.js,
// `entryPoints`): .js/.ts files outside `_generated/`, not schema.ts, with no more than one
// dot in their name (so tests, test helpers and vitest.config.ts are not modules).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { convexTest } from "convex-test";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const convexDir = path.join(root, "convex");

function moduleFiles(dir, prefix = "") {
    const files = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const rel = prefix + entry.name;
        if (entry.isDirectory()) {
            if (entry.name !== "_generated" && !entry.name.startsWith(".")) {
                files.push(...moduleFiles(path.join(dir, entry.name), `${rel}/`));
            }
            continue;
        }
        const name = entry.name;
        if (!/\.(m?js|m?ts|tsx|jsx)$/.test(name)) continue;
        if (name.startsWith(".") || name.startsWith("#")) continue;
        if (name === "schema.ts" || name === "schema.js") continue;
        if ((name.match(/\./g) ?? []).length > 1) continue;
        files.push(rel);
    }
    return files;
}

/**
 * Bundles convex/ and returns `{ schema, modules, dispose }`: `modules` maps
 * "./mirror.mjs"-style paths to loaders, as convex-test expects; `dispose` removes the
 * bundle. `newBackend()` on the result gives a fresh convex-test instance (empty database).
 */
export async function loadFunctions() {
    const cache = path.join(root, "node_modules", ".cache");
    fs.mkdirSync(cache, { recursive: true });
    const outdir = fs.mkdtempSync(path.join(cache, "convex-standin-"));
    const dispose = () => fs.rmSync(outdir, { recursive: true, force: true });
    try {
        const entryPoints = {};
        for (const file of moduleFiles(convexDir)) {
            entryPoints[file.replace(/\.[^.]+$/, "")] = path.join(convexDir, file);
        }
        entryPoints.schema = path.join(convexDir, "schema.ts");
        await esbuild.build({
            entryPoints,
            outdir,
            bundle: true,
            splitting: true,
            format: "esm",
            platform: "node",
            target: "node20",
            packages: "external",
            outExtension: { ".js": ".mjs" },
            logLevel: "error",
        });
        const load = (name) => () => import(pathToFileURL(path.join(outdir, `${name}.mjs`)).href);
        const modules = {
            // convex-test finds the functions' root from the `_generated` entry; it never loads it.
            "./_generated/server.mjs": async () => ({}),
        };
        for (const name of Object.keys(entryPoints)) {
            if (name !== "schema") modules[`./${name}.mjs`] = load(name);
        }
        const schema = (await load("schema")()).default;
        return {
            schema,
            modules,
            /** The module `name` (e.g. "mirror"), or undefined when there is none. */
            async module(name) {
                const loader = modules[`./${name}.mjs`];
                return loader ? await loader() : undefined;
            },
            newBackend: () => convexTest(schema, modules),
            dispose,
        };
    } catch (error) {
        dispose();
        throw error;
    }
}
