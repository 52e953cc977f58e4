//! The order aggregate: placed from a checkout, then moved through its lifecycle
//!
//! placed → stock reserved → payment authorized → confirmed → shipped → delivered
//!
//! by the checkout saga and the back office. It can be cancelled before shipment (by the
//! customer or by the saga's compensation) and refunded, in part or in full, once paid (also
//! after it was cancelled): never more than was paid. Cancelling a paid order refunds what is
//! left in the same command. The saga's timeout ([`OrderCommand::TimeOut`]) cancels only an
//! order that is not confirmed yet: the aggregate, not a status row, decides. A step repeated
//! in the state it leads to is a no-op (the saga may redeliver); any other illegal transition
//! is refused with the status it was tried in.

use crate::values::{
    CancelReason, Carrier, CartId, Money, OrderId, PaymentId, ProductId, Quantity, TrackingNumber,
    UserId,
};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most lines one order may hold.
pub const MAX_LINES: usize = 100;

/// One line of an order, with the unit price snapshotted at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// No `OrderPlaced` yet.
    #[default]
    New,
    Placed,
    StockReserved,
    PaymentAuthorized,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::Placed => "placed",
            OrderStatus::StockReserved => "stock_reserved",
            OrderStatus::PaymentAuthorized => "payment_authorized",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// Who cancelled an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Customer,
    System,
}

/// Serialised (for the generic gRPC `Commands` service) as `{"type": "snake_case_name", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderCommand {
    Place {
        order_id: OrderId,
        customer_id: UserId,
        cart_id: CartId,
        lines: Vec<OrderLine>,
    },
    MarkStockReserved,
    MarkPaymentAuthorized {
        payment_id: PaymentId,
    },
    Confirm,
    Ship {
        carrier: Carrier,
        tracking_number: TrackingNumber,
    },
    MarkDelivered,
    Cancel {
        #[serde(default)]
        reason: CancelReason,
        by: CancelledBy,
    },
    Refund {
        amount: Money,
    },
    /// The checkout saga's deadline passed: cancels the order if it is not confirmed yet
    /// (`OrderCancelled` by the system, "checkout timed out"); refused once it is confirmed,
    /// shipped or delivered, and a no-op once cancelled.
    TimeOut,
}

/// The cancel reason of a checkout that ran out of time.
pub const TIMED_OUT: &str = "checkout timed out";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: UserId,
    pub cart_id: CartId,
    pub lines: Vec<OrderLine>,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStockReserved {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPaymentAuthorized {
    pub payment_id: PaymentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderShipped {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderDelivered {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub reason: String,
    pub by: CancelledBy,
    /// The status the order was in when it was cancelled (tells the saga what to undo).
    pub previous_status: OrderStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRefunded {
    pub amount: Money,
    /// Everything refunded so far, this refund included.
    pub total_refunded: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum OrderEvent {
    OrderPlaced(OrderPlaced),
    OrderStockReserved(OrderStockReserved),
    OrderPaymentAuthorized(OrderPaymentAuthorized),
    OrderConfirmed(OrderConfirmed),
    OrderShipped(OrderShipped),
    OrderDelivered(OrderDelivered),
    OrderCancelled(OrderCancelled),
    OrderRefunded(OrderRefunded),
}

impl OrderEvent {
    /// The status the order is in after this event, when the event moves it (a refund does
    /// not).
    pub fn status_after(&self) -> Option<OrderStatus> {
        match self {
            OrderEvent::OrderPlaced(_) => Some(OrderStatus::Placed),
            OrderEvent::OrderStockReserved(_) => Some(OrderStatus::StockReserved),
            OrderEvent::OrderPaymentAuthorized(_) => Some(OrderStatus::PaymentAuthorized),
            OrderEvent::OrderConfirmed(_) => Some(OrderStatus::Confirmed),
            OrderEvent::OrderShipped(_) => Some(OrderStatus::Shipped),
            OrderEvent::OrderDelivered(_) => Some(OrderStatus::Delivered),
            OrderEvent::OrderCancelled(_) => Some(OrderStatus::Cancelled),
            OrderEvent::OrderRefunded(_) => None,
        }
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::OrderPlaced(_) => "OrderPlaced",
            OrderEvent::OrderStockReserved(_) => "OrderStockReserved",
            OrderEvent::OrderPaymentAuthorized(_) => "OrderPaymentAuthorized",
            OrderEvent::OrderConfirmed(_) => "OrderConfirmed",
            OrderEvent::OrderShipped(_) => "OrderShipped",
            OrderEvent::OrderDelivered(_) => "OrderDelivered",
            OrderEvent::OrderCancelled(_) => "OrderCancelled",
            OrderEvent::OrderRefunded(_) => "OrderRefunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotFound,
    #[error("order already exists")]
    AlreadyExists,
    #[error("{0}")]
    Invalid(String),
    #[error("cannot {action} an order that is {}", status.as_str())]
    InvalidTransition {
        status: OrderStatus,
        action: &'static str,
    },
    #[error("cannot refund {requested} minor units: {refundable} left to refund")]
    RefundTooLarge { requested: i64, refundable: i64 },
}

impl DomainError for OrderError {
    fn kind(&self) -> ErrorKind {
        match self {
            OrderError::NotFound => ErrorKind::NotFound,
            OrderError::AlreadyExists => ErrorKind::AlreadyExists,
            OrderError::Invalid(_) => ErrorKind::InvalidArgument,
            OrderError::InvalidTransition { .. } | OrderError::RefundTooLarge { .. } => {
                ErrorKind::FailedPrecondition
            }
        }
    }
}

/// The state folded from an order's events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Order {
    pub id: Option<OrderId>,
    pub customer_id: Option<UserId>,
    pub cart_id: Option<CartId>,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Option<Money>,
    pub payment_id: Option<PaymentId>,
    pub refunded: Option<Money>,
    pub shipment: Option<OrderShipped>,
    /// The order was confirmed, so its payment was captured (even if it was cancelled since).
    #[serde(default)]
    pub paid: bool,
}

impl Order {
    /// What may still be refunded: the total less everything refunded so far (zero for an
    /// order that was never paid).
    pub fn refundable(&self) -> Result<Money, OrderError> {
        let total = self.total.ok_or(OrderError::NotFound)?;
        if !self.paid {
            return Ok(Money::zero(total.currency()));
        }
        let already = self.refunded.unwrap_or(Money::zero(total.currency()));
        total
            .checked_sub(already)
            .map_err(|e| OrderError::Invalid(e.0))
    }

    /// A refund of part or all of what was paid, never more than is left to refund.
    fn refund(&self, amount: Money) -> Result<Vec<OrderEvent>, OrderError> {
        if !self.paid {
            return Err(OrderError::InvalidTransition {
                status: self.status,
                action: "refund",
            });
        }
        let total = self.total.ok_or(OrderError::NotFound)?;
        let already = self.refunded.unwrap_or(Money::zero(total.currency()));
        let refundable = self.refundable()?;
        if amount.currency() != total.currency() {
            return Err(OrderError::Invalid(format!(
                "refunds are in {}",
                total.currency().as_str()
            )));
        }
        if amount.amount_minor() == 0 || amount.amount_minor() > refundable.amount_minor() {
            return Err(OrderError::RefundTooLarge {
                requested: amount.amount_minor(),
                refundable: refundable.amount_minor(),
            });
        }
        let total_refunded = already
            .checked_add(amount)
            .map_err(|e| OrderError::Invalid(e.0))?;
        Ok(vec![OrderEvent::OrderRefunded(OrderRefunded {
            amount,
            total_refunded,
        })])
    }

    fn cancel(&self, reason: &str, by: CancelledBy) -> Result<Vec<OrderEvent>, OrderError> {
        let mut events = vec![OrderEvent::OrderCancelled(OrderCancelled {
            reason: reason.to_owned(),
            by,
            previous_status: self.status,
        })];
        // A paid order is refunded in full: cancelling never keeps the customer's money.
        let refundable = self.refundable()?;
        if refundable.amount_minor() > 0 {
            events.push(OrderEvent::OrderRefunded(OrderRefunded {
                amount: refundable,
                total_refunded: self.total.ok_or(OrderError::NotFound)?,
            }));
        }
        Ok(events)
    }
}

/// The total of a list of lines, all in one currency (the cart's checkout is refused by the
/// same rule, so an order placed from a checkout always has one).
pub fn total_of(lines: &[OrderLine]) -> Result<Money, OrderError> {
    crate::values::total_of(lines.iter().map(|l| (l.unit_price, l.quantity)))
        .map_err(|e| OrderError::Invalid(e.0))
}

impl Aggregate for Order {
    const STREAM_TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderCommand as C;
        use OrderEvent as E;
        use OrderStatus as S;
        let status = self.status;
        let refuse = |action| Err(OrderError::InvalidTransition { status, action });
        match (status, command) {
            (
                S::New,
                C::Place {
                    order_id,
                    customer_id,
                    cart_id,
                    lines,
                },
            ) => place(*order_id, *customer_id, *cart_id, lines),
            (_, C::Place { .. }) => Err(OrderError::AlreadyExists),
            (S::New, _) => Err(OrderError::NotFound),

            (S::Placed, C::MarkStockReserved) => {
                Ok(vec![E::OrderStockReserved(OrderStockReserved {})])
            }
            (S::StockReserved, C::MarkStockReserved) => Ok(vec![]),
            (_, C::MarkStockReserved) => refuse("reserve stock for"),

            (S::StockReserved, C::MarkPaymentAuthorized { payment_id }) => {
                Ok(vec![E::OrderPaymentAuthorized(OrderPaymentAuthorized {
                    payment_id: *payment_id,
                })])
            }
            (S::PaymentAuthorized, C::MarkPaymentAuthorized { payment_id })
                if self.payment_id == Some(*payment_id) =>
            {
                Ok(vec![])
            }
            (_, C::MarkPaymentAuthorized { .. }) => refuse("authorize payment for"),

            (S::PaymentAuthorized, C::Confirm) => Ok(vec![E::OrderConfirmed(OrderConfirmed {})]),
            (S::Confirmed, C::Confirm) => Ok(vec![]),
            (_, C::Confirm) => refuse("confirm"),

            (
                S::Confirmed,
                C::Ship {
                    carrier,
                    tracking_number,
                },
            ) => Ok(vec![E::OrderShipped(OrderShipped {
                carrier: carrier.as_str().to_owned(),
                tracking_number: tracking_number.as_str().to_owned(),
            })]),
            (_, C::Ship { .. }) => refuse("ship"),

            (S::Shipped, C::MarkDelivered) => Ok(vec![E::OrderDelivered(OrderDelivered {})]),
            (S::Delivered, C::MarkDelivered) => Ok(vec![]),
            (_, C::MarkDelivered) => refuse("deliver"),

            (S::Cancelled, C::Cancel { .. } | C::TimeOut) => Ok(vec![]),
            (S::Shipped | S::Delivered, C::Cancel { .. }) => refuse("cancel"),
            (_, C::Cancel { reason, by }) => self.cancel(reason.as_str(), *by),
            (S::Placed | S::StockReserved | S::PaymentAuthorized, C::TimeOut) => {
                self.cancel(TIMED_OUT, CancelledBy::System)
            }
            (_, C::TimeOut) => refuse("time out"),

            (_, C::Refund { amount }) => self.refund(*amount),
        }
    }

    fn view(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    fn evolve(mut self, event: &OrderEvent) -> Self {
        match event {
            OrderEvent::OrderPlaced(e) => {
                self.id = Some(e.order_id);
                self.customer_id = Some(e.customer_id);
                self.cart_id = Some(e.cart_id);
                self.lines = e.lines.clone();
                self.total = Some(e.total);
            }
            OrderEvent::OrderPaymentAuthorized(e) => self.payment_id = Some(e.payment_id),
            OrderEvent::OrderShipped(e) => self.shipment = Some(e.clone()),
            OrderEvent::OrderRefunded(e) => self.refunded = Some(e.total_refunded),
            OrderEvent::OrderConfirmed(_) => self.paid = true,
            OrderEvent::OrderStockReserved(_)
            | OrderEvent::OrderDelivered(_)
            | OrderEvent::OrderCancelled(_) => {}
        }
        if let Some(status) = event.status_after() {
            self.status = status;
        }
        self
    }
}

/// A new order of at most [`MAX_LINES`] lines, its total computed from them.
fn place(
    order_id: OrderId,
    customer_id: UserId,
    cart_id: CartId,
    lines: &[OrderLine],
) -> Result<Vec<OrderEvent>, OrderError> {
    if lines.len() > MAX_LINES {
        return Err(OrderError::Invalid(format!(
            "an order holds at most {MAX_LINES} lines"
        )));
    }
    let total = total_of(lines)?;
    Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
        order_id,
        customer_id,
        cart_id,
        lines: lines.to_vec(),
        total,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_no_events};
    use crate::values::Currency;

    fn eur(n: i64) -> Money {
        Money::new(n, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn id<T: From<uuid::Uuid>>(n: u128) -> T {
        T::from(uuid::Uuid::from_u128(n))
    }

    fn line(quantity: i64, unit_price: Money) -> OrderLine {
        OrderLine {
            product_id: id(4),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price,
        }
    }

    fn place(lines: Vec<OrderLine>) -> OrderCommand {
        OrderCommand::Place {
            order_id: id(1),
            customer_id: id(2),
            cart_id: id(3),
            lines,
        }
    }

    fn placed() -> OrderEvent {
        OrderEvent::OrderPlaced(OrderPlaced {
            order_id: id(1),
            customer_id: id(2),
            cart_id: id(3),
            lines: vec![line(2, eur(1000))],
            total: eur(2000),
        })
    }

    fn confirmed() -> Vec<OrderEvent> {
        vec![
            placed(),
            OrderEvent::OrderStockReserved(OrderStockReserved {}),
            OrderEvent::OrderPaymentAuthorized(OrderPaymentAuthorized { payment_id: id(9) }),
            OrderEvent::OrderConfirmed(OrderConfirmed {}),
        ]
    }

    fn cancel() -> OrderCommand {
        OrderCommand::Cancel {
            reason: CancelReason::parse("changed my mind").unwrap(),
            by: CancelledBy::Customer,
        }
    }

    fn refund(amount: i64) -> OrderCommand {
        OrderCommand::Refund {
            amount: eur(amount),
        }
    }

    fn refunded(amount: i64, total_refunded: i64) -> OrderEvent {
        OrderEvent::OrderRefunded(OrderRefunded {
            amount: eur(amount),
            total_refunded: eur(total_refunded),
        })
    }

    #[test]
    fn placing_computes_the_total() {
        given_no_events::<Order>()
            .when(place(vec![line(2, eur(1000))]))
            .then([placed()]);
    }

    #[test]
    fn an_order_needs_lines_in_one_currency() {
        let usd = Money::new(5, Currency::parse("USD").unwrap()).unwrap();
        for lines in [vec![], vec![line(1, eur(5)), line(1, usd)]] {
            given_no_events::<Order>()
                .when(place(lines))
                .then_err(|e| matches!(e, OrderError::Invalid(_)));
        }
    }

    #[test]
    fn the_happy_lifecycle() {
        let mut order = given::<Order>([placed()]);
        for (command, status) in [
            (OrderCommand::MarkStockReserved, OrderStatus::StockReserved),
            (
                OrderCommand::MarkPaymentAuthorized { payment_id: id(9) },
                OrderStatus::PaymentAuthorized,
            ),
            (OrderCommand::Confirm, OrderStatus::Confirmed),
            (
                OrderCommand::Ship {
                    carrier: Carrier::parse("DHL").unwrap(),
                    tracking_number: TrackingNumber::parse("JD0001").unwrap(),
                },
                OrderStatus::Shipped,
            ),
            (OrderCommand::MarkDelivered, OrderStatus::Delivered),
        ] {
            order = order
                .when(command.clone())
                .then_events(|events| assert_eq!(events.len(), 1));
            assert_eq!(order.state().status, status);
            // Repeating a step (a redelivered saga command) changes nothing.
            if !matches!(command, OrderCommand::Ship { .. }) {
                order.when(command).then([]);
            }
        }
    }

    #[test]
    fn illegal_transitions_say_why() {
        let placed = given::<Order>([placed()]);
        placed
            .when(OrderCommand::Confirm)
            .then_err_eq(OrderError::InvalidTransition {
                status: OrderStatus::Placed,
                action: "confirm",
            });
        placed
            .when(OrderCommand::Confirm)
            .then_err(|e| e.to_string() == "cannot confirm an order that is placed");
    }

    #[test]
    fn cancelling_before_shipment_only() {
        given::<Order>(confirmed())
            .when(cancel())
            .then_events(|then| {
                assert!(matches!(
                    &then[0],
                    OrderEvent::OrderCancelled(OrderCancelled {
                        previous_status: OrderStatus::Confirmed,
                        ..
                    })
                ));
                // A paid order is refunded in full by its cancellation.
                assert_eq!(then[1], refunded(2000, 2000));
            });
        let mut shipped = confirmed();
        shipped.push(OrderEvent::OrderShipped(OrderShipped {
            carrier: "DHL".into(),
            tracking_number: "1".into(),
        }));
        given::<Order>(shipped)
            .when(cancel())
            .then_err(|e| matches!(e, OrderError::InvalidTransition { .. }));
    }

    #[test]
    fn refunds_up_to_the_total_once_paid() {
        given::<Order>([placed()])
            .when(refund(1))
            .then_err(|e| matches!(e, OrderError::InvalidTransition { .. }));
        let mut history = confirmed();
        history.push(refunded(1500, 1500));
        let partly_refunded = given::<Order>(history);
        partly_refunded
            .when(refund(600))
            .then_err_eq(OrderError::RefundTooLarge {
                requested: 600,
                refundable: 500,
            });
        partly_refunded
            .when(refund(500))
            .then([refunded(500, 2000)]);
    }

    #[test]
    fn commands_with_bad_text_do_not_parse() {
        for json in [
            r#"{"type": "ship", "carrier": "", "tracking_number": "1"}"#,
            r#"{"type": "ship", "carrier": "DHL", "tracking_number": "1\u0000"}"#,
            r#"{"type": "cancel", "reason": "a\u001bb", "by": "customer"}"#,
        ] {
            assert!(
                serde_json::from_str::<OrderCommand>(json).is_err(),
                "{json}"
            );
        }
        let long = format!(
            r#"{{"type": "cancel", "reason": "{}", "by": "customer"}}"#,
            "x".repeat(CancelReason::MAX + 1)
        );
        assert!(serde_json::from_str::<OrderCommand>(&long).is_err());
        let ok: OrderCommand =
            serde_json::from_str(r#"{"type": "cancel", "by": "system"}"#).unwrap();
        assert_eq!(
            ok,
            OrderCommand::Cancel {
                reason: CancelReason::default(),
                by: CancelledBy::System
            }
        );
    }

    #[test]
    fn cancelling_after_a_partial_refund_refunds_the_rest_and_nothing_more() {
        let mut history = confirmed();
        history.push(refunded(500, 500));
        let cancelled = given::<Order>(history)
            .when(cancel())
            .then_events(|then| assert_eq!(then[1], refunded(1500, 2000)));
        assert_eq!(cancelled.state().status, OrderStatus::Cancelled);
        // Cancelling again changes nothing.
        cancelled.when(cancel()).then([]);
        cancelled
            .when(refund(1))
            .then_err_eq(OrderError::RefundTooLarge {
                requested: 1,
                refundable: 0,
            });
    }

    #[test]
    fn an_order_total_that_overflows_is_refused() {
        given_no_events::<Order>()
            .when(place(vec![line(3, eur(i64::MAX / 2))]))
            .then_err(|e| matches!(e, OrderError::Invalid(_)));
    }

    #[test]
    fn a_cancelled_paid_order_takes_partial_refunds_up_to_the_total() {
        // Cancelled before it was paid: nothing to refund.
        given::<Order>([
            placed(),
            OrderEvent::OrderCancelled(OrderCancelled {
                reason: "out of stock".into(),
                by: CancelledBy::System,
                previous_status: OrderStatus::Placed,
            }),
        ])
        .when(refund(1))
        .then_err(|e| matches!(e, OrderError::InvalidTransition { .. }));
        // Cancelled after it was paid (an order cancelled by an older version, without its
        // refund): partial refunds up to the total.
        let mut history = confirmed();
        history.push(OrderEvent::OrderCancelled(OrderCancelled {
            reason: "changed my mind".into(),
            by: CancelledBy::Customer,
            previous_status: OrderStatus::Confirmed,
        }));
        let partly_refunded = given::<Order>(history).when(refund(1200)).then_ok();
        partly_refunded
            .when(refund(801))
            .then_err_eq(OrderError::RefundTooLarge {
                requested: 801,
                refundable: 800,
            });
        partly_refunded.when(refund(800)).then_ok();
    }

    #[test]
    fn a_timeout_never_cancels_a_confirmed_order() {
        let cancelled = given::<Order>([placed()])
            .when(OrderCommand::TimeOut)
            .then([OrderEvent::OrderCancelled(OrderCancelled {
                reason: TIMED_OUT.into(),
                by: CancelledBy::System,
                previous_status: OrderStatus::Placed,
            })]);
        given::<Order>(confirmed())
            .when(OrderCommand::TimeOut)
            .then_err_eq(OrderError::InvalidTransition {
                status: OrderStatus::Confirmed,
                action: "time out",
            });
        cancelled.when(OrderCommand::TimeOut).then([]);
    }
}
