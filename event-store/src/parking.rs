//! The relay's parked streams (`relay_parked` in the store): a document in `events` that does
//! not decode, or an event larger than the broker accepts (MsgSizeTooLarge), is parked here
//! with a reason, and the relay goes on with every other stream. The parked event and every
//! later event of its stream stay `published: false` (stream order holds) until an operator,
//! once the document or the broker's limit is fixed, unparks the stream
//! (`commerce dlq replay --relay --stream ID`); the next catch-up sweep then publishes them in
//! order. A parked document without a usable stream id is parked by its `_id` alone.

use crate::event_store::{from_document, EventStore};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Collection, Database};
use serde::Serialize;
use std::collections::HashSet;

/// The collection of parked streams.
pub const COLLECTION: &str = "relay_parked";

/// What the relay holds back.
pub struct Parking {
    coll: Collection<Document>,
    /// Parked stream ids: their unpublished events wait.
    streams: HashSet<String>,
    /// `_id`s of parked documents (a document without a usable stream id is excluded by it).
    docs: Vec<Bson>,
}

/// The `_id` of a parked entry for `doc`: its stream, or its own `_id` when it has none.
fn entry_id(doc: &Document) -> String {
    match doc.get_str("stream_id") {
        Ok(s) => s.to_owned(),
        Err(_) => format!("document:{}", doc.get("_id").cloned().unwrap_or(Bson::Null)),
    }
}

/// Parks the stream of `doc` (an event document) with `reason`; returns the parked stream id,
/// if the document names one. Parking a stream twice keeps the first entry.
pub async fn park_document(
    coll: &Collection<Document>,
    doc: &Document,
    reason: &str,
) -> mongodb::error::Result<Option<String>> {
    let stream = doc.get_str("stream_id").ok().map(str::to_owned);
    let entry = doc! {
        "stream_id": stream.clone().map(Bson::String).unwrap_or(Bson::Null),
        "stream_type": doc.get("stream_type").cloned().unwrap_or(Bson::Null),
        "doc_id": doc.get("_id").cloned().unwrap_or(Bson::Null),
        "version": doc.get("version").cloned().unwrap_or(Bson::Null),
        "reason": reason,
        "parked_at": mongodb::bson::DateTime::now(),
    };
    coll.update_one(
        doc! { "_id": entry_id(doc) },
        doc! { "$setOnInsert": entry },
    )
    .upsert(true)
    .await?;
    metrics::counter!("relay_parked_total").increment(1);
    tracing::warn!(
        stream_id = ?stream,
        doc_id = ?doc.get("_id"),
        %reason,
        "relay: parking a stream behind an event it cannot publish"
    );
    Ok(stream)
}

impl Parking {
    pub fn new(db: &Database) -> Self {
        Self {
            coll: db.collection(COLLECTION),
            streams: HashSet::new(),
            docs: Vec::new(),
        }
    }

    pub fn collection(&self) -> Collection<Document> {
        self.coll.clone()
    }

    /// Whether `stream_id`'s events wait.
    pub fn holds(&self, stream_id: &str) -> bool {
        self.streams.contains(stream_id)
    }

    /// Re-reads the parked entries (an operator may have unparked some), and sets the
    /// `relay_parked_events` gauge.
    pub async fn reload(&mut self) -> mongodb::error::Result<()> {
        let entries: Vec<Document> = self.coll.find(doc! {}).await?.try_collect().await?;
        self.streams.clear();
        self.docs.clear();
        for e in &entries {
            if let Ok(s) = e.get_str("stream_id") {
                self.streams.insert(s.to_owned());
            }
            if let Some(id) = e.get("doc_id") {
                self.docs.push(id.clone());
            }
        }
        metrics::gauge!("relay_parked_events").set(entries.len() as f64);
        Ok(())
    }

    /// Parks `doc`'s stream (see [`park_document`]) and holds it from now on.
    pub async fn park(&mut self, doc: &Document, reason: &str) -> mongodb::error::Result<()> {
        if let Some(stream) = park_document(&self.coll, doc, reason).await? {
            self.streams.insert(stream);
        }
        if let Some(id) = doc.get("_id") {
            self.docs.push(id.clone());
        }
        metrics::gauge!("relay_parked_events").set(self.docs.len() as f64);
        Ok(())
    }

    /// Up to `limit` unpublished events of streams that are not parked, in stream order. A
    /// document that does not decode is parked on the way (and its stream's later events
    /// skipped).
    pub async fn unpublished(
        &mut self,
        store: &EventStore,
        limit: i64,
    ) -> anyhow::Result<Vec<event_schemas::EventEnvelope>> {
        self.reload().await?;
        let streams: Vec<&String> = self.streams.iter().collect();
        let filter = doc! {
            "published": false,
            "stream_id": { "$nin": streams },
            "_id": { "$nin": self.docs.clone() },
        };
        let docs: Vec<Document> = store
            .events()
            .find(filter)
            .sort(doc! { "stream_id": 1, "version": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            if d.get_str("stream_id").is_ok_and(|s| self.holds(s)) {
                continue;
            }
            match from_document(d.clone()) {
                Ok(env) => out.push(env),
                Err(e) => self.park(&d, &e.to_string()).await?,
            }
        }
        Ok(out)
    }
}

/// One parked stream, as `commerce dlq parked` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RelayParked {
    pub stream_id: Option<String>,
    pub stream_type: Option<String>,
    pub doc_id: String,
    pub version: Option<i64>,
    pub reason: String,
    pub parked_at: Option<DateTime<Utc>>,
    /// Unpublished events of the stream waiting (the parked one included).
    pub held_events: u64,
}

/// Every parked stream of the relay.
pub async fn list(db: &Database) -> mongodb::error::Result<Vec<RelayParked>> {
    let coll: Collection<Document> = db.collection(COLLECTION);
    let events: Collection<Document> = db.collection("events");
    let entries: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! { "parked_at": 1 })
        .await?
        .try_collect()
        .await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let stream_id = e.get_str("stream_id").ok().map(str::to_owned);
        let held_events = match &stream_id {
            Some(s) => {
                events
                    .count_documents(doc! { "published": false, "stream_id": s })
                    .await?
            }
            None => 1,
        };
        out.push(RelayParked {
            stream_type: e.get_str("stream_type").ok().map(str::to_owned),
            doc_id: e.get("doc_id").map(|b| b.to_string()).unwrap_or_default(),
            version: match e.get("version") {
                Some(Bson::Int64(n)) => Some(*n),
                Some(Bson::Int32(n)) => Some(i64::from(*n)),
                _ => None,
            },
            reason: e.get_str("reason").unwrap_or_default().to_owned(),
            parked_at: e
                .get_datetime("parked_at")
                .ok()
                .and_then(|d| DateTime::from_timestamp_millis(d.timestamp_millis())),
            held_events,
            stream_id,
        });
    }
    Ok(out)
}

/// Unparks `stream` (a stream id, or `document:<_id>` for a document parked without one);
/// the relay publishes its events at its next catch-up sweep. Returns whether it was parked.
pub async fn unpark(db: &Database, stream: &str) -> mongodb::error::Result<bool> {
    let coll: Collection<Document> = db.collection(COLLECTION);
    Ok(coll.delete_one(doc! { "_id": stream }).await?.deleted_count == 1)
}
