//! The MongoDB event store: one document per event in `events`, with a unique index on
//! `(stream_id, version)`. A command's idempotency key is written inside its last event
//! document (`idempotency_key`, unique where present), so the event and the record of its key
//! are one atomic write. A single-event command, the common case, is one insert with no
//! transaction, so a writer killed mid-append leaves nothing half-done and holds nothing: it
//! goes through [`GroupCommit`], where appends that arrive while the store is busy share one
//! unordered `insert_many`, each keeping its own outcome. Only a command of several events, or
//! with writes beside them (an email reservation), takes a multi-document transaction, and
//! that is bounded: [`TRANSACTION_LIMIT`] on the client, `maxCommitTimeMS` on the commit, and
//! the server's transaction lifetime for a writer that died inside one. A duplicate key means
//! another writer got there first: that is reported as [`StoreError::Conflict`], never as an
//! overwrite.
//!
//! Personal fields (see `event_schemas::personal`) are sealed by [`Keyring`] before
//! they are written and opened when a stream is loaded; [`EventStore::unpublished`] (the
//! relay's read) leaves them sealed, so Kafka only ever carries the sealed form.
//!
//! Each document also carries `published: false` until the relay has handed it to Kafka; the
//! relay's catch-up read finds whatever a crash left behind through that flag.

pub use crate::error::StoreError;
use crate::group_commit::{GroupCommit, GroupCommitConfig};
pub use crate::mongo::{codes, error_code, SideWrite};
use crate::pii::Keyring;
use chrono::{DateTime, Utc};
use event_schemas::EventEnvelope;
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::IndexOptions;
pub use mongodb::Database;
use mongodb::{Client, Collection, IndexModel};
use std::time::Duration;

/// The longest a multi-document append may take, commit included, before it is aborted.
pub const TRANSACTION_LIMIT: Duration = Duration::from_secs(5);

/// The field of an event document holding the idempotency key of the command that wrote it
/// (on the command's last event only).
pub const IDEMPOTENCY_FIELD: &str = "idempotency_key";

/// Where an idempotency key holds: one stream type, one stream (or, for a command that
/// creates a stream whose id the service chooses, no stream), one caller. Two callers, or
/// two streams, never share a record, so a key one customer used means nothing for another,
/// and the saga's keys (its actor is a `service:` one no client can act as) mean nothing for
/// a client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyScope<'a> {
    pub stream_type: &'a str,
    /// The stream the command is for; `None` for a creating command.
    pub stream_id: Option<&'a str>,
    pub actor: &'a str,
    pub key: &'a str,
}

impl IdempotencyScope<'_> {
    /// The `_id` of the scope's record in `idempotency_keys`: the four parts as a JSON array,
    /// so that no part can be confused with another whatever characters it holds.
    pub fn record_id(&self) -> String {
        serde_json::json!([self.stream_type, self.stream_id, self.actor, self.key]).to_string()
    }
}

/// A previous result of an idempotent command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResult {
    pub stream_id: String,
    pub version: u64,
}

/// The event store. Cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    client: Client,
    db: Database,
    events: Collection<Document>,
    idempotency: Collection<Document>,
    /// Groups single-event appends; `None` writes each with its own `insert_one`.
    group: Option<GroupCommit>,
    /// Seals personal fields on append, opens them on load.
    keyring: Keyring,
}

impl EventStore {
    /// Connects with the default group commit and makes sure the indexes exist.
    pub async fn connect(uri: &str, db_name: &str) -> anyhow::Result<Self> {
        Self::connect_with(uri, db_name, GroupCommitConfig::default()).await
    }

    /// Connects and makes sure the indexes exist; `max_batch` 1 turns group commit off.
    pub async fn connect_with(
        uri: &str,
        db_name: &str,
        group_commit: GroupCommitConfig,
    ) -> anyhow::Result<Self> {
        let mut options = mongodb::options::ClientOptions::parse(uri).await?;
        options.app_name = Some("commerce".into());
        options.server_selection_timeout = Some(Duration::from_secs(5));
        options.connect_timeout = Some(Duration::from_secs(5));
        let client = Client::with_options(options)?;
        let db = client.database(db_name);
        let events: Collection<Document> = db.collection("events");
        let group =
            (group_commit.max_batch > 1).then(|| GroupCommit::start(events.clone(), group_commit));
        let store = Self {
            events,
            group,
            idempotency: db.collection("idempotency_keys"),
            keyring: Keyring::new(&db),
            client,
            db,
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    async fn ensure_indexes(&self) -> anyhow::Result<()> {
        let unique = IndexOptions::builder()
            .unique(true)
            .name("stream_version".to_owned())
            .build();
        self.events
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "stream_id": 1, "version": 1 })
                    .options(unique)
                    .build(),
            )
            .await?;
        self.events
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "published": 1, "stream_id": 1, "version": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("unpublished".to_owned())
                            .build(),
                    )
                    .build(),
            )
            .await?;
        self.events
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "stream_type": 1, "occurred_at": 1 })
                    .options(IndexOptions::builder().name("type_time".to_owned()).build())
                    .build(),
            )
            .await?;
        // The idempotency key a command's last event carries: unique where present.
        self.events
            .create_index(
                IndexModel::builder()
                    .keys(doc! { IDEMPOTENCY_FIELD: 1 })
                    .options(
                        IndexOptions::builder()
                            .name("idempotency_key".to_owned())
                            .unique(true)
                            .sparse(true)
                            .build(),
                    )
                    .build(),
            )
            .await?;
        Ok(())
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The most single-event appends group-committed together so far (0 when it is off).
    pub fn largest_group_commit(&self) -> usize {
        self.group.as_ref().map_or(0, GroupCommit::largest_batch)
    }

    pub fn events(&self) -> &Collection<Document> {
        &self.events
    }

    /// The keyring sealing and opening personal fields.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Is the store reachable? Used by health checks, never on the request path.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    /// The events of a stream of type `stream_type` after `after_version`, in version order;
    /// `None` when the id names a stream of another type (an order id given where a cart id
    /// belongs): stream ids are unique across types, so that stream is not one of these, and
    /// its events are never decoded as this type's.
    pub async fn load_typed(
        &self,
        stream_type: &str,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Option<Vec<EventEnvelope>>, StoreError> {
        let events = self.load(stream_id, after_version).await?;
        if events.iter().any(|e| e.stream_type != stream_type) {
            tracing::debug!(stream_id, stream_type, "stream id of another type");
            return Ok(None);
        }
        Ok(Some(events))
    }

    /// The events of a stream after `after_version`, in version order, whatever its type
    /// (operator tools), personal fields opened (`null` where erased); aggregates load theirs
    /// with [`EventStore::load_typed`].
    pub async fn load(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let cursor = self
            .events
            .find(doc! { "stream_id": stream_id, "version": { "$gt": after_version as i64 } })
            .sort(doc! { "version": 1 })
            .await?;
        let docs: Vec<Document> = cursor.try_collect().await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let env = from_document(d)?;
            let expected = after_version + out.len() as u64 + 1;
            if env.version != expected {
                return Err(StoreError::Corrupt(format!(
                    "stream {stream_id} jumps to version {} where {expected} was expected",
                    env.version
                )));
            }
            out.push(env);
        }
        for env in &mut out {
            self.keyring.open(env).await?;
        }
        Ok(out)
    }

    /// Looks up the recorded result of an idempotency record (see
    /// [`IdempotencyScope::record_id`]).
    pub async fn idempotent_result(
        &self,
        record_id: &str,
    ) -> Result<Option<IdempotentResult>, StoreError> {
        // Where keys are written: inside the command's last event.
        if let Some(d) = self
            .events
            .find_one(doc! { IDEMPOTENCY_FIELD: record_id })
            .await?
        {
            let env = from_document(d)?;
            return Ok(Some(IdempotentResult {
                stream_id: env.stream_id,
                version: env.version,
            }));
        }
        // Where earlier versions wrote them (`idempotency_keys`).
        let found = self.idempotency.find_one(doc! { "_id": record_id }).await?;
        Ok(found.and_then(|d| {
            Some(IdempotentResult {
                stream_id: d.get_str("stream_id").ok()?.to_owned(),
                version: d.get_i64("version").ok()? as u64,
            })
        }))
    }

    /// Appends a command's events, all or nothing, the last one carrying the idempotency
    /// record id (if any, see [`IdempotencyScope::record_id`]): a single event is one atomic
    /// insert, several are one bounded transaction. The events must continue the stream
    /// gap-free; if any of their `(stream_id, version)` (or the record id) exists already,
    /// nothing is written and `Conflict` is returned.
    pub async fn append(
        &self,
        events: &[EventEnvelope],
        idempotency_key: Option<&str>,
    ) -> Result<(), StoreError> {
        self.append_with(events, idempotency_key, &[]).await
    }

    /// [`EventStore::append`] plus writes to other collections in the same transaction. A
    /// duplicate `_id` of an inserted side document is reported as [`StoreError::Taken`].
    pub async fn append_with(
        &self,
        events: &[EventEnvelope],
        idempotency_key: Option<&str>,
        side: &[SideWrite],
    ) -> Result<(), StoreError> {
        let result = self.append_inner(events, idempotency_key, side).await;
        if let Err(StoreError::Conflict) = result {
            for w in side {
                if let SideWrite::Insert { collection, doc } = w {
                    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                    let found = self
                        .db
                        .collection::<Document>(collection)
                        .find_one(doc! { "_id": id })
                        .await?;
                    if found.is_some() {
                        return Err(StoreError::Taken(collection));
                    }
                }
            }
        }
        result
    }

    async fn append_inner(
        &self,
        events: &[EventEnvelope],
        idempotency_key: Option<&str>,
        side: &[SideWrite],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut docs = Vec::with_capacity(events.len());
        for env in events {
            let mut sealed = env.clone();
            self.keyring.seal(&mut sealed).await?;
            docs.push(to_document(&sealed)?);
        }
        if let (Some(key), Some(doc)) = (idempotency_key, docs.last_mut()) {
            doc.insert(IDEMPOTENCY_FIELD, key);
        }
        if docs.len() == 1 && side.is_empty() {
            // One document (with its idempotency key) is written atomically on its own: no
            // transaction, one round trip, shared with other appends pending at the same
            // moment.
            if let Some(doc) = docs.pop() {
                match &self.group {
                    Some(group) => group.insert(doc).await?,
                    None => {
                        self.events.insert_one(doc).await?;
                    }
                }
            }
            return Ok(());
        }
        let mut session = self.client.start_session().await?;
        session
            .start_transaction()
            .max_commit_time(TRANSACTION_LIMIT)
            .await?;
        let written = tokio::time::timeout(TRANSACTION_LIMIT, async {
            self.events.insert_many(docs).session(&mut session).await?;
            for w in side {
                match w {
                    SideWrite::Insert { collection, doc } => {
                        self.db
                            .collection::<Document>(collection)
                            .insert_one(doc.clone())
                            .session(&mut session)
                            .await?;
                    }
                    SideWrite::Delete { collection, id } => {
                        self.db
                            .collection::<Document>(collection)
                            .delete_one(doc! { "_id": id })
                            .session(&mut session)
                            .await?;
                    }
                    SideWrite::Replace {
                        collection,
                        id,
                        doc,
                    } => {
                        self.db
                            .collection::<Document>(collection)
                            .replace_one(doc! { "_id": id }, doc.clone())
                            .upsert(true)
                            .session(&mut session)
                            .await?;
                    }
                }
            }
            Ok::<_, mongodb::error::Error>(())
        })
        .await;
        let written = match written {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the append's transaction took over {TRANSACTION_LIMIT:?}"
            ))),
        };
        if let Err(e) = written {
            // Aborting can itself fail when the server already dropped the transaction.
            let _ = session.abort_transaction().await;
            return Err(e);
        }
        // A commit whose outcome is unknown may be retried: committing is idempotent.
        let mut attempts = 0;
        loop {
            match session.commit_transaction().await {
                Ok(()) => return Ok(()),
                Err(e) if e.contains_label("UnknownTransactionCommitResult") && attempts < 3 => {
                    attempts += 1;
                }
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    return Err(e.into());
                }
            }
        }
    }

    /// Marks events as handed to Kafka.
    pub async fn mark_published(&self, event_ids: &[String]) -> Result<(), StoreError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        self.events
            .update_many(
                doc! { "_id": { "$in": event_ids } },
                doc! { "$set": { "published": true } },
            )
            .await?;
        Ok(())
    }

    /// Up to `limit` events not yet handed to Kafka, ordered by stream and version.
    pub async fn unpublished(&self, limit: i64) -> Result<Vec<EventEnvelope>, StoreError> {
        let cursor = self
            .events
            .find(doc! { "published": false })
            .sort(doc! { "stream_id": 1, "version": 1 })
            .limit(limit)
            .await?;
        let docs: Vec<Document> = cursor.try_collect().await?;
        docs.into_iter().map(from_document).collect()
    }
}

/// An envelope as a stored document. `_id` is the event id.
pub fn to_document(env: &EventEnvelope) -> Result<Document, StoreError> {
    let data = bson::to_document(&env.data)
        .map_err(|e| StoreError::Corrupt(format!("payload is not a document: {e}")))?;
    let mut d = doc! {
        "_id": env.event_id.to_string(),
        "stream_type": &env.stream_type,
        "stream_id": &env.stream_id,
        "version": env.version as i64,
        "event_type": &env.event_type,
        "schema_version": env.schema_version as i32,
        "occurred_at": bson::DateTime::from_millis(env.occurred_at.timestamp_millis()),
        "correlation_id": &env.correlation_id,
        "actor": &env.actor,
        "data": data,
        "published": false,
    };
    if let Some(c) = &env.causation_id {
        d.insert("causation_id", c);
    }
    if let Some(t) = &env.traceparent {
        d.insert("traceparent", t);
    }
    Ok(d)
}

/// A stored document as an envelope.
pub fn from_document(d: Document) -> Result<EventEnvelope, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} in {:?}", d.get("_id")));
    let s = |k: &str| d.get_str(k).map(str::to_owned).map_err(|_| corrupt(k));
    let int = |k: &str| match d.get(k) {
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Int32(n)) => Ok(i64::from(*n)),
        _ => Err(corrupt(k)),
    };
    let millis = d
        .get_datetime("occurred_at")
        .map_err(|_| corrupt("occurred_at"))?
        .timestamp_millis();
    let occurred_at: DateTime<Utc> =
        DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt("occurred_at"))?;
    let data = d.get_document("data").map_err(|_| corrupt("data"))?.clone();
    Ok(EventEnvelope {
        event_id: s("_id")?.parse().map_err(|_| corrupt("_id"))?,
        stream_type: s("stream_type")?,
        stream_id: s("stream_id")?,
        version: u64::try_from(int("version")?).map_err(|_| corrupt("version"))?,
        event_type: s("event_type")?,
        schema_version: u32::try_from(int("schema_version")?)
            .map_err(|_| corrupt("schema_version"))?,
        occurred_at,
        correlation_id: s("correlation_id")?,
        causation_id: d.get_str("causation_id").ok().map(str::to_owned),
        actor: s("actor")?,
        data: Bson::Document(data).into_relaxed_extjson(),
        // Optional: documents stored before tracing have none.
        traceparent: d.get_str("traceparent").ok().map(str::to_owned),
    })
}

/// The collection holding the store's identity document.
const IDENTITY_COLLECTION: &str = "store_identity";

/// The store's identity: a random id written once, when the store is first used, and never
/// changed. The relay stamps it on every record and the projectors record it beside their
/// checkpoints, so a read side built from another store (a wiped or restored one) is told
/// apart at start. Whoever comes first creates it; a concurrent creator reads the winner's.
pub async fn store_identity(db: &Database) -> Result<String, StoreError> {
    let coll: Collection<Document> = db.collection(IDENTITY_COLLECTION);
    let read = |d: Document| d.get_str("store_id").map(str::to_owned).ok();
    if let Some(id) = coll.find_one(doc! { "_id": "store" }).await?.and_then(read) {
        return Ok(id);
    }
    let fresh = uuid::Uuid::new_v4().to_string();
    match coll
        .insert_one(
            doc! { "_id": "store", "store_id": &fresh, "created_at": bson::DateTime::now() },
        )
        .await
    {
        Ok(_) => Ok(fresh),
        Err(e) if error_code(&e) == Some(codes::DUPLICATE_KEY) => coll
            .find_one(doc! { "_id": "store" })
            .await?
            .and_then(read)
            .ok_or_else(|| StoreError::Corrupt("store identity without store_id".into())),
        Err(e) => Err(e.into()),
    }
}

/// Connects to the store at `uri` and returns its identity (see [`store_identity`]); for the
/// projectors, which read only that and the relay's watermark from the store.
pub async fn connect_identity(uri: &str, db_name: &str) -> anyhow::Result<String> {
    Ok(store_identity(&connect_database(uri, db_name).await?).await?)
}

/// A handle on the store's database for a reader that needs no indexes (5 s timeouts).
pub async fn connect_database(uri: &str, db_name: &str) -> anyhow::Result<Database> {
    let mut options = mongodb::options::ClientOptions::parse(uri).await?;
    options.app_name = Some("commerce-reader".into());
    options.server_selection_timeout = Some(Duration::from_secs(5));
    options.connect_timeout = Some(Duration::from_secs(5));
    Ok(Client::with_options(options)?.database(db_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::cart::{CartCreated, CartEvent};
    use domain::values::CartId;
    use event_schemas::EventMeta;

    #[test]
    fn the_trace_context_is_stored_and_older_documents_have_none() {
        let id = CartId::generate();
        let event = CartEvent::CartCreated(CartCreated {
            cart_id: id,
            customer_id: None,
        });
        let meta = EventMeta::default();
        let mut env =
            EventEnvelope::new("cart", &id.to_string(), 1, &event, &meta, Utc::now()).unwrap();
        env.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let d = to_document(&env).unwrap();
        assert_eq!(from_document(d.clone()).unwrap(), env);
        // A document written before events carried a trace context.
        let mut old = d;
        old.remove("traceparent");
        assert_eq!(from_document(old).unwrap().traceparent, None);
    }
}
