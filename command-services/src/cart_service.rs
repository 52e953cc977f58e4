//! The `CartCommands` gRPC service: parses each request into a domain command (bad input is
//! `INVALID_ARGUMENT` before anything is loaded) and hands it to the generic handler, as the
//! actor of the call's verified credential (the cart's owner check is the domain's
//! `authorize`). Checkout prices come from the catalogue, never from the caller.

use crate::error::CommandError;
use crate::generic_service::command_context;
use crate::handler::{CommandContext, CommandHandler, CommandOutcome};
use domain::cart::{Cart, CartCommand, CartStatus, CheckoutPayment};
use domain::values::{
    CardBrand, CardLast4, CartId, Currency, Money, OrderId, PaymentToken, ProductId, Quantity,
    UserId,
};
use platform::internal_auth::{Actor, AuthedChannel, CHECKOUT_SAGA};
use proto::cart::cart_commands_server::{CartCommands, CartCommandsServer};
use proto::cart::{
    AddItemRequest, AdoptCartRequest, ChangeItemQuantityRequest, CheckOutRequest, ClearCartRequest,
    CommandMeta, CommandResult, CreateCartRequest, GetCartAtRequest, RemoveItemRequest,
    ReopenCheckoutRequest,
};
use proto::queries::queries_client::QueriesClient;
use proto::queries::ByIds;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct CartService {
    handler: Arc<CommandHandler<Cart>>,
    /// The catalogue's query service, for the price snapshot at checkout.
    shop: Option<QueriesClient<AuthedChannel>>,
}

impl CartService {
    pub fn new(
        handler: Arc<CommandHandler<Cart>>,
        shop: Option<QueriesClient<AuthedChannel>>,
    ) -> CartCommandsServer<Self> {
        CartCommandsServer::new(Self { handler, shop })
    }

    /// Current catalogue prices of the products in a cart (archived products have none).
    async fn catalogue_prices(&self, cart_id: &str) -> Result<BTreeMap<ProductId, Money>, Status> {
        let Some(shop) = &self.shop else {
            return Err(Status::failed_precondition(
                "checkout is not configured (no catalogue)",
            ));
        };
        let (state, _) = self.handler.load(cart_id).await?;
        let ids = state.lines.keys().map(|p| p.to_string()).collect();
        let docs = shop
            .clone()
            .get_products(ByIds { ids })
            .await
            .map_err(|s| Status::unavailable(format!("catalogue: {}", s.message())))?
            .into_inner();
        let mut prices = BTreeMap::new();
        for json in docs.json {
            let v: serde_json::Value = serde_json::from_str(&json)
                .map_err(|_| Status::internal("catalogue answered garbage"))?;
            if v["archived"].as_bool() == Some(true) {
                continue;
            }
            let parsed = (|| {
                let id = ProductId::parse(v["id"].as_str()?).ok()?;
                let currency = Currency::parse(v["price"]["currency"].as_str()?).ok()?;
                let price = Money::new(v["price"]["amount_minor"].as_i64()?, currency).ok()?;
                Some((id, price))
            })();
            if let Some((id, price)) = parsed {
                prices.insert(id, price);
            }
        }
        Ok(prices)
    }

    async fn run<T>(
        &self,
        request: &Request<T>,
        meta: Option<&CommandMeta>,
        cart_id: CartId,
        command: CartCommand,
    ) -> Result<Response<CommandResult>, Status> {
        let (ctx, _) = context(request, meta)?;
        let CommandOutcome { stream_id, version } = self
            .handler
            .handle(&cart_id.to_string(), &command, &ctx)
            .await?;
        Ok(Response::new(CommandResult {
            cart_id: stream_id,
            version,
        }))
    }
}

/// The command context from the request's metadata and the command's own meta block, with
/// the actor of the call's credential.
pub fn context<T>(
    request: &Request<T>,
    meta: Option<&CommandMeta>,
) -> Result<(CommandContext, Actor), Status> {
    command_context(request, meta.map(|m| m.idempotency_key.as_str()))
}

/// The domain's owner check, as a gRPC status.
fn may_touch(state: &Cart, actor: &Actor) -> Result<(), Status> {
    use domain::Aggregate;
    state
        .authorize(&actor.to_string())
        .map_err(|e| CommandError::domain(&e).into())
}

fn cart_id(s: &str) -> Result<CartId, CommandError> {
    Ok(CartId::parse(s)?)
}

fn product_id(s: &str) -> Result<ProductId, CommandError> {
    Ok(ProductId::parse(s)?)
}

#[tonic::async_trait]
impl CartCommands for CartService {
    async fn create_cart(
        &self,
        request: Request<CreateCartRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let (mut ctx, actor) = context(&request, r.meta.as_ref())?;
        let creates_stream = r.cart_id.is_empty();
        let id = if creates_stream {
            CartId::generate()
        } else {
            cart_id(&r.cart_id)?
        };
        let customer_id = match r.customer_id.as_str() {
            "" => None,
            s => Some(UserId::parse(s).map_err(CommandError::from)?),
        };
        // A cart is created for oneself (or anonymous); admins and services for anyone.
        if let Some(owner) = customer_id {
            actor.require_owner(&owner.to_string())?;
        }
        let command = CartCommand::Create {
            cart_id: id,
            customer_id,
        };
        // A new id each time: a retry with the same key is found by the caller's key alone.
        ctx.creates_stream = creates_stream;
        let CommandOutcome { stream_id, version } =
            self.handler.handle(&id.to_string(), &command, &ctx).await?;
        Ok(Response::new(CommandResult {
            cart_id: stream_id,
            version,
        }))
    }

    async fn add_item(
        &self,
        request: Request<AddItemRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        let command = CartCommand::AddItem {
            product_id: product_id(&r.product_id)?,
            quantity: Quantity::new(r.quantity).map_err(CommandError::from)?,
        };
        self.run(&request, r.meta.as_ref(), id, command).await
    }

    async fn change_item_quantity(
        &self,
        request: Request<ChangeItemQuantityRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        let command = CartCommand::ChangeItemQuantity {
            product_id: product_id(&r.product_id)?,
            quantity: Quantity::new(r.quantity).map_err(CommandError::from)?,
        };
        self.run(&request, r.meta.as_ref(), id, command).await
    }

    async fn remove_item(
        &self,
        request: Request<RemoveItemRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        let command = CartCommand::RemoveItem {
            product_id: product_id(&r.product_id)?,
        };
        self.run(&request, r.meta.as_ref(), id, command).await
    }

    async fn check_out(
        &self,
        request: Request<CheckOutRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        // Who checks out is known before the catalogue is asked.
        let (_, actor) = context(&request, r.meta.as_ref())?;
        if !r.prices.is_empty() {
            return Err(CommandError::InvalidArgument(
                "prices come from the catalogue; leave `prices` empty".into(),
            )
            .into());
        }
        if actor.user_id().is_none() && !actor.is_any_service() {
            return Err(Status::permission_denied("sign in to check out"));
        }
        let prices = self.catalogue_prices(&id.to_string()).await?;
        if r.payment_token.is_empty() {
            return Err(CommandError::InvalidArgument("a payment token is required".into()).into());
        }
        let command = CartCommand::CheckOut {
            order_id: OrderId::parse(&r.order_id).map_err(CommandError::from)?,
            prices,
            payment: CheckoutPayment {
                token: PaymentToken::parse(&r.payment_token).map_err(CommandError::from)?,
                brand: CardBrand::parse(&r.card_brand).map_err(CommandError::from)?,
                last4: CardLast4::parse(&r.card_last4).map_err(CommandError::from)?,
            },
        };
        self.run(&request, r.meta.as_ref(), id, command).await
    }

    async fn delete_cart(
        &self,
        request: Request<ClearCartRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        self.run(&request, r.meta.as_ref(), id, CartCommand::Delete)
            .await
    }

    async fn adopt_cart(
        &self,
        request: Request<AdoptCartRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let (mut ctx, actor) = context(&request, r.meta.as_ref())?;
        let source = cart_id(&r.cart_id)?;
        // The cart is adopted by the signed-in caller; `customer_id`, when given, must be them.
        let customer_id = actor
            .user_id()
            .ok_or_else(|| Status::permission_denied("sign in to adopt a cart"))?;
        if !r.customer_id.is_empty()
            && UserId::parse(&r.customer_id).map_err(CommandError::from)? != customer_id
        {
            return Err(Status::permission_denied(
                "a cart is adopted by the signed-in customer only",
            ));
        }
        let (state, _) = self.handler.load(&source.to_string()).await?;
        if state.customer_id.is_some_and(|c| c != customer_id) {
            return Err(CommandError::PermissionDenied(
                "the cart belongs to another customer".into(),
            )
            .into());
        }
        if r.target_cart_id.is_empty() || r.target_cart_id == r.cart_id {
            let o = self
                .handler
                .handle(
                    &source.to_string(),
                    &CartCommand::Claim { customer_id },
                    &ctx,
                )
                .await?;
            return Ok(Response::new(CommandResult {
                cart_id: o.stream_id,
                version: o.version,
            }));
        }
        let target = cart_id(&r.target_cart_id)?;
        let (target_state, _) = self.handler.load(&target.to_string()).await?;
        if target_state.customer_id != Some(customer_id) {
            return Err(Status::permission_denied(
                "the target cart is not the customer's",
            ));
        }
        let lines = state.lines.iter().map(|(p, q)| (*p, *q)).collect();
        ctx.idempotency_key = Some(format!("merge:{source}"));
        let o = self
            .handler
            .handle(&target.to_string(), &CartCommand::Merge { lines }, &ctx)
            .await?;
        ctx.idempotency_key = Some(format!("merged:{source}"));
        self.handler
            .handle(&source.to_string(), &CartCommand::Delete, &ctx)
            .await?;
        Ok(Response::new(CommandResult {
            cart_id: o.stream_id,
            version: o.version,
        }))
    }

    async fn get_cart_at(
        &self,
        request: Request<GetCartAtRequest>,
    ) -> Result<Response<proto::cart::Cart>, Status> {
        let actor = platform::internal_auth::actor_of(&request)?;
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        let bound = crate::generic_service::TimeBound::parse(r.version, &r.at)?;
        let (state, applied) = self
            .handler
            .load_until(&id.to_string(), |e| bound.includes(e))
            .await?;
        let (Some(first), Some(last)) = (applied.first(), applied.last()) else {
            return Err(Status::not_found("the cart did not exist then"));
        };
        // The owner then is the owner now (a cart is claimed once, by its holder).
        let (now, _) = self.handler.load(&id.to_string()).await?;
        may_touch(&now, &actor)?;
        may_touch(&state, &actor)?;
        // The version that last touched each line.
        let mut touched = BTreeMap::new();
        for env in &applied {
            if let Some(p) = env.data.get("product_id").and_then(|v| v.as_str()) {
                touched.insert(p.to_owned(), env.version);
            }
        }
        let rfc = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        Ok(Response::new(proto::cart::Cart {
            cart_id: id.to_string(),
            customer_id: state.customer_id.map(|c| c.to_string()).unwrap_or_default(),
            status: match state.status {
                CartStatus::CheckedOut => "checked_out",
                CartStatus::Deleted => "deleted",
                _ => "open",
            }
            .to_owned(),
            version: last.version,
            lines: state
                .lines
                .iter()
                .map(|(p, q)| proto::cart::CartLine {
                    product_id: p.to_string(),
                    quantity: q.get(),
                    version: touched.get(&p.to_string()).copied().unwrap_or(0),
                })
                .collect(),
            created_at: rfc(first.occurred_at),
            updated_at: rfc(last.occurred_at),
        }))
    }

    async fn reopen_checkout(
        &self,
        request: Request<ReopenCheckoutRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        let (_, actor) = context(&request, r.meta.as_ref())?;
        actor.require_service(CHECKOUT_SAGA)?;
        let command = CartCommand::ReopenCheckout {
            order_id: OrderId::parse(&r.order_id).map_err(CommandError::from)?,
            reason: r.reason.clone(),
        };
        self.run(&request, r.meta.as_ref(), id, command).await
    }

    async fn clear_cart(
        &self,
        request: Request<ClearCartRequest>,
    ) -> Result<Response<CommandResult>, Status> {
        let r = request.get_ref();
        let id = cart_id(&r.cart_id)?;
        self.run(&request, r.meta.as_ref(), id, CartCommand::Clear)
            .await
    }
}
