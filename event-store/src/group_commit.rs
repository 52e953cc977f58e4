//! Group commit for the event store: single-event appends that arrive while the store is busy
//! are written together, as one unordered `insert_many`, instead of one round trip each.
//!
//! Nothing waits on a timer. A writer takes the first pending append, then whatever else is
//! already queued (up to `max_batch`), and writes them; appends that arrive meanwhile form the
//! next batch. At low load a batch is one document, so latency is unchanged; under load the
//! store sees fewer, larger requests, which is where a MongoDB-wire server spends its time.
//!
//! Each document is still its own atomic write with its own outcome: the unique
//! `(stream_id, version)` index fails only the losing append of a batch (a conflict for that
//! command alone), and the others are committed. An error without per-document results (the
//! connection dropped, the server is down) fails every append of the batch as unavailable,
//! exactly what a lone `insert_one` would have reported.

use crate::error::StoreError;
use crate::mongo::codes;
use mongodb::bson::Document;
use mongodb::error::ErrorKind;
use mongodb::Collection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// How appends are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// Most documents in one `insert_many`; 1 turns grouping off (one `insert_one` each).
    pub max_batch: usize,
    /// Batches in flight at once.
    pub writers: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            writers: 2,
        }
    }
}

struct Pending {
    doc: Document,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue in front of the writers. Cheap to clone; the writers stop when every clone is
/// dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    largest: Arc<AtomicUsize>,
}

impl GroupCommit {
    /// Starts the writers on the current Tokio runtime.
    pub fn start(events: Collection<Document>, config: GroupCommitConfig) -> Self {
        let max_batch = config.max_batch.max(1);
        let (queue, rx) = mpsc::channel(max_batch * 16);
        let rx = Arc::new(Mutex::new(rx));
        let largest = Arc::new(AtomicUsize::new(0));
        for _ in 0..config.writers.max(1) {
            tokio::spawn(writer(
                events.clone(),
                rx.clone(),
                max_batch,
                largest.clone(),
            ));
        }
        Self { queue, largest }
    }

    /// The most documents written together so far.
    pub fn largest_batch(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }

    /// Inserts one document, grouped with whatever else is pending; resolves once its own
    /// outcome is known.
    pub async fn insert(&self, doc: Document) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the store's writer stopped".into());
        self.queue
            .send(Pending { doc, done })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn writer(
    events: Collection<Document>,
    queue: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
    largest: Arc<AtomicUsize>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        metrics::histogram!("event_store_group_commit_size").record(batch.len() as f64);
        largest.fetch_max(batch.len(), Ordering::Relaxed);
        let (docs, waiting): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.doc, p.done)).unzip();
        let outcomes = write(&events, docs).await;
        for (done, outcome) in waiting.into_iter().zip(outcomes) {
            // The caller may have gone (its request was cancelled); the write stands.
            let _ = done.send(outcome);
        }
    }
}

/// Writes a batch and returns each document's outcome, in order.
async fn write(events: &Collection<Document>, docs: Vec<Document>) -> Vec<Result<(), StoreError>> {
    let n = docs.len();
    let result = if n == 1 {
        match docs.into_iter().next() {
            Some(doc) => events.insert_one(doc).await.map(|_| ()),
            None => Ok(()),
        }
    } else {
        events.insert_many(docs).ordered(false).await.map(|_| ())
    };
    let Err(e) = result else {
        return (0..n).map(|_| Ok(())).collect();
    };
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
            let failed: HashMap<usize, (i32, &str)> = failure
                .write_errors
                .iter()
                .flatten()
                .map(|w| (w.index, (w.code, w.message.as_str())))
                .collect();
            (0..n)
                .map(|i| match failed.get(&i) {
                    None => Ok(()),
                    Some((codes::DUPLICATE_KEY | codes::WRITE_CONFLICT, _)) => {
                        Err(StoreError::Conflict)
                    }
                    Some((code, message)) => Err(StoreError::Unavailable(format!(
                        "insert refused ({code}): {message}"
                    ))),
                })
                .collect()
        }
        ErrorKind::InsertMany(_) => (0..n)
            .map(|_| Err(StoreError::Unavailable(e.to_string())))
            .collect(),
        _ => (0..n).map(|_| Err(StoreError::from(e.clone()))).collect(),
    }
}
