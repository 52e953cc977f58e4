//! The write side of the commerce backend.
//!
//! - [`event_store`]: the MongoDB event store (one document per event, atomic appends,
//!   duplicate key = conflict, idempotency records).
//! - [`group_commit`]: concurrent single-event appends share one `insert_many`.
//! - [`handler`]: the one generic command handler every aggregate uses.
//! - [`cart_service`]: the `CartCommands` gRPC service.
//! - [`relay`]: tails the store and publishes every committed event to Kafka
//!   ([`relay_parking`]: the streams it holds behind an event it cannot publish).
//! - [`internal_auth`]: the credential of service-to-service calls; [`policies`]: who may
//!   issue which command.
//! - [`kafka`], [`support`]: plumbing shared with the other services; [`trace_context`]: W3C
//!   trace context over gRPC metadata, stored events and Kafka headers.
//! - [`error`]: the command side's error enum and its mapping to gRPC status codes.

pub mod app;
pub mod auth;
pub mod cart_service;
pub mod credentials;
pub mod error;
pub mod event_store;
pub mod generic_service;
pub mod group_commit;
pub mod handler;
pub mod internal_auth;
pub mod kafka;
pub mod payment_service;
pub mod pii;
pub mod policies;
pub mod relay;
pub mod relay_parking;
pub mod reviews;
pub mod support;
pub mod tokens;
pub mod trace_context;
pub mod user_service;

/// Where the event store is.
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    pub mongodb_uri: String,
    #[arg(long, env = "MONGODB_DB", default_value = "commerce")]
    pub mongodb_db: String,
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
            &self.mongodb_uri,
            &self.mongodb_db,
            group_commit::GroupCommitConfig {
                max_batch: self.group_commit,
                writers: self.group_commit_writers,
            },
        )
        .await
    }
}
