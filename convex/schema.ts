// The read models Edgeloop mirrors into Convex, and the projector's cursor per partition.
//
// Storage shapes (the Worker's projector is the source of truth; these are copies):
// * `board_summaries` keeps the board summary whole, as `{ doc_id, body }`: it is read
//   and replaced as one unit, and `body` is exactly what the Worker serves at
//   `GET /v1/projections/board_summary/{board_id}`. The doc id of a board summary is
//   its `board_id`.
// * `feedback_items` is flattened (the body's fields at the top level, plus
//   `doc_id` and `submitted_at_ms`), because Convex clients filter and page it through
//   indexes on `status`, `severity` and the submission time.
// * `projection_cursors` holds, per (projection, partition), the offset of the last
//   change applied; `mirror:applyBatch` moves it forward, in the same transaction.
//
// The body validators are strict on purpose: a body that does not match the contract
// fails the whole batch (a function error the Worker sees), instead of a mirror that
// silently drifts from the Worker's read model.
import { defineSchema, defineTable } from "convex/server";
import { v, type Infer } from "convex/values";

export const boardCard = v.object({
  card_id: v.string(),
  title: v.string(),
  labels: v.array(v.string()),
  comments: v.number(),
});

export const boardColumn = v.object({
  name: v.string(),
  wip_limit: v.union(v.number(), v.null()),
  card_count: v.number(),
  full: v.boolean(),
  cards: v.array(boardCard),
});

/** The board summary read model, as the projector writes it. */
export const boardSummaryBody = v.object({
  board_id: v.string(),
  title: v.string(),
  version: v.number(),
  last_activity_at: v.string(),
  columns: v.array(boardColumn),
  archived_count: v.number(),
});
export type BoardSummary = Infer<typeof boardSummaryBody>;

export const feedbackStatus = v.union(
  v.literal("open"),
  v.literal("triaged"),
  v.literal("closed"),
);
export const feedbackSeverity = v.union(
  v.literal("low"),
  v.literal("medium"),
  v.literal("high"),
  v.literal("critical"),
);

/** The feedback inbox read model (one document per feedback), as the projector writes it. */
export const feedbackBody = v.object({
  feedback_id: v.string(),
  text: v.string(),
  source: v.string(),
  severity: feedbackSeverity,
  status: feedbackStatus,
  card: v.union(v.object({ board_id: v.string(), card_id: v.string() }), v.null()),
  labels: v.array(v.string()),
  closed_reason: v.union(v.string(), v.null()),
  submitted_at: v.string(),
  updated_at: v.string(),
  version: v.number(),
});
export type FeedbackItem = Infer<typeof feedbackBody>;

export default defineSchema({
  board_summaries: defineTable({
    doc_id: v.string(),
    body: boardSummaryBody,
  }).index("by_doc_id", ["doc_id"]),

  feedback_items: defineTable({
    doc_id: v.string(),
    ...feedbackBody.fields,
    /** `submitted_at` in milliseconds since the epoch: the inbox's sort key. */
    submitted_at_ms: v.number(),
  })
    .index("by_doc_id", ["doc_id"])
    .index("by_status", ["status", "submitted_at_ms"])
    .index("by_severity", ["severity", "submitted_at_ms"])
    .index("by_status_severity", ["status", "severity", "submitted_at_ms"])
    .index("by_submitted_at", ["submitted_at_ms"]),

  projection_cursors: defineTable({
    projection: v.string(),
    partition: v.number(),
    offset: v.number(),
  }).index("by_projection_partition", ["projection", "partition"]),
});
