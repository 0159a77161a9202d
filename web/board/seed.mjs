// Seeds the demo board and a little feedback, idempotently: fixed ids, and one batch per
// aggregate under a fixed Idempotency-Key, so running it again changes nothing (the
// server answers the first run's result). scripts/dev runs it once the Worker is up.
//
//   node web/board/seed.mjs URL TOKEN      (a token with the `commands` scope)
//
// Prints the demo board's id on stdout; progress and problems go to stderr.

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write("usage: node web/board/seed.mjs URL TOKEN\n");
  process.exit(2);
}

/** The demo board's id. */
const BOARD = "demo";

const board = [
  { type: "CreateBoard", data: { title: "Edgeloop demo", columns: ["Inbox", "Todo", "Doing", "Done"] } },
  { type: "SetWipLimit", data: { column: "Doing", limit: 2 } },
  { type: "AddCard", data: { card_id: "welcome", title: "Open this page in a second window: changes show in both", column: "Inbox" } },
  { type: "AddCard", data: { card_id: "drag", title: "Drag me to another column (or focus me and press Alt+→)", column: "Todo", labels: ["try-me"] } },
  { type: "AddCard", data: { card_id: "wip", title: "Doing has a WIP limit of 2: try moving a third card in", column: "Doing" } },
  { type: "AddCard", data: { card_id: "slow-login", title: "Login takes 30 s on mobile", column: "Inbox", labels: ["perf"] } },
  { type: "AddCard", data: { card_id: "timeline", title: "Drag the timeline slider to see the board in the past", column: "Todo" } },
  { type: "MoveCard", data: { card_id: "timeline", to_column: "Doing" } },
  { type: "CommentOnCard", data: { card_id: "welcome", author: "edgeloop", text: "Comments live in the board's event log." } },
  { type: "AddCard", data: { card_id: "shipped", title: "Event-sourced board on Durable Objects", column: "Done" } },
];

const feedback = {
  "demo-slow-login": [
    { type: "SubmitFeedback", data: { text: "Logging in takes 30 seconds on my phone", source: "web", severity: "high" } },
    { type: "TriageFeedback", data: { board_id: BOARD, card_id: "slow-login", labels: ["perf"] } },
  ],
  "demo-dark-mode": [{ type: "SubmitFeedback", data: { text: "Please add a dark mode", source: "email", severity: "low" } }],
};

/** Runs `commands` on one aggregate as one all-or-nothing batch with a fixed key. */
async function seed(type, id, commands) {
  const response = await fetch(`${url}/v1/aggregates/${type}/${id}/batch`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      "idempotency-key": `seed-v1-${type}-${id}`,
    },
    body: JSON.stringify({ commands, expected_version: "none" }),
  });
  if (response.ok) return response.headers.get("idempotent-replayed") === "true" ? "already seeded" : "seeded";
  const body = await response.json().catch(() => ({}));
  // The aggregate exists but its key was forgotten (or it was made by hand): leave it be.
  if (response.status === 409 && body?.error?.code === "version_conflict") return "exists, left as it is";
  throw new Error(`${type}/${id}: ${response.status} ${JSON.stringify(body)}`);
}

try {
  process.stderr.write(`demo board: ${await seed("board", BOARD, board)}\n`);
  for (const [id, commands] of Object.entries(feedback)) {
    process.stderr.write(`feedback ${id}: ${await seed("feedback", id, commands)}\n`);
  }
  process.stdout.write(`${BOARD}\n`);
} catch (error) {
  process.stderr.write(`seeding failed: ${error.message}\n`);
  process.exit(1);
}
