//! The cart read model: `carts` (one row per cart, with the stream version it reflects) and
//! `cart_lines`. Every event first moves the cart row from version N-1 to N; only if that
//! succeeds are the lines touched, so a redelivered event changes nothing. The projector
//! applies whole batches through the set-based [`crate::cart_bulk`], which follows the same
//! rules; this per-event path is its reference.

use crate::runtime::{advance, correlation_ids, decode, Advance, Projection, ProjectionError};
use domain::cart::CartEvent;
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

pub struct CartProjection;

/// The tables this projection writes, parents first.
pub const TABLES: &[&str] = &["carts", "cart_lines"];

impl Projection for CartProjection {
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

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

    /// Set-based: a batch is a few statements however many events it holds
    /// ([`crate::cart_bulk`], with exactly the rules of [`apply`]).
    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> impl Future<Output = Result<Vec<Option<String>>, ProjectionError>> + Send + 'a {
        let span = tracing::info_span!(
            "apply_batch",
            projection = "cart",
            events = events.len(),
            correlation_ids = %correlation_ids(events)
        );
        tracing::Instrument::instrument(crate::cart_bulk::apply_batch(conn, events), span)
    }
}

async fn apply(conn: &mut PgConnection, env: &EventEnvelope) -> Result<(), ProjectionError> {
    let (cart_id, event): (Uuid, CartEvent) = decode(env, "cart")?;
    if let CartEvent::CartCreated(e) = &event {
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
    if advance(conn, "carts", cart_id, env).await? == Advance::Seen {
        return Ok(());
    }
    let version = env.version as i64;
    match event {
        CartEvent::CartCreated(_) => {}
        CartEvent::CartDeleted(_) => {
            sqlx::query("DELETE FROM carts WHERE id = $1")
                .bind(cart_id)
                .execute(&mut *conn)
                .await?;
        }
        CartEvent::CartClaimed(e) => {
            sqlx::query("UPDATE carts SET customer_id = $2 WHERE id = $1")
                .bind(cart_id)
                .bind(e.customer_id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        CartEvent::CartCheckedOut(_) => {
            sqlx::query("UPDATE carts SET status = 'checked_out' WHERE id = $1")
                .bind(cart_id)
                .execute(&mut *conn)
                .await?;
        }
        CartEvent::CartCheckoutFailed(_) => {
            sqlx::query("UPDATE carts SET status = 'open' WHERE id = $1")
                .bind(cart_id)
                .execute(&mut *conn)
                .await?;
        }
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
