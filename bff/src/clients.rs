//! gRPC clients of the services behind the BFF. Channels connect lazily (the BFF starts
//! before its backends) and every call has a deadline.
//!
//! Every call carries an internal credential naming the person the BFF acts for: the
//! schema's [`Backends`] act as `anonymous`, and each request (or websocket connection) gets
//! its own, from [`Backends::acting_for`], with the caller of its verified access token. The
//! channels are shared; only the credential differs.

use crate::auth::Caller;
use platform::internal_auth::{Actor, Credential, InternalAuthArgs};
use platform::support::lazy_channel as channel;
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::cart_queries_client::CartQueriesClient;
use proto::commands::commands_client::CommandsClient;
use proto::payment::payment_methods_client::PaymentMethodsClient;
use proto::queries::queries_client::QueriesClient;
use proto::user::users_client::UsersClient;
use std::time::Duration;
use tonic::transport::Channel;

/// A backend channel whose calls carry the credential of the person the BFF acts for.
pub use platform::internal_auth::AuthedChannel;

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
    /// The secret of the credentials the BFF passes to the services.
    #[command(flatten)]
    pub internal: InternalAuthArgs,
}

/// The plain channels, shared by every request's clients.
#[derive(Clone)]
struct Channels {
    cart_commands: Channel,
    cart_queries: Channel,
    users: Channel,
    orders: Channel,
    products: Channel,
    payments: Channel,
    shop: Channel,
}

/// Every backend client, acting for one caller. Cheap to clone.
#[derive(Clone)]
pub struct Backends {
    pub cart_commands: CartCommandsClient<AuthedChannel>,
    pub cart_queries: CartQueriesClient<AuthedChannel>,
    pub users: UsersClient<AuthedChannel>,
    pub orders: CommandsClient<AuthedChannel>,
    pub products: CommandsClient<AuthedChannel>,
    pub payments: CommandsClient<AuthedChannel>,
    pub payment_methods: PaymentMethodsClient<AuthedChannel>,
    pub shop: QueriesClient<AuthedChannel>,
    channels: Channels,
    credential: Credential,
}

impl Backends {
    /// The clients, acting as `anonymous` until [`Backends::acting_for`] a caller.
    pub fn new(args: &BackendArgs) -> anyhow::Result<Self> {
        let t = Duration::from_millis(args.backend_timeout_ms);
        let channels = Channels {
            cart_commands: channel(&args.cart_command_url, t)?,
            cart_queries: channel(&args.cart_query_url, t)?,
            users: channel(&args.user_command_url, t)?,
            orders: channel(&args.order_command_url, t)?,
            products: channel(&args.product_command_url, t)?,
            payments: channel(&args.payment_command_url, t)?,
            shop: channel(&args.shop_query_url, t)?,
        };
        let credential = args.internal.auth()?.credential(Actor::Anonymous);
        Ok(Self::with(channels, credential))
    }

    fn with(channels: Channels, credential: Credential) -> Self {
        let c = || credential.clone();
        Self {
            cart_commands: CartCommandsClient::with_interceptor(
                channels.cart_commands.clone(),
                c(),
            ),
            cart_queries: CartQueriesClient::with_interceptor(channels.cart_queries.clone(), c()),
            users: UsersClient::with_interceptor(channels.users.clone(), c()),
            orders: CommandsClient::with_interceptor(channels.orders.clone(), c()),
            products: CommandsClient::with_interceptor(channels.products.clone(), c()),
            payments: CommandsClient::with_interceptor(channels.payments.clone(), c()),
            payment_methods: PaymentMethodsClient::with_interceptor(channels.payments.clone(), c()),
            shop: QueriesClient::with_interceptor(channels.shop.clone(), c()),
            channels,
            credential,
        }
    }

    /// The same channels, with credentials for `caller`: a signed-in customer or admin acts
    /// as themselves; anyone else (no token, or one that failed verification, which the
    /// resolvers refuse wherever a user is needed) as `anonymous`.
    pub fn acting_for(&self, caller: &Caller) -> Self {
        match caller {
            Caller::User(claims) => self.acting_for_user(&claims.sub, &claims.role),
            Caller::Anonymous | Caller::Invalid => self.acting_as(Actor::Anonymous),
        }
    }

    /// The same channels, acting for a user the user service has just authenticated (at
    /// log-in, before the request carries their token): `role` as in the access token.
    pub fn acting_for_user(&self, user_id: &str, role: &str) -> Self {
        let actor = match domain::values::UserId::parse(user_id) {
            Ok(id) if role == "admin" => Actor::Admin(id),
            Ok(id) => Actor::Customer(id),
            Err(_) => Actor::Anonymous,
        };
        self.acting_as(actor)
    }

    fn acting_as(&self, actor: Actor) -> Self {
        Self::with(self.channels.clone(), self.credential.acting_as(actor))
    }

    /// Whom these clients act for.
    pub fn actor(&self) -> &Actor {
        self.credential.actor()
    }
}
