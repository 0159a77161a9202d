import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Edgeloop, type EdgeloopError, type Envelope, type SubscriptionStatus } from "../src/index.ts";
import type { BoardEvent } from "../src/domain.ts";
import { FakeServer } from "./fake-server.ts";

let server: FakeServer;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  server = new FakeServer();
});
afterEach(() => {
  vi.useRealTimers();
});

function client(extra: Partial<ConstructorParameters<typeof Edgeloop>[0]> = {}) {
  return new Edgeloop({
    baseUrl: "https://edge.test",
    token: "t1",
    fetch: (() => Promise.reject(new Error("no HTTP in these tests"))) as never,
    WebSocket: server.WebSocket,
    random: () => 0.5,
    ...extra,
  });
}

/** Records what a subscription hands over. */
function recorder() {
  const seqs: number[] = [];
  const statuses: SubscriptionStatus[] = [];
  const caughtUp: number[] = [];
  const errors: EdgeloopError[] = [];
  return {
    seqs,
    statuses,
    caughtUp,
    errors,
    onEvent: (event: Envelope<BoardEvent>) => {
      seqs.push(event.seq);
    },
    onCaughtUp: ({ version }: { version: number }) => {
      caughtUp.push(version);
    },
    onStatus: (status: SubscriptionStatus) => {
      statuses.push(status);
    },
    onError: (error: EdgeloopError) => {
      errors.push(error);
    },
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const tick = (ms = 10) => vi.advanceTimersByTimeAsync(ms);

describe("aggregate subscriptions", () => {
  it("replays, catches up, then goes live, authenticating with subprotocols", async () => {
    for (let i = 0; i < 3; i++) server.append("board", "b1", "CardAdded");
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    expect(sub.status).toBe("connecting");
    await tick();
    expect(r.seqs).toEqual([1, 2, 3]);
    expect(r.caughtUp).toEqual([3]);
    expect(sub.status).toBe("live");
    server.append("board", "b1", "CardMoved");
    await tick();
    expect(r.seqs).toEqual([1, 2, 3, 4]);
    const [opened] = server.opened;
    expect(opened?.url.href).toBe("wss://edge.test/v1/aggregates/board/b1/ws?after=0");
    expect(opened?.protocols).toEqual(["edgeloop.v1", "bearer.t1"]);
    expect(r.statuses).toEqual(["connecting", "live"]);
    expect(sub.cursor).toBe(4);
  });

  it("resumes across a dropped socket with events written meanwhile: no gap, no duplicate", async () => {
    for (let i = 0; i < 5; i++) server.append("board", "b1", "CardAdded");
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    expect(r.seqs).toEqual(range(1, 5));

    server.dropAll();
    await tick();
    expect(sub.status).toBe("reconnecting");
    // Written while the subscriber is away.
    for (let i = 0; i < 4; i++) server.append("board", "b1", "CardMoved");
    // A sloppy server repeats what was already delivered; the client must drop it.
    server.replayOverlap = 3;
    await tick(2_000); // the backoff (≤ 1 s for the first retry) and the upgrade
    server.append("board", "b1", "CardEdited");
    await tick();

    expect(r.seqs).toEqual(range(1, 10));
    expect(server.opened.map((o) => o.after)).toEqual([0, 5]);
    expect(r.caughtUp).toEqual([5, 9]);
    expect(r.statuses).toEqual(["connecting", "live", "reconnecting", "live"]);
    expect(sub.cursor).toBe(10);
  });

  it("acknowledges within the server's window so a long catch-up completes", async () => {
    server.window = 10;
    for (let i = 0; i < 95; i++) server.append("board", "b1", "CardAdded");
    const r = recorder();
    client().subscribeAggregate("board", "b1", { ...r, ackEvery: 5, ackIntervalMs: 20 });
    await tick(2_000);
    expect(r.seqs).toEqual(range(1, 95));
    expect(r.caughtUp).toEqual([95]);
    const acks = server.sockets[0]?.acks ?? [];
    expect(acks.at(-1)).toBe(95);
    // Acks only grow, never pass what was delivered, and stay paced.
    expect(acks).toEqual([...acks].sort((a, b) => a - b));
    expect(acks.length).toBeLessThanOrEqual(95 / 5 + 2);
    expect(server.sockets).toHaveLength(1);
  });

  it("paces acks under a flood of live events, far below the server's 200 frames/s", async () => {
    const r = recorder();
    client().subscribeAggregate("board", "b1", r);
    await tick();
    for (let ms = 0; ms < 1_000; ms++) {
      server.append("board", "b1", "CardAdded");
      await tick(1);
    }
    await tick(100);
    expect(r.seqs).toEqual(range(1, 1_000));
    const acks = server.sockets[0]?.acks ?? [];
    expect(acks.at(-1)).toBe(1_000);
    expect(acks.length).toBeLessThanOrEqual(22); // one per 50 ms, plus the first and the last
  });

  it("skips frames of kinds it does not know, and stops on a frame that is not JSON", async () => {
    server.append("board", "b1", "BoardCreated");
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    server.sockets[0]?.push('{"kind":"position_hint","x":1}');
    server.append("board", "b1", "CardAdded");
    await tick();
    expect([r.seqs, sub.status]).toEqual([[1, 2], "live"]);
    server.sockets[0]?.push("<html>");
    await tick();
    expect(sub.status).toBe("closed");
    expect(r.errors[0]?.kind).toBe("decode");
  });

  it("acks only what an async handler has finished", async () => {
    for (let i = 0; i < 3; i++) server.append("board", "b1", "CardAdded");
    const finished: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    client().subscribeAggregate("board", "b1", {
      onEvent: async (event) => {
        if (event.seq === 2) await gate;
        finished.push(event.seq);
      },
    });
    await tick(500);
    expect(finished).toEqual([1]);
    expect(Math.max(0, ...(server.sockets[0]?.acks ?? []))).toBe(1);
    release();
    await tick(500);
    expect(finished).toEqual([1, 2, 3]);
    expect(server.sockets[0]?.acks.at(-1)).toBe(3);
  });

  it("resumes at once after a 4008 slow_consumer close, losing nothing", async () => {
    server.window = 3;
    const r = recorder();
    let release: () => void = () => undefined;
    let gate: Promise<void> | undefined = new Promise<void>((resolve) => (release = resolve));
    client().subscribeAggregate("board", "b1", {
      ...r,
      onEvent: async (event) => {
        if (gate !== undefined) await gate; // slow: nothing is acknowledged meanwhile
        r.seqs.push(event.seq);
      },
    });
    await tick();
    for (let i = 0; i < 6; i++) server.append("board", "b1", "CardAdded"); // the 4th passes the window
    await tick();
    expect(server.sockets[0]?.readyState).toBe(3);
    gate = undefined;
    release();
    await tick(100);
    server.append("board", "b1", "CardMoved");
    await tick(100);
    expect(r.seqs).toEqual(range(1, 7));
    expect(server.opened.map((o) => o.after)).toEqual([0, 3]);
    expect(r.errors).toEqual([]);
  });

  it("refreshes the token after a 4001 and reconnects with it", async () => {
    server.append("board", "b1", "BoardCreated");
    const refreshToken = vi.fn(async () => {
      server.validTokens = new Set(["t2"]);
      return "t2";
    });
    const r = recorder();
    client({ refreshToken }).subscribeAggregate("board", "b1", r);
    await tick();
    server.closeAll(4001, "token_expired");
    server.append("board", "b1", "CardAdded");
    await tick();
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(server.opened.map((o) => o.token)).toEqual(["t1", "t2"]);
    expect(r.seqs).toEqual([1, 2]);
    expect(r.errors).toEqual([]);
  });

  it("stops with a typed error after a 4001 when no fresh token can be had", async () => {
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    server.closeAll(4001, "token_expired", "the token has expired");
    await tick(60_000);
    expect(sub.status).toBe("closed");
    expect(r.errors).toHaveLength(1);
    expect([r.errors[0]?.kind, r.errors[0]?.code, r.errors[0]?.closeCode]).toEqual(["closed", "token_expired", 4001]);
    expect(server.opened).toHaveLength(1);
  });

  it("refreshes an expired JWT before reconnecting (the upgrade would be refused unseen)", async () => {
    const jwt = (exp: number) => `h.${btoa(JSON.stringify({ exp })).replace(/=+$/, "")}.s`;
    const now = Math.floor(Date.now() / 1000);
    const first = jwt(now + 60);
    const second = jwt(now + 3600);
    server.validTokens = new Set([first, second]);
    const refreshToken = vi.fn(async () => second);
    client({ token: first, refreshToken }).subscribeAggregate("board", "b1", recorder());
    await tick();
    vi.setSystemTime(Date.now() + 120_000); // the first token expires while connected …
    server.dropAll(); // … and the network drops
    await tick(2_000);
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(server.opened.map((o) => o.token)).toEqual([first, second]);
  });

  it("keeps trying while the token function fails, and resumes once it gives a token", async () => {
    server.append("board", "b1", "BoardCreated");
    let signedIn = false;
    const statuses: [SubscriptionStatus, string | undefined][] = [];
    const r = recorder();
    const sub = client({
      token: () => (signedIn ? "t1" : Promise.reject(new Error("signed out"))),
    }).subscribeAggregate("board", "b1", { ...r, onStatus: (status, detail) => void statuses.push([status, detail.error?.kind]) });
    await tick(5_000);
    expect(server.opened).toHaveLength(0);
    expect(statuses.at(-1)).toEqual(["reconnecting", "invalid_argument"]);
    signedIn = true;
    await tick(30_000);
    expect(sub.status).toBe("live");
    expect(r.seqs).toEqual([1]);
  });

  it("stops on 1008 without reconnecting", async () => {
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    server.closeAll(1008, "bad_request", "client frames are acks");
    await tick(60_000);
    expect(sub.status).toBe("closed");
    expect([r.errors[0]?.code, r.errors[0]?.closeCode]).toEqual(["bad_request", 1008]);
    expect(server.opened).toHaveLength(1);
  });

  it("backs off after a 4029 and resumes", async () => {
    server.append("board", "b1", "BoardCreated");
    const r = recorder();
    client().subscribeAggregate("board", "b1", r);
    await tick();
    server.closeAll(4029, "rate_limited");
    await tick(900);
    expect(server.opened).toHaveLength(1);
    await tick(200);
    expect(server.opened).toHaveLength(2);
    expect(server.opened[1]?.after).toBe(1);
  });

  it("stops on a normal close from the server", async () => {
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    server.closeAll(1000, "bye");
    await tick(60_000);
    expect(sub.status).toBe("closed");
    expect(r.errors).toEqual([]);
    expect(server.opened).toHaveLength(1);
  });

  it("close() stops for good: no reconnect, no more callbacks", async () => {
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", r);
    await tick();
    server.dropAll();
    await tick(); // now waiting to reconnect
    sub.close();
    server.append("board", "b1", "BoardCreated");
    await tick(120_000);
    expect(server.opened).toHaveLength(1);
    expect(r.seqs).toEqual([]);
    expect(sub.status).toBe("closed");

    // Closing while connected closes the socket and ignores what still arrives.
    const r2 = recorder();
    const sub2 = client().subscribeAggregate("board", "b1", r2);
    await tick();
    sub2.close();
    server.append("board", "b1", "CardAdded");
    await tick(60_000);
    expect(server.sockets.at(-1)?.clientClose).toBe(1000);
    expect(r2.seqs).toEqual([1]);
    expect(server.opened).toHaveLength(2);
  });

  it("backs off exponentially with full jitter while upgrades fail, capped, and resets once healthy", async () => {
    const delays: number[] = [];
    server.refuseUpgrades = true;
    const sub = client({ reconnect: { initialDelayMs: 100, maxDelayMs: 1_000, healthyAfterMs: 1_000 } }).subscribeAggregate(
      "board",
      "b1",
      {
        onEvent: () => undefined,
        onStatus: (status, detail) => {
          if (status === "reconnecting") delays.push(detail.delayMs ?? -1);
        },
      },
    );
    await tick(10_000);
    // random() is 0.5: half of 100, 200, 400, 800, then the 1,000 cap.
    expect(delays.slice(0, 6)).toEqual([50, 100, 200, 400, 500, 500]);
    server.refuseUpgrades = false;
    await tick(1_000);
    expect(sub.status).toBe("live");
    await tick(1_500); // healthy long enough
    delays.length = 0;
    server.dropAll();
    await tick();
    expect(delays).toEqual([50]);
  });

  it("ends a backoff wait at once when the browser comes back online", async () => {
    const window = new EventTarget();
    vi.stubGlobal("addEventListener", window.addEventListener.bind(window));
    vi.stubGlobal("removeEventListener", window.removeEventListener.bind(window));
    try {
      server.append("board", "b1", "BoardCreated");
      const r = recorder();
      const sub = client({ reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 } }).subscribeAggregate("board", "b1", r);
      await tick();
      server.dropAll();
      await tick(1_000); // the wait is 30 s
      expect(server.opened).toHaveLength(1);
      window.dispatchEvent(new Event("online"));
      await tick();
      expect(server.opened).toHaveLength(2);
      expect(sub.status).toBe("live");
      sub.close();
      window.dispatchEvent(new Event("online")); // a closed subscription stays closed
      await tick();
      expect(server.opened).toHaveLength(2);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("gives up after reconnect.maxAttempts failed connections", async () => {
    server.refuseUpgrades = true;
    const r = recorder();
    const sub = client({ reconnect: { maxAttempts: 3 } }).subscribeAggregate("board", "b1", r);
    await tick(120_000);
    expect(sub.status).toBe("closed");
    expect(server.opened).toHaveLength(3);
    expect([r.errors[0]?.kind, r.errors[0]?.attempts]).toEqual(["network", 3]);
  });

  it("stops, unacknowledged, when a handler throws; the cursor names what was processed", async () => {
    for (let i = 0; i < 3; i++) server.append("board", "b1", "CardAdded");
    const errors: EdgeloopError[] = [];
    const sub = client().subscribeAggregate("board", "b1", {
      onEvent: (event) => {
        if (event.seq === 2) throw new Error("render failed");
      },
      onError: (e) => errors.push(e),
    });
    await tick(500);
    expect(sub.status).toBe("closed");
    expect(sub.cursor).toBe(1);
    expect([errors[0]?.kind, errors[0]?.code]).toEqual(["handler", "handler_error"]);
    expect((errors[0]?.cause as Error).message).toBe("render failed");
    expect(Math.max(0, ...(server.sockets[0]?.acks ?? []))).toBeLessThan(2);
  });

  it("drops a connection that skips an event and resumes from the last one received", async () => {
    server.append("board", "b1", "BoardCreated");
    const r = recorder();
    client().subscribeAggregate("board", "b1", r);
    await tick();
    const socket = server.sockets[0];
    const skipped = { kind: "event", event: { seq: 3, type: "CardAdded", data: {} } };
    socket?.push(JSON.stringify(skipped)); // seq 2 never came
    server.append("board", "b1", "CardAdded"); // seq 2 …
    server.append("board", "b1", "CardAdded"); // … and 3, for real
    await tick(2_000);
    expect(r.seqs).toEqual([1, 2, 3]);
    expect(server.opened.map((o) => o.after)).toEqual([0, 1]);
  });

  it("refuses an after beyond the aggregate's log", async () => {
    server.append("board", "b1", "BoardCreated");
    const r = recorder();
    const sub = client().subscribeAggregate("board", "b1", { ...r, after: 5 });
    await tick();
    expect(sub.status).toBe("closed");
    expect(r.errors[0]?.kind).toBe("invalid_argument");
  });
});

describe("stream subscriptions", () => {
  it("follows a partition by offset and acks offsets", async () => {
    for (let seq = 1; seq <= 3; seq++) server.appendStream(2, "board", "b1", seq, "CardAdded");
    const offsets: number[] = [];
    const caught: number[] = [];
    client().subscribeStream(2, {
      after: 1,
      onEvent: (event) => {
        offsets.push(event.position.offset);
      },
      onCaughtUp: ({ position }) => {
        caught.push(position.offset);
      },
    });
    await tick(200);
    server.dropAll();
    server.appendStream(2, "feedback", "f1", 1, "FeedbackSubmitted");
    await tick(2_000);
    expect(offsets).toEqual([2, 3, 4]);
    expect(caught).toEqual([3, 4]);
    expect(server.opened.map((o) => o.url.search)).toEqual(["?partition=2&after=1", "?partition=2&after=3"]);
    expect(server.sockets[0]?.received.at(-1)).toBe('{"kind":"ack","offset":3}');
  });
});

describe("projection subscriptions", () => {
  it("gives the snapshot once, then changes, resuming by revision", async () => {
    server.changeDocument("board_summary", "b1", { title: "v1" });
    server.changeDocument("board_summary", "b1", { title: "v2" });
    const snapshots: unknown[] = [];
    const changes: [number, unknown][] = [];
    client().subscribeProjection("board_summary", "b1", {
      onSnapshot: (doc) => {
        snapshots.push(doc?.body);
      },
      onChange: (doc) => {
        changes.push([doc.revision, doc.body]);
      },
    });
    await tick(200);
    expect(snapshots).toEqual([{ title: "v2" }]);
    server.changeDocument("board_summary", "b1", { title: "v3" });
    await tick(200);
    server.dropAll();
    server.changeDocument("board_summary", "b1", { title: "v4" });
    server.changeDocument("board_summary", "b1", null); // deleted while away
    await tick(2_000);
    expect(changes).toEqual([
      [3, { title: "v3" }],
      [5, null],
    ]);
    expect(server.opened.map((o) => o.after)).toEqual([0, 3]);
    expect(snapshots).toHaveLength(1);
    expect(server.sockets[0]?.received).toContain('{"kind":"ack","revision":3}');
  });

  it("gives a null snapshot for a document that does not exist yet", async () => {
    const snapshots: unknown[] = [];
    client().subscribeProjection("feedback_inbox", "f9", { onSnapshot: (doc) => void snapshots.push(doc) });
    await tick(200);
    expect(snapshots).toEqual([null]);
  });
});
