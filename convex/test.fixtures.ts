// Read-model bodies for the tests, shaped as the Worker's projector writes them.
import type { BoardSummary, FeedbackItem } from "./schema";

export function boardBody(board_id: string, overrides: Partial<BoardSummary> = {}): BoardSummary {
  return {
    board_id,
    title: `Board ${board_id}`,
    version: 1,
    last_activity_at: "2026-11-29T10:00:00.000Z",
    columns: [
      {
        name: "Inbox",
        wip_limit: null,
        card_count: 1,
        full: false,
        cards: [{ card_id: "c1", title: "First card", labels: ["bug"], comments: 0 }],
      },
      { name: "Doing", wip_limit: 1, card_count: 0, full: false, cards: [] },
    ],
    archived_count: 0,
    ...overrides,
  };
}

export function feedbackBody(feedback_id: string, overrides: Partial<FeedbackItem> = {}): FeedbackItem {
  return {
    feedback_id,
    text: `Feedback ${feedback_id}`,
    source: "web",
    severity: "medium",
    status: "open",
    card: null,
    labels: [],
    closed_reason: null,
    submitted_at: "2026-11-29T10:00:00.000Z",
    updated_at: "2026-11-29T10:00:00.000Z",
    version: 1,
    ...overrides,
  };
}
