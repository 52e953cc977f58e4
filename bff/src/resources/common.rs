//! GraphQL types more than one resource returns (`MoneyView`, `Attribute`,
//! `MutationResult`), and how a resource sends one aggregate's command: the domain's typed
//! command, serialized by serde, over the generic `Commands` service.

use crate::clients::AuthedChannel;
use crate::context::{caller, check_key, grpc};
use crate::error::BffError;
use async_graphql::{Context, InputObject, SimpleObject, ID};
use proto::commands::commands_client::CommandsClient;
use proto::commands::{ExecuteRequest, Meta};
use serde::{Deserialize, Serialize};

/// What a mutation of one aggregate returns: its id and its stream version afterwards.
#[derive(SimpleObject)]
pub struct MutationResult {
    pub id: ID,
    pub version: i64,
}

#[derive(SimpleObject, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MoneyView {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(SimpleObject, InputObject, Deserialize, Serialize, Clone)]
#[graphql(input_name = "AttributeInput")]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// The JSON of a typed command, as the generic `Commands` service parses it
/// (`{"type": "snake_case_name", ...fields}`: the domain enums' serde format).
pub fn command_json<C: Serialize>(command: &C) -> Result<String, BffError> {
    serde_json::to_string(command).map_err(|e| {
        tracing::error!(error = %e, "a command does not serialize");
        BffError::Internal
    })
}

/// Executes one typed domain command on the stream `stream_id`.
pub async fn exec<C: Serialize>(
    ctx: &Context<'_>,
    client: &CommandsClient<AuthedChannel>,
    stream_id: String,
    command: &C,
    idempotency_key: Option<String>,
) -> Result<MutationResult, BffError> {
    check_key(&idempotency_key)?;
    // An invalid token is refused outright; the actor travels in the credential.
    caller(ctx).actor()?;
    let req = grpc(
        ctx,
        ExecuteRequest {
            meta: Some(Meta {
                idempotency_key: idempotency_key.unwrap_or_default(),
            }),
            stream_id,
            command_json: command_json(command)?,
        },
    );
    let r = client.clone().execute(req).await?.into_inner();
    Ok(MutationResult {
        id: ID(r.stream_id),
        version: r.version as i64,
    })
}

/// A UUID (v8) derived from a text: the same caller and key always name the same stream.
pub fn derived_uuid(text: &str) -> uuid::Uuid {
    let digest = platform::auth::sha256_hex(text);
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(digest.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    uuid::Uuid::new_v8(bytes)
}

/// An amount of a currency, as the domain checks it (a known currency, not negative).
pub fn money(amount_minor: i64, currency: &str) -> Result<domain::values::Money, BffError> {
    let currency = domain::values::Currency::parse(currency)?;
    Ok(domain::values::Money::new(amount_minor, currency)?)
}
