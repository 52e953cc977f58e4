//! The relay's watermark in the store (`relay_state`, `_id: "watermark"`): the Kafka cluster
//! the relay last found intact, and the time before which every committed event is on it.
//! The relay writes it (see `command-services`' relay); projectors read it to know when a
//! heal is over and how far the saga may time checkouts out.

use mongodb::bson::{doc, Document};

/// The collection of the relay's own state.
pub const RELAY_STATE: &str = "relay_state";
/// `_id` of the watermark document in [`RELAY_STATE`].
pub const WATERMARK_ID: &str = "watermark";

/// The relay's watermark (see the module docs): the broker cluster it last found intact, and
/// the time before which every committed event is on it. `None` if the relay never wrote one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Empty while a lost topic is being republished.
    pub cluster: String,
    pub through: chrono::DateTime<chrono::Utc>,
}

/// Reads the relay's watermark from the store.
pub async fn read_watermark(db: &mongodb::Database) -> anyhow::Result<Option<Watermark>> {
    let d = db
        .collection::<Document>(RELAY_STATE)
        .find_one(doc! { "_id": WATERMARK_ID })
        .await?;
    Ok(d.and_then(|d| {
        let cluster = d.get_str("cluster").ok()?.to_owned();
        let through = d.get_datetime("through").ok()?.timestamp_millis();
        Some(Watermark {
            cluster,
            through: chrono::DateTime::from_timestamp_millis(through)?,
        })
    }))
}
