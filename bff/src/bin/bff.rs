//! `bff`: the GraphQL API (run it behind Envoy).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bff::server::bff_main().await
}
