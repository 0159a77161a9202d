//! The route table: a pure matcher from method and path to a [`Route`] and the scope it
//! needs. It reads nothing but those two (no `Request`), so every route is unit-tested
//! natively; it is the only place that reads a public path.

use durable::ApiError;
use worker::Method;

/// A matched route. Path segments are taken as they are (aggregate types and ids are
/// validated by their handler, after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Health,
    /// `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API (open, like `/healthz`:
    /// it describes, it serves no data).
    OpenApi,
    /// `/v1/aggregates/{type}/{id}[/…]`
    Aggregate {
        aggregate_type: String,
        aggregate_id: String,
        op: AggregateRoute,
    },
    /// `/v1/stream…`: the global stream of the caller's tenant.
    Stream(StreamRoute),
    /// `/v1/projections…`: read models.
    Projection(ProjectionRoute),
    /// `/v1/consumers…`: consumer groups for agent loops.
    Consumers(ConsumerRoute),
    /// `GET /v1/trace/{correlation_id}`: a causal chain across aggregates.
    Trace { correlation_id: String },
    /// `POST /v1/stream/partitions/{n}/{pause|resume|archive}`: operating a partition.
    PartitionAdmin {
        partition: String,
        action: PartitionAction,
    },
    /// `/v1/ingest/…`: production telemetry and development events.
    Ingest(IngestRoute),
    /// `GET /v1/integrations`: which integrations have a secret (never the secret).
    Integrations,
    /// `PUT|DELETE /v1/integrations/{name}`: set or delete an integration's secret.
    Integration { name: String, delete: bool },
    /// `GET /v1/knowledge/search`: ranked documents of the knowledge base.
    KnowledgeSearch,
}

/// What an ingestion route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestRoute {
    /// `POST /v1/ingest/telemetry`: a batch of error reports and counters (scope `ingest`;
    /// the token may travel as `?access_token=`, for `navigator.sendBeacon`).
    Telemetry,
    /// `GET /v1/ingest/telemetry`: totals, pending groups, counter windows (scope `read`).
    TelemetryStatus,
    /// `POST /v1/ingest/github?tenant=…`: a GitHub webhook delivery, authenticated by its
    /// `X-Hub-Signature-256` (no bearer token).
    Github,
}

/// What a stream route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRoute {
    /// `GET /v1/stream`: a page of one partition.
    Read,
    /// `GET /v1/stream/ws`: a partition's live feed.
    Socket,
    /// `GET /v1/stream/partitions`: every partition's head and retention.
    Partitions,
}

/// What a projection route does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionRoute {
    /// `GET /v1/projections`: every projection's version, status, checkpoints and lag.
    Index,
    /// `GET /v1/projections/{name}`: a page of documents.
    List { name: String },
    /// `GET /v1/projections/{name}/{doc_id}`: one document.
    Get { name: String, doc_id: String },
    /// `GET /v1/projections/{name}/{doc_id}/ws`: one document, live.
    Socket { name: String, doc_id: String },
    /// `POST /v1/projections/{name}/rebuild`: build the next version beside the live one.
    Rebuild { name: String },
}

/// What a consumer-group route does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRoute {
    /// `GET /v1/consumers`
    List,
    /// `PUT /v1/consumers/{group}`
    Create { group: String },
    /// `GET /v1/consumers/{group}`
    Status { group: String },
    /// `DELETE /v1/consumers/{group}`
    Delete { group: String },
    /// `POST /v1/consumers/{group}/{poll|ack|nack|renew|release}`
    Action {
        group: String,
        action: ConsumerAction,
    },
    /// `GET /v1/consumers/{group}/parked`
    Parked { group: String },
    /// `POST /v1/consumers/{group}/parked/replay`
    Replay { group: String },
}

/// What a consumer does with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerAction {
    Poll,
    Ack,
    Nack,
    Renew,
    Release,
}

/// An operation on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionAction {
    Pause,
    Resume,
    Archive,
}

/// What an aggregate route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateRoute {
    /// `POST …/commands`
    Command,
    /// `POST …/batch`: several commands, in order, all or none.
    Batch,
    /// `GET …` (state, time travel)
    State,
    /// `GET …/events`
    Events,
    /// `GET …/ws`
    Socket,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// 404: no route has this path.
    NotFound,
    /// 405: the path exists with another method (the one named).
    MethodNotAllowed(&'static str),
}

impl NoRoute {
    /// The documented error: 404 `not_found` or 405 `method_not_allowed` with `allowed`.
    pub fn into_error(self, path: &str) -> ApiError {
        match self {
            NoRoute::NotFound => ApiError::not_found(format!("no route for {path}")),
            NoRoute::MethodNotAllowed(allowed) => ApiError::method_not_allowed(allowed),
        }
    }
}

impl Route {
    /// The scope a caller needs; `None` for open routes. Declared here, not in handlers.
    pub fn scope(&self) -> Option<auth::Scope> {
        match self {
            Route::Health | Route::OpenApi | Route::Ingest(IngestRoute::Github) => None,
            Route::Ingest(IngestRoute::Telemetry) => Some(auth::Scope::Ingest),
            Route::Ingest(IngestRoute::TelemetryStatus) => Some(auth::Scope::Read),
            Route::Integrations | Route::Integration { .. } => Some(auth::Scope::Admin),
            Route::KnowledgeSearch => Some(auth::Scope::Read),
            Route::Aggregate {
                op: AggregateRoute::Command | AggregateRoute::Batch,
                ..
            } => Some(auth::Scope::Commands),
            Route::Aggregate { .. } => Some(auth::Scope::Read),
            Route::Stream(_) => Some(auth::Scope::Replay),
            Route::PartitionAdmin { .. } => Some(auth::Scope::Admin),
            Route::Projection(ProjectionRoute::Rebuild { .. }) => Some(auth::Scope::Admin),
            Route::Projection(_) => Some(auth::Scope::Read),
            Route::Consumers(_) => Some(auth::Scope::Consume),
            Route::Trace { .. } => Some(auth::Scope::Read),
        }
    }

    /// The largest body the route takes (413 above), in bytes: GitHub's deliveries and
    /// telemetry batches have their own bounds; everything else `MAX_BODY_BYTES`.
    pub fn body_limit(&self, max_body_bytes: usize) -> usize {
        match self {
            Route::Ingest(IngestRoute::Github) => ingest::github::MAX_BODY_BYTES,
            Route::Ingest(IngestRoute::Telemetry) => ingest::telemetry::MAX_BODY_BYTES,
            _ => max_body_bytes,
        }
    }

    /// Whether the token may travel as an `access_token` query parameter: on sockets
    /// (browsers cannot set their headers) and on the telemetry route (`sendBeacon` cannot
    /// either; its token is a publishable, ingest-only one).
    pub fn token_in_query(&self) -> bool {
        self.is_socket() || *self == Route::Ingest(IngestRoute::Telemetry)
    }

    /// Whether the route is a WebSocket upgrade (the token may then also travel as a
    /// subprotocol or query parameter).
    pub fn is_socket(&self) -> bool {
        matches!(
            self,
            Route::Aggregate {
                op: AggregateRoute::Socket,
                ..
            } | Route::Stream(StreamRoute::Socket)
                | Route::Projection(ProjectionRoute::Socket { .. })
        )
    }
}

/// Names the route of `method path`: [`NoRoute::NotFound`] for unknown paths,
/// [`NoRoute::MethodNotAllowed`] for a known path with the wrong method. `HEAD` is
/// accepted wherever `GET` is.
pub fn match_route(method: &Method, path: &str) -> Result<Route, NoRoute> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["healthz"] => (Route::Health, Method::Get),
        ["v1", "openapi.json"] => (Route::OpenApi, Method::Get),
        ["v1", "aggregates", aggregate_type, aggregate_id, rest @ ..] => {
            let op = match rest {
                [] => AggregateRoute::State,
                ["events"] => AggregateRoute::Events,
                ["ws"] => AggregateRoute::Socket,
                ["commands"] => AggregateRoute::Command,
                ["batch"] => AggregateRoute::Batch,
                _ => return Err(NoRoute::NotFound),
            };
            let allowed = match op {
                AggregateRoute::Command | AggregateRoute::Batch => Method::Post,
                _ => Method::Get,
            };
            let route = Route::Aggregate {
                aggregate_type: (*aggregate_type).to_owned(),
                aggregate_id: (*aggregate_id).to_owned(),
                op,
            };
            (route, allowed)
        }
        ["v1", "ingest", "telemetry"] => match method {
            Method::Post => (Route::Ingest(IngestRoute::Telemetry), Method::Post),
            Method::Get | Method::Head => {
                (Route::Ingest(IngestRoute::TelemetryStatus), Method::Get)
            }
            _ => return Err(NoRoute::MethodNotAllowed("GET, POST")),
        },
        ["v1", "ingest", "github"] => (Route::Ingest(IngestRoute::Github), Method::Post),
        ["v1", "integrations"] => (Route::Integrations, Method::Get),
        ["v1", "integrations", name] => {
            let delete = match method {
                Method::Put => false,
                Method::Delete => true,
                _ => return Err(NoRoute::MethodNotAllowed("PUT, DELETE")),
            };
            let route = Route::Integration {
                name: (*name).to_owned(),
                delete,
            };
            (route, method.clone())
        }
        ["v1", "knowledge", "search"] => (Route::KnowledgeSearch, Method::Get),
        ["v1", "stream"] => (Route::Stream(StreamRoute::Read), Method::Get),
        ["v1", "stream", "ws"] => (Route::Stream(StreamRoute::Socket), Method::Get),
        ["v1", "stream", "partitions"] => (Route::Stream(StreamRoute::Partitions), Method::Get),
        ["v1", "consumers"] => (Route::Consumers(ConsumerRoute::List), Method::Get),
        ["v1", "consumers", group] => {
            let group = (*group).to_owned();
            let route = match method {
                Method::Put => ConsumerRoute::Create { group },
                Method::Delete => ConsumerRoute::Delete { group },
                Method::Get | Method::Head => ConsumerRoute::Status { group },
                _ => return Err(NoRoute::MethodNotAllowed("GET, PUT, DELETE")),
            };
            let allowed = method.clone();
            (Route::Consumers(route), allowed)
        }
        ["v1", "consumers", group, "parked"] => (
            Route::Consumers(ConsumerRoute::Parked {
                group: (*group).to_owned(),
            }),
            Method::Get,
        ),
        ["v1", "consumers", group, "parked", "replay"] => (
            Route::Consumers(ConsumerRoute::Replay {
                group: (*group).to_owned(),
            }),
            Method::Post,
        ),
        ["v1", "consumers", group, action] => {
            let action = match *action {
                "poll" => ConsumerAction::Poll,
                "ack" => ConsumerAction::Ack,
                "nack" => ConsumerAction::Nack,
                "renew" => ConsumerAction::Renew,
                "release" => ConsumerAction::Release,
                _ => return Err(NoRoute::NotFound),
            };
            let route = ConsumerRoute::Action {
                group: (*group).to_owned(),
                action,
            };
            (Route::Consumers(route), Method::Post)
        }
        ["v1", "trace", correlation_id] => (
            Route::Trace {
                correlation_id: (*correlation_id).to_owned(),
            },
            Method::Get,
        ),
        ["v1", "projections"] => (Route::Projection(ProjectionRoute::Index), Method::Get),
        ["v1", "projections", name] => (
            Route::Projection(ProjectionRoute::List {
                name: (*name).to_owned(),
            }),
            Method::Get,
        ),
        ["v1", "projections", name, "rebuild"] if *method == Method::Post => (
            Route::Projection(ProjectionRoute::Rebuild {
                name: (*name).to_owned(),
            }),
            Method::Post,
        ),
        ["v1", "projections", name, doc_id] => (
            Route::Projection(ProjectionRoute::Get {
                name: (*name).to_owned(),
                doc_id: (*doc_id).to_owned(),
            }),
            Method::Get,
        ),
        ["v1", "projections", name, doc_id, "ws"] => (
            Route::Projection(ProjectionRoute::Socket {
                name: (*name).to_owned(),
                doc_id: (*doc_id).to_owned(),
            }),
            Method::Get,
        ),
        ["v1", "stream", "partitions", partition, action] => {
            let action = match *action {
                "pause" => PartitionAction::Pause,
                "resume" => PartitionAction::Resume,
                "archive" => PartitionAction::Archive,
                _ => return Err(NoRoute::NotFound),
            };
            let route = Route::PartitionAdmin {
                partition: (*partition).to_owned(),
                action,
            };
            (route, Method::Post)
        }
        _ => return Err(NoRoute::NotFound),
    };
    let ok = *method == allowed || (allowed == Method::Get && *method == Method::Head);
    if ok {
        Ok(route)
    } else {
        Err(NoRoute::MethodNotAllowed(match allowed {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            _ => "GET",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::Scope;

    fn aggregate(op: AggregateRoute) -> Route {
        Route::Aggregate {
            aggregate_type: "board".into(),
            aggregate_id: "b1".into(),
            op,
        }
    }

    #[test]
    fn every_route_with_its_scope() {
        let table = [
            (Method::Get, "/healthz", Route::Health, None),
            (Method::Get, "/v1/openapi.json", Route::OpenApi, None),
            (
                Method::Post,
                "/v1/aggregates/board/b1/commands",
                aggregate(AggregateRoute::Command),
                Some(Scope::Commands),
            ),
            (
                Method::Post,
                "/v1/aggregates/board/b1/batch",
                aggregate(AggregateRoute::Batch),
                Some(Scope::Commands),
            ),
            (
                Method::Get,
                "/v1/aggregates/board/b1",
                aggregate(AggregateRoute::State),
                Some(Scope::Read),
            ),
            (
                Method::Head,
                "/v1/aggregates/board/b1",
                aggregate(AggregateRoute::State),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/aggregates/board/b1/events",
                aggregate(AggregateRoute::Events),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/aggregates/board/b1/ws",
                aggregate(AggregateRoute::Socket),
                Some(Scope::Read),
            ),
        ];
        let stream = [
            (
                Method::Get,
                "/v1/stream",
                Route::Stream(StreamRoute::Read),
                Some(Scope::Replay),
            ),
            (
                Method::Get,
                "/v1/stream/ws",
                Route::Stream(StreamRoute::Socket),
                Some(Scope::Replay),
            ),
            (
                Method::Get,
                "/v1/stream/partitions",
                Route::Stream(StreamRoute::Partitions),
                Some(Scope::Replay),
            ),
            (
                Method::Post,
                "/v1/stream/partitions/2/pause",
                Route::PartitionAdmin {
                    partition: "2".into(),
                    action: PartitionAction::Pause,
                },
                Some(Scope::Admin),
            ),
            (
                Method::Post,
                "/v1/stream/partitions/0/resume",
                Route::PartitionAdmin {
                    partition: "0".into(),
                    action: PartitionAction::Resume,
                },
                Some(Scope::Admin),
            ),
            (
                Method::Post,
                "/v1/stream/partitions/1/archive",
                Route::PartitionAdmin {
                    partition: "1".into(),
                    action: PartitionAction::Archive,
                },
                Some(Scope::Admin),
            ),
        ];
        let projections = [
            (
                Method::Get,
                "/v1/projections",
                Route::Projection(ProjectionRoute::Index),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/projections/board_summary",
                Route::Projection(ProjectionRoute::List {
                    name: "board_summary".into(),
                }),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/projections/board_summary/b1",
                Route::Projection(ProjectionRoute::Get {
                    name: "board_summary".into(),
                    doc_id: "b1".into(),
                }),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/projections/board_summary/rebuild",
                Route::Projection(ProjectionRoute::Get {
                    name: "board_summary".into(),
                    doc_id: "rebuild".into(),
                }),
                Some(Scope::Read),
            ),
            (
                Method::Get,
                "/v1/projections/board_summary/b1/ws",
                Route::Projection(ProjectionRoute::Socket {
                    name: "board_summary".into(),
                    doc_id: "b1".into(),
                }),
                Some(Scope::Read),
            ),
            (
                Method::Post,
                "/v1/projections/board_summary/rebuild",
                Route::Projection(ProjectionRoute::Rebuild {
                    name: "board_summary".into(),
                }),
                Some(Scope::Admin),
            ),
        ];
        let group = |route: fn(String) -> ConsumerRoute| Route::Consumers(route("triage".into()));
        let consumers = [
            (
                Method::Get,
                "/v1/consumers",
                Route::Consumers(ConsumerRoute::List),
                Some(Scope::Consume),
            ),
            (
                Method::Put,
                "/v1/consumers/triage",
                group(|group| ConsumerRoute::Create { group }),
                Some(Scope::Consume),
            ),
            (
                Method::Get,
                "/v1/consumers/triage",
                group(|group| ConsumerRoute::Status { group }),
                Some(Scope::Consume),
            ),
            (
                Method::Delete,
                "/v1/consumers/triage",
                group(|group| ConsumerRoute::Delete { group }),
                Some(Scope::Consume),
            ),
            (
                Method::Post,
                "/v1/consumers/triage/poll",
                group(|group| ConsumerRoute::Action {
                    group,
                    action: ConsumerAction::Poll,
                }),
                Some(Scope::Consume),
            ),
            (
                Method::Post,
                "/v1/consumers/triage/nack",
                group(|group| ConsumerRoute::Action {
                    group,
                    action: ConsumerAction::Nack,
                }),
                Some(Scope::Consume),
            ),
            (
                Method::Get,
                "/v1/consumers/triage/parked",
                group(|group| ConsumerRoute::Parked { group }),
                Some(Scope::Consume),
            ),
            (
                Method::Post,
                "/v1/consumers/triage/parked/replay",
                group(|group| ConsumerRoute::Replay { group }),
                Some(Scope::Consume),
            ),
            (
                Method::Get,
                "/v1/trace/abc",
                Route::Trace {
                    correlation_id: "abc".into(),
                },
                Some(Scope::Read),
            ),
        ];
        for (method, path, route, scope) in table
            .into_iter()
            .chain(stream)
            .chain(projections)
            .chain(consumers)
        {
            let matched = match_route(&method, path).unwrap();
            assert_eq!(matched, route, "{method:?} {path}");
            assert_eq!(matched.scope(), scope, "{path}");
            assert_eq!(matched.is_socket(), path.ends_with("/ws"));
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/",
            "/v1",
            "/v1/aggregates",
            "/v1/aggregates/board",
            "/v1/aggregates/board/b1/nope",
            "/v1/aggregates/board/b1/events/x",
            "/healthz/x",
            "/v2/aggregates/board/b1",
            "/v1/stream/x",
            "/v1/stream/partitions/1",
            "/v1/stream/partitions/1/drop",
        ] {
            assert_eq!(
                match_route(&Method::Get, path),
                Err(NoRoute::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn wrong_methods_are_405_naming_the_allowed_one() {
        assert_eq!(
            match_route(&Method::Get, "/v1/aggregates/board/b1/commands"),
            Err(NoRoute::MethodNotAllowed("POST"))
        );
        for path in [
            "/v1/aggregates/board/b1",
            "/v1/aggregates/board/b1/ws",
            "/healthz",
        ] {
            assert_eq!(
                match_route(&Method::Delete, path),
                Err(NoRoute::MethodNotAllowed("GET")),
                "{path}"
            );
        }
        let error = NoRoute::MethodNotAllowed("POST").into_error("/x");
        assert_eq!((error.status, error.code), (405, "method_not_allowed"));
        assert_eq!(error.details["allowed"], "POST");
    }
}

/// Every route the matcher knows, as `(method, path template)` spelled as in the OpenAPI
/// description: `api/openapi.json` documents exactly these (`crate::openapi_tests`).
/// [`every_route::template`] matches [`Route`] exhaustively, so a new route does not compile
/// until it has a template, and [`every_route::ROUTES`] must list it (checked below).
#[cfg(test)]
pub(crate) mod every_route {
    use super::*;

    pub(crate) const ROUTES: &[(&str, &str)] = &[
        ("GET", "/healthz"),
        ("GET", "/v1/openapi.json"),
        ("POST", "/v1/aggregates/{type}/{id}/commands"),
        ("POST", "/v1/aggregates/{type}/{id}/batch"),
        ("GET", "/v1/aggregates/{type}/{id}"),
        ("GET", "/v1/aggregates/{type}/{id}/events"),
        ("GET", "/v1/aggregates/{type}/{id}/ws"),
        ("GET", "/v1/stream"),
        ("GET", "/v1/stream/ws"),
        ("GET", "/v1/stream/partitions"),
        ("POST", "/v1/stream/partitions/{n}/pause"),
        ("POST", "/v1/stream/partitions/{n}/resume"),
        ("POST", "/v1/stream/partitions/{n}/archive"),
        ("GET", "/v1/projections"),
        ("GET", "/v1/projections/{name}"),
        ("GET", "/v1/projections/{name}/{doc_id}"),
        ("GET", "/v1/projections/{name}/{doc_id}/ws"),
        ("POST", "/v1/projections/{name}/rebuild"),
        ("GET", "/v1/consumers"),
        ("PUT", "/v1/consumers/{group}"),
        ("GET", "/v1/consumers/{group}"),
        ("DELETE", "/v1/consumers/{group}"),
        ("POST", "/v1/consumers/{group}/poll"),
        ("POST", "/v1/consumers/{group}/ack"),
        ("POST", "/v1/consumers/{group}/nack"),
        ("POST", "/v1/consumers/{group}/renew"),
        ("POST", "/v1/consumers/{group}/release"),
        ("GET", "/v1/consumers/{group}/parked"),
        ("POST", "/v1/consumers/{group}/parked/replay"),
        ("GET", "/v1/trace/{correlation_id}"),
        ("POST", "/v1/ingest/telemetry"),
        ("GET", "/v1/ingest/telemetry"),
        ("POST", "/v1/ingest/github"),
        ("GET", "/v1/integrations"),
        ("PUT", "/v1/integrations/{name}"),
        ("DELETE", "/v1/integrations/{name}"),
        ("GET", "/v1/knowledge/search"),
    ];

    /// The `(method, template)` a matched route answers. Exhaustive: no `_` arm.
    pub(crate) fn template(route: &Route) -> (&'static str, &'static str) {
        match route {
            Route::Health => ("GET", "/healthz"),
            Route::OpenApi => ("GET", "/v1/openapi.json"),
            Route::Aggregate { op, .. } => match op {
                AggregateRoute::Command => ("POST", "/v1/aggregates/{type}/{id}/commands"),
                AggregateRoute::Batch => ("POST", "/v1/aggregates/{type}/{id}/batch"),
                AggregateRoute::State => ("GET", "/v1/aggregates/{type}/{id}"),
                AggregateRoute::Events => ("GET", "/v1/aggregates/{type}/{id}/events"),
                AggregateRoute::Socket => ("GET", "/v1/aggregates/{type}/{id}/ws"),
            },
            Route::Stream(stream) => match stream {
                StreamRoute::Read => ("GET", "/v1/stream"),
                StreamRoute::Socket => ("GET", "/v1/stream/ws"),
                StreamRoute::Partitions => ("GET", "/v1/stream/partitions"),
            },
            Route::PartitionAdmin { action, .. } => match action {
                PartitionAction::Pause => ("POST", "/v1/stream/partitions/{n}/pause"),
                PartitionAction::Resume => ("POST", "/v1/stream/partitions/{n}/resume"),
                PartitionAction::Archive => ("POST", "/v1/stream/partitions/{n}/archive"),
            },
            Route::Projection(projection) => match projection {
                ProjectionRoute::Index => ("GET", "/v1/projections"),
                ProjectionRoute::List { .. } => ("GET", "/v1/projections/{name}"),
                ProjectionRoute::Get { .. } => ("GET", "/v1/projections/{name}/{doc_id}"),
                ProjectionRoute::Socket { .. } => ("GET", "/v1/projections/{name}/{doc_id}/ws"),
                ProjectionRoute::Rebuild { .. } => ("POST", "/v1/projections/{name}/rebuild"),
            },
            Route::Consumers(consumers) => match consumers {
                ConsumerRoute::List => ("GET", "/v1/consumers"),
                ConsumerRoute::Create { .. } => ("PUT", "/v1/consumers/{group}"),
                ConsumerRoute::Status { .. } => ("GET", "/v1/consumers/{group}"),
                ConsumerRoute::Delete { .. } => ("DELETE", "/v1/consumers/{group}"),
                ConsumerRoute::Action { action, .. } => match action {
                    ConsumerAction::Poll => ("POST", "/v1/consumers/{group}/poll"),
                    ConsumerAction::Ack => ("POST", "/v1/consumers/{group}/ack"),
                    ConsumerAction::Nack => ("POST", "/v1/consumers/{group}/nack"),
                    ConsumerAction::Renew => ("POST", "/v1/consumers/{group}/renew"),
                    ConsumerAction::Release => ("POST", "/v1/consumers/{group}/release"),
                },
                ConsumerRoute::Parked { .. } => ("GET", "/v1/consumers/{group}/parked"),
                ConsumerRoute::Replay { .. } => ("POST", "/v1/consumers/{group}/parked/replay"),
            },
            Route::Trace { .. } => ("GET", "/v1/trace/{correlation_id}"),
            Route::Ingest(ingest) => match ingest {
                IngestRoute::Telemetry => ("POST", "/v1/ingest/telemetry"),
                IngestRoute::TelemetryStatus => ("GET", "/v1/ingest/telemetry"),
                IngestRoute::Github => ("POST", "/v1/ingest/github"),
            },
            Route::Integrations => ("GET", "/v1/integrations"),
            Route::Integration { delete: false, .. } => ("PUT", "/v1/integrations/{name}"),
            Route::Integration { delete: true, .. } => ("DELETE", "/v1/integrations/{name}"),
            Route::KnowledgeSearch => ("GET", "/v1/knowledge/search"),
        }
    }

    /// A concrete path for a template: every `{param}` becomes a plain segment.
    pub(crate) fn sample(template: &str) -> String {
        template
            .split('/')
            .map(|segment| match segment {
                "{type}" => "board",
                "{id}" | "{doc_id}" => "b1",
                "{n}" => "0",
                "{name}" => "board_summary",
                "{group}" => "triage",
                "{correlation_id}" => "corr-1",
                literal => literal,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    pub(crate) fn method(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => panic!("no method {other} in the route table"),
        }
    }

    #[test]
    fn every_listed_route_is_matched_as_itself_and_listed_once() {
        for (i, &(name, template_)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i].contains(&(name, template_)),
                "{name} {template_} is listed twice"
            );
            let path = sample(template_);
            assert!(
                !path.contains('{'),
                "{template_}: a parameter without a sample"
            );
            let route = match_route(&method(name), &path)
                .unwrap_or_else(|e| panic!("{name} {path} is not matched: {e:?}"));
            assert_eq!(template(&route), (name, template_), "{name} {path}");
            if name == "GET" {
                assert_eq!(match_route(&Method::Head, &path), Ok(route), "HEAD {path}");
            }
        }
    }

    /// The matcher's literal path segments (its string literals, less the method names of
    /// its 405 answers) all appear in some listed template: a route added to the matcher
    /// without being listed here leaves a segment behind.
    #[test]
    fn every_literal_segment_of_the_matcher_is_in_a_listed_route() {
        let source = include_str!("routes.rs");
        let start = source.find("pub fn match_route").expect("the matcher");
        let end = start + source[start..].find("#[cfg(test)]").expect("its end");
        let literals = source[start..end].split('"').skip(1).step_by(2);
        let segments: Vec<&str> = ROUTES
            .iter()
            .flat_map(|(_, template)| template.split('/'))
            .collect();
        let is_method_list = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_uppercase() || b == b',' || b == b' ')
        };
        for literal in literals.filter(|s| !is_method_list(s)) {
            assert!(
                segments.contains(&literal),
                "the matcher knows the segment `{literal}`, but no route in `every_route::ROUTES` \
                 has it: list the route there and document it in api/openapi.json"
            );
        }
    }
}
