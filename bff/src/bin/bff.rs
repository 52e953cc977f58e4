//! `bff`: the GraphQL API (run it behind Envoy).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = bff::server::bff_main().await;
    command_services::support::shutdown_tracing();
    result
}
