//! `query-service --service cart`: serves a read model over gRPC.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = query_services::app::query_service_main().await;
    platform::support::shutdown_tracing();
    result
}
