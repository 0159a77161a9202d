/**
 * The live board page's entry: sign in (see `session.ts`), connect the client library,
 * report the page's own uncaught errors, and mount the view the address names.
 *
 * @module
 */
import { createBackend } from "./api.ts";
import { h, replaceChildren } from "./dom.ts";
import { mountBoard } from "./board-view.ts";
import { mountInbox } from "./inbox.ts";
import { mountPicker } from "./picker.ts";
import { parseRoute } from "./routes.ts";
import { Session } from "./session.ts";
import { installErrorReporting } from "./telemetry.ts";

async function start(): Promise<void> {
  const main = document.getElementById("main") as HTMLElement;
  const { session, invalid } = Session.start();
  if (!session.current) {
    await session.askForToken(
      invalid
        ? "The token in the link could not be read."
        : "This page talks to Edgeloop with a short-lived token, and it has none (or its token expired).",
    );
  }
  session.scheduleWarning();
  const who = document.getElementById("who");
  const claims = session.current;
  if (who && claims) {
    replaceChildren(
      who,
      h("span", {}, `${claims.actor} @ ${claims.tenant}`),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            session.signOut();
            location.reload();
          },
        },
        "Sign out",
      ),
    );
  }

  installErrorReporting(() => session.token);
  const backend = createBackend(location.origin, session);

  const route = parseRoute(location.search);
  document.querySelectorAll<HTMLAnchorElement>("header nav a").forEach((a) => {
    const current =
      (route.view === "inbox" && a.id === "nav-inbox") || (route.view !== "inbox" && a.id === "nav-boards");
    if (current) a.setAttribute("aria-current", "page");
  });
  switch (route.view) {
    case "board":
      mountBoard(main, { backend, boardId: route.boardId, actor: claims?.actor ?? "someone", focusCard: route.cardId });
      break;
    case "inbox":
      mountInbox(main, backend);
      break;
    case "picker":
      mountPicker(main, backend);
      document.getElementById("connection")?.setAttribute("hidden", "");
      break;
  }
}

void start();
