//! The payment gateway's tokenization endpoint, separate from the GraphQL API (as Stripe's is):
//! `POST /pay/v1/tokens` with `{"number", "exp_month", "exp_year", "cvc"}` on the payment
//! service's own HTTP port (Envoy routes the path prefix `/pay/v1/tokens` to it), answering
//! `201 {"token": "pm_…", "brand", "last4"}`. The card is checked (Luhn, expiry, CVC) and sent
//! to the gateway; its number and CVC are never logged, stored or echoed. What is kept is a
//! payment method in `payment_methods` (`{_id: "pm_…", gateway_token, brand, last4,
//! created_at}`): the `pm_` reference is what checkout takes and what `CartCheckedOut` carries;
//! the gateway's own token never leaves the payment service, which resolves the reference when
//! it authorizes ([`resolve`]).
//!
//! Errors are JSON `{"error": {"code", "message"}}`: 400 `INVALID_ARGUMENT` (bad card or
//! body), 413 (body over [`MAX_BODY`]), 503 `UNAVAILABLE`.

use crate::gateway::{GatewayError, PaymentGateway};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mongodb::bson::{self, doc, Document};
use mongodb::{Collection, Database};
use proto::payment::CardDetails;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The collection of payment methods made by tokenization.
pub const PAYMENT_METHODS: &str = "payment_methods";
/// The path of the endpoint.
pub const TOKENS_PATH: &str = "/pay/v1/tokens";
/// The largest request body accepted.
pub const MAX_BODY: usize = 1024;
/// The prefix of a payment method reference.
pub const REFERENCE_PREFIX: &str = "pm_";

/// A card as the customer typed it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRequest {
    number: String,
    exp_month: u32,
    exp_year: u32,
    cvc: String,
}

/// A stored payment method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub gateway_token: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Clone)]
struct Tokens {
    gateway: Arc<dyn PaymentGateway>,
    methods: Collection<Document>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

async fn tokenize(State(t): State<Tokens>, body: axum::body::Bytes) -> Response {
    // Parsed by hand: serde's messages could quote the input (a card number).
    let Ok(card) = serde_json::from_slice::<CardRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "expected {\"number\", \"exp_month\", \"exp_year\", \"cvc\"}",
        );
    };
    let details = CardDetails {
        number: card.number,
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        cvc: card.cvc,
    };
    let token = match t.gateway.tokenize(&details).await {
        Ok(token) => token,
        Err(GatewayError::InvalidCard(m)) => {
            return error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &m)
        }
        Err(GatewayError::Unavailable(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the payment gateway is unavailable; retry",
            )
        }
    };
    let reference = format!("{REFERENCE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let stored = t
        .methods
        .insert_one(doc! {
            "_id": &reference,
            "gateway_token": &token.token,
            "brand": &token.brand,
            "last4": &token.last4,
            "created_at": bson::DateTime::now(),
        })
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "storing a payment method");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "payment methods unavailable; retry",
        );
    }
    (
        StatusCode::CREATED,
        Json(json!({ "token": reference, "brand": token.brand, "last4": token.last4 })),
    )
        .into_response()
}

/// The tokenization router (also for tests).
pub fn router(gateway: Arc<dyn PaymentGateway>, db: &Database) -> Router {
    Router::new()
        .route(TOKENS_PATH, post(tokenize))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Tokens {
            gateway,
            methods: db.collection(PAYMENT_METHODS),
        })
}

/// Serves the tokenization endpoint on `addr` until `shutdown`.
pub async fn serve_tokens(
    addr: SocketAddr,
    gateway: Arc<dyn PaymentGateway>,
    db: Database,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, path = TOKENS_PATH, "tokenization endpoint listening");
    axum::serve(listener, router(gateway, &db))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The payment method a `pm_` reference names, if it exists.
pub async fn resolve(
    db: &Database,
    reference: &str,
) -> Result<Option<PaymentMethod>, mongodb::error::Error> {
    let found = db
        .collection::<Document>(PAYMENT_METHODS)
        .find_one(doc! { "_id": reference })
        .await?;
    Ok(found.and_then(|d| {
        Some(PaymentMethod {
            gateway_token: d.get_str("gateway_token").ok()?.to_owned(),
            brand: d.get_str("brand").ok()?.to_owned(),
            last4: d.get_str("last4").ok()?.to_owned(),
        })
    }))
}
