// Smoke test of a Convex deployment over its HTTP API, with the requests the Worker's mirror
// sends: mirror:applyBatch twice (the second applies nothing), then readModels:boardSummary.
//
// It runs against the stand-in always (so this test itself is known to work), and against a
// REAL deployment only when CONVEX_URL and CONVEX_DEPLOY_KEY are set — otherwise that case
// is reported as skipped. On a real deployment it uses partition 9999 of board_summary (no
// Edgeloop stream has that many partitions), continues from that partition's cursor, and
// deletes its document at the end; the cursor row for partition 9999 stays.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startStandin } from "./start.mjs";

const PARTITION = 9999;
const DOC_ID = "edgeloop-smoke-test";

async function call(url, key, route, path, args) {
    const headers = { "content-type": "application/json" };
    if (key !== null) headers.authorization = `Convex ${key}`;
    const response = await fetch(`${url.replace(/\/$/, "")}${route}`, {
        method: "POST",
        headers,
        body: JSON.stringify({ path, args, format: "json" }),
    });
    expect(response.status, `${path} answered HTTP ${response.status}`).toBe(200);
    return await response.json();
}

async function smoke(url, key) {
    const cursor = await call(url, key, "/api/query", "mirror:cursor", { projection: "board_summary", partition: PARTITION });
    expect(cursor.status).toBe("success");
    const at = cursor.value;
    const body = {
        board_id: DOC_ID,
        title: `Smoke test ${new Date().toISOString()}`,
        version: at + 1,
        last_activity_at: new Date().toISOString(),
        columns: [{ name: "Inbox", wip_limit: null, card_count: 0, full: false, cards: [] }],
        archived_count: 0,
    };
    const args = {
        projection: "board_summary",
        version: 1,
        partition: PARTITION,
        after: at,
        changes: [{ offset: at + 1, doc_id: DOC_ID, body }],
    };

    expect(await call(url, key, "/api/mutation", "mirror:applyBatch", args))
        .toMatchObject({ status: "success", value: { cursor: at + 1, applied: 1 } });
    expect(await call(url, key, "/api/mutation", "mirror:applyBatch", args))
        .toMatchObject({ status: "success", value: { cursor: at + 1, applied: 0 } });
    // The read model is public: no key.
    expect(await call(url, null, "/api/query", "readModels:boardSummary", { board_id: DOC_ID }))
        .toMatchObject({ status: "success", value: body });

    // Clean up: delete the document (the cursor for this partition stays).
    const cleanup = { ...args, after: at + 1, changes: [{ offset: at + 2, doc_id: DOC_ID, body: null }] };
    expect(await call(url, key, "/api/mutation", "mirror:applyBatch", cleanup))
        .toMatchObject({ status: "success", value: { cursor: at + 2, applied: 1 } });
    expect(await call(url, null, "/api/query", "readModels:boardSummary", { board_id: DOC_ID }))
        .toMatchObject({ status: "success", value: null });
}

describe("smoke test of a deployment", () => {
    let standin;
    beforeAll(async () => {
        standin = await startStandin({ deployKey: "smoke-key" });
    });
    afterAll(async () => {
        await standin?.stop();
    });

    test("against the stand-in", async () => {
        await smoke(standin.url, "smoke-key");
        // Twice, so the second run continues from a cursor that is not 0, as on a real deployment.
        await smoke(standin.url, "smoke-key");
    });

    const real = process.env.CONVEX_URL && process.env.CONVEX_DEPLOY_KEY;
    test.skipIf(!real)("against the real deployment at CONVEX_URL (set CONVEX_URL and CONVEX_DEPLOY_KEY)", async () => {
        await smoke(process.env.CONVEX_URL, process.env.CONVEX_DEPLOY_KEY);
    }, 60_000);
});
