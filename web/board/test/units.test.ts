// The board page's pure parts, in Node: refusals in words, tokens from the fragment,
// the history (timeline words, a past board laid out like the projection), addresses.
import { describe, expect, test } from "vitest";
import type { BoardState } from "../../client/src/index.ts";
import { addEvent, cardTitles, describeEvent, summaryAt, type BoardEnvelope } from "../src/history.ts";
import { describeRefusal } from "../src/messages.ts";
import { slugify } from "../src/picker.ts";
import { boardHref, parseRoute } from "../src/routes.ts";
import { decodeToken, isExpired, takeTokenFromFragment } from "../src/token.ts";

function envelope(seq: number, event: { type: string; data: unknown }, actor = "alice"): BoardEnvelope {
  return {
    aggregate_type: "board",
    aggregate_id: "b1",
    seq,
    event_id: `e${seq}`,
    schema_version: 1,
    recorded_at: "2026-12-01T10:00:00.000Z",
    command_id: null,
    correlation_id: null,
    causation_id: null,
    actor,
    ...event,
  } as BoardEnvelope;
}

describe("describeRefusal", () => {
  test("names the column and its limit for a WIP-limit refusal, without the raw code", () => {
    const text = describeRefusal(
      { status: 422, code: "rejected", rule: "wip_limit_reached", message: "column `Doing` is at its WIP limit (2)" },
      { column: "Doing", wipLimit: 2, cardTitle: "Ship" },
    );
    expect(text).toBe("“Doing” is at its work-in-progress limit of 2 cards. Finish or move a card out of it first, or raise the limit.");
  });

  test("explains archived cards, version conflicts and network failures", () => {
    expect(describeRefusal({ code: "rejected", rule: "card_archived", message: "" }, { cardTitle: "Old" })).toMatch(
      /^The card “Old” is archived/,
    );
    expect(describeRefusal({ status: 409, code: "version_conflict", message: "", actual: 7 })).toMatch(
      /Someone else changed the board .* \(version 7\)/,
    );
    expect(describeRefusal({ code: "network_error", message: "network error: fetch failed" }, { action: "move the card" })).toMatch(
      /^Could not reach the server to move the card/,
    );
  });

  test("falls back to the server's message for a rule it does not know", () => {
    expect(describeRefusal({ code: "rejected", rule: "new_rule", message: "Something new." }, { action: "add the card" })).toBe(
      "Could not add the card: something new.",
    );
  });
});

describe("tokens", () => {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const jwt = `${part({ alg: "HS256" })}.${part({ sub: "ana", tenant: "t1", scope: "commands read", exp: 2_000_000_000 })}.sig`;

  test("decodes claims for display and expiry; refuses what is not a JWT", () => {
    expect(decodeToken(jwt)).toEqual({ token: jwt, actor: "ana", tenant: "t1", scopes: ["commands", "read"], expiresAt: 2_000_000_000_000 });
    expect(decodeToken("not-a-token")).toBeNull();
    expect(decodeToken(`${part({})}.${part({ sub: "x" })}.s`)).toBeNull(); // no exp
    expect(isExpired(decodeToken(jwt)!, 2_000_000_000_000)).toBe(true);
    expect(isExpired(decodeToken(jwt)!, 1_999_999_999_999)).toBe(false);
  });

  test("takes the token out of the fragment and the address bar, keeping the rest", () => {
    const replaced: string[] = [];
    const history = { state: null, replaceState: (_s: unknown, _t: string, url: string) => replaced.push(url) } as unknown as History;
    const location = { pathname: "/", search: "?board=b1", hash: `#token=${jwt}&x=1` } as Location;
    expect(takeTokenFromFragment(location, history)).toBe(jwt);
    expect(replaced).toEqual(["/?board=b1#x=1"]);
    expect(takeTokenFromFragment({ ...location, hash: "" } as Location, history)).toBeNull();
  });
});

describe("history", () => {
  const events = [
    envelope(1, { type: "BoardCreated", data: { title: "B", columns: ["Todo", "Doing"] } }),
    envelope(2, { type: "CardAdded", data: { card_id: "c1", title: "First", column: "Todo", labels: [] } }),
    envelope(3, { type: "CardAdded", data: { card_id: "c2", title: "Second", column: "Doing", labels: [] } }),
    envelope(4, { type: "CardMoved", data: { card_id: "c1", from_column: "Todo", to_column: "Doing" } }, "bob"),
    envelope(5, { type: "CardEdited", data: { card_id: "c1", title: "First!", labels: null } }),
  ];

  test("tells events in words with the latest card titles", () => {
    const titles = cardTitles(events);
    expect(describeEvent(events[3], titles)).toBe("bob moved “First!” from Todo to Doing");
    expect(describeEvent(events[4], titles)).toBe("alice edited the title of “First!”");
  });

  test("lays a past state out in projection order: cards in the order they arrived", () => {
    const state: BoardState = {
      created: true,
      title: "B",
      columns: [
        { name: "Todo", wip_limit: null },
        { name: "Doing", wip_limit: 2 },
      ],
      cards: {
        c1: { title: "First", column: "Doing", labels: [], archived: false, comments: 0 },
        c2: { title: "Second", column: "Doing", labels: [], archived: false, comments: 0 },
      },
    };
    const summary = summaryAt("b1", 4, state, events);
    expect(summary.columns.map((c) => [c.name, c.cards.map((card) => card.card_id), c.full])).toEqual([
      ["Todo", [], false],
      ["Doing", ["c2", "c1"], true], // c1 arrived in Doing at v4, after c2 (v3)
    ]);
  });

  test("keeps events sorted by seq and drops duplicates", () => {
    const list: BoardEnvelope[] = [];
    expect(addEvent(list, events[1])).toBe(true);
    expect(addEvent(list, events[0])).toBe(true);
    expect(addEvent(list, events[1])).toBe(false);
    expect(list.map((e) => e.seq)).toEqual([1, 2]);
  });
});

describe("addresses", () => {
  test("round-trip boards and cards; everything else is the picker or the inbox", () => {
    expect(parseRoute(new URL(`http://x${boardHref("b 1", "c&1")}`).search)).toEqual({ view: "board", boardId: "b 1", cardId: "c&1" });
    expect(parseRoute("?view=inbox")).toEqual({ view: "inbox" });
    expect(parseRoute("")).toEqual({ view: "picker" });
    expect(slugify("Q3 Roadmap — Ünïcode!")).toBe("q3-roadmap-unicode");
  });
});
