//! `api/openapi.json` against the route table: every documented operation is a route the
//! matcher knows, with the scope it declares, and every route is documented (no
//! undocumented route). The enums and bounds the description states are checked against
//! the constants the code uses. The contract test (`tests/tests/openapi.rs`) checks the
//! rest against the running Worker.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::routes::every_route::{self, ROUTES};
use crate::routes::match_route;

/// The same file the Worker serves at `GET /v1/openapi.json`.
const OPENAPI: &str = include_str!("../openapi.json");

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    serde_json::from_str(OPENAPI).expect("api/openapi.json is JSON")
}

/// Every documented operation: (METHOD, path template, operation object).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} resolves")),
            )
        }
        None => value,
    }
}

fn parameter<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["parameters"][name]
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

#[test]
fn the_description_is_openapi_3_1() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], "1");
}

#[test]
fn every_documented_operation_is_a_route_and_every_route_is_documented() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = operations(&spec)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let known: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let undocumented: Vec<_> = known.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes the matcher knows that api/openapi.json does not document: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "operations api/openapi.json documents that are not in the route table: {unknown:?}"
    );
    // And each documented operation is matched by the matcher as that route.
    for (method, path) in &documented {
        let concrete = every_route::sample(path);
        let route = match_route(&every_route::method(method), &concrete)
            .unwrap_or_else(|e| panic!("{method} {path} ({concrete}) is not matched: {e:?}"));
        assert_eq!(
            every_route::template(&route),
            (method.as_str(), path.as_str()),
            "{method} {path} is matched as another route"
        );
    }
}

#[test]
fn each_operation_declares_its_route_scope_and_kind() {
    let spec = spec();
    for (method, path, operation) in operations(&spec) {
        let label = format!("{method} {path}");
        let route = match_route(&every_route::method(&method), &every_route::sample(&path))
            .unwrap_or_else(|e| panic!("{label}: {e:?}"));
        let scope = route.scope().map(|s| s.to_string());
        let declared = operation["x-required-scope"].as_str().map(str::to_owned);
        assert_eq!(declared, scope, "{label}: x-required-scope");
        let security = operation["security"]
            .as_array()
            .expect("security on every operation");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.contains_key("500"), "{label}: no 500");
        match &scope {
            None => assert!(security.is_empty(), "{label}: an open route with security"),
            Some(scope) => {
                assert_eq!(
                    security[0]["bearerAuth"],
                    serde_json::json!([scope]),
                    "{label}: the bearer requirement names the scope"
                );
                for requirement in security {
                    for (_, scopes) in requirement.as_object().expect("a requirement") {
                        assert_eq!(scopes, &serde_json::json!([scope]), "{label}");
                    }
                }
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{label}: no {status}");
                }
            }
        }
        let socket = operation["x-websocket"] == true;
        assert_eq!(socket, route.is_socket(), "{label}: x-websocket");
        if socket {
            for status in ["101", "426", "429"] {
                assert!(responses.contains_key(status), "{label}: no {status}");
            }
            assert_eq!(
                security.len(),
                3,
                "{label}: header, subprotocol and query tokens"
            );
        } else {
            assert!(
                !responses.contains_key("426"),
                "{label}: 426 on a plain route"
            );
        }
        // Path parameters: exactly the template's.
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&spec, p))
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("a name").to_owned())
            .collect();
        assert_eq!(declared, in_template, "{label}: path parameters");
        // Every error response is the documented error body.
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let response = resolve(&spec, response);
                let body = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    body["required"],
                    serde_json::json!(["error"]),
                    "{label} {status}: an error body"
                );
            }
        }
    }
}

#[test]
fn the_enums_are_the_ones_the_code_knows() {
    let spec = spec();
    let enumerated = |value: &Value| -> Vec<String> {
        value["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect()
    };
    assert_eq!(
        enumerated(&parameter(&spec, "AggregateType")["schema"]),
        domain::registry::AGGREGATE_TYPES,
        "aggregate types"
    );
    let projections: Vec<&str> = projections::registry().iter().map(|p| p.name()).collect();
    assert_eq!(enumerated(schema(&spec, "ProjectionName")), projections);
    let scopes: Vec<String> = [
        auth::Scope::Commands,
        auth::Scope::Read,
        auth::Scope::Replay,
        auth::Scope::Consume,
        auth::Scope::Admin,
        auth::Scope::Ingest,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let forbidden = &spec["components"]["responses"]["Forbidden"]["content"]["application/json"]["schema"]
        ["properties"]["error"]["properties"]["required_scope"];
    assert_eq!(enumerated(forbidden), scopes);
    assert_eq!(
        enumerated(schema(&spec, "KnowledgeKind")),
        projections::knowledge::KINDS,
        "knowledge kinds"
    );
    assert_eq!(
        enumerated(&parameter(&spec, "IntegrationName")["schema"]),
        durable::ingestion::INTEGRATIONS,
        "integrations"
    );
    // `kinds=` takes exactly the kinds (a comma-separated list of them).
    let kinds = format!("(?:{})", projections::knowledge::KINDS.join("|"));
    let pattern = parameter(&spec, "SearchKinds")["schema"]["pattern"]
        .as_str()
        .expect("a pattern");
    assert_eq!(pattern.matches(&kinds).count(), 2, "{pattern}");
    let integrations = schema(&spec, "Integrations")["required"].clone();
    assert_eq!(
        integrations,
        serde_json::json!(durable::ingestion::INTEGRATIONS),
        "GET /v1/integrations lists every integration"
    );
}

/// The variants serde knows for an adjacently tagged command enum, read from its error for
/// an unknown variant ("unknown variant `x`, expected one of `A`, `B`, …").
fn variants<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
    let error = serde_json::from_value::<T>(serde_json::json!({"type": "__none__", "data": {}}))
        .err()
        .expect("an unknown variant is refused")
        .to_string();
    let list = error.split("expected one of").nth(1).expect(&error);
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_documented_commands_are_the_domains() {
    use domain::board::BoardCommand;
    use domain::feedback::FeedbackCommand;
    let spec = spec();
    let documented: BTreeSet<String> = schema(&spec, "CommandRequest")["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|r| {
            r["$ref"]
                .as_str()
                .expect("a $ref")
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let board = variants::<BoardCommand>();
    let feedback = variants::<FeedbackCommand>();
    let known: BTreeSet<String> = board.union(&feedback).cloned().collect();
    assert_eq!(documented, known, "the board's and the feedback's commands");
    // Each command with just its required fields (typed as documented) decodes.
    for name in &documented {
        let data = schema(&spec, &format!("{name}Data"));
        let mut fields = serde_json::Map::new();
        for field in data["required"].as_array().expect("required") {
            let field = field.as_str().expect("a name");
            let sample = match &data["properties"][field]["type"] {
                kind if kind == "array" => serde_json::json!([]),
                kind if kind == "integer" => serde_json::json!(1),
                kind if kind.is_array() => Value::Null, // `SetWipLimit.limit`: a number or null
                _ => serde_json::json!("x"),
            };
            fields.insert(field.to_owned(), sample);
        }
        let command = serde_json::json!({ "type": name, "data": fields });
        let decoded = if board.contains(name) {
            serde_json::from_value::<BoardCommand>(command.clone()).map(drop)
        } else {
            serde_json::from_value::<FeedbackCommand>(command.clone()).map(drop)
        };
        decoded.unwrap_or_else(|e| panic!("{command}: {e}"));
        // Without any one required field it does not.
        for field in data["required"].as_array().expect("required") {
            let mut partial = command.clone();
            partial["data"]
                .as_object_mut()
                .unwrap()
                .remove(field.as_str().unwrap());
            let refused = if board.contains(name) {
                serde_json::from_value::<BoardCommand>(partial).is_err()
            } else {
                serde_json::from_value::<FeedbackCommand>(partial).is_err()
            };
            assert!(
                refused,
                "{name}.{field} is documented as required but is optional"
            );
        }
    }
}

#[test]
fn the_bounds_are_the_ones_the_code_uses() {
    let spec = spec();
    let param = |name: &str, key: &str| parameter(&spec, name)["schema"][key].clone();
    assert_eq!(param("Limit", "maximum"), durable::params::MAX_LIMIT);
    assert_eq!(param("Limit", "default"), durable::params::DEFAULT_LIMIT);
    assert_eq!(param("After", "maximum"), durable::params::MAX_SAFE_INTEGER);
    assert_eq!(
        param("AggregateId", "maxLength"),
        durable::names::MAX_ID_BYTES
    );
    assert_eq!(
        param("AggregateTypeFilter", "maxLength"),
        stream::filter::MAX_NAME_CHARS
    );
    assert_eq!(
        param("CorrelationFilter", "maxLength"),
        stream::filter::MAX_CORRELATION_CHARS
    );
    assert!(
        param("TypesFilter", "pattern")
            .as_str()
            .unwrap()
            .contains(&format!("{{0,{}}}", stream::filter::MAX_EVENT_TYPES - 1))
    );
    let property = |schema_name: &str, field: &str, key: &str| {
        schema(&spec, schema_name)["properties"][field][key].clone()
    };
    let metadata = domain::command_service::MAX_METADATA_CHARS;
    for field in ["command_id", "correlation_id", "causation_id"] {
        assert_eq!(property("CreateBoard", field, "maxLength"), metadata);
        assert_eq!(property("BatchRequest", field, "maxLength"), metadata);
    }
    assert_eq!(
        property("BatchRequest", "commands", "maxItems"),
        domain::command_service::MAX_BATCH_COMMANDS
    );
    assert_eq!(
        property("PollRequest", "wait_ms", "maximum"),
        durable::consumer_group::MAX_WAIT_MS
    );
    assert_eq!(
        property("NackRequest", "reason", "maxLength"),
        stream::consumer::MAX_REASON_CHARS
    );
    use stream::consumer::config::{MAX_ATTEMPTS, MAX_BATCH, MAX_LEASE_MS};
    let settings = "GroupSettingsRequest";
    assert_eq!(property(settings, "lease_ms", "maximum"), MAX_LEASE_MS);
    assert_eq!(property(settings, "max_attempts", "maximum"), MAX_ATTEMPTS);
    assert_eq!(property(settings, "max_batch", "maximum"), MAX_BATCH);

    // Ingestion. Byte bounds are stated as `maxLength` (characters): never stricter.
    use ingest::telemetry as t;
    assert_eq!(
        property("TelemetryBatch", "errors", "maxItems"),
        t::MAX_ERRORS
    );
    assert_eq!(
        property("TelemetryBatch", "counters", "maxItems"),
        t::MAX_COUNTERS
    );
    for (field, max) in [
        ("type", t::MAX_TYPE_BYTES),
        ("message", t::MAX_MESSAGE_BYTES),
        ("stack", t::MAX_STACK_BYTES),
        ("url", t::MAX_URL_BYTES),
        ("release", t::MAX_RELEASE_BYTES),
        ("user_agent", t::MAX_USER_AGENT_BYTES),
    ] {
        assert_eq!(
            property("TelemetryError", field, "maxLength"),
            max,
            "{field}"
        );
    }
    assert_eq!(
        property("TelemetryCounter", "name", "maxLength"),
        t::MAX_COUNTER_NAME_BYTES
    );
    let tags = &schema(&spec, "TelemetryCounter")["properties"]["tags"];
    assert_eq!(tags["maxProperties"], t::MAX_TAGS);
    assert_eq!(tags["propertyNames"]["maxLength"], t::MAX_TAG_KEY_BYTES);
    assert_eq!(
        tags["additionalProperties"]["maxLength"],
        t::MAX_TAG_VALUE_BYTES
    );
    assert_eq!(
        property("TelemetryAccepted", "accepted", "properties")["errors"]["maximum"],
        t::MAX_ERRORS
    );
    assert_eq!(
        property("IntegrationSecret", "secret", "maxLength"),
        durable::ingestion::MAX_SECRET_BYTES
    );
    let fingerprint = format!(
        "^[0-9a-f]{{{}}}$",
        ingest::fingerprint::FINGERPRINT_HEX_CHARS
    );
    assert_eq!(
        property("TelemetryAccepted", "groups", "items")["pattern"],
        fingerprint.as_str()
    );

    // The knowledge base.
    let config = durable::Config::default();
    assert_eq!(
        param("SearchLimit", "maximum"),
        config.knowledge_max_results
    );
    assert_eq!(
        property("KnowledgeSearch", "results", "maxItems"),
        config.knowledge_max_results
    );
    use projections::knowledge::{MAX_TEXT_BYTES, MAX_TITLE_CHARS};
    assert_eq!(
        property("KnowledgeDocument", "title", "maxLength"),
        MAX_TITLE_CHARS
    );
    assert_eq!(
        property("KnowledgeDocument", "text", "maxLength"),
        MAX_TEXT_BYTES
    );
    // Document ids: up to three aggregate ids (`card:{board}:{card}`).
    assert_eq!(
        param("DocId", "maxLength"),
        3 * durable::names::MAX_ID_BYTES
    );
    assert!(
        param("DocId", "pattern")
            .as_str()
            .unwrap()
            .contains(&format!("{{0,{}}}", 3 * durable::names::MAX_ID_BYTES - 1))
    );
}
