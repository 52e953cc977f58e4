//! The cart resource's reads: `cart(id)` (read-your-writes with `atLeastVersion`),
//! `myCart`, time travel (`cartAt`), and a cart's lines priced live from the catalogue. Its
//! commands are in `cart_mutation`.

use super::common::MoneyView;
use super::product::{loader, Product, ProductOf};
pub use super::types::CartStatus;
use super::types::{time, Field, WireEnum};
use crate::context::{backends, caller, grpc};
use crate::error::{gql, BffError};
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use domain::values::CartId;
use proto::cart as pb;

/// One product line of a cart, priced live from the catalogue.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct CartLine {
    pub product_id: ID,
    pub quantity: i32,
    /// The cart version that last changed this line.
    pub version: i64,
}

/// A shopping cart as the read model has it, with its lines priced live from the catalogue
/// (what `checkout` charges).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Cart {
    pub id: ID,
    /// The owner, if the cart is not anonymous.
    pub customer_id: Option<ID>,
    pub status: Field<CartStatus>,
    /// The cart's stream version this view reflects.
    pub version: i64,
    pub lines: Vec<CartLine>,
    /// Units over all lines.
    pub item_count: i64,
    pub created_at: Field<DateTime<Utc>>,
    pub updated_at: Field<DateTime<Utc>>,
}

impl From<pb::Cart> for Cart {
    fn from(c: pb::Cart) -> Self {
        let item_count = c.lines.iter().map(|l| i64::from(l.quantity)).sum();
        Cart {
            id: ID(c.cart_id),
            customer_id: (!c.customer_id.is_empty()).then_some(ID(c.customer_id)),
            status: CartStatus::field(&c.status),
            version: c.version as i64,
            lines: c
                .lines
                .into_iter()
                .map(|l| CartLine {
                    product_id: ID(l.product_id),
                    quantity: l.quantity as i32,
                    version: l.version as i64,
                })
                .collect(),
            item_count,
            created_at: time("Cart.createdAt", &c.created_at),
            updated_at: time("Cart.updatedAt", &c.updated_at),
        }
    }
}

#[async_graphql::ComplexObject]
impl CartLine {
    /// The product, as the catalogue has it now (null if the catalogue does not know it).
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        gql(line_product(ctx, &self.product_id).await)
    }

    /// The product's current catalogue price.
    async fn unit_price(&self, ctx: &Context<'_>) -> Result<Option<MoneyView>> {
        gql(async move { Ok(line_product(ctx, &self.product_id).await?.map(|p| p.price)) }.await)
    }

    /// Unit price × quantity.
    async fn line_total(&self, ctx: &Context<'_>) -> Result<Option<MoneyView>> {
        gql(async move {
            match line_product(ctx, &self.product_id).await? {
                None => Ok(None),
                Some(p) => line_total(&p.price, self.quantity).map(Some),
            }
        }
        .await)
    }
}

#[async_graphql::ComplexObject]
impl Cart {
    /// The sum of the line totals (null for an empty cart, or while a line's product is
    /// unknown to the catalogue). A cart holds one currency.
    async fn subtotal(&self, ctx: &Context<'_>) -> Result<Option<MoneyView>> {
        gql(async move {
            let mut sum: Option<MoneyView> = None;
            for l in &self.lines {
                let Some(p) = line_product(ctx, &l.product_id).await? else {
                    return Ok(None);
                };
                let t = line_total(&p.price, l.quantity)?;
                sum = Some(match sum {
                    None => t,
                    Some(s) if s.currency != t.currency => {
                        return Err(BffError::FailedPrecondition(format!(
                            "the cart mixes {} and {}",
                            s.currency, t.currency
                        )))
                    }
                    Some(s) => MoneyView {
                        amount_minor: s.amount_minor.checked_add(t.amount_minor).ok_or_else(
                            || BffError::FailedPrecondition("the total overflows".into()),
                        )?,
                        currency: s.currency,
                    },
                });
            }
            Ok(sum)
        }
        .await)
    }
}

async fn line_product(ctx: &Context<'_>, id: &ID) -> Result<Option<Product>, BffError> {
    loader(ctx)?.load_one(ProductOf(id.to_string())).await
}

fn line_total(unit: &MoneyView, quantity: i32) -> Result<MoneyView, BffError> {
    Ok(MoneyView {
        amount_minor: unit
            .amount_minor
            .checked_mul(i64::from(quantity))
            .ok_or_else(|| BffError::FailedPrecondition("the line total overflows".into()))?,
        currency: unit.currency.clone(),
    })
}

#[derive(Default)]
pub struct CartQuery;

#[Object]
impl CartQuery {
    /// A cart by id, from the read model. Errors with `NOT_FOUND` for an unknown cart. With
    /// `atLeastVersion` (a mutation's `version`), waits briefly for the read model to reach
    /// it, and errors with `STALE` if it does not.
    async fn cart(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least_version: Option<i64>,
    ) -> Result<Option<Cart>> {
        gql(async move {
            let id = CartId::parse(&id)?;
            let at_least = at_least_version.unwrap_or(0).max(0) as u64;
            let req = grpc(
                ctx,
                pb::GetCartRequest {
                    cart_id: id.to_string(),
                    at_least_version: at_least,
                },
            );
            let cart = backends(ctx)
                .cart_queries
                .clone()
                .get_cart(req)
                .await
                .map_err(|s| BffError::from(s).waited_for(at_least))?
                .into_inner();
            caller(ctx).check_owner(Some(cart.customer_id.as_str()).filter(|c| !c.is_empty()))?;
            if cart.version < at_least {
                return Err(BffError::Stale(format!(
                    "the cart is at version {}, not yet {at_least}; retry",
                    cart.version
                )));
            }
            Ok(Some(cart.into()))
        }
        .await)
    }

    /// The signed-in customer's open cart (the one changed last), or null when they have
    /// none. `UNAUTHENTICATED` without a valid token.
    async fn my_cart(&self, ctx: &Context<'_>) -> Result<Option<Cart>> {
        gql(async move {
            let claims = caller(ctx).user()?;
            let req = grpc(
                ctx,
                pb::GetOpenCartRequest {
                    customer_id: claims.sub.clone(),
                },
            );
            match backends(ctx).cart_queries.clone().get_open_cart(req).await {
                Ok(c) => Ok(Some(c.into_inner().into())),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s.into()),
            }
        }
        .await)
    }
}

#[derive(Default)]
pub struct CartHistory;

#[Object]
impl CartHistory {
    /// Time travel: the cart as it was at a `version`, or at a time (`at`, RFC 3339), folded
    /// from the event store.
    async fn cart_at(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: Option<i64>,
        at: Option<DateTime<Utc>>,
    ) -> Result<Cart> {
        gql(async move {
            let id = CartId::parse(&id)?;
            if version.is_none() == at.is_none() {
                return Err(BffError::InvalidArgument(
                    "give exactly one of version and at".into(),
                ));
            }
            let version = match version {
                Some(v) if v < 1 => {
                    return Err(BffError::InvalidArgument("a version is at least 1".into()))
                }
                Some(v) => v as u64,
                None => 0,
            };
            let cart = backends(ctx)
                .cart_commands
                .clone()
                .get_cart_at(grpc(
                    ctx,
                    pb::GetCartAtRequest {
                        cart_id: id.to_string(),
                        version,
                        at: at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    },
                ))
                .await?
                .into_inner();
            caller(ctx).check_owner(Some(cart.customer_id.as_str()).filter(|c| !c.is_empty()))?;
            Ok(cart.into())
        }
        .await)
    }
}
