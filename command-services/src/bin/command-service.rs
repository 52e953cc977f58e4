//! `command-service --aggregate cart`: one aggregate's gRPC command API.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = command_services::app::command_service_main().await;
    platform::support::shutdown_tracing();
    result
}
