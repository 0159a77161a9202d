//! The stream routes in the authentication matrix: every stream route — the page read,
//! the partition listing, the live socket (with the token in each of its three carriers)
//! and the partition admin operations — against missing, forged, expired and under-scoped
//! credentials; and tenancy: a valid token of another tenant sees that tenant's own
//! (empty) stream, never this one's.

use std::time::Duration;

use serde_json::json;
use tests::{Client, TENANT, Worker, cmd, shared, unix_now};

const OTHER_TENANT: &str = "e2e-other";

#[derive(Debug, Clone, Copy)]
enum Route {
    Read,
    Partitions,
    SocketHeader,
    SocketSubprotocol,
    SocketQuery,
    Pause,
}

impl Route {
    const ALL: [Route; 6] = [
        Route::Read,
        Route::Partitions,
        Route::SocketHeader,
        Route::SocketSubprotocol,
        Route::SocketQuery,
        Route::Pause,
    ];

    fn required_scope(self) -> &'static str {
        match self {
            Route::Pause => "admin",
            _ => "replay",
        }
    }

    /// Sends the request with `token` (or none) and returns status, error code and the
    /// body's `required_scope`.
    async fn call(self, worker: &Worker, token: Option<&str>) -> (u16, String, Option<String>) {
        let c = Client::new(worker.url()).with_token(None);
        let with = |r: reqwest::RequestBuilder| match token {
            Some(t) => r.header("authorization", format!("Bearer {t}")),
            None => r,
        };
        let reply = match self {
            Route::Read => {
                c.send(with(
                    c.request(reqwest::Method::GET, "/v1/stream?partition=0"),
                ))
                .await
            }
            Route::Partitions => {
                c.send(with(
                    c.request(reqwest::Method::GET, "/v1/stream/partitions"),
                ))
                .await
            }
            Route::Pause => {
                c.send(with(c.request(
                    reqwest::Method::POST,
                    "/v1/stream/partitions/0/pause",
                )))
                .await
            }
            Route::SocketHeader | Route::SocketSubprotocol | Route::SocketQuery => {
                let path = match (self, token) {
                    (Route::SocketQuery, Some(t)) => {
                        format!("/v1/stream/ws?partition=0&access_token={t}")
                    }
                    _ => "/v1/stream/ws?partition=0".to_owned(),
                };
                let (header, protocols) = match (self, token) {
                    (Route::SocketHeader, Some(t)) => (Some(t.to_owned()), None),
                    (Route::SocketSubprotocol, Some(t)) => {
                        (None, Some(format!("edgeloop.v1, bearer.{t}")))
                    }
                    _ => (None, None),
                };
                let extra: Vec<(&str, &str)> = protocols
                    .as_deref()
                    .map(|p| vec![("sec-websocket-protocol", p)])
                    .unwrap_or_default();
                match c.with_token(header).try_socket_with(&path, &extra).await {
                    Ok(_) => return (101, String::new(), None),
                    Err(reply) => reply,
                }
            }
        };
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        (
            reply.status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["error"]["required_scope"].as_str().map(str::to_owned),
        )
    }
}

#[tokio::test]
async fn stream_routes_refuse_bad_credentials_and_missing_scopes() {
    let worker = shared();
    let now = unix_now();
    let all = "commands read replay consume admin";
    let valid = worker.token("auditor", TENANT, all);
    let forged = format!("{}x", &valid[..valid.len() - 1]);
    let expired = worker.token_expiring("auditor", TENANT, all, now - 3600);
    let mut failures = Vec::new();
    for route in Route::ALL {
        let without_scope = worker.token(
            "auditor",
            TENANT,
            &all.split(' ')
                .filter(|s| *s != route.required_scope())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let cells: [(&str, Option<&str>, u16, &str); 4] = [
            ("no token", None, 401, "unauthorized"),
            ("forged signature", Some(&forged), 401, "unauthorized"),
            ("expired", Some(&expired), 401, "unauthorized"),
            ("without the scope", Some(&without_scope), 403, "forbidden"),
        ];
        for (what, token, status, code) in cells {
            let (got, got_code, scope) = route.call(worker, token).await;
            if (got, got_code.as_str()) != (status, code) {
                failures.push(format!(
                    "{route:?} with {what}: {got} {got_code}, expected {status} {code}"
                ));
            }
            if status == 403 && scope.as_deref() != Some(route.required_scope()) {
                failures.push(format!("{route:?} with {what}: required_scope {scope:?}"));
            }
        }
        let (got, code, _) = route.call(worker, Some(&valid)).await;
        let expected = match route {
            Route::SocketHeader | Route::SocketSubprotocol | Route::SocketQuery => 101,
            _ => 200,
        };
        if got != expected {
            failures.push(format!("{route:?} with a valid token: {got} {code}"));
        }
    }
    // The Pause cell with a valid token paused partition 0 of the shared Worker.
    shared()
        .client()
        .post_raw("/v1/stream/partitions/0/resume", None, "")
        .await
        .expect(200);
    assert!(
        failures.is_empty(),
        "{} failing cells:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn another_tenants_token_sees_only_its_own_stream() {
    let worker = Worker::start_with(tests::Options::new().var("STREAM_PARTITIONS", 1));
    let c = worker.client();
    let id = tests::unique_id("tenant-stream");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "mine"})))
        .await;
    // Wait until it is in this tenant's stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = c.get("/v1/stream?partition=0").await.expect(200);
        if page["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never forwarded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = Client::new(worker.url()).with_token(Some(worker.token(
        "intruder",
        OTHER_TENANT,
        "commands read replay consume admin",
    )));
    let page = other.get("/v1/stream?partition=0").await.expect(200);
    assert_eq!(page["events"], json!([]), "another tenant's stream");
    assert_eq!(page["head"], 0);
    let partitions = other.get("/v1/stream/partitions").await.expect(200);
    assert_eq!(partitions["partitions"][0]["head"], 0);
    let mut socket = other.socket("/v1/stream/ws?partition=0").await;
    let frame = socket.next_frame().await;
    assert_eq!(frame["kind"], "caught_up");
    assert_eq!(frame["position"], json!({"partition": 0, "offset": 0}));
    // Pausing the other tenant's partition 0 does not pause this one's.
    other
        .post_raw("/v1/stream/partitions/0/pause", None, "")
        .await
        .expect(200);
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = c.get("/v1/stream?partition=0").await.expect(200);
        if page["events"].as_array().is_some_and(|e| e.len() == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "this tenant's partition was paused by another"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    socket.expect_silence(Duration::from_millis(300)).await;
}
