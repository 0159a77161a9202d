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

#[tokio::test]
async fn a_live_socket_is_closed_when_its_token_expires() {
    let worker = shared();
    let c = worker.client();
    let id = unique_id("board-ws-expiry");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "t"})))
        .await;
    // Valid now (the Worker tolerates 30 s of clock skew), expired two seconds from now.
    let short = worker.token_expiring(ACTOR, TENANT, "read", unix_now() + 2);
    let mut socket = Client::new(worker.url())
        .with_token(Some(short))
        .subscribe("board", &id, None)
        .await;
    assert_eq!(socket.next_event().await["seq"], 1);
    assert_eq!(socket.caught_up().await, 1);
    // What the client has processed: the close names it as the place to resume from.
    socket.ack(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
    )
    .await;
    let frame = socket.next_frame().await;
    assert_eq!(
        frame["kind"], "error",
        "expected an error frame, got {frame}"
    );
    assert_eq!(frame["code"], "token_expired");
    assert_eq!(frame["resume_after"], 1);
    assert_eq!(socket.expect_close().await, Some(4001));
}
