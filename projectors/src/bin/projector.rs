//! `projector --projection cart`: builds a PostgreSQL read model from Kafka.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    projectors::app::projector_main().await
}
