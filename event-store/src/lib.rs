//! The MongoDB event store and the documents kept beside the events.
//!
//! - [`event_store`]: one document per event, atomic appends (duplicate key = conflict),
//!   idempotency records, side writes in the same transaction.
//! - [`error`]: the store's error; [`mongo`]: the server codes it acts on and side writes.
//! - [`group_commit`]: concurrent single-event appends share one `insert_many`.
//! - [`pii`]: the key vault for personal fields sealed in events (crypto-shredding).
//! - [`parking`]: the streams the relay holds behind an event it cannot publish.
//! - [`store`]: the store as the command handler sees it (a trait), and [`memory`], the same
//!   rules in memory for unit tests.
//! - [`watermark`]: how far the relay vouches for the broker's copy.

pub mod error;
pub mod event_store;
pub mod group_commit;
pub mod memory;
pub mod mongo;
pub mod parking;
pub mod pii;
pub mod store;
pub mod watermark;

/// Where the event store is: its server and database.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreLocation {
    /// The event store's MongoDB (the projectors check the read side's identity against
    /// it at start, emptying and replaying a read model of another store; empty: no check).
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    pub mongodb_uri: String,
    #[arg(long, env = "MONGODB_DB", default_value = "commerce")]
    pub mongodb_db: String,
}

/// Where the event store is, and how it is written.
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    /// Group commit: most single-event appends written together in one `insert_many`;
    /// 1 turns it off (one `insert_one` per append).
    #[arg(long, env = "STORE_GROUP_COMMIT", default_value_t = 64)]
    pub group_commit: usize,
    /// Group-commit batches in flight at once.
    #[arg(long, env = "STORE_GROUP_COMMIT_WRITERS", default_value_t = 2)]
    pub group_commit_writers: usize,
}

impl MongoArgs {
    pub async fn connect(&self) -> anyhow::Result<event_store::EventStore> {
        event_store::EventStore::connect_with(
            &self.store.mongodb_uri,
            &self.store.mongodb_db,
            group_commit::GroupCommitConfig {
                max_batch: self.group_commit,
                writers: self.group_commit_writers,
            },
        )
        .await
    }
}
