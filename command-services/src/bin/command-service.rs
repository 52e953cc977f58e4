//! `command-service --aggregate cart`: one aggregate's gRPC command API.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    command_services::app::command_service_main().await
}
