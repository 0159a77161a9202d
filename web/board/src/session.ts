/**
 * Signing in with a token: from the address's `#token=` fragment, from this tab's
 * `sessionStorage`, or pasted into the token dialog — which is also how an expired token
 * is replaced (the client library's `refreshToken` callback waits on it).
 *
 * @module
 */
import { h, replaceChildren } from "./dom.ts";
import {
  clearToken,
  decodeToken,
  isExpired,
  storedToken,
  storeToken,
  takeTokenFromFragment,
  type TokenInfo,
} from "./token.ts";

/** How long before expiry the page starts warning. */
const WARN_BEFORE_MS = 5 * 60 * 1000;

/** The token the page holds, and a way to ask the user for a fresh one. */
export class Session {
  private info: TokenInfo | null;
  private asking: Promise<string> | null = null;
  private warnTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(info: TokenInfo | null) {
    this.info = info;
  }

  /**
   * Reads the fragment (stripping it from the address bar) or the tab's storage. A
   * fragment token that cannot be decoded is dropped, with `invalid` set.
   */
  static start(): { session: Session; invalid: boolean } {
    const fromFragment = takeTokenFromFragment(location, history);
    let invalid = false;
    if (fromFragment !== null) {
      const info = decodeToken(fromFragment);
      if (info) storeToken(sessionStorage, info);
      else invalid = true;
    }
    const info = storedToken(sessionStorage);
    return { session: new Session(info && !isExpired(info) ? info : null), invalid };
  }

  /** The current token's claims, if the page has a token that has not expired. */
  get current(): TokenInfo | null {
    return this.info && !isExpired(this.info) ? this.info : null;
  }

  /** The current token (may be expired: the server says so). */
  get token(): string {
    return this.info?.token ?? "";
  }

  /**
   * Asks the user for a fresh token (one dialog at a time, however many callers wait) and
   * resolves with it once a decodable, unexpired one was pasted.
   */
  askForToken(reason: string): Promise<string> {
    this.asking ??= new Promise<string>((resolve) => {
      const dialog = tokenDialog(reason, (info) => {
        this.info = info;
        storeToken(sessionStorage, info);
        this.scheduleWarning();
        this.asking = null;
        resolve(info.token);
      });
      document.body.appendChild(dialog);
      dialog.showModal();
    });
    return this.asking;
  }

  /** Forgets the token (sign out). */
  signOut(): void {
    clearToken(sessionStorage);
    this.info = null;
  }

  /** Shows a warning in the header a few minutes before the token expires. */
  scheduleWarning(): void {
    clearTimeout(this.warnTimer);
    const info = this.current;
    const el = document.getElementById("token-expiry");
    if (!info || !el) return;
    el.hidden = true;
    const warnIn = info.expiresAt - WARN_BEFORE_MS - Date.now();
    const warn = () => {
      el.hidden = false;
      el.textContent = `Your session ends at ${new Date(info.expiresAt).toLocaleTimeString()}.`;
    };
    if (warnIn <= 0) warn();
    // Timers beyond ~24.8 days overflow; a token that long-lived gets no warning.
    else if (warnIn < 2 ** 31 - 1) this.warnTimer = setTimeout(warn, warnIn);
  }
}

/** A modal dialog that takes a pasted token; `done` runs once with a usable one. */
function tokenDialog(reason: string, done: (info: TokenInfo) => void): HTMLDialogElement {
  const input = h("textarea", {
    id: "token-input",
    rows: 4,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
  }) as HTMLTextAreaElement;
  const error = h("p", { class: "notice", role: "alert", hidden: true });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "token-dialog-title" }, "Sign in with a token"),
    h("p", {}, reason),
    h(
      "p",
      { class: "hint" },
      "In local development, ",
      h("code", {}, "scripts/dev"),
      " prints a link that signs you in; ",
      h("code", {}, "cargo run -q -p cli -- token --tenant demo --scopes \"commands read\" --ttl 1h"),
      " mints a new token. The token is kept only in this tab until it closes.",
    ),
    h("label", { for: "token-input" }, "Token"),
    input,
    error,
    h("button", { type: "submit" }, "Continue"),
  );
  const dialog = h("dialog", { id: "token-dialog", "aria-labelledby": "token-dialog-title" }, form) as HTMLDialogElement;
  // The page cannot work without a token: Escape does not dismiss the dialog.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const info = decodeToken(input.value);
    if (!info) {
      error.hidden = false;
      replaceChildren(error, "That is not a token (three dot-separated parts, as printed by the token command).");
      return;
    }
    if (isExpired(info)) {
      error.hidden = false;
      replaceChildren(error, "That token has already expired. Mint a new one.");
      return;
    }
    dialog.close();
    dialog.remove();
    done(info);
  });
  return dialog;
}
