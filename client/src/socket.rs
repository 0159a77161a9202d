//! The raw WebSocket layer: an upgrade that may be refused ([`Upgrade`]), a [`Socket`]
//! that sends and receives frames as they are, and the server's frames decoded
//! ([`Frame`]). [`crate::Subscription`] builds acks, resume and dedupe on top.

use std::time::Duration;

use domain::EventEnvelope;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Client, Error, Reply};

/// The subprotocol of Edgeloop's socket protocol, version 1.
pub const PROTOCOL: &str = "edgeloop.v1";

/// Close codes the server uses (besides RFC 6455's own).
pub mod close {
    /// `bad_request`: a client frame that is not a valid ack (RFC 6455 policy violation).
    pub const PROTOCOL_ERROR: u16 = 1008;
    /// `internal`: the server's fault; reconnect with `after`.
    pub const INTERNAL: u16 = 1011;
    /// `token_expired`: the token that opened the socket expired; reconnect with a fresh one.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// `slow_consumer`: more than the acknowledgement window unacknowledged; reconnect
    /// with `after` = the last seq processed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// `rate_limited`: the client sent more frames per second than allowed.
    pub const RATE_LIMITED: u16 = 4029;
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The outcome of a WebSocket upgrade request.
#[derive(Debug)]
pub enum Upgrade {
    /// The server switched protocols. (Boxed: an open socket is large beside a reply.)
    Accepted(Box<Socket>),
    /// The server answered with HTTP instead (401, 403, 404, 426, 429 …), read whole.
    Refused(Reply),
}

/// What a socket received, as it came (pings and pongs are answered and skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// The peer's close frame: its code and reason, or `None` for a close without a code.
    Close(Option<(u16, String)>),
}

/// An open WebSocket, unmanaged: no acks, no reconnects.
#[derive(Debug)]
pub struct Socket {
    pub(crate) stream: Stream,
    headers: HeaderMap,
}

impl Socket {
    /// The headers of the upgrade answer.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The subprotocol the server selected (`edgeloop.v1`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
    }

    /// The next frame; `Ok(None)` once the connection has ended. Cancel-safe: dropping the
    /// future loses no frame.
    ///
    /// Errors: [`Error::Network`] when the connection broke.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, Error> {
        loop {
            let Some(message) = self.stream.next().await else {
                return Ok(None);
            };
            match message.map_err(socket_error)? {
                Message::Text(text) => return Ok(Some(Incoming::Text(text.as_str().to_owned()))),
                Message::Binary(bytes) => return Ok(Some(Incoming::Binary(bytes.to_vec()))),
                Message::Close(frame) => return Ok(Some(Incoming::Close(frame.map(close_parts)))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// Sends a text frame as it is.
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::text(text)).await
    }

    /// Sends a binary frame (the protocol has none; the server closes with 1008).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), Error> {
        self.send(Message::binary(bytes)).await
    }

    /// Acknowledges every event up to `seq`: `{"kind":"ack","seq":N}`.
    pub async fn ack(&mut self, seq: u64) -> Result<(), Error> {
        self.send_text(&ack_frame(seq)).await
    }

    pub(crate) async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.stream.send(message).await.map_err(socket_error)
    }

    /// Closes politely: sends a close frame and waits (at most 5 s) for the server's.
    pub async fn close(mut self) {
        let _ = self.stream.send(Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

/// The text of an ack of everything up to `seq`.
pub fn ack_frame(seq: u64) -> String {
    format!(r#"{{"kind":"ack","seq":{seq}}}"#)
}

fn close_parts(frame: CloseFrame) -> (u16, String) {
    (u16::from(frame.code), frame.reason.as_str().to_owned())
}

fn socket_error(error: tungstenite::Error) -> Error {
    Error::network(error)
}

/// A frame the server sends on an aggregate socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Frame {
    /// `{"kind":"event","event":envelope}`.
    Event { event: Box<EventEnvelope> },
    /// `{"kind":"caught_up","version":V}`: every event up to `version` has been sent; live
    /// events follow.
    CaughtUp { version: u64 },
    /// `{"kind":"error","code","message","resume_after"}`, right before the server closes.
    Error {
        code: String,
        message: String,
        /// The last seq the server saw acknowledged.
        #[serde(default)]
        resume_after: Option<u64>,
    },
    /// A kind this client does not know (a newer server); skipped.
    #[serde(other)]
    Unknown,
}

impl Frame {
    /// Decodes a text frame; [`Error::Decode`] when it is not a frame of the protocol.
    pub fn parse(text: &str) -> Result<Frame, Error> {
        serde_json::from_str(text)
            .map_err(|e| Error::Decode(format!("socket frame ({e}): {}", crate::excerpt(text))))
    }
}

impl Client {
    /// Raw upgrade of `path_and_query` (sent as it is): with this client's token in
    /// `Authorization` and the extra `headers` (e.g. `sec-websocket-protocol`), once, within
    /// the request timeout. For a managed, resuming subscription use [`Client::subscribe`].
    ///
    /// Errors: [`Error::Network`] when the connection failed or timed out;
    /// [`Error::InvalidArgument`] for a header that is not valid HTTP.
    pub async fn upgrade(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Upgrade, Error> {
        let mut all = Vec::with_capacity(headers.len() + 1);
        if let Some(token) = self.token() {
            all.push(("authorization".to_owned(), format!("Bearer {token}")));
        }
        all.extend(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        connect(
            &ws_url(&self.url(path_and_query)),
            &all,
            self.request_timeout(),
        )
        .await
    }
}

/// `http(s)://…` → `ws(s)://…`.
pub(crate) fn ws_url(http_url: &str) -> String {
    if let Some(rest) = http_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_url.to_owned()
    }
}

/// Opens a WebSocket to `url` with `headers`, within `timeout`.
pub(crate) async fn connect(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Upgrade, Error> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::InvalidArgument(format!("WebSocket URL {url}: {e}")))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| Error::InvalidArgument(format!("header name `{name}`: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| Error::InvalidArgument(format!("header `{name}`: {e}")))?;
        request.headers_mut().insert(name, value);
    }
    let connecting = tokio_tungstenite::connect_async(request);
    let result = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| {
            Error::network(format!(
                "WebSocket handshake with {url} timed out after {timeout:?}"
            ))
        })?;
    match result {
        Ok((stream, response)) => Ok(Upgrade::Accepted(Box::new(Socket {
            stream,
            headers: response.headers().clone(),
        }))),
        Err(tungstenite::Error::Http(response)) => Ok(Upgrade::Refused(Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.body().clone().unwrap_or_default(),
        })),
        Err(e) => Err(socket_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_decode_by_kind() {
        let caught_up = Frame::parse(r#"{"kind":"caught_up","version":7}"#).unwrap();
        assert_eq!(caught_up, Frame::CaughtUp { version: 7 });
        let error = Frame::parse(
            r#"{"kind":"error","code":"slow_consumer","message":"m","resume_after":3}"#,
        )
        .unwrap();
        assert_eq!(
            error,
            Frame::Error {
                code: "slow_consumer".into(),
                message: "m".into(),
                resume_after: Some(3)
            }
        );
        let event = json!({"kind": "event", "event": {
            "aggregate_type": "board", "aggregate_id": "b", "seq": 2, "event_id": "e",
            "type": "CardAdded", "schema_version": 1, "data": {"card_id": "c1"},
            "recorded_at": "2026-01-01T00:00:00.000Z", "command_id": null,
            "correlation_id": null, "causation_id": null, "actor": "a"}});
        match Frame::parse(&event.to_string()).unwrap() {
            Frame::Event { event } => {
                assert_eq!((event.seq, event.data["card_id"].as_str()), (2, Some("c1")))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_kinds_are_skippable_and_garbage_is_a_decode_error() {
        assert_eq!(
            Frame::parse(r#"{"kind":"position_hint","x":1}"#).unwrap(),
            Frame::Unknown
        );
        assert!(matches!(Frame::parse("not json"), Err(Error::Decode(_))));
        assert!(matches!(
            Frame::parse(r#"{"kind":"event"}"#),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn acks_and_urls() {
        assert_eq!(ack_frame(42), r#"{"kind":"ack","seq":42}"#);
        assert_eq!(ws_url("http://h:1/v1/x?after=2"), "ws://h:1/v1/x?after=2");
        assert_eq!(ws_url("https://h/v1"), "wss://h/v1");
    }
}
