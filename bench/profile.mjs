// A CPU profile of Edgeloop's Worker (and every Durable Object: they share its isolate)
// through workerd's V8 inspector, summarized by function. Rust functions keep their names:
// the Worker's wasm carries a `name` section.
//
//   EDGELOOP_INSPECTOR_PORT=9229 cargo run --release -p bench -- --core-only …   (one Worker)
//   node bench/profile.mjs [--port 9229] [--seconds 10] [--top 40] [--out FILE.cpuprofile]
//
// Start it while the benchmark runs the path to profile. It prints self time (samples in
// the function itself) and total time (the function and what it calls) per function, in %
// of all samples taken while the isolate was busy; `--out` keeps the raw profile for
// Chrome DevTools' Performance panel. Uses Node's built-in WebSocket (Node 22).

import fs from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
    options: {
        port: { type: "string", default: "9229" },
        seconds: { type: "string", default: "10" },
        top: { type: "string", default: "40" },
        interval: { type: "string", default: "200" },
        out: { type: "string" },
    },
    strict: true,
});

if (typeof WebSocket === "undefined") {
    console.error("bench/profile.mjs needs Node 22's WebSocket: `source scripts/env.sh` puts it on PATH");
    process.exit(2);
}
const targets = await (await fetch(`http://127.0.0.1:${values.port}/json`)).json();
const target = targets.find((t) => t.webSocketDebuggerUrl);
if (!target) throw new Error(`no inspector target on port ${values.port}`);
const socket = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
});
let nextId = 1;
const pending = new Map();
socket.onmessage = (message) => {
    const reply = JSON.parse(message.data);
    if (reply.id && pending.has(reply.id)) {
        const { resolve, reject } = pending.get(reply.id);
        pending.delete(reply.id);
        reply.error ? reject(new Error(JSON.stringify(reply.error))) : resolve(reply.result);
    }
};
function send(method, params = {}) {
    const id = nextId++;
    socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: Number(values.interval) });
await send("Profiler.start");
await new Promise((resolve) => setTimeout(resolve, Number(values.seconds) * 1000));
const { profile } = await send("Profiler.stop");
socket.close();
if (values.out) fs.writeFileSync(values.out, JSON.stringify(profile));

// Self samples per node, then per function name; totals count a function once per sample
// even when it recurses.
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const label = (node) => {
    const frame = node.callFrame;
    return frame.functionName || `(anonymous ${frame.url.split("/").pop()}:${frame.lineNumber})`;
};
const idle = new Set(["(idle)", "(program)", "(garbage collector)"]);
const self = new Map();
const total = new Map();
let busy = 0;
let gc = 0;
for (const id of profile.samples) {
    const node = byId.get(id);
    const name = label(node);
    if (name === "(garbage collector)") gc++;
    if (idle.has(name) && name !== "(garbage collector)") continue;
    busy++;
    self.set(name, (self.get(name) ?? 0) + 1);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
        const n = label(byId.get(at));
        if (!seen.has(n)) {
            seen.add(n);
            total.set(n, (total.get(n) ?? 0) + 1);
        }
    }
}
const pct = (n) => `${((100 * n) / Math.max(busy, 1)).toFixed(1).padStart(5)}%`;
const top = Number(values.top);
console.log(`${profile.samples.length} samples, ${busy} busy (${gc} in GC)`);
console.log("\nself time:");
for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(n)}  ${name}`);
}
console.log("\ntotal time:");
for (const [name, n] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(n)}  ${name}`);
}
