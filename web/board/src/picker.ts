/**
 * The start page: the tenant's boards (from `board_summary`, most recently active first)
 * and a form that creates one (`CreateBoard` with `expected_version: "none"`, so an id
 * that is taken is refused rather than overwritten).
 *
 * @module
 */
import type { Backend } from "./backend.ts";
import { h, relativeTime, replaceChildren } from "./dom.ts";
import { boardHref } from "./routes.ts";
import { notify, notifyError } from "./ui.ts";

/** How many boards the list shows. */
const BOARDS_SHOWN = 100;

/** A board id from a title: lowercase letters, digits and dashes, at most 64 characters. */
export function slugify(title: string): string {
  return title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}

/** Mounts the board picker into `root`. */
export function mountPicker(root: HTMLElement, backend: Backend): () => void {
  document.title = "Boards · Edgeloop";
  const list = h("ul", { class: "board-list", id: "board-list", "aria-label": "Boards" }, h("li", {}, "Loading…"));
  const titleInput = h("input", { id: "new-board-title", name: "title", required: true, maxlength: 200 }) as HTMLInputElement;
  const idInput = h("input", {
    id: "new-board-id",
    name: "id",
    required: true,
    maxlength: 64,
    pattern: "[A-Za-z0-9_\\-.]+",
    autocomplete: "off",
  }) as HTMLInputElement;
  let idEdited = false;
  titleInput.addEventListener("input", () => {
    if (!idEdited) idInput.value = slugify(titleInput.value);
  });
  idInput.addEventListener("input", () => (idEdited = idInput.value !== ""));

  const form = h(
    "form",
    { class: "new-board", id: "new-board", "aria-labelledby": "new-board-heading" },
    h("h2", { id: "new-board-heading" }, "New board"),
    h("label", { for: "new-board-title" }, "Title"),
    titleInput,
    h("label", { for: "new-board-id" }, "Id (letters, digits, - _ .)"),
    idInput,
    h("button", { type: "submit" }, "Create board"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const title = titleInput.value.trim();
    const id = idInput.value.trim() || slugify(title);
    if (!title || !id) {
      notify("A board needs a title and an id.");
      return;
    }
    try {
      await backend.boardCommand(id, { type: "CreateBoard", data: { title } }, "none");
      location.assign(boardHref(id));
    } catch (error) {
      const conflict = error instanceof Error && "code" in error && error.code === "version_conflict";
      if (conflict) notify(`A board with the id “${id}” already exists. Open it from the list, or choose another id.`);
      else notifyError(error, { action: "create the board" });
    }
  });

  replaceChildren(
    root,
    h(
      "div",
      { class: "picker" },
      h("section", { "aria-labelledby": "boards-heading" }, h("h2", { id: "boards-heading" }, "Boards"), list),
      form,
    ),
  );

  let stopped = false;
  backend
    .boards(BOARDS_SHOWN)
    .then((boards) => {
      if (stopped) return;
      replaceChildren(
        list,
        boards.length
          ? boards.map((b) =>
              h(
                "li",
                {},
                h("a", { href: boardHref(b.board_id) }, b.title),
                h(
                  "span",
                  { class: "board-info" },
                  ` ${b.board_id} · ${b.columns.reduce((n, c) => n + c.card_count, 0)} cards · ${relativeTime(b.last_activity_at)}`,
                ),
              ),
            )
          : h("li", { class: "empty" }, "No boards yet: create one."),
      );
    })
    .catch((error) => {
      if (!stopped) notifyError(error, { action: "list the boards" });
    });
  return () => {
    stopped = true;
  };
}
