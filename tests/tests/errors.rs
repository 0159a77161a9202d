//! Client mistakes get the documented status and JSON error body, and change nothing:
//! malformed bodies (400), wrong content types (415), oversize bodies (413), unknown
//! aggregate types and routes (404), version conflicts (409 with `expected` and `actual`),
//! plus idempotent retries.

use serde_json::{Value, json};
use tests::{Options, Worker, cmd, cmd_expecting, shared, unique_id};

fn commands_path(aggregate_type: &str, id: &str) -> String {
    format!("/v1/aggregates/{aggregate_type}/{id}/commands")
}

#[tokio::test]
async fn malformed_commands_are_400_and_change_nothing() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let path = commands_path("board", &id);
    let bodies: Vec<(&str, String)> = vec![
        ("not JSON", r#"{"type": "AddCard", "data": {"#.to_owned()),
        ("empty body", String::new()),
        ("a JSON list", "[]".to_owned()),
        ("a JSON string", r#""AddCard""#.to_owned()),
        ("null", "null".to_owned()),
        ("no type", json!({"data": {"card_id": "x", "title": "t"}}).to_string()),
        ("type is a number", json!({"type": 7, "data": {}}).to_string()),
        ("unknown command", json!({"type": "Explode", "data": {}}).to_string()),
        ("another aggregate's command", json!({"type": "SubmitFeedback", "data": {"text": "t", "source": "s"}}).to_string()),
        ("missing field", json!({"type": "AddCard", "data": {"card_id": "x"}}).to_string()),
        ("title is a number", json!({"type": "AddCard", "data": {"card_id": "x", "title": 5}}).to_string()),
        ("card_id is null", json!({"type": "AddCard", "data": {"card_id": null, "title": "t"}}).to_string()),
        ("labels is a string", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t", "labels": "a,b"}}).to_string()),
        ("labels hold numbers", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t", "labels": [1]}}).to_string()),
        ("wip_limit is a string", json!({"type": "AddColumn", "data": {"name": "A", "wip_limit": "3"}}).to_string()),
        ("wip_limit is negative", json!({"type": "AddColumn", "data": {"name": "A", "wip_limit": -1}}).to_string()),
        ("limit is missing", json!({"type": "SetWipLimit", "data": {"column": "Todo"}}).to_string()),
        ("unknown data field", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t", "colour": "red"}}).to_string()),
        ("unknown top-level field", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "extra": 1}).to_string()),
        ("data is a list", json!({"type": "AddCard", "data": [1, 2]}).to_string()),
        ("expected_version is a word", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "expected_version": "sometimes"}).to_string()),
        ("expected_version is negative", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "expected_version": -1}).to_string()),
        ("expected_version is a fraction", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "expected_version": 1.5}).to_string()),
        ("command_id is a number", json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "command_id": 5}).to_string()),
    ];
    for (what, body) in bodies {
        let before = c.footprint("board", &id).await;
        let reply = c
            .post_raw(&path, Some("application/json"), body.clone())
            .await;
        assert_eq!(
            reply.status,
            400,
            "{what}: {body} answered {}: {}",
            reply.status,
            reply.text()
        );
        reply.expect_error(400, "bad_request");
        assert_eq!(
            c.footprint("board", &id).await,
            before,
            "{what} changed the aggregate"
        );
    }

    // Feedback's enum field.
    let fid = unique_id("feedback-errors");
    let reply = c
        .command(
            "feedback",
            &fid,
            &cmd(
                "SubmitFeedback",
                json!({"text": "t", "source": "s", "severity": "urgent"}),
            ),
        )
        .await;
    reply.expect_error(400, "bad_request");
    assert_eq!(c.footprint("feedback", &fid).await, (0, 0));

    // Garbage declared as MessagePack.
    let reply = c
        .post_raw(&path, Some("application/msgpack"), vec![0xc1, 0xff, 0x00])
        .await;
    reply.expect_error(400, "bad_request");
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test]
async fn a_body_in_another_content_type_is_415() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let body = json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}}).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let reply = c
            .post_raw(
                &commands_path("board", &id),
                Some(content_type),
                body.clone(),
            )
            .await;
        reply.expect_error(415, "unsupported_media_type");
    }
    assert_eq!(c.footprint("board", &id).await, (2, 2));
    // Parameters on the JSON media type are fine.
    let reply = c
        .post_raw(
            &commands_path("board", &id),
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(reply.expect(200)["version"], 3);
}

#[tokio::test]
async fn a_body_over_the_default_limit_of_1_mib_is_413() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    // A valid command, padded past 1 MiB with whitespace.
    let mut body = json!({"type": "AddCard", "data": {"card_id": "big", "title": "t"}}).to_string();
    body.push_str(&" ".repeat(1024 * 1024 + 1 - body.len()));
    assert_eq!(body.len(), 1024 * 1024 + 1);
    let reply = c
        .post_raw(&commands_path("board", &id), Some("application/json"), body)
        .await;
    let error = reply.expect_error(413, "payload_too_large");
    assert_eq!(error["limit"], 1024 * 1024);
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

/// A stream of `chunk`-byte pieces of `bytes`, sent without `Content-Length`
/// (`Transfer-Encoding: chunked`).
fn chunked(bytes: Vec<u8>, chunk: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn the_body_limit_is_configurable_and_holds_without_content_length() {
    const LIMIT: usize = 2048;
    let worker = Worker::start_with(Options::new().var("MAX_BODY_BYTES", LIMIT));
    let c = worker.client();
    let id = c.board_with_cards("board-errors", 1).await;
    let path = commands_path("board", &id);
    // A valid AddCard command, padded with whitespace to exactly `len` bytes.
    let padded = |card: &str, len: usize| {
        let mut body =
            json!({"type": "AddCard", "data": {"card_id": card, "title": "t"}}).to_string();
        body.push_str(&" ".repeat(len - body.len()));
        body
    };
    let post_chunked = |body: Vec<u8>, content_type: &'static str, chunk: usize| {
        c.request(reqwest::Method::POST, &path)
            .header("content-type", content_type)
            .body(chunked(body, chunk))
    };

    // With Content-Length: refused before anything reads the body.
    let reply = c
        .post_raw(&path, Some("application/json"), padded("big", LIMIT + 1))
        .await;
    assert_eq!(reply.expect_error(413, "payload_too_large")["limit"], LIMIT);
    // Chunked, without Content-Length: refused while reading — one byte over, twice the
    // limit, and far over it (4 MiB, which a reader that buffers first would take whole).
    for (what, len, chunk) in [
        ("one byte over", LIMIT + 1, 512),
        ("twice the limit", 2 * LIMIT, 512),
        ("4 MiB", 4 * 1024 * 1024, 64 * 1024),
    ] {
        let reply = c
            .send(post_chunked(
                padded("big", len).into_bytes(),
                "application/json",
                chunk,
            ))
            .await;
        assert_eq!(
            reply.status,
            413,
            "a chunked body of {what} ({len} bytes): {}",
            reply.text()
        );
        assert_eq!(reply.expect_error(413, "payload_too_large")["limit"], LIMIT);
        assert_eq!(c.footprint("board", &id).await, (2, 2), "{what} wrote");
    }
    // The same for MessagePack: a valid command with a long title, over the limit.
    let packed = rmp_serde::to_vec_named(
        &json!({"type": "AddCard", "data": {"card_id": "big", "title": "t".repeat(LIMIT)}}),
    )
    .unwrap();
    assert!(packed.len() > LIMIT);
    let reply = c
        .send(post_chunked(packed, "application/msgpack", 256))
        .await;
    assert_eq!(reply.expect_error(413, "payload_too_large")["limit"], LIMIT);
    assert_eq!(c.footprint("board", &id).await, (2, 2));

    // A chunked body that passes the limit and then never ends: the answer may not wait
    // for an end that never comes (the body is read up to the limit only).
    let over: Vec<Result<Vec<u8>, std::io::Error>> = padded("big", 2 * LIMIT)
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let endless = futures_util::StreamExt::chain(
        futures_util::stream::iter(over),
        futures_util::stream::pending(),
    );
    let request = c
        .request(reqwest::Method::POST, &path)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(endless));
    let reply = tokio::time::timeout(std::time::Duration::from_secs(20), c.send(request))
        .await
        .expect("no answer within 20 s to a chunked body past the limit that never ends");
    assert_eq!(reply.expect_error(413, "payload_too_large")["limit"], LIMIT);
    assert_eq!(c.footprint("board", &id).await, (2, 2));

    // At the limit is fine, chunked or not.
    let reply = c
        .send(post_chunked(
            padded("chunked", LIMIT).into_bytes(),
            "application/json",
            500,
        ))
        .await;
    assert_eq!(reply.expect(200)["version"], 3);
    let reply = c
        .post_raw(&path, Some("application/json"), padded("big", LIMIT))
        .await;
    assert_eq!(reply.expect(200)["version"], 4);
}

/// Encodes a MessagePack map from keys and already-encoded values (each encoded with
/// rmp-serde), so a value can be something JSON cannot hold, such as a NaN.
fn msgpack_map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    assert!(entries.len() < 16, "a fixmap holds at most 15 entries");
    let mut bytes = vec![0x80 | entries.len() as u8];
    for (key, value) in entries {
        bytes.extend(rmp_serde::to_vec(key).unwrap());
        bytes.extend_from_slice(value);
    }
    bytes
}

/// A value encoded on its own with rmp-serde (this crate has no serde of its own, so no
/// derived struct: [`msgpack_map`] assembles the objects).
fn packed(value: impl Pack) -> Vec<u8> {
    value.pack()
}

trait Pack {
    fn pack(&self) -> Vec<u8>;
}

macro_rules! pack_with_rmp_serde {
    ($($t:ty),*) => {$(
        impl Pack for $t {
            fn pack(&self) -> Vec<u8> {
                rmp_serde::to_vec_named(self).expect("encode MessagePack")
            }
        }
    )*};
}
pack_with_rmp_serde!(f64, f32, &str, Value);

/// JSON has no NaN or infinity, but MessagePack floats do. Such a number where the command
/// has a number (`expected_version`, `SetWipLimit.limit`) must not quietly become `null`
/// (which would mean "any version" and "clear the limit"): it is a 400, and nothing changes.
/// MessagePack with bytes after the command's value is a 400 too.
#[tokio::test]
async fn non_finite_numbers_and_trailing_bytes_in_messagepack_are_400_and_change_nothing() {
    let c = shared().client();
    let id = unique_id("board-msgpack");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Packed"})))
        .await;
    c.ok(
        "board",
        &id,
        cmd("SetWipLimit", json!({"column": "Doing", "limit": 2})),
    )
    .await;
    let path = commands_path("board", &id);
    let doing_limit = |state: Value| {
        state["state"]["columns"]
            .as_array()
            .and_then(|columns| columns.iter().find(|c| c["name"] == "Doing"))
            .map(|column| column["wip_limit"].clone())
            .unwrap_or_else(|| panic!("no Doing column: {state}"))
    };
    assert_eq!(
        doing_limit(c.state("board", &id, "").await.expect(200)),
        json!(2)
    );

    let add_card = packed(json!({"card_id": "c1", "title": "t"}));
    let set_limit = |limit: Vec<u8>| {
        msgpack_map(&[
            ("type", packed("SetWipLimit")),
            (
                "data",
                msgpack_map(&[("column", packed("Doing")), ("limit", limit)]),
            ),
        ])
    };
    let valid_add = msgpack_map(&[("type", packed("AddCard")), ("data", add_card.clone())]);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "expected_version NaN",
            msgpack_map(&[
                ("type", packed("AddCard")),
                ("data", add_card.clone()),
                ("expected_version", packed(f64::NAN)),
            ]),
        ),
        (
            "expected_version +Infinity",
            msgpack_map(&[
                ("type", packed("AddCard")),
                ("data", add_card.clone()),
                ("expected_version", packed(f64::INFINITY)),
            ]),
        ),
        (
            "expected_version -Infinity",
            msgpack_map(&[
                ("type", packed("AddCard")),
                ("data", add_card.clone()),
                ("expected_version", packed(f64::NEG_INFINITY)),
            ]),
        ),
        (
            "expected_version NaN as a float32",
            msgpack_map(&[
                ("type", packed("AddCard")),
                ("data", add_card.clone()),
                ("expected_version", packed(f32::NAN)),
            ]),
        ),
        ("SetWipLimit limit NaN", set_limit(packed(f64::NAN))),
        (
            "SetWipLimit limit +Infinity",
            set_limit(packed(f64::INFINITY)),
        ),
        (
            "SetWipLimit limit NaN as a float32",
            set_limit(packed(f32::NAN)),
        ),
        (
            "AddCard column NaN (null would mean the first column)",
            msgpack_map(&[
                ("type", packed("AddCard")),
                (
                    "data",
                    msgpack_map(&[
                        ("card_id", packed("c1")),
                        ("title", packed("t")),
                        ("column", packed(f64::NAN)),
                    ]),
                ),
            ]),
        ),
        (
            "AddColumn wip_limit -Infinity (null would mean no limit)",
            msgpack_map(&[
                ("type", packed("AddColumn")),
                (
                    "data",
                    msgpack_map(&[
                        ("name", packed("Review")),
                        ("wip_limit", packed(f64::NEG_INFINITY)),
                    ]),
                ),
            ]),
        ),
        ("a trailing nil byte", {
            let mut bytes = valid_add.clone();
            bytes.push(0xc0);
            bytes
        }),
        ("a second command after the first", {
            let mut bytes = valid_add.clone();
            bytes.extend_from_slice(&valid_add);
            bytes
        }),
        ("a trailing garbage byte", {
            let mut bytes = valid_add.clone();
            bytes.push(0xc1);
            bytes
        }),
    ];
    for (what, bytes) in bodies {
        let before = c.footprint("board", &id).await;
        let reply = c.post_raw(&path, Some("application/msgpack"), bytes).await;
        assert_eq!(
            reply.status,
            400,
            "{what} answered {}: {}",
            reply.status,
            reply.text()
        );
        reply.expect_error(400, "bad_request");
        assert_eq!(
            c.footprint("board", &id).await,
            before,
            "{what} changed the aggregate"
        );
        assert_eq!(
            doing_limit(c.state("board", &id, "").await.expect(200)),
            json!(2),
            "{what} changed the WIP limit"
        );
    }
    assert_eq!(c.footprint("board", &id).await, (2, 2));

    // Control: the same command without the extra bytes, and finite numbers, go through.
    let reply = c
        .post_raw(&path, Some("application/msgpack"), valid_add)
        .await;
    assert_eq!(reply.expect(200)["version"], 3);
    let reply = c
        .post_raw(
            &path,
            Some("application/msgpack"),
            set_limit(packed(3.0f64)),
        )
        .await;
    // A whole float is not an integer field: either refused as such or read as 3; never null.
    if reply.status == 200 {
        assert_eq!(
            doing_limit(c.state("board", &id, "").await.expect(200)),
            json!(3)
        );
    } else {
        reply.expect_error(400, "bad_request");
    }
}

/// `command_id`, `correlation_id` and `causation_id` are copied onto every event: each is
/// at most 256 characters (characters, not bytes). One longer is a 400 and writes nothing;
/// 256 is accepted and recorded as sent.
#[tokio::test]
async fn metadata_ids_over_256_characters_are_400_and_256_are_recorded() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let path = commands_path("board", &id);
    let mut card = 0;
    for field in ["command_id", "correlation_id", "causation_id"] {
        for unit in ["x", "é", "界"] {
            let before = c.footprint("board", &id).await;
            let too_long = unit.repeat(257);
            let mut body = cmd("AddCard", json!({"card_id": "refused", "title": "t"}));
            body[field] = json!(too_long);
            let reply = c.command("board", &id, &body).await;
            assert_eq!(
                reply.status,
                400,
                "a {field} of 257 `{unit}` answered {}: {}",
                reply.status,
                reply.text()
            );
            reply.expect_error(400, "bad_request");
            // The same as MessagePack.
            let bytes = rmp_serde::to_vec_named(&body).unwrap();
            let reply = c.post_raw(&path, Some("application/msgpack"), bytes).await;
            assert_eq!(
                reply.status,
                400,
                "a MessagePack {field} of 257 `{unit}`: {}",
                reply.text()
            );
            assert_eq!(
                c.footprint("board", &id).await,
                before,
                "a {field} of 257 `{unit}` wrote"
            );

            card += 1;
            let exactly = unit.repeat(256);
            let mut body = cmd(
                "AddCard",
                json!({"card_id": format!("c-{card}"), "title": "t"}),
            );
            body[field] = json!(exactly);
            let reply = c.command("board", &id, &body).await;
            assert_eq!(
                reply.status,
                200,
                "a {field} of 256 `{unit}` was refused: {}",
                reply.text()
            );
            let event = &reply.json()["events"][0];
            assert_eq!(event[field], json!(exactly), "the {field} as recorded");
            let seq = event["seq"].as_u64().unwrap();
            let listed = c
                .events("board", &id, &format!("?after={}&limit=1", seq - 1))
                .await
                .expect(200);
            assert_eq!(listed["events"][0][field], json!(exactly));
        }
    }
    assert_eq!(c.footprint("board", &id).await, (11, 11));
}

#[tokio::test]
async fn unknown_aggregate_types_and_routes_are_404_json() {
    let c = shared().client();
    let id = unique_id("x");
    c.command("invoice", &id, &cmd("Create", json!({})))
        .await
        .expect_error(404, "not_found");
    c.state("invoice", &id, "")
        .await
        .expect_error(404, "not_found");
    c.events("invoice", &id, "")
        .await
        .expect_error(404, "not_found");
    let refused = c
        .try_socket(&format!("/v1/aggregates/invoice/{id}/ws"))
        .await
        .expect_err("upgrade must be refused");
    refused.expect_error(404, "not_found");

    // `/` is the board page, served as a static asset ([assets] in wrangler.toml); every
    // other path that is no file reaches the Worker, which answers its JSON 404.
    let page = c.get("/").await;
    assert_eq!(page.status, 200, "GET /: {}", page.text());
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "GET / is the board page: {:?}",
        page.header("content-type")
    );
    for path in [
        "/nope",
        "/v1",
        "/v1/aggregates",
        "/v1/aggregates/board",
        "/v1/aggregates/board/b1/nope",
        "/v2/aggregates/board/b1",
    ] {
        let reply = c.get(path).await;
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text());
        reply.expect_error(404, "not_found");
    }
    // A read of an aggregate that has no events yet.
    c.state("board", &id, "")
        .await
        .expect_error(404, "not_found");
    c.events("board", &id, "")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn wrong_methods_and_bad_parameters_are_json_errors() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let reply = c.get(&commands_path("board", &id)).await;
    assert_eq!(reply.status, 405, "{}", reply.text());
    reply.expect_error(405, "method_not_allowed");
    let reply = c
        .post_raw(
            &format!("/v1/aggregates/board/{id}"),
            Some("application/json"),
            "{}",
        )
        .await;
    reply.expect_error(405, "method_not_allowed");

    for query in [
        "?at_version=abc",
        "?at_version=-1",
        "?as_of=yesterday",
        "?at_version=1&as_of=2020-01-01T00:00:00Z",
        "?colour=red",
    ] {
        let reply = c.state("board", &id, query).await;
        assert_eq!(reply.status, 400, "state{query}: {}", reply.text());
        reply.expect_error(400, "bad_request");
    }
    // An id that cannot name an aggregate.
    c.command("board", "a%20b", &cmd("CreateBoard", json!({"title": "t"})))
        .await
        .expect_error(400, "bad_request");
    // The socket route without an upgrade.
    let reply = c.get(&format!("/v1/aggregates/board/{id}/ws")).await;
    assert_eq!(reply.status, 426, "{}", reply.text());
    reply.expect_error(426, "upgrade_required");
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}

#[tokio::test]
async fn version_conflicts_are_409_with_expected_and_actual() {
    let c = shared().client();
    let id = unique_id("board-conflict");
    let add = |card: &str| json!({"card_id": card, "title": "t"});

    // "exists" on an aggregate with no events.
    let reply = c
        .command(
            "board",
            &id,
            &cmd_expecting("CreateBoard", json!({"title": "t"}), json!("exists")),
        )
        .await;
    let error = reply.expect_error(409, "version_conflict");
    assert_eq!(
        (error["expected"].clone(), error["actual"].clone()),
        (json!("exists"), json!(0))
    );
    assert_eq!(c.footprint("board", &id).await, (0, 0));

    // A number: 0 means "no events yet" and holds here.
    c.ok(
        "board",
        &id,
        cmd_expecting("CreateBoard", json!({"title": "t"}), json!(0)),
    )
    .await;
    c.ok("board", &id, cmd_expecting("AddCard", add("c1"), json!(1)))
        .await;

    for (expected, body) in [
        (json!(5), cmd_expecting("AddCard", add("c2"), json!(5))),
        (json!(1), cmd_expecting("AddCard", add("c2"), json!(1))),
        (json!(0), cmd_expecting("AddCard", add("c2"), json!(0))),
        (
            json!("none"),
            cmd_expecting("AddCard", add("c2"), json!("none")),
        ),
        (
            json!("none"),
            cmd_expecting("CreateBoard", json!({"title": "again"}), json!("none")),
        ),
    ] {
        let reply = c.command("board", &id, &body).await;
        let error = reply.expect_error(409, "version_conflict");
        assert_eq!(error["expected"], expected, "{body}: {error}");
        assert_eq!(error["actual"], 2, "{body}: {error}");
        assert_eq!(
            c.footprint("board", &id).await,
            (2, 2),
            "{body} wrote despite the conflict"
        );
    }

    // The version check comes before the rules: a stale CreateBoard is a conflict, not a 422.
    // Forms that hold go through.
    c.ok("board", &id, cmd_expecting("AddCard", add("c2"), json!(2)))
        .await;
    c.ok(
        "board",
        &id,
        cmd_expecting("AddCard", add("c3"), json!("exists")),
    )
    .await;
    c.ok(
        "board",
        &id,
        cmd_expecting("AddCard", add("c4"), json!("any")),
    )
    .await;
    // An omitted `expected_version` means "any"; `null` is not one of its forms: it is a
    // 400, never a silently disabled check.
    c.ok("board", &id, cmd("AddCard", add("c5"))).await;
    let reply = c
        .command(
            "board",
            &id,
            &cmd_expecting("AddCard", add("c6"), Value::Null),
        )
        .await;
    reply.expect_error(400, "bad_request");
    assert_eq!(c.footprint("board", &id).await, (6, 6));
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_original_result_and_appends_nothing() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let body = cmd("AddCard", json!({"card_id": "c2", "title": "Once"}));

    let first = c.command_with_key("board", &id, &body, Some("key-1")).await;
    let original = first.expect(200);
    assert_eq!(original["version"], 3);
    assert_eq!(
        first.header("idempotent-replayed"),
        None,
        "a first execution is not a replay"
    );

    for _ in 0..3 {
        let again = c.command_with_key("board", &id, &body, Some("key-1")).await;
        assert_eq!(
            again.expect(200),
            original,
            "a retry must return the original result"
        );
        assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    }
    assert_eq!(c.footprint("board", &id).await, (3, 3));

    // Later commands do not change what the key answers.
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c3", "title": "t"})),
    )
    .await;
    let late = c.command_with_key("board", &id, &body, Some("key-1")).await;
    assert_eq!(late.expect(200), original);
    assert_eq!(c.footprint("board", &id).await, (4, 4));

    // Another key is another command (here refused: c2 exists).
    let other = c.command_with_key("board", &id, &body, Some("key-2")).await;
    assert_eq!(
        other.expect_error(422, "rejected")["rule"],
        "card_already_exists"
    );

    // Keys belong to one aggregate: the same key elsewhere runs the command there.
    let elsewhere = c.board_with_cards("board-errors", 1).await;
    let reply = c
        .command_with_key("board", &elsewhere, &body, Some("key-1"))
        .await;
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(reply.expect(200)["version"], 3);

    // Keys must be 1 to 255 printable ASCII characters.
    for key in ["x".repeat(256), "tab\there".to_owned()] {
        let reply = c
            .command_with_key(
                "board",
                &id,
                &cmd("AddCard", json!({"card_id": "c9", "title": "t"})),
                Some(&key),
            )
            .await;
        reply.expect_error(400, "bad_request");
    }
    let ok = c
        .command_with_key(
            "board",
            &id,
            &cmd("AddCard", json!({"card_id": "c9", "title": "t"})),
            Some(&"k".repeat(255)),
        )
        .await;
    assert_eq!(ok.expect(200)["version"], 5);
}

/// Odd bytes anywhere a client controls them are still the client's mistake: 4xx with the
/// JSON body, never a 5xx, never a write.
#[tokio::test]
async fn odd_bytes_are_client_errors_not_server_errors() {
    let c = shared().client();
    let id = c.board_with_cards("board-errors", 1).await;
    let path = commands_path("board", &id);
    let body = r#"{"type":"AddCard","data":{"card_id":"odd","title":"t"}}"#;
    let latin1 = |bytes: &[u8]| reqwest::header::HeaderValue::from_bytes(bytes).unwrap();

    let with_key = c
        .request(reqwest::Method::POST, &path)
        .header("content-type", "application/json")
        .header("idempotency-key", latin1(b"caf\xe9"))
        .body(body);
    c.send(with_key).await.expect_error(400, "bad_request");
    let with_type = c
        .request(reqwest::Method::POST, &path)
        .header("content-type", latin1(b"application/js\xf6n"))
        .body(body);
    c.send(with_type)
        .await
        .expect_error(415, "unsupported_media_type");
    let with_auth = tests::Client::new(c.base())
        .request(reqwest::Method::GET, &format!("/v1/aggregates/board/{id}"))
        .header("authorization", latin1(b"Bearer \xff\xfe"));
    c.send(with_auth).await.expect_error(401, "unauthorized");

    let deep = format!(
        r#"{{"type":"AddCard","data":{{"card_id":"d","title":"t","labels":{}{}}}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    // MessagePack {"type": "AddCard", "data": <bin 00 01>}: bytes where JSON values belong.
    let mut binary_data = vec![0x82, 0xa4];
    binary_data.extend_from_slice(b"type");
    binary_data.push(0xa7);
    binary_data.extend_from_slice(b"AddCard");
    binary_data.push(0xa4);
    binary_data.extend_from_slice(b"data");
    binary_data.extend_from_slice(&[0xc4, 0x02, 0x00, 0x01]);
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "nesting past the parser's limit",
            "application/json",
            deep.into_bytes(),
        ),
        (
            "a number out of range",
            "application/json",
            br#"{"type":"AddCard","data":{},"expected_version":1e400}"#.to_vec(),
        ),
        (
            "a lone surrogate",
            "application/json",
            br#"{"type":"AddCard","data":{"card_id":"x","title":"\ud800"}}"#.to_vec(),
        ),
        ("invalid UTF-8", "application/json", vec![0xff, 0xfe, b'{']),
        (
            "MessagePack bytes as data",
            "application/msgpack",
            binary_data,
        ),
        (
            "truncated MessagePack",
            "application/msgpack",
            vec![0x82, 0xa4, b't'],
        ),
    ];
    for (what, content_type, bytes) in bodies {
        let reply = c.post_raw(&path, Some(content_type), bytes).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        reply.expect_error(400, "bad_request");
    }
    c.events("board", &id, "?after=%FF")
        .await
        .expect_error(400, "bad_request");
    c.get(&format!("/v1/aggregates/board/{id}%FF"))
        .await
        .expect_error(400, "bad_request");
    assert_eq!(c.footprint("board", &id).await, (2, 2));
}
