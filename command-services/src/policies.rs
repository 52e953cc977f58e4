//! Who may issue which command, per aggregate of the generic `Commands` API. The actor is the
//! one of the call's verified internal credential (see [`platform::internal_auth`]); the cart and
//! the user service check theirs in their own services.
//!
//! | aggregate | command | who |
//! |---|---|---|
//! | product | create, update, change_price, archive, unarchive, adjust_stock | admin |
//! | product | reserve_stock, release_reservation, commit_reservation | the checkout saga |
//! | product | review | a signed-in customer or admin (the purchase is verified) |
//! | order | place, mark_stock_reserved, mark_payment_authorized, confirm, time_out, cancel by the system | the checkout saga |
//! | order | cancel by the customer | the order's customer, or an admin |
//! | order | ship, mark_delivered, refund | admin |
//! | payment | authorize, capture, void, refund | the checkout saga |
//!
//! Time travel (`StateAt`) shows an order to its customer and admins, products and payments
//! to admins; internal services may read everything.

use crate::generic_service::{Permit, Policy};
use domain::order::{CancelledBy, Order, OrderCommand};
use domain::payment::{Payment, PaymentRequest};
use domain::product::{Product, ProductCommand};
use platform::internal_auth::{Actor, CHECKOUT_SAGA};
use tonic::Status;

fn admin(actor: &Actor) -> Result<Permit, Status> {
    actor.require_admin().map(|_| Permit::Granted)
}

fn saga(actor: &Actor) -> Result<Permit, Status> {
    actor
        .require_service(CHECKOUT_SAGA)
        .map(|_| Permit::Granted)
}

fn signed_in(actor: &Actor) -> Result<Permit, Status> {
    match actor.user_id() {
        Some(_) => Ok(Permit::Granted),
        None => Err(Status::permission_denied("sign in first")),
    }
}

pub struct ProductPolicy;

impl Policy<Product> for ProductPolicy {
    fn permit(&self, actor: &Actor, command: &ProductCommand) -> Result<Permit, Status> {
        use ProductCommand as C;
        match command {
            C::Create { .. }
            | C::Update { .. }
            | C::ChangePrice { .. }
            | C::Archive
            | C::Unarchive
            | C::AdjustStock { .. } => admin(actor),
            C::ReserveStock { .. } | C::ReleaseReservation { .. } | C::CommitReservation { .. } => {
                saga(actor)
            }
            C::Review { .. } => signed_in(actor),
        }
    }
}

pub struct OrderPolicy;

impl Policy<Order> for OrderPolicy {
    fn permit(&self, actor: &Actor, command: &OrderCommand) -> Result<Permit, Status> {
        use OrderCommand as C;
        match command {
            C::Place { .. }
            | C::MarkStockReserved
            | C::MarkPaymentAuthorized { .. }
            | C::Confirm
            | C::TimeOut
            | C::Cancel {
                by: CancelledBy::System,
                ..
            } => saga(actor),
            C::Cancel {
                by: CancelledBy::Customer,
                ..
            } => {
                signed_in(actor)?;
                Ok(Permit::IfOwner)
            }
            C::Ship { .. } | C::MarkDelivered | C::Refund { .. } => admin(actor),
        }
    }

    fn owner(&self, state: &Order) -> Option<String> {
        state.customer_id.map(|c| c.to_string())
    }
}

/// Payments: every request is the saga's, checked before the gateway is called.
pub struct PaymentPolicy;

impl Policy<Payment, PaymentRequest> for PaymentPolicy {
    fn permit(&self, actor: &Actor, _request: &PaymentRequest) -> Result<Permit, Status> {
        saga(actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::values::UserId;

    #[test]
    fn saga_only_admin_only_and_customer_commands() {
        let customer = Actor::Customer(UserId::generate());
        let admin = Actor::Admin(UserId::generate());
        let saga = Actor::Service(CHECKOUT_SAGA.into());
        let other = Actor::Service("cart-service".into());
        let confirm = OrderCommand::Confirm;
        assert!(OrderPolicy.permit(&saga, &confirm).is_ok());
        for a in [&customer, &admin, &other, &Actor::Anonymous] {
            assert_eq!(
                OrderPolicy.permit(a, &confirm).unwrap_err().code(),
                tonic::Code::PermissionDenied
            );
        }
        let ship = OrderCommand::MarkDelivered;
        assert!(OrderPolicy.permit(&admin, &ship).is_ok());
        assert!(OrderPolicy.permit(&customer, &ship).is_err());
        let cancel: OrderCommand =
            serde_json::from_value(serde_json::json!({"type": "cancel", "by": "customer"}))
                .unwrap();
        assert_eq!(
            OrderPolicy.permit(&customer, &cancel).unwrap(),
            Permit::IfOwner
        );
        assert!(OrderPolicy.permit(&Actor::Anonymous, &cancel).is_err());
        let by_system: OrderCommand =
            serde_json::from_value(serde_json::json!({"type": "cancel", "by": "system"})).unwrap();
        assert!(OrderPolicy.permit(&customer, &by_system).is_err());
        assert!(ProductPolicy
            .permit(&customer, &ProductCommand::Archive)
            .is_err());
        assert!(ProductPolicy
            .permit(&admin, &ProductCommand::Archive)
            .is_ok());
        assert!(ProductPolicy
            .permit(&customer, &ProductCommand::Unarchive)
            .is_err());
    }
}
