//! Entry point of the `query-service` binary: `query-service --service cart`.

use crate::cart::CartQueryService;
use crate::shop::ShopQueryService;
use crate::watch::VersionWatch;
use clap::Parser;
use platform::host;
use platform::internal_auth::InternalAuthArgs;
use platform::support::{grpc_routes, serve_grpc_routes};
use read_model::PgArgs;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ServiceKind {
    Cart,
    /// Products, orders and payments.
    Shop,
}

#[derive(Debug, Parser)]
#[command(name = "query-service", version)]
pub struct QueryServiceArgs {
    #[arg(long, env = "QUERY_SERVICE", value_enum)]
    pub service: ServiceKind,
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50061")]
    pub grpc_addr: SocketAddr,
    /// Serves `/healthz`.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9202")]
    pub admin_addr: SocketAddr,
    /// Longest wait of a read-your-writes query (`atLeastVersion`), in milliseconds.
    #[arg(long, env = "READ_WAIT_MS", default_value_t = 2000)]
    pub read_wait_ms: u64,
    #[command(flatten)]
    pub pg: PgArgs,
    /// The secret of service-to-service credentials.
    #[command(flatten)]
    pub internal: InternalAuthArgs,
}

pub async fn query_service_main() -> anyhow::Result<()> {
    let args = QueryServiceArgs::parse();
    let auth = args.internal.auth()?;
    host::serve(args.admin_addr, |service| async move {
        let pool = service
            .start("PostgreSQL", || args.pg.connect_migrated(8))
            .await?;
        let watch = VersionWatch::start(
            pool.clone(),
            &["cart", "order"],
            std::time::Duration::from_millis(args.read_wait_ms),
        );
        service.ready.set_ready(true);
        let (routes, names) = match args.service {
            ServiceKind::Shop => grpc_routes(ShopQueryService::new(pool.clone(), watch)),
            ServiceKind::Cart => grpc_routes(CartQueryService::new(pool.clone(), watch)),
        };
        serve_grpc_routes(args.grpc_addr, routes, &names, &auth, service.shutdown).await
    })
    .await
}
