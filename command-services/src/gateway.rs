//! The payment gateway: the `PaymentGateway` trait the payment service calls, and a
//! deterministic simulated gateway in the style of Stripe's test cards.
//!
//! Test cards: `4242 4242 4242 4242` is approved, `4000 0000 0000 0002` is declined,
//! `4000 0000 0000 9995` is declined for insufficient funds; any other valid card number is
//! approved.

use crate::error::CommandError;
use domain::payment::{DeclineReason, GatewayOutcome};
use domain::values::Money;
use proto::payment::{CardDetails, CardToken};
use std::future::Future;
use std::pin::Pin;

/// Why the gateway could not answer (as opposed to a decline, which is an answer).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    InvalidCard(String),
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A card payment gateway. Implementations must treat `idempotency_key` as Stripe does: the
/// same key returns the first result and moves no money twice.
pub trait PaymentGateway: Send + Sync + 'static {
    fn tokenize<'a>(&'a self, card: &'a CardDetails) -> BoxFut<'a, CardToken>;
    fn authorize<'a>(
        &'a self,
        token: &'a str,
        amount: Money,
        idempotency_key: &'a str,
    ) -> BoxFut<'a, GatewayOutcome>;
    fn capture<'a>(
        &'a self,
        reference: &'a str,
        amount: Money,
        idempotency_key: &'a str,
    ) -> BoxFut<'a, ()>;
    fn void<'a>(&'a self, reference: &'a str, idempotency_key: &'a str) -> BoxFut<'a, ()>;
    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount: Money,
        idempotency_key: &'a str,
    ) -> BoxFut<'a, ()>;
}

/// The built-in simulated gateway: deterministic by card number, no network.
pub struct SimulatedGateway;

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Checks a card and names its brand and simulated outcome. Public for tests.
pub fn simulate(card: &CardDetails) -> Result<(String, String, &'static str), GatewayError> {
    let number: String = card
        .number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if number.len() < 13
        || number.len() > 19
        || !number.chars().all(|c| c.is_ascii_digit())
        || !luhn(&number)
    {
        return Err(GatewayError::InvalidCard(
            "the card number is not valid".into(),
        ));
    }
    if !(1..=12).contains(&card.exp_month) {
        return Err(GatewayError::InvalidCard(
            "the expiry month is not valid".into(),
        ));
    }
    let now = chrono::Utc::now();
    let (y, m) = (
        chrono::Datelike::year(&now) as u32,
        chrono::Datelike::month(&now),
    );
    if card.exp_year < y || (card.exp_year == y && card.exp_month < m) {
        return Err(GatewayError::InvalidCard("the card has expired".into()));
    }
    if !(3..=4).contains(&card.cvc.len()) || !card.cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err(GatewayError::InvalidCard("the CVC is not valid".into()));
    }
    let brand = match number.as_bytes()[0] {
        b'4' => "visa",
        b'5' => "mastercard",
        b'3' => "amex",
        _ => "card",
    };
    let outcome = match number.as_str() {
        "4000000000000002" => "declined",
        "4000000000009995" => "insufficient_funds",
        _ => "approved",
    };
    Ok((
        brand.to_owned(),
        number[number.len() - 4..].to_owned(),
        outcome,
    ))
}

impl PaymentGateway for SimulatedGateway {
    fn tokenize<'a>(&'a self, card: &'a CardDetails) -> BoxFut<'a, CardToken> {
        Box::pin(async move {
            let (brand, last4, outcome) = simulate(card)?;
            Ok(CardToken {
                token: format!("tok_sim_{outcome}_{}", uuid::Uuid::new_v4().simple()),
                brand,
                last4,
            })
        })
    }

    fn authorize<'a>(
        &'a self,
        token: &'a str,
        _amount: Money,
        key: &'a str,
    ) -> BoxFut<'a, GatewayOutcome> {
        Box::pin(async move {
            let outcome = token
                .strip_prefix("tok_sim_")
                .ok_or_else(|| GatewayError::InvalidCard("unknown payment token".into()))?;
            Ok(if outcome.starts_with("declined_") {
                GatewayOutcome::Declined(DeclineReason::Declined)
            } else if outcome.starts_with("insufficient_funds_") {
                GatewayOutcome::Declined(DeclineReason::InsufficientFunds)
            } else if outcome.starts_with("approved_") {
                GatewayOutcome::Approved {
                    reference: format!("sim_auth_{key}"),
                }
            } else {
                return Err(GatewayError::InvalidCard("unknown payment token".into()));
            })
        })
    }

    fn capture<'a>(&'a self, _r: &'a str, _a: Money, _k: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn void<'a>(&'a self, _r: &'a str, _k: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn refund<'a>(&'a self, _r: &'a str, _a: Money, _k: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

impl From<GatewayError> for CommandError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::InvalidCard(m) => CommandError::InvalidArgument(m),
            GatewayError::Unavailable(m) => CommandError::Unavailable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str) -> CardDetails {
        CardDetails {
            number: number.into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        }
    }

    #[test]
    fn stripe_style_test_cards() {
        assert_eq!(
            simulate(&card("4242 4242 4242 4242")).unwrap(),
            ("visa".into(), "4242".into(), "approved")
        );
        assert_eq!(simulate(&card("4000000000000002")).unwrap().2, "declined");
        assert_eq!(
            simulate(&card("4000000000009995")).unwrap().2,
            "insufficient_funds"
        );
        assert!(simulate(&card("4242424242424241")).is_err(), "Luhn");
        let mut expired = card("4242424242424242");
        expired.exp_year = 2001;
        assert!(simulate(&expired).is_err());
    }
}
