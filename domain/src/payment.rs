//! The payment aggregate: an authorization for an order's amount, then its capture, void or
//! refunds (partial and full). The card never enters the domain: only its brand and last four
//! digits, and the gateway's answer, which the payment service obtains before deciding.
//!
//! Every step is idempotent: authorizing, capturing or voiding again is a no-op, so a saga
//! that redelivers never charges twice. Refunds never exceed what was captured; a payment
//! refunded in full is `Refunded`.

use crate::values::{CardBrand, CardLast4, Money, OrderId, PaymentId};
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
            ) => {
                if amount.amount_minor() == 0 {
                    return Err(PaymentError::Invalid(
                        "cannot authorize a zero amount".into(),
                    ));
                }
                Ok(vec![match outcome {
                    GatewayOutcome::Approved { reference } => {
                        E::PaymentAuthorized(PaymentAuthorized {
                            payment_id: *payment_id,
                            order_id: *order_id,
                            amount: *amount,
                            card: card.into(),
                            gateway_reference: reference.clone(),
                        })
                    }
                    GatewayOutcome::Declined(reason) => E::PaymentDeclined(PaymentDeclined {
                        payment_id: *payment_id,
                        order_id: *order_id,
                        amount: *amount,
                        card: card.into(),
                        reason: *reason,
                    }),
                }])
            }
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

            (S::Captured | S::Refunded, C::Refund { amount }) => {
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
                Ok(vec![E::PaymentRefunded(PaymentRefunded {
                    order_id: order_id?,
                    amount: *amount,
                    total_refunded: already
                        .checked_add(*amount)
                        .map_err(|e| PaymentError::Invalid(e.0))?,
                })])
            }
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

#[cfg(test)]
mod tests {
    use super::*;
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

    fn run(commands: &[PaymentCommand]) -> (Payment, Vec<Result<Vec<PaymentEvent>, PaymentError>>) {
        let mut state = Payment::default();
        let mut results = Vec::new();
        for c in commands {
            let r = state.decide(c);
            if let Ok(events) = &r {
                state = events.iter().fold(state, Payment::evolve);
            }
            results.push(r);
        }
        (state, results)
    }

    fn approved() -> GatewayOutcome {
        GatewayOutcome::Approved {
            reference: "sim_1".into(),
        }
    }

    #[test]
    fn authorize_then_capture_once() {
        let (state, results) = run(&[
            authorize(approved()),
            PaymentCommand::Capture,
            PaymentCommand::Capture,
            authorize(approved()),
        ]);
        assert_eq!(state.status, PaymentStatus::Captured);
        assert_eq!(state.captures, 1, "never captured twice");
        assert_eq!(results[2], Ok(vec![]));
        assert_eq!(results[3], Ok(vec![]));
    }

    #[test]
    fn a_declined_payment_cannot_be_captured() {
        let (state, results) = run(&[
            authorize(GatewayOutcome::Declined(DeclineReason::InsufficientFunds)),
            PaymentCommand::Capture,
        ]);
        assert_eq!(state.status, PaymentStatus::Declined);
        assert!(matches!(
            results[1],
            Err(PaymentError::InvalidTransition { .. })
        ));
    }

    #[test]
    fn void_only_before_capture() {
        let (state, _) = run(&[authorize(approved()), PaymentCommand::Void]);
        assert_eq!(state.status, PaymentStatus::Voided);
        let (_, results) = run(&[
            authorize(approved()),
            PaymentCommand::Capture,
            PaymentCommand::Void,
        ]);
        assert!(matches!(
            results[2],
            Err(PaymentError::InvalidTransition { .. })
        ));
    }

    #[test]
    fn partial_and_full_refunds() {
        let (state, results) = run(&[
            authorize(approved()),
            PaymentCommand::Capture,
            PaymentCommand::Refund { amount: eur(500) },
            PaymentCommand::Refund { amount: eur(1600) },
            PaymentCommand::Refund { amount: eur(1500) },
        ]);
        assert_eq!(
            results[3],
            Err(PaymentError::RefundTooLarge {
                requested: 1600,
                refundable: 1500
            })
        );
        assert!(results[4].is_ok());
        assert_eq!(state.refunded, Some(eur(2000)));
        assert_eq!(state.status, PaymentStatus::Refunded, "refunded in full");
        let (_, more) = run(&[
            authorize(approved()),
            PaymentCommand::Capture,
            PaymentCommand::Refund { amount: eur(2000) },
            PaymentCommand::Refund { amount: eur(1) },
            PaymentCommand::Capture,
        ]);
        assert_eq!(
            more[3],
            Err(PaymentError::RefundTooLarge {
                requested: 1,
                refundable: 0
            })
        );
        assert_eq!(more[4], Ok(vec![]), "a redelivered capture changes nothing");
    }

    #[test]
    fn commands_on_a_missing_payment_are_not_found() {
        let (_, results) = run(&[PaymentCommand::Capture]);
        assert_eq!(results[0], Err(PaymentError::NotFound));
    }
}
