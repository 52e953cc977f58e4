//! `projector --projection cart`: builds a PostgreSQL read model from Kafka.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = projectors::app::projector_main().await;
    platform::support::shutdown_tracing();
    result
}
