// Starts Edgeloop's Worker under workerd through Miniflare, configured from the
// project's wrangler.toml, and serves it on 127.0.0.1 directly (no wrangler dev proxy).
//
//   node tests/harness/serve.mjs [--port N] [--persist DIR] [--var NAME=VALUE]...
//
//   --port N            HTTP port on 127.0.0.1; 0 (the default) picks a free one.
//   --persist DIR       keep Durable Object storage (SQLite) in DIR; without it, state
//                       lives in a temporary directory Miniflare deletes on exit.
//   --var NAME=VALUE    override (or add) a var or secret from wrangler.toml; repeatable.
//   --config PATH       another wrangler.toml (default: the repository's).
//   --remove-on-exit DIR  delete DIR after a graceful stop (for runtimes whose owner
//                       cannot clean up after them, e.g. one shared by a whole test binary).
//
// EDGELOOP_INSPECTOR_PORT=N in the environment opens workerd's V8 inspector on 127.0.0.1:N
// (for bench/profile.mjs: a CPU profile of the Worker and its objects, wasm by Rust name).
//
// Prints exactly one line on stdout when the Worker answers: {"url":"http://127.0.0.1:PORT"}.
// Everything else (Miniflare's log, the Worker's console) goes to stderr.
// Runs until SIGTERM/SIGINT or until stdin closes (the parent died), then disposes
// Miniflare, which stops workerd.
//
// Miniflare 5 takes its own option shape; wrangler still hands out v4-shaped worker
// options, so they are wrapped in convertV4MiniflareOptions(). Modules are listed
// explicitly from build/ (worker-build's output) rather than discovered by module rules.
// Static assets come with those options exactly as wrangler.toml's [assets] says (the
// directory, run_worker_first, html and not-found handling, _headers), so a test sees
// the page and the API routed as a deployment routes them.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Miniflare, Log, LogLevel, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function fail(message) {
    process.stderr.write(`serve.mjs: ${message}\n`);
    process.exit(2);
}

const { values } = parseArgs({
    options: {
        port: { type: "string", default: "0" },
        persist: { type: "string" },
        var: { type: "string", multiple: true, default: [] },
        config: { type: "string", default: path.join(root, "wrangler.toml") },
        "remove-on-exit": { type: "string" },
    },
    strict: true,
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${values.port}`);

const vars = {};
for (const item of values.var) {
    const eq = item.indexOf("=");
    if (eq <= 0) fail(`--var wants NAME=VALUE, got ${item}`);
    vars[item.slice(0, eq)] = item.slice(eq + 1);
}

const build = path.join(root, "build");
const modules = [
    { type: "ESModule", path: path.join(build, "index.js") },
    { type: "CompiledWasm", path: path.join(build, "index_bg.wasm") },
];
for (const module of modules) {
    if (!fs.existsSync(module.path)) fail(`${module.path} is missing: run scripts/build first`);
}

// wrangler.toml → v4 worker options (bindings = [vars], durableObjects, compatibility date…).
const { workerOptions } = unstable_getMiniflareWorkerOptions(values.config);
// Module rules conflict with an explicit module list (and Miniflare 5 refuses them).
delete workerOptions.modulesRules;
workerOptions.modules = modules;
workerOptions.modulesRoot = build;
workerOptions.bindings = { ...(workerOptions.bindings ?? {}), ...vars };
// The page is built with the Worker (scripts/build); without it the runtime would serve
// no page at all, which a test would only notice as a confusing 404.
if (workerOptions.assets?.directory && !fs.existsSync(path.join(workerOptions.assets.directory, "index.html"))) {
    fail(`${workerOptions.assets.directory}/index.html is missing: run scripts/build first`);
}

// Everything Miniflare and the Worker print goes to stderr, so stdout carries only the ready line.
class StderrLog extends Log {
    log(message) {
        process.stderr.write(`${message}\n`);
    }
}

const v4 = {
    ...workerOptions,
    host: "127.0.0.1",
    port,
    log: new StderrLog(LogLevel.WARN),
    handleStructuredLogs: ({ level, message }) => process.stderr.write(`[workerd ${level}] ${message}\n`),
    logRequests: false,
    telemetry: { enabled: false },
};
if (process.env.EDGELOOP_INSPECTOR_PORT) {
    const inspector = Number(process.env.EDGELOOP_INSPECTOR_PORT);
    if (!Number.isInteger(inspector) || inspector <= 0 || inspector > 65535) {
        fail(`bad EDGELOOP_INSPECTOR_PORT ${process.env.EDGELOOP_INSPECTOR_PORT}`);
    }
    v4.inspectorPort = inspector;
}
if (values.persist) {
    fs.mkdirSync(values.persist, { recursive: true });
    v4.resourcePersistencePath = path.resolve(values.persist);
}

let mf;
try {
    mf = new Miniflare(convertV4MiniflareOptions(v4));
} catch (error) {
    fail(`bad Miniflare options: ${error?.stack ?? error}`);
}

let stopping = false;
async function stop(code) {
    if (stopping) return;
    stopping = true;
    try {
        await mf.dispose();
    } catch (error) {
        process.stderr.write(`serve.mjs: dispose failed: ${error?.stack ?? error}\n`);
    }
    if (values["remove-on-exit"]) {
        fs.rmSync(values["remove-on-exit"], { recursive: true, force: true });
    }
    process.exit(code);
}
process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
// The parent holds our stdin open for as long as it lives; EOF means it is gone.
process.stdin.on("end", () => stop(0));
process.stdin.on("error", () => stop(0));
process.stdin.resume();

try {
    const url = await mf.ready;
    // `ready` resolves once workerd listens; make sure the Worker itself answers.
    const origin = `http://127.0.0.1:${url.port}`;
    const res = await fetch(`${origin}/healthz`);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET /healthz answered ${res.status}`);
    process.stdout.write(`${JSON.stringify({ url: origin })}\n`);
} catch (error) {
    process.stderr.write(`serve.mjs: the Worker did not start: ${error?.stack ?? error}\n`);
    await stop(1);
}
