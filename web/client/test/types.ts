/**
 * Compile-time checks of the public types, run by `tsc` (`npm test` runs it before
 * vitest): each `@ts-expect-error` line fails the build if it stops being an error.
 * Nothing here runs.
 */
import { Edgeloop, type Envelope, type EventOf } from "../src/index.ts";

declare const edgeloop: Edgeloop;

export async function commandsOfRegisteredTypesAreChecked(): Promise<void> {
  await edgeloop.command("board", "b", { type: "AddCard", data: { card_id: "c", title: "t" } });
  // @ts-expect-error AddCard needs a title
  await edgeloop.command("board", "b", { type: "AddCard", data: { card_id: "c" } });
  // @ts-expect-error a feedback command is not a board command
  await edgeloop.command("board", "b", { type: "SubmitFeedback", data: { text: "x", source: "web" } });
  // @ts-expect-error optional fields are absent, never null
  await edgeloop.command("board", "b", { type: "AddColumn", data: { name: "x", wip_limit: null } });
  await edgeloop.command("board", "b", { type: "SetWipLimit", data: { column: "Doing", limit: null } });
  // An aggregate type this library does not know takes any command.
  await edgeloop.command("ledger", "l", { type: "Post", data: { amount: 1 } });
}

export async function resultsAndEventsNarrow(): Promise<void> {
  const done = await edgeloop.command("feedback", "f", { type: "CloseFeedback", data: { reason: "dup" } });
  for (const event of done.events) {
    if (event.type === "FeedbackClosed") {
      const reason: string = event.data.reason;
      void reason;
    }
    // @ts-expect-error not a feedback event
    if (event.type === "CardAdded") void event;
  }
  const state = await edgeloop.state("board", "b", { atVersion: 3 });
  const archived: boolean | undefined = state.state.cards["c1"]?.archived;
  void archived;
  const summary = await edgeloop.document("board_summary", "b", { consistency: done.consistency_token });
  const full: boolean | undefined = summary.body.columns[0]?.full;
  void full;
}

export function subscriptionsAreTyped(): void {
  edgeloop.subscribeAggregate("board", "b", {
    onEvent: (event: Envelope<EventOf<"board">>) => {
      if (event.type === "CardMoved") {
        const to: string = event.data.to_column;
        void to;
      }
    },
  });
  edgeloop.subscribeProjection("feedback_inbox", "f1", {
    onChange: (doc) => {
      const status: "open" | "triaged" | "closed" | undefined = doc.body?.status;
      void status;
    },
  });
}
