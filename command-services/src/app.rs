//! Entry points of the write side's binaries: argument parsing and wiring, so each `main` is
//! one line. `command-service --aggregate <name>` serves one aggregate's gRPC commands;
//! `relay` publishes the store to Kafka.

use crate::gateway::SimulatedGateway;
use crate::generic_service::GenericCommands;
use crate::handler::CommandHandler;
use crate::policies::{OrderPolicy, ProductPolicy};
use crate::relay::{Relay, RelayConfig};
use crate::user_service::UserService;
use clap::Parser;
use domain::order::Order;
use domain::payment::Payment;
use domain::product::Product;
use domain::user::User;
use event_store::MongoArgs;
use platform::auth::{Jwt, JwtArgs};
use platform::host::{self, Service};
use platform::internal_auth::{Actor, InternalAuthArgs, CART_SERVICE};
use platform::kafka::KafkaArgs;
use platform::support::{grpc_routes, lazy_channel, serve_grpc_routes};
use proto::queries::queries_client::QueriesClient;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AggregateKind {
    Cart,
    Product,
    Order,
    User,
    Payment,
}

/// Serves one aggregate's command API over gRPC.
#[derive(Debug, Parser)]
#[command(name = "command-service", version)]
pub struct CommandServiceArgs {
    /// Which aggregate this instance serves.
    #[arg(long, env = "AGGREGATE", value_enum)]
    pub aggregate: AggregateKind,
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Serves `/healthz`.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9201")]
    pub admin_addr: SocketAddr,
    /// The payment service's card tokenization endpoint (HTTP, `POST /pay/v1/tokens`).
    #[arg(long, env = "TOKENS_ADDR", default_value = "127.0.0.1:8090")]
    pub tokens_addr: SocketAddr,
    /// Attempts per command when concurrent writers collide (reload, decide, append).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 20)]
    pub max_attempts: u32,
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// The secret of service-to-service credentials.
    #[command(flatten)]
    pub internal: InternalAuthArgs,
    /// The user service's JWT settings.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: u64,
    /// The catalogue's query service (cart service: price snapshot at checkout).
    #[arg(long, env = "SHOP_QUERY_URL")]
    pub shop_query_url: Option<String>,
    /// The first admin account, created at start-up when missing (user service only).
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

impl CommandServiceArgs {
    fn jwt(&self) -> Option<JwtArgs> {
        self.jwt_secret.clone().map(|jwt_secret| JwtArgs {
            jwt_secret,
            access_token_ttl: self.access_token_ttl,
        })
    }
}

pub async fn command_service_main() -> anyhow::Result<()> {
    let args = CommandServiceArgs::parse();
    // Every upcaster chain must be complete before an event is read.
    event_schemas::upcast::check().map_err(anyhow::Error::msg)?;
    host::serve(args.admin_addr, |service| serve_aggregate(args, service)).await
}

/// Connects to the store and serves the aggregate's gRPC API until shutdown.
async fn serve_aggregate(args: CommandServiceArgs, service: Service) -> anyhow::Result<()> {
    let auth = args.internal.auth()?;
    let store = service
        .start("event store", || args.mongo.connect())
        .await?;
    let Service { shutdown, ready } = service;
    ready.set_ready(true);
    // The payment service also serves card tokenization over HTTP, stopped with it.
    let mut tokens = None;
    let (routes, names) = match args.aggregate {
        AggregateKind::Cart => {
            let handler = Arc::new(CommandHandler::new(store, args.max_attempts));
            let shop = match &args.shop_query_url {
                Some(url) => Some(QueriesClient::with_interceptor(
                    lazy_channel(url, std::time::Duration::from_secs(5))?,
                    auth.credential(Actor::Service(CART_SERVICE.into())),
                )),
                None => None,
            };
            let (routes, names) = crate::cart_service::routes(handler, shop);
            (routes, names.to_vec())
        }
        AggregateKind::Product => {
            let handler = Arc::new(CommandHandler::<Product>::new(store, args.max_attempts));
            grpc_routes(GenericCommands::with(
                handler,
                ProductPolicy,
                crate::reviews::VerifyPurchase,
            ))
        }
        AggregateKind::Payment => {
            let db = store.database().clone();
            let handler = Arc::new(CommandHandler::<Payment>::new(store, args.max_attempts));
            let gateway: Arc<dyn crate::gateway::PaymentGateway> = Arc::new(SimulatedGateway);
            tokens = Some(tokio::spawn(crate::tokens::serve_tokens(
                args.tokens_addr,
                gateway.clone(),
                db,
                shutdown.clone(),
            )));
            let (routes, names) = crate::payment_service::routes(handler, gateway);
            (routes, names.to_vec())
        }
        AggregateKind::User => {
            let jwt = Jwt::new(
                &args
                    .jwt()
                    .ok_or_else(|| anyhow::anyhow!("the user service needs JWT_SECRET"))?,
            )?;
            let handler = Arc::new(CommandHandler::<User>::new(store, args.max_attempts));
            let service = UserService::new(handler, jwt);
            if let (Some(email), Some(password)) = (&args.admin_email, &args.admin_password) {
                service.bootstrap_admin(email, password).await?;
                tracing::info!(%email, "admin account ready");
            }
            grpc_routes(service.into_server())
        }
        AggregateKind::Order => {
            let handler = Arc::new(CommandHandler::<Order>::new(store, args.max_attempts));
            grpc_routes(GenericCommands::new(handler, OrderPolicy))
        }
    };
    let served = serve_grpc_routes(args.grpc_addr, routes, &names, &auth, shutdown.clone()).await;
    if let Some(tokens) = tokens {
        shutdown.cancel();
        tokens.await??;
    }
    served
}

/// Publishes every committed event of the store to Kafka.
#[derive(Debug, Parser)]
#[command(name = "relay", version)]
pub struct RelayArgs {
    /// Serves `/healthz`.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:9203")]
    pub admin_addr: SocketAddr,
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub async fn relay_main() -> anyhow::Result<()> {
    let args = RelayArgs::parse();
    host::serve(args.admin_addr, |service| async move {
        let store = service
            .start("event store", || args.mongo.connect())
            .await?;
        let config = RelayConfig {
            batch_size: args.batch_size.max(1),
            ..RelayConfig::default()
        };
        let relay = Relay::new(store, args.kafka, config, service.ready)?;
        relay.run(service.shutdown).await
    })
    .await
}
