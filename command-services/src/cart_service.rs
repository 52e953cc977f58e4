//! The cart service: an instance of the generic service (its [`CartPolicy`] and its prepare
//! step, [`CataloguePrices`]: checkout prices come from the catalogue, never from the
//! caller), served as `Commands.Execute` and behind the typed `CartCommands` front, which
//! parses each request into a domain command (bad input is `INVALID_ARGUMENT` before
//! anything is loaded). The cart's owner check is the domain's `authorize`.

use crate::error::CommandError;
use crate::generic_service::{command_context, GenericCommands, Permit, Policy, Prepare};
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
use proto::commands::commands_server::CommandsServer;
use proto::queries::queries_client::QueriesClient;
use proto::queries::ByIds;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The cart's instance of the generic service: its policy and its prepare step.
pub type CartCore = GenericCommands<Cart, CartPolicy, CataloguePrices>;

/// The typed `CartCommands` front: every method parses its request into a [`CartCommand`]
/// and runs it through the cart's generic service, which also serves `Commands.Execute`.
pub struct CartService {
    core: Arc<CartCore>,
}

/// The cart service's routes (`CartCommands` and the generic `Commands`, sharing one core)
/// and the names they serve.
pub fn routes(
    handler: Arc<CommandHandler<Cart>>,
    shop: Option<QueriesClient<AuthedChannel>>,
) -> (tonic::service::Routes, [&'static str; 2]) {
    let core = Arc::new(GenericCommands::instance(
        handler,
        CartPolicy,
        CataloguePrices { shop },
    ));
    let routes =
        tonic::service::Routes::new(CartCommandsServer::new(CartService { core: core.clone() }))
            .add_service(CommandsServer::from_arc(core));
    (
        routes,
        [
            <CartCommandsServer<CartService> as tonic::server::NamedService>::NAME,
            <CommandsServer<CartCore> as tonic::server::NamedService>::NAME,
        ],
    )
}

/// Who may issue which cart command; the owner check itself is the domain's `authorize`.
pub struct CartPolicy;

impl Policy<Cart> for CartPolicy {
    fn permit(&self, actor: &Actor, command: &CartCommand) -> Result<Permit, Status> {
        match command {
            // A cart is created for oneself (or anonymous); admins and services for anyone.
            CartCommand::Create {
                customer_id: Some(owner),
                ..
            } => actor.require_owner(&owner.to_string())?,
            // Claimed by the signed-in customer only.
            CartCommand::Claim { customer_id } => actor.require_owner(&customer_id.to_string())?,
            CartCommand::CheckOut { .. }
                if actor.user_id().is_none() && !actor.is_any_service() =>
            {
                return Err(Status::permission_denied("sign in to check out"));
            }
            CartCommand::ReopenCheckout { .. } => actor.require_service(CHECKOUT_SAGA)?,
            _ => {}
        }
        Ok(Permit::Granted)
    }

    fn owner(&self, state: &Cart) -> Option<String> {
        state.customer_id.map(|c| c.to_string())
    }
}

/// The cart's prepare step: a checkout's prices are the catalogue's current ones, never the
/// caller's.
pub struct CataloguePrices {
    /// The catalogue's query service.
    shop: Option<QueriesClient<AuthedChannel>>,
}

impl Prepare<Cart> for CataloguePrices {
    type Request = CartCommand;

    async fn prepare(
        &self,
        handler: &CommandHandler<Cart>,
        stream_id: &str,
        command: CartCommand,
        _ctx: &CommandContext,
        _actor: &Actor,
    ) -> Result<Option<CartCommand>, CommandError> {
        let CartCommand::CheckOut {
            order_id,
            prices,
            payment,
        } = command
        else {
            return Ok(Some(command));
        };
        if !prices.is_empty() {
            return Err(CommandError::InvalidArgument(
                "prices come from the catalogue; leave `prices` empty".into(),
            ));
        }
        let prices = self.catalogue_prices(handler, stream_id).await?;
        Ok(Some(CartCommand::CheckOut {
            order_id,
            prices,
            payment,
        }))
    }
}

impl CataloguePrices {
    /// Current catalogue prices of the products in a cart (archived products have none).
    async fn catalogue_prices(
        &self,
        handler: &CommandHandler<Cart>,
        cart_id: &str,
    ) -> Result<BTreeMap<ProductId, Money>, CommandError> {
        let Some(shop) = &self.shop else {
            return Err(CommandError::FailedPrecondition(
                "checkout is not configured (no catalogue)".into(),
            ));
        };
        let (state, _) = handler.load(cart_id).await?;
        let ids = state.lines.keys().map(|p| p.to_string()).collect();
        let docs = shop
            .clone()
            .get_products(ByIds { ids })
            .await
            .map_err(|s| CommandError::Unavailable(format!("catalogue: {}", s.message())))?
            .into_inner();
        let mut prices = BTreeMap::new();
        for json in docs.json {
            let v: serde_json::Value = serde_json::from_str(&json)
                .map_err(|_| CommandError::Internal("catalogue answered garbage".into()))?;
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
}

impl CartService {
    async fn run<T>(
        &self,
        request: &Request<T>,
        meta: Option<&CommandMeta>,
        cart_id: CartId,
        command: CartCommand,
    ) -> Result<Response<CommandResult>, Status> {
        let (ctx, actor) = context(request, meta)?;
        self.answer(&cart_id.to_string(), command, &ctx, &actor)
            .await
    }

    async fn answer(
        &self,
        cart_id: &str,
        command: CartCommand,
        ctx: &CommandContext,
        actor: &Actor,
    ) -> Result<Response<CommandResult>, Status> {
        let CommandOutcome { stream_id, version } =
            self.core.run(cart_id, command, ctx, actor).await?;
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
        let command = CartCommand::Create {
            cart_id: id,
            customer_id,
        };
        // A new id each time: a retry with the same key is found by the caller's key alone.
        ctx.creates_stream = creates_stream;
        self.answer(&id.to_string(), command, &ctx, &actor).await
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
        let (ctx, actor) = context(&request, r.meta.as_ref())?;
        if !r.prices.is_empty() {
            return Err(CommandError::InvalidArgument(
                "prices come from the catalogue; leave `prices` empty".into(),
            )
            .into());
        }
        if r.payment_token.is_empty() {
            return Err(CommandError::InvalidArgument("a payment token is required".into()).into());
        }
        let command = CartCommand::CheckOut {
            order_id: OrderId::parse(&r.order_id).map_err(CommandError::from)?,
            // The cart's prepare step fills in the catalogue's prices.
            prices: BTreeMap::new(),
            payment: CheckoutPayment {
                token: PaymentToken::parse(&r.payment_token).map_err(CommandError::from)?,
                brand: CardBrand::parse(&r.card_brand).map_err(CommandError::from)?,
                last4: CardLast4::parse(&r.card_last4).map_err(CommandError::from)?,
            },
        };
        self.answer(&id.to_string(), command, &ctx, &actor).await
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
        let (state, _) = self.core.handler().load(&source.to_string()).await?;
        if state.customer_id.is_some_and(|c| c != customer_id) {
            return Err(CommandError::PermissionDenied(
                "the cart belongs to another customer".into(),
            )
            .into());
        }
        if r.target_cart_id.is_empty() || r.target_cart_id == r.cart_id {
            return self
                .answer(
                    &source.to_string(),
                    CartCommand::Claim { customer_id },
                    &ctx,
                    &actor,
                )
                .await;
        }
        let target = cart_id(&r.target_cart_id)?;
        let (target_state, _) = self.core.handler().load(&target.to_string()).await?;
        if target_state.customer_id != Some(customer_id) {
            return Err(Status::permission_denied(
                "the target cart is not the customer's",
            ));
        }
        let lines = state.lines.iter().map(|(p, q)| (*p, *q)).collect();
        ctx.idempotency_key = Some(format!("merge:{source}"));
        let merged = self
            .core
            .run(
                &target.to_string(),
                CartCommand::Merge { lines },
                &ctx,
                &actor,
            )
            .await?;
        ctx.idempotency_key = Some(format!("merged:{source}"));
        self.core
            .run(&source.to_string(), CartCommand::Delete, &ctx, &actor)
            .await?;
        Ok(Response::new(CommandResult {
            cart_id: merged.stream_id,
            version: merged.version,
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
            .core
            .handler()
            .load_until(&id.to_string(), |e| bound.includes(e))
            .await?;
        let (Some(first), Some(last)) = (applied.first(), applied.last()) else {
            return Err(Status::not_found("the cart did not exist then"));
        };
        // The owner then is the owner now (a cart is claimed once, by its holder).
        let (now, _) = self.core.handler().load(&id.to_string()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_keeps_the_saga_and_signed_in_steps() {
        let customer = Actor::Customer(UserId::generate());
        let saga = Actor::Service(CHECKOUT_SAGA.into());
        let reopen = CartCommand::ReopenCheckout {
            order_id: OrderId::generate(),
            reason: "declined".into(),
        };
        assert!(CartPolicy.permit(&saga, &reopen).is_ok());
        assert!(CartPolicy.permit(&customer, &reopen).is_err());
        let check_out: CartCommand = serde_json::from_value(serde_json::json!({
            "type": "check_out",
            "order_id": uuid::Uuid::now_v7(),
            "prices": {},
            "payment": { "token": "pm_1", "brand": "visa", "last4": "4242" },
        }))
        .unwrap();
        assert!(CartPolicy.permit(&Actor::Anonymous, &check_out).is_err());
        assert!(CartPolicy.permit(&customer, &check_out).is_ok());
        let other = UserId::generate();
        let claim = CartCommand::Claim { customer_id: other };
        assert!(CartPolicy.permit(&customer, &claim).is_err());
    }

    #[test]
    fn cart_commands_travel_as_tagged_json() {
        let product = ProductId::generate();
        let add = CartCommand::AddItem {
            product_id: product,
            quantity: Quantity::new(2).unwrap(),
        };
        let json = serde_json::to_value(&add).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "type": "add_item", "product_id": product, "quantity": 2 })
        );
        assert_eq!(serde_json::from_value::<CartCommand>(json).unwrap(), add);
    }
}
