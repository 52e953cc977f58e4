//! The checkout resource: `checkout` turns the signed-in customer's cart into an order,
//! paid with a token from the payment gateway; the checkout saga takes it from there.

use super::common::derived_uuid;
use crate::context::{backends, caller, check_key, grpc};
use crate::error::gql;
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use domain::values::{CartId, OrderId, PaymentToken};

#[derive(SimpleObject)]
pub struct CheckoutResult {
    pub order_id: ID,
    /// The cart's version after checkout.
    pub cart_version: i64,
}

#[derive(Default)]
pub struct CheckoutMutation;

#[Object]
impl CheckoutMutation {
    /// Checks out the signed-in customer's cart with a payment token from the payment
    /// gateway's tokenization endpoint (`POST /pay/v1/tokens`, outside this API: card numbers
    /// never pass through here); prices are snapshotted from the catalogue, and the checkout
    /// saga takes it from there. Follow the order with `order(id)`.
    async fn checkout(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        payment_token: String,
        idempotency_key: Option<String>,
    ) -> Result<CheckoutResult> {
        gql(async move {
            let claims = caller(ctx).user()?.clone();
            check_key(&idempotency_key)?;
            let cart_id = CartId::parse(&cart_id)?;
            let token = PaymentToken::parse(&payment_token)?;
            let card = backends(ctx)
                .payment_methods
                .clone()
                .describe(grpc(
                    ctx,
                    proto::payment::CardToken {
                        token: token.as_str().to_owned(),
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            // A retried checkout (same key) names the same order.
            let order_id = match &idempotency_key {
                Some(k) => OrderId::from(derived_uuid(&format!("{}:{k}", claims.sub))),
                None => OrderId::generate(),
            };
            let r = backends(ctx)
                .cart_commands
                .clone()
                .check_out(grpc(
                    ctx,
                    proto::cart::CheckOutRequest {
                        meta: Some(proto::cart::CommandMeta {
                            idempotency_key: idempotency_key.unwrap_or_default(),
                        }),
                        cart_id: cart_id.to_string(),
                        order_id: order_id.to_string(),
                        prices: Default::default(),
                        payment_token: card.token,
                        card_brand: card.brand,
                        card_last4: card.last4,
                    },
                ))
                .await?
                .into_inner();
            Ok(CheckoutResult {
                order_id: ID(order_id.to_string()),
                cart_version: r.version as i64,
            })
        }
        .await)
    }
}
