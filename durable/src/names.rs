//! Aggregate addressing and the Worker → object hand-off.
//!
//! An aggregate lives in the Durable Object named `"{tenant}/{type}:{id}"`. The Worker
//! authenticates a request and passes the principal in the headers below; it always
//! deletes client-sent copies first, so a client cannot forge them.

/// Header carrying the authenticated actor (`sub`) into an object.
pub const ACTOR_HEADER: &str = "x-edgeloop-actor";
/// Header telling an object to answer a WebSocket upgrade with this subprotocol (the
/// client offered it).
pub const WS_PROTOCOL_HEADER: &str = "x-edgeloop-ws-protocol";
/// Header carrying the token's expiry plus auth's clock leeway (Unix seconds): a socket
/// is closed when it passes.
pub const EXPIRES_HEADER: &str = "x-edgeloop-expires";
/// Every trusted header: the Worker deletes all of them from client requests.
pub const TRUSTED_HEADERS: &[&str] = &[ACTOR_HEADER, WS_PROTOCOL_HEADER, EXPIRES_HEADER];
/// Diagnostic header naming the object instance that answered (changes after eviction).
pub const INSTANCE_HEADER: &str = "x-edgeloop-instance";

/// The Durable Object name of an aggregate. Always under a tenant: there is no
/// untenanted namespace a route could fall into.
pub fn object_name(tenant: &str, aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{tenant}/{aggregate_type}:{aggregate_id}")
}

/// Largest aggregate id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Aggregate ids are 1–256 bytes of printable ASCII without `/`, `:` or `%`, so
/// that object names stay unambiguous and ids survive URLs unescaped.
pub fn valid_aggregate_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'%')
}
