//! Edgeloop's authentication: who is asking, for which tenant, allowed to do what.
//!
//! Every `/v1` request carries a JWT signed with HS256 under the Worker secret `AUTH_SECRET`
//! (see "Authentication" in the design). This crate turns such a token into a [`Principal`] —
//! actor, [`Tenant`], [`Scopes`] — or says why not, and mints tokens for the CLI and tests.
//!
//! Why a crate of its own, and why pure: the API needs it on `wasm32-unknown-unknown`, the CLI
//! and the black-box tests need the very same rules natively, and security rules deserve fast,
//! exhaustive unit tests. So this crate does no IO, reads no clock (the current time is an
//! argument of [`verify`]), draws no random numbers and does not depend on `worker`.
//!
//! Status codes: every [`AuthError`] is HTTP 401 `unauthorized`; [`Forbidden`] is HTTP 403
//! `forbidden`. Their `Display` texts are safe to send to clients. The API owns the conversion
//! to responses.
//!
//! ```
//! use auth::{Claims, Scope, Scopes, Tenant};
//!
//! let secret = b"dev-secret-at-least-32-bytes-long!!";
//! let now = 1_700_000_000;
//! let claims = Claims {
//!     sub: "alice".into(),
//!     tenant: Tenant::parse("acme").unwrap(),
//!     scope: Scopes::parse("commands read").unwrap(),
//!     exp: now + 3600,
//!     nbf: None,
//!     iat: Some(now),
//! };
//! let token = auth::mint(&claims, secret);
//!
//! let principal = auth::verify(&token, secret, now).unwrap();
//! assert_eq!(principal.actor, "alice");
//! assert!(principal.require(Scope::Read).is_ok());
//! assert!(principal.require(Scope::Admin).is_err());
//! ```
//!
//! # Layout
//!
//! * `token` — [`Claims`], [`verify`], [`mint`] and the policy constants ([`LEEWAY_SECS`],
//!   [`MAX_TOKEN_LEN`], [`MAX_ACTOR_LEN`]).
//! * `principal` — [`Principal`] and [`Principal::require`].
//! * `scope` — [`Scope`] and the set [`Scopes`].
//! * `tenant` — [`Tenant`] and its syntax.
//! * `transport` — getting the token out of `Authorization` ([`bearer_from_header`]) and
//!   `Sec-WebSocket-Protocol` ([`parse_ws_protocols`]).
//! * `error` — [`AuthError`] (401), [`Forbidden`] (403), [`ParseError`].
//!
//! # Crypto backend
//!
//! JWT parsing, encoding and validation are `jsonwebtoken`'s, built with **no crypto feature**;
//! the one primitive Edgeloop needs, HMAC-SHA256, comes from an HS256-only
//! `jsonwebtoken::crypto::CryptoProvider` of our own (module `crypto`) on RustCrypto's `hmac` and
//! `sha2`, comparing MACs in constant time (`Mac::verify_slice`).
//!
//! Why not one of `jsonwebtoken`'s features: `aws_lc_rs` is C and does not build for
//! `wasm32-unknown-unknown`, and `rust_crypto` picks its verifier at run time from the token's
//! `alg`, so the linker must keep the RSA, ECDSA (P-256, P-384) and Ed25519 code even though we
//! only ever ask for HS256. Dropping it took the Worker's wasm from 1,624 KB to 1,196 KB
//! (574 KB to 396 KB gzipped) — size a Worker pays on every cold start — and removed 36 crates
//! from the wasm dependency tree, among them `rsa`, with its unfixed timing side channel
//! (RUSTSEC-2023-0071), never reachable here but flagged by every audit. The provider refuses
//! every other algorithm with an error, never a panic; [`verify`] refuses any `alg` but `HS256`
//! before `jsonwebtoken` sees the token anyway.
//!
//! `jsonwebtoken` keeps one provider per process, in a `OnceLock`, and with no crypto feature its
//! fallback — what the first `encode`/`decode` locks in if nobody installed a provider — panics.
//! [`verify`] and [`mint`] therefore install ours first thing on every call (after the first
//! call, one atomic load), so no caller needs an initialisation step (the Worker has no `main`).
//! The rule that follows: nothing in the process may call `jsonwebtoken` before this crate does.
//! Nothing in the workspace uses `jsonwebtoken` except this crate (its tests craft tokens with
//! `hmac` directly); if some code ever did get there first, [`verify`] fails closed with
//! [`AuthError::Unconfigured`] and [`mint`] panics, rather than sign or check with a provider
//! they do not know. No crate may enable `jsonwebtoken`'s crypto features: features unify across
//! the build and would bring the weight back.

mod crypto;
mod error;
mod principal;
mod scope;
mod tenant;
mod token;
mod transport;

pub use error::{AuthError, Forbidden, ParseError};
pub use principal::Principal;
pub use scope::{Scope, Scopes};
pub use tenant::Tenant;
pub use token::{Claims, LEEWAY_SECS, MAX_ACTOR_LEN, MAX_TOKEN_LEN, mint, parse_actor, verify};
pub use transport::{
    WS_BEARER_PREFIX, WS_PROTOCOL, WsProtocols, bearer_from_header, parse_ws_protocols,
};
