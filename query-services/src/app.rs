//! Entry point of the `query-service` binary: `query-service --service cart`.

use crate::cart::CartQueryService;
use crate::shop::ShopQueryService;
use crate::watch::VersionWatch;
use clap::Parser;
use platform::internal_auth::InternalAuthArgs;
use platform::support::{
    init_tracing, retry_startup, serve_admin, serve_grpc, shutdown_token, Readiness,
};
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
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce"
    )]
    pub database_url: String,
    /// The secret of service-to-service credentials.
    #[command(flatten)]
    pub internal: InternalAuthArgs,
}

pub async fn query_service_main() -> anyhow::Result<()> {
    init_tracing();
    let args = QueryServiceArgs::parse();
    let auth = args.internal.auth()?;
    let shutdown = shutdown_token();
    let ready = Readiness::default();
    let admin = tokio::spawn(serve_admin(
        args.admin_addr,
        ready.clone(),
        shutdown.clone(),
    ));
    let pool = retry_startup("PostgreSQL", &shutdown, || async {
        let pool = read_model::connect_pg(&args.database_url, 8).await?;
        read_model::migrate(&pool).await?;
        Ok(pool)
    })
    .await?;
    let watch = VersionWatch::start(
        pool.clone(),
        &["cart", "order"],
        std::time::Duration::from_millis(args.read_wait_ms),
    );
    ready.set_ready(true);
    let served = match args.service {
        ServiceKind::Shop => {
            serve_grpc(
                args.grpc_addr,
                ShopQueryService::new(pool.clone(), watch),
                &auth,
                shutdown.clone(),
            )
            .await
        }
        ServiceKind::Cart => {
            serve_grpc(
                args.grpc_addr,
                CartQueryService::new(pool.clone(), watch),
                &auth,
                shutdown.clone(),
            )
            .await
        }
    };
    shutdown.cancel();
    admin.await??;
    served
}
