// STAND-IN FOR A CONVEX DEPLOYMENT — for tests only. This is not Convex.
//
// No Convex backend can run on the machines this project is built on (its binary comes
// only from GitHub) and Convex's cloud is out of reach, so this small Node server plays a
// deployment for tests: it runs the project's real Convex functions (convex/*.ts, bundled by
// functions.mjs) inside convex-test — with their argument, return and schema validators,
// indexes and transaction rollback, but with no optimistic-concurrency conflicts, no
// reactivity, no scheduling and no limits of a real deployment — and answers Convex's HTTP
// API shapes, so the Worker's mirror and the official ConvexHttpClient talk to it unchanged.
// It lives outside convex/ on purpose: `npx convex deploy` bundles every module in convex/.
//
//   node tests/convex-standin/server.mjs --deploy-key KEY [--port N]
//
//   --deploy-key KEY   what `Authorization: Convex KEY` must carry (required).
//   --port N           port on 127.0.0.1; 0 (the default) picks a free one.
//
// Prints exactly one line on stdout when it answers: {"url":"http://127.0.0.1:PORT"}.
// Runs until SIGTERM/SIGINT or until a piped stdin closes (the parent died). The data lives in
// memory: a restart is a new, empty deployment.
//
// Convex's HTTP API, as a deployment answers it:
//   POST /api/query | /api/mutation | /api/action   {"path":"module:function","args":{…}|[{…}],"format":"json"}
//   POST /api/run/{module}/{function}               {"args":{…},"format":"json"}
//   200 {"status":"success","value":…}
//   200 {"status":"error","errorMessage":"…","errorData":…}   (errorData only for a ConvexError)
// Numbers are written as a deployment writes them, as floats: {"cursor":4.0,"applied":1.0}.
// Like a real deployment it leaves out `logLines` when there are none (functions' console
// output is not captured here), and error message texts are only similar, not a contract.
// Authorization: `Convex <key>` with a wrong key is a 401 for any call; an internal function
// needs the right key, else 401 {"code":"Unauthorized",…} (a real deployment answers a
// function error "Could not find public function" then). `Bearer` tokens are not checked.
//
// Controls for tests (a real deployment has none of these):
//   POST /_standin/unavailable {"ms":N}  every /api call answers 503 (Retry-After) for N ms; 0 ends it
//   POST /_standin/down {"ms":N}         stop listening for N ms (connections refused), then
//                                        listen again on the same port with the same data
//   POST /_standin/reset                 forget all data, as a new deployment would
//   GET  /_standin/calls                 the /api calls so far: {"calls":[{path,kind,status,outcome,args?,errorData?}]}
//                                        (args: the call's top-level arguments, an array as its length,
//                                        an object as its number of keys)

import fs from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { makeFunctionReference } from "convex/server";
import { convexToJson, jsonToConvex } from "convex/values";
import { loadFunctions } from "./functions.mjs";

function fail(message) {
    process.stderr.write(`convex stand-in: ${message}\n`);
    process.exit(2);
}

const { values } = parseArgs({
    options: {
        port: { type: "string", default: "0" },
        "deploy-key": { type: "string" },
    },
    strict: true,
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${values.port}`);
const deployKey = values["deploy-key"];
if (!deployKey) fail("--deploy-key KEY is required");

const functions = await loadFunctions();
let backend = functions.newBackend();
let unavailableUntil = 0;
let requestCounter = 0;
const calls = [];
const MAX_CALLS_KEPT = 10_000;

const KINDS = { query: "Query", mutation: "Mutation", action: "Action" };

/**
 * JSON text as a deployment writes it (serde_json): a Convex number is a float64, so an
 * integral one is written with ".0" (`{"cursor":4.0}`) — a reader must not insist on an
 * integer literal. (Past 1e16, JavaScript's and serde_json's spellings differ; not needed here.)
 */
function deploymentJson(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "number") {
        if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${Object.is(value, -0) ? "-0" : value}.0`;
        return JSON.stringify(value).replace("e+", "e");
    }
    if (Array.isArray(value)) return `[${value.map(deploymentJson).join(",")}]`;
    if (typeof value === "object") {
        const fields = Object.entries(value).filter(([, v]) => v !== undefined);
        return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${deploymentJson(v)}`).join(",")}}`;
    }
    return JSON.stringify(value);
}

/** A Convex value in the HTTP API's `json` format (Convex's "clean" export). */
function exportClean(value) {
    if (value === null || value === undefined) return null;
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "number") {
        if (Number.isNaN(value)) return "NaN";
        if (value === Infinity) return "Infinity";
        if (value === -Infinity) return "-Infinity";
        return value;
    }
    if (value instanceof ArrayBuffer) return Buffer.from(value).toString("base64");
    if (Array.isArray(value)) return value.map(exportClean);
    if (typeof value === "object") {
        return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, exportClean(v)]));
    }
    return value;
}

/** `format`: "json" (the default) or "convex_encoded_json" (what ConvexHttpClient asks for). */
function exporter(format) {
    if (format === undefined || format === "json" || format === "convex_clean_json") return exportClean;
    if (format === "convex_encoded_json" || format === "convex_json") return convexToJson;
    return null;
}

function send(res, status, body, headers = {}) {
    const text = status === 200 && (body.status === "success" || body.status === "error")
        ? deploymentJson(body)
        : JSON.stringify(body);
    res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
        ...headers,
    });
    res.end(text);
}

async function readJson(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    return text === "" ? {} : JSON.parse(text);
}

/** A call's arguments as `/_standin/calls` records them: top-level scalars as they are, an
 * array as its length, an object as its number of keys (bodies are not kept). */
function argsSummary(args) {
    if (args === null || typeof args !== "object" || Array.isArray(args)) return undefined;
    const summary = {};
    for (const [key, value] of Object.entries(args)) {
        if (Array.isArray(value)) summary[key] = value.length;
        else if (value !== null && typeof value === "object") summary[key] = Object.keys(value).length;
        else if (typeof value === "bigint") summary[key] = Number(value);
        else summary[key] = value;
    }
    return summary;
}

/** "mirror:applyBatch", "mirror.js:applyBatch", "dir/mod:fn", "mod" (its default export). */
function parseFunctionPath(udfPath) {
    if (typeof udfPath !== "string" || udfPath === "") return null;
    const [modulePart, name = "default"] = udfPath.split(":");
    const module = modulePart.replace(/\.(m?js|ts)$/, "");
    return { module, name, canonical: `${module}:${name}` };
}

function kindOf(fn) {
    if (fn?.isQuery) return "query";
    if (fn?.isMutation) return "mutation";
    if (fn?.isAction) return "action";
    return null;
}

/** The Convex value in `args` as the HTTP API takes it: an object, or a list of one object. */
function decodeArgs(args) {
    const one = Array.isArray(args) ? (args.length === 0 ? {} : args[0]) : (args ?? {});
    if (args !== undefined && (typeof one !== "object" || one === null || Array.isArray(one))) {
        throw new Error("args must be an object");
    }
    return jsonToConvex(one);
}

function functionError(error, exportValue = exportClean) {
    const requestId = `standin-${requestCounter}`;
    const isConvexError = error && typeof error === "object" && "data" in error && error.name === "ConvexError";
    const kind = isConvexError ? "ConvexError" : "Error";
    const body = {
        status: "error",
        errorMessage: `[Request ID: ${requestId}] Server Error\nUncaught ${kind}: ${error?.message ?? String(error)}`,
    };
    if (isConvexError) body.errorData = exportValue(error.data);
    return body;
}

async function callFunction(req, endpoint, runPath, record) {
    let request;
    try {
        request = await readJson(req);
    } catch (error) {
        return { status: 400, body: { code: "BadJsonBody", message: `The request body is not JSON: ${error.message}` } };
    }
    const parsed = parseFunctionPath(runPath ?? request.path);
    if (!parsed) {
        return { status: 400, body: { code: "BadRequest", message: "a function path (\"module:function\") is required" } };
    }
    record.path = parsed.canonical;
    const exportValue = exporter(request.format);
    if (!exportValue) {
        return { status: 400, body: { code: "BadFormat", message: `format param must be one of [\`json\`]. Got ${request.format}` } };
    }
    let args;
    try {
        args = decodeArgs(request.args);
    } catch (error) {
        return { status: 400, body: { code: "BadRequest", message: error.message } };
    }
    record.args = argsSummary(args);

    const authorization = req.headers.authorization ?? "";
    const adminKey = authorization.startsWith("Convex ") ? authorization.slice("Convex ".length) : null;
    if (adminKey !== null && adminKey !== deployKey) {
        return { status: 401, body: { code: "BadAdminKey", message: "The provided admin key was invalid for this instance" } };
    }

    const module = await functions.module(parsed.module);
    const fn = module?.[parsed.name];
    const kind = kindOf(fn);
    if (!kind) {
        return {
            status: 200,
            body: functionError(new Error(`Could not find public function for '${parsed.canonical}'. Did you forget to run \`npx convex dev\` or \`npx convex deploy\`?`)),
            outcome: "error",
        };
    }
    if (fn.isInternal && adminKey === null) {
        return {
            status: 401,
            body: {
                code: "Unauthorized",
                message: `${parsed.canonical} is an internal function: call it with Authorization: Convex <deploy key>`,
            },
        };
    }
    if (endpoint !== "run" && endpoint !== kind) {
        return {
            status: 200,
            body: functionError(new Error(`Trying to execute ${parsed.canonical} as ${KINDS[endpoint]}, but it is defined as ${KINDS[kind]}.`)),
            outcome: "error",
        };
    }

    const reference = makeFunctionReference(parsed.canonical);
    try {
        const value = await backend[kind](reference, args);
        return { status: 200, body: { status: "success", value: exportValue(value === undefined ? null : value) }, outcome: "success" };
    } catch (error) {
        const body = functionError(error, exportValue);
        return { status: 200, body, outcome: "error" };
    }
}

let server;
const sockets = new Set();

async function handle(req, res) {
    requestCounter += 1;
    const url = new URL(req.url, "http://127.0.0.1");
    const route = url.pathname;

    if (route.startsWith("/_standin/")) {
        let body = {};
        if (req.method === "POST") {
            try {
                body = await readJson(req);
            } catch (error) {
                return send(res, 400, { code: "BadJsonBody", message: error.message });
            }
        }
        const ms = Math.max(0, Number(body.ms ?? 0));
        if (req.method === "POST" && route === "/_standin/unavailable") {
            unavailableUntil = ms > 0 ? Date.now() + ms : 0;
            return send(res, 200, { unavailable_until: unavailableUntil });
        }
        if (req.method === "POST" && route === "/_standin/down") {
            res.on("finish", () => goDown(ms));
            return send(res, 200, { down_for_ms: ms }, { connection: "close" });
        }
        if (req.method === "POST" && route === "/_standin/reset") {
            backend = functions.newBackend();
            return send(res, 200, { reset: true });
        }
        if (req.method === "GET" && route === "/_standin/calls") {
            return send(res, 200, { calls });
        }
        return send(res, 404, { code: "NotFound", message: `no stand-in control ${req.method} ${route}` });
    }

    const match = /^\/api\/(?:(query|mutation|action)|run\/(.+))$/.exec(route);
    if (!match) return send(res, 404, { code: "NotFound", message: `${route} is not part of the stand-in's HTTP API` });
    if (req.method !== "POST") return send(res, 405, { code: "MethodNotAllowed", message: "use POST" });
    const endpoint = match[1] ?? "run";
    let runPath;
    if (match[2] !== undefined) {
        const parts = match[2].split("/").map(decodeURIComponent);
        if (parts.length < 2) {
            return send(res, 400, { code: "MissingIdentifier", message: "Path or function name not provided in path, e.g. /api/run/messages/list" });
        }
        const name = parts.pop();
        runPath = `${parts.join("/")}:${name}`;
    }

    const record = { path: runPath ?? null, kind: endpoint, status: 0, outcome: "" };
    const remember = (status, outcome, extra = {}) => {
        Object.assign(record, { status, outcome, ...extra });
        calls.push(record);
        if (calls.length > MAX_CALLS_KEPT) calls.shift();
    };

    if (Date.now() < unavailableUntil) {
        if (record.path === null) {
            const request = await readJson(req).catch(() => ({}));
            record.path = parseFunctionPath(request.path)?.canonical ?? null;
        }
        const seconds = Math.max(1, Math.ceil((unavailableUntil - Date.now()) / 1000));
        remember(503, "unavailable");
        return send(res, 503, { code: "ServiceUnavailable", message: "stand-in: unavailable (a test asked for it)" }, { "retry-after": String(seconds) });
    }

    const result = await callFunction(req, endpoint, runPath, record);
    remember(result.status, result.outcome ?? (result.status === 401 ? "unauthorized" : "bad_request"),
        result.body.errorData !== undefined ? { errorData: result.body.errorData } : {});
    send(res, result.status, result.body);
}

function listen(listenPort) {
    return new Promise((resolve, reject) => {
        server = http.createServer((req, res) => {
            handle(req, res).catch((error) => {
                process.stderr.write(`convex stand-in: ${error?.stack ?? error}\n`);
                if (!res.headersSent) send(res, 500, { code: "InternalServerError", message: String(error?.message ?? error) });
            });
        });
        server.on("connection", (socket) => {
            sockets.add(socket);
            socket.on("close", () => sockets.delete(socket));
        });
        server.once("error", reject);
        server.listen(listenPort, "127.0.0.1", () => resolve(server.address().port));
    });
}

let boundPort;
function goDown(ms) {
    server.close();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    setTimeout(() => {
        listen(boundPort).catch((error) => fail(`could not listen again on ${boundPort}: ${error.message}`));
    }, ms);
}

boundPort = await listen(port);
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${boundPort}` })}\n`);

function shutdown() {
    functions.dispose();
    process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// A parent that started us with a pipe for stdin and died closes it: stop then. (Stdin from
// /dev/null or a terminal is not watched, so `… &` in a shell keeps running.)
const stdin = fs.fstatSync(0);
if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on("end", shutdown);
    process.stdin.on("error", shutdown);
    process.stdin.resume();
}
