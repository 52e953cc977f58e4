//! The shopping cart aggregate: commands, events, state, `decide` and `evolve`.
//!
//! Rules: a cart holds at most [`MAX_LINES`] lines, each with a quantity between 1 and
//! [`Quantity::MAX`]; adding a product that is already in the cart raises that line's
//! quantity; removing or changing a line that is not there is refused; a checked-out cart is
//! closed and refuses every change, until the checkout saga reopens it with its lines when
//! that checkout failed ([`CartCommand::ReopenCheckout`], issued by the saga only). A checkout
//! is priced in one currency and its total fits in the amount type: a cart mixing currencies,
//! or whose total overflows, is refused at checkout (nothing is appended, the cart stays
//! open), so the saga never receives a checkout it cannot total.

use crate::values::{
    CardBrand, CardLast4, CartId, Money, OrderId, PaymentToken, ProductId, Quantity, UserId,
};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most distinct products one cart may hold.
pub const MAX_LINES: usize = 100;

/// What a client can ask of a cart. Serialised (for the generic gRPC `Commands` service) as
/// `{"type": "snake_case_name", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CartCommand {
    Create {
        cart_id: CartId,
        customer_id: Option<UserId>,
    },
    AddItem {
        product_id: ProductId,
        quantity: Quantity,
    },
    ChangeItemQuantity {
        product_id: ProductId,
        quantity: Quantity,
    },
    RemoveItem {
        product_id: ProductId,
    },
    Clear,
    /// Closes the cart into an order, with each line's price snapshotted from the catalogue.
    CheckOut {
        order_id: OrderId,
        prices: BTreeMap<ProductId, Money>,
        payment: CheckoutPayment,
    },
    /// Removes the cart (its owner's account was deleted, or it was merged away).
    Delete,
    /// An anonymous cart becomes a signed-in customer's.
    Claim {
        customer_id: UserId,
    },
    /// Adds another cart's lines (an anonymous cart merged in at log-in); quantities add up,
    /// capped at the line maximum.
    Merge {
        lines: Vec<(ProductId, Quantity)>,
    },
    /// The checkout into `order_id` failed (declined, out of stock, timed out): the cart is
    /// open again with its lines, for another try. Only the checkout saga issues it (the
    /// cart service refuses it from anyone else); a no-op unless the cart is closed by that
    /// very checkout.
    ReopenCheckout {
        order_id: OrderId,
        reason: String,
    },
}

/// How a checkout pays: a gateway token and what may be shown of the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    pub token: String,
    pub brand: String,
    pub last4: String,
}

/// How a checkout pays, as the command carries it: each part checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutPayment {
    pub token: PaymentToken,
    pub brand: CardBrand,
    pub last4: CardLast4,
}

impl From<&CheckoutPayment> for PaymentMethod {
    fn from(p: &CheckoutPayment) -> Self {
        Self {
            token: p.token.as_str().to_owned(),
            brand: p.brand.as_str().to_owned(),
            last4: p.last4.as_str().to_owned(),
        }
    }
}

/// A checked-out line with its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckedOutLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// A cart was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCreated {
    pub cart_id: CartId,
    /// The owner; absent for an anonymous cart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<UserId>,
}

/// A product that was not in the cart was added as a new line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemAdded {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// A line's quantity was set to a new value (its new total, not a delta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemQuantityChanged {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// A line was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemRemoved {
    pub product_id: ProductId,
}

/// Every line was removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCleared {}

/// The cart was checked out into an order and is closed from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCheckedOut {
    pub order_id: OrderId,
    pub customer_id: UserId,
    pub lines: Vec<CheckedOutLine>,
    pub payment: PaymentMethod,
}

/// An anonymous cart now belongs to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartClaimed {
    pub customer_id: UserId,
}

/// The checkout into `order_id` failed; the cart is open again with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartCheckoutFailed {
    pub order_id: OrderId,
    /// Why the checkout failed (the order's cancel reason).
    pub reason: String,
}

/// The cart was removed with its owner's account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartDeleted {}

/// Everything that can happen to a cart. Serialised as `{ "event_type": ..., "data": ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum CartEvent {
    CartCreated(CartCreated),
    CartItemAdded(CartItemAdded),
    CartItemQuantityChanged(CartItemQuantityChanged),
    CartItemRemoved(CartItemRemoved),
    CartCleared(CartCleared),
    CartCheckedOut(CartCheckedOut),
    CartDeleted(CartDeleted),
    CartClaimed(CartClaimed),
    CartCheckoutFailed(CartCheckoutFailed),
}

impl DomainEvent for CartEvent {
    fn event_type(&self) -> &'static str {
        match self {
            CartEvent::CartCreated(_) => "CartCreated",
            CartEvent::CartItemAdded(_) => "CartItemAdded",
            CartEvent::CartItemQuantityChanged(_) => "CartItemQuantityChanged",
            CartEvent::CartItemRemoved(_) => "CartItemRemoved",
            CartEvent::CartCleared(_) => "CartCleared",
            CartEvent::CartCheckedOut(_) => "CartCheckedOut",
            CartEvent::CartDeleted(_) => "CartDeleted",
            CartEvent::CartClaimed(_) => "CartClaimed",
            CartEvent::CartCheckoutFailed(_) => "CartCheckoutFailed",
        }
    }

    /// `CartItemAdded` is at v3; `event_schemas::upcast` reads v1 and v2.
    fn schema_version(&self) -> u32 {
        match self {
            CartEvent::CartItemAdded(_) => 3,
            _ => 1,
        }
    }
}

/// Why a cart command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("cart not found")]
    NotFound,
    #[error("cart already exists")]
    AlreadyExists,
    #[error("the cart has no line for product {0}")]
    LineNotFound(ProductId),
    #[error("a cart holds at most {MAX_LINES} different products")]
    TooManyLines,
    #[error("a line holds at most {} units", Quantity::MAX)]
    QuantityTooLarge,
    #[error("the cart is checked out and can no longer change")]
    Closed,
    #[error("an empty cart cannot be checked out")]
    Empty,
    #[error("only a signed-in customer's own cart can be checked out")]
    Anonymous,
    #[error("product {0} is not for sale")]
    Unavailable(ProductId),
    #[error("the cart belongs to another customer")]
    Forbidden,
    #[error("a cart is paid in one currency: product {0} is priced in {1}, the cart in {2}")]
    MixedCurrencies(ProductId, String, String),
    #[error("the cart's total is too large")]
    TotalTooLarge,
    #[error("the cart's total is zero: there is nothing to pay")]
    NothingToPay,
}

impl DomainError for CartError {
    fn kind(&self) -> ErrorKind {
        match self {
            CartError::NotFound | CartError::LineNotFound(_) => ErrorKind::NotFound,
            CartError::AlreadyExists => ErrorKind::AlreadyExists,
            CartError::QuantityTooLarge
            | CartError::MixedCurrencies(..)
            | CartError::TotalTooLarge => ErrorKind::InvalidArgument,
            CartError::TooManyLines
            | CartError::Closed
            | CartError::Empty
            | CartError::Anonymous
            | CartError::NothingToPay
            | CartError::Unavailable(_) => ErrorKind::FailedPrecondition,
            CartError::Forbidden => ErrorKind::PermissionDenied,
        }
    }
}

/// Where a cart is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CartStatus {
    /// No `CartCreated` yet: the stream is empty.
    #[default]
    New,
    Open,
    CheckedOut,
    Deleted,
}

/// The state folded from a cart's events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    pub id: Option<CartId>,
    pub customer_id: Option<UserId>,
    pub status: CartStatus,
    pub lines: BTreeMap<ProductId, Quantity>,
    /// The order of the checkout that closed the cart, while it is closed.
    pub checkout: Option<OrderId>,
}

impl Cart {
    /// The invariants every folded cart satisfies.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.lines.len() > MAX_LINES {
            return Err(format!("{} lines", self.lines.len()));
        }
        if self.status == CartStatus::New && (!self.lines.is_empty() || self.id.is_some()) {
            return Err("a cart that was never created has content".into());
        }
        if self
            .lines
            .values()
            .any(|q| q.get() < 1 || q.get() > Quantity::MAX)
        {
            return Err("a quantity is out of range".into());
        }
        Ok(())
    }

    /// The answer of a command given where the cart is in its life, when that alone decides
    /// it (`None`: an open cart decides on its lines).
    fn lifecycle(&self, command: &CartCommand) -> Result<Option<Vec<CartEvent>>, CartError> {
        use CartCommand as C;
        match (self.status, command) {
            (
                CartStatus::New,
                C::Create {
                    cart_id,
                    customer_id,
                },
            ) => {
                return Ok(Some(vec![CartEvent::CartCreated(CartCreated {
                    cart_id: *cart_id,
                    customer_id: *customer_id,
                })]))
            }
            (_, C::Create { .. }) => return Err(CartError::AlreadyExists),
            (CartStatus::New, _) => return Err(CartError::NotFound),
            (CartStatus::Deleted, _) => return Err(CartError::NotFound),
            (CartStatus::CheckedOut, C::Delete) => {
                return Ok(Some(vec![CartEvent::CartDeleted(CartDeleted {})]))
            }
            (CartStatus::CheckedOut, C::ReopenCheckout { order_id, reason })
                if self.checkout == Some(*order_id) =>
            {
                return Ok(Some(vec![CartEvent::CartCheckoutFailed(
                    CartCheckoutFailed {
                        order_id: *order_id,
                        reason: reason.clone(),
                    },
                )]))
            }
            // Reopened already, or closed since by another checkout: nothing to reopen.
            (CartStatus::CheckedOut | CartStatus::Open, C::ReopenCheckout { .. }) => {
                return Ok(Some(vec![]))
            }
            (CartStatus::CheckedOut, _) => return Err(CartError::Closed),
            (CartStatus::Open, _) => {}
        }
        Ok(None)
    }

    /// What an open cart does on a command.
    fn decide_open(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        use CartCommand as C;
        let events = match command {
            C::Create { .. } => return Err(CartError::AlreadyExists),
            C::AddItem {
                product_id,
                quantity,
            } => match self.lines.get(product_id) {
                Some(current) => {
                    let total = current
                        .checked_add(*quantity)
                        .map_err(|_| CartError::QuantityTooLarge)?;
                    vec![CartEvent::CartItemQuantityChanged(
                        CartItemQuantityChanged {
                            product_id: *product_id,
                            quantity: total,
                        },
                    )]
                }
                None if self.lines.len() >= MAX_LINES => return Err(CartError::TooManyLines),
                None => vec![CartEvent::CartItemAdded(CartItemAdded {
                    product_id: *product_id,
                    quantity: *quantity,
                })],
            },
            C::ChangeItemQuantity {
                product_id,
                quantity,
            } => match self.lines.get(product_id) {
                None => return Err(CartError::LineNotFound(*product_id)),
                Some(current) if current == quantity => vec![],
                Some(_) => vec![CartEvent::CartItemQuantityChanged(
                    CartItemQuantityChanged {
                        product_id: *product_id,
                        quantity: *quantity,
                    },
                )],
            },
            C::RemoveItem { product_id } => {
                if !self.lines.contains_key(product_id) {
                    return Err(CartError::LineNotFound(*product_id));
                }
                vec![CartEvent::CartItemRemoved(CartItemRemoved {
                    product_id: *product_id,
                })]
            }
            C::Clear if self.lines.is_empty() => vec![],
            C::Clear => vec![CartEvent::CartCleared(CartCleared {})],
            C::CheckOut { .. } if self.lines.is_empty() => return Err(CartError::Empty),
            C::CheckOut {
                order_id,
                prices,
                payment,
            } => vec![self.check_out(*order_id, prices, payment)?],
            C::Delete => vec![CartEvent::CartDeleted(CartDeleted {})],
            C::ReopenCheckout { .. } => vec![],
            C::Claim { customer_id } => match self.customer_id {
                Some(owner) if owner == *customer_id => vec![],
                Some(_) => return Err(CartError::Forbidden),
                None => vec![CartEvent::CartClaimed(CartClaimed {
                    customer_id: *customer_id,
                })],
            },
            C::Merge { lines } => self.merge(lines)?,
        };
        Ok(events)
    }

    /// Closes the cart into an order: every line priced by the catalogue, one currency, a
    /// total to pay, a signed-in customer.
    fn check_out(
        &self,
        order_id: OrderId,
        prices: &BTreeMap<ProductId, Money>,
        payment: &CheckoutPayment,
    ) -> Result<CartEvent, CartError> {
        let customer_id = self.customer_id.ok_or(CartError::Anonymous)?;
        let lines = self
            .lines
            .iter()
            .map(|(p, q)| {
                prices
                    .get(p)
                    .map(|price| CheckedOutLine {
                        product_id: *p,
                        quantity: *q,
                        unit_price: *price,
                    })
                    .ok_or(CartError::Unavailable(*p))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(first) = lines.first() {
            let currency = first.unit_price.currency();
            if let Some(other) = lines.iter().find(|l| l.unit_price.currency() != currency) {
                return Err(CartError::MixedCurrencies(
                    other.product_id,
                    other.unit_price.currency().as_str().to_owned(),
                    currency.as_str().to_owned(),
                ));
            }
        }
        let total = crate::values::total_of(lines.iter().map(|l| (l.unit_price, l.quantity)))
            .map_err(|_| CartError::TotalTooLarge)?;
        if total.amount_minor() == 0 {
            return Err(CartError::NothingToPay);
        }
        Ok(CartEvent::CartCheckedOut(CartCheckedOut {
            order_id,
            customer_id,
            lines,
            payment: payment.into(),
        }))
    }

    /// Another cart's lines added to this one: quantities add up, capped at the maximum.
    fn merge(&self, lines: &[(ProductId, Quantity)]) -> Result<Vec<CartEvent>, CartError> {
        let mut state = self.clone();
        let mut events = Vec::new();
        for (product_id, quantity) in lines {
            let event = match state.lines.get(product_id) {
                Some(current) => {
                    let total = current.checked_add(*quantity).unwrap_or(
                        Quantity::new(i64::from(Quantity::MAX))
                            .map_err(|_| CartError::QuantityTooLarge)?,
                    );
                    if total == *current {
                        continue;
                    }
                    CartEvent::CartItemQuantityChanged(CartItemQuantityChanged {
                        product_id: *product_id,
                        quantity: total,
                    })
                }
                None if state.lines.len() >= MAX_LINES => return Err(CartError::TooManyLines),
                None => CartEvent::CartItemAdded(CartItemAdded {
                    product_id: *product_id,
                    quantity: *quantity,
                }),
            };
            state = state.evolve(&event);
            events.push(event);
        }
        Ok(events)
    }
}

impl Aggregate for Cart {
    const STREAM_TYPE: &'static str = "cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn authorize(&self, actor: &str) -> Result<(), CartError> {
        match self.customer_id {
            Some(owner)
                if actor != format!("user:{owner}")
                    && !actor.starts_with("admin:")
                    && !actor.starts_with("service:") =>
            {
                Err(CartError::Forbidden)
            }
            _ => Ok(()),
        }
    }

    fn decide(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        match self.lifecycle(command)? {
            Some(answer) => Ok(answer),
            None => self.decide_open(command),
        }
    }

    fn evolve(mut self, event: &CartEvent) -> Self {
        match event {
            CartEvent::CartCreated(e) => {
                self.id = Some(e.cart_id);
                self.customer_id = e.customer_id;
                self.status = CartStatus::Open;
            }
            CartEvent::CartItemAdded(e) => {
                self.lines.insert(e.product_id, e.quantity);
            }
            CartEvent::CartItemQuantityChanged(e) => {
                self.lines.insert(e.product_id, e.quantity);
            }
            CartEvent::CartItemRemoved(e) => {
                self.lines.remove(&e.product_id);
            }
            CartEvent::CartCleared(_) => self.lines.clear(),
            CartEvent::CartCheckedOut(e) => {
                self.status = CartStatus::CheckedOut;
                self.checkout = Some(e.order_id);
            }
            CartEvent::CartCheckoutFailed(_) => {
                self.status = CartStatus::Open;
                self.checkout = None;
            }
            CartEvent::CartDeleted(_) => {
                self.status = CartStatus::Deleted;
                self.lines.clear();
            }
            CartEvent::CartClaimed(e) => self.customer_id = Some(e.customer_id),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_no_events};
    use proptest::prelude::*;

    fn q(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn p(n: u128) -> ProductId {
        ProductId::from(uuid::Uuid::from_u128(n))
    }

    fn order(n: u128) -> OrderId {
        OrderId::from(uuid::Uuid::from_u128(n))
    }

    fn cart() -> CartId {
        CartId::from(uuid::Uuid::from_u128(42))
    }

    fn owner() -> UserId {
        UserId::from(uuid::Uuid::from_u128(7))
    }

    fn eur(n: i64) -> Money {
        Money::new(n, crate::values::Currency::parse("EUR").unwrap()).unwrap()
    }

    fn create() -> CartCommand {
        CartCommand::Create {
            cart_id: cart(),
            customer_id: None,
        }
    }

    fn created() -> CartEvent {
        CartEvent::CartCreated(CartCreated {
            cart_id: cart(),
            customer_id: None,
        })
    }

    fn owned() -> CartEvent {
        CartEvent::CartCreated(CartCreated {
            cart_id: cart(),
            customer_id: Some(owner()),
        })
    }

    fn add(product: u128, n: i64) -> CartCommand {
        CartCommand::AddItem {
            product_id: p(product),
            quantity: q(n),
        }
    }

    fn added(product: u128, n: i64) -> CartEvent {
        CartEvent::CartItemAdded(CartItemAdded {
            product_id: p(product),
            quantity: q(n),
        })
    }

    fn changed(product: u128, n: i64) -> CartEvent {
        CartEvent::CartItemQuantityChanged(CartItemQuantityChanged {
            product_id: p(product),
            quantity: q(n),
        })
    }

    fn payment() -> PaymentMethod {
        PaymentMethod {
            token: "tok".into(),
            brand: "visa".into(),
            last4: "4242".into(),
        }
    }

    fn card() -> CheckoutPayment {
        CheckoutPayment {
            token: PaymentToken::parse("tok").unwrap(),
            brand: CardBrand::parse("visa").unwrap(),
            last4: CardLast4::parse("4242").unwrap(),
        }
    }

    fn checkout() -> CartCommand {
        checkout_at((0..8u128).map(|i| (p(i), eur(100 + i as i64))).collect())
    }

    fn checkout_at(prices: BTreeMap<ProductId, Money>) -> CartCommand {
        CartCommand::CheckOut {
            order_id: order(9),
            prices,
            payment: card(),
        }
    }

    fn checked_out() -> CartEvent {
        CartEvent::CartCheckedOut(CartCheckedOut {
            order_id: order(9),
            customer_id: owner(),
            lines: vec![CheckedOutLine {
                product_id: p(1),
                quantity: q(1),
                unit_price: eur(101),
            }],
            payment: payment(),
        })
    }

    fn reopen(order_id: OrderId) -> CartCommand {
        CartCommand::ReopenCheckout {
            order_id,
            reason: "payment declined".into(),
        }
    }

    #[test]
    fn a_cart_in_two_currencies_cannot_be_checked_out() {
        let usd = Money::new(5, crate::values::Currency::parse("USD").unwrap()).unwrap();
        let cart = given::<Cart>([owned(), added(1, 1), added(2, 1)]);
        let command = checkout_at([(p(1), eur(10)), (p(2), usd)].into());
        cart.when(command.clone())
            .then_err_eq(CartError::MixedCurrencies(p(2), "USD".into(), "EUR".into()));
        cart.when(command).then_error(ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_cart_whose_total_overflows_cannot_be_checked_out() {
        given::<Cart>([owned(), added(1, 2)])
            .when(checkout_at([(p(1), eur(i64::MAX))].into()))
            .then_err_eq(CartError::TotalTooLarge);
        let cart = given::<Cart>([owned(), added(1, 1), added(2, 1)]);
        let command = checkout_at([(p(1), eur(i64::MAX)), (p(2), eur(1))].into());
        cart.when(command.clone())
            .then_err_eq(CartError::TotalTooLarge);
        cart.when(command).then_error(ErrorKind::InvalidArgument);
        // The largest total that fits is fine.
        given::<Cart>([owned(), added(1, 1)])
            .when(checkout_at([(p(1), eur(i64::MAX))].into()))
            .then_ok();
    }

    #[test]
    fn a_free_cart_cannot_be_checked_out() {
        given::<Cart>([owned(), added(1, 3)])
            .when(checkout_at([(p(1), eur(0))].into()))
            .then_err_eq(CartError::NothingToPay);
    }

    #[test]
    fn checkout_snapshots_prices_and_closes_the_cart() {
        given::<Cart>([owned(), added(1, 1)])
            .when(checkout())
            .then([checked_out()]);
    }

    #[test]
    fn a_failed_checkout_reopens_the_cart_with_its_lines() {
        let closed = given::<Cart>([owned(), added(1, 1), checked_out()]);
        let reopened = closed
            .when(reopen(order(9)))
            .then([CartEvent::CartCheckoutFailed(CartCheckoutFailed {
                order_id: order(9),
                reason: "payment declined".into(),
            })]);
        assert_eq!(reopened.state().status, CartStatus::Open);
        assert_eq!(
            reopened.state().lines.get(&p(1)),
            Some(&q(1)),
            "its lines are kept"
        );
        // Redelivered: nothing more; another checkout of the cart is possible.
        reopened.when(reopen(order(9))).then([]);
        reopened.when(checkout()).then([checked_out()]);
        // Another order's failure does not reopen this checkout.
        closed.when(reopen(order(10))).then([]);
    }

    #[test]
    fn an_anonymous_cart_cannot_be_checked_out() {
        given::<Cart>([created(), added(1, 1)])
            .when(checkout())
            .then_err_eq(CartError::Anonymous);
    }

    #[test]
    fn a_line_without_a_price_cannot_be_checked_out() {
        given::<Cart>([owned(), added(99, 1)])
            .when(checkout())
            .then_err_eq(CartError::Unavailable(p(99)));
    }

    #[test]
    fn only_the_owner_changes_an_owned_cart() {
        let cart = given::<Cart>([owned()]);
        for actor in [format!("user:{}", owner()), "service:checkout-saga".into()] {
            cart.by(&actor).when(add(1, 1)).then([added(1, 1)]);
        }
        for actor in ["user:someone-else", "anonymous"] {
            cart.by(actor)
                .when(add(1, 1))
                .then_err_eq(CartError::Forbidden);
        }
        given::<Cart>([created()])
            .by("anonymous")
            .when(add(1, 1))
            .then([added(1, 1)]);
    }

    #[test]
    fn an_anonymous_cart_is_claimed_once() {
        given::<Cart>([created(), added(1, 1)])
            .when(CartCommand::Claim {
                customer_id: owner(),
            })
            .then([CartEvent::CartClaimed(CartClaimed {
                customer_id: owner(),
            })]);
        let other = UserId::from(uuid::Uuid::from_u128(8));
        given::<Cart>([owned()])
            .when(CartCommand::Claim { customer_id: other })
            .then_err_eq(CartError::Forbidden);
    }

    #[test]
    fn merging_adds_lines_and_quantities() {
        given::<Cart>([owned(), added(1, 2)])
            .when(CartCommand::Merge {
                lines: vec![(p(1), q(3)), (p(2), q(1))],
            })
            .then([changed(1, 5), added(2, 1)]);
    }

    #[test]
    fn creating_a_new_cart() {
        given_no_events::<Cart>().when(create()).then([created()]);
    }

    #[test]
    fn creating_twice_is_refused() {
        given::<Cart>([created()])
            .when(create())
            .then_err_eq(CartError::AlreadyExists);
    }

    #[test]
    fn commands_on_a_missing_cart_are_not_found() {
        let missing = given_no_events::<Cart>();
        missing.when(add(1, 1)).then_err_eq(CartError::NotFound);
        missing
            .when(CartCommand::Clear)
            .then_err_eq(CartError::NotFound);
    }

    #[test]
    fn adding_a_new_product_adds_a_line() {
        given::<Cart>([created()])
            .when(add(1, 2))
            .then([added(1, 2)]);
    }

    #[test]
    fn adding_a_product_again_raises_its_quantity() {
        given::<Cart>([created(), added(1, 2)])
            .when(add(1, 3))
            .then([changed(1, 5)]);
    }

    #[test]
    fn a_line_cannot_exceed_the_maximum() {
        let max = i64::from(Quantity::MAX);
        given::<Cart>([created(), added(1, max)])
            .when(add(1, 1))
            .then_err_eq(CartError::QuantityTooLarge);
    }

    #[test]
    fn quantities_below_one_or_above_the_maximum_do_not_parse() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert!(Quantity::new(i64::from(Quantity::MAX) + 1).is_err());
    }

    #[test]
    fn too_many_lines_are_refused() {
        let mut history = vec![created()];
        history.extend((0..MAX_LINES as u128).map(|i| added(i, 1)));
        given::<Cart>(history)
            .when(add(10_000, 1))
            .then_err_eq(CartError::TooManyLines);
    }

    #[test]
    fn changing_or_removing_a_missing_line_is_refused() {
        let cart = given::<Cart>([created()]);
        cart.when(CartCommand::ChangeItemQuantity {
            product_id: p(7),
            quantity: q(1),
        })
        .then_err_eq(CartError::LineNotFound(p(7)));
        cart.when(CartCommand::RemoveItem { product_id: p(7) })
            .then_err_eq(CartError::LineNotFound(p(7)));
    }

    #[test]
    fn changing_to_the_same_quantity_changes_nothing() {
        given::<Cart>([created(), added(1, 2)])
            .when(CartCommand::ChangeItemQuantity {
                product_id: p(1),
                quantity: q(2),
            })
            .then([]);
    }

    #[test]
    fn removing_and_clearing() {
        let cart = given::<Cart>([created(), added(1, 2)]);
        cart.when(CartCommand::RemoveItem { product_id: p(1) })
            .then([CartEvent::CartItemRemoved(CartItemRemoved {
                product_id: p(1),
            })]);
        cart.when(CartCommand::Clear)
            .then([CartEvent::CartCleared(CartCleared {})]);
        given::<Cart>([created()]).when(CartCommand::Clear).then([]);
    }

    #[test]
    fn a_checked_out_cart_is_closed() {
        let closed = given::<Cart>([created(), added(1, 1), checked_out()]);
        for command in [
            add(2, 1),
            CartCommand::RemoveItem { product_id: p(1) },
            CartCommand::Clear,
            checkout(),
        ] {
            closed.when(command).then_err_eq(CartError::Closed);
        }
    }

    #[test]
    fn an_empty_cart_cannot_be_checked_out() {
        given::<Cart>([created()])
            .when(checkout())
            .then_err_eq(CartError::Empty);
    }

    #[test]
    fn events_serialise_with_type_and_data() {
        let json = serde_json::to_value(added(1, 2)).unwrap();
        assert_eq!(json["event_type"], "CartItemAdded");
        assert_eq!(json["data"]["quantity"], 2);
        let back: CartEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, added(1, 2));
    }

    fn any_command() -> impl Strategy<Value = CartCommand> {
        let product = (0u128..8).prop_map(p);
        let qty = (1i64..=i64::from(Quantity::MAX)).prop_map(q);
        prop_oneof![
            Just(create()),
            (product.clone(), qty.clone()).prop_map(|(product_id, quantity)| {
                CartCommand::AddItem {
                    product_id,
                    quantity,
                }
            }),
            (product.clone(), qty).prop_map(|(product_id, quantity)| {
                CartCommand::ChangeItemQuantity {
                    product_id,
                    quantity,
                }
            }),
            product.prop_map(|product_id| CartCommand::RemoveItem { product_id }),
            Just(CartCommand::Clear),
            Just(checkout()),
            Just(reopen(order(9))),
        ]
    }

    proptest! {
        /// Whatever commands arrive, the state folded from the events `decide` produced keeps
        /// the cart's invariants, and replaying those events gives the same state.
        #[test]
        fn folded_state_always_satisfies_the_invariants(
            commands in proptest::collection::vec(any_command(), 0..200)
        ) {
            let mut state = Cart::default();
            let mut history = Vec::new();
            for command in &commands {
                if let Ok(events) = state.decide(command) {
                    for e in &events {
                        state = state.evolve(e);
                    }
                    history.extend(events);
                }
                prop_assert!(state.check_invariants().is_ok(), "{:?}", state.check_invariants());
            }
            prop_assert_eq!(Cart::fold(&history), state);
        }
    }
}
