/**
 * The live board page end to end: real Chromium (Debian's `chromium`, driven by
 * playwright-core) against the real Worker on workerd, started from wrangler.toml with
 * its static assets (./worker.ts). No part of the server is mocked.
 *
 * The tests share one Worker and one browser and run in order; each uses its own board.
 * Screenshots go to target/screenshots/ (git-ignored), also when a test fails.
 *
 *   npx vitest run --config web/e2e/vitest.config.ts
 */
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Rest, ROOT, Worker } from "./worker.ts";

/** Debian's Chromium; else Google Chrome where a CI image ships it (GitHub's Ubuntu runners). */
const CHROMIUM =
  process.env.CHROMIUM_PATH ?? ["/usr/bin/chromium", "/usr/bin/google-chrome"].find((p) => fs.existsSync(p)) ?? "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "target/screenshots");
const TENANT = "e2e-web";
/** Every wait for a condition gives up after this long. */
const WAIT_MS = 15_000;
/** The Worker's telemetry window: reports become error_group events within it. */
const TELEMETRY_WINDOW_MS = 1_000;

let worker: Worker;
let browser: Browser;
let rest: Rest;
let token: string;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // A short telemetry window, so a reported error's group is recorded within a wait.
  worker = await Worker.start({ vars: { TELEMETRY_WINDOW_MS: String(TELEMETRY_WINDOW_MS) } });
  token = worker.token("alice", TENANT, "commands read");
  rest = new Rest(worker.url, worker.token("rest-service", TENANT, "commands read"));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // playwright gives each launch a fresh temporary profile (--user-data-dir).
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail") {
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    for (const [i, context] of contexts.entries()) {
      for (const [j, page] of context.pages().entries()) {
        await page.screenshot({ path: path.join(SHOTS, `FAILED-${name}-${i}-${j}.png`), fullPage: true }).catch(() => {});
      }
    }
    process.stderr.write(`--- runtime log (tail) ---\n${worker.logs().slice(-4000)}\n`);
  }
  await Promise.all(contexts.splice(0).map((c) => c.close()));
});

/** A new isolated browser context (its own storage: a second person). */
async function newContext(options: Parameters<Browser["newContext"]>[0] = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(WAIT_MS);
  contexts.push(context);
  return context;
}

/** Opens a board the way `scripts/dev`'s link does (token in the fragment) and waits until it is live. */
async function openBoard(context: BrowserContext, boardId: string, as = token): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (error) => process.stderr.write(`page error: ${error.stack ?? error}\n`));
  await page.goto(`${worker.url}/?board=${encodeURIComponent(boardId)}#token=${as}`);
  await live(page);
  return page;
}

/** Waits until the page's subscriptions are caught up and live. */
async function live(page: Page): Promise<void> {
  await page.locator('#connection[data-state="live"]').waitFor();
}

/** The card titled `title` in column `column`. */
function card(page: Page, column: string, title: string) {
  return page.locator(`.column[data-column="${column}"] .card`, { hasText: title });
}

/** Creates a board through the REST API (as a service would) and returns its id. */
async function createBoard(name: string, columns = ["Todo", "Doing", "Done"]): Promise<string> {
  const id = `${name}-${Math.random().toString(36).slice(2, 8)}`;
  await rest.command("board", id, { type: "CreateBoard", data: { title: `Board ${name}`, columns } }, "none");
  return id;
}

/** Polls `probe` every 200 ms until it answers something other than `undefined`, for at most {@link WAIT_MS}. */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting ${WAIT_MS} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Whether a request or response is for the telemetry route. */
const isTelemetry = (r: { url(): string }) => new URL(r.url()).pathname === "/v1/ingest/telemetry";

/** Throws an uncaught error in the page (as a bug in an event handler would). */
async function throwInPage(page: Page, message: string): Promise<void> {
  await page.evaluate((m) => setTimeout(() => { throw new Error(m); }), message);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

describe("the board page", () => {
  test("is served by the Worker as static assets beside the API, with the token kept out of URLs", async () => {
    const index = await fetch(`${worker.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toMatch(/^text\/html/);
    expect(index.headers.get("x-content-type-options")).toBe("nosniff"); // from _headers
    const html = await index.text();
    expect(html).toContain('<script type="module" src="/app.js">');
    expect(html).toContain("Content-Security-Policy");
    expect((await fetch(`${worker.url}/app.js`)).headers.get("content-type")).toMatch(/javascript/);
    // The Worker still answers its own routes, and paths that are no file.
    expect(await (await fetch(`${worker.url}/healthz`)).json()).toEqual({ status: "ok" });
    const api = await fetch(`${worker.url}/v1/projections`);
    expect(api.status).toBe(401);
    expect((await api.json()).error.code).toBe("unauthorized");
    const missing = await fetch(`${worker.url}/no-such-page`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe("not_found");

    const boardId = await createBoard("token");
    const context = await newContext();
    const urls: string[] = [];
    context.on("request", (request) => urls.push(request.url()));
    const page = await context.newPage();
    page.on("websocket", (ws) => urls.push(ws.url()));
    await page.goto(`${worker.url}/?board=${boardId}#token=${token}`);
    await live(page);
    expect(page.url()).toBe(`${worker.url}/?board=${boardId}`); // stripped from the address bar
    expect(await page.evaluate(() => sessionStorage.getItem("edgeloop.token"))).toBe(token);
    expect(urls.length).toBeGreaterThan(3);
    expect(urls.filter((u) => u.includes(token))).toEqual([]); // never in a URL the browser sent
    await expect(page.locator("#who").innerText()).resolves.toContain(`alice @ ${TENANT}`);
  });

  test("picks or creates a board", async () => {
    const existing = await createBoard("picked");
    const page = await (await newContext()).newPage();
    await page.goto(`${worker.url}/#token=${token}`);
    await page.getByRole("link", { name: "Board picked" }).waitFor();

    // A new board: its id follows the title, and the page opens it.
    const title = `Launch plan ${Math.random().toString(36).slice(2, 6)}`;
    await page.getByLabel("Title").fill(title);
    const id = await page.getByLabel(/^Id/).inputValue();
    expect(id).toBe(title.toLowerCase().replace(/ /g, "-"));
    await page.getByRole("button", { name: "Create board" }).click();
    await page.waitForURL(`${worker.url}/?board=${id}`);
    await live(page);
    await page.locator("#board-title", { hasText: title }).waitFor();
    await page.locator(".column").nth(3).waitFor(); // the default columns: Inbox, Todo, Doing, Done

    // An id that is taken is refused in words, and nothing is overwritten.
    await page.goto(`${worker.url}/`);
    await page.getByLabel("Title").fill("Another title");
    await page.getByLabel(/^Id/).fill(existing);
    await page.getByRole("button", { name: "Create board" }).click();
    await page.locator("#notice", { hasText: `A board with the id “${existing}” already exists` }).waitFor();
    expect((await rest.get(`/v1/aggregates/board/${existing}`)).body.state.title).toBe("Board picked");
  });

  test("two people on one board see each other's adds and moves live; a REST move shows in both", async () => {
    const boardId = await createBoard("live", ["Inbox", "Todo", "Doing", "Done"]);
    const alice = await openBoard(await newContext(), boardId);
    const bob = await openBoard(await newContext(), boardId, worker.token("bob", TENANT, "commands read"));
    // On a laptop-sized screen the four columns fit beside the timeline.
    const timeline = (await alice.locator(".timeline").boundingBox())!;
    for (const name of ["Inbox", "Todo", "Doing", "Done"]) {
      const box = (await alice.locator(`.column[data-column="${name}"]`).boundingBox())!;
      expect(box.x + box.width, `${name} ends before the timeline`).toBeLessThanOrEqual(timeline.x);
    }

    // Alice adds a card: both pages show it in Todo.
    await alice.getByLabel("New card title in Todo").fill("Write the release notes");
    await alice.getByLabel("New card title in Todo").press("Enter");
    await card(alice, "Todo", "Write the release notes").waitFor();
    await card(bob, "Todo", "Write the release notes").waitFor();

    // Alice drags it to Doing: Bob sees it leave Todo and arrive in Doing.
    await card(alice, "Todo", "Write the release notes").dragTo(alice.locator('.column[data-column="Doing"]'));
    await card(bob, "Doing", "Write the release notes").waitFor();
    await card(bob, "Todo", "Write the release notes").waitFor({ state: "detached" });
    // …and a screen reader on Bob's page is told, politely.
    await bob
      .locator('#announcer[aria-live="polite"]', { hasText: "alice moved “Write the release notes” from Todo to Doing" })
      .waitFor({ state: "attached" });

    // The keyboard way: focus the card, Alt+→ moves it to Done and keeps the focus on it.
    await card(alice, "Doing", "Write the release notes").focus();
    await alice.keyboard.press("Alt+ArrowRight");
    await card(bob, "Done", "Write the release notes").waitFor();
    await card(alice, "Done", "Write the release notes").waitFor();
    await alice.waitForFunction(() => document.activeElement?.closest(".card")?.textContent?.includes("Write the release notes"));

    // A service moves it back by REST: both pages follow.
    const cardId = await card(alice, "Done", "Write the release notes").getAttribute("data-card-id");
    await rest.command("board", boardId, { type: "MoveCard", data: { card_id: cardId, to_column: "Todo" } });
    await card(alice, "Todo", "Write the release notes").waitFor();
    await card(bob, "Todo", "Write the release notes").waitFor();

    // Bob's timeline tells the story in words, with who did what.
    await bob.locator("#events li", { hasText: "alice moved “Write the release notes” from Todo to Doing" }).waitFor();
    await bob.locator("#events li", { hasText: "rest-service moved “Write the release notes” from Done to Todo" }).waitFor();
    await shot(alice, "two-pages-alice");
    await shot(bob, "two-pages-bob");
  });

  test("rule violations and conflicts are explained in words, not codes", async () => {
    const boardId = await createBoard("rules");
    await rest.command("board", boardId, { type: "SetWipLimit", data: { column: "Doing", limit: 1 } });
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "busy", title: "Already in progress", column: "Doing" } });
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "next", title: "Next task", column: "Todo" } });
    const page = await openBoard(await newContext(), boardId);
    await page.locator('.column[data-column="Doing"] .count', { hasText: "1 / 1" }).waitFor();

    // WIP limit: the move is refused and the notice says why.
    await card(page, "Todo", "Next task").focus();
    await page.keyboard.press("Alt+ArrowRight");
    const notice = page.locator("#notice");
    await notice.filter({ hasText: "“Doing” is at its work-in-progress limit of 1 card" }).waitFor();
    expect(await notice.innerText()).not.toMatch(/wip_limit_reached|rejected|422/);
    await card(page, "Todo", "Next task").waitFor(); // nothing moved
    await shot(page, "wip-limit");

    // Version conflict: Bob's edit is based on a board someone changed meanwhile.
    await card(page, "Todo", "Next task").click();
    const dialog = page.locator("#card-dialog");
    await dialog.waitFor();
    await rest.command("board", boardId, { type: "CommentOnCard", data: { card_id: "next", author: "carol", text: "Ping" } });
    await dialog.locator(".comments-list", { hasText: "Ping" }).waitFor(); // live in the dialog too
    await page.getByLabel("Title", { exact: true }).fill("Next task, renamed");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.locator('[role="alert"]', { hasText: "Someone else changed the board while you were working" }).waitFor();
    // Trying again (now based on the latest version) succeeds.
    await dialog.getByRole("button", { name: "Save" }).click();
    await card(page, "Todo", "Next task, renamed").waitFor();

    // Archived card: archived elsewhere while the dialog is open, then commented on here.
    await card(page, "Todo", "Next task, renamed").click();
    await dialog.waitFor();
    await rest.command("board", boardId, { type: "ArchiveCard", data: { card_id: "next" } });
    await dialog.locator(".card-state", { hasText: "archived" }).waitFor();
    await page.getByLabel("Add a comment").fill("Too late?");
    await dialog.getByRole("button", { name: "Comment" }).click();
    await dialog
      .locator('[role="alert"]', { hasText: "The card “Next task, renamed” is archived; archived cards can no longer be moved, edited or commented on." })
      .waitFor();
    await shot(page, "archived-card");
  });

  test("the time-travel slider shows the board as of an earlier version", async () => {
    const boardId = await createBoard("travel");
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "t1", title: "Time traveller", column: "Todo" } }); // v2
    await rest.command("board", boardId, { type: "MoveCard", data: { card_id: "t1", to_column: "Doing" } }); // v3
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "t2", title: "Later card", column: "Done" } }); // v4
    const page = await openBoard(await newContext(), boardId);
    await card(page, "Doing", "Time traveller").waitFor();
    await page.locator("#time-travel-value", { hasText: "4 of 4" }).waitFor();

    // Version 2: the card was still in Todo and the later card did not exist.
    const slider = page.locator("#time-travel");
    await slider.focus();
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("ArrowLeft");
    await page.locator("#history-banner", { hasText: "You are looking at version 2 of 4" }).waitFor();
    await card(page, "Todo", "Time traveller").waitFor();
    expect(await page.locator(".card", { hasText: "Later card" }).count()).toBe(0);
    expect(await page.locator(".add-card").first().isVisible()).toBe(false); // read-only
    await shot(page, "time-travel-v2");

    // A change while looking back does not yank the view; "Back to live" shows it.
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "t3", title: "Newest", column: "Todo" } });
    await page.locator("#time-travel-value", { hasText: "2 of 5" }).waitFor();
    await page.locator("#events li", { hasText: "added “Newest” to Todo" }).waitFor();
    expect(await page.locator(".card", { hasText: "Newest" }).count()).toBe(0);
    await page.locator("#back-to-live").click();
    await card(page, "Todo", "Newest").waitFor();
    await card(page, "Doing", "Time traveller").waitFor();
    await page.locator("#history-banner").waitFor({ state: "hidden" });

    // The timeline's entries jump there too.
    await page.getByRole("button", { name: "Show version 3" }).click();
    await page.locator("#history-banner", { hasText: "version 3 of 5" }).waitFor();
    await card(page, "Doing", "Time traveller").waitFor();
    expect(await page.locator(".card", { hasText: "Later card" }).count()).toBe(0);
  });

  test("after the runtime restarts, both pages reconnect and show every change made while they were away", async () => {
    const boardId = await createBoard("restart");
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "r1", title: "Survivor", column: "Todo" } });
    const a = await openBoard(await newContext(), boardId);
    const b = await openBoard(await newContext(), boardId, worker.token("bob", TENANT, "commands read"));
    await card(a, "Todo", "Survivor").waitFor();
    await card(b, "Todo", "Survivor").waitFor();

    // Crash the runtime: both pages notice and try to reconnect.
    await worker.kill();
    await a.locator('#connection[data-state="reconnecting"]').waitFor();
    await b.locator('#connection[data-state="reconnecting"]').waitFor();
    // Keep the pages away while the runtime comes back and others change the board.
    await Promise.all(contexts.map((c) => c.setOffline(true)));
    await worker.restart();
    await rest.command("board", boardId, { type: "MoveCard", data: { card_id: "r1", to_column: "Done" } });
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "r2", title: "Added while away", column: "Doing" } });
    await rest.command("board", boardId, { type: "CommentOnCard", data: { card_id: "r2", author: "carol", text: "hello" } });
    expect(await a.locator('#connection[data-state="live"]').count()).toBe(0); // still away
    await Promise.all(contexts.map((c) => c.setOffline(false)));

    for (const page of [a, b]) {
      await live(page);
      await card(page, "Done", "Survivor").waitFor();
      await card(page, "Doing", "Added while away").waitFor();
      await page.locator('.card[data-card-id="r2"] .comments', { hasText: "1 comment" }).waitFor();
      await card(page, "Todo", "Survivor").waitFor({ state: "detached" });
      // The timeline has every event once: no gap, no duplicate.
      await page.waitForFunction(() => document.querySelectorAll("#events li").length === 5);
      const versions = await page.locator("#events li button").allInnerTexts();
      expect(versions).toEqual(["v5", "v4", "v3", "v2", "v1"]);
    }
    // And the pages keep working: a card added in one shows in the other.
    await a.getByLabel("New card title in Todo").fill("After the restart");
    await a.getByLabel("New card title in Todo").press("Enter");
    await card(b, "Todo", "After the restart").waitFor();
    await shot(a, "after-restart");
  });

  test("is usable on a phone-sized screen", async () => {
    const boardId = await createBoard("phone", ["Todo", "Doing", "Done"]);
    const context = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const page = await openBoard(context, boardId);
    // Columns stack: each fits the screen's width, nothing scrolls sideways.
    for (const name of ["Todo", "Doing", "Done"]) {
      const box = await page.locator(`.column[data-column="${name}"]`).boundingBox();
      expect(box).not.toBeNull();
      expect(box!.x).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width).toBeLessThanOrEqual(390);
    }
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

    // Add a card by tapping, then move it with the card's "Move to column" menu.
    await page.getByLabel("New card title in Todo").tap();
    await page.getByLabel("New card title in Todo").fill("Tapped in");
    await page.getByRole("button", { name: "Add" }).first().tap();
    await card(page, "Todo", "Tapped in").tap();
    await page.getByLabel("Move to column").selectOption("Doing");
    await page.locator("#card-dialog").getByRole("button", { name: "Move", exact: true }).tap();
    await card(page, "Doing", "Tapped in").waitFor();
    await page.locator("#card-dialog").getByRole("button", { name: "Close" }).tap();
    await page.locator("#card-dialog").waitFor({ state: "hidden" });
    await shot(page, "phone");
  });

  test("the feedback inbox shows triage status and links to the card", async () => {
    const boardId = await createBoard("triage");
    await rest.command("board", boardId, { type: "AddCard", data: { card_id: "fix-login", title: "Fix slow login", column: "Todo" } });
    const feedbackId = `fb-${Math.random().toString(36).slice(2, 8)}`;
    await rest.command("feedback", feedbackId, { type: "SubmitFeedback", data: { text: "Login takes 30 seconds", source: "web", severity: "high" } });
    await rest.command("feedback", `${feedbackId}-open`, { type: "SubmitFeedback", data: { text: "Dark mode please", source: "email" } });
    await rest.command("feedback", feedbackId, { type: "TriageFeedback", data: { board_id: boardId, card_id: "fix-login", labels: ["perf"] } });

    const page = await (await newContext()).newPage();
    await page.goto(`${worker.url}/?view=inbox#token=${token}`);
    const triaged = page.locator(`.feedback[data-feedback-id="${feedbackId}"]`);
    await triaged.locator(".status", { hasText: "Triaged" }).waitFor();
    await page.locator(`.feedback[data-feedback-id="${feedbackId}-open"] .status`, { hasText: "Open" }).waitFor();
    await page.getByLabel("Status").selectOption("open");
    await triaged.waitFor({ state: "detached" });
    await page.getByLabel("Status").selectOption("");
    await shot(page, "inbox");

    await triaged.getByRole("link", { name: `card fix-login on ${boardId}` }).click();
    await page.waitForURL(`${worker.url}/?board=${boardId}&card=fix-login`);
    await live(page);
    await page.locator('.card.highlight[data-card-id="fix-login"]').waitFor();
    await page.waitForFunction(() => (document.activeElement as HTMLElement | null)?.dataset.cardId === "fix-login");
  });

  test("an expired token asks for a new one, at start and mid-session", async () => {
    const boardId = await createBoard("token-refresh");
    const context = await newContext();
    const page = await context.newPage();
    const expired = worker.token("alice", TENANT, "commands read", -120);
    await page.goto(`${worker.url}/?board=${boardId}#token=${expired}`);
    const dialog = page.locator("#token-dialog");
    await dialog.waitFor();
    await page.getByRole("textbox", { name: "Token" }).fill(expired);
    await dialog.getByRole("button", { name: "Continue" }).click();
    await dialog.locator('[role="alert"]', { hasText: "already expired" }).waitFor();
    await page.getByRole("textbox", { name: "Token" }).fill(token);
    await dialog.getByRole("button", { name: "Continue" }).click();
    await live(page);

    // Mid-session: the token runs out, the connection drops (the runtime restarts), and
    // before reconnecting the client asks for a fresh token (its refreshToken callback):
    // the page's token dialog.
    const short = worker.token("alice", TENANT, "commands read", 3);
    await page.evaluate((t) => sessionStorage.setItem("edgeloop.token", t), short);
    await page.reload();
    await live(page);
    const exp = JSON.parse(Buffer.from(short.split(".")[1], "base64url").toString()).exp as number;
    await page.waitForFunction((e) => Date.now() / 1000 > e + 1, exp);
    await worker.kill();
    await page.locator('#connection[data-state="reconnecting"]').waitFor();
    await worker.restart();
    await dialog.locator("p", { hasText: "Your session has expired" }).waitFor();
    await page.getByRole("textbox", { name: "Token" }).fill(token);
    await dialog.getByRole("button", { name: "Continue" }).click();
    await live(page);
    await page.getByLabel("New card title in Todo").fill("Added with the fresh token");
    await page.getByLabel("New card title in Todo").press("Enter");
    await card(page, "Todo", "Added with the fresh token").waitFor();
  });

  test("the page's errors are reported with its token in a header and become an error group", async () => {
    const boardId = await createBoard("telemetry");
    const reports = async () => {
      const { status, body } = await rest.get("/v1/ingest/telemetry");
      expect(status, JSON.stringify(body)).toBe(200);
      return (body.totals?.reports as number | undefined) ?? 0;
    };
    const before = await reports();
    // The dev page's token: it may also report telemetry (`ingest`).
    const reporter = worker.token("alice", TENANT, "commands read ingest");
    const page = await openBoard(await newContext(), boardId, reporter);
    const urls: string[] = [];
    page.on("request", (r) => {
      if (isTelemetry(r)) urls.push(r.url());
    });

    const answers = [];
    for (const message of ["boom 1", "boom 2"]) {
      const answer = page.waitForResponse(isTelemetry);
      await throwInPage(page, message);
      const response = await answer;
      const body = await response.json();
      expect(response.status(), JSON.stringify(body)).toBe(202);
      expect(body.accepted).toEqual({ errors: 1, counters: 0 });
      expect((await response.request().allHeaders())["authorization"]).toBe(`Bearer ${reporter}`);
      answers.push(body as { groups: string[]; flush_within_ms: number });
    }
    expect(urls.length).toBe(2);
    expect(urls.every((u) => !u.includes(reporter))).toBe(true); // the token travels in a header
    expect(await reports()).toBe(before + 2);

    // After the flush window each group is an error_group aggregate; its counts add up to
    // the two reports (one group: the messages differ only in a number).
    expect(answers[0]!.flush_within_ms).toBeLessThanOrEqual(TELEMETRY_WINDOW_MS);
    const fingerprints = [...new Set(answers.flatMap((a) => a.groups))];
    expect(fingerprints.length).toBeGreaterThan(0);
    const groups = await until("the error groups to count both reports", async () => {
      const states = await Promise.all(fingerprints.map((f) => rest.get(`/v1/aggregates/error_group/${encodeURIComponent(f)}`)));
      if (states.some((s) => s.status !== 200)) return undefined;
      const total = states.reduce((sum, s) => sum + (s.body.state.total_count as number), 0);
      return total === 2 ? states.map((s) => s.body.state) : undefined;
    });
    for (const group of groups) {
      expect(group).toMatchObject({ status: "open", error_type: "Error" });
      expect(group.last_release).toMatch(/^edgeloop-board@/);
    }
    expect(groups.map((g) => g.message).join(" ")).toMatch(/boom/);
    await live(page); // reporting never disturbed the page
  });

  test("a report the server refuses (403 without `ingest`; 401, 404) is the page's last, quietly", async () => {
    const boardId = await createBoard("telemetry-refused");
    const reporter = worker.token("alice", TENANT, "commands read ingest");
    // 403: the real answer to a token without `ingest`. 401 and 404 (a refused token; a
    // deployment without the route) are answered in the browser, by playwright.
    const cases: Array<{ status: number; as: string; answer?: number }> = [
      { status: 403, as: token },
      { status: 401, as: reporter, answer: 401 },
      { status: 404, as: reporter, answer: 404 },
    ];
    for (const { status, as, answer } of cases) {
      const context = await newContext();
      if (answer !== undefined) {
        await context.route("**/v1/ingest/telemetry", (route) =>
          route.fulfill({ status: answer, json: { error: { code: answer === 404 ? "not_found" : "unauthorized", message: "refused" } } }),
        );
      }
      const page = await openBoard(context, boardId, as);
      const urls: string[] = [];
      page.on("request", (r) => {
        if (isTelemetry(r)) urls.push(r.url());
      });
      const first = page.waitForResponse(isTelemetry);
      await throwInPage(page, "boom 1");
      expect((await first).status()).toBe(status);
      await throwInPage(page, "boom 2");
      // A request the page sends after the second error's handler ran: the browser reports
      // requests in the order they start, so once it is seen, a report would have been too.
      const marker = page.waitForRequest((r) => new URL(r.url()).pathname === "/healthz");
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve)).then(() => fetch("/healthz")));
      await marker;
      expect(urls.length, `after a ${status}`).toBe(1);
      await live(page);
      await context.close();
    }
  });
});
