//! The product aggregate: the catalogue entry (name, description, price, categories,
//! attributes) and its stock.
//!
//! Stock rules: units on hand never go below zero; a reservation for an order holds units
//! until it is released (order cancelled) or committed (order shipped); what can be reserved
//! is what is on hand minus what is reserved, so two checkouts racing for the last unit cannot
//! both get it (the second append conflicts, reloads and is refused). Reserving, releasing and
//! committing are idempotent per order, so a saga may repeat them safely.

use crate::values::{
    AttributeKey, AttributeValue, BrandName, Category, Description, Money, OrderId, ProductId,
    ProductName, Quantity, ReviewBody, ReviewTitle, StockReason, UserId,
};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Longest product name.
pub const MAX_NAME: usize = ProductName::MAX;
/// Longest brand name.
pub const MAX_BRAND: usize = BrandName::MAX;
/// Longest description.
pub const MAX_DESCRIPTION: usize = Description::MAX;
/// Most categories of one product.
pub const MAX_CATEGORIES: usize = 20;
/// Most attributes of one product.
pub const MAX_ATTRIBUTES: usize = 50;
/// Most units on hand of one product (the read model keeps stock in a 32-bit column).
pub const MAX_STOCK: u32 = 1_000_000_000;

/// The editable catalogue fields of a product, as a command gives them: every text checked
/// by its type (see `values`), the counts by [`ProductFields::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductFields {
    pub name: ProductName,
    #[serde(default)]
    pub description: Description,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub attributes: BTreeMap<AttributeKey, AttributeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<BrandName>,
}

impl ProductFields {
    fn check(&self) -> Result<ProductDetails, ProductError> {
        if self.categories.len() > MAX_CATEGORIES {
            return Err(ProductError::Invalid(format!(
                "a product has at most {MAX_CATEGORIES} categories"
            )));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(ProductError::Invalid(format!(
                "a product has at most {MAX_ATTRIBUTES} attributes"
            )));
        }
        Ok(ProductDetails {
            name: self.name.as_str().to_owned(),
            description: self.description.as_str().to_owned(),
            categories: self
                .categories
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
                .collect(),
            brand: self.brand.as_ref().map(|b| b.as_str().to_owned()),
        })
    }
}

/// The catalogue fields of a product as events record them (plain text: a stored event
/// loads whatever it holds; commands check through [`ProductFields`]).
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

/// Serialised (for the generic gRPC `Commands` service) as `{"type": "snake_case_name", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductCommand {
    Create {
        product_id: ProductId,
        details: ProductFields,
        price: Money,
        initial_stock: u32,
    },
    Update {
        details: ProductFields,
    },
    ChangePrice {
        price: Money,
    },
    Archive,
    /// Puts an archived product back on sale.
    Unarchive,
    /// Receive (positive) or write off (negative) units on hand.
    AdjustStock {
        delta: i64,
        #[serde(default)]
        reason: StockReason,
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
    /// A customer reviews the product they received in `order_id`.
    Review {
        order_id: OrderId,
        rating: Rating,
        #[serde(default)]
        title: ReviewTitle,
        #[serde(default)]
        body: ReviewBody,
        /// What the service found about that order in the event store; never from clients.
        #[serde(skip)]
        purchase: Option<Purchase>,
    },
}

/// Longest review title.
pub const MAX_REVIEW_TITLE: usize = ReviewTitle::MAX;
/// Longest review text.
pub const MAX_REVIEW_BODY: usize = ReviewBody::MAX;

/// A star rating, from 1 to 5.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rating(u8);

impl Rating {
    pub fn new(stars: i64) -> Result<Self, ProductError> {
        u8::try_from(stars)
            .ok()
            .filter(|s| (1..=5).contains(s))
            .map(Rating)
            .ok_or_else(|| ProductError::Invalid("a rating is from 1 to 5 stars".into()))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Rating {
    type Error = ProductError;
    fn try_from(stars: u8) -> Result<Self, ProductError> {
        Rating::new(i64::from(stars))
    }
}

impl From<Rating> for u8 {
    fn from(r: Rating) -> u8 {
        r.0
    }
}

/// The reviewer's purchase as the product service established it from the order's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Who is reviewing (from the command's actor).
    pub reviewer: UserId,
    /// The order is the reviewer's, holds this product, and was delivered.
    pub received: bool,
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

/// An archived product is back on sale.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductUnarchived {}

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

/// A customer who received the product reviewed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductReviewed {
    pub customer_id: UserId,
    pub order_id: OrderId,
    pub rating: Rating,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum ProductEvent {
    ProductCreated(ProductCreated),
    ProductUpdated(ProductUpdated),
    ProductPriceChanged(ProductPriceChanged),
    ProductArchived(ProductArchived),
    ProductUnarchived(ProductUnarchived),
    StockAdjusted(StockAdjusted),
    StockReserved(StockReserved),
    StockReservationReleased(StockReservationReleased),
    StockReservationCommitted(StockReservationCommitted),
    ProductReviewed(ProductReviewed),
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ProductEvent::ProductCreated(_) => "ProductCreated",
            ProductEvent::ProductUpdated(_) => "ProductUpdated",
            ProductEvent::ProductPriceChanged(_) => "ProductPriceChanged",
            ProductEvent::ProductArchived(_) => "ProductArchived",
            ProductEvent::ProductUnarchived(_) => "ProductUnarchived",
            ProductEvent::StockAdjusted(_) => "StockAdjusted",
            ProductEvent::StockReserved(_) => "StockReserved",
            ProductEvent::StockReservationReleased(_) => "StockReservationReleased",
            ProductEvent::StockReservationCommitted(_) => "StockReservationCommitted",
            ProductEvent::ProductReviewed(_) => "ProductReviewed",
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
    #[error("only a customer who received the product can review it")]
    NotReceived,
    #[error("you have already reviewed this product")]
    AlreadyReviewed,
}

impl DomainError for ProductError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProductError::NotFound => ErrorKind::NotFound,
            ProductError::AlreadyExists => ErrorKind::AlreadyExists,
            ProductError::Invalid(_) | ProductError::CurrencyChange(_) => {
                ErrorKind::InvalidArgument
            }
            ProductError::NotReceived => ErrorKind::PermissionDenied,
            ProductError::AlreadyReviewed => ErrorKind::AlreadyExists,
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
    /// Customers who reviewed the product (one review each).
    pub reviewers: BTreeSet<UserId>,
}

impl Product {
    pub fn reserved(&self) -> u32 {
        let sum: u64 = self.reservations.values().map(|q| u64::from(q.get())).sum();
        u32::try_from(sum).unwrap_or(u32::MAX)
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
            return self.create(*product_id, details, *price, *initial_stock);
        }
        if self.id.is_none() {
            return Err(ProductError::NotFound);
        }
        let events = match command {
            C::Create { .. } => return Err(ProductError::AlreadyExists),
            C::Update { details } => {
                self.not_archived()?;
                let details = details.check()?;
                if details == self.details {
                    vec![]
                } else {
                    vec![E::ProductUpdated(ProductUpdated { details })]
                }
            }
            C::ChangePrice { price } => self.change_price(*price)?,
            C::Archive if self.archived => vec![],
            C::Archive => vec![E::ProductArchived(ProductArchived {})],
            C::Unarchive if !self.archived => vec![],
            C::Unarchive => vec![E::ProductUnarchived(ProductUnarchived {})],
            C::AdjustStock { delta, reason } => self.adjust_stock(*delta, reason)?,
            C::ReserveStock { order_id, quantity } => self.reserve(*order_id, *quantity)?,
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
                    on_hand: self.on_hand.saturating_sub(q.get()),
                })],
            },
            C::Review {
                order_id,
                rating,
                title,
                body,
                purchase,
            } => vec![self.review(*order_id, *rating, title, body, purchase.as_ref())?],
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
            ProductEvent::ProductUnarchived(_) => self.archived = false,
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
            ProductEvent::ProductReviewed(e) => {
                self.reviewers.insert(e.customer_id);
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

    fn create(
        &self,
        product_id: ProductId,
        details: &ProductFields,
        price: Money,
        initial_stock: u32,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        if self.id.is_some() {
            return Err(ProductError::AlreadyExists);
        }
        let details = details.check()?;
        if initial_stock > MAX_STOCK {
            return Err(ProductError::Invalid(format!(
                "stock on hand is at most {MAX_STOCK} units"
            )));
        }
        Ok(vec![ProductEvent::ProductCreated(ProductCreated {
            product_id,
            details,
            price,
            initial_stock,
        })])
    }

    /// A new price, in the product's currency.
    fn change_price(&self, price: Money) -> Result<Vec<ProductEvent>, ProductError> {
        self.not_archived()?;
        Ok(match self.price {
            Some(p) if p.currency() != price.currency() => {
                return Err(ProductError::CurrencyChange(
                    p.currency().as_str().to_owned(),
                ))
            }
            Some(p) if p == price => vec![],
            _ => vec![ProductEvent::ProductPriceChanged(ProductPriceChanged {
                price,
            })],
        })
    }

    /// Stock on hand moves by `delta`, within bounds and never below what is reserved.
    fn adjust_stock(
        &self,
        delta: i64,
        reason: &StockReason,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        let new = i64::from(self.on_hand).checked_add(delta);
        if new.is_none_or(|n| n > i64::from(MAX_STOCK)) {
            return Err(ProductError::Invalid(format!(
                "stock on hand is at most {MAX_STOCK} units"
            )));
        }
        let new = new.unwrap_or_default();
        if new < i64::from(self.reserved()) {
            return Err(ProductError::NegativeStock {
                on_hand: self.on_hand,
                reserved: self.reserved(),
            });
        }
        if delta == 0 {
            return Ok(vec![]);
        }
        Ok(vec![ProductEvent::StockAdjusted(StockAdjusted {
            delta,
            on_hand: u32::try_from(new).unwrap_or(MAX_STOCK),
            reason: reason.as_str().to_owned(),
        })])
    }

    /// Holds stock for an order, once per order.
    fn reserve(
        &self,
        order_id: OrderId,
        quantity: Quantity,
    ) -> Result<Vec<ProductEvent>, ProductError> {
        if self.reservations.contains_key(&order_id) || self.settled.contains(&order_id) {
            return Ok(vec![]);
        }
        self.not_archived()?;
        if quantity.get() > self.available() {
            return Err(ProductError::InsufficientStock {
                available: self.available(),
                requested: quantity.get(),
            });
        }
        Ok(vec![ProductEvent::StockReserved(StockReserved {
            order_id,
            quantity,
        })])
    }

    /// A review by someone who received the product, once per reviewer.
    fn review(
        &self,
        order_id: OrderId,
        rating: Rating,
        title: &ReviewTitle,
        body: &ReviewBody,
        purchase: Option<&Purchase>,
    ) -> Result<ProductEvent, ProductError> {
        let reviewer = match purchase {
            Some(p) if p.received => p.reviewer,
            _ => return Err(ProductError::NotReceived),
        };
        if self.reviewers.contains(&reviewer) {
            return Err(ProductError::AlreadyReviewed);
        }
        Ok(ProductEvent::ProductReviewed(ProductReviewed {
            customer_id: reviewer,
            order_id,
            rating,
            title: title.as_str().to_owned(),
            body: body.as_str().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_no_events};
    use crate::values::Currency;
    use proptest::prelude::*;

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

    fn archived() -> ProductEvent {
        ProductEvent::ProductArchived(ProductArchived {})
    }

    fn reserve(o: u128, n: i64) -> ProductCommand {
        ProductCommand::ReserveStock {
            order_id: order(o),
            quantity: q(n),
        }
    }

    fn reserved(o: u128, n: i64) -> ProductEvent {
        ProductEvent::StockReserved(StockReserved {
            order_id: order(o),
            quantity: q(n),
        })
    }

    fn adjust(delta: i64) -> ProductCommand {
        ProductCommand::AdjustStock {
            delta,
            reason: StockReason::default(),
        }
    }

    fn review(stars: i64, reviewer: u128, received: bool) -> ProductCommand {
        ProductCommand::Review {
            order_id: order(9),
            rating: Rating::new(stars).unwrap(),
            title: ReviewTitle::parse("Lovely").unwrap(),
            body: ReviewBody::parse("Keeps the coffee hot.").unwrap(),
            purchase: Some(Purchase {
                reviewer: UserId::from(uuid::Uuid::from_u128(reviewer)),
                received,
            }),
        }
    }

    fn reviewed(reviewer: u128, stars: i64) -> ProductEvent {
        ProductEvent::ProductReviewed(ProductReviewed {
            customer_id: UserId::from(uuid::Uuid::from_u128(reviewer)),
            order_id: order(9),
            rating: Rating::new(stars).unwrap(),
            title: "Lovely".into(),
            body: "Keeps the coffee hot.".into(),
        })
    }

    #[test]
    fn a_customer_who_received_the_product_reviews_it() {
        given::<Product>([created(3)])
            .when(review(5, 7, true))
            .then([reviewed(7, 5)]);
    }

    #[test]
    fn only_a_customer_who_received_the_product_reviews_it() {
        let product = given::<Product>([created(3)]);
        product
            .when(review(4, 7, false))
            .then_err_eq(ProductError::NotReceived);
        let mut unproven = review(4, 7, true);
        if let ProductCommand::Review { purchase, .. } = &mut unproven {
            *purchase = None;
        }
        product
            .when(unproven)
            .then_err_eq(ProductError::NotReceived);
    }

    #[test]
    fn one_review_per_customer() {
        let product = given::<Product>([created(3), reviewed(7, 5)]);
        product
            .when(review(1, 7, true))
            .then_err_eq(ProductError::AlreadyReviewed);
        product.when(review(3, 8, true)).then([reviewed(8, 3)]);
    }

    #[test]
    fn ratings_are_one_to_five_stars() {
        assert!(Rating::new(0).is_err());
        assert!(Rating::new(6).is_err());
        assert!(Rating::new(-1).is_err());
        assert!(serde_json::from_str::<Rating>("6").is_err());
        assert_eq!(serde_json::from_str::<Rating>("4").unwrap().get(), 4);
        // Clients cannot claim a purchase: it is not read from JSON.
        let cmd: ProductCommand = serde_json::from_str(
            r#"{"type": "review", "order_id": "00000000-0000-0000-0000-000000000009", "rating": 5,
                "purchase": {"reviewer": "00000000-0000-0000-0000-000000000007", "received": true}}"#,
        )
        .unwrap();
        assert!(matches!(cmd, ProductCommand::Review { purchase: None, .. }));
    }

    fn fields(name: &str) -> ProductFields {
        ProductFields {
            name: ProductName::parse(name).unwrap(),
            description: Description::default(),
            categories: vec![],
            attributes: BTreeMap::new(),
            brand: None,
        }
    }

    fn create(details: ProductFields, initial_stock: u32) -> ProductCommand {
        ProductCommand::Create {
            product_id: ProductId::generate(),
            details,
            price: eur(100),
            initial_stock,
        }
    }

    #[test]
    fn a_product_needs_a_name() {
        assert!(serde_json::from_str::<ProductFields>(r#"{"name": "  "}"#).is_err());
        assert!(serde_json::from_str::<ProductFields>(r#"{"name": "a\u0000b"}"#).is_err());
        let cmd: ProductCommand = serde_json::from_str(
            r#"{"type": "create", "product_id": "00000000-0000-0000-0000-000000000001",
                "details": {"name": " Cup ", "attributes": {"colour": "blue"}},
                "price": {"amount_minor": 100, "currency": "EUR"}, "initial_stock": 3}"#,
        )
        .unwrap();
        given_no_events::<Product>().when(cmd).then_events(|then| {
            assert!(
                matches!(&then[0], ProductEvent::ProductCreated(e) if e.details.name == "Cup" && e.details.attributes["colour"] == "blue")
            )
        });
    }

    #[test]
    fn bad_text_in_any_field_does_not_parse() {
        for details in [
            r#"{"name": "Cup", "description": "\u0000"}"#,
            r#"{"name": "Cup", "categories": [""]}"#,
            r#"{"name": "Cup", "categories": ["a\u001b"]}"#,
            r#"{"name": "Cup", "attributes": {"": "x"}}"#,
            r#"{"name": "Cup", "attributes": {"k": "v\nw"}}"#,
            r#"{"name": "Cup", "brand": ""}"#,
            r#"{"name": "Cup", "other": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<ProductFields>(details).is_err(),
                "{details}"
            );
        }
        let huge = format!(
            r#"{{"name": "Cup", "description": "{}"}}"#,
            "x".repeat(1_000_000)
        );
        assert!(serde_json::from_str::<ProductFields>(&huge).is_err());
        for cmd in [
            r#"{"type": "adjust_stock", "delta": 1, "reason": "\u0000"}"#,
            r#"{"type": "review", "order_id": "00000000-0000-0000-0000-000000000009", "rating": 5, "title": "a\nb"}"#,
        ] {
            assert!(
                serde_json::from_str::<ProductCommand>(cmd).is_err(),
                "{cmd}"
            );
        }
    }

    #[test]
    fn too_many_categories_or_attributes_are_refused() {
        let mut f = fields("Cup");
        f.categories = (0..=MAX_CATEGORIES)
            .map(|i| Category::parse(&format!("c{i}")).unwrap())
            .collect();
        given_no_events::<Product>()
            .when(create(f, 0))
            .then_err(|e| matches!(e, ProductError::Invalid(_)));
        let mut f = fields("Cup");
        f.attributes = (0..=MAX_ATTRIBUTES)
            .map(|i| {
                (
                    AttributeKey::parse(&format!("k{i}")).unwrap(),
                    AttributeValue::default(),
                )
            })
            .collect();
        given::<Product>([created(1)])
            .when(ProductCommand::Update { details: f })
            .then_err(|e| matches!(e, ProductError::Invalid(_)));
    }

    #[test]
    fn stock_is_bounded_and_never_overflows() {
        given_no_events::<Product>()
            .when(create(fields("Cup"), u32::MAX))
            .then_err(|e| matches!(e, ProductError::Invalid(_)));
        let product = given::<Product>([created(3)]);
        for delta in [i64::MAX, i64::from(MAX_STOCK), i64::from(u32::MAX)] {
            product
                .when(adjust(delta))
                .then_err(|e| matches!(e, ProductError::Invalid(_)));
        }
        product
            .when(adjust(i64::MIN))
            .then_err(|e| matches!(e, ProductError::NegativeStock { .. }));
        product.when(adjust(i64::from(MAX_STOCK) - 3)).then_ok();
    }

    #[test]
    fn reserving_within_available_stock() {
        given::<Product>([created(3)])
            .when(reserve(1, 2))
            .then([reserved(1, 2)]);
    }

    #[test]
    fn the_last_unit_goes_to_one_order_only() {
        given::<Product>([created(1), reserved(1, 1)])
            .when(reserve(2, 1))
            .then_err_eq(ProductError::InsufficientStock {
                available: 0,
                requested: 1,
            });
    }

    #[test]
    fn reserving_twice_for_one_order_is_a_no_op() {
        given::<Product>([created(5), reserved(1, 2)])
            .when(reserve(1, 2))
            .then([]);
    }

    #[test]
    fn releasing_gives_units_back_once() {
        let release = || ProductCommand::ReleaseReservation { order_id: order(1) };
        let released = given::<Product>([created(2), reserved(1, 2)])
            .when(release())
            .then([ProductEvent::StockReservationReleased(
                StockReservationReleased {
                    order_id: order(1),
                    quantity: q(2),
                },
            )]);
        assert_eq!(released.state().available(), 2);
        released.when(release()).then([]);
        // A settled order does not reserve again.
        released.when(reserve(1, 1)).then([]);
    }

    #[test]
    fn committing_takes_units_off_hand() {
        given::<Product>([created(5), reserved(1, 2)])
            .when(ProductCommand::CommitReservation { order_id: order(1) })
            .then([ProductEvent::StockReservationCommitted(
                StockReservationCommitted {
                    order_id: order(1),
                    quantity: q(2),
                    on_hand: 3,
                },
            )]);
    }

    #[test]
    fn stock_never_goes_below_what_is_reserved() {
        given::<Product>([created(3), reserved(1, 2)])
            .when(ProductCommand::AdjustStock {
                delta: -2,
                reason: StockReason::parse("broken").unwrap(),
            })
            .then_err_eq(ProductError::NegativeStock {
                on_hand: 3,
                reserved: 2,
            });
    }

    #[test]
    fn an_archived_product_cannot_be_reserved_or_repriced() {
        let product = given::<Product>([created(3), archived()]);
        product
            .when(reserve(1, 1))
            .then_err_eq(ProductError::Archived);
        product
            .when(ProductCommand::ChangePrice { price: eur(5) })
            .then_err_eq(ProductError::Archived);
    }

    #[test]
    fn an_unarchived_product_is_on_sale_again() {
        let back = given::<Product>([created(3), archived()])
            .when(ProductCommand::Unarchive)
            .then([ProductEvent::ProductUnarchived(ProductUnarchived {})]);
        back.when(reserve(1, 1)).then_ok();
        // On sale already: nothing to record.
        back.when(ProductCommand::Unarchive).then([]);
    }

    #[test]
    fn the_currency_of_a_price_does_not_change() {
        let usd = Money::new(100, Currency::parse("USD").unwrap()).unwrap();
        given::<Product>([created(1)])
            .when(ProductCommand::ChangePrice { price: usd })
            .then_err(|e| matches!(e, ProductError::CurrencyChange(_)));
    }

    fn any_command() -> impl Strategy<Value = ProductCommand> {
        let o = (0u128..6).prop_map(order);
        prop_oneof![
            (-5i64..10).prop_map(|delta| ProductCommand::AdjustStock {
                delta,
                reason: StockReason::parse("count").unwrap()
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
            let mut state = Product::fold(&[created(initial)]);
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
