// Starts the benchmark's baseline Worker (worker.js + wrangler.toml beside this file) under
// workerd through Miniflare, exactly as tests/harness/serve.mjs starts Edgeloop's: the same
// Miniflare/wrangler versions, options shape and persistence, served on 127.0.0.1 directly.
//
//   node bench/baseline-worker/serve.mjs [--persist DIR]
//
// Prints one line on stdout when the Worker answers: {"url":"http://127.0.0.1:PORT"}.
// Runs until SIGTERM/SIGINT or until stdin closes (the parent died), then disposes
// Miniflare, which stops workerd.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Miniflare, Log, LogLevel, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({ options: { persist: { type: "string" } }, strict: true });

const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(here, "wrangler.toml"));
delete workerOptions.modulesRules;
workerOptions.modules = [{ type: "ESModule", path: path.join(here, "worker.js") }];
workerOptions.modulesRoot = here;

class StderrLog extends Log {
    log(message) {
        process.stderr.write(`${message}\n`);
    }
}

const v4 = {
    ...workerOptions,
    host: "127.0.0.1",
    port: 0,
    log: new StderrLog(LogLevel.WARN),
    logRequests: false,
    telemetry: { enabled: false },
};
if (values.persist) {
    fs.mkdirSync(values.persist, { recursive: true });
    v4.resourcePersistencePath = path.resolve(values.persist);
}

const mf = new Miniflare(convertV4MiniflareOptions(v4));
let stopping = false;
async function stop(code) {
    if (stopping) return;
    stopping = true;
    try {
        await mf.dispose();
    } catch (error) {
        process.stderr.write(`baseline serve.mjs: dispose failed: ${error?.stack ?? error}\n`);
    }
    process.exit(code);
}
process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
process.stdin.on("end", () => stop(0));
process.stdin.on("error", () => stop(0));
process.stdin.resume();

try {
    const url = await mf.ready;
    const origin = `http://127.0.0.1:${url.port}`;
    const res = await fetch(`${origin}/noop`);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET /noop answered ${res.status}`);
    process.stdout.write(`${JSON.stringify({ url: origin })}\n`);
} catch (error) {
    process.stderr.write(`baseline serve.mjs: the Worker did not start: ${error?.stack ?? error}\n`);
    await stop(1);
}
