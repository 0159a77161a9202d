import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Edgeloop, EdgeloopError } from "../src/index.ts";
import { envelope } from "./fake-server.ts";

/** One request as the fake fetch saw it. */
interface Seen {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
}

type Handler = (request: Seen, n: number) => Response | Promise<Response>;

/** A fetch that records requests and answers them with `handler`. */
function fakeFetch(handler: Handler) {
  const seen: Seen[] = [];
  const fetch = vi.fn(async (input: string | URL | Request, init?: RequestInit) => {
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    const request = { method: init?.method ?? "GET", url: new URL(String(input)), headers: new Headers(init?.headers), body };
    seen.push(request);
    return handler(request, seen.length);
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, seen };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function apiError(status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers = {}) {
  return json(status, { error: { code, message, ...extra } }, headers);
}

const result = (version: number, events: unknown[] = []) => ({
  aggregate_type: "board",
  aggregate_id: "b1",
  version,
  events,
  consistency_token: `board/b1@${version}`,
});

function client(fetch: typeof globalThis.fetch, extra: Partial<ConstructorParameters<typeof Edgeloop>[0]> = {}) {
  return new Edgeloop({ baseUrl: "http://edge.test/prefix/", token: "t1", fetch, random: () => 0.5, ...extra });
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("commands", () => {
  it("sends the documented body and headers and returns the result with its consistency token", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, result(2, [envelope("board", "b1", 2, "CardAdded", { card_id: "c1" })])));
    const done = await client(fetch).command(
      "board",
      "b1",
      { type: "AddCard", data: { card_id: "c1", title: "Ship it" } },
      { expectedVersion: 1, correlationId: "flow-1", causationId: "e0" },
    );
    const [request] = seen;
    expect(request?.method).toBe("POST");
    expect(request?.url.href).toBe("http://edge.test/prefix/v1/aggregates/board/b1/commands");
    expect(request?.body).toEqual({
      type: "AddCard",
      data: { card_id: "c1", title: "Ship it" },
      expected_version: 1,
      correlation_id: "flow-1",
      causation_id: "e0",
    });
    expect(request?.headers.get("authorization")).toBe("Bearer t1");
    expect(request?.headers.get("content-type")).toBe("application/json");
    expect(request?.headers.get("idempotency-key")).toMatch(/^[0-9a-f-]{36}$/);
    expect(done.version).toBe(2);
    expect(done.consistency_token).toBe("board/b1@2");
    expect(done.replayed).toBe(false);
    expect(done.idempotencyKey).toBe(request?.headers.get("idempotency-key"));
    const [event] = done.events;
    // The envelope is a discriminated union on `type`.
    if (event?.type === "CardAdded") expect(event.data.card_id).toBe("c1");
    else expect.fail("a CardAdded event");
  });

  it("gives every logical command its own key", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, result(1)));
    const edgeloop = client(fetch);
    await edgeloop.command("board", "b1", { type: "ArchiveCard", data: { card_id: "c1" } });
    await edgeloop.command("board", "b1", { type: "ArchiveCard", data: { card_id: "c1" } });
    expect(seen[0]?.headers.get("idempotency-key")).not.toBe(seen[1]?.headers.get("idempotency-key"));
  });

  it("retries a lost answer with the same key, so the server applies the command once", async () => {
    // A server that remembers keys, as the Worker does; the first answer never arrives.
    const applied = new Map<string, ReturnType<typeof result>>();
    let appends = 0;
    const { fetch, seen } = fakeFetch((request, n) => {
      const key = request.headers.get("idempotency-key") as string;
      const earlier = applied.get(key);
      if (earlier !== undefined) return json(200, earlier, { "idempotent-replayed": "true" });
      appends += 1;
      const answer = result(appends);
      applied.set(key, answer);
      if (n === 1) throw new TypeError("Failed to fetch"); // applied, answer lost
      return json(200, answer);
    });
    const pending = client(fetch).command("board", "b1", { type: "CreateBoard", data: { title: "Roadmap" } });
    await vi.runAllTimersAsync();
    const done = await pending;
    expect(seen).toHaveLength(2);
    expect(seen[1]?.headers.get("idempotency-key")).toBe(seen[0]?.headers.get("idempotency-key"));
    expect(seen[1]?.body).toEqual(seen[0]?.body);
    expect(appends).toBe(1);
    expect(done.replayed).toBe(true);
    expect(done.version).toBe(1);
  });

  it("retries 5xx and 429 with the same key and the caller's own key when given", async () => {
    const statuses = [500, 502, 429, 200];
    const { fetch, seen } = fakeFetch((_, n) =>
      statuses[n - 1] === 200 ? json(200, result(1)) : apiError(statuses[n - 1] as number, "overloaded", "busy"),
    );
    const pending = client(fetch, { retry: { maxAttempts: 5 } }).command(
      "board",
      "b1",
      { type: "CreateBoard", data: { title: "t" } },
      { idempotencyKey: "create-b1" },
    );
    await vi.runAllTimersAsync();
    await expect(pending).resolves.toMatchObject({ version: 1, idempotencyKey: "create-b1" });
    expect(seen.map((s) => s.headers.get("idempotency-key"))).toEqual(Array(4).fill("create-b1"));
  });

  it("does not retry a 4xx and types the error", async () => {
    const { fetch, seen } = fakeFetch(() =>
      apiError(422, "rejected", "column `Doing` is at its WIP limit of 2", { rule: "wip_limit_reached" }),
    );
    const error = await client(fetch)
      .command("board", "b1", { type: "MoveCard", data: { card_id: "c1", to_column: "Doing" } })
      .catch((e: unknown) => e);
    expect(seen).toHaveLength(1);
    expect(error).toBeInstanceOf(EdgeloopError);
    const e = error as EdgeloopError;
    expect([e.kind, e.status, e.code, e.rule, e.transient, e.attempts]).toEqual([
      "api",
      422,
      "rejected",
      "wip_limit_reached",
      false,
      1,
    ]);
    expect(e.message).toBe("column `Doing` is at its WIP limit of 2");
    expect(e.details).toEqual({ rule: "wip_limit_reached" });
  });

  it("reads a version conflict's details", async () => {
    const { fetch } = fakeFetch(() => apiError(409, "version_conflict", "expected 1, at 4", { expected: 1, actual: 4 }));
    const e = (await client(fetch)
      .command("board", "b1", { type: "ArchiveCard", data: { card_id: "c1" } }, { expectedVersion: 1 })
      .catch((x: unknown) => x)) as EdgeloopError;
    expect(e.versionConflict).toEqual({ expected: 1, actual: 4 });
    expect(e.rule).toBeUndefined();
  });

  it("honours Retry-After: no retry before it, one right after", async () => {
    const { fetch, seen } = fakeFetch((_, n) =>
      n === 1 ? apiError(503, "overloaded", "later", {}, { "retry-after": "3" }) : json(200, result(1)),
    );
    const pending = client(fetch).command("board", "b1", { type: "CreateBoard", data: { title: "t" } });
    await vi.advanceTimersByTimeAsync(2_900);
    expect(seen).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(seen).toHaveLength(2);
    await expect(pending).resolves.toMatchObject({ version: 1 });
  });

  it("gives up after maxAttempts with a network error naming the key", async () => {
    const { fetch, seen } = fakeFetch(() => {
      throw new TypeError("Failed to fetch");
    });
    const pending = client(fetch, { retry: { maxAttempts: 3 } })
      .command("board", "b1", { type: "CreateBoard", data: { title: "t" } }, { idempotencyKey: "k-1" })
      .catch((e: unknown) => e);
    await vi.runAllTimersAsync();
    const e = (await pending) as EdgeloopError;
    expect(seen).toHaveLength(3);
    expect([e.kind, e.code, e.status, e.attempts, e.idempotencyKey, e.transient]).toEqual([
      "network",
      "network_error",
      0,
      3,
      "k-1",
      true,
    ]);
  });

  it("gives up at once when Retry-After is beyond the time budget", async () => {
    const { fetch, seen } = fakeFetch(() => apiError(429, "rate_limited", "slow down", {}, { "retry-after": "120" }));
    const e = (await client(fetch)
      .command("board", "b1", { type: "CreateBoard", data: { title: "t" } })
      .catch((x: unknown) => x)) as EdgeloopError;
    expect(seen).toHaveLength(1);
    expect([e.code, e.retryAfterMs]).toEqual(["rate_limited", 120_000]);
  });

  it("types a non-JSON failure as unexpected and a bad success body as decode", async () => {
    const html = fakeFetch(() => new Response("<html>Bad gateway</html>", { status: 404 }));
    const e1 = (await client(html.fetch).state("board", "b1").catch((x: unknown) => x)) as EdgeloopError;
    expect([e1.kind, e1.status, e1.code]).toEqual(["unexpected", 404, "unexpected_response"]);
    const garbage = fakeFetch(() => new Response("not json", { status: 200 }));
    const e2 = (await client(garbage.fetch).state("board", "b1").catch((x: unknown) => x)) as EdgeloopError;
    expect([e2.kind, e2.code]).toEqual(["decode", "decode_error"]);
  });

  it("sends a batch with one key", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, result(3)));
    await client(fetch).batch(
      "board",
      "b1",
      [
        { type: "CreateBoard", data: { title: "t" } },
        { type: "AddCard", data: { card_id: "c1", title: "x" } },
      ],
      { expectedVersion: "none" },
    );
    expect(seen[0]?.url.pathname).toBe("/prefix/v1/aggregates/board/b1/batch");
    expect(seen[0]?.body).toEqual({
      commands: [
        { type: "CreateBoard", data: { title: "t" } },
        { type: "AddCard", data: { card_id: "c1", title: "x" } },
      ],
      expected_version: "none",
    });
  });

  it("rejects at once when the caller aborts during a backoff", async () => {
    const { fetch, seen } = fakeFetch(() => apiError(503, "overloaded", "x", {}, { "retry-after": "5" }));
    const controller = new AbortController();
    const pending = client(fetch)
      .command("board", "b1", { type: "CreateBoard", data: { title: "t" } }, { signal: controller.signal })
      .catch((x: unknown) => x);
    await vi.advanceTimersByTimeAsync(100);
    controller.abort();
    const e = (await pending) as EdgeloopError;
    expect(e.kind).toBe("aborted");
    expect(seen).toHaveLength(1);
  });
});

describe("tokens", () => {
  it("refreshes on a 401 and retries once with the new token, which is kept", async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.headers.get("authorization") === "Bearer t2"
        ? json(200, result(1))
        : apiError(401, "unauthorized", "the token has expired"),
    );
    const refreshToken = vi.fn(async () => "t2");
    const edgeloop = client(fetch, { refreshToken });
    await edgeloop.command("board", "b1", { type: "CreateBoard", data: { title: "t" } });
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(seen.map((s) => s.headers.get("authorization"))).toEqual(["Bearer t1", "Bearer t2"]);
    // The key survives the refresh: it is one logical command.
    expect(seen[1]?.headers.get("idempotency-key")).toBe(seen[0]?.headers.get("idempotency-key"));
    await edgeloop.state("board", "b1").catch(() => undefined);
    expect(seen[2]?.headers.get("authorization")).toBe("Bearer t2");
  });

  it("shares one refresh between concurrent 401s and gives up on a second 401", async () => {
    const { fetch, seen } = fakeFetch(() => apiError(401, "unauthorized", "bad signature"));
    let resolve: (t: string) => void = () => undefined;
    const refreshToken = vi.fn(() => new Promise<string>((r) => (resolve = r)));
    const edgeloop = client(fetch, { refreshToken });
    const a = edgeloop.state("board", "b1").catch((x: unknown) => x);
    const b = edgeloop.state("board", "b2").catch((x: unknown) => x);
    await vi.advanceTimersByTimeAsync(0);
    resolve("t2");
    const [ea, eb] = (await Promise.all([a, b])) as EdgeloopError[];
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect([ea?.status, eb?.status]).toEqual([401, 401]);
    expect(seen).toHaveLength(4);
  });

  it("a refreshToken that throws at once leaves the 401 to the caller, and the next 401 refreshes again", async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.headers.get("authorization") === "Bearer t3" ? json(200, result(1)) : apiError(401, "unauthorized", "expired"),
    );
    let calls = 0;
    const refreshToken = () => {
      calls += 1;
      if (calls === 1) throw new Error("the user closed the dialog");
      return "t3";
    };
    const edgeloop = client(fetch, { refreshToken });
    const e = (await edgeloop.state("board", "b1").catch((x: unknown) => x)) as EdgeloopError;
    expect([e.status, e.code]).toEqual([401, "unauthorized"]);
    await expect(edgeloop.command("board", "b1", { type: "CreateBoard", data: { title: "t" } })).resolves.toMatchObject({ version: 1 });
    expect(calls).toBe(2);
    expect(seen.map((s) => s.headers.get("authorization"))).toEqual(["Bearer t1", "Bearer t1", "Bearer t3"]);
  });

  it("types a failing token function as an EdgeloopError", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, result(1)));
    const e = (await client(fetch, {
      token: () => Promise.reject(new Error("signed out")),
    })
      .state("board", "b1")
      .catch((x: unknown) => x)) as EdgeloopError;
    expect(e).toBeInstanceOf(EdgeloopError);
    expect([e.kind, (e.cause as Error).message, seen.length]).toEqual(["invalid_argument", "signed out", 0]);
  });

  it("without refreshToken a 401 is thrown as it is; a token function is asked per request", async () => {
    const { fetch, seen } = fakeFetch(() => apiError(401, "unauthorized", "expired"));
    let n = 0;
    const e = (await client(fetch, { token: () => `fn${++n}` })
      .state("board", "b1")
      .catch((x: unknown) => x)) as EdgeloopError;
    expect([e.status, e.code, seen.length]).toEqual([401, "unauthorized", 1]);
    expect(seen[0]?.headers.get("authorization")).toBe("Bearer fn1");
  });
});

describe("reads", () => {
  it("time travels by version and by time", async () => {
    const { fetch, seen } = fakeFetch(() =>
      json(200, { aggregate_type: "board", aggregate_id: "b1", version: 1, state: { created: true, title: "t", columns: [], cards: {} } }),
    );
    const edgeloop = client(fetch);
    const then = await edgeloop.state("board", "b1", { atVersion: 1 });
    expect(then.state.title).toBe("t");
    await edgeloop.state("board", "b1", { asOf: new Date(Date.UTC(2026, 4, 1)) });
    expect(seen[0]?.url.search).toBe("?at_version=1");
    expect(seen[1]?.url.searchParams.get("as_of")).toBe("2026-05-01T00:00:00.000Z");
  });

  it("pages through the log with allEvents and refuses a page with a hole", async () => {
    const events = [1, 2, 3, 4, 5].map((seq) => envelope("board", "b1", seq, "CardAdded", { card_id: `c${seq}` }));
    const { fetch, seen } = fakeFetch((request) => {
      const after = Number(request.url.searchParams.get("after"));
      const limit = Number(request.url.searchParams.get("limit"));
      const page = events.slice(after, after + limit);
      const next = after + limit < events.length ? after + limit : null;
      return json(200, { events: page, next_after: next });
    });
    const seqs: number[] = [];
    for await (const event of client(fetch).allEvents("board", "b1", { pageSize: 2 })) seqs.push(event.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(seen.map((s) => s.url.searchParams.get("after"))).toEqual(["0", "2", "4"]);

    const holey = fakeFetch(() => json(200, { events: [events[0], events[2]], next_after: null }));
    const e = (await client(holey.fetch).events("board", "b1").catch((x: unknown) => x)) as EdgeloopError;
    expect(e.kind).toBe("protocol");
  });

  it("waits for its own write: a 503 with Retry-After on a consistency read is retried", async () => {
    const doc = { projection: "board_summary", doc_id: "b1", revision: 3, body: { board_id: "b1", title: "t" } };
    const { fetch, seen } = fakeFetch((_, n) =>
      n === 1 ? apiError(503, "overloaded", "not caught up", {}, { "retry-after": "1" }) : json(200, doc),
    );
    const pending = client(fetch).document("board_summary", "b1", { consistency: "board/b1@7" });
    await vi.advanceTimersByTimeAsync(1_000);
    const read = await pending;
    expect(read.body.title).toBe("t");
    expect(seen).toHaveLength(2);
    expect(seen[1]?.url.pathname).toBe("/prefix/v1/projections/board_summary/b1");
    expect(seen[1]?.url.searchParams.get("consistency")).toBe("board/b1@7");
  });

  it("lists documents with filters and a cursor, and stream pages with filters", async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.url.pathname.endsWith("/stream")
        ? json(200, { events: [], next_after: null, head: 0 })
        : json(200, { projection: "feedback_inbox", version: 1, documents: [], next_after: null }),
    );
    const edgeloop = client(fetch);
    await edgeloop.documents("feedback_inbox", { limit: 10, after: "cur", filters: { status: "open" }, consistency: "feedback/f1@1" });
    expect(seen[0]?.url.search).toBe("?limit=10&after=cur&status=open&consistency=feedback%2Ff1%401");
    await edgeloop.streamPage({ partition: 2, after: 5, types: ["CardAdded", "CardMoved"], aggregateType: "board" });
    expect(Object.fromEntries(seen[1]?.url.searchParams ?? [])).toEqual({
      partition: "2",
      after: "5",
      aggregate_type: "board",
      types: "CardAdded,CardMoved",
    });
  });

  it("escapes path segments", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, { correlation_id: "a b", events: [] }));
    await client(fetch).trace("a b?c");
    expect(seen[0]?.url.pathname).toBe("/prefix/v1/trace/a%20b%3Fc");
  });
});

describe("construction", () => {
  it("refuses a base URL that is not http(s) without query", () => {
    for (const baseUrl of ["ftp://x", "http://x/?a=1", "not a url"]) {
      expect(() => new Edgeloop({ baseUrl, token: "t", fetch: (() => undefined) as never })).toThrow(EdgeloopError);
    }
  });
});
