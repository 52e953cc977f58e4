//! `CartQueries`: reads a cart and its lines from the `carts` / `cart_lines` read model. A
//! customer's cart is shown to them (as the call's credential says), admins and services;
//! an anonymous cart to whoever holds its id.

use crate::watch::VersionWatch;
use crate::QueryError;
use chrono::{DateTime, SecondsFormat, Utc};
use proto::cart::cart_queries_server::{CartQueries, CartQueriesServer};
use proto::cart::{Cart, CartLine, GetCartRequest, GetOpenCartRequest};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub struct CartQueryService {
    pool: PgPool,
    watch: VersionWatch,
}

impl CartQueryService {
    pub fn new(pool: PgPool, watch: VersionWatch) -> CartQueriesServer<Self> {
        CartQueriesServer::new(Self { pool, watch })
    }
}

/// The version of a cart in the read model (0 when it is not there yet).
async fn cart_version(pool: &PgPool, id: &str) -> Result<u64, sqlx::Error> {
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return Ok(0);
    };
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM carts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(v.unwrap_or(0) as u64)
}

type CartRow = (
    Uuid,
    Option<Uuid>,
    String,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads one cart from the read model.
pub async fn get_cart(pool: &PgPool, id: &str) -> Result<Cart, QueryError> {
    let id = Uuid::parse_str(id.trim())
        .map_err(|_| QueryError::InvalidArgument(format!("malformed cart id: {id:?}")))?;
    let mut tx = pool.begin().await?;
    let row: Option<CartRow> = sqlx::query_as(
        "SELECT id, customer_id, status, version, created_at, updated_at FROM carts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, customer, status, version, created, updated)) = row else {
        return Err(QueryError::NotFound("cart not found".into()));
    };
    let lines: Vec<(Uuid, i32, i64)> = sqlx::query_as(
        "SELECT product_id, quantity, version FROM cart_lines WHERE cart_id = $1
         ORDER BY added_version, product_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Cart {
        cart_id: id.to_string(),
        customer_id: customer.map(|c| c.to_string()).unwrap_or_default(),
        status,
        version: version as u64,
        lines: lines
            .into_iter()
            .map(|(p, q, v)| CartLine {
                product_id: p.to_string(),
                quantity: q as u32,
                version: v as u64,
            })
            .collect(),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
    })
}

/// The id of a customer's most recently changed open cart.
pub async fn open_cart_of(pool: &PgPool, customer: &str) -> Result<Cart, QueryError> {
    let customer = Uuid::parse_str(customer.trim())
        .map_err(|_| QueryError::InvalidArgument(format!("malformed customer id: {customer:?}")))?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM carts WHERE customer_id = $1 AND status = 'open'
         ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(customer)
    .fetch_optional(pool)
    .await?;
    match id {
        Some(id) => get_cart(pool, &id.to_string()).await,
        None => Err(QueryError::NotFound("no open cart".into())),
    }
}

#[tonic::async_trait]
impl CartQueries for CartQueryService {
    async fn get_open_cart(
        &self,
        request: Request<GetOpenCartRequest>,
    ) -> Result<Response<Cart>, Status> {
        let started = std::time::Instant::now();
        let actor = crate::actor(&request)?;
        let customer = &request.get_ref().customer_id;
        let result = match crate::require_owner(&actor, customer) {
            Ok(()) => open_cart_of(&self.pool, customer).await,
            Err(e) => Err(e),
        };
        crate::record("cart", "GetOpenCart", started, result.as_ref().err());
        Ok(Response::new(result?))
    }

    async fn get_cart(&self, request: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let started = std::time::Instant::now();
        let actor = crate::actor(&request)?;
        let r = request.get_ref();
        let mut reached = true;
        if r.at_least_version > 0 {
            let pool = self.pool.clone();
            let id = r.cart_id.clone();
            reached = self
                .watch
                .wait_for("cart", &r.cart_id, r.at_least_version, || {
                    cart_version(&pool, &id)
                })
                .await
                .map_err(QueryError::from)?;
        }
        let result = match get_cart(&self.pool, &r.cart_id).await {
            // Waited for a version and the cart is not projected at all yet: NOT_FOUND with
            // `at_least_version` means "not there yet" (the BFF answers STALE).
            Err(QueryError::NotFound(_)) if !reached => Err(QueryError::NotFound(format!(
                "cart not projected at version {} yet",
                r.at_least_version
            ))),
            Ok(cart) if !cart.customer_id.is_empty() => {
                crate::require_owner(&actor, &cart.customer_id).map(|_| cart)
            }
            other => other,
        };
        crate::record("cart", "GetCart", started, result.as_ref().err());
        Ok(Response::new(result?))
    }
}
