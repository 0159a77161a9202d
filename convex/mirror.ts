// The receiving end of Edgeloop's Convex mirror.
//
// The Worker's projector folds events into read-model documents and, when `CONVEX_URL` and
// `CONVEX_DEPLOY_KEY` are set, sends every applied batch here:
//
//   POST {CONVEX_URL}/api/mutation
//   Authorization: Convex <deploy key>
//   {"path":"mirror:applyBatch","args":{projection, version, partition, after, through?, changes},"format":"json"}
//
// A batch continues the projection's partition from offset `after` (and, when it says so,
// covers it through offset `through`, so events that touched no document move the cursor
// too). This mutation keeps its own cursor per (projection, partition) in
// `projection_cursors`, so the mirror is exactly-once however often the Worker retries:
// * a batch that starts past the cursor would leave a hole: it is refused, with the
//   position the mirror expects (`ConvexError {code: "gap", expected, got}`), and the Worker
//   resends from `expected` (or reads it with `mirror:cursor`);
// * changes at or below the cursor were applied before: they are skipped;
// * everything (documents and cursor) is written in the one transaction Convex gives a
//   mutation, so a batch that fails half way leaves nothing behind.
//
// Errors the Worker sees, as `{"status":"error","errorMessage":…,"errorData":…}`:
// * `{code: "gap", expected, got}`: resend from `expected`;
// * `{code: "unknown_projection", projection}`, `{code: "bad_batch", message}`:
//   the Worker sent something this deployment does not understand (an older deployment,
//   or a bug) — retrying the same batch cannot help;
// * no `errorData`: argument validation, or a document that does not match the schema
//   (see schema.ts) — also a contract mismatch, and the batch was not applied.
import { ConvexError, v } from "convex/values";
import { internalMutation, internalQuery, type MutationCtx, type QueryCtx } from "./_generated/server";

/**
 * The most changes one batch may carry. Convex caps a transaction at 16,000 documents written
 * and 16 MiB read or written; one change writes at most one document, so this leaves room
 * for documents of up to ~16 KiB on average. The Worker splits larger batches.
 */
export const MAX_CHANGES = 1000;

/** One change to a read-model document; `body: null` deletes the document. */
export const change = v.object({
  offset: v.number(),
  doc_id: v.string(),
  body: v.union(v.any(), v.null()),
});

export const batchArgs = {
  /** `"board_summary"` or `"feedback_inbox"`. */
  projection: v.string(),
  /** The projection's version (a rebuild runs under a new one). */
  version: v.number(),
  /** The global-stream partition the batch comes from. */
  partition: v.number(),
  /** The offset this batch continues from: every change's offset is greater. */
  after: v.number(),
  /**
   * Optional: the offset the batch covers the stream through (at least every change's
   * offset). Events that touched no document still move the cursor this way; without it,
   * the cursor moves to the last change's offset.
   */
  through: v.optional(v.number()),
  /** In offset order; several changes may share an offset (one event, several documents). */
  changes: v.array(change),
};

/** Where each projection's documents live, and how a body becomes a document. */
const projections = {
  board_summary: {
    async put(ctx: MutationCtx, doc_id: string, body: unknown) {
      const existing = await ctx.db
        .query("board_summaries")
        .withIndex("by_doc_id", (q) => q.eq("doc_id", doc_id))
        .unique();
      // The schema validates `body`; a mismatch throws and rolls the batch back.
      const document = { doc_id, body: body as never };
      if (existing) await ctx.db.replace(existing._id, document);
      else await ctx.db.insert("board_summaries", document);
    },
    async remove(ctx: MutationCtx, doc_id: string) {
      const existing = await ctx.db
        .query("board_summaries")
        .withIndex("by_doc_id", (q) => q.eq("doc_id", doc_id))
        .unique();
      if (existing) await ctx.db.delete(existing._id);
    },
  },
  feedback_inbox: {
    async put(ctx: MutationCtx, doc_id: string, body: unknown) {
      const fields = asObject(body, doc_id);
      const submitted_at_ms = Date.parse(String(fields.submitted_at));
      if (!Number.isFinite(submitted_at_ms)) {
        throw new ConvexError({
          code: "bad_batch",
          message: `feedback ${doc_id}: submitted_at is not an RFC 3339 time`,
        });
      }
      const existing = await ctx.db
        .query("feedback_items")
        .withIndex("by_doc_id", (q) => q.eq("doc_id", doc_id))
        .unique();
      // The schema validates the fields; a mismatch throws and rolls the batch back.
      const document = { ...fields, doc_id, submitted_at_ms } as never;
      if (existing) await ctx.db.replace(existing._id, document);
      else await ctx.db.insert("feedback_items", document);
    },
    async remove(ctx: MutationCtx, doc_id: string) {
      const existing = await ctx.db
        .query("feedback_items")
        .withIndex("by_doc_id", (q) => q.eq("doc_id", doc_id))
        .unique();
      if (existing) await ctx.db.delete(existing._id);
    },
  },
} as const;

type ProjectionName = keyof typeof projections;

function projectionNamed(name: string): (typeof projections)[ProjectionName] {
  if (!Object.prototype.hasOwnProperty.call(projections, name)) {
    throw new ConvexError({ code: "unknown_projection", projection: name });
  }
  return projections[name as ProjectionName];
}

function asObject(body: unknown, doc_id: string): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ConvexError({ code: "bad_batch", message: `${doc_id}: a body is an object or null` });
  }
  return body as Record<string, unknown>;
}

/** Offsets, partitions and versions are non-negative integers (JSON numbers, so at most 2^53). */
function position(name: string, value: number) {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ConvexError({ code: "bad_batch", message: `${name} must be a non-negative integer, got ${value}` });
  }
}

async function cursorRow(ctx: QueryCtx, projection: string, partition: number) {
  return await ctx.db
    .query("projection_cursors")
    .withIndex("by_projection_partition", (q) => q.eq("projection", projection).eq("partition", partition))
    .unique();
}

/**
 * Applies one batch of read-model changes, exactly once. Returns the cursor after the batch
 * (`through`, or the last change's offset, or the cursor it had if that is further) and how
 * many changes were applied (those at or below the previous cursor are not).
 */
export const applyBatch = internalMutation({
  args: batchArgs,
  returns: v.object({ cursor: v.number(), applied: v.number() }),
  handler: async (ctx, { projection, version, partition, after, through, changes }) => {
    const target = projectionNamed(projection);
    position("version", version);
    position("partition", partition);
    position("after", after);
    if (changes.length > MAX_CHANGES) {
      throw new ConvexError({
        code: "bad_batch",
        message: `at most ${MAX_CHANGES} changes per batch, got ${changes.length}`,
      });
    }
    let previous = after;
    for (const { offset } of changes) {
      position("offset", offset);
      if (offset <= after || offset < previous) {
        throw new ConvexError({
          code: "bad_batch",
          message: `change offsets must be above after (${after}) and in order, got ${offset} after ${previous}`,
        });
      }
      previous = offset;
    }
    if (through !== undefined) {
      position("through", through);
      if (through < previous) {
        throw new ConvexError({
          code: "bad_batch",
          message: `through (${through}) is below the batch's last offset (${previous})`,
        });
      }
    }

    const row = await cursorRow(ctx, projection, partition);
    const cursor = row?.offset ?? 0;
    if (after > cursor) {
      // Nothing is written: the caller resends from `expected`.
      throw new ConvexError({ code: "gap", expected: cursor, got: after });
    }

    let applied = 0;
    for (const { offset, doc_id, body } of changes) {
      if (offset <= cursor) continue; // applied by an earlier delivery of this range
      if (body === null) await target.remove(ctx, doc_id);
      else await target.put(ctx, doc_id, body);
      applied += 1;
    }

    const last = through ?? (changes.length > 0 ? changes[changes.length - 1].offset : cursor);
    const next = Math.max(cursor, last);
    if (next !== cursor) {
      if (row) await ctx.db.patch(row._id, { offset: next });
      else await ctx.db.insert("projection_cursors", { projection, partition, offset: next });
    }
    return { cursor: next, applied };
  },
});

/** The offset the mirror has applied up to for (projection, partition); 0 before the first batch. */
export const cursor = internalQuery({
  args: { projection: v.string(), partition: v.number() },
  returns: v.number(),
  handler: async (ctx, { projection, partition }) => {
    projectionNamed(projection);
    return (await cursorRow(ctx, projection, partition))?.offset ?? 0;
  },
});
