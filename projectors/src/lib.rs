//! The read side's writers.
//!
//! - [`runtime`]: the one Kafka consumer runtime every read model uses: batches, checkpoints
//!   in the same PostgreSQL transaction, dead letters.
//! - [`cart`]: the `carts` and `cart_lines` read model.
//! - [`catalogue`]: the `products` read model.
//! - [`orders`]: the `orders`, `order_lines` and `payments` read models.
//! - [`app`]: the `projector` binary's wiring.
//!
//! Migrations (under `projectors/migrations`) are run by sqlx when a projector starts.

pub mod app;
pub mod cart;
pub mod catalogue;
pub mod notifications;
pub mod orders;
pub mod runtime;
pub mod saga;

/// Runs the read models' migrations (safe to call from several processes at once).
pub async fn migrate(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
