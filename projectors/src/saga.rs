//! The checkout saga, a process manager on the projector runtime: it consumes the cart,
//! order, payment and user topics, keeps its state in the `checkouts` table (committed with
//! its checkpoint), and drives the other aggregates over gRPC:
//!
//! cart checked out → place order → reserve stock (each line) → stock reserved → authorize
//! payment → payment authorized → confirm order → capture payment.
//!
//! Compensation: no stock → cancel the order (no charge); payment declined → cancel; a
//! cancelled order releases its reservations and voids an authorization; a checkout past its
//! deadline is cancelled by [`sweep_timeouts`]. Every command carries an idempotency key
//! derived from the step, and every step is idempotent in the domain, so redelivery and
//! restarts never repeat an effect: nothing is charged twice.

use crate::runtime::{decode, Projection, ProjectionError};
use command_services::support::lazy_channel;
use domain::cart::CartEvent;
use domain::order::OrderEvent;
use domain::payment::PaymentEvent;
use domain::user::UserEvent;
use event_schemas::{topic_for, EventEnvelope};
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::{ClearCartRequest, CommandMeta};
use proto::commands::commands_client::CommandsClient;
use proto::commands::{ExecuteRequest, Meta};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

const ACTOR: &str = "service:checkout-saga";

#[derive(Debug, Clone, clap::Args)]
pub struct SagaArgs {
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
    #[arg(
        long,
        env = "CART_COMMAND_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub cart_command_url: String,
    /// A checkout not confirmed within this many seconds is cancelled and compensated.
    #[arg(long, env = "CHECKOUT_TIMEOUT_SECS", default_value_t = 60)]
    pub checkout_timeout_secs: u64,
}

#[derive(Clone)]
pub struct CheckoutSaga {
    orders: CommandsClient<Channel>,
    products: CommandsClient<Channel>,
    payments: CommandsClient<Channel>,
    carts: CartCommandsClient<Channel>,
    timeout: Duration,
}

fn channel(url: &str) -> anyhow::Result<Channel> {
    lazy_channel(url, Duration::from_secs(10))
}

/// What a step's command came back with.
enum Step {
    Done,
    /// The aggregate refused (no stock, not found, illegal transition): a business answer.
    Refused(String),
}

fn classify(r: Result<(), tonic::Status>) -> Result<Step, ProjectionError> {
    match r {
        Ok(()) => Ok(Step::Done),
        Err(s)
            if matches!(
                s.code(),
                Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument
            ) =>
        {
            Ok(Step::Refused(s.message().to_owned()))
        }
        Err(s) => Err(ProjectionError::Transient(format!(
            "{:?}: {}",
            s.code(),
            s.message()
        ))),
    }
}

impl CheckoutSaga {
    pub fn new(args: &SagaArgs) -> anyhow::Result<Self> {
        Ok(Self {
            orders: CommandsClient::new(channel(&args.order_command_url)?),
            products: CommandsClient::new(channel(&args.product_command_url)?),
            payments: CommandsClient::new(channel(&args.payment_command_url)?),
            carts: CartCommandsClient::new(channel(&args.cart_command_url)?),
            timeout: Duration::from_secs(args.checkout_timeout_secs),
        })
    }

    async fn exec(
        client: &CommandsClient<Channel>,
        stream_id: Uuid,
        command: Value,
        key: String,
        correlation_id: &str,
    ) -> Result<Step, ProjectionError> {
        let mut req = tonic::Request::new(ExecuteRequest {
            meta: Some(Meta {
                idempotency_key: key,
                actor: ACTOR.into(),
            }),
            stream_id: stream_id.to_string(),
            command_json: command.to_string(),
        });
        if let Ok(v) = correlation_id.parse() {
            req.metadata_mut().insert("x-correlation-id", v);
        }
        classify(client.clone().execute(req).await.map(|_| ()))
    }

    async fn on_event(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let corr = env.correlation_id.as_str();
        match env.stream_type.as_str() {
            "cart" => {
                let (_, event): (Uuid, CartEvent) = decode(env, "cart")?;
                if let CartEvent::CartCheckedOut(e) = event {
                    self.start(conn, env, e).await?;
                }
            }
            "order" => {
                let (order_id, event): (Uuid, OrderEvent) = decode(env, "order")?;
                self.on_order(conn, order_id, event, corr).await?;
            }
            "payment" => {
                let (_, event): (Uuid, PaymentEvent) = decode(env, "payment")?;
                self.on_payment(conn, event, corr).await?;
            }
            "user" => {
                let (user_id, event): (Uuid, UserEvent) = decode(env, "user")?;
                if let UserEvent::UserDeleted(_) = event {
                    self.delete_carts_of(conn, user_id, corr).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn start(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
        e: domain::cart::CartCheckedOut,
    ) -> Result<(), ProjectionError> {
        let order_id = e.order_id.as_uuid();
        let lines =
            serde_json::to_value(&e.lines).map_err(|x| ProjectionError::Poison(x.to_string()))?;
        let total = domain::order::total_of(
            &e.lines
                .iter()
                .map(|l| domain::order::OrderLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|x| ProjectionError::Poison(x.to_string()))?;
        let deadline = chrono::Utc::now()
            + chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::seconds(60));
        sqlx::query(
            "INSERT INTO checkouts (order_id, payment_id, customer_id, cart_id, lines, amount_minor,
                                    currency, payment_token, card_brand, card_last4, status, deadline)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'started', $11)
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(Uuid::now_v7())
        .bind(e.customer_id.as_uuid())
        .bind(Uuid::parse_str(&env.stream_id).unwrap_or_default())
        .bind(&lines)
        .bind(total.amount_minor())
        .bind(total.currency().as_str())
        .bind(&e.payment.token)
        .bind(&e.payment.brand)
        .bind(&e.payment.last4)
        .bind(deadline)
        .execute(&mut *conn)
        .await?;
        let place = json!({
            "type": "place",
            "order_id": order_id,
            "customer_id": e.customer_id,
            "cart_id": env.stream_id,
            "lines": lines,
        });
        Self::exec(
            &self.orders,
            order_id,
            place,
            format!("saga:place:{order_id}"),
            &env.correlation_id,
        )
        .await?;
        Ok(())
    }

    async fn checkout(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
    ) -> Result<Option<Checkout>, ProjectionError> {
        Ok(sqlx::query_as::<_, Checkout>(
            "SELECT order_id, payment_id, lines, amount_minor, currency, payment_token, card_brand, card_last4
             FROM checkouts WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    async fn set_status(
        conn: &mut PgConnection,
        order_id: Uuid,
        status: &str,
    ) -> Result<(), ProjectionError> {
        sqlx::query("UPDATE checkouts SET status = $2, updated_at = now() WHERE order_id = $1")
            .bind(order_id)
            .bind(status)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn cancel(
        &self,
        order_id: Uuid,
        reason: &str,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let cmd = json!({ "type": "cancel", "reason": reason, "by": "system" });
        Self::exec(
            &self.orders,
            order_id,
            cmd,
            format!("saga:cancel:{order_id}"),
            corr,
        )
        .await?;
        Ok(())
    }

    async fn on_order(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
        event: OrderEvent,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let Some(c) = self.checkout(conn, order_id).await? else {
            // Not a checkout this saga started (or its state was lost): nothing to drive.
            return Ok(());
        };
        let lines: Vec<domain::cart::CheckedOutLine> = serde_json::from_value(c.lines.clone())
            .map_err(|e| ProjectionError::Poison(e.to_string()))?;
        match event {
            OrderEvent::OrderPlaced(_) => {
                for l in &lines {
                    let product = l.product_id.as_uuid();
                    let cmd = json!({ "type": "reserve_stock", "order_id": order_id, "quantity": l.quantity });
                    let key = format!("saga:reserve:{order_id}:{product}");
                    if let Step::Refused(why) =
                        Self::exec(&self.products, product, cmd, key, corr).await?
                    {
                        tracing::info!(%order_id, %product, %why, "stock unavailable; cancelling");
                        return self
                            .cancel(order_id, &format!("out of stock: {why}"), corr)
                            .await;
                    }
                }
                let cmd = json!({ "type": "mark_stock_reserved" });
                Self::exec(
                    &self.orders,
                    order_id,
                    cmd,
                    format!("saga:reserved:{order_id}"),
                    corr,
                )
                .await?;
                Self::set_status(conn, order_id, "stock_reserved").await?;
            }
            OrderEvent::OrderStockReserved(_) => {
                let cmd = json!({
                    "type": "authorize",
                    "order_id": order_id,
                    "amount": { "amount_minor": c.amount_minor, "currency": c.currency },
                    "token": c.payment_token,
                    "brand": c.card_brand,
                    "last4": c.card_last4,
                });
                let key = format!("saga:authorize:{order_id}");
                if let Step::Refused(why) =
                    Self::exec(&self.payments, c.payment_id, cmd, key, corr).await?
                {
                    return self
                        .cancel(order_id, &format!("payment failed: {why}"), corr)
                        .await;
                }
            }
            OrderEvent::OrderPaymentAuthorized(_) => {
                let cmd = json!({ "type": "confirm" });
                Self::exec(
                    &self.orders,
                    order_id,
                    cmd,
                    format!("saga:confirm:{order_id}"),
                    corr,
                )
                .await?;
                Self::set_status(conn, order_id, "payment_authorized").await?;
            }
            OrderEvent::OrderConfirmed(_) => {
                let cmd = json!({ "type": "capture" });
                Self::exec(
                    &self.payments,
                    c.payment_id,
                    cmd,
                    format!("saga:capture:{order_id}"),
                    corr,
                )
                .await?;
                Self::set_status(conn, order_id, "confirmed").await?;
                metrics::counter!("saga_outcomes_total", "outcome" => "confirmed").increment(1);
            }
            OrderEvent::OrderCancelled(_) => {
                for l in &lines {
                    let product = l.product_id.as_uuid();
                    let cmd = json!({ "type": "release_reservation", "order_id": order_id });
                    Self::exec(
                        &self.products,
                        product,
                        cmd,
                        format!("saga:release:{order_id}:{product}"),
                        corr,
                    )
                    .await?;
                }
                // Voiding a payment that was never authorized is refused: nothing to undo.
                let cmd = json!({ "type": "void" });
                Self::exec(
                    &self.payments,
                    c.payment_id,
                    cmd,
                    format!("saga:void:{order_id}"),
                    corr,
                )
                .await?;
                Self::set_status(conn, order_id, "cancelled").await?;
                metrics::counter!("saga_outcomes_total", "outcome" => "cancelled").increment(1);
            }
            OrderEvent::OrderShipped(_) => {
                for l in &lines {
                    let product = l.product_id.as_uuid();
                    let cmd = json!({ "type": "commit_reservation", "order_id": order_id });
                    Self::exec(
                        &self.products,
                        product,
                        cmd,
                        format!("saga:commit:{order_id}:{product}"),
                        corr,
                    )
                    .await?;
                }
            }
            OrderEvent::OrderRefunded(e) => {
                let cmd = json!({ "type": "refund", "amount": e.amount });
                let key = format!("saga:refund:{order_id}:{}", e.total_refunded.amount_minor());
                Self::exec(&self.payments, c.payment_id, cmd, key, corr).await?;
            }
            OrderEvent::OrderDelivered(_) => {}
        }
        Ok(())
    }

    async fn on_payment(
        &self,
        conn: &mut PgConnection,
        event: PaymentEvent,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        match event {
            PaymentEvent::PaymentAuthorized(e) => {
                let order_id = e.order_id.as_uuid();
                if self.checkout(conn, order_id).await?.is_none() {
                    return Ok(());
                }
                let cmd = json!({ "type": "mark_payment_authorized", "payment_id": e.payment_id });
                if let Step::Refused(why) = Self::exec(
                    &self.orders,
                    order_id,
                    cmd,
                    format!("saga:authorized:{order_id}"),
                    corr,
                )
                .await?
                {
                    // The order moved on without us (cancelled, timed out): undo the hold.
                    tracing::info!(%order_id, %why, "order no longer payable; voiding");
                    let void = json!({ "type": "void" });
                    Self::exec(
                        &self.payments,
                        e.payment_id.as_uuid(),
                        void,
                        format!("saga:void:{order_id}"),
                        corr,
                    )
                    .await?;
                }
            }
            PaymentEvent::PaymentDeclined(e) => {
                let order_id = e.order_id.as_uuid();
                if self.checkout(conn, order_id).await?.is_some() {
                    self.cancel(order_id, "payment declined", corr).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn delete_carts_of(
        &self,
        conn: &mut PgConnection,
        user_id: Uuid,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let carts: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM carts WHERE customer_id = $1")
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
        for cart in carts {
            let mut req = tonic::Request::new(ClearCartRequest {
                meta: Some(CommandMeta {
                    idempotency_key: format!("saga:delete-cart:{cart}"),
                    actor: ACTOR.into(),
                }),
                cart_id: cart.to_string(),
            });
            if let Ok(v) = corr.parse() {
                req.metadata_mut().insert("x-correlation-id", v);
            }
            classify(self.carts.clone().delete_cart(req).await.map(|_| ()))?;
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Checkout {
    #[allow(dead_code)]
    order_id: Uuid,
    payment_id: Uuid,
    lines: Value,
    amount_minor: i64,
    currency: String,
    payment_token: String,
    card_brand: String,
    card_last4: String,
}

impl Projection for CheckoutSaga {
    fn name(&self) -> &'static str {
        "checkout-saga"
    }

    fn topics(&self) -> Vec<String> {
        ["cart", "order", "payment", "user"]
            .iter()
            .map(|t| topic_for(t))
            .collect()
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        env: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a {
        self.on_event(conn, env)
    }
}

/// Cancels checkouts past their deadline, once a second, until shutdown. The cancellation
/// is an ordinary `OrderCancelled`, which the saga then compensates.
pub async fn sweep_timeouts(
    saga: CheckoutSaga,
    pool: PgPool,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let due: Result<Vec<Uuid>, _> = sqlx::query_scalar(
            "SELECT order_id FROM checkouts WHERE status NOT IN ('confirmed', 'cancelled') AND deadline < now() LIMIT 100",
        )
        .fetch_all(&pool)
        .await;
        for order_id in due.unwrap_or_default() {
            tracing::warn!(%order_id, "checkout timed out; cancelling");
            metrics::counter!("saga_timeouts_total").increment(1);
            if let Err(e) = saga.cancel(order_id, "checkout timed out", "").await {
                tracing::warn!(%order_id, error = %e, "timeout cancel failed; will retry");
            }
        }
    }
}
