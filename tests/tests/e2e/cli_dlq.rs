//! Dead letters: an event that reaches the cart projector before its stream's first event is
//! dead-lettered and parks its stream; `commerce dlq list` shows it with its reason, `commerce
//! dlq parked` the stream with its held events, and once the cause is gone (the first event
//! arrived) `commerce dlq replay --stream` applies the held events and the read model catches
//! up, once. `dlq replay --record` still sends a dead letter back to its topic, once.

use crate::cli_common::*;
use crate::common::*;
use chrono::Utc;
use event_schemas::{cloudevents, topic_for, EventEnvelope};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
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
        correlation_id: "dlq-test".into(),
        causation_id: None,
        actor: "anonymous".into(),
        data,
        traceparent: None,
    }
}

async fn produce(producer: &FutureProducer, env: &EventEnvelope) {
    let payload = cloudevents::encode(env);
    producer
        .send(
            FutureRecord::to(&topic_for("cart"))
                .key(env.stream_id.as_str())
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_once() {
    let client = http();
    let cart = uuid::Uuid::now_v7().to_string();
    let product = new_id();
    let created = envelope(&cart, 1, "CartCreated", 1, json!({ "cart_id": cart }));
    let added = envelope(
        &cart,
        2,
        "CartItemAdded",
        3,
        json!({ "product_id": product, "quantity": 3 }),
    );
    // The store holds the stream (already published), so it stays the source of truth.
    let docs: Vec<_> = [&created, &added]
        .iter()
        .map(|e| {
            let mut d = event_store::event_store::to_document(e).unwrap();
            d.insert("published", true);
            d
        })
        .collect();
    mongo_events().await.insert_many(docs).await.unwrap();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .create()
        .unwrap();
    // Version 2 first: the projector has no cart to move to it.
    produce(&producer, &added).await;
    let letter = poll("the dead letter", Duration::from_secs(60), || async {
        let list = commerce_json(&["dlq", "list", "--topic", "commerce.cart.events"]).await;
        list.as_array()?
            .iter()
            .find(|d| d["key"] == cart.as_str())
            .cloned()
    })
    .await;
    assert!(
        letter["reason"].as_str().unwrap().contains("never created"),
        "{letter}"
    );
    assert_eq!(letter["event_type"], "CartItemAdded v3");
    assert_eq!(letter["projection"], "cart");
    assert_eq!(letter["source_topic"], "commerce.cart.events");
    assert_eq!(letter["replayed"], false);
    let table = commerce(&["dlq", "list"]).await;
    assert!(table.stdout.contains(&cart), "{}", table.stdout);

    // The cause goes away: the first event arrives.
    produce(&producer, &created).await;
    cart_at_version(&client, &cart, 1).await;

    // The stream is parked in the cart model from version 2 on, with that event held.
    let parked = commerce_json(&["dlq", "parked", "--projection", "cart", "--stream", &cart]).await;
    let p = &parked["projections"][0];
    assert_eq!(p["first_version"], 2, "{parked}");
    assert_eq!(p["held_events"], 1, "{parked}");
    assert_eq!(p["held"][0]["event_type"], "CartItemAdded", "{parked}");

    let replayed =
        commerce_json(&["dlq", "replay", "--stream", &cart, "--projection", "cart"]).await;
    assert_eq!(replayed[0]["outcome"], "replayed", "{replayed}");
    let seen = cart_at_version(&client, &cart, 2).await;
    assert_eq!(seen["lines"][0]["productId"], product.as_str());
    assert_eq!(seen["lines"][0]["quantity"], 3);
    let parked = commerce_json(&["dlq", "parked", "--projection", "cart", "--stream", &cart]).await;
    assert_eq!(parked["projections"], json!([]), "{parked}");

    // The dead letter itself can still be sent back to its topic (a redelivery: nothing
    // changes), once.
    let record = format!("{}:{}", letter["partition"], letter["offset"]);
    let replayed = commerce_json(&[
        "dlq",
        "replay",
        "--topic",
        "commerce.cart.events",
        "--record",
        &record,
    ])
    .await;
    assert_eq!(replayed.as_array().unwrap().len(), 1, "{replayed}");

    // Recorded: listed as replayed, and not sent again without --force.
    let list = commerce_json(&["dlq", "list", "--topic", "commerce.cart.events"]).await;
    let again = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == cart.as_str())
        .unwrap();
    assert_eq!(again["replayed"], true);
    let none = commerce_json(&[
        "dlq",
        "replay",
        "--topic",
        "commerce.cart.events",
        "--record",
        &record,
    ])
    .await;
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");
}
