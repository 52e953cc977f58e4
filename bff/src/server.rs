//! The BFF's HTTP server: `POST /graphql` executes, `GET /graphql` serves GraphiQL,
//! `/graphql/ws` speaks graphql-ws, `/healthz` answers health checks; with `--web-dir`, every
//! other path is the web app (a file of the directory, else its `index.html`, so the app's own
//! routes load on a reload). Bodies over 1 MiB are refused here as well as at Envoy.

use crate::auth::Caller;
use crate::clients::{BackendArgs, Backends};
use crate::error::engine_error_code;
use crate::live::LiveEvents;
use crate::schema::{
    build_introspection_schema, build_schema, is_introspection_only, AppSchema, RequestContext,
};
use async_graphql::http::GraphiQLSource;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use command_services::auth::{Jwt, JwtArgs};
use command_services::kafka::KafkaArgs;
use command_services::support::{init_tracing, serve_admin, shutdown_token, Readiness};
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
    headers: HeaderMap,
    req: GraphQLRequest,
) -> GraphQLResponse {
    let caller = Caller::from_header(
        state.jwt.as_ref(),
        headers.get("authorization").and_then(|v| v.to_str().ok()),
    );
    let correlation_id = headers
        .get("x-request-id")
        .or_else(|| headers.get("x-correlation-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("graphql", correlation_id = %correlation_id);
    let request = req
        .into_inner()
        .data(RequestContext {
            correlation_id,
            caller,
        })
        .data(crate::catalogue::new_loader(state.backends.shop.clone()));
    let started = std::time::Instant::now();
    let schema = if is_introspection_only(&request.query) {
        &state.introspection
    } else {
        &state.schema
    };
    let mut response = schema.execute(request).instrument(span).await;
    metrics::histogram!("graphql_request_duration_seconds").record(started.elapsed().as_secs_f64());
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    metrics::counter!("graphql_requests_total", "outcome" => outcome).increment(1);
    // Errors from the engine itself (syntax, validation, limits) get a code too.
    for e in &mut response.errors {
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
    response.into()
}

/// graphql-ws (and the older subscriptions-transport-ws): the caller is taken from the
/// upgrade request's `Authorization` header or, as browsers cannot set headers on a
/// websocket, from `Authorization` (or `authorization`) in the `connection_init` payload.
async fn subscriptions(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let AppState {
                schema,
                jwt,
                backends,
                ..
            } = state;
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let from_payload = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                        .map(str::to_owned);
                    let caller =
                        Caller::from_header(jwt.as_ref(), from_payload.or(header).as_deref());
                    let mut data = Data::default();
                    data.insert(RequestContext {
                        correlation_id: uuid::Uuid::now_v7().to_string(),
                        caller,
                    });
                    data.insert(crate::catalogue::new_loader(backends.shop.clone()));
                    Ok(data)
                })
                .serve()
        })
}

/// The axum app.
pub fn app(
    schema: AppSchema,
    introspection: AppSchema,
    jwt: Option<Jwt>,
    backends: Backends,
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
        })
}

pub async fn bff_main() -> anyhow::Result<()> {
    init_tracing();
    let args = BffArgs::parse();
    let shutdown = shutdown_token();
    let backends = Backends::new(&args.backends)?;
    let live = LiveEvents::new();
    let schema = build_schema(backends.clone(), live.clone());
    let introspection = build_introspection_schema(backends.clone(), live.clone());
    let feed = tokio::spawn(live.run(args.kafka.clone(), shutdown.clone()));
    let ready = Readiness::default();
    ready.set_ready(true);
    let admin = tokio::spawn(serve_admin(args.admin_addr, ready, shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    tracing::info!(addr = %args.http_addr, "GraphQL BFF listening on /graphql");
    let token = shutdown.clone();
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
    let mut router = app(schema, introspection, jwt, backends);
    if let Some(dir) = &args.web_dir {
        tracing::info!(dir = %dir.display(), "serving the web app on /");
        router = router
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))));
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await?;
    shutdown.cancel();
    let _ = feed.await;
    admin.await??;
    Ok(())
}
