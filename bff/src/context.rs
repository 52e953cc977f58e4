//! What every resolver shares: the per-request data (correlation id, verified caller, client
//! address), the request's backends, gRPC requests carrying the correlation id, the edge's
//! services as a request sees them (session cache, throttle), and the checks and parsing
//! every resource does alike.

use crate::auth::Caller;
use crate::clients::Backends;
use crate::edge::Edge;
use crate::error::BffError;
use crate::feed::LiveEvents;
use crate::throttle::{LoginAttempt, Throttle};
use async_graphql::Context;

/// Per-request data: the correlation id that follows the request into every service, and
/// the verified caller.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub correlation_id: String,
    pub caller: Caller,
    /// The client's address (from Envoy's `x-forwarded-for`), for per-client throttling.
    pub client: String,
}

/// The client's address of this request.
pub fn client_of<'a>(ctx: &'a Context<'_>) -> &'a str {
    ctx.data_opt::<RequestContext>()
        .map(|r| r.client.as_str())
        .unwrap_or("unknown")
}

/// The verified caller of this request.
pub fn caller<'a>(ctx: &'a Context<'_>) -> &'a Caller {
    static ANONYMOUS: Caller = Caller::Anonymous;
    ctx.data_opt::<RequestContext>()
        .map(|r| &r.caller)
        .unwrap_or(&ANONYMOUS)
}

/// The request's backends (acting for its caller).
pub fn backends<'a>(ctx: &'a Context<'_>) -> &'a Backends {
    ctx.data_unchecked::<Backends>()
}

/// The subscription feed.
pub fn live<'a>(ctx: &'a Context<'_>) -> Result<&'a LiveEvents, BffError> {
    ctx.data_opt::<LiveEvents>().ok_or(BffError::Internal)
}

/// A gRPC request carrying the caller's correlation id.
pub fn grpc<T>(ctx: &Context<'_>, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(rc) = ctx.data_opt::<RequestContext>() {
        if let Ok(v) = rc.correlation_id.parse() {
            req.metadata_mut()
                .insert(platform::trace_context::CORRELATION_HEADER, v);
        }
    }
    req
}

/// An idempotency key: 1 to 128 bytes, no control characters. It holds for one stream and
/// one caller (see `docs/architecture.md`).
pub fn check_key(key: &Option<String>) -> Result<(), BffError> {
    match key {
        Some(k) if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) => {
            Err(BffError::InvalidArgument(
                "idempotencyKey must be 1 to 128 characters, without control characters".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// A read model's JSON document; one that does not parse is the BFF's fault, not the
/// client's.
pub fn parse_doc<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, BffError> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(error = %e, "read model document does not parse");
        BffError::Internal
    })
}

/// After a password change or deletion made through this BFF: its next request re-asks.
pub fn forget_session(ctx: &Context<'_>, user_id: &str) {
    if let Some(edge) = ctx.data_opt::<Edge>() {
        edge.sessions.forget(user_id);
    }
}

/// The request's throttle (absent only in unit tests of the schema).
fn throttle<'a>(ctx: &'a Context<'_>) -> Option<&'a Throttle> {
    ctx.data_opt::<Edge>().map(|e| e.throttle.as_ref())
}

/// Admits a log-in for `email` from this request's client (see [`Throttle::login`]).
pub fn login_attempt<'a>(
    ctx: &'a Context<'_>,
    email: &str,
) -> Result<Option<LoginAttempt<'a>>, BffError> {
    throttle(ctx)
        .map(|t| t.login(email, client_of(ctx)))
        .transpose()
}

/// Admits a registration from this request's client.
pub fn admit_registration(ctx: &Context<'_>) -> Result<(), BffError> {
    throttle(ctx).map_or(Ok(()), |t| t.register(client_of(ctx)))
}

/// Admits a token refresh (or a token-bearing account mutation) from this request's client.
pub fn admit_refresh(ctx: &Context<'_>) -> Result<(), BffError> {
    throttle(ctx).map_or(Ok(()), |t| t.refresh(client_of(ctx)))
}
