//! The cart resource's commands: `createCart`, `addItemToCart`, `changeCartItemQuantity`,
//! `removeItemFromCart` and `clearCart`, sent to the cart command service over its typed
//! gRPC API, their arguments parsed into domain values first.

use crate::auth::Caller;
use crate::context::{backends, caller, check_key, grpc};
use crate::error::{gql, BffError};
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use domain::values::{CartId, ProductId, Quantity, UserId};
use proto::cart as pb;

fn meta(
    ctx: &Context<'_>,
    idempotency_key: Option<String>,
) -> Result<Option<pb::CommandMeta>, BffError> {
    // An invalid token is refused outright; the actor travels in the credential.
    caller(ctx).actor()?;
    Ok(Some(pb::CommandMeta {
        idempotency_key: idempotency_key.unwrap_or_default(),
    }))
}

fn parse_cart_id(id: &ID) -> Result<CartId, BffError> {
    Ok(CartId::parse(id)?)
}

fn parse_product_id(id: &ID) -> Result<ProductId, BffError> {
    Ok(ProductId::parse(id)?)
}

fn parse_quantity(n: i64) -> Result<Quantity, BffError> {
    Ok(Quantity::new(n)?)
}

/// What a cart mutation returns: the cart and its stream version after the change. Pass the
/// version as `atLeastVersion` to read your own write.
#[derive(SimpleObject, Debug, Clone)]
pub struct CartMutationResult {
    pub cart_id: ID,
    pub version: i64,
}

impl From<pb::CommandResult> for CartMutationResult {
    fn from(r: pb::CommandResult) -> Self {
        Self {
            cart_id: ID(r.cart_id),
            version: r.version as i64,
        }
    }
}

#[derive(Default)]
pub struct CartMutation;

#[Object]
impl CartMutation {
    /// Opens a new, empty cart; a signed-in customer's cart is theirs (only an admin may name
    /// another owner).
    async fn create_cart(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
        idempotency_key: Option<String>,
    ) -> Result<CartMutationResult> {
        gql(async move {
            check_key(&idempotency_key)?;
            let requested = customer_id
                .map(|c| UserId::parse(&c).map_err(BffError::from))
                .transpose()?;
            let customer_id = match caller(ctx) {
                Caller::User(c) if c.is_admin() => requested,
                Caller::User(c) => Some(UserId::parse(&c.sub)?),
                Caller::Invalid => {
                    return Err(BffError::Unauthenticated("invalid or expired token".into()))
                }
                Caller::Anonymous if requested.is_some() => {
                    return Err(BffError::Unauthenticated("sign in to own a cart".into()))
                }
                Caller::Anonymous => None,
            };
            let req = grpc(
                ctx,
                pb::CreateCartRequest {
                    meta: meta(ctx, idempotency_key)?,
                    cart_id: String::new(),
                    customer_id: customer_id.map(|c| c.to_string()).unwrap_or_default(),
                },
            );
            let r = backends(ctx).cart_commands.clone().create_cart(req).await?;
            Ok(r.into_inner().into())
        }
        .await)
    }

    /// Adds units of a product; a product already in the cart gets its quantity raised.
    async fn add_item_to_cart(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        product_id: ID,
        quantity: i64,
        idempotency_key: Option<String>,
    ) -> Result<CartMutationResult> {
        gql(async move {
            check_key(&idempotency_key)?;
            let req = grpc(
                ctx,
                pb::AddItemRequest {
                    meta: meta(ctx, idempotency_key)?,
                    cart_id: parse_cart_id(&cart_id)?.to_string(),
                    product_id: parse_product_id(&product_id)?.to_string(),
                    quantity: i64::from(parse_quantity(quantity)?.get()),
                },
            );
            let r = backends(ctx).cart_commands.clone().add_item(req).await?;
            Ok(r.into_inner().into())
        }
        .await)
    }

    /// Sets a line's quantity.
    async fn change_cart_item_quantity(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        product_id: ID,
        quantity: i64,
        idempotency_key: Option<String>,
    ) -> Result<CartMutationResult> {
        gql(async move {
            check_key(&idempotency_key)?;
            let req = grpc(
                ctx,
                pb::ChangeItemQuantityRequest {
                    meta: meta(ctx, idempotency_key)?,
                    cart_id: parse_cart_id(&cart_id)?.to_string(),
                    product_id: parse_product_id(&product_id)?.to_string(),
                    quantity: i64::from(parse_quantity(quantity)?.get()),
                },
            );
            let r = backends(ctx)
                .cart_commands
                .clone()
                .change_item_quantity(req)
                .await?;
            Ok(r.into_inner().into())
        }
        .await)
    }

    /// Removes a line.
    async fn remove_item_from_cart(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        product_id: ID,
        idempotency_key: Option<String>,
    ) -> Result<CartMutationResult> {
        gql(async move {
            check_key(&idempotency_key)?;
            let req = grpc(
                ctx,
                pb::RemoveItemRequest {
                    meta: meta(ctx, idempotency_key)?,
                    cart_id: parse_cart_id(&cart_id)?.to_string(),
                    product_id: parse_product_id(&product_id)?.to_string(),
                },
            );
            let r = backends(ctx).cart_commands.clone().remove_item(req).await?;
            Ok(r.into_inner().into())
        }
        .await)
    }

    /// Removes every line.
    async fn clear_cart(
        &self,
        ctx: &Context<'_>,
        cart_id: ID,
        idempotency_key: Option<String>,
    ) -> Result<CartMutationResult> {
        gql(async move {
            check_key(&idempotency_key)?;
            let req = grpc(
                ctx,
                pb::ClearCartRequest {
                    meta: meta(ctx, idempotency_key)?,
                    cart_id: parse_cart_id(&cart_id)?.to_string(),
                },
            );
            let r = backends(ctx).cart_commands.clone().clear_cart(req).await?;
            Ok(r.into_inner().into())
        }
        .await)
    }
}
