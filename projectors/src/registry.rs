//! The read models by name, for the operator tools (`commerce projections ...`): which
//! topics feed each, which tables it owns (parents before children), and how to apply one
//! event to it. A new read model is one more entry in [`read_models`] and [`apply`].

use crate::cart::CartProjection;
use crate::catalogue::ProductProjection;
use crate::orders::OrderProjection;
use crate::runtime::{apply_isolated, Projection, ProjectionError};
use event_schemas::{topic_for, EventEnvelope};
use sqlx::PgConnection;

/// One projection as the tools see it.
#[derive(Debug, Clone)]
pub struct ReadModel {
    /// The projection's name: its checkpoint rows and consumer group `projector.<name>`.
    pub name: &'static str,
    pub topics: Vec<String>,
    /// Every table it writes, parents first. A rebuild writes with `search_path` set to its
    /// own schema alone, so a table missing here fails the rebuild (never the live table).
    pub tables: &'static [&'static str],
    /// Whether it may be rebuilt from offset zero: a process manager sends commands, so
    /// replaying it is not a rebuild.
    pub rebuildable: bool,
}

/// Every projection, read models first.
pub fn read_models() -> Vec<ReadModel> {
    vec![
        ReadModel {
            name: CartProjection.name(),
            topics: CartProjection.topics(),
            tables: crate::cart::TABLES,
            rebuildable: true,
        },
        ReadModel {
            name: ProductProjection.name(),
            topics: ProductProjection.topics(),
            tables: crate::catalogue::TABLES,
            rebuildable: true,
        },
        ReadModel {
            name: OrderProjection.name(),
            topics: OrderProjection.topics(),
            tables: crate::orders::TABLES,
            rebuildable: true,
        },
        ReadModel {
            name: "notification",
            topics: vec![topic_for("order"), topic_for("user")],
            tables: crate::notifications::TABLES,
            // It sends notifications.
            rebuildable: false,
        },
        ReadModel {
            name: "checkout-saga",
            topics: ["cart", "order", "payment", "user"]
                .iter()
                .map(|t| topic_for(t))
                .collect(),
            tables: crate::saga::TABLES,
            rebuildable: false,
        },
    ]
}

/// The projection called `name`.
pub fn find(name: &str) -> Option<ReadModel> {
    read_models().into_iter().find(|m| m.name == name)
}

/// Applies a batch of events to the read model `name`, in order; returns, per event, the
/// reason it was refused, if it was. Each projection's own [`Projection::apply_all`]: the
/// cart model's is set-based ([`crate::cart_bulk`]), the others apply one event at a time.
/// A permanent database error is the failing event's refusal ([`apply_isolated`]).
pub async fn apply_batch(
    name: &str,
    conn: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<Vec<Option<String>>, ProjectionError> {
    match name {
        "cart" => apply_isolated(&CartProjection, conn, events).await,
        "product" => apply_isolated(&ProductProjection, conn, events).await,
        "order" => apply_isolated(&OrderProjection, conn, events).await,
        other => Err(ProjectionError::Poison(format!(
            "{other} cannot be applied outside its projector"
        ))),
    }
}

/// Applies one event to the read model `name` on `conn` (whose `search_path` decides which
/// schema's tables are written; inside a transaction). A permanent database error (bad data,
/// a constraint) is the event's refusal, [`ProjectionError::Poison`], with its writes undone.
pub async fn apply(
    name: &str,
    conn: &mut PgConnection,
    env: &EventEnvelope,
) -> Result<(), ProjectionError> {
    sqlx::query("SAVEPOINT registry_apply")
        .execute(&mut *conn)
        .await?;
    let result = match name {
        "cart" => CartProjection.apply(conn, env).await,
        "product" => ProductProjection.apply(conn, env).await,
        "order" => OrderProjection.apply(conn, env).await,
        other => Err(ProjectionError::Poison(format!(
            "{other} cannot be applied outside its projector"
        ))),
    };
    match result {
        Err(e) if e.is_permanent() => {
            sqlx::query("ROLLBACK TO SAVEPOINT registry_apply")
                .execute(&mut *conn)
                .await?;
            Err(ProjectionError::Poison(e.reason()))
        }
        other => {
            if other.is_ok() {
                sqlx::query("RELEASE SAVEPOINT registry_apply")
                    .execute(&mut *conn)
                    .await?;
            }
            other
        }
    }
}
