//! The payment service: the `PaymentGateway` trait, a deterministic simulated gateway in the
//! style of Stripe's test cards, card tokenization (an HTTP endpoint of its own, see
//! [`crate::tokens`]; `PaymentMethods.Describe` tells the BFF a reference's brand and last
//! four digits), and the generic `Commands` API for
//! payments, where authorize / capture / void / refund call the gateway before the outcome is
//! recorded. Every step is idempotent: a payment already authorized, captured or voided is
//! not sent to the gateway again.
//!
//! Test cards: `4242 4242 4242 4242` is approved, `4000 0000 0000 0002` is declined,
//! `4000 0000 0000 9995` is declined for insufficient funds; any other valid card number is
//! approved.

use crate::error::CommandError;
use crate::generic_service::{context_of, parse_command, stream_id};
use crate::handler::CommandHandler;
use domain::payment::{
    Card, DeclineReason, GatewayOutcome, Payment, PaymentCommand, PaymentStatus,
};
use domain::values::{CardBrand, CardLast4, Money, OrderId, PaymentId, PaymentToken};
use proto::commands::commands_server::{Commands, CommandsServer};
use proto::commands::{ExecuteRequest, ExecuteResponse};
use proto::payment::payment_methods_server::{PaymentMethods, PaymentMethodsServer};
use proto::payment::{CardDetails, CardToken};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

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

/// What clients ask of a payment (the gateway's answer is added by the service).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentRequest {
    Authorize {
        order_id: OrderId,
        amount: Money,
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

pub struct PaymentService {
    handler: Arc<CommandHandler<Payment>>,
    gateway: Arc<dyn PaymentGateway>,
}

impl PaymentService {
    pub fn new(handler: Arc<CommandHandler<Payment>>, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self { handler, gateway }
    }

    pub fn routes(self) -> (tonic::service::Routes, [&'static str; 2]) {
        let methods = Tokenizer(self.handler.store().database().clone());
        let routes = tonic::service::Routes::new(CommandsServer::new(self))
            .add_service(PaymentMethodsServer::new(methods));
        (
            routes,
            [
                <CommandsServer<PaymentService> as tonic::server::NamedService>::NAME,
                <PaymentMethodsServer<Tokenizer> as tonic::server::NamedService>::NAME,
            ],
        )
    }

    async fn command_for(
        &self,
        id: &str,
        req: PaymentRequest,
        key: &str,
    ) -> Result<Option<PaymentCommand>, CommandError> {
        let (state, _) = self.handler.load(id).await?;
        let reference = format!("sim_auth_{id}");
        Ok(match req {
            PaymentRequest::Authorize {
                order_id,
                amount,
                token,
                brand,
                last4,
            } => {
                if state.status != PaymentStatus::New {
                    return Ok(None);
                }
                // A payment method reference from the tokenization endpoint names the
                // gateway's token, which only this service holds.
                let token = match token.as_str() {
                    r if r.starts_with(crate::tokens::REFERENCE_PREFIX) => {
                        crate::tokens::resolve(self.handler.store().database(), r)
                            .await
                            .map_err(|e| CommandError::Unavailable(e.to_string()))?
                            .ok_or_else(|| {
                                CommandError::InvalidArgument("unknown payment token".into())
                            })?
                            .gateway_token
                    }
                    legacy => legacy.to_owned(),
                };
                let outcome = self.gateway.authorize(&token, amount, id).await?;
                Some(PaymentCommand::Authorize {
                    payment_id: PaymentId::parse(id)?,
                    order_id,
                    amount,
                    card: Card { brand, last4 },
                    outcome,
                })
            }
            PaymentRequest::Capture => {
                if state.status == PaymentStatus::Authorized {
                    let amount = state
                        .amount
                        .ok_or(CommandError::NotFound("payment not found".into()))?;
                    self.gateway
                        .capture(&reference, amount, &format!("{id}:capture"))
                        .await?;
                }
                Some(PaymentCommand::Capture)
            }
            PaymentRequest::Void => {
                if state.status == PaymentStatus::Authorized {
                    self.gateway.void(&reference, &format!("{id}:void")).await?;
                }
                Some(PaymentCommand::Void)
            }
            PaymentRequest::Refund { amount } => {
                // Check with the domain first: only a valid refund reaches the gateway.
                state
                    .decide(&PaymentCommand::Refund { amount })
                    .map_err(|e| CommandError::domain(&e))?;
                self.gateway.refund(&reference, amount, key).await?;
                Some(PaymentCommand::Refund { amount })
            }
        })
    }
}

use domain::Aggregate;

#[tonic::async_trait]
impl Commands for PaymentService {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let r = request.get_ref();
        let id = stream_id(&r.stream_id)?;
        let (ctx, actor) = context_of(&request, r.meta.as_ref())?;
        // Only the checkout saga moves money.
        crate::policies::PaymentPolicy.permit_any(&actor)?;
        let req: PaymentRequest = parse_command(&r.command_json)?;
        let key = ctx
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let version = match self.command_for(&id, req, &key).await? {
            Some(command) => self.handler.handle(&id, &command, &ctx).await?.version,
            None => self.handler.load(&id).await?.1,
        };
        Ok(Response::new(ExecuteResponse {
            stream_id: id,
            version,
        }))
    }

    async fn state_at(
        &self,
        request: Request<proto::commands::StateAtRequest>,
    ) -> Result<Response<proto::commands::StateAtResponse>, Status> {
        Ok(Response::new(
            crate::generic_service::state_at(
                &self.handler,
                &crate::policies::PaymentPolicy,
                &request,
            )
            .await?,
        ))
    }
}

/// The `PaymentMethods` service: what a payment method reference (from the tokenization
/// endpoint) is, without its gateway token. Cards themselves never come this way.
pub struct Tokenizer(mongodb::Database);

#[tonic::async_trait]
impl PaymentMethods for Tokenizer {
    async fn describe(&self, request: Request<CardToken>) -> Result<Response<CardToken>, Status> {
        // Only through a credential (the BFF, for whoever it serves).
        platform::internal_auth::actor_of(&request)?;
        let reference = &request.get_ref().token;
        let unknown = || Status::invalid_argument("unknown payment token");
        if !reference.starts_with(crate::tokens::REFERENCE_PREFIX) || reference.len() > 64 {
            return Err(unknown());
        }
        let method = crate::tokens::resolve(&self.0, reference)
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?
            .ok_or_else(unknown)?;
        Ok(Response::new(CardToken {
            token: reference.clone(),
            brand: method.brand,
            last4: method.last4,
        }))
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
