//! Notifications sent about orders and accounts: the back office's list, for one order or
//! customer or all, and the signed-in customer's own.

use super::types::{de_enum, de_opt_time, de_time, Field, NotificationChannel, NotificationKind};
use crate::context::{backends, caller, grpc, parse_doc};
use crate::error::{gql, BffError};
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use domain::values::{OrderId, UserId};
use proto::queries::NotificationsRequest;
use serde::Deserialize;

#[derive(SimpleObject, Deserialize)]
pub struct NotificationView {
    pub event_id: ID,
    /// The order it is about (none for account mails).
    pub order_id: Option<ID>,
    pub customer_id: ID,
    #[serde(deserialize_with = "de_enum")]
    pub kind: Field<NotificationKind>,
    #[serde(deserialize_with = "de_enum")]
    pub channel: Field<NotificationChannel>,
    pub recipient: Option<String>,
    pub subject: String,
    pub body: String,
    #[serde(deserialize_with = "de_time")]
    pub occurred_at: Field<DateTime<Utc>>,
    /// When the mail was handed to the SMTP server (null: not yet, or never).
    #[serde(default, deserialize_with = "de_opt_time")]
    pub sent_at: Option<Field<DateTime<Utc>>>,
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
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
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
