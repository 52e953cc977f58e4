//! The checkout saga, a process manager on the projector runtime: it consumes the cart,
//! order, payment and user topics, keeps its state in the `checkouts` table (committed with
//! its checkpoint), and drives the other aggregates over gRPC:
//!
//! cart checked out → place order → reserve stock (each line) → stock reserved → authorize
//! payment → payment authorized → confirm order → capture payment.
//!
//! Compensation: every checkout the saga cannot finish ends visibly compensated. No stock,
//! a declined card or a deadline passed → the order is cancelled with a reason; a cancelled
//! order releases its reservations, voids an authorization, and (when the system cancelled
//! it) reopens the cart with its lines for another try; a cancelled order that was paid is
//! refunded in full (the order's own `OrderRefunded`, which the saga turns into the payment's
//! refund). A checkout that cannot become an order at all reopens its cart. The deadline is
//! enforced by [`sweep_timeouts`] with the order's `time_out` command, which the aggregate
//! refuses once the order is confirmed: no timeout cancels a paid order.
//!
//! A crashed or stuck writer never blocks other checkouts: an event whose step fails
//! transiently is parked (`saga_parked`, committed with the checkpoint) and retried with
//! backoff by [`sweep_timeouts`]' loop, and the later events of the same checkout wait behind
//! it, in order, while every other checkout goes on. Each event runs in a savepoint, so a
//! parked one leaves no half-written state. Every command carries an idempotency key derived
//! from the step, every step is idempotent in the domain, and the payment service asks the
//! gateway with keys of its own, so a repeated step (a retry, a redelivery, a batch rolled
//! back after its calls were made) never repeats an effect: nothing is charged twice.

use crate::runtime::{decode, Projection, ProjectionError};
use domain::cart::CartEvent;
use domain::order::{CancelledBy, OrderCommand, OrderEvent, OrderLine};
use domain::payment::{DeclineReason, PaymentEvent, PaymentRequest};
use domain::product::ProductCommand;
use domain::user::UserEvent;
use domain::values::{
    CancelReason, CardBrand, CardLast4, CartId, Currency, Money, OrderId, PaymentToken,
};
use event_schemas::{topic_for, EventEnvelope};
use platform::internal_auth::{Actor, AuthedChannel, InternalAuthArgs, CHECKOUT_SAGA};
use platform::support::lazy_channel;
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::{ClearCartRequest, CommandMeta, ReopenCheckoutRequest};
use proto::commands::commands_client::CommandsClient;
use proto::commands::{ExecuteRequest, Meta};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

/// The longest one command may take; a slower one is retried later (the event is parked).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many checkouts' parked events are retried per round.
const RETRY_KEYS_PER_ROUND: i64 = 50;

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
    /// The secret of the saga's service credential (`service:checkout-saga`).
    #[command(flatten)]
    pub internal: InternalAuthArgs,
}

#[derive(Clone)]
pub struct CheckoutSaga {
    orders: CommandsClient<AuthedChannel>,
    products: CommandsClient<AuthedChannel>,
    payments: CommandsClient<AuthedChannel>,
    carts: CartCommandsClient<AuthedChannel>,
    timeout: Duration,
}

fn channel(url: &str) -> anyhow::Result<Channel> {
    lazy_channel(url, Duration::from_secs(10))
}

/// What a step's command came back with.
enum Step {
    Done,
    /// The aggregate refused (no stock, not found, illegal transition): a business answer.
    Refused(Code, String),
}

fn classify(r: Result<(), tonic::Status>) -> Result<Step, ProjectionError> {
    match r {
        Ok(()) => Ok(Step::Done),
        Err(s)
            if matches!(
                s.code(),
                Code::FailedPrecondition
                    | Code::NotFound
                    | Code::InvalidArgument
                    | Code::AlreadyExists
                    | Code::PermissionDenied
            ) =>
        {
            Ok(Step::Refused(s.code(), s.message().to_owned()))
        }
        // Conflict (ABORTED), UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL...: try again later.
        Err(s) => Err(ProjectionError::Transient(format!(
            "{:?}: {}",
            s.code(),
            s.message()
        ))),
    }
}

/// The checkout (or user) an event belongs to: one key's events are handled in order, and a
/// parked one holds back only the events of its key. `None` for events the saga ignores.
fn saga_key(env: &EventEnvelope) -> Option<String> {
    let order_of = || {
        env.data
            .get("order_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (env.stream_type.as_str(), env.event_type.as_str()) {
        ("cart", "CartCheckedOut") => order_of(),
        ("order", _) => Some(env.stream_id.clone()),
        ("payment", "PaymentAuthorized" | "PaymentDeclined") => order_of(),
        ("user", "UserDeleted") => Some(format!("user:{}", env.stream_id)),
        _ => None,
    }
}

/// The wait before the next try of a parked event: 250 ms doubling, at most 5 s.
fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 5) as u32;
    Duration::from_millis(250 * 2u64.pow(exp)).min(Duration::from_secs(5))
}

impl CheckoutSaga {
    pub fn new(args: &SagaArgs) -> anyhow::Result<Self> {
        // Every command the saga sends carries its own service identity.
        let me = args
            .internal
            .auth()?
            .credential(Actor::Service(CHECKOUT_SAGA.into()));
        Ok(Self {
            orders: CommandsClient::with_interceptor(channel(&args.order_command_url)?, me.clone()),
            products: CommandsClient::with_interceptor(
                channel(&args.product_command_url)?,
                me.clone(),
            ),
            payments: CommandsClient::with_interceptor(
                channel(&args.payment_command_url)?,
                me.clone(),
            ),
            carts: CartCommandsClient::with_interceptor(channel(&args.cart_command_url)?, me),
            timeout: Duration::from_secs(args.checkout_timeout_secs),
        })
    }

    fn request<T>(message: T, correlation_id: &str) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(CALL_TIMEOUT);
        if let Ok(v) = correlation_id.parse() {
            req.metadata_mut().insert("x-correlation-id", v);
        }
        req
    }

    async fn exec(
        client: &CommandsClient<AuthedChannel>,
        stream_id: Uuid,
        command: impl Serialize,
        key: String,
        correlation_id: &str,
    ) -> Result<Step, ProjectionError> {
        let command_json =
            serde_json::to_string(&command).map_err(|e| ProjectionError::Poison(e.to_string()))?;
        let req = Self::request(
            ExecuteRequest {
                meta: Some(Meta {
                    idempotency_key: key,
                }),
                stream_id: stream_id.to_string(),
                command_json,
            },
            correlation_id,
        );
        classify(client.clone().execute(req).await.map(|_| ()))
    }

    /// The checkout into `order_id` failed: its cart is open again, with its lines.
    async fn reopen_cart(
        &self,
        cart_id: Uuid,
        order_id: Uuid,
        reason: &str,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let req = Self::request(
            ReopenCheckoutRequest {
                meta: Some(CommandMeta {
                    idempotency_key: format!("saga:reopen:{order_id}"),
                }),
                cart_id: cart_id.to_string(),
                order_id: order_id.to_string(),
                reason: reason.to_owned(),
            },
            corr,
        );
        if let Step::Refused(code, why) =
            classify(self.carts.clone().reopen_checkout(req).await.map(|_| ()))?
        {
            // A deleted cart (its owner left) has nothing to reopen.
            tracing::info!(%cart_id, %order_id, ?code, %why, "cart not reopened");
        }
        Ok(())
    }

    async fn on_event(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let corr = env.correlation_id.as_str();
        match env.stream_type.as_str() {
            "cart" => {
                let (cart_id, event): (Uuid, CartEvent) = decode(env, "cart")?;
                if let CartEvent::CartCheckedOut(e) = event {
                    self.start(conn, cart_id, e, corr).await?;
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
        cart_id: Uuid,
        e: domain::cart::CartCheckedOut,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let order_id = e.order_id.as_uuid();
        let lines =
            serde_json::to_value(&e.lines).map_err(|x| ProjectionError::Poison(x.to_string()))?;
        let order_lines: Vec<OrderLine> = e
            .lines
            .iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect();
        let total = domain::order::total_of(&order_lines);
        let total = match total {
            Ok(t) => t,
            Err(why) => {
                // No order can be made of it (mixed currencies, an overflowing total): the
                // customer gets the cart back rather than a checkout that never ends.
                tracing::warn!(%order_id, %cart_id, %why, "checkout cannot become an order");
                metrics::counter!("saga_outcomes_total", "outcome" => "failed").increment(1);
                return self
                    .reopen_cart(cart_id, order_id, &format!("checkout refused: {why}"), corr)
                    .await;
            }
        };
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
        .bind(cart_id)
        .bind(&lines)
        .bind(total.amount_minor())
        .bind(total.currency().as_str())
        .bind(&e.payment.token)
        .bind(&e.payment.brand)
        .bind(&e.payment.last4)
        .bind(deadline)
        .execute(&mut *conn)
        .await?;
        let owner: Option<Uuid> =
            sqlx::query_scalar("SELECT cart_id FROM checkouts WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(&mut *conn)
                .await?;
        if owner != Some(cart_id) {
            // Another cart's checkout already opened this order (a reused checkout key).
            tracing::warn!(%order_id, %cart_id, "order id already used by another cart");
            metrics::counter!("saga_outcomes_total", "outcome" => "failed").increment(1);
            return self
                .reopen_cart(
                    cart_id,
                    order_id,
                    "checkout refused: the order id is already in use",
                    corr,
                )
                .await;
        }
        let place = OrderCommand::Place {
            order_id: e.order_id,
            customer_id: e.customer_id,
            cart_id: CartId::from(cart_id),
            lines: order_lines,
        };
        let placed = Self::exec(
            &self.orders,
            order_id,
            place,
            format!("saga:place:{order_id}"),
            corr,
        )
        .await?;
        match placed {
            // Placed (now or before): the order's events drive the rest.
            Step::Done | Step::Refused(Code::AlreadyExists, _) => {}
            Step::Refused(_, why) => {
                tracing::warn!(%order_id, %cart_id, %why, "order refused; reopening the cart");
                Self::set_status(conn, order_id, "failed").await?;
                metrics::counter!("saga_outcomes_total", "outcome" => "failed").increment(1);
                self.reopen_cart(cart_id, order_id, &format!("checkout refused: {why}"), corr)
                    .await?;
            }
        }
        Ok(())
    }

    async fn checkout(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
    ) -> Result<Option<Checkout>, ProjectionError> {
        Ok(sqlx::query_as::<_, Checkout>(
            "SELECT order_id, payment_id, cart_id, lines, amount_minor, currency, payment_token,
                    card_brand, card_last4
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
        let cmd = OrderCommand::Cancel {
            reason: cancel_reason(reason),
            by: CancelledBy::System,
        };
        let key = format!("saga:cancel:{order_id}");
        if let Step::Refused(code, why) = Self::exec(&self.orders, order_id, cmd, key, corr).await?
        {
            // Shipped already, or gone: nothing the saga can cancel.
            tracing::warn!(%order_id, ?code, %why, "cancel refused");
        }
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
            OrderEvent::OrderPlaced(_) => self.reserve_stock(conn, order_id, &lines, corr).await?,
            OrderEvent::OrderStockReserved(_) => {
                let cmd = c.authorize(order_id)?;
                let key = format!("saga:authorize:{order_id}");
                if let Step::Refused(_, why) =
                    Self::exec(&self.payments, c.payment_id, cmd, key, corr).await?
                {
                    return self
                        .cancel(order_id, &format!("payment failed: {why}"), corr)
                        .await;
                }
            }
            OrderEvent::OrderPaymentAuthorized(_) => {
                let cmd = OrderCommand::Confirm;
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
            OrderEvent::OrderConfirmed(_) => self.capture(conn, &c, order_id, corr).await?,
            OrderEvent::OrderCancelled(e) => {
                self.compensate(conn, &c, order_id, &lines, &e, corr)
                    .await?
            }
            OrderEvent::OrderShipped(_) => {
                for l in lines {
                    let product = l.product_id.as_uuid();
                    let cmd = ProductCommand::CommitReservation {
                        order_id: OrderId::from(order_id),
                    };
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
                let cmd = PaymentRequest::Refund { amount: e.amount };
                let key = format!("saga:refund:{order_id}:{}", e.total_refunded.amount_minor());
                if let Step::Refused(_, why) =
                    Self::exec(&self.payments, c.payment_id, cmd, key, corr).await?
                {
                    tracing::warn!(%order_id, %why, "payment refund refused");
                }
            }
            OrderEvent::OrderDelivered(_) => {}
        }
        Ok(())
    }

    /// An order placed: stock held for every line, or the order cancelled for what is
    /// missing.
    async fn reserve_stock(
        &self,
        conn: &mut PgConnection,
        order_id: Uuid,
        lines: &[domain::cart::CheckedOutLine],
        corr: &str,
    ) -> Result<(), ProjectionError> {
        for l in lines {
            let product = l.product_id.as_uuid();
            let cmd = ProductCommand::ReserveStock {
                order_id: OrderId::from(order_id),
                quantity: l.quantity,
            };
            let key = format!("saga:reserve:{order_id}:{product}");
            if let Step::Refused(_, why) =
                Self::exec(&self.products, product, cmd, key, corr).await?
            {
                tracing::info!(%order_id, %product, %why, "stock unavailable; cancelling");
                return self
                    .cancel(order_id, &format!("out of stock: {why}"), corr)
                    .await;
            }
        }
        let cmd = OrderCommand::MarkStockReserved;
        Self::exec(
            &self.orders,
            order_id,
            cmd,
            format!("saga:reserved:{order_id}"),
            corr,
        )
        .await?;
        Self::set_status(conn, order_id, "stock_reserved").await?;
        Ok(())
    }

    /// An order confirmed: its payment captured, or the order cancelled if it cannot be.
    async fn capture(
        &self,
        conn: &mut PgConnection,
        c: &Checkout,
        order_id: Uuid,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        let cmd = PaymentRequest::Capture;
        let captured = Self::exec(
            &self.payments,
            c.payment_id,
            cmd,
            format!("saga:capture:{order_id}"),
            corr,
        )
        .await?;
        if let Step::Refused(_, why) = captured {
            tracing::error!(%order_id, %why, "capture refused; cancelling the order");
            return self
                .cancel(
                    order_id,
                    &format!("payment could not be captured: {why}"),
                    corr,
                )
                .await;
        }
        Self::set_status(conn, order_id, "confirmed").await?;
        metrics::counter!("saga_outcomes_total", "outcome" => "confirmed").increment(1);
        Ok(())
    }

    /// An order cancelled: its stock released, its payment voided, and a checkout the system
    /// gave up on gives the customer the cart back.
    async fn compensate(
        &self,
        conn: &mut PgConnection,
        c: &Checkout,
        order_id: Uuid,
        lines: &[domain::cart::CheckedOutLine],
        e: &domain::order::OrderCancelled,
        corr: &str,
    ) -> Result<(), ProjectionError> {
        for l in lines {
            let product = l.product_id.as_uuid();
            let cmd = ProductCommand::ReleaseReservation {
                order_id: OrderId::from(order_id),
            };
            Self::exec(
                &self.products,
                product,
                cmd,
                format!("saga:release:{order_id}:{product}"),
                corr,
            )
            .await?;
        }
        // Voiding a payment that was never authorized, or was captured (its refund
        // follows as the order's `OrderRefunded`), is refused: nothing to void.
        let cmd = PaymentRequest::Void;
        Self::exec(
            &self.payments,
            c.payment_id,
            cmd,
            format!("saga:void:{order_id}"),
            corr,
        )
        .await?;
        // A checkout the system gave up on gives the customer the cart back.
        if e.by == CancelledBy::System {
            self.reopen_cart(c.cart_id, order_id, &e.reason, corr)
                .await?;
        }
        Self::set_status(conn, order_id, "cancelled").await?;
        metrics::counter!("saga_outcomes_total", "outcome" => "cancelled").increment(1);
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
                let cmd = OrderCommand::MarkPaymentAuthorized {
                    payment_id: e.payment_id,
                };
                if let Step::Refused(_, why) = Self::exec(
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
                    let void = PaymentRequest::Void;
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
                    let reason = match e.reason {
                        DeclineReason::Declined => "payment declined: the card was declined",
                        DeclineReason::InsufficientFunds => "payment declined: insufficient funds",
                    };
                    self.cancel(order_id, reason, corr).await?;
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
            let req = Self::request(
                ClearCartRequest {
                    meta: Some(CommandMeta {
                        idempotency_key: format!("saga:delete-cart:{cart}"),
                    }),
                    cart_id: cart.to_string(),
                },
                corr,
            );
            classify(self.carts.clone().delete_cart(req).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// Applies one event in a savepoint of `conn`: `Ok(None)` applied, `Ok(Some(why))`
    /// refused for good (poison), `Err(Transient)` to be parked, `Err(Db)` fails the batch.
    async fn apply_one(
        &self,
        conn: &mut PgConnection,
        env: &EventEnvelope,
    ) -> Result<Option<String>, ProjectionError> {
        let mut sp = conn.begin().await?;
        let span = tracing::info_span!(
            "apply",
            projection = "checkout-saga",
            correlation_id = %env.correlation_id,
            stream_id = %env.stream_id,
            version = env.version
        );
        // The event's trace goes on: the saga's commands carry this span's context.
        platform::trace_context::follow(&span, env.traceparent.as_deref());
        let r = tracing::Instrument::instrument(self.on_event(&mut sp, env), span).await;
        match r {
            Ok(()) => {
                sp.commit().await?;
                Ok(None)
            }
            Err(ProjectionError::Poison(why)) => {
                sp.rollback().await?;
                Ok(Some(why))
            }
            Err(e) => {
                // A broken connection cannot roll back either; the batch fails then anyway.
                let _ = sp.rollback().await;
                Err(e)
            }
        }
    }

    /// Parks an event behind its key: retried later, in order, by [`sweep_timeouts`].
    async fn park(
        conn: &mut PgConnection,
        key: &str,
        env: &EventEnvelope,
        why: &str,
    ) -> Result<(), ProjectionError> {
        let envelope =
            serde_json::to_value(env).map_err(|e| ProjectionError::Poison(e.to_string()))?;
        sqlx::query("INSERT INTO saga_parked (key, envelope, last_error) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(envelope)
            .bind(why)
            .execute(&mut *conn)
            .await?;
        metrics::counter!("saga_parked_total").increment(1);
        Ok(())
    }

    /// One batch: each event in its own savepoint; an event that fails transiently is parked
    /// with its key, and the later events of that key in the batch go behind it, while
    /// every other key's events are applied.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<Vec<Option<String>>, ProjectionError> {
        let mut parked: HashSet<String> =
            sqlx::query_scalar::<_, String>("SELECT DISTINCT key FROM saga_parked")
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let mut out = Vec::with_capacity(events.len());
        for env in events {
            let key = saga_key(env);
            if let Some(k) = key.as_deref().filter(|k| parked.contains(*k)) {
                Self::park(conn, k, env, "behind an earlier event of its checkout").await?;
                out.push(None);
                continue;
            }
            match self.apply_one(conn, env).await {
                Ok(refused) => out.push(refused),
                Err(ProjectionError::Transient(why)) => match key {
                    Some(k) => {
                        tracing::warn!(key = %k, error = %why, "step failed; parking the event");
                        Self::park(conn, &k, env, &why).await?;
                        parked.insert(k);
                        out.push(None);
                    }
                    None => return Err(ProjectionError::Transient(why)),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Retries the parked events of up to [`RETRY_KEYS_PER_ROUND`] keys that are due, each
    /// key's in order, each key in its own transaction.
    async fn retry_parked(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM saga_parked GROUP BY key HAVING min(next_attempt_at) <= now()
             ORDER BY min(id) LIMIT $1",
        )
        .bind(RETRY_KEYS_PER_ROUND)
        .fetch_all(pool)
        .await?;
        for key in keys {
            let mut tx = pool.begin().await?;
            let rows: Vec<(i64, Value, i32)> = sqlx::query_as(
                "SELECT id, envelope, attempts FROM saga_parked WHERE key = $1 ORDER BY id FOR UPDATE",
            )
            .bind(&key)
            .fetch_all(&mut *tx)
            .await?;
            for (id, envelope, attempts) in rows {
                let applied = match serde_json::from_value::<EventEnvelope>(envelope) {
                    Ok(env) => self.apply_one(&mut tx, &env).await,
                    Err(e) => Ok(Some(format!("parked envelope does not decode: {e}"))),
                };
                match applied {
                    Ok(refused) => {
                        if let Some(why) = refused {
                            tracing::error!(%key, %why, "parked event refused for good; dropped");
                            metrics::counter!("saga_parked_dropped_total").increment(1);
                        }
                        sqlx::query("DELETE FROM saga_parked WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        metrics::counter!("saga_parked_retried_total", "outcome" => "applied")
                            .increment(1);
                    }
                    Err(ProjectionError::Transient(why)) => {
                        let wait = backoff(attempts);
                        sqlx::query(
                            "UPDATE saga_parked SET attempts = attempts + 1, last_error = $2,
                                 next_attempt_at = now() + $3 * interval '1 millisecond'
                             WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&why)
                        .bind(wait.as_millis() as f64)
                        .execute(&mut *tx)
                        .await?;
                        metrics::counter!("saga_parked_retried_total", "outcome" => "failed")
                            .increment(1);
                        tracing::debug!(%key, attempts, error = %why, "parked event still failing");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            tx.commit().await?;
        }
        let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_parked")
            .fetch_one(pool)
            .await?;
        metrics::gauge!("saga_parked_events").set(parked as f64);
        Ok(())
    }

    /// Times out the checkouts past their deadline. The order decides: `time_out` cancels it
    /// only while it is not confirmed, and is refused afterwards.
    /// Times out the checkouts whose deadline passed before `consumed_until`: only then is
    /// it known that no answer came in time (an answer may wait in a topic the saga has not
    /// read yet, e.g. while it replays after a broker restart).
    async fn time_out_due(
        &self,
        pool: &PgPool,
        consumed_until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ProjectionError> {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM checkouts
             WHERE status NOT IN ('confirmed', 'cancelled', 'failed')
               AND deadline < LEAST(now(), $1)
             LIMIT 100",
        )
        .bind(consumed_until)
        .fetch_all(pool)
        .await?;
        for order_id in due {
            let cmd = OrderCommand::TimeOut;
            let key = format!("saga:timeout:{order_id}");
            let step = match Self::exec(&self.orders, order_id, cmd, key, "").await {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(%order_id, error = %e, "timeout failed; will retry");
                    continue;
                }
            };
            // Asked once: the cancellation (or the order's own progress) updates the row;
            // the deadline moves on so the order is not asked every second.
            let status = match step {
                Step::Done => {
                    tracing::warn!(%order_id, "checkout timed out; cancelling");
                    metrics::counter!("saga_timeouts_total").increment(1);
                    None
                }
                Step::Refused(Code::FailedPrecondition, why) => {
                    // Confirmed (or shipped) after all: the row was behind the order.
                    tracing::info!(%order_id, %why, "not timed out: the order went on");
                    Some("confirmed")
                }
                Step::Refused(code, why) => {
                    tracing::warn!(%order_id, ?code, %why, "timeout refused");
                    None
                }
            };
            sqlx::query(
                "UPDATE checkouts SET status = COALESCE($2, status),
                     deadline = now() + interval '30 seconds', updated_at = now()
                 WHERE order_id = $1",
            )
            .bind(order_id)
            .bind(status)
            .execute(pool)
            .await?;
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Checkout {
    #[allow(dead_code)]
    order_id: Uuid,
    payment_id: Uuid,
    cart_id: Uuid,
    lines: Value,
    amount_minor: i64,
    currency: String,
    payment_token: String,
    card_brand: String,
    card_last4: String,
}

/// `why` as a cancel reason: one line, cut to the length a reason may have (a service's
/// answer quoted in it may be long or span lines).
fn cancel_reason(why: &str) -> CancelReason {
    let line: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    CancelReason::parse(&line).unwrap_or_default()
}

impl Checkout {
    /// The payment authorization this checkout asks for. Its fields were checked when the
    /// cart was checked out: one that no longer parses is a corrupt row.
    fn authorize(&self, order_id: Uuid) -> Result<PaymentRequest, ProjectionError> {
        let bad = |e: &dyn std::fmt::Display| {
            ProjectionError::Poison(format!("checkout {order_id}: {e}"))
        };
        let currency = Currency::parse(&self.currency).map_err(|e| bad(&e))?;
        Ok(PaymentRequest::Authorize {
            order_id: OrderId::from(order_id),
            amount: Money::new(self.amount_minor, currency).map_err(|e| bad(&e))?,
            token: PaymentToken::parse(&self.payment_token).map_err(|e| bad(&e))?,
            brand: CardBrand::parse(&self.card_brand).map_err(|e| bad(&e))?,
            last4: CardLast4::parse(&self.card_last4).map_err(|e| bad(&e))?,
        })
    }
}

/// The tables this projection writes, parents first.
pub const TABLES: &[&str] = &["checkouts"];

impl Projection for CheckoutSaga {
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

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

    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> impl Future<Output = Result<Vec<Option<String>>, ProjectionError>> + Send + 'a {
        self.apply_batch(conn, events)
    }
}

/// Once a second, until shutdown: retries the parked events that are due, then times out the
/// checkouts past their deadline (an ordinary `OrderCancelled`, which the saga compensates).
pub async fn sweep_timeouts(
    saga: CheckoutSaga,
    pool: PgPool,
    health: crate::lag::ProjectorHealth,
    shutdown: tokio_util::sync::CancellationToken,
) {
    // Exported from the start, at zero (a dashboard's rate() then sees the first timeout).
    metrics::counter!("saga_timeouts_total").increment(0);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = saga.retry_parked(&pool).await {
            tracing::warn!(error = %e, "retrying parked events failed; will retry");
        }
        let Some(consumed_until) = health.consumed_until() else {
            continue;
        };
        if let Err(e) = saga.time_out_due(&pool, consumed_until).await {
            tracing::warn!(error = %e, "timeout sweep failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn a_cancel_reason_is_one_bounded_line() {
        let long = format!("out of stock: {}\nsecond line", "x".repeat(600));
        let r = cancel_reason(&long);
        assert_eq!(r.as_str().chars().count(), 500);
        assert!(!r.as_str().contains('\n'));
        assert_eq!(
            cancel_reason("payment failed: declined").as_str(),
            "payment failed: declined"
        );
    }

    fn json<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    /// The typed commands travel as the JSON the services have always parsed.
    #[test]
    fn typed_commands_keep_their_wire_form() {
        let order = Uuid::from_u128(1);
        let c = Checkout {
            order_id: order,
            payment_id: Uuid::from_u128(2),
            cart_id: Uuid::from_u128(3),
            lines: Value::Null,
            amount_minor: 1250,
            currency: "EUR".into(),
            payment_token: "tok_1".into(),
            card_brand: "visa".into(),
            card_last4: "4242".into(),
        };
        assert_eq!(
            json(&c.authorize(order).unwrap()),
            serde_json::json!({
                "type": "authorize",
                "order_id": order,
                "amount": { "amount_minor": 1250, "currency": "EUR" },
                "token": "tok_1",
                "brand": "visa",
                "last4": "4242",
            })
        );
        assert_eq!(
            json(&PaymentRequest::Void),
            serde_json::json!({ "type": "void" })
        );
        assert_eq!(
            json(&OrderCommand::TimeOut),
            serde_json::json!({ "type": "time_out" })
        );
        assert_eq!(
            json(&ProductCommand::ReleaseReservation {
                order_id: OrderId::from(order)
            }),
            serde_json::json!({ "type": "release_reservation", "order_id": order })
        );
        assert_eq!(
            json(&OrderCommand::Cancel {
                reason: cancel_reason("late"),
                by: CancelledBy::System
            }),
            serde_json::json!({ "type": "cancel", "reason": "late", "by": "system" })
        );
    }
}
