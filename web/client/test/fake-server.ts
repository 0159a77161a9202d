/**
 * A scripted stand-in for the Worker's socket side, speaking the protocol the README
 * documents: `?after=N` replay under an acknowledgement window, `caught_up`, live frames,
 * strict ack parsing, error frames before closes. Frames travel asynchronously (one
 * microtask each, in order) like on a real connection, and the upgrade completes on a
 * timer, so tests drive everything with fake timers.
 *
 * It keeps one log per socket path: an aggregate's events (`seq`), a stream partition's
 * events (`position.offset`) or a projection document's revisions.
 */
import type { WebSocketLike } from "../src/socket.ts";

export interface Opened {
  socket: FakeWebSocket;
  url: URL;
  after: number;
  token: string | undefined;
  protocols: string[];
}

type Entry = { cursor: number; frame: string };

/** The server: logs by path, every socket it accepted, and knobs for misbehaviour. */
export class FakeServer {
  /** Unacknowledged frames one socket may have in flight (`WS_ACK_WINDOW`). */
  window = 1000;
  /** Tokens the upgrade accepts; others are refused (the browser sees a close 1006). */
  validTokens = new Set(["t1"]);
  /** When set, the next upgrades are refused whatever the token. */
  refuseUpgrades = false;
  /** Replays this many already-delivered entries before `after` (a sloppy server), to test dedupe. */
  replayOverlap = 0;
  readonly sockets: FakeWebSocket[] = [];
  readonly opened: Opened[] = [];
  private readonly logs = new Map<string, Entry[]>();

  /** The `WebSocket` constructor to give the client. */
  readonly WebSocket = ((server: FakeServer) =>
    class extends FakeWebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(server, url, protocols);
      }
    })(this);

  log(path: string): Entry[] {
    let log = this.logs.get(path);
    if (log === undefined) {
      log = [];
      this.logs.set(path, log);
    }
    return log;
  }

  /** Appends an event to an aggregate's log and sends it to that aggregate's live sockets. */
  append(type: string, id: string, eventType: string, data: Record<string, unknown> = {}): number {
    const path = `/v1/aggregates/${type}/${id}/ws`;
    const log = this.log(path);
    const seq = log.length + 1;
    const event = envelope(type, id, seq, eventType, data);
    this.commit(path, { cursor: seq, frame: JSON.stringify({ kind: "event", event }) });
    return seq;
  }

  /** Appends an event to a stream partition. */
  appendStream(partition: number, type: string, id: string, seq: number, eventType: string): number {
    const path = `/v1/stream/ws?partition=${partition}`;
    const log = this.log(path);
    const offset = log.length + 1;
    const event = { ...envelope(type, id, seq, eventType, {}), position: { partition, offset } };
    this.commit(path, { cursor: offset, frame: JSON.stringify({ kind: "event", event }) });
    return offset;
  }

  /** Changes a projection document (a new revision with `body`; `null` deletes it). */
  changeDocument(projection: string, docId: string, body: unknown): number {
    const path = `/v1/projections/${projection}/${docId}/ws`;
    const log = this.log(path);
    const revision = log.length + 1;
    const frame = JSON.stringify({ kind: "document", doc_id: docId, revision, body });
    log.push({ cursor: revision, frame });
    // A document socket sends the newest body only.
    for (const socket of this.live(path)) socket.sendDocument(revision, frame);
    return revision;
  }

  /** Entries of `path` after `after` (events), or the newest document after `after`. */
  entriesAfter(path: string, after: number): Entry[] {
    const log = this.log(path);
    return log.filter((e) => e.cursor > after);
  }

  /** Every open socket of `path`. */
  live(path: string): FakeWebSocket[] {
    return this.sockets.filter((s) => s.path === path && s.readyState === 1);
  }

  /** Cuts every open connection without a close frame (the browser sees 1006). */
  dropAll(): void {
    for (const socket of this.sockets) if (socket.readyState <= 1) socket.serverDrop();
  }

  /** Closes every open socket with an error frame and `closeCode`. */
  closeAll(closeCode: number, code: string, message = code): void {
    for (const socket of this.sockets) if (socket.readyState === 1) socket.serverClose(closeCode, code, message);
  }

  private commit(path: string, entry: Entry): void {
    this.log(path).push(entry);
    for (const socket of this.live(path)) socket.onCommit(entry);
  }
}

/** A socket as the client sees it, wired to the {@link FakeServer}. */
export class FakeWebSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Every frame the client sent. */
  readonly received: string[] = [];
  /** The acks the server took, in order. */
  readonly acks: number[] = [];
  /** Whether the client closed this socket, and with what. */
  clientClose: number | undefined;
  readonly path: string;
  private sent = 0;
  private acked = 0;
  private isLive = false;
  private readonly cursorName: string;

  constructor(
    private readonly server: FakeServer,
    url: string,
    protocols?: string | string[],
  ) {
    const parsed = new URL(url);
    const list = typeof protocols === "string" ? [protocols] : (protocols ?? []);
    const bearer = list.find((p) => p.startsWith("bearer."));
    const token = bearer?.slice("bearer.".length);
    const after = Number(parsed.searchParams.get("after") ?? "0");
    const partition = parsed.searchParams.get("partition");
    this.path = partition === null ? parsed.pathname : `${parsed.pathname}?partition=${partition}`;
    this.cursorName = parsed.pathname.startsWith("/v1/stream")
      ? "offset"
      : parsed.pathname.startsWith("/v1/projections")
        ? "revision"
        : "seq";
    this.sent = after;
    this.acked = after;
    server.sockets.push(this);
    server.opened.push({ socket: this, url: parsed, after, token, protocols: list });
    // The upgrade completes on a timer, like a network round trip.
    setTimeout(() => {
      if (this.readyState !== 0) return;
      if (server.refuseUpgrades || token === undefined || !server.validTokens.has(token) || !list.includes("edgeloop.v1")) {
        // A refused upgrade: the browser reports an error and a close 1006, nothing else.
        this.readyState = 3;
        this.deliver(() => this.onerror?.({}));
        this.deliver(() => this.onclose?.({ code: 1006, reason: "" }));
        return;
      }
      this.readyState = 1;
      this.deliver(() => this.onopen?.({}));
      this.start(after);
    }, 1);
  }

  // ---------------------------------------------------------------- the client's side

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError: the socket is not open");
    this.received.push(data);
    queueMicrotask(() => this.onClientFrame(data));
  }

  close(code = 1000, _reason?: string): void {
    if (this.readyState >= 2) return;
    this.clientClose = code;
    this.readyState = 2;
    queueMicrotask(() => {
      this.readyState = 3;
      this.deliver(() => this.onclose?.({ code, reason: "" }));
    });
  }

  // ---------------------------------------------------------------- the server's side

  private start(after: number): void {
    if (this.cursorName === "revision") {
      const newest = this.server.log(this.path).at(-1);
      if (newest !== undefined && newest.cursor > after) {
        this.push(newest.frame);
        this.sent = newest.cursor;
      }
      this.push(JSON.stringify({ kind: "caught_up", revision: this.server.log(this.path).length }));
      this.isLive = true;
      return;
    }
    const overlap = Math.min(this.server.replayOverlap, after);
    for (const entry of this.server.entriesAfter(this.path, after - overlap)) {
      if (entry.cursor > after) break;
      this.push(entry.frame); // already delivered once: a sloppy server's repeat
    }
    this.pump();
  }

  /** Catch-up under the window, as `durable/src/feed.rs` does it. */
  private pump(): void {
    const log = this.server.log(this.path);
    const head = log.length;
    while (!this.isLive && this.readyState === 1) {
      const allowed = Math.min(this.acked + this.server.window, head) - this.sent;
      if (allowed > 0) {
        for (const entry of log.slice(this.sent, this.sent + allowed)) this.push(entry.frame);
        this.sent += allowed;
      }
      if (this.sent >= head) {
        const caughtUp =
          this.cursorName === "offset"
            ? { kind: "caught_up", position: { partition: Number(this.path.split("=")[1]), offset: head } }
            : { kind: "caught_up", version: head };
        this.push(JSON.stringify(caughtUp));
        this.isLive = true;
      } else if (allowed <= 0) {
        break; // the window is full: wait for an ack
      }
    }
  }

  onCommit(entry: { cursor: number; frame: string }): void {
    if (!this.isLive) return;
    if (this.sent + 1 - this.acked > this.server.window) {
      this.serverClose(4008, "slow_consumer", `reconnect with after=${this.acked}`);
      return;
    }
    this.sent = entry.cursor;
    this.push(entry.frame);
  }

  sendDocument(revision: number, frame: string): void {
    if (!this.isLive) return;
    this.sent = revision;
    this.push(frame);
  }

  private onClientFrame(data: string): void {
    if (this.readyState !== 1) return;
    let ack: number | undefined;
    try {
      const frame = JSON.parse(data) as Record<string, unknown>;
      const keys = Object.keys(frame).sort().join(",");
      const value = frame[this.cursorName];
      if (frame["kind"] === "ack" && keys === [this.cursorName, "kind"].sort().join(",") && typeof value === "number") ack = value;
    } catch {
      ack = undefined;
    }
    if (ack === undefined || ack > this.sent) {
      this.serverClose(1008, "bad_request", `not an ack of at most ${this.sent}: ${data}`);
      return;
    }
    this.acks.push(ack);
    this.acked = Math.max(this.acked, ack);
    if (this.cursorName !== "revision") this.pump();
  }

  /** The error frame, then the close (as the server's feed does). */
  serverClose(closeCode: number, code: string, message: string): void {
    if (this.readyState !== 1) return;
    this.push(JSON.stringify({ kind: "error", code, message, resume_after: this.acked }));
    this.readyState = 2;
    this.deliver(() => {
      this.readyState = 3;
      this.onclose?.({ code: closeCode, reason: `${code}: ${message}` });
    });
  }

  /** The connection breaks: no close frame. */
  serverDrop(): void {
    this.readyState = 3;
    this.deliver(() => this.onclose?.({ code: 1006, reason: "" }));
  }

  /** Sends a raw frame as it is (for malformed-frame tests). */
  push(frame: string): void {
    this.deliver(() => this.onmessage?.({ data: frame }));
  }

  private deliver(action: () => void): void {
    queueMicrotask(action);
  }
}

export function envelope(type: string, id: string, seq: number, eventType: string, data: Record<string, unknown>) {
  return {
    aggregate_type: type,
    aggregate_id: id,
    seq,
    event_id: `0190000${seq}-0000-7000-8000-000000000000`,
    type: eventType,
    schema_version: 1,
    data,
    recorded_at: new Date(1_700_000_000_000 + seq).toISOString(),
    command_id: null,
    correlation_id: null,
    causation_id: null,
    actor: "alice",
  };
}
