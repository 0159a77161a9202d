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
//! `jsonwebtoken` with its pure-Rust `rust_crypto` feature (RustCrypto `hmac`/`sha2`), not
//! `aws_lc_rs`: that one is C and does not build for `wasm32-unknown-unknown`. Exactly one of the
//! two features may be enabled in a build — with both, `jsonwebtoken` cannot pick a provider and
//! panics on first use — so no other crate in the workspace should enable `aws_lc_rs`.

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
