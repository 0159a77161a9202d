//! The generator: request `index` of a run, from its own seeded RNG, and what it may be
//! answered.

use super::*;

pub(super) fn generate(fixture: &Fixture, index: usize) -> Case {
    let seed = fixture
        .seed
        .wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut rng = fastrand::Rng::with_seed(seed);
    let rng = &mut rng;
    let target = pick_ref(rng, &fixture.targets).clone();
    let mut case = match rng.u8(..100) {
        0..=29 => json_command(rng, &target),
        30..=41 => broken_json(rng, &target),
        42..=49 => msgpack(rng, &target),
        50..=55 => content_type(rng, &target),
        56..=60 => idempotency_key(rng, &target),
        61..=70 => credentials(rng, fixture, &target),
        71..=78 => paths(rng, &target),
        79..=92 => reads(rng, &target),
        93..=97 => socket(rng, &target),
        _ => huge(rng, &target),
    };
    // Browser origins on some requests: CORS lets in none but the configured ones.
    if rng.u8(..10) == 0 && !case.socket {
        let origin: &[u8] = pick(
            rng,
            &[
                b"https://app.example.com".as_slice(),
                b"http://localhost:5173",
                b"http://localhost",
                b"https://app.example.com.evil.example",
                b"https://app.example.com:443",
                b"http://localhost:80x",
                b"http://localhost.evil.example",
                b"http://localhost:",
                b"http://127.0.0.1:5173",
                b"null",
                b"*",
                b"",
                b"\xff\xfe",
                b"file://",
            ],
        );
        case.note(format!("Origin {:?}", String::from_utf8_lossy(origin)));
        case.header("origin", origin);
        case.origin = Some(origin.to_vec());
    }
    case
}

/// The origins the fuzzed Worker allows (its `CORS_ALLOWED_ORIGINS`).
pub(super) const CORS_ALLOWED_ORIGINS: &str = "https://app.example.com, http://localhost:*";

/// Whether `origin` is one of [`CORS_ALLOWED_ORIGINS`]: exactly, or `http://localhost`
/// with any numeric port.
pub(super) fn origin_allowed(origin: &[u8]) -> bool {
    origin == b"https://app.example.com"
        || origin
            .strip_prefix(b"http://localhost")
            .is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix(b":")
                        .is_some_and(|port| !port.is_empty() && port.iter().all(u8::is_ascii_digit))
            })
}

pub(super) fn command_case(category: &'static str, target: &Target) -> Case {
    let mut case = Case::new(category, reqwest::Method::POST, target.path("/commands"));
    case.header("content-type", "application/json");
    case
}

/// Finishes a command: 413 above the body limit, whatever the body is.
pub(super) fn finish_command(mut case: Case, body: Vec<u8>, expect: Vec<u16>) -> Case {
    case.expect = if body.len() > MAX_BODY {
        vec![413]
    } else {
        expect
    };
    case.body = Some(body);
    case
}

pub(super) fn json_command(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("json", target);
    let mut splices = Splices::default();
    let (value, defects) = mutated_command(rng, target, &mut case, &mut splices, true);
    if rng.u8(..4) == 0 {
        case.header("idempotency-key", format!("fz-key-{:016x}", rng.u64(..)));
    }
    let body = splices.render(&value);
    finish_command(case, body, defects.expect())
}

pub(super) fn broken_json(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("broken-json", target);
    let mut splices = Splices::default();
    let (value, _) = mutated_command(rng, target, &mut case, &mut splices, false);
    let text = splices.render(&value);
    let body = match rng.u8(..12) {
        0 => {
            let at = rng.usize(..text.len());
            case.note(format!("truncated at {at} of {}", text.len()));
            text[..at].to_vec()
        }
        1 => {
            let garbage: &[u8] = pick(
                rng,
                &[
                    b"x".as_slice(),
                    b"}",
                    b",",
                    b"]",
                    b"{}",
                    b"null",
                    b"\x00",
                    b"\xff",
                    b"{\"type\":\"AddCard\"}",
                    b"//",
                ],
            );
            case.note(format!("trailing {:?}", String::from_utf8_lossy(garbage)));
            [text.as_slice(), garbage].concat()
        }
        2 => {
            let prefix: &[u8] = pick(
                rng,
                &[
                    b"\xEF\xBB\xBF".as_slice(),
                    b"\xFF\xFE",
                    b")]}',\n",
                    b"x",
                    b"\x00",
                ],
            );
            case.note(format!("prefixed {prefix:?}"));
            [prefix, text.as_slice()].concat()
        }
        3 => {
            // One byte replaced or inserted by one that JSON never allows where it lands.
            let at = rng.usize(..text.len());
            let bad = pick(rng, &[0x00_u8, 0x01, 0x1f, 0xc0, 0xfe, 0xff]);
            let mut body = text.clone();
            if rng.bool() {
                body[at] = bad;
            } else {
                body.insert(at, bad);
            }
            case.note(format!("byte {bad:#04x} at {at}"));
            body
        }
        4 => {
            let depth = pick(rng, &[129, 200, 1_000, 10_000, 100_000]);
            let (open, close) = if rng.bool() {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            case.note(format!("{depth} levels deep"));
            format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
        5 => {
            let depth = pick(rng, &[64, 127, 128, 129, 1_000, 50_000]);
            case.note(format!("data nested {depth} deep"));
            format!(
                r#"{{"type":"AddCard","data":{{"card_id":"d","title":"t","column":"Full","labels":{}"x"{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        }
        6 => {
            let body: &[u8] = pick(
                rng,
                &[
                    b"".as_slice(),
                    b" ",
                    b"\n\t",
                    b"[]",
                    b"\"AddCard\"",
                    b"42",
                    b"null",
                    b"true",
                    b"[{\"type\":\"AddCard\"}]",
                    b"{",
                    b"}",
                    b"{}",
                ],
            );
            case.note(format!("body {:?}", String::from_utf8_lossy(body)));
            body.to_vec()
        }
        7 => {
            // UTF-16 and UTF-32 encodings of the JSON text.
            let utf16: Vec<u8> = String::from_utf8_lossy(&text)
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect();
            case.note("UTF-16LE");
            utf16
        }
        8 => {
            // A raw value that is not JSON, where a value goes.
            let raw = pick_ref(rng, RAW_VALUES);
            let broken: Vec<&Raw> = RAW_VALUES.iter().filter(|r| r.broken).collect();
            let raw = if raw.broken {
                raw
            } else {
                broken[rng.usize(..broken.len())]
            };
            case.note(format!("raw {}", String::from_utf8_lossy(raw.text)));
            let mut body = br#"{"type":"AddCard","data":{"card_id":"#.to_vec();
            body.extend(raw.text);
            body.extend(br#","title":"t","column":"Full"}}"#);
            body
        }
        9 => {
            case.note("single quotes");
            String::from_utf8_lossy(&text)
                .replace('"', "'")
                .into_bytes()
        }
        10 => {
            case.note("a comment inside");
            let mut body = text.clone();
            body.splice(1..1, b"/* hi */".iter().copied());
            body
        }
        _ => {
            case.note("unterminated string");
            let mut body = br#"{"type":"AddCard","data":{"card_id":"c"#.to_vec();
            body.extend(pick(rng, &[b"".as_slice(), b"\\", b"\\u12", b"\\u"]));
            body
        }
    };
    finish_command(case, body, vec![400])
}

pub(super) fn msgpack(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("msgpack", target);
    case.headers.clear();
    let media = pick(
        rng,
        &[
            "application/msgpack",
            "application/x-msgpack",
            "application/vnd.msgpack",
            "application/msgpack; charset=binary",
        ],
    );
    case.header("content-type", media);
    let mut splices = Splices::default();
    let (value, defects) = mutated_command(rng, target, &mut case, &mut splices, false);
    let mut tree = Mp::from_json(&value);
    let (body, expect) = match rng.u8(..10) {
        0..=2 => (tree.bytes(), defects.expect()),
        3 => {
            let bytes = tree.bytes();
            let at = rng.usize(..bytes.len());
            case.note(format!("truncated at {at} of {}", bytes.len()));
            (bytes[..at].to_vec(), vec![400])
        }
        4 => {
            // A string value that is not a string: bytes, an extension, invalid UTF-8.
            let with = match rng.u8(..3) {
                0 => Mp::Bin(b"AddCard".to_vec()),
                1 => Mp::Ext(1, vec![0, 1, 2]),
                _ => Mp::Str(b"\xC0\xAF\xFF".to_vec()),
            };
            case.note(format!("a string replaced by {with:?}"));
            tree.replace_a_string(rng, &with);
            (tree.bytes(), vec![400])
        }
        5 => {
            // Length headers promising far more than there is.
            let body: Vec<u8> = match rng.u8(..5) {
                0 => vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
                1 => vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
                2 => vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'a', 0xc0],
                3 => {
                    let mut b = vec![0x82, 0xa4];
                    b.extend(b"type");
                    b.extend([0xdb, 0x7f, 0xff, 0xff, 0xff]);
                    b.extend(b"AddCard");
                    b
                }
                _ => vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0x00],
            };
            case.note(format!("a huge length header {body:02x?}"));
            (body, vec![400])
        }
        6 => {
            let depth = pick(rng, &[127, 128, 129, 1_000, 100_000]);
            let mut b = vec![0x82, 0xa4];
            b.extend(b"type");
            b.push(0xa7);
            b.extend(b"AddCard");
            b.push(0xa4);
            b.extend(b"data");
            b.extend(std::iter::repeat_n(0x91, depth));
            b.push(0xc0);
            case.note(format!("data nested {depth} deep"));
            (b, vec![400])
        }
        7 => {
            let body: Vec<u8> = match rng.u8(..7) {
                0 => vec![],
                1 => vec![0xc1],
                2 => vec![0xc0],
                3 => vec![0x93, 0x01, 0x02, 0x03],
                4 => vec![0x81, 0x01, 0xa1, b'x'],
                5 => value.to_string().into_bytes(),
                _ => {
                    let mut b = tree.bytes();
                    b[0] = 0xc1;
                    b
                }
            };
            case.note(format!("bytes {:02x?}", &body[..body.len().min(16)]));
            (body, vec![400])
        }
        8 => {
            // Map keys that are not strings.
            let Mp::Map(entries) = &mut tree else {
                unreachable!()
            };
            entries.push((Mp::UInt(1), Mp::Str(b"x".to_vec())));
            case.note("an integer map key");
            (tree.bytes(), vec![400])
        }
        _ => {
            // Trailing bytes after the command, or NaN as the expected version (which must
            // not quietly read as null, "any"): MessagePack with no JSON form is a 400.
            let Mp::Map(entries) = &mut tree else {
                unreachable!()
            };
            if rng.bool() {
                entries.retain(|(k, _)| !matches!(k, Mp::Str(s) if s == b"expected_version"));
                entries.push((Mp::Str(b"expected_version".to_vec()), Mp::F64(f64::NAN)));
                case.note("expected_version NaN");
                (tree.bytes(), vec![400])
            } else {
                let mut b = tree.bytes();
                b.extend([0xc1, 0xff, 0x00]);
                case.note("trailing bytes");
                (b, vec![400])
            }
        }
    };
    finish_command(case, body, expect)
}

pub(super) fn content_type(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("content-type", target);
    case.headers.clear();
    let mut splices = Splices::default();
    let (value, defects) = mutated_command(rng, target, &mut case, &mut splices, true);
    let body = splices.render(&value);
    let unsupported: &[&[u8]] = &[
        b"text/plain",
        b"text/json",
        b"application/xml",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/jsonx",
        b"application/json-seq",
        b"application/ld+json",
        b"application/problem+json",
        b"json",
        b"application",
        b"/",
        b"*/*",
        b"application/*",
        b"application/json/extra",
        b"application/js\xf6n",
        b"\xff\xfe",
        b"text/plain, application/json",
        b"application/octet-stream",
    ];
    let as_json: &[&[u8]] = &[
        b"application/json; charset=utf-8",
        b"Application/JSON",
        b"application/json;;;",
        b"application/json; charset=latin1",
        b"",
        b";",
    ];
    match rng.u8(..10) {
        0..=6 => {
            let media = pick(rng, unsupported);
            case.note(format!("Content-Type {:?}", String::from_utf8_lossy(media)));
            case.header("content-type", media);
            finish_command(case, body, vec![415])
        }
        7 => {
            let media = "x".repeat(rng.usize(100..4000));
            case.note(format!("a {}-byte Content-Type", media.len()));
            case.header("content-type", media);
            finish_command(case, body, vec![415])
        }
        8 => {
            let media = pick(rng, as_json);
            case.note(format!("JSON as {:?}", String::from_utf8_lossy(media)));
            case.header("content-type", media);
            finish_command(case, body, defects.expect())
        }
        _ => {
            case.note("no Content-Type (read as JSON)");
            finish_command(case, body, defects.expect())
        }
    }
}

pub(super) fn idempotency_key(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("idempotency-key", target);
    let mut splices = Splices::default();
    let (value, defects) = mutated_command(rng, target, &mut case, &mut splices, true);
    let body = splices.render(&value);
    let unique = format!("{:016x}", rng.u64(..));
    match rng.u8(..10) {
        0..=6 => {
            let key: Vec<u8> = match rng.u8(..7) {
                0 => Vec::new(),
                1 => "k".repeat(256).into_bytes(),
                2 => "k".repeat(rng.usize(257..4000)).into_bytes(),
                3 => format!("tab\t{unique}").into_bytes(),
                4 => [b"caf\xe9-".as_slice(), unique.as_bytes()].concat(),
                5 => [b"\x80\xff".as_slice(), unique.as_bytes()].concat(),
                _ => [b"\xe2\x9c\x93".as_slice(), unique.as_bytes()].concat(),
            };
            case.note(format!(
                "Idempotency-Key {:?}",
                String::from_utf8_lossy(&key[..key.len().min(40)])
            ));
            case.header("idempotency-key", key);
            finish_command(case, body, vec![400])
        }
        _ => {
            // Unusual but valid keys: the body decides.
            let key = match rng.u8(..3) {
                0 => format!("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{{|}}~{unique}"),
                1 => format!("{unique}{}", "k".repeat(255 - unique.len())),
                _ => format!("with spaces {unique}"),
            };
            case.note(format!("Idempotency-Key {key:?}"));
            case.header("idempotency-key", key);
            finish_command(case, body, defects.expect())
        }
    }
}

/// A command that would succeed on `target` (to show a refusal is the credentials').
pub(super) fn valid_command(rng: &mut fastrand::Rng, target: &Target) -> Value {
    match target.class {
        Class::BoardVictim => cmd(
            "AddCard",
            json!({"card_id": fresh_name(rng, "fz-auth"), "title": "let me in"}),
        ),
        Class::BoardFresh => cmd("CreateBoard", json!({"title": "let me in"})),
        Class::FeedbackOpen => cmd("CloseFeedback", json!({"reason": "let me in"})),
        // Nothing succeeds on closed feedback: a refused command proves less, but still
        // must be refused for the credentials first.
        Class::FeedbackClosed => cmd("CloseFeedback", json!({"reason": "again"})),
        Class::FeedbackFresh => cmd(
            "SubmitFeedback",
            json!({"text": "let me in", "source": "fuzz"}),
        ),
    }
}

pub(super) fn credentials(rng: &mut fastrand::Rng, fixture: &Fixture, target: &Target) -> Case {
    let route = rng.u8(..5);
    let (method, path) = match route {
        0 | 1 => (reqwest::Method::POST, target.path("/commands")),
        2 => (reqwest::Method::GET, target.path("")),
        3 => (reqwest::Method::GET, target.path("/events?after=0")),
        _ => (reqwest::Method::GET, target.path("/ws")),
    };
    let mut case = Case::new("credentials", method, path);
    case.socket = route == 4;
    if route <= 1 {
        case.header("content-type", "application/json");
        case.body = Some(valid_command(rng, target).to_string().into_bytes());
    }
    let (status, values, what) = match rng.u8(..10) {
        0 => (401, None, "no Authorization".to_owned()),
        1 => {
            let token = if route <= 1 {
                &fixture.no_commands
            } else {
                &fixture.no_read
            };
            (
                403,
                Some(vec![format!("Bearer {token}").into_bytes()]),
                "a token without the scope".to_owned(),
            )
        }
        _ => {
            let (values, what) = bad_authorization(rng, fixture);
            (401, Some(values), what)
        }
    };
    case.note(&what);
    case.auth = match values {
        None => Auth::Omit,
        Some(values) => Auth::Raw(values),
    };
    case.expect = vec![status];
    if case.socket {
        // Sockets may carry the token in the subprotocol or the query instead.
        if let Auth::Raw(values) = &case.auth
            && values.len() == 1
            && let Some(token) = values[0].strip_prefix(b"Bearer ")
            && token
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b))
            && rng.bool()
        {
            let token = String::from_utf8(token.to_vec()).expect("ASCII");
            if rng.bool() {
                case.note("as a subprotocol");
                case.header(
                    "sec-websocket-protocol",
                    format!("edgeloop.v1, bearer.{token}"),
                );
            } else {
                case.note("as access_token");
                case.path = format!("{}?access_token={token}", case.path);
            }
            case.auth = Auth::Omit;
        }
        // tungstenite only sends visible-ASCII header values.
        if let Auth::Raw(values) = &case.auth
            && values
                .iter()
                .any(|v| !v.iter().all(|b| (0x20..0x7f).contains(b)))
        {
            case.socket = false;
            case.note("(sent as a plain GET)");
            case.expect = vec![status];
        }
    }
    case
}

/// Wrong methods, paths that are no route, unknown types, bad ids (with a command that
/// would succeed on a good one), HEAD, preflights, and dot segments.
pub(super) fn paths(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let t = target.aggregate_type;
    let id = &target.id;
    let body = valid_command(rng, target);
    let (method, path, expect, what): (reqwest::Method, String, Vec<u16>, String) =
        match rng.u8(..7) {
            // A known route with the wrong method.
            0 => {
                let (method, path) = match rng.u8(..6) {
                    0 => (reqwest::Method::GET, target.path("/commands")),
                    1 => (reqwest::Method::PUT, target.path("/commands")),
                    2 => (reqwest::Method::DELETE, target.path("")),
                    3 => (reqwest::Method::PATCH, target.path("/events")),
                    4 => (reqwest::Method::POST, target.path("")),
                    _ => (reqwest::Method::POST, target.path("/events")),
                };
                (method, path, vec![405], "wrong method".to_owned())
            }
            // Paths that are no route.
            1 => {
                let path = match rng.u8(..10) {
                    0 => format!("/v1/aggregates/{t}/{id}/commands/x"),
                    1 => format!("/v1/aggregates/{t}/{id}/"),
                    2 => format!("/v1/aggregates/{t}"),
                    3 => "/v1/aggregates".to_owned(),
                    4 => "/v1".to_owned(),
                    5 => format!("/v2/aggregates/{t}/{id}/commands"),
                    6 => format!("/v1/aggregate/{t}/{id}/commands"),
                    7 => format!("/V1/aggregates/{t}/{id}/commands"),
                    8 => format!("/v1//aggregates/{t}/{id}/commands"),
                    _ => format!("/v1/aggregates/{t}/{id}/Commands"),
                };
                (
                    reqwest::Method::POST,
                    path,
                    vec![404],
                    "no such route".to_owned(),
                )
            }
            // Unknown aggregate types.
            2 => {
                let kind = pick(
                    rng,
                    &[
                        "Board",
                        "boards",
                        "feedbacks",
                        "",
                        "%62oard",
                        "board%00",
                        "b%C3%B6ard",
                        "board.json",
                        "*",
                    ],
                );
                (
                    reqwest::Method::POST,
                    format!("/v1/aggregates/{kind}/{id}/commands"),
                    vec![404],
                    format!("aggregate type {kind:?}"),
                )
            }
            // Ids no aggregate can have, with a command that would succeed on a good one.
            3 | 4 => {
                let bad = match rng.u8(..12) {
                    0 => String::new(),
                    1 => "a".repeat(257),
                    2 => "a".repeat(rng.usize(300..2000)),
                    3 => format!("{id}%20"),
                    4 => format!("{id}%2Fx"),
                    5 => format!("{id}%3Ax"),
                    6 => format!("{id}:x"),
                    7 => format!("{id}%00"),
                    8 => format!("{id}%FF"),
                    9 => format!("{id}%C0%AF"),
                    10 => format!("{id}%F0%9F%A6%80"),
                    _ => format!("{id}%25"),
                };
                let route = pick(rng, &["/commands", "", "/events", "/ws"]);
                let method = if route == "/commands" {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::GET
                };
                // The socket route without an upgrade may answer 426 before looking at the id.
                let expect = if route == "/ws" {
                    vec![400, 426]
                } else {
                    vec![400]
                };
                (
                    method,
                    format!("/v1/aggregates/{t}/{bad}{route}"),
                    expect,
                    format!("a bad id ({} bytes)", bad.len()),
                )
            }
            // HEAD is GET without a body; OPTIONS is a CORS preflight, open to anyone.
            5 if rng.bool() => {
                let (path, expect) = match rng.u8(..4) {
                    0 => (target.path(""), vec![200, 404]),
                    1 => (target.path("/events"), vec![200, 404]),
                    2 => (target.path("/ws"), vec![405, 426]),
                    _ => (target.path("/commands"), vec![405]),
                };
                (reqwest::Method::HEAD, path, expect, "HEAD".to_owned())
            }
            5 => (
                reqwest::Method::OPTIONS,
                target.path(pick(rng, &["", "/commands", "/events", "/ws"])),
                vec![204],
                "a preflight".to_owned(),
            ),
            // Dot segments and encodings that resolve to a real route: reads only.
            _ => {
                let path = match rng.u8(..4) {
                    0 => format!("/v1/aggregates/{t}/x/../{id}"),
                    1 => format!("/v1/aggregates/{t}/x/%2e%2e/{id}/events"),
                    2 => format!("/v1/aggregates/{t}/./{id}/events"),
                    _ => format!("/v1/aggregates/{t}/{id}/events/.."),
                };
                (
                    reqwest::Method::GET,
                    path,
                    vec![200, 400, 404],
                    "dot segments".to_owned(),
                )
            }
        };
    let mut case = Case::new("paths", method.clone(), path);
    case.note(what);
    if method == reqwest::Method::POST
        || method == reqwest::Method::PUT
        || method == reqwest::Method::PATCH
    {
        case.header("content-type", "application/json");
        case.body = Some(body.to_string().into_bytes());
    }
    case.expect = expect;
    case
}

pub(super) fn query_value(rng: &mut fastrand::Rng, target: &Target, name: &str) -> String {
    let beyond = target.version + 1 + rng.u64(..100);
    if ["after", "before", "limit", "at_version"].contains(&name) && rng.bool() {
        // The edges of the numbers these take: 0 and 1, the version, the page limit,
        // 32 bits (the Worker's usize), 2^53 (JavaScript's exact integers), 64 bits.
        let edges = [
            0,
            1,
            target.version,
            target.version + 1,
            10_000,
            10_001,
            u64::from(u32::MAX),
            1 << 32,
            (1 << 32) + 5,
            (1 << 53) - 1,
            1 << 53,
            u64::MAX,
        ];
        return pick(rng, &edges).to_string();
    }
    (pick(
        rng,
        &[
            "-1",
            "1e400",
            "1e3",
            "18446744073709551616",
            "18446744073709551615",
            "9007199254740993",
            "9007199254740992",
            "9007199254740991",
            "0",
            "",
            "abc",
            "1.0",
            "+1",
            "%201",
            "0x1",
            "%D9%A1",
            "%00",
            "%FF",
            "1%00",
            "%",
            "%zz",
            "1,2",
            "forward",
            "backward",
            "BACKWARD",
            "sideways",
            "10001",
            "10000",
            "2020-01-01T00:00:00Z",
            "2020-13-45T99:00:00Z",
            "9999999999-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "yesterday",
            "%F0%9F%A6%80",
            "4294967296",
            "4294967301",
            "4294967295",
            "0000-01-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "9999-12-31T23:59:59.999999999Z",
            "2020-02-30T00:00:00Z",
            "1970-01-01T00:00:00%2B23:59",
            "2999-01-01T00:00:00-23:59",
            "BEYOND",
        ],
    ))
    .replace("BEYOND", &beyond.to_string())
}

pub(super) fn reads(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let events = rng.bool();
    let names: &[&str] = if events {
        &[
            "after",
            "before",
            "limit",
            "direction",
            "at_version",
            "x",
            "After",
            "limit[]",
            "",
            "%61fter",
        ]
    } else {
        &[
            "at_version",
            "as_of",
            "after",
            "x",
            "At_Version",
            "",
            "as_of%00",
        ]
    };
    let mut query = String::new();
    let what;
    match rng.u8(..10) {
        0 => {
            query = (pick(
                rng,
                &[
                    "?", "?&", "?=", "?&&&=&", "?%", "?%zz", "?a=%FF", "?=1", "?;", "?&=&=", "?++",
                ],
            ))
            .to_owned();
            what = format!("query {query:?}");
        }
        1 => {
            let name = pick(rng, names);
            let value = "9".repeat(rng.usize(20..1500));
            query = format!("?{name}={value}");
            what = format!("a {}-digit {name}", value.len());
        }
        _ => {
            let n = rng.usize(1..4);
            let mut parts = Vec::new();
            for _ in 0..n {
                let name = pick(rng, names);
                let value = query_value(rng, target, name);
                parts.push(format!("{name}={value}"));
            }
            if rng.u8(..5) == 0 {
                parts.push(parts[0].clone());
            }
            query.push('?');
            query.push_str(&parts.join("&"));
            what = format!("query {query:?}");
        }
    }
    let path = if events {
        target.path(&format!("/events{query}"))
    } else {
        target.path(&query)
    };
    let mut case = Case::new("reads", reqwest::Method::GET, path.clone());
    case.note(what);
    case.expect = read_oracle(events, &path, target.version);
    if query.is_empty() || rng.u8(..8) == 0 {
        // Identity headers only the Worker may set: ignored, the token's tenant reads.
        case.header("x-edgeloop-tenant", OTHER_TENANT);
        case.header("x-edgeloop-actor", "mallory");
        case.note("forged x-edgeloop-tenant");
        if !events && query.is_empty() && target.version > 0 {
            case.expect_version = Some(target.version);
        }
    }
    if events && rng.u8(..3) == 0 {
        let accept: &[u8] = pick(
            rng,
            &[
                b"application/msgpack".as_slice(),
                b"application/x-ndjson",
                b"application/msgpack;q=0",
                b"*/*;q=0.5, application/x-ndjson;q=0.9",
                b"text/html",
                b"application/json;q=abc",
                b";;;,,,",
                b"\xff\xfe",
                b"application/msgpack;q=1e400",
            ],
        );
        case.note(format!("Accept {:?}", String::from_utf8_lossy(accept)));
        case.header("accept", accept);
    }
    case
}

/// What a read with this query must answer, by the documented rules: unknown or repeated
/// parameters, and values that are not what they should be, are a 400; `limit` is 1 to
/// 10,000; `before` goes with `direction=backward` and `after` with forward; a read of an
/// aggregate with no events, or of a version it does not have, is a 404. The query is
/// decoded the way the Worker decodes it (the `url` crate, through reqwest).
pub(super) fn read_oracle(events: bool, path: &str, version: u64) -> Vec<u16> {
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
    let url = reqwest::Url::parse(&format!("http://worker{path}")).expect("a URL");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let allowed: &[&str] = if events {
        &["after", "before", "limit", "direction"]
    } else {
        &["at_version", "as_of"]
    };
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&name.as_str()) || pairs[..i].iter().any(|(n, _)| n == name) {
            return vec![400];
        }
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str| match get(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_SAFE_INTEGER)
            .map(Some)
            .ok_or(()),
    };
    if events {
        let backward = match get("direction") {
            None | Some("forward") => false,
            Some("backward") => true,
            Some(_) => return vec![400],
        };
        let (Ok(after), Ok(before), Ok(limit)) =
            (number("after"), number("before"), number("limit"))
        else {
            return vec![400];
        };
        if (backward && after.is_some()) || (!backward && before.is_some()) {
            return vec![400];
        }
        if limit.is_some_and(|l| l == 0 || l > 10_000) {
            return vec![400];
        }
        return vec![if version == 0 { 404 } else { 200 }];
    }
    let Ok(at_version) = number("at_version") else {
        return vec![400];
    };
    let as_of = get("as_of");
    if as_of.is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_err()) {
        return vec![400];
    }
    if at_version.is_some() && as_of.is_some() {
        return vec![400];
    }
    if version == 0 {
        return vec![404];
    }
    match (at_version, as_of) {
        (Some(v), _) if v == 0 || v > version => vec![404],
        // Before the first event there is no state.
        (None, Some(_)) => vec![200, 404],
        _ => vec![200],
    }
}

pub(super) fn socket(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let beyond = target.version + 1 + rng.u64(..50);
    let (query, protocol, expect, what): (String, Option<&str>, Vec<u16>, &str) = match rng.u8(..10)
    {
        0..=5 => {
            let value = match rng.u8(..8) {
                0 => "-1".to_owned(),
                1 => "abc".to_owned(),
                2 => "1e3".to_owned(),
                3 => "9007199254740992".to_owned(),
                4 => "18446744073709551616".to_owned(),
                5 => String::new(),
                6 => "%00".to_owned(),
                _ => beyond.to_string(),
            };
            (format!("?after={value}"), None, vec![400], "a bad after")
        }
        6 => (
            "?after=0&after=0".to_owned(),
            None,
            vec![400],
            "after twice",
        ),
        7 => (
            format!("?x=1&after={}", target.version),
            None,
            vec![400],
            "an unknown parameter",
        ),
        8 => (
            String::new(),
            Some("bearer.x"),
            vec![400],
            "bearer.… without edgeloop.v1 (no Authorization)",
        ),
        _ => {
            // The socket route without an upgrade.
            let mut case = Case::new("socket", reqwest::Method::GET, target.path("/ws"));
            case.note("no Upgrade header");
            case.expect = vec![426];
            return case;
        }
    };
    let mut case = Case::new(
        "socket",
        reqwest::Method::GET,
        target.path(&format!("/ws{query}")),
    );
    case.socket = true;
    case.note(what);
    if let Some(protocol) = protocol {
        case.header("sec-websocket-protocol", protocol);
        case.auth = Auth::Omit;
    }
    case.expect = expect;
    case
}

pub(super) fn huge(rng: &mut fastrand::Rng, target: &Target) -> Case {
    let mut case = command_case("huge", target);
    let (command_type, fields) = refusable(rng, target.class);
    let mut data = serde_json::Map::new();
    for f in &fields {
        data.insert(f.name.to_owned(), f.value.clone());
    }
    let mut body = json!({"type": command_type, "data": data});
    match rng.u8(..5) {
        0 => {
            let mut text = body.to_string();
            let len = MAX_BODY + rng.usize(1..65_536);
            text.push_str(&" ".repeat(len - text.len()));
            case.note(format!("{command_type} padded to {len} bytes"));
            finish_command(case, text.into_bytes(), vec![413])
        }
        1 => {
            body["correlation_id"] = json!("x".repeat(MAX_BODY));
            case.note(format!("{command_type} with a 1 MiB correlation_id"));
            finish_command(case, body.to_string().into_bytes(), vec![413])
        }
        2 => {
            // Just under the limit: a huge string where the rules look.
            let free = fields
                .iter()
                .find(|f| f.free && matches!(f.kind, Kind::Str))
                .map(|f| f.name);
            let Some(name) = free else {
                // Metadata ids are at most MAX_METADATA_CHARS: a 400 before the rules.
                body["command_id"] = json!("c".repeat(MAX_BODY - 400));
                case.note(format!("{command_type} with a huge command_id"));
                return finish_command(case, body.to_string().into_bytes(), vec![400]);
            };
            body["data"][name] = json!("é".repeat((MAX_BODY - 400) / 2));
            case.note(format!("{command_type} with a huge {name}"));
            finish_command(case, body.to_string().into_bytes(), vec![422])
        }
        3 => {
            let n = 60_000;
            let labels: Vec<Value> = (0..n).map(|i| json!(format!("{i}"))).collect();
            body["data"]["labels"] = Value::Array(labels);
            case.note(format!("{command_type} with {n} labels"));
            let has_labels = fields.iter().any(|f| f.name == "labels");
            finish_command(
                case,
                body.to_string().into_bytes(),
                if has_labels { vec![422] } else { vec![400] },
            )
        }
        _ => {
            case.headers.clear();
            case.header("content-type", "application/msgpack");
            let mut tree = Mp::from_json(&body);
            if let Mp::Map(entries) = &mut tree {
                entries.push((Mp::Str(b"padding".to_vec()), Mp::Bin(vec![0; MAX_BODY])));
            }
            case.note(format!("{command_type} as MessagePack over 1 MiB"));
            finish_command(case, tree.bytes(), vec![413])
        }
    }
}
