//! Wire encodings: JSON responses, MessagePack request bodies, and the three listing
//! encodings (JSON, NDJSON, MessagePack) chosen by `Accept`.

use domain::EventEnvelope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Headers, Response};

/// The media types read and written as MessagePack (requests and `Accept` alike).
pub const MSGPACK_MEDIA_TYPES: &[&str] = &[
    "application/msgpack",
    "application/x-msgpack",
    "application/vnd.msgpack",
];

/// Decodes a MessagePack request body into the JSON value it stands for. Refuses what has
/// no JSON form — NaN and infinite floats, binary and extension values, non-string map
/// keys — and trailing bytes, instead of letting them turn silently into `null` (a NaN
/// `expected_version` would otherwise read as "any").
pub fn msgpack_to_json(body: &[u8]) -> Result<Value, String> {
    let mut reader = body;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, domain::codec::MAX_DEPTH)
        .map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes after the value", reader.len()));
    }
    to_json(value)
}

fn to_json(value: rmpv::Value) -> Result<Value, String> {
    use rmpv::Value as Mp;
    Ok(match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(n)) => Value::from(n),
            _ => return Err("an integer out of range".into()),
        },
        Mp::F32(f) => finite(f64::from(f))?,
        Mp::F64(f) => finite(f)?,
        Mp::String(s) => Value::String(s.into_str().ok_or("a string that is not UTF-8")?),
        Mp::Array(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Mp::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| match k {
                    Mp::String(k) => {
                        Ok((k.into_str().ok_or("a key that is not UTF-8")?, to_json(v)?))
                    }
                    _ => Err("a map key that is not a string".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        Mp::Binary(_) => return Err("a binary value (JSON has none)".into()),
        Mp::Ext(..) => return Err("an extension value".into()),
    })
}

fn finite(f: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "a NaN or infinite number".to_owned())
}

/// A JSON response with a status. Serializing our own types cannot fail; if it somehow
/// did, the client still gets a JSON body.
pub fn json_response(value: &impl Serialize, status: u16) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec()
    });
    bytes_response(body, "application/json", status)
}

pub fn bytes_response(body: Vec<u8>, content_type: &str, status: u16) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    // Building a response from bytes cannot fail in the runtime; the fallback only keeps
    // this function total.
    Response::from_bytes(body)
        .or_else(|_| Response::empty())
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::builder().with_status(500).empty())
}

/// The representation a listing is answered in, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Json,
    Ndjson,
    MessagePack,
}

impl Encoding {
    /// Picks the supported media type with the highest quality in `Accept` (ties: the
    /// first listed). No header, `*/*`, or nothing supported means JSON: a listing is
    /// always answerable. A type offered with `q=0` is never chosen.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Encoding::Json;
        };
        let mut best: Option<(f32, Encoding)> = None;
        for part in accept.split(',') {
            let mut fields = part.split(';');
            let media = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let encoding = match media.as_str() {
                "application/x-ndjson" | "application/ndjson" => Encoding::Ndjson,
                m if MSGPACK_MEDIA_TYPES.contains(&m) => Encoding::MessagePack,
                "application/json" => Encoding::Json,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, encoding));
            }
        }
        best.map_or(Encoding::Json, |(_, encoding)| encoding)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::MessagePack => "application/msgpack",
        }
    }
}

/// One page of events and the cursor to the next page.
#[derive(Debug, Serialize)]
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Option<u64>>,
}

/// Renders a page in the chosen encoding. NDJSON carries one envelope per line and the
/// cursor in the `x-next-after` / `x-next-before` header.
pub fn page_response(page: &EventPage, encoding: Encoding) -> Response {
    let mut response = match encoding {
        Encoding::Json => json_response(page, 200),
        Encoding::MessagePack => {
            bytes_response(domain::codec::encode(page), encoding.content_type(), 200)
        }
        Encoding::Ndjson => {
            let mut body = Vec::new();
            for event in &page.events {
                if serde_json::to_writer(&mut body, event).is_ok() {
                    body.push(b'\n');
                }
            }
            bytes_response(body, encoding.content_type(), 200)
        }
    };
    let cursor = |c: Option<u64>| c.map_or_else(|| "null".to_owned(), |n| n.to_string());
    if let Some(next) = page.next_after {
        let _ = response.headers_mut().set("x-next-after", &cursor(next));
    }
    if let Some(next) = page.next_before {
        let _ = response.headers_mut().set("x-next-before", &cursor(next));
    }
    response
}

/// One page of the global stream (`GET /v1/stream`).
#[derive(Debug, Serialize)]
pub struct StreamPage {
    pub events: Vec<EventEnvelope>,
    /// The offset to read on from (`after=`): the last offset this page looked at, which
    /// a filtered page may pass without returning anything; `null` when it reached the head.
    pub next_after: Option<u64>,
    /// The partition's head when the page was read.
    pub head: u64,
}

/// Envelopes per chunk of a streamed page.
const CHUNK_EVENTS: usize = 256;

/// Renders a stream page. JSON and NDJSON bodies are streamed: each chunk of
/// [`CHUNK_EVENTS`] envelopes is serialized only when the runtime pulls it, so the
/// encoded page never sits whole in memory (the events themselves are bounded by the
/// read budget). MessagePack needs the array length first and is encoded at once.
/// The cursor is also in the `x-next-after` header (`null` at the head).
pub fn stream_page_response(page: StreamPage, encoding: Encoding) -> crate::ApiResult<Response> {
    let cursor = page
        .next_after
        .map_or_else(|| "null".to_owned(), |n| n.to_string());
    let mut response = match encoding {
        Encoding::MessagePack => {
            bytes_response(domain::codec::encode(&page), encoding.content_type(), 200)
        }
        Encoding::Json | Encoding::Ndjson => {
            let ndjson = encoding == Encoding::Ndjson;
            let StreamPage {
                events,
                next_after: _,
                head,
            } = page;
            let tail = format!(r#"],"next_after":{cursor},"head":{head}}}"#);
            let mut events = events.into_iter().peekable();
            let mut started = false;
            let mut finished = false;
            let chunks = std::iter::from_fn(move || {
                if finished {
                    return None;
                }
                let mut chunk = Vec::new();
                if !started {
                    started = true;
                    if !ndjson {
                        chunk.extend_from_slice(br#"{"events":["#);
                    }
                }
                for event in events.by_ref().take(CHUNK_EVENTS) {
                    if serde_json::to_writer(&mut chunk, &event).is_ok() {
                        chunk.push(if ndjson { b'\n' } else { b',' });
                    }
                }
                if events.peek().is_none() {
                    finished = true;
                    if !ndjson {
                        if chunk.last() == Some(&b',') {
                            chunk.pop();
                        }
                        chunk.extend_from_slice(tail.as_bytes());
                    }
                }
                Some(Ok::<Vec<u8>, worker::Error>(chunk))
            });
            let headers = Headers::new();
            headers.set("content-type", encoding.content_type())?;
            Response::from_stream(futures_util::stream::iter(chunks))?.with_headers(headers)
        }
    };
    response.headers_mut().set("x-next-after", &cursor)?;
    Ok(response)
}

/// A MessagePack stream page from envelopes already encoded: `envelopes` is `count`
/// envelopes' MessagePack concatenated (the body of an array). The bytes are exactly what
/// `domain::codec::encode(&StreamPage { events, next_after, head })` gives for those
/// envelopes: a map of [`StreamPage`]'s fields in declaration order, keys as strings,
/// integers in their shortest form, `None` as nil — written with `rmp` around the stored
/// bytes instead of decoding and re-encoding every envelope.
pub fn packed_page_bytes(
    envelopes: &[u8],
    count: usize,
    next_after: Option<u64>,
    head: u64,
) -> Vec<u8> {
    use rmp::encode::{write_array_len, write_map_len, write_nil, write_str, write_uint};
    let mut out = Vec::with_capacity(envelopes.len() + 40);
    // Writing into a Vec cannot fail.
    let _ = write_map_len(&mut out, 3);
    let _ = write_str(&mut out, "events");
    let _ = write_array_len(&mut out, u32::try_from(count).unwrap_or(u32::MAX));
    out.extend_from_slice(envelopes);
    let _ = write_str(&mut out, "next_after");
    match next_after {
        Some(offset) => {
            let _ = write_uint(&mut out, offset);
        }
        None => {
            let _ = write_nil(&mut out);
        }
    }
    let _ = write_str(&mut out, "head");
    let _ = write_uint(&mut out, head);
    out
}

/// [`packed_page_bytes`] as a response, with the `x-next-after` header of
/// [`stream_page_response`].
pub fn packed_page_response(
    envelopes: &[u8],
    count: usize,
    next_after: Option<u64>,
    head: u64,
) -> crate::ApiResult<Response> {
    let cursor = next_after.map_or_else(|| "null".to_owned(), |n| n.to_string());
    let mut response = bytes_response(
        packed_page_bytes(envelopes, count, next_after, head),
        Encoding::MessagePack.content_type(),
        200,
    );
    response.headers_mut().set("x-next-after", &cursor)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The spliced page is byte for byte the page encoded whole, for every shape of cursor
    /// and head (integers of each width, nil) and for an empty page.
    #[test]
    fn a_page_spliced_from_stored_envelopes_equals_the_page_encoded_whole() {
        let envelope = |offset: u64| EventEnvelope {
            aggregate_type: "board".into(),
            aggregate_id: "b1".into(),
            seq: offset,
            event_id: format!("01900000-0000-7000-8000-{offset:012}"),
            event_type: "CardCommented".into(),
            schema_version: 1,
            data: json!({"card_id": "c1", "text": "é ✓", "n": -1.5, "list": [1, 300, 70000]}),
            recorded_at: "2026-12-07T10:00:00.000Z".into(),
            command_id: Some("k".into()),
            correlation_id: None,
            causation_id: None,
            actor: Some("ana".into()),
            position: Some(domain::Position {
                partition: 3,
                offset,
            }),
        };
        for (n, next_after, head) in [
            (0, None, 0),
            (1, Some(7), 7),
            (3, Some(200), 70_000),
            (20, None, u64::from(u32::MAX) + 5),
        ] {
            let events: Vec<EventEnvelope> = (1..=n).map(envelope).collect();
            let stored: Vec<u8> = events.iter().flat_map(domain::codec::encode).collect();
            let whole = domain::codec::encode(&StreamPage {
                events,
                next_after,
                head,
            });
            assert_eq!(
                packed_page_bytes(&stored, n as usize, next_after, head),
                whole,
                "{n} events, next_after {next_after:?}, head {head}"
            );
        }
    }

    #[test]
    fn msgpack_bodies_without_a_json_form_are_refused() {
        let encode = |v: &Value| rmp_serde::to_vec_named(v).unwrap();
        let ok = json!({"type": "AddCard", "data": {"n": 1.5, "k": [1, -2, null, true]}});
        assert_eq!(msgpack_to_json(&encode(&ok)), Ok(ok.clone()));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut body = std::collections::BTreeMap::new();
            body.insert("expected_version", bad);
            let bytes = rmp_serde::to_vec_named(&body).unwrap();
            assert!(msgpack_to_json(&bytes).is_err(), "{bad} accepted");
        }
        let mut trailing = encode(&ok);
        trailing.push(0xc0);
        assert!(msgpack_to_json(&trailing).is_err());
        assert!(
            msgpack_to_json(&[0xc4, 0x01, 0x00]).is_err(),
            "binary accepted"
        );
        assert!(
            msgpack_to_json(&[0x81, 0x01, 0x02]).is_err(),
            "integer key accepted"
        );
        assert!(
            msgpack_to_json(&[0x92, 0x01]).is_err(),
            "truncated accepted"
        );
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(Encoding::from_accept(None), Encoding::Json);
        assert_eq!(
            Encoding::from_accept(Some("application/x-ndjson")),
            Encoding::Ndjson
        );
        assert_eq!(
            Encoding::from_accept(Some("text/html, application/msgpack;q=0.9")),
            Encoding::MessagePack
        );
        assert_eq!(Encoding::from_accept(Some("*/*")), Encoding::Json);
        assert_eq!(
            Encoding::from_accept(Some("application/json;q=0, application/x-ndjson")),
            Encoding::Ndjson
        );
        assert_eq!(
            Encoding::from_accept(Some("application/json;q=0.5, application/msgpack;q=0.9")),
            Encoding::MessagePack
        );
    }
}
