//! Review eligibility: before the product aggregate decides on a review, the product service
//! reads the named order's events from the event store and records whether the reviewer
//! received the product in it (their order, holding this product, delivered). Clients never
//! supply that fact; the domain refuses a review without it.

use crate::error::CommandError;
use crate::generic_service::Prepare;
use crate::handler::{CommandContext, CommandHandler};
use domain::order::{Order, OrderEvent, OrderStatus};
use domain::product::{Product, ProductCommand, Purchase};
use domain::values::UserId;
use domain::Aggregate;
use platform::internal_auth::Actor;

pub struct VerifyPurchase;

impl Prepare<Product> for VerifyPurchase {
    type Request = ProductCommand;

    async fn prepare(
        &self,
        handler: &CommandHandler<Product>,
        stream_id: &str,
        command: ProductCommand,
        ctx: &CommandContext,
        _actor: &Actor,
    ) -> Result<Option<ProductCommand>, CommandError> {
        let ProductCommand::Review {
            order_id,
            rating,
            title,
            body,
            ..
        } = command
        else {
            return Ok(Some(command));
        };
        let actor = &ctx.meta.actor;
        let reviewer = actor
            .strip_prefix("user:")
            .or_else(|| actor.strip_prefix("admin:"))
            .and_then(|id| UserId::parse(id).ok())
            .ok_or_else(|| CommandError::PermissionDenied("sign in to write a review".into()))?;
        let mut order = Order::default();
        // No such order (nothing stored, or another aggregate's stream): NOT_FOUND.
        let events = handler
            .store()
            .load_typed(Order::STREAM_TYPE, &order_id.to_string(), 0)
            .await?
            .filter(|events| !events.is_empty())
            .ok_or_else(|| CommandError::NotFound(format!("no order {order_id}")))?;
        for env in events {
            let event: OrderEvent = env
                .decode()
                .map_err(|e| CommandError::Internal(format!("stored order event: {e}")))?;
            order = order.evolve(&event);
        }
        let received = order.customer_id == Some(reviewer)
            && order.status == OrderStatus::Delivered
            && order
                .lines
                .iter()
                .any(|l| l.product_id.to_string() == stream_id);
        Ok(Some(ProductCommand::Review {
            order_id,
            rating,
            title,
            body,
            purchase: Some(Purchase { reviewer, received }),
        }))
    }
}
