//! The orders resource: one order (`order`), a customer's own list and the back office's
//! list (Relay connections, the latter filtered by status, placing time and customer), time
//! travel (`orderAt`), and the order commands: the customer's `cancelOrder`, the back
//! office's `shipOrder`, `markDelivered` and `refundPayment` (the domain's `OrderCommand`).

use super::common::{exec, money, MoneyView, MutationResult};
use super::connection::Connection;
use super::order::{load_order, order_of, Order, OrderLine};
pub use super::types::OrderStatus;
use super::types::{time, Field, WireEnum};
use crate::context::{backends, caller, grpc, parse_doc};
use crate::error::{gql, BffError};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use domain::order::{CancelledBy, OrderCommand};
use domain::values::{CancelReason, Carrier, OrderId, TrackingNumber, UserId};
use proto::queries::ListOrdersRequest;
use serde::Deserialize;

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
    /// An order: its owner or an admin only.
    /// With `atLeastVersion`, waits briefly for the read model to reach it (`STALE` if not).
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least_version: Option<i64>,
    ) -> Result<Order> {
        gql(async move {
            caller(ctx).user()?;
            let at_least = at_least_version.unwrap_or(0).max(0) as u64;
            let order = load_order(backends(ctx), id.as_str(), at_least).await?;
            caller(ctx).check_owner(Some(&order.customer_id))?;
            if (order.version as u64) < at_least {
                return Err(BffError::Stale(format!(
                    "the order is at version {}, not yet {at_least}; retry",
                    order.version
                )));
            }
            Ok(order)
        }
        .await)
    }
}

#[derive(InputObject, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub customer_id: Option<ID>,
    /// Placed at or after (RFC 3339).
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before (RFC 3339).
    pub placed_to: Option<DateTime<Utc>>,
}

pub type OrderConnection = Connection<Order>;

async fn list(
    ctx: &Context<'_>,
    filter: OrderFilter,
    customer: Option<String>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<OrderConnection, BffError> {
    let first = first.unwrap_or(20);
    if !(1..=100).contains(&first) {
        return Err(BffError::InvalidArgument("first is from 1 to 100".into()));
    }
    let page = backends(ctx)
        .shop
        .clone()
        .list_orders(grpc(
            ctx,
            ListOrdersRequest {
                customer_id: customer.unwrap_or_default(),
                limit: first as u32,
                status: filter
                    .status
                    .map(|s| s.wire().to_owned())
                    .unwrap_or_default(),
                placed_from: filter
                    .placed_from
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                placed_to: filter.placed_to.map(|t| t.to_rfc3339()).unwrap_or_default(),
                after: after.unwrap_or_default(),
            },
        ))
        .await?
        .into_inner();
    Connection::of(page, order_of)
}

/// An order as it was at a version or a time, folded from the event store.
#[derive(SimpleObject)]
pub struct OrderSnapshot {
    pub id: ID,
    pub customer_id: ID,
    pub status: Field<OrderStatus>,
    pub total: Option<MoneyView>,
    pub refunded: Option<MoneyView>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<OrderLine>,
    /// The last version folded in, and when it happened.
    pub version: i64,
    pub as_of: Field<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct OrderView {
    id: Option<String>,
    customer_id: Option<String>,
    status: String,
    total: Option<MoneyView>,
    refunded: Option<MoneyView>,
    shipment: Option<ShipmentView>,
    lines: Vec<LineView>,
}

#[derive(Deserialize)]
struct ShipmentView {
    carrier: String,
    tracking_number: String,
}

#[derive(Deserialize)]
struct LineView {
    product_id: String,
    quantity: i64,
    unit_price: MoneyView,
}

#[derive(Default)]
pub struct OrderListQuery;

#[Object]
impl OrderListQuery {
    /// The signed-in customer's orders, newest first.
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<OrderConnection> {
        gql(async move {
            let me = caller(ctx).user()?.sub.clone();
            list(ctx, OrderFilter::default(), Some(me), first, after).await
        }
        .await)
    }

    /// Every customer's orders (back office), newest first, filtered by status, when they
    /// were placed, and customer.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<OrderConnection> {
        gql(async move {
            caller(ctx).admin()?;
            let filter = filter.unwrap_or_default();
            let customer = match &filter.customer_id {
                Some(c) => Some(UserId::parse(c)?.to_string()),
                None => None,
            };
            list(ctx, filter, customer, first, after).await
        }
        .await)
    }

    /// Time travel: the order as it was after `version`, or at a time (`at`), folded from
    /// the event store with the domain's `evolve`. Its owner or an admin only.
    async fn order_at(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: Option<i64>,
        at: Option<DateTime<Utc>>,
    ) -> Result<OrderSnapshot> {
        gql(async move {
            caller(ctx).user()?;
            let id = OrderId::parse(&id)?;
            let version = match (version, at) {
                (Some(v), None) if v >= 1 => v as u64,
                (None, Some(_)) => 0,
                _ => {
                    return Err(BffError::InvalidArgument(
                        "give either a version (from 1) or a time".into(),
                    ))
                }
            };
            let r = backends(ctx)
                .orders
                .clone()
                .state_at(grpc(
                    ctx,
                    proto::commands::StateAtRequest {
                        stream_id: id.to_string(),
                        version,
                        at: at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    },
                ))
                .await?
                .into_inner();
            let view: OrderView = parse_doc(&r.state_json)?;
            caller(ctx).check_owner(view.customer_id.as_deref())?;
            Ok(OrderSnapshot {
                id: ID(view.id.unwrap_or_else(|| id.to_string())),
                customer_id: ID(view.customer_id.unwrap_or_default()),
                status: OrderStatus::field(&view.status),
                total: view.total,
                refunded: view.refunded,
                carrier: view.shipment.as_ref().map(|s| s.carrier.clone()),
                tracking_number: view.shipment.map(|s| s.tracking_number),
                lines: view
                    .lines
                    .into_iter()
                    .map(|l| OrderLine {
                        product_id: ID(l.product_id),
                        quantity: l.quantity,
                        unit_price_minor: l.unit_price.amount_minor,
                    })
                    .collect(),
                version: r.version as i64,
                as_of: time("OrderSnapshot.asOf", &r.occurred_at),
            })
        }
        .await)
    }
}

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    /// Cancels one of the signed-in customer's orders before it ships.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        reason: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).user()?;
            let order = load_order(backends(ctx), order_id.as_str(), 0).await?;
            caller(ctx).check_owner(Some(&order.customer_id))?;
            let cmd = cancel(reason.as_deref())?;
            exec(ctx, &backends(ctx).orders, order.id.0, &cmd, None).await
        }
        .await)
    }

    /// Admin: ships a confirmed order.
    async fn ship_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        carrier: String,
        tracking_number: String,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = OrderId::parse(&order_id)?;
            let cmd = ship(&carrier, &tracking_number)?;
            exec(ctx, &backends(ctx).orders, id.to_string(), &cmd, None).await
        }
        .await)
    }

    /// Admin: marks a shipped order delivered.
    async fn mark_delivered(&self, ctx: &Context<'_>, order_id: ID) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let id = OrderId::parse(&order_id)?;
            let cmd = OrderCommand::MarkDelivered;
            exec(ctx, &backends(ctx).orders, id.to_string(), &cmd, None).await
        }
        .await)
    }

    /// Admin: refunds part or all of a paid order; the saga refunds the payment.
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        amount_minor: i64,
        idempotency_key: Option<String>,
    ) -> Result<MutationResult> {
        gql(async move {
            caller(ctx).admin()?;
            let order = load_order(backends(ctx), order_id.as_str(), 0).await?;
            let cmd = OrderCommand::Refund {
                amount: money(amount_minor, &order.total.currency)?,
            };
            exec(
                ctx,
                &backends(ctx).orders,
                order.id.0,
                &cmd,
                idempotency_key,
            )
            .await
        }
        .await)
    }
}

/// A customer's cancellation, with the default reason when none is given.
fn cancel(reason: Option<&str>) -> Result<OrderCommand, BffError> {
    Ok(OrderCommand::Cancel {
        reason: CancelReason::parse(reason.unwrap_or("cancelled by the customer"))?,
        by: CancelledBy::Customer,
    })
}

fn ship(carrier: &str, tracking_number: &str) -> Result<OrderCommand, BffError> {
    Ok(OrderCommand::Ship {
        carrier: Carrier::parse(carrier)?,
        tracking_number: TrackingNumber::parse(tracking_number)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_of(c: &OrderCommand) -> serde_json::Value {
        serde_json::to_value(c).unwrap()
    }

    #[test]
    fn cancel_serializes_as_the_hand_written_command_did() {
        assert_eq!(
            json_of(&cancel(None).unwrap()),
            json!({ "type": "cancel", "reason": "cancelled by the customer", "by": "customer" })
        );
        assert_eq!(
            json_of(&cancel(Some("changed my mind")).unwrap()),
            json!({ "type": "cancel", "reason": "changed my mind", "by": "customer" })
        );
    }

    #[test]
    fn ship_delivered_and_refund_serialize_as_before() {
        assert_eq!(
            json_of(&ship("DHL", "JD014600").unwrap()),
            json!({ "type": "ship", "carrier": "DHL", "tracking_number": "JD014600" })
        );
        assert!(matches!(ship("", "x"), Err(BffError::InvalidArgument(_))));
        assert_eq!(
            json_of(&OrderCommand::MarkDelivered),
            json!({ "type": "mark_delivered" })
        );
        let refund = OrderCommand::Refund {
            amount: money(250, "EUR").unwrap(),
        };
        assert_eq!(
            json_of(&refund),
            json!({ "type": "refund", "amount": { "amount_minor": 250, "currency": "EUR" } })
        );
        assert!(matches!(
            money(-1, "EUR"),
            Err(BffError::InvalidArgument(_))
        ));
    }
}
