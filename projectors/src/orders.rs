//! The `orders` / `order_lines` and `payments` read models.

use crate::notifications::format_money;
use crate::runtime::{advance, decode, Advance, Projection, ProjectionError};
use domain::order::{CancelledBy, OrderEvent};
use domain::payment::PaymentEvent;
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

pub struct OrderProjection;

/// The tables this projection writes, parents first.
pub const TABLES: &[&str] = &["orders", "order_lines", "payments", "order_timeline"];

impl Projection for OrderProjection {
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn name(&self) -> &'static str {
        "order"
    }

    fn topics(&self) -> Vec<String> {
        vec![topic_for("order"), topic_for("payment")]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        env: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a {
        apply(conn, env)
    }
}

async fn apply(conn: &mut PgConnection, env: &EventEnvelope) -> Result<(), ProjectionError> {
    match env.stream_type.as_str() {
        "order" => apply_order(conn, env).await,
        _ => apply_payment(conn, env).await,
    }
}

/// One readable line of an order's timeline.
pub fn summary(event: &OrderEvent) -> String {
    match event {
        OrderEvent::OrderPlaced(e) => {
            let items: u32 = e.lines.iter().map(|l| l.quantity.get()).sum();
            format!(
                "Order placed: {items} item{}, {}",
                if items == 1 { "" } else { "s" },
                format_money(e.total.amount_minor(), e.total.currency().as_str())
            )
        }
        OrderEvent::OrderStockReserved(_) => "Stock reserved".into(),
        OrderEvent::OrderPaymentAuthorized(_) => "Payment authorized".into(),
        OrderEvent::OrderConfirmed(_) => "Order confirmed".into(),
        OrderEvent::OrderShipped(e) => format!(
            "Shipped with {}, tracking number {}",
            e.carrier, e.tracking_number
        ),
        OrderEvent::OrderDelivered(_) => "Delivered".into(),
        OrderEvent::OrderCancelled(e) => format!(
            "Cancelled by the {}: {}",
            match e.by {
                CancelledBy::Customer => "customer",
                CancelledBy::System => "shop",
            },
            e.reason
        ),
        OrderEvent::OrderRefunded(e) => format!(
            "Refunded {} ({} in all)",
            format_money(e.amount.amount_minor(), e.amount.currency().as_str()),
            format_money(
                e.total_refunded.amount_minor(),
                e.total_refunded.currency().as_str()
            )
        ),
    }
}

async fn apply_order(conn: &mut PgConnection, env: &EventEnvelope) -> Result<(), ProjectionError> {
    let (id, event): (Uuid, OrderEvent) = decode(env, "order")?;
    sqlx::query(
        "INSERT INTO order_timeline (order_id, version, event_type, summary, actor, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, version) DO NOTHING",
    )
    .bind(id)
    .bind(env.version as i64)
    .bind(&env.event_type)
    .bind(summary(&event))
    .bind(&env.actor)
    .bind(env.occurred_at)
    .execute(&mut *conn)
    .await?;
    if let OrderEvent::OrderPlaced(e) = &event {
        let inserted = sqlx::query(
            "INSERT INTO orders (id, customer_id, cart_id, status, total_minor, currency, version,
                                 placed_at, updated_at)
             VALUES ($1, $2, $3, 'placed', $4, $5, 1, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(e.customer_id.as_uuid())
        .bind(e.cart_id.as_uuid())
        .bind(e.total.amount_minor())
        .bind(e.total.currency().as_str())
        .bind(env.occurred_at)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            for (i, l) in e.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO order_lines (order_id, position, product_id, quantity, unit_price_minor)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(i as i32)
                .bind(l.product_id.as_uuid())
                .bind(l.quantity.get() as i32)
                .bind(l.unit_price.amount_minor())
                .execute(&mut *conn)
                .await?;
            }
        }
        return Ok(());
    }
    if advance(conn, "orders", id, env).await? == Advance::Seen {
        return Ok(());
    }
    let q = match &event {
        OrderEvent::OrderPlaced(_) => return Ok(()),
        OrderEvent::OrderStockReserved(_) => {
            sqlx::query("UPDATE orders SET status = 'stock_reserved' WHERE id = $1").bind(id)
        }
        OrderEvent::OrderPaymentAuthorized(e) => sqlx::query(
            "UPDATE orders SET status = 'payment_authorized', payment_id = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(e.payment_id.as_uuid()),
        OrderEvent::OrderConfirmed(_) => {
            sqlx::query("UPDATE orders SET status = 'confirmed' WHERE id = $1").bind(id)
        }
        OrderEvent::OrderShipped(e) => sqlx::query(
            "UPDATE orders SET status = 'shipped', carrier = $2, tracking_number = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(e.carrier.clone())
        .bind(e.tracking_number.clone()),
        OrderEvent::OrderDelivered(_) => {
            sqlx::query("UPDATE orders SET status = 'delivered' WHERE id = $1").bind(id)
        }
        OrderEvent::OrderCancelled(e) => {
            sqlx::query("UPDATE orders SET status = 'cancelled', cancel_reason = $2 WHERE id = $1")
                .bind(id)
                .bind(e.reason.clone())
        }
        OrderEvent::OrderRefunded(e) => {
            sqlx::query("UPDATE orders SET refunded_minor = $2 WHERE id = $1")
                .bind(id)
                .bind(e.total_refunded.amount_minor())
        }
    };
    q.execute(&mut *conn).await?;
    Ok(())
}

async fn apply_payment(
    conn: &mut PgConnection,
    env: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let (id, event): (Uuid, PaymentEvent) = decode(env, "payment")?;
    let first = match &event {
        PaymentEvent::PaymentAuthorized(e) => {
            Some((e.order_id, e.amount, &e.card, "authorized", None::<String>))
        }
        PaymentEvent::PaymentDeclined(e) => Some((
            e.order_id,
            e.amount,
            &e.card,
            "declined",
            Some(format!("{:?}", e.reason).to_lowercase()),
        )),
        _ => None,
    };
    if let Some((order_id, amount, card, status, reason)) = first {
        sqlx::query(
            "INSERT INTO payments (id, order_id, status, amount_minor, currency, card_brand,
                                   card_last4, decline_reason, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(order_id.as_uuid())
        .bind(status)
        .bind(amount.amount_minor())
        .bind(amount.currency().as_str())
        .bind(&card.brand)
        .bind(&card.last4)
        .bind(reason)
        .bind(env.occurred_at)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    if advance(conn, "payments", id, env).await? == Advance::Seen {
        return Ok(());
    }
    let q = match &event {
        PaymentEvent::PaymentCaptured(_) => sqlx::query(
            "UPDATE payments SET status = 'captured', captures = captures + 1 WHERE id = $1",
        )
        .bind(id),
        PaymentEvent::PaymentVoided(_) => {
            sqlx::query("UPDATE payments SET status = 'voided' WHERE id = $1").bind(id)
        }
        PaymentEvent::PaymentRefunded(e) => {
            // Refunded in full: the payment is `refunded`.
            sqlx::query(
                "UPDATE payments SET refunded_minor = $2,
                     status = CASE WHEN $2 >= amount_minor THEN 'refunded' ELSE status END
                 WHERE id = $1",
            )
            .bind(id)
            .bind(e.total_refunded.amount_minor())
        }
        PaymentEvent::PaymentAuthorized(_) | PaymentEvent::PaymentDeclined(_) => return Ok(()),
    };
    q.execute(&mut *conn).await?;
    Ok(())
}
