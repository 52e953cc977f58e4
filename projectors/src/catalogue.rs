//! The `products` read model: catalogue fields, price, stock (on hand and reserved) and
//! ratings; and the `reviews` read model.

use crate::runtime::{advance, decode, Advance, Projection, ProjectionError};
use domain::product::ProductEvent;
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

pub struct ProductProjection;

/// The tables this projection writes, parents first.
pub const TABLES: &[&str] = &["products", "reviews"];

impl Projection for ProductProjection {
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }

    fn name(&self) -> &'static str {
        "product"
    }

    fn topics(&self) -> Vec<String> {
        vec![topic_for("product")]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        env: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a {
        apply(conn, env)
    }
}

fn json(v: &impl serde::Serialize) -> Result<serde_json::Value, ProjectionError> {
    serde_json::to_value(v).map_err(|e| ProjectionError::Poison(e.to_string()))
}

async fn apply(conn: &mut PgConnection, env: &EventEnvelope) -> Result<(), ProjectionError> {
    let (id, event): (Uuid, ProductEvent) = decode(env, "product")?;
    if let ProductEvent::ProductCreated(e) = &event {
        sqlx::query(
            "INSERT INTO products (id, name, description, categories, attributes, price_minor,
                                   currency, on_hand, version, created_at, updated_at, brand)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(&e.details.name)
        .bind(&e.details.description)
        .bind(&e.details.categories)
        .bind(json(&e.details.attributes)?)
        .bind(e.price.amount_minor())
        .bind(e.price.currency().as_str())
        .bind(e.initial_stock as i32)
        .bind(env.occurred_at)
        .bind(&e.details.brand)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    if advance(conn, "products", id, env).await? == Advance::Seen {
        return Ok(());
    }
    if let ProductEvent::ProductReviewed(e) = &event {
        sqlx::query(
            "INSERT INTO reviews (product_id, customer_id, order_id, rating, title, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (product_id, customer_id) DO NOTHING",
        )
        .bind(id)
        .bind(e.customer_id.as_uuid())
        .bind(e.order_id.as_uuid())
        .bind(i16::from(e.rating.get()))
        .bind(&e.title)
        .bind(&e.body)
        .bind(env.occurred_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE products SET rating_sum = rating_sum + $2, rating_count = rating_count + 1
             WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(e.rating.get()))
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    let q = match &event {
        ProductEvent::ProductCreated(_) | ProductEvent::ProductReviewed(_) => return Ok(()),
        ProductEvent::ProductUpdated(e) => sqlx::query(
            "UPDATE products SET name = $2, description = $3, categories = $4, attributes = $5,
                                 brand = $6
             WHERE id = $1",
        )
        .bind(id)
        .bind(e.details.name.clone())
        .bind(e.details.description.clone())
        .bind(e.details.categories.clone())
        .bind(json(&e.details.attributes)?)
        .bind(e.details.brand.clone()),
        ProductEvent::ProductPriceChanged(e) => {
            sqlx::query("UPDATE products SET price_minor = $2, currency = $3 WHERE id = $1")
                .bind(id)
                .bind(e.price.amount_minor())
                .bind(e.price.currency().as_str().to_owned())
        }
        ProductEvent::ProductArchived(_) => {
            sqlx::query("UPDATE products SET archived = true WHERE id = $1").bind(id)
        }
        ProductEvent::ProductUnarchived(_) => {
            sqlx::query("UPDATE products SET archived = false WHERE id = $1").bind(id)
        }
        ProductEvent::StockAdjusted(e) => {
            sqlx::query("UPDATE products SET on_hand = $2 WHERE id = $1")
                .bind(id)
                .bind(e.on_hand as i32)
        }
        ProductEvent::StockReserved(e) => {
            sqlx::query("UPDATE products SET reserved = reserved + $2 WHERE id = $1")
                .bind(id)
                .bind(e.quantity.get() as i32)
        }
        ProductEvent::StockReservationReleased(e) => {
            sqlx::query("UPDATE products SET reserved = reserved - $2 WHERE id = $1")
                .bind(id)
                .bind(e.quantity.get() as i32)
        }
        ProductEvent::StockReservationCommitted(e) => {
            sqlx::query("UPDATE products SET reserved = reserved - $2, on_hand = $3 WHERE id = $1")
                .bind(id)
                .bind(e.quantity.get() as i32)
                .bind(e.on_hand as i32)
        }
    };
    q.execute(&mut *conn).await?;
    Ok(())
}
