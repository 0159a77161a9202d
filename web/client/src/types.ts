/**
 * The wire shapes of Edgeloop's v1 API (`api/openapi.json`): envelopes, pages, documents.
 * Field names are the server's (snake_case); numbers are JSON numbers.
 *
 * @module
 */
import type { DomainEvent } from "./domain.ts";

/** Where an event sits in the tenant's global stream. */
export interface Position {
  /** The partition, from 0. */
  partition: number;
  /** The event's dense offset in its partition, from 1. */
  offset: number;
}

/** The metadata every event envelope carries, whatever its type. */
export interface EnvelopeMeta {
  aggregate_type: string;
  aggregate_id: string;
  /** The event's place in its aggregate's log, from 1, dense. */
  seq: number;
  /** UUID v7. */
  event_id: string;
  schema_version: number;
  /** RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-05-01T12:00:00.000Z`. */
  recorded_at: string;
  /** At most 256 characters; `null` when absent. */
  command_id: string | null;
  correlation_id: string | null;
  causation_id: string | null;
  /** The `sub` of the token that sent the command. */
  actor: string | null;
}

/**
 * An event envelope: the metadata and the event's `{type, data}`. With a union for `E`
 * the envelope is a discriminated union too — `if (e.type === "CardAdded") e.data.card_id`.
 */
export type Envelope<E extends { type: string; data: unknown } = DomainEvent> = EnvelopeMeta & E;

/** An envelope read from the global stream: it also has its {@link Position}. */
export type StreamEnvelope<E extends { type: string; data: unknown } = DomainEvent> = Envelope<E> & {
  position: Position;
};

/**
 * What a command must find: a number (exactly that version), `"any"` (no check, the
 * default), `"none"` (the aggregate has no events yet) or `"exists"`.
 */
export type ExpectedVersion = number | "any" | "none" | "exists";

/** A command's (or batch's) answer. */
export interface CommandResult<E extends { type: string; data: unknown } = DomainEvent> {
  aggregate_type: string;
  aggregate_id: string;
  /** The aggregate's version after the command: the `seq` of its last event. */
  version: number;
  /** The events the command appended, oldest first (none when nothing needed to change). */
  events: Envelope<E>[];
  /**
   * `{type}/{id}@{version}`: pass it as `consistency` to a projection read to read your
   * own write.
   */
  consistency_token: string;
  /**
   * The answer came from the idempotency record (`Idempotent-Replayed: true`): an earlier
   * attempt with the same key had applied the command; nothing was appended this time.
   */
  replayed: boolean;
  /** The `Idempotency-Key` the command was sent with. */
  idempotencyKey: string;
}

/** An aggregate's state at a version. */
export interface AggregateState<S = Record<string, unknown>> {
  aggregate_type: string;
  aggregate_id: string;
  /** The `seq` of the last event folded into `state`. */
  version: number;
  state: S;
}

/** A forward page of an aggregate's log. */
export interface EventPage<E extends { type: string; data: unknown } = DomainEvent> {
  /** Oldest first, dense from `after + 1`. */
  events: Envelope<E>[];
  /**
   * Pass as `after` for the next page; `null` when nothing is left. A page may hold fewer
   * events than asked (it ends after ~4 MiB of payload): always page on from the cursor.
   */
  next_after: number | null;
}

/** A backward page of an aggregate's log. */
export interface BackwardEventPage<E extends { type: string; data: unknown } = DomainEvent> {
  /** Newest first. */
  events: Envelope<E>[];
  /** Pass as `before` for the next (older) page; `null` at the first event. */
  next_before: number | null;
}

/** A page of one partition of the global stream. */
export interface StreamPage<E extends { type: string; data: unknown } = DomainEvent> {
  /** Oldest first. */
  events: StreamEnvelope<E>[];
  /**
   * The last offset the page looked at (a filtered page may be empty and still move it);
   * `null` once the page reached the head.
   */
  next_after: number | null;
  /** The partition's newest offset when the page was read. */
  head: number;
}

/** One partition of `GET /v1/stream/partitions`. */
export interface PartitionStatus {
  partition: number;
  /** The newest offset (0 while empty). */
  head: number;
  /** The oldest offset in the hot table (where a live socket may start); `null` when none. */
  oldest_hot: number | null;
  /** The oldest offset that can be read; `null` while empty. */
  oldest_retained: number | null;
  hot_events: number;
  archived_segments: number;
  paused: boolean;
}

/** The projections the server runs. */
export type ProjectionName = "board_summary" | "feedback_inbox";

/** A `board_summary` document: one per board. */
export interface BoardSummary {
  board_id: string;
  title: string;
  /** The board's seq last folded in. */
  version: number;
  /** RFC 3339. */
  last_activity_at: string;
  columns: {
    name: string;
    wip_limit: number | null;
    card_count: number;
    /** Whether the column holds its WIP limit. */
    full: boolean;
    cards: { card_id: string; title: string; labels: string[]; comments: number }[];
  }[];
  archived_count: number;
}

/** A `feedback_inbox` document: one per feedback item. */
export interface FeedbackInboxItem {
  feedback_id: string;
  text: string;
  source: string;
  severity: "low" | "medium" | "high" | "critical";
  status: "open" | "triaged" | "closed";
  /** The card the feedback became, once triaged. */
  card: { board_id: string; card_id: string } | null;
  labels: string[];
  closed_reason: string | null;
  /** RFC 3339. */
  submitted_at: string;
  /** RFC 3339. */
  updated_at: string;
  version: number;
}

/** The document body of each projection. */
export interface Projections {
  board_summary: BoardSummary;
  feedback_inbox: FeedbackInboxItem;
}

/** The body type of projection `N` (`unknown` for a projection this library does not know). */
export type BodyOf<N extends string> = N extends keyof Projections ? Projections[N] : unknown;

/** A read-model document. */
export interface ProjectionDocument<B = unknown> {
  projection: string;
  doc_id: string;
  /** Counts the document's changes, from 1. */
  revision: number;
  body: B;
}

/** A page of a projection's documents, newest first. */
export interface DocumentPage<B = unknown> {
  projection: string;
  /** The projection's serving version. */
  version: number;
  documents: ProjectionDocument<B>[];
  /** Pass as `after` for the next page; `null` on the last one. */
  next_after: string | null;
}

/** One projection's status (`GET /v1/projections`); see `api/openapi.json` for every field. */
export interface ProjectionStatus {
  name: string;
  version: number;
  code_version: number;
  status: "starting" | "active" | "rebuilding" | "faulted";
  /** Partition number (as a string) → offset folded through. */
  checkpoints: Record<string, number> | null;
  heads: Record<string, number> | null;
  /** Events the projection is behind, over all partitions. */
  lag: number;
  fault: Record<string, unknown> | null;
  generations: Record<string, unknown>[];
  mirror: Record<string, unknown>;
}

/** `GET /v1/trace/{correlation_id}`: a causal chain across aggregates. */
export interface Trace<E extends { type: string; data: unknown } = DomainEvent> {
  correlation_id: string;
  /** The root event and every event correlated to it, in recorded order. */
  events: StreamEnvelope<E>[];
}
