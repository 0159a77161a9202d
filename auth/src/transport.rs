//! Where a token travels: the `Authorization` header, or — for browsers opening a WebSocket,
//! which cannot set headers — the `Sec-WebSocket-Protocol` header.
//!
//! These functions only extract; [`crate::verify`] judges. The `access_token` query parameter
//! (the other browser fallback) is read by the API alongside its other query parameters.

/// The application WebSocket subprotocol. A server that accepted a bearer token through
/// `Sec-WebSocket-Protocol` answers with this one — never with the `bearer.` entry, which would
/// echo the token back into responses and logs.
pub const WS_PROTOCOL: &str = "edgeloop.v1";

/// Prefix of the `Sec-WebSocket-Protocol` entry that carries a token: `bearer.<jwt>`.
/// JWTs are base64url parts joined by `.`, all valid characters in a subprotocol token.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// The token of an `Authorization: Bearer <token>` header value.
///
/// The scheme is matched case-insensitively (RFC 9110 §11.1); spaces and tabs around the
/// token are ignored. `None` means "no bearer credentials here": another scheme, or no token
/// after the scheme. Whatever follows the scheme is returned as is, for [`crate::verify`] to
/// accept or call malformed.
pub fn bearer_from_header(value: &str) -> Option<&str> {
    const OWS: [char; 2] = [' ', '\t'];
    let (scheme, token) = value.trim_matches(OWS).split_once(OWS)?;
    let token = token.trim_start_matches(OWS);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a client offered in `Sec-WebSocket-Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WsProtocols<'a> {
    /// The token from a `bearer.<token>` entry. `None` if there is none, if it is empty, or if
    /// two entries carry different tokens (ambiguous credentials are no credentials).
    pub token: Option<&'a str>,
    /// Whether [`WS_PROTOCOL`] (`edgeloop.v1`) was offered. If it was, the handshake response
    /// must select it; if it was not and a token was sent this way, the client cannot accept any
    /// protocol the server could answer with, so the API should refuse the upgrade.
    pub offers_edgeloop_v1: bool,
}

/// Parses a `Sec-WebSocket-Protocol` request header: comma-separated subprotocol names, with
/// optional whitespace. If the header was sent more than once, pass the values joined with
/// `", "` (which is what `Headers.get` returns). Names are case-sensitive (RFC 6455 §4.1).
pub fn parse_ws_protocols(header: &str) -> WsProtocols<'_> {
    let mut protocols = WsProtocols::default();
    let mut conflicting_tokens = false;
    for entry in header.split(',').map(|e| e.trim_matches([' ', '\t'])) {
        if entry == WS_PROTOCOL {
            protocols.offers_edgeloop_v1 = true;
        } else if let Some(token) = entry.strip_prefix(WS_BEARER_PREFIX) {
            match protocols.token {
                _ if token.is_empty() => {}
                None => protocols.token = Some(token),
                Some(seen) if seen != token => conflicting_tokens = true,
                Some(_) => {}
            }
        }
    }
    if conflicting_tokens {
        protocols.token = None;
    }
    protocols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for header in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER abc.def.ghi",
        ] {
            assert_eq!(bearer_from_header(header), Some("abc.def.ghi"), "{header}");
        }
    }

    #[test]
    fn bearer_tolerates_optional_whitespace() {
        assert_eq!(
            bearer_from_header("  Bearer \t abc.def.ghi \t"),
            Some("abc.def.ghi")
        );
    }

    #[test]
    fn bearer_rejects_other_schemes_and_missing_tokens() {
        for header in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer\t ",
            "Basic dXNlcjpwYXNz",
            "Bearerabc.def.ghi",
            "Token abc.def.ghi",
            "abc.def.ghi",
        ] {
            assert_eq!(bearer_from_header(header), None, "{header:?}");
        }
    }

    #[test]
    fn ws_finds_token_and_protocol_in_any_order() {
        let expected = WsProtocols {
            token: Some("abc.def.ghi"),
            offers_edgeloop_v1: true,
        };
        assert_eq!(
            parse_ws_protocols("edgeloop.v1, bearer.abc.def.ghi"),
            expected
        );
        assert_eq!(
            parse_ws_protocols("bearer.abc.def.ghi,edgeloop.v1"),
            expected
        );
        assert_eq!(
            parse_ws_protocols(" chat ,\tbearer.abc.def.ghi , edgeloop.v1 ,"),
            expected
        );
    }

    #[test]
    fn ws_reports_protocol_without_token_and_token_without_protocol() {
        assert_eq!(
            parse_ws_protocols("edgeloop.v1"),
            WsProtocols {
                token: None,
                offers_edgeloop_v1: true
            }
        );
        assert_eq!(
            parse_ws_protocols("bearer.t.o.k"),
            WsProtocols {
                token: Some("t.o.k"),
                offers_edgeloop_v1: false
            }
        );
        assert_eq!(parse_ws_protocols(""), WsProtocols::default());
    }

    #[test]
    fn ws_names_are_case_sensitive_and_exact() {
        let parsed = parse_ws_protocols("Edgeloop.v1, Bearer.abc, edgeloop.v10, bearerabc");
        assert_eq!(parsed, WsProtocols::default());
    }

    #[test]
    fn ws_ignores_empty_token_and_refuses_conflicting_tokens() {
        assert_eq!(parse_ws_protocols("bearer., edgeloop.v1").token, None);
        assert_eq!(
            parse_ws_protocols("bearer.a.b.c, bearer.a.b.c").token,
            Some("a.b.c")
        );
        let conflicting = parse_ws_protocols("bearer.a.b.c, edgeloop.v1, bearer.x.y.z");
        assert_eq!(conflicting.token, None);
        assert!(conflicting.offers_edgeloop_v1);
    }
}
