//! The payment service, over a [`PaymentGateway`] (see [`crate::gateway`]): card
//! tokenization (an HTTP endpoint of its own, see [`crate::tokens`]; `PaymentMethods.Describe`
//! tells the BFF a reference's brand and last four digits), and the generic `Commands` API for
//! payments (an instance of the generic service), where authorize / capture / void / refund
//! call the gateway, in its prepare step, before the outcome is recorded. Every step is idempotent: a payment already authorized, captured or voided is
//! not sent to the gateway again.

use crate::error::CommandError;
use crate::gateway::PaymentGateway;
use crate::generic_service::{GenericCommands, Prepare};
use crate::handler::{CommandContext, CommandHandler};
use crate::policies::PaymentPolicy;
use domain::payment::{Card, Payment, PaymentCommand, PaymentRequest, PaymentStatus};
use domain::values::PaymentId;
use domain::Aggregate as _;
use platform::internal_auth::Actor;
use proto::commands::commands_server::CommandsServer;
use proto::payment::payment_methods_server::{PaymentMethods, PaymentMethodsServer};
use proto::payment::CardToken;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The payment service's [`Prepare`] step: a request becomes a command once the gateway has
/// answered it. Every step is idempotent: a payment already authorized is not sent to the
/// gateway again (`None`: nothing to append).
pub struct CallGateway {
    gateway: Arc<dyn PaymentGateway>,
}

/// The payment service: the generic `Commands` service over the gateway step, and the
/// `PaymentMethods` service, on one port.
pub type PaymentCommands = GenericCommands<Payment, PaymentPolicy, CallGateway>;

/// The payment service's routes and the names they serve.
pub fn routes(
    handler: Arc<CommandHandler<Payment>>,
    gateway: Arc<dyn PaymentGateway>,
) -> (tonic::service::Routes, [&'static str; 2]) {
    let methods = Tokenizer(handler.store().database().clone());
    let routes = tonic::service::Routes::new(GenericCommands::with(
        handler,
        PaymentPolicy,
        CallGateway { gateway },
    ))
    .add_service(PaymentMethodsServer::new(methods));
    (
        routes,
        [
            <CommandsServer<PaymentCommands> as tonic::server::NamedService>::NAME,
            <PaymentMethodsServer<Tokenizer> as tonic::server::NamedService>::NAME,
        ],
    )
}

impl Prepare<Payment> for CallGateway {
    type Request = PaymentRequest;

    async fn prepare(
        &self,
        handler: &CommandHandler<Payment>,
        id: &str,
        req: PaymentRequest,
        ctx: &CommandContext,
        _actor: &Actor,
    ) -> Result<Option<PaymentCommand>, CommandError> {
        let (state, _) = handler.load(id).await?;
        let reference = format!("sim_auth_{id}");
        let key = ctx
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
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
                        crate::tokens::resolve(handler.store().database(), r)
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
                self.gateway.refund(&reference, amount, &key).await?;
                Some(PaymentCommand::Refund { amount })
            }
        })
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
