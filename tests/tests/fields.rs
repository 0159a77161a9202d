//! A field is either absent or of its documented type: `null` is not a quiet "absent".
//! `"expected_version": null` once read as `"any"` and wrote the event, silently turning the
//! client's concurrency check off; `null` in an optional field of `data` (`AddCard.column`)
//! once meant the default. Each is now a 400 `bad_request` that writes nothing, in JSON
//! and in MessagePack bodies alike (the Worker decodes both through the same JSON value).
//! Each refused body is followed by the same command without the `null` field, which goes
//! through: the refusal is about the `null`, not about anything else in the command.

use serde_json::{Value, json};
use tests::shared;

/// The fields each test sets to `null`: two of the body, one of `data`.
const NULL_FIELDS: [&str; 3] = ["expected_version", "command_id", "data.column"];

/// `AddCard {card_id}` that would go through, with `null_field` (a field of the body, or
/// `data.` and a field of its data) set to `null` when given.
fn add_card(card_id: &str, null_field: Option<&str>) -> Value {
    let mut body = json!({"type": "AddCard", "data": {"card_id": card_id, "title": "t"}});
    match null_field.map(|path| path.strip_prefix("data.").ok_or(path)) {
        Some(Ok(data_field)) => body["data"][data_field] = Value::Null,
        Some(Err(field)) => body[field] = Value::Null,
        None => {}
    }
    body
}

/// Sends each body with a `null` field as `content_type`, expects a 400 that writes
/// nothing, then the same command without the field, which must go through.
async fn check(board: &str, content_type: &str, encode: impl Fn(&Value) -> Vec<u8>) {
    let client = shared().client();
    let id = client.board_with_cards(board, 1).await;
    let path = format!("/v1/aggregates/board/{id}/commands");
    for (n, field) in NULL_FIELDS.into_iter().enumerate() {
        let card = format!("n{n}");
        let body = add_card(&card, Some(field));
        let before = client.version("board", &id).await;
        let reply = client
            .post_raw(&path, Some(content_type), encode(&body))
            .await;
        let error = reply.expect_error(400, "bad_request");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("null"),
            "{content_type} {body}: the message does not say what is wrong: {error}"
        );
        if field.starts_with("data.") {
            // The domain names the field of `data` it refuses.
            assert!(message.contains(&format!("`{field}`")), "{body}: {error}");
        }
        assert_eq!(
            client.version("board", &id).await,
            before,
            "{content_type} `{field}: null` wrote an event"
        );

        let control = add_card(&card, None);
        let reply = client
            .post_raw(&path, Some(content_type), encode(&control))
            .await;
        assert_eq!(reply.status, 200, "{control}: {}", reply.text());
        assert_eq!(client.version("board", &id).await, before + 1);
    }
}

#[tokio::test]
async fn null_in_a_json_command_is_a_400_that_writes_nothing() {
    check("board-fields-json", "application/json", |body| {
        serde_json::to_vec(body).expect("encode JSON")
    })
    .await;
}

#[tokio::test]
async fn null_in_a_msgpack_command_is_a_400_that_writes_nothing() {
    // MessagePack's nil becomes JSON's null before the command is decoded.
    check("board-fields-msgpack", "application/msgpack", |body| {
        rmp_serde::to_vec_named(body).expect("encode MessagePack")
    })
    .await;
}
