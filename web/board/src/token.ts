/**
 * The page's bearer token: where it comes from and where it is kept.
 *
 * In local development `scripts/dev` prints `http://127.0.0.1:8787/#token=…` with a
 * short-lived token. The fragment never reaches the server (browsers do not send it), and
 * the page moves the token into `sessionStorage` (this tab only, gone when it closes) and
 * strips it from the address bar at once, so it does not linger in the history, in a
 * bookmark or on a screen share. No secret is ever built into the page.
 *
 * The claims are decoded only to show who is signed in and when the token expires; the
 * Worker alone verifies tokens.
 *
 * @module
 */

/** The `sessionStorage` key the token is kept under. */
export const STORAGE_KEY = "edgeloop.token";

/** What the page reads from a token's payload (never trusted: for display and expiry). */
export interface TokenInfo {
  token: string;
  /** `sub`: the actor recorded on the events the page causes. */
  actor: string;
  tenant: string;
  scopes: string[];
  /** Expiry, milliseconds since the Unix epoch. */
  expiresAt: number;
}

/**
 * Decodes a JWT's payload (no verification). `null` when `token` is not a three-part JWT
 * with a JSON payload carrying `exp`.
 */
export function decodeToken(token: string): TokenInfo | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    if (typeof claims.exp !== "number") return null;
    return {
      token: token.trim(),
      actor: typeof claims.sub === "string" ? claims.sub : "unknown",
      tenant: typeof claims.tenant === "string" ? claims.tenant : "unknown",
      scopes: typeof claims.scope === "string" ? claims.scope.split(" ").filter(Boolean) : [],
      expiresAt: claims.exp * 1000,
    };
  } catch {
    return null;
  }
}

/** Whether the token has expired (or expires within `marginMs`) at `now`. */
export function isExpired(info: TokenInfo, now = Date.now(), marginMs = 0): boolean {
  return info.expiresAt - marginMs <= now;
}

/**
 * Takes `#token=…` out of the address bar (keeping the rest of the URL and any other
 * fragment parameters) and returns it; `null` when the fragment has none.
 */
export function takeTokenFromFragment(location: Location, history: History): string | null {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = params.get("token");
  if (token === null) return null;
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return token;
}

/** The token kept for this tab, if any and still decodable. */
export function storedToken(storage: Storage): TokenInfo | null {
  const token = storage.getItem(STORAGE_KEY);
  return token ? decodeToken(token) : null;
}

/** Keeps `info` for this tab. */
export function storeToken(storage: Storage, info: TokenInfo): void {
  storage.setItem(STORAGE_KEY, info.token);
}

/** Forgets the tab's token. */
export function clearToken(storage: Storage): void {
  storage.removeItem(STORAGE_KEY);
}
