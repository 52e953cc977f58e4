//! The event store as the command handler sees it: load a stream of one type, look up what
//! an idempotency key did, append a command's events (all or nothing, optimistic on the
//! stream's version). [`EventStore`](crate::event_store::EventStore) is the MongoDB one;
//! [`MemoryStore`](crate::memory::MemoryStore) keeps the same rules in memory, for fast
//! unit tests of what runs over a store.

use crate::error::StoreError;
use crate::event_store::{EventStore, IdempotentResult};
use crate::mongo::SideWrite;
use event_schemas::EventEnvelope;
use std::future::Future;

pub trait Store: Send + Sync + 'static {
    /// The events of a stream of type `stream_type` after `after_version`, in version order;
    /// `None` when the id names a stream of another type.
    fn load_typed(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: u64,
    ) -> impl Future<Output = Result<Option<Vec<EventEnvelope>>, StoreError>> + Send;

    /// What the command recorded under an idempotency record id did, if one did.
    fn idempotent_result(
        &self,
        record_id: &str,
    ) -> impl Future<Output = Result<Option<IdempotentResult>, StoreError>> + Send;

    /// Appends a command's events, the last one carrying the idempotency record id, with
    /// `side` writes, all or nothing: `Conflict` if the stream moved past the events' first
    /// version or the record id is taken, `Taken` if an inserted side document exists.
    fn append_with(
        &self,
        events: &[EventEnvelope],
        idempotency_record: Option<&str>,
        side: &[SideWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl Store for EventStore {
    async fn load_typed(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError> {
        EventStore::load_typed(self, stream_type, stream_id, after_version).await
    }

    async fn idempotent_result(
        &self,
        record_id: &str,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        EventStore::idempotent_result(self, record_id).await
    }

    async fn append_with(
        &self,
        events: &[EventEnvelope],
        idempotency_record: Option<&str>,
        side: &[SideWrite],
    ) -> Result<(), StoreError> {
        EventStore::append_with(self, events, idempotency_record, side).await
    }
}
