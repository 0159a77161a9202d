//! The authentication matrix: every `/v1` aggregate route — commands, state, state at a
//! version, the event listing and the WebSocket upgrade (with the token in each of its three
//! carriers) — against every kind of credentials a caller must be refused for: none, a bad
//! signature, expired, not yet valid, `alg: none`, malformed, a token without the route's
//! scope, and a valid token of another tenant.
//!
//! Every cell must answer as the README documents (401 `unauthorized`, 403 `forbidden` with
//! `required_scope`), and nothing may change: the target aggregate's version, event count,
//! events and state are compared before and after each cell, and a live subscriber of it must
//! receive nothing. The other tenant's token is valid, so there the answer is the other
//! tenant's own view: the aggregate has no events in its namespace (reads 404, a subscription
//! catches up at version 0), a command is decided against its (empty) board there, and
//! neither namespace changes.
//!
//! One test runs the whole table and reports every failing cell, not just the first.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{ACTOR, Client, Reply, Socket, TENANT, Worker, cmd, shared, unique_id, unix_now};

/// The tenant whose valid token must not reach [`TENANT`]'s aggregate.
const OTHER_TENANT: &str = "e2e-other";

/// Every scope but the route's own.
const ALL_BUT_COMMANDS: &str = "read replay consume admin";
const ALL_BUT_READ: &str = "commands replay consume admin";
const ALL_SCOPES: &str = "commands read replay consume admin";

/// `{"alg":"none","typ":"JWT"}`, base64url: the unsigned-token attack.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// How long a subscriber must stay silent to count as having received nothing.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Command,
    State,
    StateAtVersion,
    Events,
    /// The upgrade with `Authorization: Bearer …`.
    SocketHeader,
    /// The upgrade with `Sec-WebSocket-Protocol: edgeloop.v1, bearer.…`.
    SocketSubprotocol,
    /// The upgrade with `?access_token=…`.
    SocketQuery,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Command,
        Route::State,
        Route::StateAtVersion,
        Route::Events,
        Route::SocketHeader,
        Route::SocketSubprotocol,
        Route::SocketQuery,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Command => "POST …/commands",
            Route::State => "GET …/{id}",
            Route::StateAtVersion => "GET …/{id}?at_version=1",
            Route::Events => "GET …/events",
            Route::SocketHeader => "WS …/ws (Authorization)",
            Route::SocketSubprotocol => "WS …/ws (subprotocol)",
            Route::SocketQuery => "WS …/ws (access_token)",
        }
    }

    fn required_scope(self) -> &'static str {
        match self {
            Route::Command => "commands",
            _ => "read",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credentials {
    None,
    BadSignature,
    Expired,
    NotYetValid,
    AlgNone,
    Malformed,
    WrongScope,
    OtherTenant,
}

impl Credentials {
    const ALL: [Credentials; 8] = [
        Credentials::None,
        Credentials::BadSignature,
        Credentials::Expired,
        Credentials::NotYetValid,
        Credentials::AlgNone,
        Credentials::Malformed,
        Credentials::WrongScope,
        Credentials::OtherTenant,
    ];

    fn name(self) -> &'static str {
        match self {
            Credentials::None => "no token",
            Credentials::BadSignature => "bad signature",
            Credentials::Expired => "expired",
            Credentials::NotYetValid => "not yet valid",
            Credentials::AlgNone => "alg none",
            Credentials::Malformed => "malformed",
            Credentials::WrongScope => "wrong scope",
            Credentials::OtherTenant => "other tenant",
        }
    }

    /// The token presented for `route`, if any.
    fn token(self, worker: &Worker, route: Route) -> Option<String> {
        let claims = |tenant: &str, scopes: &str, exp: u64, nbf: Option<u64>| auth::Claims {
            sub: ACTOR.to_owned(),
            tenant: auth::Tenant::parse(tenant).expect("a tenant"),
            scope: auth::Scopes::parse(scopes).expect("scopes"),
            exp,
            nbf,
            iat: Some(unix_now()),
        };
        let in_a_day = unix_now() + 24 * 3600;
        match self {
            Credentials::None => None,
            Credentials::BadSignature => Some(auth::mint(
                &claims(TENANT, ALL_SCOPES, in_a_day, None),
                b"not-the-worker-secret-not-the-worker-secret",
            )),
            // Well past the Worker's 30 s of leeway either way.
            Credentials::Expired => {
                Some(worker.token_expiring(ACTOR, TENANT, ALL_SCOPES, unix_now() - 3600))
            }
            Credentials::NotYetValid => Some(auth::mint(
                &claims(TENANT, ALL_SCOPES, in_a_day, Some(unix_now() + 3600)),
                worker.secret().as_bytes(),
            )),
            Credentials::AlgNone => {
                let valid = worker.token(ACTOR, TENANT, ALL_SCOPES);
                let payload = valid.split('.').nth(1).expect("a JWT payload");
                Some(format!("{ALG_NONE_HEADER}.{payload}."))
            }
            Credentials::Malformed => Some("not-a-jwt".to_owned()),
            Credentials::WrongScope => Some(worker.token(
                ACTOR,
                TENANT,
                match route {
                    Route::Command => ALL_BUT_COMMANDS,
                    _ => ALL_BUT_READ,
                },
            )),
            Credentials::OtherTenant => Some(worker.token(ACTOR, OTHER_TENANT, ALL_SCOPES)),
        }
    }
}

/// What one cell answered: an HTTP reply, or an accepted WebSocket.
enum Answer {
    Http(Reply),
    Socket(Box<Socket>),
}

/// Sends one cell's request to board `id`.
async fn attempt(worker: &Worker, route: Route, token: Option<String>, id: &str) -> Answer {
    let anonymous = Client::new(worker.url());
    let bearer = anonymous.clone().with_token(token.clone());
    let ws_path = format!("/v1/aggregates/board/{id}/ws");
    let socket = |result: Result<Socket, Reply>| match result {
        Ok(socket) => Answer::Socket(Box::new(socket)),
        Err(reply) => Answer::Http(reply),
    };
    match route {
        Route::Command => {
            // A command that would succeed in the target's namespace.
            let body = cmd(
                "AddCard",
                json!({"card_id": unique_id("card"), "title": "let me in"}),
            );
            Answer::Http(bearer.command("board", id, &body).await)
        }
        Route::State => Answer::Http(bearer.state("board", id, "").await),
        Route::StateAtVersion => Answer::Http(bearer.state("board", id, "?at_version=1").await),
        Route::Events => Answer::Http(bearer.events("board", id, "?after=0&limit=10").await),
        Route::SocketHeader => socket(bearer.try_socket(&ws_path).await),
        Route::SocketSubprotocol => match &token {
            Some(token) => {
                let offered = format!("edgeloop.v1, bearer.{token}");
                socket(
                    anonymous
                        .try_socket_with(&ws_path, &[("sec-websocket-protocol", &offered)])
                        .await,
                )
            }
            None => socket(anonymous.try_socket(&ws_path).await),
        },
        Route::SocketQuery => match &token {
            Some(token) => socket(
                anonymous
                    .try_socket(&format!("{ws_path}?access_token={token}"))
                    .await,
            ),
            None => socket(anonymous.try_socket(&ws_path).await),
        },
    }
}

/// Checks an error answer without panicking: status, JSON content type, and the documented
/// body with this `code` and a message. Returns the `error` object.
fn check_error(answer: &Answer, status: u16, code: &str) -> Result<Value, String> {
    let reply = match answer {
        Answer::Http(reply) => reply,
        Answer::Socket(_) => {
            return Err(format!(
                "the WebSocket upgrade was accepted; expected {status} {code}"
            ));
        }
    };
    if reply.status != status {
        return Err(format!(
            "expected {status} {code}, got {}: {}",
            reply.status,
            reply.text()
        ));
    }
    let content_type = reply.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(format!("error content type is `{content_type}`"));
    }
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("error body is not JSON ({e}): {}", reply.text()))?;
    let error = &body["error"];
    if error["code"] != code {
        return Err(format!("expected code `{code}`, body: {body}"));
    }
    if error["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("error without a message: {body}"));
    }
    Ok(error.clone())
}

/// Everything a refused request must leave as it was.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    version: u64,
    events: Vec<Value>,
    state: Option<Value>,
}

async fn snapshot(c: &Client, id: &str) -> Snapshot {
    let reply = c.state("board", id, "").await;
    let state = match reply.status {
        404 => None,
        200 => Some(reply.json()),
        other => panic!("reading {id} answered {other}: {}", reply.text()),
    };
    let events = c.all_events("board", id).await;
    Snapshot {
        version: state
            .as_ref()
            .map_or(0, |s| s["version"].as_u64().expect("a version")),
        events,
        state,
    }
}

fn describe(snapshot: &Snapshot) -> String {
    format!(
        "version {}, {} events",
        snapshot.version,
        snapshot.events.len()
    )
}

/// Checks the answer of one cell (not the footprints: the caller does that).
async fn check_cell(route: Route, credentials: Credentials, answer: Answer) -> Result<(), String> {
    match credentials {
        Credentials::None
        | Credentials::BadSignature
        | Credentials::Expired
        | Credentials::NotYetValid
        | Credentials::AlgNone
        | Credentials::Malformed => check_error(&answer, 401, "unauthorized").map(|_| ()),
        Credentials::WrongScope => {
            let error = check_error(&answer, 403, "forbidden")?;
            if error["required_scope"] == route.required_scope() {
                Ok(())
            } else {
                Err(format!(
                    "403 without `required_scope: {}`: {error}",
                    route.required_scope()
                ))
            }
        }
        Credentials::OtherTenant => match route {
            // Decided against the other tenant's board of that id, which does not exist.
            Route::Command => {
                let error = check_error(&answer, 422, "rejected")?;
                if error["rule"] == "board_not_found" {
                    Ok(())
                } else {
                    Err(format!("expected rule board_not_found: {error}"))
                }
            }
            Route::State | Route::StateAtVersion | Route::Events => {
                check_error(&answer, 404, "not_found").map(|_| ())
            }
            Route::SocketHeader | Route::SocketSubprotocol | Route::SocketQuery => {
                let Answer::Socket(mut socket) = answer else {
                    let Answer::Http(reply) = answer else {
                        unreachable!()
                    };
                    return Err(format!(
                        "the other tenant's subscription was refused: {} {}",
                        reply.status,
                        reply.text()
                    ));
                };
                let first = socket.try_frame_within(tests::FRAME_TIMEOUT).await?;
                let verdict = match first {
                    Some(frame) if frame["kind"] == "caught_up" && frame["version"] == 0 => {
                        match socket.try_frame_within(QUIET).await {
                            Ok(None) => Ok(()),
                            Ok(Some(frame)) => {
                                Err(format!("the other tenant's socket then got {frame}"))
                            }
                            Err(e) => Err(format!("the other tenant's socket died: {e}")),
                        }
                    }
                    Some(frame) => Err(format!(
                        "the other tenant's socket must catch up at version 0 with nothing, got {frame}"
                    )),
                    None => Err("the other tenant's socket sent nothing".to_owned()),
                };
                socket.close().await;
                verdict
            }
        },
    }
}

#[tokio::test]
async fn every_route_refuses_every_bad_credential_and_nothing_changes() {
    let worker = shared();
    let owner = worker.client();
    let other =
        Client::new(worker.url()).with_token(Some(worker.token(ACTOR, OTHER_TENANT, ALL_SCOPES)));
    let id = unique_id("board-matrix");
    owner
        .ok("board", &id, cmd("CreateBoard", json!({"title": "Mine"})))
        .await;
    owner
        .ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
        )
        .await;
    let original = snapshot(&owner, &id).await;
    assert_eq!(original.version, 2);
    // A subscriber of the target: nothing in the whole matrix may reach it.
    let mut watcher = owner.subscribe("board", &id, Some(original.version)).await;
    assert_eq!(watcher.caught_up().await, original.version);

    let mut failures = Vec::new();
    let mut cells = 0;
    for route in Route::ALL {
        for credentials in Credentials::ALL {
            cells += 1;
            let cell = format!("{} × {}", route.name(), credentials.name());
            let answer = attempt(worker, route, credentials.token(worker, route), &id).await;
            if let Err(problem) = check_cell(route, credentials, answer).await {
                failures.push(format!("{cell}: {problem}"));
            }
            let now = snapshot(&owner, &id).await;
            if now != original {
                failures.push(format!(
                    "{cell}: the target changed: {} before, {} after",
                    describe(&original),
                    describe(&now)
                ));
            }
            let elsewhere = snapshot(&other, &id).await;
            if elsewhere.version != 0 || !elsewhere.events.is_empty() {
                failures.push(format!(
                    "{cell}: the same id in tenant {OTHER_TENANT} got {}",
                    describe(&elsewhere)
                ));
            }
        }
    }
    match watcher.try_frame_within(QUIET).await {
        Ok(None) => {}
        Ok(Some(frame)) => failures.push(format!("the target's subscriber received {frame}")),
        Err(e) => failures.push(format!("the target's subscriber was closed: {e}")),
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The control: with the owner's own token the routes answer (so the refusals above were
    // the credentials', not a broken route's), and the kind of command refused above goes
    // through and reaches the subscriber.
    assert_eq!(owner.state("board", &id, "?at_version=1").await.status, 200);
    assert_eq!(owner.events("board", &id, "").await.status, 200);
    let added = owner
        .ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": "c2", "title": "t"})),
        )
        .await;
    assert_eq!(added["version"], 3);
    assert_eq!(watcher.next_event().await, added["events"][0]);
}
