/**
 * The feedback inbox: the `feedback_inbox` projection, newest first, filterable by triage
 * status, each triaged item linking to the card it became. The list has no live socket
 * (documents do, lists do not), so it is read again every few seconds while visible.
 *
 * @module
 */
import type { FeedbackInboxItem } from "../../client/src/index.ts";
import type { Backend } from "./backend.ts";
import { h, relativeTime, replaceChildren } from "./dom.ts";
import { boardHref } from "./routes.ts";
import { notifyError, showConnection } from "./ui.ts";

/** How often the list is read again while the page is visible. */
const REFRESH_MS = 5000;
/** How many items the list shows. */
const ITEMS_SHOWN = 100;

const statusText: Record<FeedbackInboxItem["status"], string> = {
  open: "Open",
  triaged: "Triaged",
  closed: "Closed",
};

/** Mounts the inbox into `root`; returns a function that unmounts it. */
export function mountInbox(root: HTMLElement, backend: Backend): () => void {
  document.title = "Feedback inbox · Edgeloop";
  const filter = h(
    "select",
    { id: "inbox-status" },
    h("option", { value: "" }, "All"),
    (Object.keys(statusText) as FeedbackInboxItem["status"][]).map((s) => h("option", { value: s }, statusText[s])),
  ) as HTMLSelectElement;
  const list = h("ol", { class: "inbox", id: "inbox", "aria-label": "Feedback, newest first" }, h("li", {}, "Loading…"));
  const refresh = h("button", { type: "button", id: "inbox-refresh" }, "Refresh");
  replaceChildren(
    root,
    h(
      "section",
      { class: "inbox-view", "aria-labelledby": "inbox-heading" },
      h("h2", { id: "inbox-heading" }, "Feedback inbox"),
      h("div", { class: "inbox-tools" }, h("label", { for: "inbox-status" }, "Status "), filter, refresh),
      list,
    ),
  );

  let stopped = false;
  let request = 0;
  const load = async () => {
    const mine = ++request;
    try {
      const items = await backend.feedback((filter.value || null) as FeedbackInboxItem["status"] | null, ITEMS_SHOWN);
      if (stopped || mine !== request) return;
      showConnection("live");
      replaceChildren(list, items.length ? items.map(item) : h("li", { class: "empty" }, "No feedback here."));
    } catch (error) {
      if (stopped || mine !== request) return;
      showConnection("reconnecting");
      notifyError(error, { action: "read the inbox" });
    }
  };
  filter.addEventListener("change", () => void load());
  refresh.addEventListener("click", () => void load());
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") void load();
  }, REFRESH_MS);
  void load();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

function item(f: FeedbackInboxItem): HTMLElement {
  return h(
    "li",
    { class: `feedback severity-${f.severity}`, "data-feedback-id": f.feedback_id },
    h(
      "div",
      { class: "feedback-head" },
      h("span", { class: `status status-${f.status}` }, statusText[f.status]),
      h("span", { class: "severity", title: "Severity" }, f.severity),
      h("span", { class: "source" }, f.source),
      h("time", { datetime: f.submitted_at, title: new Date(f.submitted_at).toLocaleString() }, relativeTime(f.submitted_at)),
    ),
    h("p", { class: "feedback-text" }, f.text),
    f.card
      ? h(
          "p",
          { class: "feedback-card" },
          "Became ",
          h("a", { href: boardHref(f.card.board_id, f.card.card_id) }, `card ${f.card.card_id} on ${f.card.board_id}`),
          f.labels.length ? ` · ${f.labels.join(", ")}` : "",
        )
      : null,
    f.closed_reason ? h("p", { class: "feedback-closed" }, `Closed: ${f.closed_reason}`) : null,
  );
}
