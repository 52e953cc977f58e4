//! The cart read model: `carts` (one row per cart, with the stream version it reflects) and
//! `cart_lines`. Every event first moves the cart row from version N-1 to N; only if that
//! succeeds are the lines touched, so a redelivered event changes nothing.

use crate::runtime::{Projection, ProjectionError};
use domain::cart::CartEvent;
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

pub struct CartProjection;

impl Projection for CartProjection {
    fn name(&self) -> &'static str {
        "cart"
    }

    fn topics(&self) -> Vec<String> {
        vec![topic_for("cart")]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        env: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a {
        apply(conn, env)
    }
}

fn poison(msg: impl Into<String>) -> ProjectionError {
    ProjectionError::Poison(msg.into())
}

async fn apply(conn: &mut PgConnection, env: &EventEnvelope) -> Result<(), ProjectionError> {
    if env.stream_type != "cart" {
        return Err(poison(format!("not a cart event: {}", env.stream_type)));
    }
    let event: CartEvent = env.decode().map_err(|e| poison(e.to_string()))?;
    let cart_id = Uuid::parse_str(&env.stream_id)
        .map_err(|_| poison(format!("stream id {:?} is not a UUID", env.stream_id)))?;
    let version = i64::try_from(env.version).map_err(|_| poison("version out of range"))?;

    if let CartEvent::CartCreated(e) = &event {
        if version != 1 {
            return Err(poison("CartCreated must be version 1"));
        }
        sqlx::query(
            "INSERT INTO carts (id, customer_id, status, version, created_at, updated_at)
             VALUES ($1, $2, 'open', 1, $3, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(cart_id)
        .bind(e.customer_id.map(|c| c.as_uuid()))
        .bind(env.occurred_at)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }

    // Move the cart to this version, or find out why not.
    let status = matches!(event, CartEvent::CartCheckedOut(_)).then_some("checked_out");
    let moved = sqlx::query(
        "UPDATE carts SET version = $2, updated_at = $3, status = COALESCE($4, status)
         WHERE id = $1 AND version = $2 - 1",
    )
    .bind(cart_id)
    .bind(version)
    .bind(env.occurred_at)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        let current: Option<i64> = sqlx::query_scalar("SELECT version FROM carts WHERE id = $1")
            .bind(cart_id)
            .fetch_optional(&mut *conn)
            .await?;
        return match current {
            Some(v) if v >= version => Ok(()), // seen before: redelivery
            Some(v) => Err(poison(format!(
                "cart {cart_id} is at version {v}; version {version} leaves a gap"
            ))),
            None => Err(poison(format!("cart {cart_id} was never created"))),
        };
    }

    match event {
        CartEvent::CartCreated(_) | CartEvent::CartCheckedOut(_) => {}
        CartEvent::CartItemAdded(e) => {
            sqlx::query(
                "INSERT INTO cart_lines (cart_id, product_id, quantity, added_version, version)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (cart_id, product_id)
                 DO UPDATE SET quantity = EXCLUDED.quantity, version = EXCLUDED.version",
            )
            .bind(cart_id)
            .bind(e.product_id.as_uuid())
            .bind(e.quantity.get() as i32)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        CartEvent::CartItemQuantityChanged(e) => {
            sqlx::query(
                "UPDATE cart_lines SET quantity = $3, version = $4
                 WHERE cart_id = $1 AND product_id = $2",
            )
            .bind(cart_id)
            .bind(e.product_id.as_uuid())
            .bind(e.quantity.get() as i32)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        CartEvent::CartItemRemoved(e) => {
            sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1 AND product_id = $2")
                .bind(cart_id)
                .bind(e.product_id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        CartEvent::CartCleared(_) => {
            sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1")
                .bind(cart_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
