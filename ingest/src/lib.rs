//! Edgeloop's ingestion, the pure part: what the `/v1/ingest/*` routes do between receiving
//! bytes and sending commands.
//!
//! Production telemetry and development events enter the product as commands on their own
//! aggregates (DESIGN.md, "The feedback loop's inputs"): errors as `RecordOccurrences` on an
//! `error_group` per fingerprint, GitHub deliveries as `Record*` on a `repository`. This crate
//! turns request bodies into those commands; the Worker routes, authenticates, rate-limits
//! and sends the commands through the ordinary command path, so every input is replayable
//! like any other event.
//!
//! Like `domain`, it does no IO, reads no clock (the route passes the time a request
//! arrived) and no random numbers, is not async and does not depend on `worker`: it builds
//! for the host and for `wasm32-unknown-unknown`, and its tests run natively.
//!
//! # Layout
//! * [`telemetry`] — `POST /v1/ingest/telemetry`: the body parsed strictly and all or nothing
//!   ([`telemetry::parse`], the content types it reads — JSON and `sendBeacon`'s
//!   `text/plain` — and its bounds), and [`telemetry::coalesce`]: reports grouped per
//!   (fingerprint, window) into [`telemetry::Occurrences`], one `RecordOccurrences` each, so
//!   the event rate stays bounded under a flood.
//! * [`fingerprint`] — which reports are one error: [`fingerprint::fingerprint`] hashes the
//!   normalized type, message (numbers, hex ids, UUIDs and quoted strings replaced) and top
//!   frame (line, column, query and host dropped).
//! * [`github`] — `POST /v1/ingest/github`: [`github::verify_signature`]
//!   (`X-Hub-Signature-256`, HMAC-SHA-256, constant-time) before anything is parsed, then
//!   [`github::to_command`]: `push`, `pull_request`, `workflow_run` and `release` deliveries
//!   as `repository` commands, anything else acknowledged and ignored.
//! * [`error`] — [`PayloadError`], the one error of the parsers, with the HTTP status and
//!   code each variant maps to.
//! * `json` (private) — reading a JSON document field by field, so errors name the field by
//!   its path (`errors[3].message`).

pub mod error;
pub mod fingerprint;
pub mod github;
mod json;
pub mod telemetry;

pub use error::PayloadError;
