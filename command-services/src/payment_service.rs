//! The payment service, over a [`PaymentGateway`] (see [`crate::gateway`]): card
//! tokenization (an HTTP endpoint of its own, see [`crate::tokens`]; `PaymentMethods.Describe`
//! tells the BFF a reference's brand and last four digits), and the generic `Commands` API for
//! payments, where authorize / capture / void / refund call the gateway before the outcome is
//! recorded. Every step is idempotent: a payment already authorized, captured or voided is
//! not sent to the gateway again.

use crate::error::CommandError;
use crate::gateway::PaymentGateway;
use crate::generic_service::{context_of, parse_command, stream_id};
use crate::handler::CommandHandler;
use domain::payment::PaymentRequest;
use domain::payment::{Card, Payment, PaymentCommand, PaymentStatus};
use domain::values::PaymentId;
use proto::commands::commands_server::{Commands, CommandsServer};
use proto::commands::{ExecuteRequest, ExecuteResponse};
use proto::payment::payment_methods_server::{PaymentMethods, PaymentMethodsServer};
use proto::payment::CardToken;
use std::sync::Arc;
use tonic::{Request, Response, Status};

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
