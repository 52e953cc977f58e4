//! An order as GraphQL shows it, with its payments and timeline, and how the other
//! resources load one from the read model.

use super::common::MoneyView;
use super::types::{de_enum, de_time, Field, OrderStatus, PaymentStatus};
use crate::clients::Backends;
use crate::context::{backends, grpc, parse_doc};
use crate::error::{gql, BffError};
use async_graphql::{Context, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use domain::values::OrderId;
use proto::queries::ById;
use serde::Deserialize;

#[derive(SimpleObject, Deserialize)]
pub struct OrderLine {
    pub product_id: ID,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

#[derive(SimpleObject, Deserialize)]
pub struct Payment {
    pub id: ID,
    #[serde(deserialize_with = "de_enum")]
    pub status: Field<PaymentStatus>,
    pub amount: MoneyView,
    pub refunded_minor: i64,
    pub card_brand: String,
    pub card_last4: String,
    pub decline_reason: Option<String>,
    pub captures: i64,
}

#[derive(SimpleObject, Deserialize)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub customer_id: ID,
    #[serde(deserialize_with = "de_enum")]
    pub status: Field<OrderStatus>,
    pub total: MoneyView,
    pub refunded_minor: i64,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: i64,
    #[serde(deserialize_with = "de_time")]
    pub placed_at: Field<DateTime<Utc>>,
    pub lines: Vec<OrderLine>,
}

#[async_graphql::ComplexObject]
impl Order {
    /// The order's payment, if one was attempted.
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<Payment>> {
        gql(async move {
            let docs = backends(ctx)
                .shop
                .clone()
                .get_payments_of_order(grpc(
                    ctx,
                    ById {
                        id: self.id.to_string(),
                        at_least_version: 0,
                    },
                ))
                .await?
                .into_inner();
            match docs.json.first() {
                None => Ok(None),
                Some(j) => Ok(Some(parse_doc(j)?)),
            }
        }
        .await)
    }

    /// Every payment attempted for the order, newest first.
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<Payment>> {
        gql(async move {
            let docs = backends(ctx)
                .shop
                .clone()
                .get_payments_of_order(grpc(
                    ctx,
                    ById {
                        id: self.id.to_string(),
                        at_least_version: 0,
                    },
                ))
                .await?
                .into_inner();
            docs.json.iter().map(|j| parse_doc(j)).collect()
        }
        .await)
    }

    /// The order's events, oldest first, each as a readable line.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<TimelineEntry>> {
        gql(timeline(ctx, &self.id).await)
    }
}

pub fn order_of(json: &str) -> Result<Order, BffError> {
    parse_doc(json)
}

/// An order from the read model, waiting (bounded) for `at_least` when it is above 0.
pub async fn load_order(backends: &Backends, id: &str, at_least: u64) -> Result<Order, BffError> {
    let id = OrderId::parse(id)?;
    let doc = backends
        .shop
        .clone()
        .get_order(ById {
            id: id.to_string(),
            at_least_version: at_least,
        })
        .await
        .map_err(|s| BffError::from(s).waited_for(at_least))?
        .into_inner();
    order_of(&doc.json)
}

#[derive(SimpleObject, Deserialize)]
pub struct TimelineEntry {
    pub version: i64,
    pub event_type: String,
    /// What happened, for people: "Shipped with DHL, tracking number JD014600".
    pub summary: String,
    /// Who did it: a user id, or a service such as `checkout-saga`.
    pub actor: String,
    #[serde(deserialize_with = "de_time")]
    pub occurred_at: Field<DateTime<Utc>>,
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
