/**
 * The board: columns and cards from the live `board_summary` document, commands for
 * every change (add, edit, move by drag and drop or Alt+←/→, comment, archive), the
 * board's event timeline from its live aggregate subscription, and the time-travel slider
 * that shows the aggregate's state as of any version.
 *
 * Rendering is keyed (columns by name, cards by id) so a change from elsewhere never
 * wipes what the user is typing, and the focused card keeps focus when it moves.
 *
 * @module
 */
import { EdgeloopError, type BoardCommand, type BoardSummary, type ExpectedVersion } from "../../client/src/index.ts";
import type { Backend, Connection, Watch } from "./backend.ts";
import { h, relativeTime, replaceChildren } from "./dom.ts";
import {
  addEvent,
  cardTitles,
  commentsOf,
  describeEvent,
  summaryAt,
  type BoardEnvelope,
} from "./history.ts";
import type { Context } from "./messages.ts";
import { clearNotice, combine, notify, notifyError, setNoticeTarget, showConnection } from "./ui.ts";

type Column = BoardSummary["columns"][number];
type Card = Column["cards"][number];

/** How many timeline entries are drawn (the slider reaches every version). */
const TIMELINE_ENTRIES = 200;
/** The MIME type a dragged card carries. */
const CARD_MIME = "application/x-edgeloop-card";

/** What the board view needs from the page. */
export interface BoardViewOptions {
  backend: Backend;
  boardId: string;
  /** The signed-in actor, the author of comments. */
  actor: string;
  /** A card to bring into view once it is shown (a link from the inbox). */
  focusCard: string | null;
}

/** Mounts the board view into `root`; returns a function that unmounts it. */
export function mountBoard(root: HTMLElement, options: BoardViewOptions): () => void {
  const view = new BoardView(root, options);
  return () => view.close();
}

class BoardView {
  private readonly backend: Backend;
  private readonly boardId: string;
  private readonly actor: string;
  /** A card to focus once it is shown (in `column`, when given: where it is moving to). */
  private pendingFocus: { cardId: string; column: string | null } | null;

  /** The live document (`null` until the projection has the board). */
  private live: BoardSummary | null = null;
  /** Whether the document socket has answered at least once. */
  private summaryKnown = false;
  /** The board's events, by seq, from the aggregate subscription. */
  private readonly events: BoardEnvelope[] = [];
  /** The version the slider shows; `null`: the live board. */
  private viewVersion: number | null = null;
  /** Drops answers to superseded time-travel requests. */
  private travelRequest = 0;
  private travelTimer: ReturnType<typeof setTimeout> | undefined;
  /** A timeline redraw is scheduled for the next frame (a catch-up delivers many events at once). */
  private timelineFrame = 0;
  /** Keeps "3 min ago" true. */
  private readonly clock = setInterval(() => this.tick(), 30_000);
  private readonly connections = new Map<string, Connection>();
  private readonly watches: Watch[] = [];

  private readonly title = h("h2", { id: "board-title" }, "Loading…");
  private readonly meta = h("p", { class: "board-meta", id: "board-meta" });
  private readonly banner = h("div", { class: "history-banner", id: "history-banner", role: "status", hidden: true });
  private readonly columnsEl = h("div", { class: "columns", id: "columns", "aria-label": "Columns" });
  private readonly columnEls = new Map<string, ColumnElements>();
  private readonly slider = h("input", {
    type: "range",
    id: "time-travel",
    min: 0,
    max: 0,
    value: 0,
    step: 1,
    disabled: true,
  }) as HTMLInputElement;
  private readonly sliderOut = h("output", { id: "time-travel-value", for: "time-travel" }, "–");
  private readonly liveButton = h("button", { type: "button", id: "back-to-live", disabled: true }, "Back to live");
  private readonly eventList = h("ol", { class: "events", id: "events", "aria-label": "Events, newest first" });
  /** Says each live change for screen readers ("bob moved “Ship” from Todo to Doing"). */
  private readonly announcer = h("p", { class: "visually-hidden", id: "announcer", "aria-live": "polite" });
  private readonly dialog: CardDialog;

  constructor(
    private readonly root: HTMLElement,
    options: BoardViewOptions,
  ) {
    this.backend = options.backend;
    this.boardId = options.boardId;
    this.actor = options.actor;
    this.pendingFocus = options.focusCard ? { cardId: options.focusCard, column: null } : null;
    this.dialog = new CardDialog(this);

    const help = h(
      "p",
      { id: "card-help", class: "visually-hidden" },
      "Press Enter to open the card. Alt+Left and Alt+Right move it to the previous or next column.",
    );
    const timeline = h(
      "aside",
      { class: "timeline", "aria-labelledby": "timeline-heading" },
      h("h3", { id: "timeline-heading" }, "Timeline"),
      h(
        "div",
        { class: "time-travel" },
        h("label", { for: "time-travel" }, "Show the board as of version ", this.sliderOut),
        this.slider,
        this.liveButton,
      ),
      this.eventList,
    );
    replaceChildren(
      root,
      h("div", { class: "board-head" }, this.title, this.meta),
      this.banner,
      help,
      this.announcer,
      h("div", { class: "board-layout" }, this.columnsEl, timeline),
      this.dialog.element,
    );

    this.slider.addEventListener("input", () => this.onSlider());
    this.liveButton.addEventListener("click", () => this.travelTo(null));
    this.eventList.addEventListener("click", (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>("button[data-seq]");
      if (button) this.travelTo(Number(button.dataset.seq));
    });
    this.columnsEl.addEventListener("keydown", (event) => this.onKey(event));
    this.columnsEl.addEventListener("click", (event) => {
      const card = (event.target as Element).closest<HTMLElement>(".card");
      if (card && !this.readOnly) this.dialog.open(card.dataset.cardId ?? "");
    });
    this.columnsEl.addEventListener("dragstart", (event) => this.onDragStart(event));

    document.title = `${this.boardId} · Edgeloop board`;
    this.connections.set("summary", "connecting");
    this.connections.set("events", "connecting");
    this.watches.push(
      this.backend.watchSummary(this.boardId, {
        onValue: (summary) => this.onSummary(summary),
        onConnection: (c) => this.onConnection("summary", c),
        onError: (e) => this.onWatchError(e),
      }),
      this.backend.watchEvents(this.boardId, {
        onValue: (event) => this.onEvent(event),
        onConnection: (c) => this.onConnection("events", c),
        onError: (e) => this.onWatchError(e),
      }),
    );
  }

  /** Stops the subscriptions. */
  close(): void {
    for (const watch of this.watches) watch.close();
    clearTimeout(this.travelTimer);
    clearInterval(this.clock);
    cancelAnimationFrame(this.timelineFrame);
  }

  /** The live board, if known. */
  get summary(): BoardSummary | null {
    return this.live;
  }

  /** Whether the page shows the past (no changes allowed). */
  get readOnly(): boolean {
    return this.viewVersion !== null;
  }

  /** The board's events so far. */
  get log(): readonly BoardEnvelope[] {
    return this.events;
  }

  /** The signed-in actor. */
  get author(): string {
    return this.actor;
  }

  // ------------------------------------------------------------------ live data

  private onSummary(summary: BoardSummary | null): void {
    this.live = summary;
    this.summaryKnown = true;
    this.updateSlider();
    if (!this.readOnly) this.render(summary);
    this.dialog.refresh();
  }

  private onEvent(event: BoardEnvelope): void {
    if (!addEvent(this.events, event)) return;
    this.updateSlider();
    this.scheduleTimeline();
    // Live changes only: a catch-up replays history, which nobody wants read aloud.
    if (this.connections.get("events") === "live") {
      this.announcer.textContent = describeEvent(event, cardTitles(this.events));
    }
  }

  /** Redraws the timeline (and the open dialog's comments) once per frame at most. */
  private scheduleTimeline(): void {
    if (this.timelineFrame) return;
    this.timelineFrame = requestAnimationFrame(() => {
      this.timelineFrame = 0;
      this.renderTimeline();
      this.dialog.refresh();
    });
  }

  /** Relative times age: redraw them. */
  private tick(): void {
    if (!this.readOnly) this.render(this.live);
    this.scheduleTimeline();
  }

  private onConnection(which: string, connection: Connection): void {
    this.connections.set(which, connection);
    showConnection(combine(this.connections.values()));
  }

  private onWatchError(error: unknown): void {
    notifyError(error, { action: "follow this board live" });
  }

  // ------------------------------------------------------------------ commands

  /**
   * Sends `command`; on refusal shows why in words (`context` names what the message
   * should mention). Resolves to `null` when it was applied, else to the error.
   */
  async send(command: BoardCommand, context: Context, expected: ExpectedVersion = "any"): Promise<unknown> {
    try {
      await this.backend.boardCommand(this.boardId, command, expected);
      clearNotice();
      return null;
    } catch (error) {
      notifyError(error, context);
      return error ?? new Error("refused");
    }
  }

  /** Moves a card to `toColumn` (nothing when it is there already). */
  async move(cardId: string, toColumn: string): Promise<void> {
    const found = this.findCard(cardId);
    if (!found || found.column.name === toColumn) return;
    const target = this.live?.columns.find((c) => c.name === toColumn);
    if (document.activeElement?.closest(".card")) this.pendingFocus = { cardId, column: toColumn };
    await this.send(
      { type: "MoveCard", data: { card_id: cardId, to_column: toColumn } },
      { cardTitle: found.card.title, column: toColumn, wipLimit: target?.wip_limit, action: "move the card" },
    );
  }

  /** The card and its column on the live board. */
  findCard(cardId: string): { card: Card; column: Column } | null {
    for (const column of this.live?.columns ?? []) {
      const card = column.cards.find((c) => c.card_id === cardId);
      if (card) return { card, column };
    }
    return null;
  }

  private async addCard(column: Column, input: HTMLInputElement): Promise<void> {
    const title = input.value.trim();
    if (!title) {
      notify("A card needs a title.");
      return;
    }
    const cardId = `c-${crypto.randomUUID().slice(0, 8)}`;
    input.disabled = true;
    const failed = await this.send(
      { type: "AddCard", data: { card_id: cardId, title, column: column.name } },
      { cardTitle: title, column: column.name, wipLimit: column.wip_limit, action: "add the card" },
    );
    input.disabled = false;
    if (!failed) input.value = "";
    input.focus();
  }

  // ------------------------------------------------------------------ input

  private onKey(event: KeyboardEvent): void {
    const cardEl = (event.target as Element).closest<HTMLElement>(".card");
    if (!cardEl || this.readOnly) return;
    const cardId = cardEl.dataset.cardId ?? "";
    if ((event.key === "Enter" || event.key === " ") && event.target === cardEl) {
      event.preventDefault();
      this.dialog.open(cardId);
      return;
    }
    if (event.altKey && (event.key === "ArrowLeft" || event.key === "ArrowRight")) {
      event.preventDefault();
      const columns = this.live?.columns ?? [];
      const from = columns.findIndex((c) => c.cards.some((card) => card.card_id === cardId));
      const to = from + (event.key === "ArrowLeft" ? -1 : 1);
      if (from >= 0 && to >= 0 && to < columns.length) void this.move(cardId, columns[to].name);
    }
  }

  private onDragStart(event: DragEvent): void {
    const cardEl = (event.target as Element).closest<HTMLElement>(".card");
    if (!cardEl || !event.dataTransfer || this.readOnly) return;
    event.dataTransfer.setData(CARD_MIME, cardEl.dataset.cardId ?? "");
    event.dataTransfer.effectAllowed = "move";
    cardEl.classList.add("dragging");
    cardEl.addEventListener("dragend", () => cardEl.classList.remove("dragging"), { once: true });
  }

  private wireDrop(section: HTMLElement, columnName: () => string): void {
    section.addEventListener("dragover", (event) => {
      if (this.readOnly || !event.dataTransfer?.types.includes(CARD_MIME)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      section.classList.add("drop-target");
    });
    section.addEventListener("dragleave", (event) => {
      if (!section.contains(event.relatedTarget as Node | null)) section.classList.remove("drop-target");
    });
    section.addEventListener("drop", (event) => {
      section.classList.remove("drop-target");
      const cardId = event.dataTransfer?.getData(CARD_MIME);
      if (!cardId || this.readOnly) return;
      event.preventDefault();
      void this.move(cardId, columnName());
    });
  }

  // ------------------------------------------------------------------ time travel

  private head(): number {
    return Math.max(this.live?.version ?? 0, this.events[this.events.length - 1]?.seq ?? 0);
  }

  private updateSlider(): void {
    const head = this.head();
    this.slider.max = String(head);
    this.slider.min = head > 0 ? "1" : "0";
    this.slider.disabled = head === 0;
    if (this.viewVersion === null) this.slider.value = String(head);
    const shown = this.viewVersion ?? head;
    this.sliderOut.textContent = head ? `${shown} of ${head}` : "–";
    this.slider.setAttribute("aria-valuetext", head ? `version ${shown} of ${head}` : "no versions yet");
    this.liveButton.disabled = this.viewVersion === null;
  }

  private onSlider(): void {
    const version = Number(this.slider.value);
    const target = version >= this.head() ? null : version;
    this.viewVersion = target;
    this.updateSlider();
    // Coalesce a drag across many versions into one request.
    clearTimeout(this.travelTimer);
    this.travelTimer = setTimeout(() => void this.travelTo(target), 120);
  }

  /** Shows the board as of `version` (`null`: live). */
  async travelTo(version: number | null): Promise<void> {
    clearTimeout(this.travelTimer);
    if (version !== null && version >= this.head()) version = null;
    this.viewVersion = version;
    this.updateSlider();
    const request = ++this.travelRequest;
    if (version === null) {
      this.banner.hidden = true;
      this.root.classList.remove("read-only");
      this.render(this.live);
      this.renderTimeline();
      return;
    }
    this.banner.hidden = false;
    replaceChildren(this.banner, `Loading version ${version}…`);
    try {
      const at = await this.backend.boardAt(this.boardId, version);
      if (request !== this.travelRequest) return;
      const when = this.events.find((e) => e.seq === at.version)?.recorded_at ?? "";
      const past = summaryAt(this.boardId, at.version, at.state, this.events, when);
      this.root.classList.add("read-only");
      replaceChildren(
        this.banner,
        h(
          "p",
          {},
          `You are looking at version ${at.version} of ${this.head()}`,
          when ? ` (${new Date(when).toLocaleString()})` : "",
          ". Changes are off while you look back.",
        ),
        h("button", { type: "button", onclick: () => void this.travelTo(null) }, "Back to live"),
      );
      this.render(past);
      this.renderTimeline();
    } catch (error) {
      if (request !== this.travelRequest) return;
      notifyError(error, { action: `show version ${version}` });
    }
  }

  // ------------------------------------------------------------------ rendering

  private render(summary: BoardSummary | null): void {
    if (!summary) {
      this.title.textContent = this.summaryKnown ? `Board “${this.boardId}” not found` : "Loading…";
      replaceChildren(
        this.meta,
        this.summaryKnown ? h("span", {}, "It has no events yet. ", h("a", { href: "./" }, "Create or pick a board")) : "",
      );
      return;
    }
    this.title.textContent = summary.title;
    replaceChildren(
      this.meta,
      `${summary.board_id} · version ${summary.version}`,
      summary.archived_count ? ` · ${summary.archived_count} archived` : "",
      summary.last_activity_at ? ` · last change ${relativeTime(summary.last_activity_at)}` : "",
    );

    const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>(".card")?.dataset.cardId;
    const seen = new Set<string>();
    for (const column of summary.columns) {
      seen.add(column.name);
      let els = this.columnEls.get(column.name);
      if (!els) {
        els = this.createColumn(column.name);
        this.columnEls.set(column.name, els);
      }
      els.column = column;
      this.columnsEl.appendChild(els.section); // moves it into board order
      this.fillColumn(els, column);
    }
    for (const [name, els] of this.columnEls) {
      if (!seen.has(name)) {
        els.section.remove();
        this.columnEls.delete(name);
      }
    }
    // Focus follows a card the user moved (its element is new in the new column), and a
    // card the address names is brought into view and marked until focus leaves it.
    const pending = this.pendingFocus;
    const want = pending?.cardId ?? focused;
    const el = want ? this.columnsEl.querySelector<HTMLElement>(`.card[data-card-id="${CSS.escape(want)}"]`) : null;
    const arrived = el && (!pending || pending.column === null || el.closest<HTMLElement>(".column")?.dataset.column === pending.column);
    if (el && arrived) {
      if (document.activeElement !== el && !this.dialog.isOpen) el.focus();
      if (pending && pending.column === null) {
        el.scrollIntoView({ block: "nearest", inline: "nearest" });
        el.classList.add("highlight");
        el.addEventListener("blur", () => el.classList.remove("highlight"), { once: true });
      }
      this.pendingFocus = null;
    }
  }

  private createColumn(name: string): ColumnElements {
    const slug = `col-${name.replace(/[^A-Za-z0-9_-]/g, "_")}-${Math.random().toString(36).slice(2, 7)}`;
    const heading = h("h3", { id: `${slug}-h` }, name);
    const count = h("span", { class: "count" });
    const list = h("ol", { class: "cards", "aria-label": `Cards in ${name}` });
    const input = h("input", {
      name: "title",
      id: `${slug}-new`,
      placeholder: "Add a card…",
      maxlength: 200,
      autocomplete: "off",
    }) as HTMLInputElement;
    const els: ColumnElements = {
      section: h("section", { class: "column", "data-column": name, "aria-labelledby": `${slug}-h` }),
      count,
      list,
      cards: new Map(),
      column: null,
    };
    const form = h(
      "form",
      { class: "add-card", "aria-label": `Add a card to ${name}` },
      h("label", { for: `${slug}-new`, class: "visually-hidden" }, `New card title in ${name}`),
      input,
      h("button", { type: "submit" }, "Add"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (els.column && !this.readOnly) void this.addCard(els.column, input);
    });
    els.section.append(h("header", { class: "column-head" }, heading, count), list, form);
    this.wireDrop(els.section, () => name);
    return els;
  }

  private fillColumn(els: ColumnElements, column: Column): void {
    const limit = column.wip_limit;
    els.count.textContent = limit === null ? String(column.card_count) : `${column.card_count} / ${limit}`;
    els.count.setAttribute(
      "aria-label",
      limit === null
        ? `${column.card_count} card${column.card_count === 1 ? "" : "s"}`
        : `${column.card_count} of at most ${limit} cards`,
    );
    els.section.classList.toggle("full", column.full);
    const keep = new Set<string>();
    for (const card of column.cards) {
      keep.add(card.card_id);
      let el = els.cards.get(card.card_id);
      if (!el) {
        el = h("li", { class: "card", tabindex: 0, "data-card-id": card.card_id, "aria-describedby": "card-help" });
        els.cards.set(card.card_id, el);
      }
      el.draggable = !this.readOnly;
      el.setAttribute("aria-label", card.title);
      replaceChildren(
        el,
        h("span", { class: "card-title" }, card.title),
        card.labels.length || card.comments
          ? h(
              "span",
              { class: "card-meta" },
              card.labels.map((label) => h("span", { class: "label" }, label)),
              card.comments
                ? h("span", { class: "comments" }, `${card.comments} comment${card.comments === 1 ? "" : "s"}`)
                : null,
            )
          : null,
      );
      els.list.appendChild(el); // in board order
    }
    for (const [id, el] of els.cards) {
      if (!keep.has(id)) {
        el.remove();
        els.cards.delete(id);
      }
    }
  }

  private renderTimeline(): void {
    const titles = cardTitles(this.events);
    const shown = this.viewVersion ?? Infinity;
    const items = this.events.slice(-TIMELINE_ENTRIES).reverse().map((e) =>
      h(
        "li",
        { class: e.seq > shown ? "future" : e.seq === shown ? "current" : "" },
        h("button", { type: "button", "data-seq": e.seq, "aria-label": `Show version ${e.seq}` }, `v${e.seq}`),
        h("span", { class: "event-text" }, describeEvent(e, titles)),
        h("time", { datetime: e.recorded_at, title: new Date(e.recorded_at).toLocaleString() }, relativeTime(e.recorded_at)),
      ),
    );
    replaceChildren(this.eventList, items);
  }
}

interface ColumnElements {
  section: HTMLElement;
  count: HTMLElement;
  list: HTMLElement;
  cards: Map<string, HTMLElement>;
  /** The column as last rendered. */
  column: Column | null;
}

/** The card dialog: edit, move, comments, archive. */
class CardDialog {
  readonly element: HTMLDialogElement;
  private cardId = "";
  /** The board's version when the dialog opened: an edit expects it (a conflict otherwise). */
  private openedAt = 0;
  /** The next refresh selects the card's own column in "Move to" (set on opening). */
  private resetMove = false;
  private readonly heading = h("h2", { id: "card-dialog-title" });
  private readonly notice = h("div", { class: "notice", role: "alert", hidden: true });
  private readonly titleInput = h("input", { name: "title", id: "card-title-input", maxlength: 200, required: true }) as HTMLInputElement;
  private readonly labelsInput = h("input", { name: "labels", id: "card-labels-input", autocomplete: "off" }) as HTMLInputElement;
  private readonly moveSelect = h("select", { name: "column", id: "card-move-select" }) as HTMLSelectElement;
  private readonly comments = h("ol", { class: "comments-list", "aria-label": "Comments" });
  private readonly commentInput = h("textarea", { name: "text", id: "card-comment-input", maxlength: 4000, rows: 3 }) as HTMLTextAreaElement;
  private readonly state = h("p", { class: "card-state" });

  constructor(private readonly board: BoardView) {
    const edit = h(
      "form",
      { class: "edit-card", "aria-label": "Edit the card" },
      h("label", { for: "card-title-input" }, "Title"),
      this.titleInput,
      h("label", { for: "card-labels-input" }, "Labels (comma-separated)"),
      this.labelsInput,
      h("button", { type: "submit" }, "Save"),
    );
    edit.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    const move = h(
      "form",
      { class: "move-card", "aria-label": "Move the card" },
      h("label", { for: "card-move-select" }, "Move to column"),
      this.moveSelect,
      h("button", { type: "submit" }, "Move"),
    );
    move.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.board.move(this.cardId, this.moveSelect.value);
    });
    const comment = h(
      "form",
      { class: "comment-card", "aria-label": "Comment on the card" },
      h("label", { for: "card-comment-input" }, "Add a comment"),
      this.commentInput,
      h("button", { type: "submit" }, "Comment"),
    );
    comment.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.comment();
    });
    this.element = h(
      "dialog",
      { id: "card-dialog", "aria-labelledby": "card-dialog-title" },
      h("div", { class: "dialog-head" }, this.heading, h("button", { type: "button", class: "close", "aria-label": "Close", onclick: () => this.close() }, "×")),
      this.notice,
      this.state,
      edit,
      move,
      h("section", { class: "comments-section", "aria-label": "Comments" }, h("h3", {}, "Comments"), this.comments, comment),
      h("button", { type: "button", class: "danger", id: "archive-card", onclick: () => void this.archive() }, "Archive card"),
    ) as HTMLDialogElement;
    this.element.addEventListener("close", () => setNoticeTarget(null));
  }

  /** Whether the dialog is showing. */
  get isOpen(): boolean {
    return this.element.open;
  }

  /** Shows card `cardId` (nothing when it is not on the live board); messages go to the dialog. */
  open(cardId: string): void {
    const found = this.board.findCard(cardId);
    if (!found) return;
    this.cardId = cardId;
    this.openedAt = this.board.summary?.version ?? 0;
    this.titleInput.value = found.card.title;
    this.labelsInput.value = found.card.labels.join(", ");
    this.commentInput.value = "";
    this.notice.hidden = true;
    this.resetMove = true;
    this.refresh();
    setNoticeTarget(this.notice);
    this.element.showModal();
    this.titleInput.focus();
  }

  /** Closes the dialog and gives the focus back to the card. */
  close(): void {
    this.element.close();
    setNoticeTarget(null);
    const el = document.querySelector<HTMLElement>(`.card[data-card-id="${CSS.escape(this.cardId)}"]`);
    el?.focus();
  }

  /** Redraws what changed on the server while the dialog is open. */
  refresh(): void {
    if (!this.element.open && this.cardId === "") return;
    const found = this.board.findCard(this.cardId);
    const title = found?.card.title ?? cardTitles(this.board.log).get(this.cardId) ?? this.cardId;
    this.heading.textContent = title;
    this.state.textContent = found
      ? `In ${found.column.name}.`
      : "This card is archived (or was removed); it can no longer be changed.";
    const columns = this.board.summary?.columns ?? [];
    // Keep the user's choice across a refresh; on opening, start at the card's column.
    const chosen = this.resetMove ? found?.column.name : this.moveSelect.value;
    this.resetMove = false;
    replaceChildren(
      this.moveSelect,
      columns.map((c) =>
        h(
          "option",
          { value: c.name, selected: c.name === chosen },
          c.wip_limit === null ? c.name : `${c.name} (${c.card_count}/${c.wip_limit})`,
        ),
      ),
    );
    const comments = commentsOf(this.board.log, this.cardId);
    replaceChildren(
      this.comments,
      comments.length
        ? comments.map((c) =>
            h("li", {}, h("strong", {}, c.author), " ", h("time", { datetime: c.at }, relativeTime(c.at)), h("p", {}, c.text)),
          )
        : h("li", { class: "empty" }, "No comments yet."),
    );
  }

  private async save(): Promise<void> {
    const found = this.board.findCard(this.cardId);
    const title = this.titleInput.value.trim();
    const labels = this.labelsInput.value
      .split(",")
      .map((l) => l.trim())
      .filter(Boolean);
    const data: { card_id: string; title?: string; labels?: string[] } = { card_id: this.cardId };
    if (title !== found?.card.title) data.title = title;
    if (labels.join("\u0000") !== (found?.card.labels ?? []).join("\u0000")) data.labels = labels;
    if (data.title === undefined && data.labels === undefined) {
      notify("Nothing changed, so there was nothing to save.", "info");
      return;
    }
    const error = await this.board.send(
      { type: "EditCard", data },
      { cardTitle: found?.card.title ?? title, action: "save your edit" },
      this.openedAt,
    );
    if (!error) this.close();
    // After a conflict the dialog shows the latest board: trying again expects that version.
    else if (error instanceof EdgeloopError && error.versionConflict) this.openedAt = error.versionConflict.actual;
  }

  private async comment(): Promise<void> {
    const text = this.commentInput.value.trim();
    if (!text) {
      notify("A comment needs some text.");
      return;
    }
    const title = this.board.findCard(this.cardId)?.card.title ?? cardTitles(this.board.log).get(this.cardId);
    const error = await this.board.send(
      { type: "CommentOnCard", data: { card_id: this.cardId, author: this.board.author, text } },
      { cardTitle: title, action: "add your comment" },
    );
    if (!error) {
      this.commentInput.value = "";
      notify("Comment added.", "info");
    }
  }

  private async archive(): Promise<void> {
    const title = this.board.findCard(this.cardId)?.card.title ?? cardTitles(this.board.log).get(this.cardId);
    const error = await this.board.send(
      { type: "ArchiveCard", data: { card_id: this.cardId } },
      { cardTitle: title, action: "archive the card" },
    );
    if (!error) this.close();
  }
}
