//! Upcasting: a cart stream written with `CartItemAdded` v1 (`sku`, `qty`) and v2
//! (`product_id`, `qty`) is read through the upcasters everywhere: the relay publishes the
//! records as stored (v1 and v2 on Kafka), the cart projector applies them, `stream show`
//! folds them from the store, and `events export` gives the same v3 events from Kafka and
//! from the store.

use crate::cli_common::*;
use crate::common::*;
use chrono::Utc;
use event_schemas::EventEnvelope;
use serde_json::{json, Value};
use std::time::Duration;

fn envelope(cart: &str, version: u64, event_type: &str, schema: u32, data: Value) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream_type: "cart".into(),
        stream_id: cart.into(),
        version,
        event_type: event_type.into(),
        schema_version: schema,
        occurred_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .unwrap(),
        correlation_id: "upcast-test".into(),
        causation_id: None,
        actor: "anonymous".into(),
        data,
        traceparent: None,
    }
}

#[tokio::test]
async fn v1_and_v2_events_are_upcast_from_the_store_and_from_kafka() {
    let client = http();
    let cart = uuid::Uuid::now_v7().to_string();
    let (a, b) = (new_id(), new_id());
    let events = [
        envelope(&cart, 1, "CartCreated", 1, json!({ "cart_id": cart })),
        envelope(&cart, 2, "CartItemAdded", 1, json!({ "sku": a, "qty": 4 })),
        envelope(
            &cart,
            3,
            "CartItemAdded",
            2,
            json!({ "product_id": b, "qty": 7 }),
        ),
    ];
    // Written as an old release did; the relay publishes them as they are.
    let docs: Vec<_> = events
        .iter()
        .map(|e| event_store::event_store::to_document(e).unwrap())
        .collect();
    mongo_events().await.insert_many(docs).await.unwrap();

    // Kafka holds the old shapes.
    let records = read_topic_until("commerce.cart.events", Duration::from_secs(60), |r| {
        stream_records(r, &cart).len() >= 3
    });
    let mine = stream_records(&records, &cart);
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[1].value["schemaversion"], 1);
    assert_eq!(mine[1].value["data"]["sku"], a.as_str());
    assert_eq!(mine[2].value["schemaversion"], 2);

    // The projector read them through the upcasters.
    let seen = cart_at_version(&client, &cart, 3).await;
    let got = lines_of(&seen);
    assert_eq!(got.get(&a), Some(&4), "{seen}");
    assert_eq!(got.get(&b), Some(&7), "{seen}");

    // The CLI too, from both sources, with the same result.
    let export = |source: &'static str| {
        let cart = cart.clone();
        async move {
            let run = commerce(&["events", "export", "--stream", &cart, "--source", source]).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
            run.stdout
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let from_store = export("store").await;
    let from_kafka = export("kafka").await;
    assert_eq!(from_store, from_kafka);
    assert_eq!(from_store.len(), 3);
    for (e, (product, quantity)) in from_store[1..].iter().zip([(&a, 4), (&b, 7)]) {
        assert_eq!(e["schema_version"], 3);
        assert_eq!(
            e["data"],
            json!({ "product_id": product, "quantity": quantity })
        );
    }
    let shown = commerce_json(&["stream", "show", &cart]).await;
    let state = shown["state"].as_str().unwrap();
    assert!(state.contains(&a) && state.contains(&b), "{state}");
}
