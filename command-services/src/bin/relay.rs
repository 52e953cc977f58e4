//! `relay`: publishes every committed event from the MongoDB store to Kafka.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = command_services::app::relay_main().await;
    platform::support::shutdown_tracing();
    result
}
