//! The payment aggregate: an authorization for an order's amount, then its capture, void or
//! refunds (partial and full). The card never enters the domain: only its brand and last four
//! digits, and the gateway's answer, which the payment service obtains before deciding.
//!
//! Every step is idempotent: authorizing, capturing or voiding again is a no-op, so a saga
//! that redelivers never charges twice. Refunds never exceed what was captured; a payment
//! refunded in full is `Refunded`.

use crate::values::{CardBrand, CardLast4, Money, OrderId, PaymentId, PaymentToken};
use crate::{Aggregate, DomainError, DomainEvent, ErrorKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What may be stored about a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

/// The card of an authorization as the command carries it: each part checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub brand: CardBrand,
    pub last4: CardLast4,
}

impl From<&Card> for CardSummary {
    fn from(c: &Card) -> Self {
        Self {
            brand: c.brand.as_str().to_owned(),
            last4: c.last4.as_str().to_owned(),
        }
    }
}

/// Why a gateway refused an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    Declined,
    InsufficientFunds,
}

/// The gateway's answer to an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutcome {
    Approved { reference: String },
    Declined(DeclineReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Records the gateway's answer to an authorization.
    Authorize {
        payment_id: PaymentId,
        order_id: OrderId,
        amount: Money,
        card: Card,
        outcome: GatewayOutcome,
    },
    Capture,
    Void,
    Refund {
        amount: Money,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAuthorized {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    pub card: CardSummary,
    pub gateway_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDeclined {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    pub card: CardSummary,
    pub reason: DeclineReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCaptured {
    pub order_id: OrderId,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentVoided {
    pub order_id: OrderId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    pub order_id: OrderId,
    pub amount: Money,
    pub total_refunded: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum PaymentEvent {
    PaymentAuthorized(PaymentAuthorized),
    PaymentDeclined(PaymentDeclined),
    PaymentCaptured(PaymentCaptured),
    PaymentVoided(PaymentVoided),
    PaymentRefunded(PaymentRefunded),
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PaymentEvent::PaymentAuthorized(_) => "PaymentAuthorized",
            PaymentEvent::PaymentDeclined(_) => "PaymentDeclined",
            PaymentEvent::PaymentCaptured(_) => "PaymentCaptured",
            PaymentEvent::PaymentVoided(_) => "PaymentVoided",
            PaymentEvent::PaymentRefunded(_) => "PaymentRefunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("payment not found")]
    NotFound,
    #[error("cannot {action} a payment that is {status}")]
    InvalidTransition {
        status: &'static str,
        action: &'static str,
    },
    #[error("cannot refund {requested} minor units: {refundable} left to refund")]
    RefundTooLarge { requested: i64, refundable: i64 },
    #[error("{0}")]
    Invalid(String),
}

impl DomainError for PaymentError {
    fn kind(&self) -> ErrorKind {
        match self {
            PaymentError::NotFound => ErrorKind::NotFound,
            PaymentError::Invalid(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::FailedPrecondition,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentStatus {
    #[default]
    New,
    Authorized,
    Declined,
    Captured,
    Voided,
    /// Captured, then refunded in full.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::New => "new",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payment {
    pub id: Option<PaymentId>,
    pub order_id: Option<OrderId>,
    pub status: PaymentStatus,
    pub amount: Option<Money>,
    pub refunded: Option<Money>,
    /// How many captures were recorded (never more than one).
    pub captures: u32,
}

impl Aggregate for Payment {
    const STREAM_TYPE: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentCommand as C;
        use PaymentEvent as E;
        use PaymentStatus as S;
        let status = self.status;
        let refuse = |action| {
            Err(PaymentError::InvalidTransition {
                status: status.as_str(),
                action,
            })
        };
        let order_id = self.order_id.ok_or(PaymentError::NotFound);
        match (status, command) {
            (
                S::New,
                C::Authorize {
                    payment_id,
                    order_id,
                    amount,
                    card,
                    outcome,
                },
            ) => authorize(*payment_id, *order_id, *amount, card, outcome),
            (_, C::Authorize { .. }) => Ok(vec![]),
            (S::New, _) => Err(PaymentError::NotFound),

            (S::Authorized, C::Capture) => Ok(vec![E::PaymentCaptured(PaymentCaptured {
                order_id: order_id?,
                amount: self.amount.ok_or(PaymentError::NotFound)?,
            })]),
            (S::Captured | S::Refunded, C::Capture) => Ok(vec![]),
            (_, C::Capture) => refuse("capture"),

            (S::Authorized, C::Void) => Ok(vec![E::PaymentVoided(PaymentVoided {
                order_id: order_id?,
            })]),
            (S::Voided | S::Declined, C::Void) => Ok(vec![]),
            (_, C::Void) => refuse("void"),

            (S::Captured | S::Refunded, C::Refund { amount }) => self.refund(order_id?, *amount),
            (_, C::Refund { .. }) => refuse("refund"),
        }
    }

    fn evolve(mut self, event: &PaymentEvent) -> Self {
        match event {
            PaymentEvent::PaymentAuthorized(e) => {
                self.id = Some(e.payment_id);
                self.order_id = Some(e.order_id);
                self.amount = Some(e.amount);
                self.status = PaymentStatus::Authorized;
            }
            PaymentEvent::PaymentDeclined(e) => {
                self.id = Some(e.payment_id);
                self.order_id = Some(e.order_id);
                self.amount = Some(e.amount);
                self.status = PaymentStatus::Declined;
            }
            PaymentEvent::PaymentCaptured(_) => {
                self.captures += 1;
                self.status = PaymentStatus::Captured;
            }
            PaymentEvent::PaymentVoided(_) => self.status = PaymentStatus::Voided,
            PaymentEvent::PaymentRefunded(e) => {
                self.refunded = Some(e.total_refunded);
                if self
                    .amount
                    .is_some_and(|a| e.total_refunded.amount_minor() >= a.amount_minor())
                {
                    self.status = PaymentStatus::Refunded;
                }
            }
        }
        self
    }
}

/// The gateway's answer to an authorization, as the event it makes.
fn authorize(
    payment_id: PaymentId,
    order_id: OrderId,
    amount: Money,
    card: &Card,
    outcome: &GatewayOutcome,
) -> Result<Vec<PaymentEvent>, PaymentError> {
    if amount.amount_minor() == 0 {
        return Err(PaymentError::Invalid(
            "cannot authorize a zero amount".into(),
        ));
    }
    Ok(vec![match outcome {
        GatewayOutcome::Approved { reference } => {
            PaymentEvent::PaymentAuthorized(PaymentAuthorized {
                payment_id,
                order_id,
                amount,
                card: card.into(),
                gateway_reference: reference.clone(),
            })
        }
        GatewayOutcome::Declined(reason) => PaymentEvent::PaymentDeclined(PaymentDeclined {
            payment_id,
            order_id,
            amount,
            card: card.into(),
            reason: *reason,
        }),
    }])
}

impl Payment {
    /// A refund of a captured payment, in its currency, never more than is left of it.
    fn refund(&self, order_id: OrderId, amount: Money) -> Result<Vec<PaymentEvent>, PaymentError> {
        let captured = self.amount.ok_or(PaymentError::NotFound)?;
        let already = self.refunded.unwrap_or(Money::zero(captured.currency()));
        let refundable = captured
            .checked_sub(already)
            .map_err(|e| PaymentError::Invalid(e.0))?;
        if amount.currency() != captured.currency() {
            return Err(PaymentError::Invalid(format!(
                "refunds are in {}",
                captured.currency().as_str()
            )));
        }
        if amount.amount_minor() == 0 || amount.amount_minor() > refundable.amount_minor() {
            return Err(PaymentError::RefundTooLarge {
                requested: amount.amount_minor(),
                refundable: refundable.amount_minor(),
            });
        }
        Ok(vec![PaymentEvent::PaymentRefunded(PaymentRefunded {
            order_id,
            amount,
            total_refunded: already
                .checked_add(amount)
                .map_err(|e| PaymentError::Invalid(e.0))?,
        })])
    }
}

/// What a client (the checkout saga, an admin) asks of a payment. The payment service calls
/// the gateway and turns the request and the gateway's answer into a [`PaymentCommand`].
/// Serialised like every command: `{"type": "snake_case_name", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentRequest {
    Authorize {
        order_id: OrderId,
        amount: Money,
        /// The gateway's token, or a reference from the tokenization endpoint.
        token: PaymentToken,
        brand: CardBrand,
        last4: CardLast4,
    },
    Capture,
    Void,
    Refund {
        amount: Money,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given_no_events, Given};
    use crate::values::Currency;

    fn eur(n: i64) -> Money {
        Money::new(n, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn authorize(outcome: GatewayOutcome) -> PaymentCommand {
        PaymentCommand::Authorize {
            payment_id: PaymentId::from(uuid::Uuid::from_u128(1)),
            order_id: OrderId::from(uuid::Uuid::from_u128(2)),
            amount: eur(2000),
            card: Card {
                brand: CardBrand::parse("visa").unwrap(),
                last4: CardLast4::parse("4242").unwrap(),
            },
            outcome,
        }
    }

    fn approved() -> GatewayOutcome {
        GatewayOutcome::Approved {
            reference: "sim_1".into(),
        }
    }

    fn refund(amount: i64) -> PaymentCommand {
        PaymentCommand::Refund {
            amount: eur(amount),
        }
    }

    /// A payment of 20 EUR, authorized and captured.
    fn captured() -> Given<Payment> {
        given_no_events::<Payment>()
            .when(authorize(approved()))
            .then_ok()
            .when(PaymentCommand::Capture)
            .then_ok()
    }

    #[test]
    fn authorize_then_capture_once() {
        let payment = captured()
            .when(PaymentCommand::Capture)
            .then([])
            .when(authorize(approved()))
            .then([]);
        assert_eq!(payment.state().status, PaymentStatus::Captured);
        assert_eq!(payment.state().captures, 1, "never captured twice");
    }

    #[test]
    fn a_declined_payment_cannot_be_captured() {
        let payment = given_no_events::<Payment>()
            .when(authorize(GatewayOutcome::Declined(
                DeclineReason::InsufficientFunds,
            )))
            .then_ok()
            .when(PaymentCommand::Capture)
            .then_err(|e| matches!(e, PaymentError::InvalidTransition { .. }));
        assert_eq!(payment.state().status, PaymentStatus::Declined);
    }

    #[test]
    fn void_only_before_capture() {
        let voided = given_no_events::<Payment>()
            .when(authorize(approved()))
            .then_ok()
            .when(PaymentCommand::Void)
            .then_ok();
        assert_eq!(voided.state().status, PaymentStatus::Voided);
        captured()
            .when(PaymentCommand::Void)
            .then_err(|e| matches!(e, PaymentError::InvalidTransition { .. }));
    }

    #[test]
    fn partial_and_full_refunds() {
        let payment = captured()
            .when(refund(500))
            .then_ok()
            .when(refund(1600))
            .then_err_eq(PaymentError::RefundTooLarge {
                requested: 1600,
                refundable: 1500,
            })
            .when(refund(1500))
            .then_ok();
        assert_eq!(payment.state().refunded, Some(eur(2000)));
        assert_eq!(
            payment.state().status,
            PaymentStatus::Refunded,
            "refunded in full"
        );
        captured()
            .when(refund(2000))
            .then_ok()
            .when(refund(1))
            .then_err_eq(PaymentError::RefundTooLarge {
                requested: 1,
                refundable: 0,
            })
            // A redelivered capture changes nothing.
            .when(PaymentCommand::Capture)
            .then([]);
    }

    #[test]
    fn commands_on_a_missing_payment_are_not_found() {
        given_no_events::<Payment>()
            .when(PaymentCommand::Capture)
            .then_err_eq(PaymentError::NotFound);
    }
}
