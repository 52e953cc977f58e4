//! Plumbing every binary of the project shares: logging and metrics set-up, the shutdown
//! signal, the small admin HTTP server (`/healthz`, Prometheus `/metrics`) and the gRPC server
//! scaffolding (health + reflection, and the internal credential every other call needs).

use crate::internal_auth::{InternalAuth, RequireCredential};
use axum::{http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds) of every histogram.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| eprintln!("metrics recorder not installed: {e}"))
                .ok()
        })
        .as_ref()
}

/// Logs to stderr; JSON lines when `LOG_FORMAT=json`. Level from `RUST_LOG` (default info).
/// Also installs the metrics recorder, so metrics recorded from the start are kept. Only the
/// first call sets anything up ([`crate::host::run`] calls it before a binary's body does).
pub fn init_tracing() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(install_tracing);
}

fn install_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    metrics_handle();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let otel = otlp_tracer().map(|t| tracing_opentelemetry::layer().with_tracer(t));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
}

static TRACER_PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

/// OTLP trace export, on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: spans go in batches over OTLP/HTTP
/// (protobuf). The service is named by `OTEL_SERVICE_NAME`, else by the binary.
fn otlp_tracer() -> Option<opentelemetry_sdk::trace::SdkTracer> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTLP trace export is off: {e}");
            return None;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME").ok().unwrap_or_else(|| {
        std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "commerce".into())
    });
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build();
    let tracer = provider.tracer("commerce");
    let _ = TRACER_PROVIDER.set(provider);
    Some(tracer)
}

/// Flushes and stops OTLP export (a no-op when it is off). Binaries call it on the way out.
pub fn shutdown_tracing() {
    if let Some(p) = TRACER_PROVIDER.get() {
        if let Err(e) = p.shutdown() {
            eprintln!("OTLP shutdown: {e}");
        }
    }
}

/// A token cancelled on SIGINT or SIGTERM: every loop and server watches it to stop cleanly.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Readiness flag shared between a service's work loop and its admin server, and the state
/// of its work (`ok`, `lagging`, `healing`, `stalled`, ...) with a detail line, which
/// `/healthz` and `/status` report and the `service_state` gauge exports.
#[derive(Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    state: Arc<std::sync::Mutex<(String, String)>>,
}

/// The states a worker reports; `service_state{state}` is 1 for the current one.
pub const STATES: &[&str] = &["starting", "ok", "lagging", "healing", "stalled"];

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    /// Sets the work state (one of [`STATES`]) and its detail.
    pub fn set_state(&self, state: &str, detail: impl Into<String>) {
        let detail = detail.into();
        for s in STATES {
            metrics::gauge!("service_state", "state" => *s).set(if *s == state {
                1.0
            } else {
                0.0
            });
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (state.to_owned(), detail);
    }
    /// The work state and its detail: `starting` until ready, `ok` when never set.
    pub fn state(&self) -> (String, String) {
        let (s, d) = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if s.is_empty() {
            let s = if self.is_ready() { "ok" } else { "starting" };
            return (s.to_owned(), d);
        }
        (s, d)
    }
}

/// Serves `GET /healthz` (200 when ready, 503 before; the body is the work state, e.g.
/// `ok`, `healing: ...`, `stalled: ...`), `GET /status` (the same as JSON) and `GET /metrics`
/// (Prometheus text) until the token is cancelled.
pub async fn serve_admin(
    addr: SocketAddr,
    ready: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async { metrics_handle().map(|h| h.render()).unwrap_or_default() }),
        )
        .route(
            "/status",
            get({
                let ready = ready.clone();
                move || {
                    let ready = ready.clone();
                    async move {
                        let (state, detail) = ready.state();
                        axum::Json(serde_json::json!({
                            "ready": ready.is_ready(), "state": state, "detail": detail,
                        }))
                    }
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let ready = ready.clone();
                async move {
                    let (state, detail) = ready.state();
                    let body = if detail.is_empty() {
                        state
                    } else {
                        format!("{state}: {detail}")
                    };
                    if ready.is_ready() {
                        (StatusCode::OK, body)
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, body)
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin endpoint listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// One tonic service as the routes and service names [`serve_grpc_routes`] takes.
pub fn grpc_routes<S>(service: S) -> (tonic::service::Routes, Vec<&'static str>)
where
    S: tonic::server::NamedService
        + tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    (tonic::service::Routes::new(service), vec![S::NAME])
}

/// The gRPC health service's name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The reflection services' names.
pub const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Every service a port with these application services advertises through reflection:
/// them, health and reflection itself.
pub fn advertised_services(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .copied()
        .chain([HEALTH_SERVICE])
        .chain(REFLECTION_SERVICES)
        .map(str::to_owned)
        .collect()
}

fn reflection_builder(names: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        // Registered above, with the other version's.
        .include_reflection_service(false);
    for name in advertised_services(names) {
        builder = builder.with_service_name(name);
    }
    builder
}

/// Runs a tonic router with the standard gRPC health service (reporting each of `names` as
/// serving) and reflection (v1 and v1alpha) advertising exactly what the port serves, until
/// the token is cancelled. Every call but health and reflection must carry an internal
/// credential ([`RequireCredential`]). One service: [`grpc_routes`].
pub async fn serve_grpc_routes(
    addr: SocketAddr,
    routes: tonic::service::Routes,
    names: &[&str],
    auth: &InternalAuth,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in names {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = reflection_builder(names).build_v1()?;
    let reflection_v1alpha = reflection_builder(names).build_v1alpha()?;
    tracing::info!(%addr, services = ?names, "gRPC server listening");
    tonic::transport::Server::builder()
        // Each call's span continues the caller's trace (W3C `traceparent` in the metadata).
        .trace_fn(crate::trace_context::grpc_server_span)
        .layer(RequireCredential::new(auth.clone()))
        .add_routes(
            routes
                .add_service(health)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha),
        )
        .serve_with_shutdown(addr, async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// A gRPC channel that connects on first use (a service may start before its peers), with
/// a connect timeout and a deadline on every call.
pub fn lazy_channel(
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true)
        // Room for any status header a backend might send (services cut their messages to
        // 512 characters; the BFF cuts again): an oversized header would be a connection
        // error (GOAWAY), failing every call in flight on it.
        .http2_max_header_list_size(4 * 1024 * 1024)
        .connect_lazy())
}

/// Retries a start-up step (connecting to a dependency) with capped backoff until it succeeds
/// or shutdown is requested, so a service started before its store comes up waits for it.
pub async fn retry_startup<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut step: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) => tracing::warn!(error = %e, "{what} not ready; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shutdown while waiting for {what}"),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}
