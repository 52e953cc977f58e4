//! Orders beyond the single order: a customer's own list and the back office's list (both
//! Relay connections, the latter filtered by status, placing time and customer), an order's
//! timeline, time travel (`orderAt`), and the notifications sent about orders.

use crate::connection::Connection;
use crate::error::{gql, BffError};
use crate::schema::{backends, caller, grpc};
use crate::shop::{order_of, parse_doc, MoneyView, Order, OrderLine};
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use domain::values::{OrderId, UserId};
use proto::queries::{ById, ListOrdersRequest, NotificationsRequest};
use serde::Deserialize;

#[derive(SimpleObject, Deserialize)]
pub struct TimelineEntry {
    pub version: i64,
    pub event_type: String,
    /// What happened, for people: "Shipped with DHL, tracking number JD014600".
    pub summary: String,
    /// Who did it: a user id, or a service such as `checkout-saga`.
    pub actor: String,
    pub occurred_at: String,
}

/// An order's timeline, from the read model.
pub async fn timeline(ctx: &Context<'_>, order_id: &str) -> Result<Vec<TimelineEntry>, BffError> {
    let docs = backends(ctx)
        .shop
        .clone()
        .get_order_timeline(grpc(
            ctx,
            ById {
                id: order_id.to_owned(),
                at_least_version: 0,
            },
        ))
        .await?
        .into_inner();
    docs.json.iter().map(|j| parse_doc(j)).collect()
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    Placed,
    StockReserved,
    PaymentAuthorized,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    fn wire(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::StockReserved => "stock_reserved",
            OrderStatus::PaymentAuthorized => "payment_authorized",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
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
    pub status: String,
    pub total: Option<MoneyView>,
    pub refunded: Option<MoneyView>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<OrderLine>,
    /// The last version folded in, and when it happened.
    pub version: i64,
    pub as_of: String,
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

#[derive(SimpleObject, Deserialize)]
pub struct NotificationView {
    pub event_id: String,
    /// The order it is about (none for account mails).
    pub order_id: Option<String>,
    pub customer_id: String,
    /// order_received, order_confirmation, shipment, delivery, cancellation, refund,
    /// password_reset or email_verification.
    pub kind: String,
    pub channel: String,
    pub recipient: Option<String>,
    pub subject: String,
    pub body: String,
    pub occurred_at: String,
    /// When the mail was handed to the SMTP server (null: not yet, or never).
    #[serde(default)]
    pub sent_at: Option<String>,
}

async fn notifications(
    ctx: &Context<'_>,
    order_id: Option<ID>,
    customer_id: Option<String>,
    first: i32,
) -> Result<Vec<NotificationView>, BffError> {
    if !(1..=500).contains(&first) {
        return Err(BffError::InvalidArgument("first is from 1 to 500".into()));
    }
    let order_id = match order_id {
        Some(id) => OrderId::parse(&id)?.to_string(),
        None => String::new(),
    };
    let docs = backends(ctx)
        .shop
        .clone()
        .list_notifications(grpc(
            ctx,
            NotificationsRequest {
                order_id,
                customer_id: customer_id.unwrap_or_default(),
                limit: first as u32,
            },
        ))
        .await?
        .into_inner();
    docs.json.iter().map(|j| parse_doc(j)).collect()
}

#[derive(Default)]
pub struct OrderQuery;

#[Object]
impl OrderQuery {
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
                status: view.status.to_uppercase(),
                total: view.total,
                refunded: view.refunded,
                carrier: view.shipment.as_ref().map(|s| s.carrier.clone()),
                tracking_number: view.shipment.map(|s| s.tracking_number),
                lines: view
                    .lines
                    .into_iter()
                    .map(|l| OrderLine {
                        product_id: l.product_id,
                        quantity: l.quantity,
                        unit_price_minor: l.unit_price.amount_minor,
                    })
                    .collect(),
                version: r.version as i64,
                as_of: r.occurred_at,
            })
        }
        .await)
    }

    /// Notifications sent (back office), newest first, for one order or customer or all.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        order_id: Option<ID>,
        customer_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<NotificationView>> {
        gql(async move {
            caller(ctx).admin()?;
            let customer = match customer_id {
                Some(c) => Some(UserId::parse(&c)?.to_string()),
                None => None,
            };
            notifications(ctx, order_id, customer, first).await
        }
        .await)
    }

    /// The notifications the signed-in customer was sent, newest first.
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<NotificationView>> {
        gql(async move {
            let me = caller(ctx).user()?.sub.clone();
            notifications(ctx, None, Some(me), first).await
        }
        .await)
    }
}
