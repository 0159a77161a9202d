// Read models for Convex clients (`useQuery(api.readModels.boardSummary, …)`, or
// `ConvexHttpClient`). They answer with the same bodies the Worker serves at
// `GET /v1/projections/{name}/{doc_id}`, as of the last batch the mirror applied.
import { paginationOptsValidator, paginationResultValidator } from "convex/server";
import { v } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { query } from "./_generated/server";
import { boardSummaryBody, feedbackBody, feedbackSeverity, feedbackStatus, type FeedbackItem } from "./schema";

/** A board's summary by its id, or null when the mirror has none. */
export const boardSummary = query({
  args: { board_id: v.string() },
  returns: v.union(boardSummaryBody, v.null()),
  handler: async (ctx, { board_id }) => {
    const row = await ctx.db
      .query("board_summaries")
      .withIndex("by_doc_id", (q) => q.eq("doc_id", board_id))
      .unique();
    return row?.body ?? null;
  },
});

/**
 * The feedback inbox, newest submission first, optionally only one status and/or one
 * severity; paged with Convex's usual `paginationOpts` (`{numItems, cursor}`).
 */
export const feedbackInbox = query({
  args: {
    status: v.optional(feedbackStatus),
    severity: v.optional(feedbackSeverity),
    paginationOpts: paginationOptsValidator,
  },
  returns: paginationResultValidator(feedbackBody),
  handler: async (ctx, { status, severity, paginationOpts }) => {
    const items = ctx.db.query("feedback_items");
    // Every combination has an index ending in submitted_at_ms, so pages are full.
    const ordered =
      status !== undefined && severity !== undefined
        ? items.withIndex("by_status_severity", (q) => q.eq("status", status).eq("severity", severity))
        : status !== undefined
          ? items.withIndex("by_status", (q) => q.eq("status", status))
          : severity !== undefined
            ? items.withIndex("by_severity", (q) => q.eq("severity", severity))
            : items.withIndex("by_submitted_at");
    const result = await ordered.order("desc").paginate(paginationOpts);
    return { ...result, page: result.page.map(toBody) };
  },
});

/** The read model's own shape: without Convex's system fields and the mirror's sort key. */
function toBody(row: Doc<"feedback_items">): FeedbackItem {
  const { _id, _creationTime, doc_id, submitted_at_ms, ...body } = row;
  return body;
}
