/**
 * The reference domain's commands, events and states as they travel on the wire — the
 * serde names of `domain/src/{board,feedback,error_group,repository}.rs`. Commands and
 * events are `{"type": …, "data": {…}}` discriminated unions: narrow on `type`.
 *
 * Optional command fields are absent or of their type: the server refuses `null` for them
 * (400), except `SetWipLimit.limit`, where `null` clears the limit. Events always carry
 * every field; absent values are `null`.
 *
 * @module
 */

/** Feedback severity, lowest first. */
export type Severity = "low" | "medium" | "high" | "critical";

// ---------------------------------------------------------------- board

/** A command on a `board` aggregate. */
export type BoardCommand =
  /** `columns` absent: Inbox, Todo, Doing, Done. `[]`: a board without columns. */
  | { type: "CreateBoard"; data: { title: string; columns?: string[] } }
  /** `wip_limit` absent: no limit; ≥ 1 otherwise. */
  | { type: "AddColumn"; data: { name: string; wip_limit?: number } }
  /** `limit` is required: a number ≥ 1 sets it, `null` clears it. */
  | { type: "SetWipLimit"; data: { column: string; limit: number | null } }
  /** `column` absent: the board's first column. `labels` absent: none. */
  | { type: "AddCard"; data: { card_id: string; title: string; column?: string; labels?: string[] } }
  | { type: "MoveCard"; data: { card_id: string; to_column: string } }
  /** At least one of `title` and `labels`; absent ones are left as they are. */
  | { type: "EditCard"; data: { card_id: string; title?: string; labels?: string[] } }
  | { type: "CommentOnCard"; data: { card_id: string; author: string; text: string } }
  | { type: "ArchiveCard"; data: { card_id: string } };

/** An event of a `board` aggregate. */
export type BoardEvent =
  | { type: "BoardCreated"; data: { title: string; columns: string[] } }
  | { type: "ColumnAdded"; data: { name: string; wip_limit: number | null } }
  /** `limit: null` cleared the limit. */
  | { type: "WipLimitSet"; data: { column: string; limit: number | null } }
  /** Schema v2 (the server upcasts v1). `column` is the column the card went to. */
  | { type: "CardAdded"; data: { card_id: string; title: string; column: string; labels: string[] } }
  | { type: "CardMoved"; data: { card_id: string; from_column: string; to_column: string } }
  /** `null` fields were left unchanged. */
  | { type: "CardEdited"; data: { card_id: string; title: string | null; labels: string[] | null } }
  | { type: "CardCommented"; data: { card_id: string; author: string; text: string } }
  /** `column` is the column the card was in. */
  | { type: "CardArchived"; data: { card_id: string; column: string } };

/** A `board`'s state (`GET /v1/aggregates/board/{id}`). */
export interface BoardState {
  /** False until `BoardCreated`. */
  created: boolean;
  title: string;
  /** In display order. */
  columns: { name: string; wip_limit: number | null }[];
  /** Every card ever added, archived ones included, by card id. */
  cards: Record<
    string,
    { title: string; column: string; labels: string[]; archived: boolean; comments: number }
  >;
}

/** The stable `rule` names of a 422 `rejected` from a `board`. */
export type BoardRule =
  | "board_not_found"
  | "board_already_exists"
  | "invalid_title"
  | "invalid_column_name"
  | "column_already_exists"
  | "column_not_found"
  | "invalid_wip_limit"
  | "wip_limit_reached"
  | "invalid_card_id"
  | "card_already_exists"
  | "card_not_found"
  | "card_archived"
  | "invalid_labels"
  | "nothing_to_edit"
  | "invalid_author"
  | "invalid_comment"
  | "too_many_columns"
  | "board_full";

// ---------------------------------------------------------------- feedback

/** A command on a `feedback` aggregate. */
export type FeedbackCommand =
  /** `severity` absent: `medium`. */
  | { type: "SubmitFeedback"; data: { text: string; source: string; severity?: Severity } }
  | { type: "TriageFeedback"; data: { board_id: string; card_id: string; labels: string[] } }
  | { type: "CloseFeedback"; data: { reason: string } };

/** An event of a `feedback` aggregate. */
export type FeedbackEvent =
  | { type: "FeedbackSubmitted"; data: { text: string; source: string; severity: Severity } }
  | { type: "FeedbackTriaged"; data: { board_id: string; card_id: string; labels: string[] } }
  | { type: "FeedbackClosed"; data: { reason: string } };

/** A `feedback` item's state. */
export interface FeedbackState {
  /** False until `FeedbackSubmitted`. */
  submitted: boolean;
  text: string;
  source: string;
  severity: Severity;
  status: "open" | "triaged" | "closed";
  triage: { board_id: string; card_id: string; labels: string[] } | null;
  close_reason: string | null;
}

/** The stable `rule` names of a 422 `rejected` from a `feedback` aggregate. */
export type FeedbackRule =
  | "feedback_not_found"
  | "feedback_already_submitted"
  | "feedback_already_triaged"
  | "feedback_closed"
  | "invalid_text"
  | "invalid_source"
  | "invalid_board_id"
  | "invalid_card_id"
  | "invalid_labels"
  | "invalid_reason";

// ---------------------------------------------------------------- error_group

/**
 * A command on an `error_group` aggregate (id: an error fingerprint). Normally sent by the
 * telemetry route, not by browsers. Times are milliseconds since the Unix epoch.
 */
export type ErrorGroupCommand =
  | {
      type: "RecordOccurrences";
      data: {
        error_type: string;
        message: string;
        top_frame?: string;
        release?: string;
        url?: string;
        user_agent?: string;
        count: number;
        first_seen_ms: number;
        last_seen_ms: number;
        window_start_ms: number;
      };
    }
  | { type: "ResolveErrorGroup"; data: { release?: string; note?: string } }
  /** `until_ms` absent: until further notice. */
  | { type: "IgnoreErrorGroup"; data: { until_ms?: number } };

/** An event of an `error_group` aggregate. Times are milliseconds since the Unix epoch. */
export type ErrorGroupEvent =
  | {
      type: "ErrorGroupOpened";
      data: {
        error_type: string;
        message: string;
        top_frame: string | null;
        release: string | null;
        url: string | null;
        user_agent: string | null;
        count: number;
        first_seen_ms: number;
        last_seen_ms: number;
        window_start_ms: number;
      };
    }
  | {
      type: "ErrorGroupRecurred";
      data: {
        count: number;
        window_start_ms: number;
        first_seen_ms: number;
        last_seen_ms: number;
        release: string | null;
      };
    }
  | {
      type: "ErrorGroupRegressed";
      data: { release: string | null; resolved_release: string | null; first_seen_ms: number };
    }
  | { type: "ErrorGroupResolved"; data: { release: string | null; note: string | null } }
  | { type: "ErrorGroupIgnored"; data: { until_ms: number | null } };

/** An `error_group`'s state. Times are milliseconds since the Unix epoch. */
export interface ErrorGroupState {
  opened: boolean;
  status: "open" | "resolved" | "ignored";
  error_type: string;
  message: string;
  top_frame: string | null;
  url: string | null;
  user_agent: string | null;
  total_count: number;
  windows: number;
  latest_window_start_ms: number;
  first_seen_ms: number;
  last_seen_ms: number;
  last_release: string | null;
  regressions: number;
  last_resolution: { release: string | null; note: string | null } | null;
  ignored_until_ms: number | null;
}

// ---------------------------------------------------------------- repository

/** How a GitHub workflow run ended. */
export type Conclusion =
  | "success"
  | "failure"
  | "timed_out"
  | "startup_failure"
  | "cancelled"
  | "skipped"
  | "neutral"
  | "action_required"
  | "stale";

interface PullRequestRecorded {
  delivery_id: string;
  number: number;
  title: string;
  author: string;
  url: string;
}

interface WorkflowRunRecorded {
  delivery_id: string;
  run_id: number;
  name: string;
  conclusion: Conclusion;
  head_sha: string;
  branch: string | null;
  url: string;
}

/**
 * A command on a `repository` aggregate (id `{owner}~{name}`, lowercase). Normally sent by
 * the GitHub webhook route, not by browsers.
 */
export type RepositoryCommand =
  | {
      type: "RecordPush";
      data: {
        delivery_id: string;
        ref: string;
        before: string;
        after: string;
        commits: { id: string; message: string; author: string }[];
        commit_count?: number;
        pusher: string;
      };
    }
  | {
      type: "RecordPullRequest";
      data: {
        delivery_id: string;
        number: number;
        action: "opened" | "closed" | "reopened" | "merged";
        title: string;
        author: string;
        url: string;
        merged: boolean;
      };
    }
  | {
      type: "RecordWorkflowRun";
      data: Omit<WorkflowRunRecorded, "branch"> & { branch?: string };
    }
  | { type: "RecordRelease"; data: { delivery_id: string; tag: string; name: string; url: string } };

/** An event of a `repository` aggregate. */
export type RepositoryEvent =
  | {
      type: "PushRecorded";
      data: {
        delivery_id: string;
        ref: string;
        before: string;
        after: string;
        commits: { id: string; message: string; author: string }[];
        commit_count: number;
        pusher: string;
      };
    }
  | { type: "PullRequestOpened"; data: PullRequestRecorded }
  | { type: "PullRequestReopened"; data: PullRequestRecorded }
  | { type: "PullRequestMerged"; data: PullRequestRecorded }
  | { type: "PullRequestClosed"; data: PullRequestRecorded }
  | { type: "WorkflowRunSucceeded"; data: WorkflowRunRecorded }
  | { type: "WorkflowRunFailed"; data: WorkflowRunRecorded }
  | { type: "ReleasePublished"; data: { delivery_id: string; tag: string; name: string; url: string } };

/** A `repository`'s state: counters and the latest push, run and release. */
export interface RepositoryState {
  pushes: number;
  pull_requests_opened: number;
  pull_requests_reopened: number;
  pull_requests_merged: number;
  pull_requests_closed: number;
  workflow_runs_succeeded: number;
  workflow_runs_failed: number;
  releases: number;
  last_push: { ref: string; after: string; pusher: string; commit_count: number } | null;
  last_workflow_run: Omit<WorkflowRunRecorded, "delivery_id"> | null;
  last_release: { tag: string; name: string; url: string } | null;
  /** The latest delivery ids, oldest first (for deduplication). */
  recent_deliveries: string[];
}

// ---------------------------------------------------------------- the registry

/**
 * Every aggregate type the server registers, with its commands, events and state. Methods
 * taking an aggregate type check commands and type events through this map; any other
 * type name falls back to {@link AnyCommand} / {@link AnyEvent}.
 */
export interface Aggregates {
  board: { command: BoardCommand; event: BoardEvent; state: BoardState };
  feedback: { command: FeedbackCommand; event: FeedbackEvent; state: FeedbackState };
  error_group: { command: ErrorGroupCommand; event: ErrorGroupEvent; state: ErrorGroupState };
  repository: { command: RepositoryCommand; event: RepositoryEvent; state: RepositoryState };
}

/** A registered aggregate type name. */
export type AggregateType = keyof Aggregates;

/** A command of an aggregate type this library does not know. */
export interface AnyCommand {
  type: string;
  data?: unknown;
}

/** Every event of every registered aggregate type. */
export type DomainEvent = Aggregates[AggregateType]["event"];

/** An event of an aggregate type this library does not know. */
export interface AnyEvent {
  type: string;
  data: unknown;
}

/** The commands of aggregate type `T`. */
export type CommandOf<T extends string> = T extends AggregateType ? Aggregates[T]["command"] : AnyCommand;
/** The events of aggregate type `T`. */
export type EventOf<T extends string> = T extends AggregateType ? Aggregates[T]["event"] : AnyEvent;
/** The state of aggregate type `T`. */
export type StateOf<T extends string> = T extends AggregateType ? Aggregates[T]["state"] : Record<string, unknown>;
