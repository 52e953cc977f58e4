//! The GraphQL schema: cart queries and mutations. Arguments are parsed into domain value
//! types here, at the edge, so malformed input is refused before any service is called.

use crate::auth::Caller;
use crate::catalogue::{CatalogueMutation, CatalogueQuery, Product, ProductOf};
use crate::clients::Backends;
use crate::error::{gql, BffError};
use crate::live::{LiveEvents, SubscriptionRoot};
use crate::orders::OrderQuery;
use crate::shop::{MoneyView, ShopMutation, ShopQuery};
use async_graphql::{Context, Enum, MergedObject, Object, Result, Schema, SimpleObject, ID};
use domain::values::{CartId, ProductId, Quantity, UserId};
use proto::cart as pb;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    CartQuery,
    CartHistory,
    ShopQuery,
    CatalogueQuery,
    OrderQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(CartMutation, ShopMutation, CatalogueMutation);

/// Per-request data: the correlation id that follows the request into every service, and
/// the verified caller.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    pub caller: Caller,
    /// The client's address (from Envoy's `x-forwarded-for`), for per-client throttling.
    pub client: String,
}

/// The client's address of this request.
pub fn client_of<'a>(ctx: &'a Context<'_>) -> &'a str {
    ctx.data_opt::<RequestContext>()
        .map(|r| r.client.as_str())
        .unwrap_or("unknown")
}

/// The verified caller of this request.
pub fn caller<'a>(ctx: &'a Context<'_>) -> &'a Caller {
    static ANONYMOUS: Caller = Caller::Anonymous;
    ctx.data_opt::<RequestContext>()
        .map(|r| &r.caller)
        .unwrap_or(&ANONYMOUS)
}

/// Builds the schema with its limits.
pub fn build_schema(backends: Backends, live: LiveEvents) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(backends)
    .data(live)
    .limit_depth(12)
    .limit_complexity(500)
    .finish()
}

/// The same schema with looser depth and complexity limits, for introspection-only
/// documents: the standard introspection query (GraphiQL, codegen, fuzzers) nests `ofType`
/// deeper than any data query may, and runs no resolver of ours. What bounds its answer is
/// checked before (`limits::check_document`: no aliases, schema lists nested at most three
/// deep, 16 KiB at most).
pub fn build_introspection_schema(backends: Backends, live: LiveEvents) -> AppSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .data(backends)
    .data(live)
    .limit_depth(24)
    .limit_complexity(2000)
    .finish()
}

pub fn backends<'a>(ctx: &'a Context<'_>) -> &'a Backends {
    ctx.data_unchecked::<Backends>()
}

/// A gRPC request carrying the caller's correlation id.
pub fn grpc<T>(ctx: &Context<'_>, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(rc) = ctx.data_opt::<RequestContext>() {
        if let Ok(v) = rc.correlation_id.parse() {
            req.metadata_mut()
                .insert(platform::trace_context::CORRELATION_HEADER, v);
        }
    }
    req
}

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

/// An idempotency key: 1 to 128 bytes, no control characters. It holds for one stream and
/// one caller (see `docs/architecture.md`).
pub fn check_key(key: &Option<String>) -> Result<(), BffError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) => {
            Err(BffError::InvalidArgument(
                "idempotencyKey must be 1 to 128 characters, without control characters".into(),
            ))
        }
        _ => Ok(()),
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CartStatus {
    Open,
    CheckedOut,
}

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
    pub status: CartStatus,
    /// The cart's stream version this view reflects.
    pub version: i64,
    pub lines: Vec<CartLine>,
    /// Units over all lines.
    pub item_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<pb::Cart> for Cart {
    fn from(c: pb::Cart) -> Self {
        let item_count = c.lines.iter().map(|l| i64::from(l.quantity)).sum();
        Cart {
            id: ID(c.cart_id),
            customer_id: (!c.customer_id.is_empty()).then_some(ID(c.customer_id)),
            status: if c.status == "checked_out" {
                CartStatus::CheckedOut
            } else {
                CartStatus::Open
            },
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
            created_at: c.created_at,
            updated_at: c.updated_at,
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
    crate::catalogue::loader(ctx)?
        .load_one(ProductOf(id.to_string()))
        .await
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
            let id = parse_cart_id(&id)?;
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
        at: Option<String>,
    ) -> Result<Cart> {
        gql(async move {
            let id = parse_cart_id(&id)?;
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
                        at: at.unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::BackendArgs;

    #[tokio::test]
    async fn depth_and_complexity_limits_refuse_with_their_codes() {
        let args = BackendArgs {
            cart_command_url: "http://127.0.0.1:1".into(),
            cart_query_url: "http://127.0.0.1:1".into(),
            user_command_url: "http://127.0.0.1:1".into(),
            order_command_url: "http://127.0.0.1:1".into(),
            product_command_url: "http://127.0.0.1:1".into(),
            payment_command_url: "http://127.0.0.1:1".into(),
            shop_query_url: "http://127.0.0.1:1".into(),
            backend_timeout_ms: 100,
            internal: platform::internal_auth::InternalAuthArgs {
                internal_secret: Some("test-internal-secret-".repeat(2)),
            },
        };
        let schema = build_schema(Backends::new(&args).unwrap(), LiveEvents::new());
        let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
        let r = schema.execute(deep).await;
        assert_eq!(
            crate::error::engine_error_code(&r.errors[0].message),
            "QUERY_TOO_DEEP",
            "{:?}",
            r.errors
        );
        let wide = format!(
            "{{ {} }}",
            (0..90)
                .map(|i| format!(
                    "a{i}: product(id: \"00000000-0000-0000-0000-000000000000\") {{ id name description archived version createdAt }}"
                ))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let r = schema.execute(wide.as_str()).await;
        assert_eq!(
            crate::error::engine_error_code(&r.errors[0].message),
            "QUERY_TOO_COMPLEX",
            "{:?}",
            r.errors
        );
    }

    /// `bff/schema.graphql` is the published contract: it must match the code. Rewrite it
    /// with `UPDATE_SCHEMA=1 cargo test -p bff`.
    #[tokio::test]
    async fn checked_in_sdl_matches_the_code() {
        let args = BackendArgs {
            cart_command_url: "http://127.0.0.1:1".into(),
            cart_query_url: "http://127.0.0.1:1".into(),
            user_command_url: "http://127.0.0.1:1".into(),
            order_command_url: "http://127.0.0.1:1".into(),
            product_command_url: "http://127.0.0.1:1".into(),
            payment_command_url: "http://127.0.0.1:1".into(),
            shop_query_url: "http://127.0.0.1:1".into(),
            backend_timeout_ms: 100,
            internal: platform::internal_auth::InternalAuthArgs {
                internal_secret: Some("test-internal-secret-".repeat(2)),
            },
        };
        let sdl = build_schema(Backends::new(&args).unwrap(), LiveEvents::new()).sdl();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &sdl).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == sdl,
            "bff/schema.graphql drifted from the code; run UPDATE_SCHEMA=1 cargo test -p bff and commit"
        );
    }
}
