//! The event store against the real MongoDB-wire server, with group commit on and off:
//! concurrent appends to different streams all land, and concurrent appends at the same
//! version of one stream give exactly one winner and a conflict for every other, whether or
//! not they shared an `insert_many`.

use crate::common::mongodb_uri;
use domain::cart::{CartCreated, CartEvent};
use domain::values::CartId;
use event_schemas::{EventEnvelope, EventMeta};
use event_store::event_store::{EventStore, StoreError};
use event_store::group_commit::GroupCommitConfig;
use futures::future::join_all;
use mongodb::bson::doc;

async fn store(max_batch: usize) -> (EventStore, String) {
    let db = format!("store_test_{}", uuid::Uuid::now_v7().simple());
    let store = EventStore::connect_with(
        &mongodb_uri(),
        &db,
        GroupCommitConfig {
            max_batch,
            writers: 2,
        },
    )
    .await
    .expect("connect to the store");
    (store, db)
}

fn event(stream_id: &str, version: u64) -> EventEnvelope {
    let e = CartEvent::CartCreated(CartCreated {
        cart_id: CartId::parse(stream_id).expect("a uuid"),
        customer_id: None,
    });
    EventEnvelope::new(
        "cart",
        stream_id,
        version,
        &e,
        &EventMeta::default(),
        chrono::Utc::now(),
    )
    .expect("envelope")
}

async fn check(max_batch: usize) {
    let (store, db) = store(max_batch).await;

    // 300 appends to 300 new streams at once: every one is acknowledged and stored.
    let streams: Vec<String> = (0..300).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let firsts: Vec<_> = streams.iter().map(|s| event(s, 1)).collect();
    let results = join_all(
        firsts
            .iter()
            .map(|e| store.append(std::slice::from_ref(e), None)),
    )
    .await;
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "group {max_batch}: {failed:?}");
    let stored = store
        .events()
        .count_documents(doc! { "stream_id": { "$in": &streams } })
        .await
        .expect("count");
    assert_eq!(stored, 300, "group {max_batch}");

    // 40 rounds of 25 writers racing for the same next version of one stream, mixed with
    // writers of other streams: exactly one winner per round, a conflict for the rest, and
    // the stream stays gap-free.
    let contested = uuid::Uuid::now_v7().to_string();
    for version in 1..=40u64 {
        let others: Vec<String> = (0..10).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let racers: Vec<_> = (0..25).map(|_| event(&contested, version)).collect();
        let newcomers: Vec<_> = others.iter().map(|s| event(s, 1)).collect();
        let racing = racers
            .iter()
            .map(|e| store.append(std::slice::from_ref(e), None));
        let bystanders = newcomers
            .iter()
            .map(|e| store.append(std::slice::from_ref(e), None));
        let (racing, bystanders) = tokio::join!(join_all(racing), join_all(bystanders));
        let won = racing.iter().filter(|r| r.is_ok()).count();
        let conflicts = racing
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict)))
            .count();
        assert_eq!(
            (won, conflicts),
            (1, 24),
            "group {max_batch}, version {version}: {racing:?}"
        );
        assert!(
            bystanders.iter().all(|r| r.is_ok()),
            "group {max_batch}: a bystander failed: {bystanders:?}"
        );
    }
    // Group commit did group: appends pending together shared an `insert_many`.
    if max_batch > 1 {
        assert!(store.largest_group_commit() > 1, "no batch was grouped");
    } else {
        assert_eq!(store.largest_group_commit(), 0);
    }
    let history = store.load(&contested, 0).await.expect("load");
    assert_eq!(history.len(), 40, "group {max_batch}");

    // An append at a version that exists is a conflict, not an overwrite.
    let before = history[9].event_id;
    assert!(matches!(
        store.append(&[event(&contested, 10)], None).await,
        Err(StoreError::Conflict)
    ));
    let after = store.load(&contested, 9).await.expect("load");
    assert_eq!(after[0].event_id, before);

    store
        .database()
        .drop()
        .await
        .unwrap_or_else(|e| panic!("drop {db}: {e}"));
}

#[tokio::test]
async fn group_commit_keeps_every_append_atomic_and_exclusive() {
    check(64).await;
}

#[tokio::test]
async fn single_inserts_keep_every_append_atomic_and_exclusive() {
    check(1).await;
}
