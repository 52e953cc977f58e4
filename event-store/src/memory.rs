//! An event store in memory with the MongoDB store's rules: streams continue gap-free (an
//! append at a version already taken is a `Conflict`, and nothing of it is written), an
//! idempotency record id is unique, inserted side documents are unique by `_id`. For unit
//! tests of the command handler and of anything else written over [`Store`].

use crate::error::StoreError;
use crate::event_store::IdempotentResult;
use crate::mongo::SideWrite;
use crate::store::Store;
use event_schemas::EventEnvelope;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct State {
    streams: HashMap<String, Vec<EventEnvelope>>,
    records: HashMap<String, IdempotentResult>,
    side: HashSet<(&'static str, String)>,
}

/// The store in memory. Cheap to make; one per test.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event of a stream, whatever its type.
    pub fn events(&self, stream_id: &str) -> Vec<EventEnvelope> {
        self.lock()
            .map(|s| s.streams.get(stream_id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

/// The collection and `_id` a side write names (an `_id` that is a string keeps its text,
/// so an insert and a later delete of the same document meet).
fn side_id(w: &SideWrite) -> (&'static str, String) {
    match w {
        SideWrite::Insert { collection, doc } => {
            let id = match doc.get("_id") {
                Some(mongodb::bson::Bson::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (collection, id)
        }
        SideWrite::Delete { collection, id } | SideWrite::Replace { collection, id, .. } => {
            (collection, id.clone())
        }
    }
}

impl Store for MemoryStore {
    async fn load_typed(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError> {
        let state = self.lock()?;
        let events = state.streams.get(stream_id).cloned().unwrap_or_default();
        if events.iter().any(|e| e.stream_type != stream_type) {
            return Ok(None);
        }
        Ok(Some(
            events
                .into_iter()
                .filter(|e| e.version > after_version)
                .collect(),
        ))
    }

    async fn idempotent_result(
        &self,
        record_id: &str,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        Ok(self.lock()?.records.get(record_id).cloned())
    }

    async fn append_with(
        &self,
        events: &[EventEnvelope],
        idempotency_record: Option<&str>,
        side: &[SideWrite],
    ) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let mut state = self.lock()?;
        let held = state.streams.get(&first.stream_id).map_or(0, Vec::len) as u64;
        let gap_free = events
            .iter()
            .enumerate()
            .all(|(i, e)| e.stream_id == first.stream_id && e.version == held + 1 + i as u64);
        if !gap_free {
            return Err(StoreError::Conflict);
        }
        if idempotency_record.is_some_and(|r| state.records.contains_key(r)) {
            return Err(StoreError::Conflict);
        }
        for w in side {
            if let SideWrite::Insert { collection, .. } = w {
                if state.side.contains(&side_id(w)) {
                    return Err(StoreError::Taken(collection));
                }
            }
        }
        for w in side {
            match w {
                SideWrite::Insert { .. } | SideWrite::Replace { .. } => {
                    state.side.insert(side_id(w));
                }
                SideWrite::Delete { .. } => {
                    state.side.remove(&side_id(w));
                }
            }
        }
        if let Some(record) = idempotency_record {
            state.records.insert(
                record.to_owned(),
                IdempotentResult {
                    stream_id: last.stream_id.clone(),
                    version: last.version,
                },
            );
        }
        state
            .streams
            .entry(first.stream_id.clone())
            .or_default()
            .extend(events.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    fn event(stream: &str, version: u64) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::now_v7(),
            stream_type: "user".into(),
            stream_id: stream.into(),
            version,
            event_type: "UserRegistered".into(),
            schema_version: 1,
            occurred_at: chrono::Utc::now(),
            correlation_id: "c".into(),
            causation_id: None,
            actor: "anonymous".into(),
            data: serde_json::json!({}),
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn a_taken_side_insert_refuses_the_append_until_it_is_deleted() {
        let store = MemoryStore::new();
        let reserve = |email: &str| SideWrite::Insert {
            collection: "emails",
            doc: doc! { "_id": email },
        };
        store
            .append_with(&[event("a", 1)], None, &[reserve("x@example.com")])
            .await
            .unwrap();
        let taken = store
            .append_with(&[event("b", 1)], None, &[reserve("x@example.com")])
            .await;
        assert!(
            matches!(taken, Err(StoreError::Taken("emails"))),
            "{taken:?}"
        );
        assert!(
            store.events("b").is_empty(),
            "nothing of the refused append is written"
        );
        let release = SideWrite::Delete {
            collection: "emails",
            id: "x@example.com".into(),
        };
        store
            .append_with(&[event("a", 2)], None, &[release])
            .await
            .unwrap();
        store
            .append_with(&[event("b", 1)], None, &[reserve("x@example.com")])
            .await
            .unwrap();
        assert!(matches!(
            store.append_with(&[event("b", 3)], None, &[]).await,
            Err(StoreError::Conflict)
        ));
    }
}
