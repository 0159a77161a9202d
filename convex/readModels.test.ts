// The public read-model queries under convex-test, fed through mirror:applyBatch.
import { convexTest } from "convex-test";
import { describe, expect, test } from "vitest";
import { api, internal } from "./_generated/api";
import schema, { type FeedbackItem } from "./schema";
import { boardBody, feedbackBody } from "./test.fixtures";
import { modules } from "./test.setup";

function setup() {
  return convexTest(schema, modules);
}

describe("boardSummary", () => {
  test("answers a board's body by its id, the latest applied, and null for an unknown board", async () => {
    const t = setup();
    expect(await t.query(api.readModels.boardSummary, { board_id: "b1" })).toBeNull();
    const first = boardBody("b1");
    const second = boardBody("b1", { title: "Renamed", version: 2, archived_count: 1 });
    await t.mutation(internal.mirror.applyBatch, {
      projection: "board_summary", version: 1, partition: 0, after: 0,
      changes: [
        { offset: 1, doc_id: "b1", body: first },
        { offset: 1, doc_id: "b2", body: boardBody("b2") },
      ],
    });
    expect(await t.query(api.readModels.boardSummary, { board_id: "b1" })).toEqual(first);
    await t.mutation(internal.mirror.applyBatch, {
      projection: "board_summary", version: 1, partition: 0, after: 1,
      changes: [{ offset: 2, doc_id: "b1", body: second }],
    });
    expect(await t.query(api.readModels.boardSummary, { board_id: "b1" })).toEqual(second);
    expect(await t.query(api.readModels.boardSummary, { board_id: "b2" })).toEqual(boardBody("b2"));
    expect(await t.query(api.readModels.boardSummary, { board_id: "b3" })).toBeNull();
  });
});

describe("feedbackInbox", () => {
  // Submitted one minute apart, f1 first; the newest is f7.
  const items: FeedbackItem[] = [
    ["open", "low"],
    ["open", "high"],
    ["triaged", "high"],
    ["closed", "critical"],
    ["open", "high"],
    ["triaged", "medium"],
    ["open", "critical"],
  ].map(([status, severity], i) =>
    feedbackBody(`f${i + 1}`, {
      status: status as FeedbackItem["status"],
      severity: severity as FeedbackItem["severity"],
      submitted_at: new Date(Date.UTC(2026, 10, 29, 10, i)).toISOString(),
    }),
  );

  async function seeded() {
    const t = setup();
    // Applied in a shuffled order, so the answer's order can only come from submitted_at.
    const shuffled = [items[3], items[0], items[6], items[2], items[5], items[1], items[4]];
    await t.mutation(internal.mirror.applyBatch, {
      projection: "feedback_inbox", version: 1, partition: 0, after: 0,
      changes: shuffled.map((body, i) => ({ offset: i + 1, doc_id: body.feedback_id, body })),
    });
    return t;
  }

  async function ids(t: ReturnType<typeof setup>, filter: { status?: FeedbackItem["status"]; severity?: FeedbackItem["severity"] }) {
    const result = await t.query(api.readModels.feedbackInbox, { ...filter, paginationOpts: { numItems: 100, cursor: null } });
    expect(result.isDone).toBe(true);
    return result.page.map((item) => item.feedback_id);
  }

  test("lists every feedback newest first, as the read model's own bodies", async () => {
    const t = await seeded();
    const result = await t.query(api.readModels.feedbackInbox, { paginationOpts: { numItems: 100, cursor: null } });
    expect(result.page).toEqual([...items].reverse());
  });

  test("filters by status, by severity, and by both", async () => {
    const t = await seeded();
    expect(await ids(t, { status: "open" })).toEqual(["f7", "f5", "f2", "f1"]);
    expect(await ids(t, { status: "triaged" })).toEqual(["f6", "f3"]);
    expect(await ids(t, { severity: "high" })).toEqual(["f5", "f3", "f2"]);
    expect(await ids(t, { status: "open", severity: "high" })).toEqual(["f5", "f2"]);
    expect(await ids(t, { status: "closed", severity: "low" })).toEqual([]);
  });

  test("pages with Convex's pagination options, newest first, without repeats or holes", async () => {
    const t = await seeded();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    for (;;) {
      const result: { page: FeedbackItem[]; isDone: boolean; continueCursor: string } = await t.query(
        api.readModels.feedbackInbox,
        { status: "open", paginationOpts: { numItems: 3, cursor } },
      );
      seen.push(...result.page.map((item) => item.feedback_id));
      pages += 1;
      if (result.isDone) break;
      cursor = result.continueCursor;
      expect(pages).toBeLessThan(5);
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(["f7", "f5", "f2", "f1"]);
  });

  test("follows status changes and deletes", async () => {
    const t = await seeded();
    await t.mutation(internal.mirror.applyBatch, {
      projection: "feedback_inbox", version: 1, partition: 0, after: 7,
      changes: [
        { offset: 8, doc_id: "f7", body: { ...items[6], status: "closed", closed_reason: "duplicate", version: 2 } },
        { offset: 9, doc_id: "f5", body: null },
      ],
    });
    expect(await ids(t, { status: "open" })).toEqual(["f2", "f1"]);
    expect(await ids(t, { status: "closed" })).toEqual(["f7", "f4"]);
  });

  test("refuses a status that does not exist", async () => {
    const t = setup();
    await expect(
      t.query(api.readModels.feedbackInbox, { status: "pending" as never, paginationOpts: { numItems: 1, cursor: null } }),
    ).rejects.toThrow(/ArgumentValidationError|Validator error/);
  });
});
