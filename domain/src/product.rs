//! The product aggregate: the catalogue entry (name, description, price, categories,
//! attributes) and its stock.
//!
//! Stock rules: units on hand never go below zero; a reservation for an order holds units
//! until it is released (order cancelled) or committed (order shipped); what can be reserved
//! is what is on hand minus what is reserved, so two checkouts racing for the last unit cannot
//! both get it (the second append conflicts, reloads and is refused). Reserving, releasing and
//! committing are idempotent per order, so a saga may repeat them safely.

use crate::values::{Money, OrderId, ProductId, Quantity};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Longest product name.
pub const MAX_NAME: usize = 200;
/// Longest brand name.
pub const MAX_BRAND: usize = 100;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 10_000;

/// The editable catalogue fields of a product.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductDetails {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The brand or seller the product is sold under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
}

impl ProductDetails {
    fn check(&self) -> Result<(), ProductError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(ProductError::Invalid(format!(
                "a product name has 1 to {MAX_NAME} characters"
            )));
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            return Err(ProductError::Invalid(format!(
                "a description has at most {MAX_DESCRIPTION} characters"
            )));
        }
        if let Some(brand) = &self.brand {
            if brand.trim().is_empty() || brand.chars().count() > MAX_BRAND {
                return Err(ProductError::Invalid(format!(
                    "a brand has 1 to {MAX_BRAND} characters"
                )));
            }
        }
        if self.categories.iter().any(|c| c.trim().is_empty()) {
            return Err(ProductError::Invalid("a category cannot be empty".into()));
        }
        Ok(())
    }
}

/// Serialised (for the generic gRPC `Commands` service) as `{"type": "snake_case_name", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductCommand {
    Create {
        product_id: ProductId,
        details: ProductDetails,
        price: Money,
        initial_stock: u32,
    },
    Update {
        details: ProductDetails,
    },
    ChangePrice {
        price: Money,
    },
    Archive,
    /// Receive (positive) or write off (negative) units on hand.
    AdjustStock {
        delta: i64,
        reason: String,
    },
    ReserveStock {
        order_id: OrderId,
        quantity: Quantity,
    },
    ReleaseReservation {
        order_id: OrderId,
    },
    CommitReservation {
        order_id: OrderId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductCreated {
    pub product_id: ProductId,
    pub details: ProductDetails,
    pub price: Money,
    pub initial_stock: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdated {
    pub details: ProductDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPriceChanged {
    pub price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductArchived {}

/// Units on hand changed by `delta`; `on_hand` is the new level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjusted {
    pub delta: i64,
    pub on_hand: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReserved {
    pub order_id: OrderId,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReservationReleased {
    pub order_id: OrderId,
    pub quantity: Quantity,
}

/// Reserved units left the warehouse: on hand drops by `quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReservationCommitted {
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub on_hand: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum ProductEvent {
    ProductCreated(ProductCreated),
    ProductUpdated(ProductUpdated),
    ProductPriceChanged(ProductPriceChanged),
    ProductArchived(ProductArchived),
    StockAdjusted(StockAdjusted),
    StockReserved(StockReserved),
    StockReservationReleased(StockReservationReleased),
    StockReservationCommitted(StockReservationCommitted),
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ProductEvent::ProductCreated(_) => "ProductCreated",
            ProductEvent::ProductUpdated(_) => "ProductUpdated",
            ProductEvent::ProductPriceChanged(_) => "ProductPriceChanged",
            ProductEvent::ProductArchived(_) => "ProductArchived",
            ProductEvent::StockAdjusted(_) => "StockAdjusted",
            ProductEvent::StockReserved(_) => "StockReserved",
            ProductEvent::StockReservationReleased(_) => "StockReservationReleased",
            ProductEvent::StockReservationCommitted(_) => "StockReservationCommitted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("product not found")]
    NotFound,
    #[error("product already exists")]
    AlreadyExists,
    #[error("{0}")]
    Invalid(String),
    #[error("the product is archived")]
    Archived,
    #[error("not enough stock: {available} available, {requested} requested")]
    InsufficientStock { available: u32, requested: u32 },
    #[error("stock cannot go below zero: {on_hand} on hand, {reserved} reserved")]
    NegativeStock { on_hand: u32, reserved: u32 },
    #[error("the price must be in {0}, the product's currency")]
    CurrencyChange(String),
}

impl DomainError for ProductError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProductError::NotFound => ErrorKind::NotFound,
            ProductError::AlreadyExists => ErrorKind::AlreadyExists,
            ProductError::Invalid(_) | ProductError::CurrencyChange(_) => {
                ErrorKind::InvalidArgument
            }
            ProductError::Archived
            | ProductError::InsufficientStock { .. }
            | ProductError::NegativeStock { .. } => ErrorKind::FailedPrecondition,
        }
    }
}

/// The state folded from a product's events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Product {
    pub id: Option<ProductId>,
    pub details: ProductDetails,
    pub price: Option<Money>,
    pub archived: bool,
    pub on_hand: u32,
    /// Open reservations by order.
    pub reservations: BTreeMap<OrderId, Quantity>,
    /// Orders whose reservation was released or committed: repeating those is a no-op.
    pub settled: BTreeSet<OrderId>,
}

impl Product {
    pub fn reserved(&self) -> u32 {
        self.reservations.values().map(|q| q.get()).sum()
    }

    /// Units that can still be reserved.
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved())
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        if self.reserved() > self.on_hand {
            return Err(format!(
                "{} reserved but {} on hand",
                self.reserved(),
                self.on_hand
            ));
        }
        Ok(())
    }
}

impl Aggregate for Product {
    const STREAM_TYPE: &'static str = "product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn decide(&self, command: &ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        use ProductCommand as C;
        use ProductEvent as E;
        if let C::Create {
            product_id,
            details,
            price,
            initial_stock,
        } = command
        {
            if self.id.is_some() {
                return Err(ProductError::AlreadyExists);
            }
            details.check()?;
            return Ok(vec![E::ProductCreated(ProductCreated {
                product_id: *product_id,
                details: details.clone(),
                price: *price,
                initial_stock: *initial_stock,
            })]);
        }
        if self.id.is_none() {
            return Err(ProductError::NotFound);
        }
        let events = match command {
            C::Create { .. } => return Err(ProductError::AlreadyExists),
            C::Update { details } => {
                self.not_archived()?;
                details.check()?;
                if *details == self.details {
                    vec![]
                } else {
                    vec![E::ProductUpdated(ProductUpdated {
                        details: details.clone(),
                    })]
                }
            }
            C::ChangePrice { price } => {
                self.not_archived()?;
                match self.price {
                    Some(p) if p.currency() != price.currency() => {
                        return Err(ProductError::CurrencyChange(
                            p.currency().as_str().to_owned(),
                        ))
                    }
                    Some(p) if p == *price => vec![],
                    _ => vec![E::ProductPriceChanged(ProductPriceChanged {
                        price: *price,
                    })],
                }
            }
            C::Archive if self.archived => vec![],
            C::Archive => vec![E::ProductArchived(ProductArchived {})],
            C::AdjustStock { delta, reason } => {
                let new = i64::from(self.on_hand) + delta;
                if new < i64::from(self.reserved()) || new > i64::from(u32::MAX) {
                    return Err(ProductError::NegativeStock {
                        on_hand: self.on_hand,
                        reserved: self.reserved(),
                    });
                }
                if *delta == 0 {
                    vec![]
                } else {
                    vec![E::StockAdjusted(StockAdjusted {
                        delta: *delta,
                        on_hand: new as u32,
                        reason: reason.clone(),
                    })]
                }
            }
            C::ReserveStock { order_id, quantity } => {
                if self.reservations.contains_key(order_id) || self.settled.contains(order_id) {
                    vec![]
                } else {
                    self.not_archived()?;
                    if quantity.get() > self.available() {
                        return Err(ProductError::InsufficientStock {
                            available: self.available(),
                            requested: quantity.get(),
                        });
                    }
                    vec![E::StockReserved(StockReserved {
                        order_id: *order_id,
                        quantity: *quantity,
                    })]
                }
            }
            C::ReleaseReservation { order_id } => match self.reservations.get(order_id) {
                None => vec![],
                Some(q) => vec![E::StockReservationReleased(StockReservationReleased {
                    order_id: *order_id,
                    quantity: *q,
                })],
            },
            C::CommitReservation { order_id } => match self.reservations.get(order_id) {
                None => vec![],
                Some(q) => vec![E::StockReservationCommitted(StockReservationCommitted {
                    order_id: *order_id,
                    quantity: *q,
                    on_hand: self.on_hand - q.get(),
                })],
            },
        };
        Ok(events)
    }

    fn evolve(mut self, event: &ProductEvent) -> Self {
        match event {
            ProductEvent::ProductCreated(e) => {
                self.id = Some(e.product_id);
                self.details = e.details.clone();
                self.price = Some(e.price);
                self.on_hand = e.initial_stock;
            }
            ProductEvent::ProductUpdated(e) => self.details = e.details.clone(),
            ProductEvent::ProductPriceChanged(e) => self.price = Some(e.price),
            ProductEvent::ProductArchived(_) => self.archived = true,
            ProductEvent::StockAdjusted(e) => self.on_hand = e.on_hand,
            ProductEvent::StockReserved(e) => {
                self.reservations.insert(e.order_id, e.quantity);
            }
            ProductEvent::StockReservationReleased(e) => {
                self.reservations.remove(&e.order_id);
                self.settled.insert(e.order_id);
            }
            ProductEvent::StockReservationCommitted(e) => {
                self.reservations.remove(&e.order_id);
                self.settled.insert(e.order_id);
                self.on_hand = e.on_hand;
            }
        }
        self
    }
}

impl Product {
    fn not_archived(&self) -> Result<(), ProductError> {
        if self.archived {
            Err(ProductError::Archived)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Currency;
    use proptest::prelude::*;

    fn given(events: impl IntoIterator<Item = ProductEvent>) -> Product {
        Product::fold(&events.into_iter().collect::<Vec<_>>())
    }

    fn eur(n: i64) -> Money {
        Money::new(n, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn order(n: u128) -> OrderId {
        OrderId::from(uuid::Uuid::from_u128(n))
    }

    fn q(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn created(stock: u32) -> ProductEvent {
        ProductEvent::ProductCreated(ProductCreated {
            product_id: ProductId::from(uuid::Uuid::from_u128(1)),
            details: ProductDetails {
                name: "Espresso cup".into(),
                ..Default::default()
            },
            price: eur(1299),
            initial_stock: stock,
        })
    }

    fn reserved(o: u128, n: i64) -> ProductEvent {
        ProductEvent::StockReserved(StockReserved {
            order_id: order(o),
            quantity: q(n),
        })
    }

    #[test]
    fn a_product_needs_a_name() {
        let then = given([]).decide(&ProductCommand::Create {
            product_id: ProductId::generate(),
            details: ProductDetails::default(),
            price: eur(100),
            initial_stock: 0,
        });
        assert!(matches!(then, Err(ProductError::Invalid(_))));
    }

    #[test]
    fn reserving_within_available_stock() {
        let then = given([created(3)]).decide(&ProductCommand::ReserveStock {
            order_id: order(1),
            quantity: q(2),
        });
        assert_eq!(then, Ok(vec![reserved(1, 2)]));
    }

    #[test]
    fn the_last_unit_goes_to_one_order_only() {
        let then = given([created(1), reserved(1, 1)]).decide(&ProductCommand::ReserveStock {
            order_id: order(2),
            quantity: q(1),
        });
        assert_eq!(
            then,
            Err(ProductError::InsufficientStock {
                available: 0,
                requested: 1
            })
        );
    }

    #[test]
    fn reserving_twice_for_one_order_is_a_no_op() {
        let then = given([created(5), reserved(1, 2)]).decide(&ProductCommand::ReserveStock {
            order_id: order(1),
            quantity: q(2),
        });
        assert_eq!(then, Ok(vec![]));
    }

    #[test]
    fn releasing_gives_units_back_once() {
        let history = [created(2), reserved(1, 2)];
        let then = given(history.clone())
            .decide(&ProductCommand::ReleaseReservation { order_id: order(1) })
            .unwrap();
        assert_eq!(
            then,
            vec![ProductEvent::StockReservationReleased(
                StockReservationReleased {
                    order_id: order(1),
                    quantity: q(2)
                }
            )]
        );
        let mut all = history.to_vec();
        all.extend(then);
        let state = given(all);
        assert_eq!(state.available(), 2);
        assert_eq!(
            state.decide(&ProductCommand::ReleaseReservation { order_id: order(1) }),
            Ok(vec![])
        );
        assert_eq!(
            state.decide(&ProductCommand::ReserveStock {
                order_id: order(1),
                quantity: q(1)
            }),
            Ok(vec![]),
            "a settled order does not reserve again"
        );
    }

    #[test]
    fn committing_takes_units_off_hand() {
        let then = given([created(5), reserved(1, 2)])
            .decide(&ProductCommand::CommitReservation { order_id: order(1) });
        assert_eq!(
            then,
            Ok(vec![ProductEvent::StockReservationCommitted(
                StockReservationCommitted {
                    order_id: order(1),
                    quantity: q(2),
                    on_hand: 3
                }
            )])
        );
    }

    #[test]
    fn stock_never_goes_below_what_is_reserved() {
        let then = given([created(3), reserved(1, 2)]).decide(&ProductCommand::AdjustStock {
            delta: -2,
            reason: "broken".into(),
        });
        assert_eq!(
            then,
            Err(ProductError::NegativeStock {
                on_hand: 3,
                reserved: 2
            })
        );
    }

    #[test]
    fn an_archived_product_cannot_be_reserved_or_repriced() {
        let history = [
            created(3),
            ProductEvent::ProductArchived(ProductArchived {}),
        ];
        assert_eq!(
            given(history.clone()).decide(&ProductCommand::ReserveStock {
                order_id: order(1),
                quantity: q(1)
            }),
            Err(ProductError::Archived)
        );
        assert_eq!(
            given(history).decide(&ProductCommand::ChangePrice { price: eur(5) }),
            Err(ProductError::Archived)
        );
    }

    #[test]
    fn the_currency_of_a_price_does_not_change() {
        let usd = Money::new(100, Currency::parse("USD").unwrap()).unwrap();
        assert!(matches!(
            given([created(1)]).decide(&ProductCommand::ChangePrice { price: usd }),
            Err(ProductError::CurrencyChange(_))
        ));
    }

    fn any_command() -> impl Strategy<Value = ProductCommand> {
        let o = (0u128..6).prop_map(order);
        prop_oneof![
            (-5i64..10).prop_map(|delta| ProductCommand::AdjustStock {
                delta,
                reason: "count".into()
            }),
            (o.clone(), 1i64..5).prop_map(|(order_id, n)| ProductCommand::ReserveStock {
                order_id,
                quantity: q(n)
            }),
            o.clone()
                .prop_map(|order_id| ProductCommand::ReleaseReservation { order_id }),
            o.prop_map(|order_id| ProductCommand::CommitReservation { order_id }),
        ]
    }

    proptest! {
        /// Whatever the saga and the back office do, stock on hand never drops below what
        /// is reserved (and so never below zero).
        #[test]
        fn reservations_never_exceed_stock(
            initial in 0u32..5,
            commands in proptest::collection::vec(any_command(), 0..100)
        ) {
            let mut state = given([created(initial)]);
            for c in &commands {
                if let Ok(events) = state.decide(c) {
                    for e in &events {
                        state = state.evolve(e);
                    }
                }
                prop_assert!(state.check_invariants().is_ok());
            }
        }
    }
}
