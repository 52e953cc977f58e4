//! The BFF's HTTP server: `POST /graphql` executes, `GET /graphql` serves GraphiQL,
//! `/graphql/ws` speaks graphql-ws, `/healthz` answers health checks. Bodies over 1 MiB are
//! refused here (413, the GraphQL body included) as well as at Envoy; documents are checked
//! against `limits` before they run; a verified token's session is checked (`session`); the
//! client's address is the last `x-forwarded-for` hop when the peer is a trusted proxy
//! (Envoy), else the peer itself. It binds loopback by default: only Envoy is public.
//! With `--web-dir`, every other path is the web app (a file of the directory, else its
//! `index.html`, so the app's own routes load on a reload).

use crate::auth::Caller;
use crate::clients::{BackendArgs, Backends};
use crate::context::RequestContext;
use crate::edge::Edge;
use crate::error::{bounded, engine_error_code};
use crate::feed::LiveEvents;
use crate::limits::{check_document, DocumentKind};
use crate::schema::{build_introspection_schema, build_schema, request_loader, AppSchema};
use crate::throttle::ThrottleArgs;
use crate::ws::Expiry;
use async_graphql::http::GraphiQLSource;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use platform::auth::{Jwt, JwtArgs};
use platform::host::{self, Service};
use platform::kafka::KafkaArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use tower_http::services::{ServeDir, ServeFile};
use tracing::Instrument;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(name = "bff", version)]
pub struct BffArgs {
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,
    /// Serves `/healthz` and Prometheus `/metrics`, apart from the public port.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9205")]
    pub admin_addr: SocketAddr,
    #[command(flatten)]
    pub backends: BackendArgs,
    /// The secret the user service signs access tokens with.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Subscriptions are fed from the event topics.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub throttle: ThrottleArgs,
    /// How long the BFF trusts what it last heard of an account's session version (ms).
    #[arg(long, env = "SESSION_CACHE_MS", default_value_t = 2000)]
    pub session_cache_ms: u64,
    /// Messages per second one client may send over graphql-ws (burst: twice that).
    #[arg(long, env = "WS_MESSAGES_PER_SECOND", default_value_t = 20)]
    pub ws_messages_per_second: u32,
    /// Peers whose `x-forwarded-for` is believed (Envoy), comma-separated IPs, or `any`.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        default_value = "127.0.0.1,::1",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// The built web app (`web/dist`), served at `/`; unset, only the API is served.
    #[arg(long, env = "WEB_DIR")]
    pub web_dir: Option<PathBuf>,
}

#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    introspection: AppSchema,
    jwt: Option<Jwt>,
    backends: Backends,
    edge: Edge,
}

/// What the session check gets back from `GetUser`.
type UserLookup = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<tonic::Response<proto::user::UserView>, tonic::Status>,
            > + Send,
    >,
>;

/// How the session check asks the user service for an account (`GetUser`), acting for the
/// account itself (the user service answers `GetUser` only to its owner or an admin).
fn users_lookup(backends: &Backends) -> impl FnOnce(String) -> UserLookup {
    let backends = backends.clone();
    move |user_id| {
        let mut users = backends.acting_for_user(&user_id, "customer").users;
        Box::pin(async move { users.get_user(proto::user::UserRef { user_id }).await })
    }
}

/// A GraphQL-shaped error response with its own HTTP status.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    // The body limit, applied here (the GraphQL extractor reads the body stream itself and
    // would not see `DefaultBodyLimit`).
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            &format!("the request body is over {MAX_BODY_BYTES} bytes"),
        );
    };
    let headers = parts.headers.clone();
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let req = match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
        req, &state,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let client = state.edge.client(Some(peer), &headers);
    let caller = Caller::from_header(
        state.jwt.as_ref(),
        headers.get("authorization").and_then(|v| v.to_str().ok()),
    );
    let caller = state
        .edge
        .sessions
        .check(caller, users_lookup(&state.backends))
        .await;
    let correlation_id = headers
        .get("x-request-id")
        .or_else(|| headers.get(platform::trace_context::CORRELATION_HEADER))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span =
        tracing::info_span!("graphql", otel.kind = "server", correlation_id = %correlation_id);
    // A caller that traces (W3C `traceparent`) gets the request in its own trace; every
    // backend call below carries this span's context on (see `trace_context`).
    platform::trace_context::follow_headers(&span, &headers);
    // The backends act for this caller (their credential names them).
    let backends = state.backends.acting_for(&caller);
    let request = req
        .into_inner()
        .data(request_loader(&backends))
        .data(backends)
        .data(RequestContext {
            correlation_id,
            caller,
            client,
        })
        .data(state.edge.clone());
    let started = std::time::Instant::now();
    let mut response = match check_document(&request.query) {
        Ok(DocumentKind::Introspection) => {
            state.introspection.execute(request).instrument(span).await
        }
        Ok(DocumentKind::Data) => state.schema.execute(request).instrument(span).await,
        Err(refusal) => {
            async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                refusal, None,
            )])
        }
    };
    metrics::histogram!("graphql_request_duration_seconds").record(started.elapsed().as_secs_f64());
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    metrics::counter!("graphql_requests_total", "outcome" => outcome).increment(1);
    finish_errors(&mut response);
    GraphQLResponse::from(response).into_response()
}

/// Every error gets a code (the engine's own errors too: syntax, validation, limits), no
/// message quotes more than a short prefix of what the client sent, and each is counted.
fn finish_errors(response: &mut async_graphql::Response) {
    for e in &mut response.errors {
        // No error quotes more than a short prefix of what the client sent.
        e.message = bounded(&e.message);
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let code = engine_error_code(&e.message);
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|c| c.to_string().trim_matches('"').to_owned())
            .unwrap_or_default();
        metrics::counter!("graphql_errors_total", "code" => code).increment(1);
    }
}

/// graphql-ws (and the older subscriptions-transport-ws): the caller is taken from the
/// upgrade request's `Authorization` header or, as browsers cannot set headers on a
/// websocket, from `Authorization` (or `authorization`) in the `connection_init` payload.
/// A connection signed in with a token is closed when the token expires; every message
/// counts against the client's rate (see `ws`).
async fn subscriptions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client = state.edge.client(Some(peer), &headers);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let AppState {
                schema,
                jwt,
                backends,
                edge,
                ..
            } = state;
            let expiry = Expiry::default();
            let set_expiry = expiry.clone();
            let limiter = edge.ws.clone();
            let init_client = client.clone();
            let init = move |payload: serde_json::Value| async move {
                let from_payload = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                    .map(str::to_owned);
                let caller = Caller::from_header(jwt.as_ref(), from_payload.or(header).as_deref());
                let caller = edge.sessions.check(caller, users_lookup(&backends)).await;
                if let Caller::User(c) = &caller {
                    set_expiry.set(c.exp);
                }
                let mut data = Data::default();
                // The connection's backends act for its caller.
                let backends = backends.acting_for(&caller);
                data.insert(request_loader(&backends));
                data.insert(backends);
                data.insert(RequestContext {
                    correlation_id: uuid::Uuid::now_v7().to_string(),
                    caller,
                    client: init_client,
                });
                data.insert(edge);
                Ok(data)
            };
            crate::ws::serve(socket, schema, protocol, client, limiter, expiry, init)
        })
}

/// The axum app.
pub fn app(
    schema: AppSchema,
    introspection: AppSchema,
    jwt: Option<Jwt>,
    backends: Backends,
    edge: Edge,
) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState {
            schema,
            introspection,
            jwt,
            backends,
            edge,
        })
}

pub async fn bff_main() -> anyhow::Result<()> {
    let args = BffArgs::parse();
    host::serve(args.admin_addr, |service| async move {
        let Service { shutdown, ready } = service;
        let backends = Backends::new(&args.backends)?;
        let live = LiveEvents::new();
        let schema = build_schema(backends.clone(), live.clone());
        let introspection = build_introspection_schema(backends.clone(), live.clone());
        let feed = tokio::spawn(live.run(args.kafka.clone(), shutdown.clone()));
        ready.set_ready(true);
        let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
        tracing::info!(addr = %args.http_addr, "GraphQL BFF listening on /graphql");
        let jwt = match &args.jwt_secret {
            Some(s) => Some(Jwt::new(&JwtArgs {
                jwt_secret: s.clone(),
                access_token_ttl: 0,
            })?),
            None => {
                tracing::warn!("no JWT_SECRET: every token is refused");
                None
            }
        };
        let edge = Edge::new(
            std::time::Duration::from_millis(args.session_cache_ms),
            args.throttle.clone(),
            args.ws_messages_per_second,
            &args.trusted_proxies,
        );
        let mut router = app(schema, introspection, jwt, backends, edge);
        if let Some(dir) = &args.web_dir {
            tracing::info!(dir = %dir.display(), "serving the web app on /");
            router = router.fallback_service(
                ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))),
            );
        }
        let token = shutdown.clone();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await?;
        shutdown.cancel();
        feed.await?;
        Ok(())
    })
    .await
}
