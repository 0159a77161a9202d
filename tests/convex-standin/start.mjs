// Starts the stand-in Convex deployment (server.mjs) as a child process for a test and
// waits for its ready line. Not a Convex thing: a test helper.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const server = path.join(path.dirname(fileURLToPath(import.meta.url)), "server.mjs");

/** Resolves to `{ url, port, stop() }` once the stand-in answers; `stop()` ends it. */
export function startStandin({ deployKey, port = 0 }) {
    const child = spawn(process.execPath, [server, "--deploy-key", deployKey, "--port", String(port)], {
        stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
        stderr += chunk;
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    return new Promise((resolve, reject) => {
        let stdout = "";
        const timer = setTimeout(() => {
            child.kill("SIGTERM");
            reject(new Error(`the stand-in did not get ready in 15 s: ${stderr}`));
        }, 15_000);
        child.once("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`the stand-in exited (${code}) before it was ready: ${stderr}`));
        });
        child.stdout.on("data", (chunk) => {
            stdout += chunk;
            const newline = stdout.indexOf("\n");
            if (newline < 0) return;
            clearTimeout(timer);
            const { url } = JSON.parse(stdout.slice(0, newline));
            resolve({
                url,
                port: Number(new URL(url).port),
                async stop() {
                    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
                    await exited;
                },
            });
        });
    });
}
