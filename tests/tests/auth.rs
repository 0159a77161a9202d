//! Authentication at the edge, as a client meets it: bearer tokens on every `/v1` route
//! (401 without a valid one, 403 without the scope), the actor recorded from the token,
//! the WebSocket token carriers, and a live socket closed when its token expires.
//! `auth_matrix.rs` crosses every route with every kind of bad credentials; `tenancy.rs`
//! covers tenant isolation.

use std::time::Duration;

use serde_json::json;
use tests::{ACTOR, Client, TENANT, cmd, shared, unique_id, unix_now};

/// `{"alg":"none","typ":"JWT"}`, base64url: the classic unsigned-token attack.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

#[tokio::test]
async fn every_v1_route_needs_a_token_and_healthz_does_not() {
    let worker = shared();
    let anonymous = Client::new(worker.url());
    let c = worker.client();
    let id = unique_id("board-auth");

    assert_eq!(anonymous.get("/healthz").await.status, 200);
    anonymous
        .command("board", &id, &cmd("CreateBoard", json!({"title": "t"})))
        .await
        .expect_error(401, "unauthorized");
    anonymous
        .state("board", &id, "")
        .await
        .expect_error(401, "unauthorized");
    anonymous
        .events("board", &id, "")
        .await
        .expect_error(401, "unauthorized");
    let refused = anonymous
        .try_socket(&format!("/v1/aggregates/board/{id}/ws"))
        .await
        .expect_err("a socket without a token");
    refused.expect_error(401, "unauthorized");
    assert_eq!(
        c.footprint("board", &id).await,
        (0, 0),
        "a refused request wrote"
    );
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_401() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-auth");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;

    let good = worker.token(ACTOR, TENANT, "commands read");
    let payload = good.split('.').nth(1).unwrap();
    let expired = worker.token_expiring(ACTOR, TENANT, "commands read", unix_now() - 3600);
    let tokens = [
        ("another secret", {
            let claims = auth::Claims {
                sub: ACTOR.into(),
                tenant: auth::Tenant::parse(TENANT).unwrap(),
                scope: auth::Scopes::parse("commands read").unwrap(),
                exp: unix_now() + 3600,
                nbf: None,
                iat: None,
            };
            auth::mint(&claims, b"not-the-worker-secret-not-the-worker-secret")
        }),
        ("expired", expired),
        ("alg none", format!("{ALG_NONE_HEADER}.{payload}.")),
        ("tampered payload", {
            let mut parts: Vec<&str> = good.split('.').collect();
            let other = worker.token("mallory", TENANT, "commands read admin");
            let forged_payload = other.split('.').nth(1).unwrap().to_owned();
            parts[1] = &forged_payload;
            parts.join(".")
        }),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, token) in tokens {
        let client = Client::new(worker.url()).with_token(Some(token));
        let reply = client
            .command("board", &id, &cmd("AddColumn", json!({"name": "X"})))
            .await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        reply.expect_error(401, "unauthorized");
        client
            .state("board", &id, "")
            .await
            .expect_error(401, "unauthorized");
    }
    // Another scheme is no bearer token.
    let request = Client::new(worker.url())
        .request(reqwest::Method::GET, &format!("/v1/aggregates/board/{id}"))
        .header("authorization", "Basic dXNlcjpwYXNz");
    c.send(request).await.expect_error(401, "unauthorized");
    assert_eq!(c.footprint("board", &id).await, (1, 1));
}

#[tokio::test]
async fn a_token_without_the_scope_is_403() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-scope");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;

    let reader = Client::new(worker.url()).with_token(Some(worker.token(ACTOR, TENANT, "read")));
    let error = reader
        .command("board", &id, &cmd("AddColumn", json!({"name": "X"})))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(error["required_scope"], "commands");
    assert_eq!(
        reader.state("board", &id, "").await.expect(200)["version"],
        1
    );
    reader
        .subscribe("board", &id, None)
        .await
        .next_event()
        .await;

    let writer =
        Client::new(worker.url()).with_token(Some(worker.token(ACTOR, TENANT, "commands")));
    assert_eq!(
        writer
            .state("board", &id, "")
            .await
            .expect_error(403, "forbidden")["required_scope"],
        "read"
    );
    writer
        .events("board", &id, "")
        .await
        .expect_error(403, "forbidden");
    let refused = writer
        .try_socket(&format!("/v1/aggregates/board/{id}/ws"))
        .await
        .expect_err("no read scope");
    refused.expect_error(403, "forbidden");
    writer
        .ok("board", &id, cmd("AddColumn", json!({"name": "X"})))
        .await;
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test]
async fn the_actor_comes_from_the_token_and_cannot_be_forged() {
    let worker = shared();
    let alice =
        Client::new(worker.url()).with_token(Some(worker.token("alice", TENANT, "commands read")));
    let id = unique_id("board-actor");
    let request = alice
        .request(
            reqwest::Method::POST,
            &format!("/v1/aggregates/board/{id}/commands"),
        )
        .header("x-edgeloop-actor", "mallory")
        .header("x-edgeloop-tenant", "other")
        .json(&cmd("CreateBoard", json!({"title": "Mine"})));
    let reply = alice.send(request).await.expect(200);
    assert_eq!(reply["events"][0]["actor"], "alice");
    assert_eq!(alice.all_events("board", &id).await[0]["actor"], "alice");
    // The forged tenant header did not move the board either.
    assert_eq!(alice.version("board", &id).await, 1);
}

#[tokio::test]
async fn sockets_accept_the_token_as_a_subprotocol_or_a_query_parameter() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-ws-auth");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    let token = worker.token(ACTOR, TENANT, "read");
    let anonymous = Client::new(worker.url());
    let path = format!("/v1/aggregates/board/{id}/ws");

    let offered = format!("edgeloop.v1, bearer.{token}");
    let mut socket = anonymous
        .try_socket_with(&path, &[("sec-websocket-protocol", &offered)])
        .await
        .unwrap_or_else(|r| panic!("subprotocol token refused: {} {}", r.status, r.text()));
    assert_eq!(
        socket
            .headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("edgeloop.v1"),
        "the server selects edgeloop.v1, never echoing the token"
    );
    assert_eq!(socket.next_event().await["seq"], 1);
    assert_eq!(socket.caught_up().await, 1);

    let mut socket = anonymous
        .socket(&format!("{path}?access_token={token}"))
        .await;
    assert_eq!(socket.next_event().await["seq"], 1);
    assert_eq!(socket.caught_up().await, 1);

    // A `bearer.` entry without edgeloop.v1 is refused.
    let refused = anonymous
        .try_socket_with(
            &path,
            &[("sec-websocket-protocol", &format!("bearer.{token}"))],
        )
        .await
        .expect_err("bearer. without edgeloop.v1");
    refused.expect_error(400, "bad_request");
}

/// Sockets enforce the token's `exp` with the same 30 s of clock leeway as every request
/// ([`auth::LEEWAY_SECS`]): a socket opened with a token that expired up to 30 s ago is
/// admitted, and closed at `exp + 30 s`. Returns such a token, whose enforced expiry is
/// `lifetime` from now, and that expiry (Unix seconds).
fn token_enforced_for(worker: &tests::Worker, scopes: &str, lifetime: u64) -> (String, u64) {
    let exp = unix_now() + lifetime - auth::LEEWAY_SECS;
    (
        worker.token_expiring(ACTOR, TENANT, scopes, exp),
        exp + auth::LEEWAY_SECS,
    )
}

/// Seconds since the epoch, with a fraction.
fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until the Unix time `at` (seconds) has passed.
async fn sleep_until_unix(at: u64) {
    let wait = at as f64 - now_secs();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// Reads the `token_expired` error frame and the 4001 close; no event may come first.
#[track_caller]
fn expect_token_expired(
    socket: &mut tests::Socket,
) -> impl Future<Output = serde_json::Value> + '_ {
    let caller = std::panic::Location::caller();
    async move {
        let frame = socket.next_frame().await;
        assert_eq!(
            (frame["kind"].as_str(), frame["code"].as_str()),
            (Some("error"), Some("token_expired")),
            "expected the token_expired frame at {caller}, got {frame}"
        );
        assert!(
            frame["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error frame without a message: {frame}"
        );
        assert_eq!(socket.expect_close().await, Some(4001), "at {caller}");
        frame
    }
}

/// Within the leeway a socket whose token's `exp` has passed still gets events; an event
/// committed after `exp` + leeway is not delivered: the socket gets the `token_expired`
/// frame (naming the last ack as the place to resume) and 4001 instead.
#[tokio::test]
async fn a_live_socket_is_closed_when_its_token_expires() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-ws-expiry");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    let (short, expires) = token_enforced_for(worker, "read", 4);
    let mut socket = Client::new(worker.url())
        .with_token(Some(short))
        .subscribe("board", &id, None)
        .await;
    assert_eq!(socket.next_event().await["seq"], 1);
    assert_eq!(socket.caught_up().await, 1);
    // The token's `exp` has passed, but not its leeway: events are still delivered.
    let reply = c
        .ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": "c0", "title": "t"})),
        )
        .await;
    assert!(now_secs() < expires as f64, "the machine was too slow");
    assert_eq!(socket.next_event().await, reply["events"][0]);
    // What the client has processed: the close names it as the place to resume from.
    socket.ack(2).await;
    sleep_until_unix(expires + 1).await;

    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
    )
    .await;
    let frame = expect_token_expired(&mut socket).await;
    assert_eq!(frame["resume_after"], 2);
}

/// A subscriber that never hears of another event is still closed when its token expires:
/// the object wakes itself (an alarm at the earliest expiry) rather than waiting for the
/// next commit. Until then the socket stays open.
#[tokio::test]
async fn an_idle_socket_is_closed_soon_after_its_token_expires() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-ws-idle-expiry");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    let (short, expires) = token_enforced_for(worker, "read", 5);
    let mut socket = Client::new(worker.url())
        .with_token(Some(short))
        .subscribe("board", &id, None)
        .await;
    assert_eq!(socket.next_event().await["seq"], 1);
    assert_eq!(socket.caught_up().await, 1);
    socket.ack(1).await;
    // A subscriber with a longer-lived token on the same object is left alone.
    let mut lasting = c.subscribe("board", &id, Some(1)).await;
    assert_eq!(lasting.caught_up().await, 1);

    // Nothing is written from here on.
    let frame = closed_soon_after_expiry(&mut socket, expires).await;
    assert_eq!(frame["resume_after"], 1);

    // The other subscriber is still there and still live.
    lasting.expect_silence(Duration::from_millis(300)).await;
    let reply = c
        .ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
        )
        .await;
    assert_eq!(lasting.next_event().await, reply["events"][0]);
}

/// A read model's document socket likewise: nothing is written after it opens, so only
/// the projector's own alarm at the token's expiry can close it.
#[tokio::test]
async fn an_idle_document_socket_is_closed_soon_after_its_token_expires() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("doc-ws-idle-expiry");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    c.get(&format!(
        "/v1/projections/board_summary/{id}?consistency=board/{id}@1"
    ))
    .await
    .expect(200);
    let (short, expires) = token_enforced_for(worker, "read", 5);
    let mut socket = Client::new(worker.url())
        .with_token(Some(short))
        .socket(&format!("/v1/projections/board_summary/{id}/ws"))
        .await;
    assert_eq!(socket.next_frame().await["kind"], "document");
    assert_eq!(socket.next_frame().await["kind"], "caught_up");
    closed_soon_after_expiry(&mut socket, expires).await;
}

/// Waits (nothing else arriving) for an idle socket's `token_expired` frame and its 4001
/// close, not before the enforced expiry `expires` (Unix seconds, `exp` + leeway) and at
/// most 10 s after it; returns the frame.
async fn closed_soon_after_expiry(socket: &mut tests::Socket, expires: u64) -> serde_json::Value {
    let frame = match socket.try_frame_within(Duration::from_secs(30)).await {
        Ok(Some(frame)) => frame,
        Ok(None) => panic!(
            "the idle socket was still open {:.1} s after its token's enforced expiry",
            now_secs() - expires as f64
        ),
        Err(closed) => panic!("the socket closed without the token_expired frame: {closed}"),
    };
    let late = now_secs() - expires as f64;
    assert_eq!(
        (frame["kind"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("token_expired")),
        "{frame}"
    );
    assert_eq!(socket.expect_close().await, Some(4001));
    assert!(
        (-1.0..10.0).contains(&late),
        "closed {late:.1} s from the token's enforced expiry"
    );
    frame
}

/// A subscriber still catching up (paced by its acks) whose token has expired gets no
/// more of the log: its next ack is answered with `token_expired` and 4001.
#[tokio::test]
async fn a_catching_up_socket_whose_token_expired_gets_4001_instead_of_more_events() {
    let worker = tests::Worker::start_with(tests::Options::new().var("WS_ACK_WINDOW", 4));
    let c = worker.client();
    let id = unique_id("board-ws-catchup-expiry");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    for n in 1..20 {
        c.ok(
            "board",
            &id,
            cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
        )
        .await;
    }
    let log = c.all_events("board", &id).await;
    assert_eq!(log.len(), 20);

    let (short, expires) = token_enforced_for(&worker, "read", 8);
    let mut socket = Client::new(worker.url())
        .with_token(Some(short))
        .subscribe("board", &id, Some(0))
        .await;
    assert_eq!(socket.next_events(4).await, log[..4]);
    socket.expect_silence(Duration::from_millis(300)).await;
    // Before the expiry an ack brings the next window.
    socket.ack(4).await;
    assert_eq!(socket.next_events(4).await, log[4..8]);
    assert!(
        now_secs() < expires as f64,
        "the machine was too slow: the token expired before the first window was acked"
    );

    sleep_until_unix(expires + 1).await;
    // The server may already have closed the socket (it need not wait for the ack), so a
    // failed send is no failure; what arrives must be the close, not events 9..=12.
    let _ = socket.send_text(r#"{"kind":"ack","seq":8}"#).await;
    let frame = expect_token_expired(&mut socket).await;
    let resume_after = frame["resume_after"]
        .as_u64()
        .unwrap_or_else(|| panic!("no resume_after: {frame}"));
    assert!(
        resume_after == 4 || resume_after == 8,
        "resume_after must be an acknowledged seq: {frame}"
    );
}

/// A client that offers the `edgeloop.v1` subprotocol gets it back whatever carries its
/// token (a client offering a subprotocol fails the handshake when none is selected).
#[tokio::test]
async fn the_subprotocol_is_echoed_whatever_carries_the_token() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-ws-protocol");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    let path = format!("/v1/aggregates/board/{id}/ws");
    let token = worker.token(ACTOR, TENANT, "read");
    let anonymous = Client::new(worker.url());
    let query_path = format!("{path}?access_token={token}");
    let cases: [(&str, &Client, &str); 2] = [
        ("Authorization header", &c, &path),
        ("access_token parameter", &anonymous, &query_path),
    ];
    for (carrier, client, path) in cases {
        let mut socket = client
            .try_socket_with(path, &[("sec-websocket-protocol", "edgeloop.v1")])
            .await
            .unwrap_or_else(|r| panic!("{carrier}: refused {} {}", r.status, r.text()));
        assert_eq!(
            socket
                .headers
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("edgeloop.v1"),
            "{carrier}"
        );
        assert_eq!(socket.next_event().await["seq"], 1, "{carrier}");
        assert_eq!(socket.caught_up().await, 1, "{carrier}");
        socket.close().await;
    }
}
