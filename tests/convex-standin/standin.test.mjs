// The stand-in deployment over HTTP: the official ConvexHttpClient against it, the exact
// answers the Worker's mirror reads, authorization, and the failures a mirror must survive
// (503 for a while, a deployment that is down, one that restarted empty).
import { ConvexHttpClient } from "convex/browser";
import { ConvexError } from "convex/values";
import { anyApi } from "convex/server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startStandin } from "./start.mjs";

const KEY = "standin-test-key";
const api = anyApi;
const internal = anyApi;

function board(board_id, title = `Board ${board_id}`) {
    return {
        board_id,
        title,
        version: 1,
        last_activity_at: "2026-11-29T10:00:00.000Z",
        columns: [{ name: "Inbox", wip_limit: null, card_count: 0, full: false, cards: [] }],
        archived_count: 0,
    };
}

function batch(after, changes, partition = 0) {
    return { projection: "board_summary", version: 1, partition, after, changes };
}

/** One call of Convex's HTTP API, as the Worker's mirror makes it. */
async function post(url, route, body, { key = KEY } = {}) {
    const headers = { "content-type": "application/json" };
    if (key !== null) headers.authorization = `Convex ${key}`;
    const response = await fetch(`${url}${route}`, {
        method: "POST",
        headers,
        body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, json: await response.json() };
}

const applyBatch = (url, args, options) =>
    post(url, "/api/mutation", { path: "mirror:applyBatch", args, format: "json" }, options);
const cursorOf = async (url, partition = 0) =>
    (await post(url, "/api/query", { path: "mirror:cursor", args: { projection: "board_summary", partition }, format: "json" })).json.value;

describe("the stand-in deployment", () => {
    let standin;
    beforeAll(async () => {
        standin = await startStandin({ deployKey: KEY });
    });
    afterAll(async () => {
        await standin?.stop();
    });

    test("prints a ready line with its URL", () => {
        expect(standin.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    });

    test("the official ConvexHttpClient queries it, and mutates through it with the deploy key", async () => {
        const reader = new ConvexHttpClient(standin.url, { logger: false });
        expect(await reader.query(api.readModels.boardSummary, { board_id: "client-1" })).toBeNull();

        const writer = new ConvexHttpClient(standin.url, { logger: false });
        writer.setAdminAuth(KEY);
        const partition = 11;
        expect(await writer.mutation(internal.mirror.applyBatch, batch(0, [
            { offset: 1, doc_id: "client-1", body: board("client-1") },
        ], partition))).toEqual({ cursor: 1, applied: 1 });
        expect(await reader.query(api.readModels.boardSummary, { board_id: "client-1" })).toEqual(board("client-1"));

        const inbox = await reader.query(api.readModels.feedbackInbox, { paginationOpts: { numItems: 10, cursor: null } });
        expect(inbox).toMatchObject({ page: [], isDone: true });

        // A ConvexError arrives as one, with its data.
        const error = await writer.mutation(internal.mirror.applyBatch, batch(7, [], partition)).catch((e) => e);
        expect(error).toBeInstanceOf(ConvexError);
        expect(error.data).toEqual({ code: "gap", expected: 1, got: 7 });
    });

    test("answers the HTTP API's shapes: success, then the same batch again, then a gap", async () => {
        const partition = 12;
        const first = await applyBatch(standin.url, batch(0, [{ offset: 1, doc_id: "shape-1", body: board("shape-1") }], partition));
        expect(first.status).toBe(200);
        expect(first.json).toEqual({ status: "success", value: { cursor: 1, applied: 1 } });

        const again = await applyBatch(standin.url, batch(0, [{ offset: 1, doc_id: "shape-1", body: board("shape-1") }], partition));
        expect(again.json).toEqual({ status: "success", value: { cursor: 1, applied: 0 } });

        const gap = await applyBatch(standin.url, batch(5, [{ offset: 6, doc_id: "shape-1", body: null }], partition));
        expect(gap.status).toBe(200);
        expect(gap.json).toEqual({
            status: "error",
            errorMessage: expect.stringContaining("ConvexError"),
            errorData: { code: "gap", expected: 1, got: 5 },
        });

        // A plain function error (argument validation) has no errorData.
        const invalid = await applyBatch(standin.url, { ...batch(1, [], partition), changes: [{ offset: 2 }] });
        expect(invalid.status).toBe(200);
        expect(invalid.json.status).toBe("error");
        expect(invalid.json).not.toHaveProperty("errorData");
        expect(await cursorOf(standin.url, partition)).toBe(1);
    });

    test("writes numbers as a deployment does, as floats: a reader must accept 4.0 for 4", async () => {
        const partition = 17;
        const response = await fetch(`${standin.url}/api/mutation`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Convex ${KEY}` },
            body: JSON.stringify({ path: "mirror:applyBatch", args: batch(0, [{ offset: 4, doc_id: "float-1", body: null }], partition), format: "json" }),
        });
        expect(await response.text()).toBe('{"status":"success","value":{"applied":1.0,"cursor":4.0}}');
        const gap = await fetch(`${standin.url}/api/mutation`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Convex ${KEY}` },
            body: JSON.stringify({ path: "mirror:applyBatch", args: batch(9, [], partition), format: "json" }),
        });
        expect(await gap.text()).toContain('"errorData":{"code":"gap","expected":4.0,"got":9.0}');
    });

    test("runs functions by URL, /api/run/{module}/{function}, with args as an object or a list of one", async () => {
        await applyBatch(standin.url, batch(0, [{ offset: 1, doc_id: "run-1", body: board("run-1", "By URL") }], 13));
        const answer = await post(standin.url, "/api/run/readModels/boardSummary", { args: { board_id: "run-1" }, format: "json" }, { key: null });
        expect(answer).toMatchObject({ status: 200, json: { status: "success", value: { title: "By URL" } } });
        const listed = await post(standin.url, "/api/query", { path: "readModels:boardSummary", args: [{ board_id: "run-1" }], format: "json" }, { key: null });
        expect(listed.json.value.title).toBe("By URL");
    });

    test("internal functions need the deploy key; a wrong key is refused everywhere; public queries need none", async () => {
        const none = await applyBatch(standin.url, batch(0, [], 14), { key: null });
        expect(none.status).toBe(401);
        expect(none.json).toMatchObject({ code: "Unauthorized", message: expect.any(String) });

        const wrong = await applyBatch(standin.url, batch(0, [], 14), { key: "not-the-key" });
        expect(wrong.status).toBe(401);
        expect(wrong.json.code).toBe("BadAdminKey");
        const wrongOnPublic = await post(standin.url, "/api/query", { path: "readModels:boardSummary", args: { board_id: "x" } }, { key: "not-the-key" });
        expect(wrongOnPublic.status).toBe(401);

        const publicQuery = await post(standin.url, "/api/query", { path: "readModels:boardSummary", args: { board_id: "x" }, format: "json" }, { key: null });
        expect(publicQuery.json).toEqual({ status: "success", value: null });

        const wrongKind = await post(standin.url, "/api/query", { path: "mirror:applyBatch", args: batch(0, [], 14) });
        expect(wrongKind.json.status).toBe("error");
        const unknown = await post(standin.url, "/api/query", { path: "nothing:here", args: {} });
        expect(unknown.json).toMatchObject({ status: "error", errorMessage: expect.stringContaining("Could not find") });
        const notJson = await post(standin.url, "/api/mutation", "{not json");
        expect(notJson.status).toBe(400);
        expect(notJson.json.code).toBe("BadJsonBody");
        expect(await cursorOf(standin.url, 14)).toBe(0);
    });

    test("answers 503 while told to, writes nothing then, and takes the batch once afterwards", async () => {
        const partition = 15;
        const control = await post(standin.url, "/_standin/unavailable", { ms: 400 });
        expect(control.status).toBe(200);
        const refused = await applyBatch(standin.url, batch(0, [{ offset: 1, doc_id: "busy-1", body: board("busy-1") }], partition));
        expect(refused.status).toBe(503);
        expect(refused.headers.get("retry-after")).toBe("1");
        expect(refused.json.code).toBe("ServiceUnavailable");

        // A mirror retrying with backoff gets through once the window is over.
        const outcome = await retrying(() => applyBatch(standin.url, batch(0, [{ offset: 1, doc_id: "busy-1", body: board("busy-1") }], partition)));
        expect(outcome.attempts).toBeGreaterThan(1);
        expect(outcome.answer.json).toEqual({ status: "success", value: { cursor: 1, applied: 1 } });

        // `applied: 1` above shows the refused attempts wrote nothing; the log shows they came.
        const { calls } = await (await fetch(`${standin.url}/_standin/calls`)).json();
        const refusals = calls.filter((c) => c.path === "mirror:applyBatch" && c.status === 503);
        expect(refusals.length).toBe(outcome.attempts);
    });

    test("goes down for a while and comes back on the same port with its data", async () => {
        const partition = 16;
        await applyBatch(standin.url, batch(0, [{ offset: 3, doc_id: "down-1", body: board("down-1") }], partition));
        await post(standin.url, "/_standin/down", { ms: 500 });
        await expect(fetch(`${standin.url}/api/query`, { method: "POST", body: "{}" })).rejects.toThrow();
        const outcome = await retrying(() => applyBatch(standin.url, batch(3, [{ offset: 4, doc_id: "down-1", body: null }], partition)));
        expect(outcome.answer.json).toEqual({ status: "success", value: { cursor: 4, applied: 1 } });
    });
});

test("a restarted stand-in is a new, empty deployment: the next batch is told where to start", async () => {
    const first = await startStandin({ deployKey: KEY });
    try {
        await applyBatch(first.url, batch(0, [{ offset: 5, doc_id: "r-1", body: board("r-1") }]));
        expect(await cursorOf(first.url)).toBe(5);
    } finally {
        await first.stop();
    }
    const second = await startStandin({ deployKey: KEY, port: first.port });
    try {
        expect(second.url).toBe(first.url);
        const gap = await applyBatch(second.url, batch(5, [{ offset: 6, doc_id: "r-1", body: board("r-1") }]));
        expect(gap.json.errorData).toEqual({ code: "gap", expected: 0, got: 5 });
    } finally {
        await second.stop();
    }
});

/** Calls `attempt` until it answers something other than 503 or a refused connection. */
async function retrying(attempt) {
    for (let attempts = 1; ; attempts += 1) {
        try {
            const answer = await attempt();
            if (answer.status !== 503) return { answer, attempts };
        } catch {
            // connection refused: the deployment is down
        }
        if (attempts >= 50) throw new Error("still unavailable after 50 attempts");
        await new Promise((resolve) => setTimeout(resolve, 50 * Math.min(attempts, 4)));
    }
}
