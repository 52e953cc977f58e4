//! gRPC clients of the services behind the BFF. Channels connect lazily (the BFF starts
//! before its backends) and every call has a deadline.

use command_services::support::lazy_channel as channel;
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::cart_queries_client::CartQueriesClient;
use proto::commands::commands_client::CommandsClient;
use proto::payment::payment_methods_client::PaymentMethodsClient;
use proto::queries::queries_client::QueriesClient;
use proto::user::users_client::UsersClient;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    #[arg(
        long,
        env = "CART_COMMAND_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub cart_command_url: String,
    #[arg(long, env = "CART_QUERY_URL", default_value = "http://127.0.0.1:50061")]
    pub cart_query_url: String,
    #[arg(
        long,
        env = "USER_COMMAND_URL",
        default_value = "http://127.0.0.1:50055"
    )]
    pub user_command_url: String,
    #[arg(
        long,
        env = "ORDER_COMMAND_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub order_command_url: String,
    #[arg(
        long,
        env = "PRODUCT_COMMAND_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub product_command_url: String,
    #[arg(
        long,
        env = "PAYMENT_COMMAND_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub payment_command_url: String,
    #[arg(long, env = "SHOP_QUERY_URL", default_value = "http://127.0.0.1:50062")]
    pub shop_query_url: String,
    /// Deadline of each backend call, in milliseconds.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 5000)]
    pub backend_timeout_ms: u64,
}

/// Every backend client. Cheap to clone.
#[derive(Clone)]
pub struct Backends {
    pub cart_commands: CartCommandsClient<Channel>,
    pub cart_queries: CartQueriesClient<Channel>,
    pub users: UsersClient<Channel>,
    pub orders: CommandsClient<Channel>,
    pub products: CommandsClient<Channel>,
    pub payments: CommandsClient<Channel>,
    pub payment_methods: PaymentMethodsClient<Channel>,
    pub shop: QueriesClient<Channel>,
}

impl Backends {
    pub fn new(args: &BackendArgs) -> anyhow::Result<Self> {
        let t = Duration::from_millis(args.backend_timeout_ms);
        Ok(Self {
            cart_commands: CartCommandsClient::new(channel(&args.cart_command_url, t)?),
            cart_queries: CartQueriesClient::new(channel(&args.cart_query_url, t)?),
            users: UsersClient::new(channel(&args.user_command_url, t)?),
            orders: CommandsClient::new(channel(&args.order_command_url, t)?),
            products: CommandsClient::new(channel(&args.product_command_url, t)?),
            payments: CommandsClient::new(channel(&args.payment_command_url, t)?),
            payment_methods: PaymentMethodsClient::new(channel(&args.payment_command_url, t)?),
            shop: QueriesClient::new(channel(&args.shop_query_url, t)?),
        })
    }
}
