//! `bff`: the GraphQL API (run it behind Envoy).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = bff::server::bff_main().await;
    platform::support::shutdown_tracing();
    result
}
