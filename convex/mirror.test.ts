// mirror:applyBatch and mirror:cursor under convex-test: the real function code with its
// argument and schema validators, indexes and transaction rollback.
import { convexTest } from "convex-test";
import { ConvexError, type Value } from "convex/values";
import { describe, expect, test } from "vitest";
import { internal } from "./_generated/api";
import schema from "./schema";
import { boardBody, feedbackBody } from "./test.fixtures";
import { modules } from "./test.setup";

type Change = { offset: number; doc_id: string; body: unknown };

function setup() {
  return convexTest(schema, modules);
}
type T = ReturnType<typeof setup>;

function batch(after: number, changes: Change[], projection = "board_summary", partition = 0) {
  return { projection, version: 1, partition, after, changes };
}

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection, got a result");
}

async function convexErrorData(promise: Promise<unknown>) {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(ConvexError);
  return (error as ConvexError<Record<string, Value>>).data;
}

/** Everything the mirror has written: documents of every table, without system fields. */
async function snapshot(t: T) {
  return await t.run(async (ctx) => {
    const strip = ({ _id, _creationTime, ...rest }: Record<string, unknown>) => rest;
    return {
      boards: (await ctx.db.query("board_summaries").collect()).map(strip),
      feedback: (await ctx.db.query("feedback_items").collect()).map(strip),
      cursors: (await ctx.db.query("projection_cursors").collect()).map(strip),
    };
  });
}

async function boardTitle(t: T, board_id: string) {
  return await t.run(async (ctx) => {
    const row = await ctx.db
      .query("board_summaries")
      .withIndex("by_doc_id", (q) => q.eq("doc_id", board_id))
      .unique();
    return row?.body.title ?? null;
  });
}

const cursor = (t: T, projection = "board_summary", partition = 0) =>
  t.query(internal.mirror.cursor, { projection, partition });

describe("applyBatch", () => {
  test("applies a batch, moves the cursor to its last offset and says how many changes it applied", async () => {
    const t = setup();
    expect(await cursor(t)).toBe(0);
    const result = await t.mutation(
      internal.mirror.applyBatch,
      batch(0, [
        { offset: 1, doc_id: "b1", body: boardBody("b1") },
        { offset: 2, doc_id: "b2", body: boardBody("b2") },
        { offset: 2, doc_id: "b1", body: boardBody("b1", { title: "Renamed", version: 2 }) },
      ]),
    );
    expect(result).toEqual({ cursor: 2, applied: 3 });
    expect(await cursor(t)).toBe(2);
    expect(await boardTitle(t, "b1")).toBe("Renamed");
    expect(await boardTitle(t, "b2")).toBe("Board b2");
    expect((await snapshot(t)).boards).toHaveLength(2);
  });

  test("is idempotent: the same batch twice applies nothing the second time", async () => {
    const t = setup();
    const same = batch(0, [
      { offset: 1, doc_id: "b1", body: boardBody("b1") },
      { offset: 2, doc_id: "b1", body: boardBody("b1", { title: "Second", version: 2 }) },
    ]);
    expect(await t.mutation(internal.mirror.applyBatch, same)).toEqual({ cursor: 2, applied: 2 });
    const before = await snapshot(t);
    expect(await t.mutation(internal.mirror.applyBatch, same)).toEqual({ cursor: 2, applied: 0 });
    expect(await snapshot(t)).toEqual(before);
  });

  test("refuses a gap, naming the position it expects, and writes nothing", async () => {
    const t = setup();
    expect(await convexErrorData(t.mutation(internal.mirror.applyBatch, batch(5, [
      { offset: 6, doc_id: "b1", body: boardBody("b1") },
    ])))).toEqual({ code: "gap", expected: 0, got: 5 });
    expect(await snapshot(t)).toEqual({ boards: [], feedback: [], cursors: [] });

    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 3, doc_id: "b1", body: boardBody("b1") }]));
    const before = await snapshot(t);
    expect(await convexErrorData(t.mutation(internal.mirror.applyBatch, batch(7, [
      { offset: 8, doc_id: "b2", body: boardBody("b2") },
    ])))).toEqual({ code: "gap", expected: 3, got: 7 });
    expect(await snapshot(t)).toEqual(before);

    // Resending from the expected position is accepted.
    expect(await t.mutation(internal.mirror.applyBatch, batch(3, [
      { offset: 8, doc_id: "b2", body: boardBody("b2") },
    ]))).toEqual({ cursor: 8, applied: 1 });
  });

  test("applies only the new part of a batch that overlaps what was applied", async () => {
    const t = setup();
    await t.mutation(internal.mirror.applyBatch, batch(0, [
      { offset: 1, doc_id: "b1", body: boardBody("b1", { title: "one" }) },
      { offset: 2, doc_id: "b2", body: boardBody("b2", { title: "two" }) },
      { offset: 2, doc_id: "b3", body: boardBody("b3", { title: "two too" }) },
    ]));
    // A retry from an older position carrying different bodies for offsets 1–2 shows
    // which changes are applied: only those past the cursor.
    const result = await t.mutation(internal.mirror.applyBatch, batch(0, [
      { offset: 1, doc_id: "b1", body: boardBody("b1", { title: "stale" }) },
      { offset: 2, doc_id: "b2", body: boardBody("b2", { title: "stale" }) },
      { offset: 2, doc_id: "b3", body: boardBody("b3", { title: "stale" }) },
      { offset: 3, doc_id: "b2", body: boardBody("b2", { title: "three" }) },
      { offset: 4, doc_id: "b4", body: boardBody("b4", { title: "four" }) },
    ]));
    expect(result).toEqual({ cursor: 4, applied: 2 });
    expect(await boardTitle(t, "b1")).toBe("one");
    expect(await boardTitle(t, "b2")).toBe("three");
    expect(await boardTitle(t, "b3")).toBe("two too");
    expect(await boardTitle(t, "b4")).toBe("four");
  });

  test("keeps the cursor when every change was already applied, and takes an empty batch", async () => {
    const t = setup();
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 5, doc_id: "b1", body: boardBody("b1") }]));
    expect(await t.mutation(internal.mirror.applyBatch, batch(2, [
      { offset: 3, doc_id: "b1", body: boardBody("b1", { title: "old" }) },
    ]))).toEqual({ cursor: 5, applied: 0 });
    expect(await t.mutation(internal.mirror.applyBatch, batch(5, []))).toEqual({ cursor: 5, applied: 0 });
    expect(await cursor(t)).toBe(5);
    expect(await boardTitle(t, "b1")).toBe("Board b1");
  });

  test("moves the cursor to `through` when the batch says how far it covers the stream", async () => {
    const t = setup();
    // Offsets 4 and 5 touched no document: the cursor still covers them.
    expect(await t.mutation(internal.mirror.applyBatch, {
      ...batch(0, [{ offset: 3, doc_id: "b1", body: boardBody("b1") }]),
      through: 5,
    })).toEqual({ cursor: 5, applied: 1 });
    expect(await t.mutation(internal.mirror.applyBatch, { ...batch(5, []), through: 9 })).toEqual({ cursor: 9, applied: 0 });
    // A resend of an older range does not move it back.
    expect(await t.mutation(internal.mirror.applyBatch, { ...batch(0, []), through: 5 })).toEqual({ cursor: 9, applied: 0 });
    expect(await cursor(t)).toBe(9);
  });

  test("rolls the whole batch back when a change fails half way", async () => {
    const t = setup();
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 1, doc_id: "b1", body: boardBody("b1") }]));
    const before = await snapshot(t);

    // The second change's body breaks the schema: the first change and the cursor must not stay.
    const error = await rejection(t.mutation(internal.mirror.applyBatch, batch(1, [
      { offset: 2, doc_id: "b1", body: boardBody("b1", { title: "would be lost" }) },
      { offset: 2, doc_id: "b2", body: boardBody("b2") },
      { offset: 3, doc_id: "b3", body: { ...boardBody("b3"), columns: "not a list" } },
    ])));
    expect(error.message).toMatch(/does not match the schema|Validator error/i);
    expect(await snapshot(t)).toEqual(before);

    // The same with an error the mutation raises itself, on the feedback projection.
    const data = await convexErrorData(t.mutation(internal.mirror.applyBatch, batch(0, [
      { offset: 1, doc_id: "f1", body: feedbackBody("f1") },
      { offset: 2, doc_id: "f2", body: feedbackBody("f2", { submitted_at: "yesterday" }) },
    ], "feedback_inbox")));
    expect(data.code).toBe("bad_batch");
    expect(await snapshot(t)).toEqual(before);
  });

  test("deletes a document for a null body, and a delete of a missing document is harmless", async () => {
    const t = setup();
    await t.mutation(internal.mirror.applyBatch, batch(0, [
      { offset: 1, doc_id: "f1", body: feedbackBody("f1") },
      { offset: 1, doc_id: "f2", body: feedbackBody("f2") },
    ], "feedback_inbox"));
    expect(await t.mutation(internal.mirror.applyBatch, batch(1, [
      { offset: 2, doc_id: "f1", body: null },
      { offset: 3, doc_id: "never-existed", body: null },
    ], "feedback_inbox"))).toEqual({ cursor: 3, applied: 2 });
    const { feedback } = await snapshot(t);
    expect(feedback.map((row) => row.doc_id)).toEqual(["f2"]);

    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 1, doc_id: "b1", body: boardBody("b1") }]));
    await t.mutation(internal.mirror.applyBatch, batch(1, [{ offset: 2, doc_id: "b1", body: null }]));
    expect((await snapshot(t)).boards).toEqual([]);
  });

  test("stores feedback flattened, with submitted_at in milliseconds for ordering", async () => {
    const t = setup();
    const body = feedbackBody("f1", {
      status: "triaged",
      card: { board_id: "triage", card_id: "c9" },
      labels: ["ux"],
      submitted_at: "2026-11-29T10:00:00.250+01:00",
    });
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 1, doc_id: "f1", body }], "feedback_inbox"));
    const { feedback } = await snapshot(t);
    expect(feedback).toEqual([{ ...body, doc_id: "f1", submitted_at_ms: Date.UTC(2026, 10, 29, 9, 0, 0, 250) }]);
  });

  test("keeps one cursor per projection and partition", async () => {
    const t = setup();
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 4, doc_id: "b1", body: boardBody("b1") }], "board_summary", 0));
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 9, doc_id: "b2", body: boardBody("b2") }], "board_summary", 3));
    await t.mutation(internal.mirror.applyBatch, batch(0, [{ offset: 2, doc_id: "f1", body: feedbackBody("f1") }], "feedback_inbox", 0));
    expect(await cursor(t, "board_summary", 0)).toBe(4);
    expect(await cursor(t, "board_summary", 3)).toBe(9);
    expect(await cursor(t, "board_summary", 1)).toBe(0);
    expect(await cursor(t, "feedback_inbox", 0)).toBe(2);
  });
});

describe("applyBatch refuses what it does not understand, and writes nothing", () => {
  const good = () => batch(0, [{ offset: 1, doc_id: "b1", body: boardBody("b1") }]);

  test.each([
    ["a missing field", (() => { const { changes, ...rest } = good(); return rest; })()],
    ["a string offset", { ...good(), after: "0" }],
    ["an unknown field", { ...good(), extra: true }],
    ["a change without doc_id", { ...good(), changes: [{ offset: 1, body: null }] }],
    ["a change with a numeric doc_id", { ...good(), changes: [{ offset: 1, doc_id: 7, body: null }] }],
  ])("argument validation: %s", async (_name, args) => {
    const t = setup();
    const error = await rejection(t.mutation(internal.mirror.applyBatch, args as never));
    expect(error).not.toBeInstanceOf(ConvexError);
    expect(error.message).toMatch(/ArgumentValidationError|Validator error/);
    expect(await snapshot(t)).toEqual({ boards: [], feedback: [], cursors: [] });
  });

  test.each([
    ["an unknown projection", { ...good(), projection: "nope" }, { code: "unknown_projection", projection: "nope" }],
    ["a negative after", { ...good(), after: -1 }, { code: "bad_batch" }],
    ["a fractional partition", { ...good(), partition: 0.5 }, { code: "bad_batch" }],
    ["an offset at after", batch(3, [{ offset: 3, doc_id: "b1", body: null }]), { code: "bad_batch" }],
    ["offsets out of order", batch(0, [
      { offset: 2, doc_id: "b1", body: null },
      { offset: 1, doc_id: "b2", body: null },
    ]), { code: "bad_batch" }],
    ["too many changes", batch(0, Array.from({ length: 1001 }, (_, i) => ({ offset: i + 1, doc_id: `b${i}`, body: null }))), { code: "bad_batch" }],
    ["through below the last change", { ...batch(0, [{ offset: 4, doc_id: "b1", body: null }]), through: 3 }, { code: "bad_batch" }],
    ["through below after", { ...batch(5, []), through: 4 }, { code: "bad_batch" }],
    ["a body that is not an object", batch(0, [{ offset: 1, doc_id: "f1", body: "text" }], "feedback_inbox"), { code: "bad_batch" }],
  ])("ConvexError: %s", async (_name, args, expected) => {
    const t = setup();
    expect(await convexErrorData(t.mutation(internal.mirror.applyBatch, args as never))).toMatchObject(expected);
    expect(await snapshot(t)).toEqual({ boards: [], feedback: [], cursors: [] });
  });

  test("the cursor query refuses an unknown projection too", async () => {
    const t = setup();
    expect(await convexErrorData(t.query(internal.mirror.cursor, { projection: "nope", partition: 0 })))
      .toEqual({ code: "unknown_projection", projection: "nope" });
  });
});
