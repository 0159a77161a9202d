import { describe, expect, it, vi } from "vitest";
import { backoff, jwtExpiry, newIdempotencyKey, parseRetryAfter, Telemetry } from "../src/index.ts";
import { decide, DEFAULT_RETRY } from "../src/retry.ts";

describe("backoff and retry decisions", () => {
  it("is full jitter over a capped exponential", () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoff(n, 100, 1_000, 0.999999))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoff(3, 100, 1_000, 0)).toBe(0);
    expect(backoff(60, 100, 1_000, 0.5)).toBe(500); // no overflow far out
  });

  it("stops at maxAttempts, lets Retry-After lengthen a wait, and never sleeps past the budget", () => {
    const policy = { ...DEFAULT_RETRY, maxAttempts: 3, initialDelayMs: 100, maxElapsedMs: 10_000 };
    expect(decide(policy, 1, 0, undefined, 0.5)).toBe(50);
    expect(decide(policy, 3, 0, undefined, 0.5)).toBeUndefined();
    expect(decide(policy, 1, 0, 2_000, 0.5)).toBe(2_000);
    expect(decide(policy, 1, 9_000, 2_000, 0.5)).toBeUndefined();
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    const now = Date.UTC(2015, 9, 21, 7, 28, 0);
    expect(parseRetryAfter("7", now)).toBe(7_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("-1", now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("keys and tokens", () => {
  it("makes UUID v4 keys, also without crypto.randomUUID", () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(newIdempotencyKey()).toMatch(uuid);
    const randomUUID = crypto.randomUUID;
    try {
      Object.defineProperty(crypto, "randomUUID", { value: undefined, configurable: true });
      const a = newIdempotencyKey();
      expect(a).toMatch(uuid);
      expect(newIdempotencyKey()).not.toBe(a);
    } finally {
      Object.defineProperty(crypto, "randomUUID", { value: randomUUID, configurable: true });
    }
  });

  it("reads a JWT's exp and nothing from other tokens", () => {
    const payload = btoa(JSON.stringify({ sub: "alice", exp: 1_900_000_000 })).replace(/=+$/, "");
    expect(jwtExpiry(`eyJhbGciOiJIUzI1NiJ9.${payload}.sig`)).toBe(1_900_000_000);
    expect(jwtExpiry("opaque-token")).toBeUndefined();
    expect(jwtExpiry("a.!!!.c")).toBeUndefined();
  });
});

describe("telemetry", () => {
  const error = new TypeError("x is undefined");

  it("beacons the documented batch with the ingest token in the query", async () => {
    const beacon = vi.fn(() => true);
    const telemetry = new Telemetry({ baseUrl: "https://edge.test/", ingestToken: "pub.tok", release: "web@1.0", sendBeacon: beacon });
    await expect(telemetry.reportError(error)).resolves.toBe(true);
    const [url, body] = beacon.mock.calls[0] as unknown as [string, string];
    expect(url).toBe("https://edge.test/v1/ingest/telemetry?access_token=pub.tok");
    const batch = JSON.parse(body);
    expect(Object.keys(batch)).toEqual(["errors"]);
    expect(batch.errors[0]).toMatchObject({ type: "TypeError", message: "x is undefined", release: "web@1.0" });
    expect(typeof batch.errors[0].stack).toBe("string");
    expect(typeof batch.errors[0].timestamp_ms).toBe("number");
  });

  it("falls back to fetch with a bearer header, and never throws", async () => {
    const fetch = vi.fn(async () => new Response("{}", { status: 202 }));
    const telemetry = new Telemetry({ baseUrl: "https://edge.test", ingestToken: "pub", sendBeacon: null, fetch: fetch as never });
    await expect(telemetry.count({ name: "board.render_ms", value: 12.5 })).resolves.toBe(true);
    const [, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(new Headers(init.headers).get("authorization")).toBe("Bearer pub");
    expect(init.keepalive).toBe(true);
    expect(JSON.parse(init.body as string)).toEqual({ counters: [{ name: "board.render_ms", value: 12.5 }] });

    const broken = new Telemetry({
      baseUrl: "https://edge.test",
      ingestToken: "pub",
      sendBeacon: null,
      fetch: (() => Promise.reject(new TypeError("offline"))) as never,
    });
    await expect(broken.reportError("plain string")).resolves.toBe(false);
  });

  it("makes a batch acceptable to the route: fields cut to its byte limits, blanks left out, at most 100 items a request", async () => {
    const bodies: string[] = [];
    const inits: RequestInit[] = [];
    const fetch = vi.fn(async (_url: string, init: RequestInit) => {
      inits.push(init);
      bodies.push(init.body as string);
      return new Response("{}", { status: 202 });
    });
    const telemetry = new Telemetry({ baseUrl: "https://edge.test", ingestToken: "pub", sendBeacon: null, fetch: fetch as never });
    const bytes = (text: string) => new TextEncoder().encode(text).length;
    await expect(
      telemetry.reportError(new Error("é".repeat(1_500)), { url: `https://x.test/${"u".repeat(3_000)}`, release: " ", user_agent: "", timestamp_ms: 1.5 }),
    ).resolves.toBe(true);
    const report = JSON.parse(bodies[0]!).errors[0];
    expect(bytes(report.message)).toBe(2_048); // 1,024 two-byte characters: never half of one
    expect(report.message).toBe("é".repeat(1_024));
    expect(bytes(report.url)).toBe(2_048);
    expect(report.release).toBeUndefined();
    expect(report.user_agent).toBeUndefined();
    expect(report.timestamp_ms).toBe(1);
    // A lone surrogate (which the route's JSON parser refuses) becomes U+FFFD.
    await telemetry.reportError("half \ud83d of an emoji");
    expect(JSON.parse(bodies[1]!).errors[0].message).toBe("half \ufffd of an emoji");

    bodies.length = 0;
    const samples = Array.from({ length: 250 }, (_, i) => ({ name: "n", value: i }));
    await expect(telemetry.count(...samples, { name: "bad", value: Number.NaN }, { name: " ", value: 1 })).resolves.toBe(true);
    expect(bodies.map((b) => JSON.parse(b).counters.length)).toEqual([100, 100, 50]);
    expect(bodies.flatMap((b) => JSON.parse(b).counters.map((c: { value: number }) => c.value))).toEqual(samples.map((s) => s.value));

    // Big reports: requests of about 60 KiB, so a keepalive fetch (64 KiB at most) carries them.
    bodies.length = 0;
    inits.length = 0;
    const big = Array.from({ length: 10 }, (_, i) => ({ type: "Error", message: `m${i}`, stack: "s".repeat(16 * 1024) }));
    await expect(telemetry.send({ errors: big })).resolves.toBe(true);
    expect(bodies.map((b) => JSON.parse(b).errors.length)).toEqual([3, 3, 3, 1]); // three 16 KiB stacks fit in 60 KiB
    expect(bodies.flatMap((b) => JSON.parse(b).errors.map((e: { message: string }) => e.message))).toEqual(big.map((e) => e.message));
    expect(bodies.every((b) => bytes(b) <= 64 * 1024)).toBe(true);
    expect(inits.every((init) => init.keepalive === true)).toBe(true);
  });
});
