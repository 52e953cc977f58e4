//! Entry point of the `projector` binary: `projector --projection cart` migrates the read
//! models and runs the named projection until SIGTERM.

use crate::cart::CartProjection;
use crate::catalogue::ProductProjection;
use crate::mailer::{run_configured, MailArgs};
use crate::notifications::{NotificationProjection, TableNotifier};
use crate::orders::OrderProjection;
use crate::runtime::{Projection, ProjectorRuntime, RuntimeConfig};
use crate::saga::{sweep_timeouts, CheckoutSaga, SagaArgs};
use clap::Parser;
use event_store::StoreLocation;
use platform::host::{self, Service};
use platform::kafka::KafkaArgs;
use platform::support::Readiness;
use read_model::PgArgs;
use sqlx::PgPool;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProjectionKind {
    Cart,
    Product,
    Order,
    /// The checkout process manager (not a read model, same runtime).
    CheckoutSaga,
    /// Customer notifications from order and account events, written to the `notifications`
    /// table and mailed from there by the SMTP sender ([`crate::mailer`]).
    Notification,
}

/// Runs one projection: a read model (or the checkout saga) fed from Kafka.
#[derive(Debug, Parser)]
#[command(name = "projector", version)]
pub struct ProjectorArgs {
    #[arg(long, env = "PROJECTION", value_enum)]
    pub projection: ProjectionKind,
    /// Serves `/healthz`.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9204")]
    pub admin_addr: SocketAddr,
    #[command(flatten)]
    pub pg: PgArgs,
    #[arg(long, env = "PROJECTOR_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    #[command(flatten)]
    pub store: StoreLocation,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub saga: SagaArgs,
    /// The SMTP sender of the notification projection.
    #[command(flatten)]
    pub mail: MailArgs,
}

pub async fn projector_main() -> anyhow::Result<()> {
    let args = ProjectorArgs::parse();
    // Every upcaster chain must be complete before an event is read.
    event_schemas::upcast::check().map_err(anyhow::Error::msg)?;
    host::serve(args.admin_addr, |service| run_projection(args, service)).await
}

/// Migrates the read models (a small pool) and runs the projection until shutdown.
async fn run_projection(args: ProjectorArgs, service: Service) -> anyhow::Result<()> {
    let pool = service
        .start("PostgreSQL", || args.pg.connect_migrated(4))
        .await?;
    let config = RuntimeConfig {
        batch_size: args.batch_size.max(1),
        ..RuntimeConfig::default()
    };
    let Service {
        shutdown: token,
        ready,
    } = service;
    let runtimes = Runtimes {
        args: &args,
        pool: pool.clone(),
        config,
        ready,
    };
    match args.projection {
        ProjectionKind::Cart => runtimes.of(CartProjection).run(token).await,
        ProjectionKind::Product => runtimes.of(ProductProjection).run(token).await,
        ProjectionKind::Order => runtimes.of(OrderProjection).run(token).await,
        ProjectionKind::CheckoutSaga => {
            let saga = CheckoutSaga::new(&args.saga)?;
            let runtime = runtimes.of(saga.clone());
            let sweeper = tokio::spawn(sweep_timeouts(saga, pool, runtime.health(), token.clone()));
            let r = runtime.run(token).await;
            sweeper.abort();
            r
        }
        ProjectionKind::Notification => {
            let projection =
                NotificationProjection::new(TableNotifier).with_web_url(&args.mail.public_web_url);
            let sender = tokio::spawn({
                let (mail, token) = (args.mail.clone(), token.clone());
                async move { run_configured(&mail, pool, token).await }
            });
            let r = runtimes.of(projection).run(token.clone()).await;
            token.cancel();
            if let Err(e) = sender.await {
                tracing::error!(error = %e, "the mail sender panicked");
            }
            r
        }
    }
}

/// What every projection's runtime is made with.
struct Runtimes<'a> {
    args: &'a ProjectorArgs,
    pool: PgPool,
    config: RuntimeConfig,
    ready: Readiness,
}

impl Runtimes<'_> {
    /// The runtime of `projection`, checked against the configured event store.
    fn of<P: Projection>(&self, projection: P) -> ProjectorRuntime<P> {
        ProjectorRuntime::new(
            projection,
            self.pool.clone(),
            self.args.kafka.clone(),
            self.config.clone(),
            self.ready.clone(),
        )
        .with_store(&self.args.store.mongodb_uri, &self.args.store.mongodb_db)
    }
}
