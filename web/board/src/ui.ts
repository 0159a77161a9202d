/**
 * The page's shared chrome: the notice area (readable messages, `role="alert"`), the
 * connection indicator, and turning any thrown value into a message.
 *
 * @module
 */
import { EdgeloopError } from "../../client/src/index.ts";
import type { Connection } from "./backend.ts";
import { h, replaceChildren } from "./dom.ts";
import { describeRefusal, type Context, type Refusal } from "./messages.ts";

/** Where messages go: the page's notice area, or the open dialog's. */
let noticeTarget: () => HTMLElement = () => document.getElementById("notice") as HTMLElement;

/** Sends messages to `target` while it is set (a dialog), back to the page's otherwise. */
export function setNoticeTarget(target: HTMLElement | null): void {
  noticeTarget = target ? () => target : () => document.getElementById("notice") as HTMLElement;
}

/** Shows a message; `kind` `error` for refusals, `info` for news. Replaces the last one. */
export function notify(text: string, kind: "error" | "info" = "error"): void {
  const area = noticeTarget();
  area.dataset.kind = kind;
  area.hidden = false;
  replaceChildren(
    area,
    h("p", {}, text),
    h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss message", onclick: () => clearNotice(area) }, "×"),
  );
}

/** Hides the message in `area` (default: the current target). */
export function clearNotice(area: HTMLElement = noticeTarget()): void {
  area.hidden = true;
  area.replaceChildren();
}

/** The parts of any thrown value the messages module reads. */
export function toRefusal(error: unknown): Refusal {
  if (error instanceof EdgeloopError) {
    const conflict = error.versionConflict;
    return {
      status: error.status,
      code: error.kind === "network" ? "network_error" : error.code,
      message: error.message,
      rule: error.rule,
      actual: conflict?.actual,
    };
  }
  return { code: "unknown", message: error instanceof Error ? error.message : String(error) };
}

/** Shows `error` in words, with what the page knows about the attempt. */
export function notifyError(error: unknown, context: Context = {}): void {
  notify(describeRefusal(toRefusal(error), context));
}

const connectionText: Record<Connection, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Disconnected",
};

/** Shows the combined state of the page's subscriptions in the header. */
export function showConnection(connection: Connection): void {
  const indicator = document.getElementById("connection");
  if (!indicator) return;
  indicator.dataset.state = connection;
  indicator.textContent = connectionText[connection];
}

/** The combined connection of several subscriptions: live only when all are. */
export function combine(connections: Iterable<Connection>): Connection {
  let result: Connection = "live";
  for (const c of connections) {
    if (c === "stopped") return "stopped";
    if (c === "reconnecting") result = "reconnecting";
    else if (c === "connecting" && result === "live") result = "connecting";
  }
  return result;
}
