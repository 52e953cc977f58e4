//! A poison event parks one stream, never a projection or the relay.
//!
//! - Projectors: a well-formed CloudEvent whose product name holds a NUL (PostgreSQL refuses
//!   it), events that arrive before their stream's first one (a gap), and garbage bytes keyed
//!   by a live cart each park their own stream, listed by `commerce dlq parked` with the
//!   events held behind them, while every other stream advances; `commerce dlq replay
//!   --stream` applies the held events once, in order, after the fix.
//! - Relay: a document in the store that does not decode, and an event larger than the
//!   broker accepts, park their streams; the relay goes on publishing every other stream, and
//!   once the document is fixed and the stream unparked, its events reach the topic in order.
//!
//! Poison goes straight onto the topic or into the store: the domain refuses such input.

use crate::cli_common::*;
use crate::common::*;
use chrono::Utc;
use event_schemas::{cloudevents, topic_for, EventEnvelope};
use mongodb::bson::{doc, Bson};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::time::Duration;

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .create()
        .unwrap()
}

fn envelope(
    stream_type: &str,
    stream: &str,
    version: u64,
    event_type: &str,
    schema: u32,
    data: Value,
) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream_type: stream_type.into(),
        stream_id: stream.into(),
        version,
        event_type: event_type.into(),
        schema_version: schema,
        occurred_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .unwrap(),
        correlation_id: "poison-test".into(),
        causation_id: None,
        actor: "anonymous".into(),
        data,
        traceparent: None,
    }
}

/// Stores the events (already published: the store stays the truth) and produces them onto
/// their topic, in the order given.
async fn inject(producer: &FutureProducer, envs: &[&EventEnvelope]) {
    let docs: Vec<_> = envs
        .iter()
        .map(|e| {
            let mut d = event_store::event_store::to_document(e).unwrap();
            d.insert("published", true);
            d
        })
        .collect();
    mongo_events().await.insert_many(docs).await.unwrap();
    for env in envs {
        produce(
            producer,
            &topic_for(&env.stream_type),
            &env.stream_id,
            &cloudevents::encode(env),
        )
        .await;
    }
}

async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// The parked entries for `stream` (projections, relay) once `done` holds for them.
async fn parked_until(stream: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll(what, Duration::from_secs(60), || async {
        let v = commerce_json(&["dlq", "parked", "--stream", stream]).await;
        done(&v).then_some(v)
    })
    .await
}

fn projection<'a>(parked: &'a Value, name: &str) -> Option<&'a Value> {
    parked["projections"]
        .as_array()?
        .iter()
        .find(|p| p["projection"] == name)
}

async fn product(client: &reqwest::Client, id: &str) -> Value {
    gql(
        client,
        "query($id: ID!) { product(id: $id) { name version stock { onHand reserved } } }",
        json!({ "id": id }),
    )
    .await
}

/// A `ProductCreated` for `id` shaped exactly like the one the domain stores for `model`.
async fn product_created(model: &str, id: &str, name: &str) -> EventEnvelope {
    let stored = stored_events(model).await;
    let mut env = event_store::event_store::from_document(stored[0].clone()).unwrap();
    assert_eq!(env.event_type, "ProductCreated");
    env.event_id = uuid::Uuid::now_v7();
    env.stream_id = id.to_owned();
    env.correlation_id = "poison-test".into();
    env.data["product_id"] = json!(id);
    env.data["details"]["name"] = json!(name);
    env
}

fn reserved(product: &str, version: u64, quantity: u32) -> EventEnvelope {
    envelope(
        "product",
        product,
        version,
        "StockReserved",
        1,
        json!({ "order_id": uuid::Uuid::now_v7().to_string(), "quantity": quantity }),
    )
}

#[tokio::test]
async fn poison_on_a_topic_parks_its_stream_and_a_replay_applies_it_once() {
    let client = http();
    let admin = admin_token(&client).await;
    let producer = producer();
    let model = new_product(&client, &admin, 500, 10).await;

    // 1. A NUL in a product's name: PostgreSQL refuses it (or the domain's decoder does).
    let nul = uuid::Uuid::now_v7().to_string();
    let created = product_created(&model, &nul, "Mug\u{0}with a NUL").await;
    let later = reserved(&nul, 2, 1);
    inject(&producer, &[&created, &later]).await;

    // 2. A gap: versions 2 and 3 of a product arrive before its version 1.
    let gap = uuid::Uuid::now_v7().to_string();
    let first = product_created(&model, &gap, "Gap mug").await;
    let (second, third) = (reserved(&gap, 2, 3), reserved(&gap, 3, 2));
    inject(&producer, &[&second, &third]).await;

    // Every other stream goes on: a product created afterwards is in the catalogue.
    let other = new_product(&client, &admin, 700, 4).await;
    assert_eq!(product_stock(&client, &other).await, (4, 0, 4));

    // Each poisoned stream is parked with its later event held behind it.
    let parked = parked_until(&nul, "the NUL product parked", |v| {
        projection(v, "product").is_some_and(|p| p["held_events"] == 2)
    })
    .await;
    let p = projection(&parked, "product").unwrap();
    assert_eq!(p["first_version"], 1, "{p}");
    assert!(!p["reason"].as_str().unwrap_or_default().is_empty(), "{p}");
    let held: Vec<(Value, Value)> = p["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["version"].clone(), h["poison"].clone()))
        .collect();
    assert_eq!(
        held,
        vec![(json!(1), json!(true)), (json!(2), json!(false))],
        "{p}"
    );
    let body = product(&client, &nul).await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    let table = commerce(&["dlq", "parked"]).await;
    assert!(table.stdout.contains(&nul), "{}", table.stdout);

    let parked = parked_until(&gap, "the gap product parked", |v| {
        projection(v, "product").is_some_and(|p| p["held_events"] == 2)
    })
    .await;
    let p = projection(&parked, "product").unwrap();
    assert_eq!(p["first_version"], 2, "{p}");
    assert!(
        p["reason"].as_str().unwrap().contains("never created"),
        "{p}"
    );

    // Replaying the NUL stream changes nothing: it fails again and parks again, whole.
    let again = commerce(&[
        "-o",
        "json",
        "dlq",
        "replay",
        "--stream",
        &nul,
        "--projection",
        "product",
    ])
    .await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(
        again.json()[0]["outcome"],
        "parked again",
        "{}",
        again.stdout
    );
    let parked = commerce_json(&["dlq", "parked", "--stream", &nul]).await;
    assert_eq!(projection(&parked, "product").unwrap()["held_events"], 2);

    // The gap's cause goes away (version 1 arrives, and applies: it precedes the parked
    // version); the replay then applies versions 2 and 3 once, in order.
    inject(&producer, &[&first]).await;
    assert_eq!(product_stock(&client, &gap).await, (10, 0, 10));
    let replayed =
        commerce_json(&["dlq", "replay", "--stream", &gap, "--projection", "product"]).await;
    assert_eq!(replayed[0]["outcome"], "replayed", "{replayed}");
    let body = product(&client, &gap).await;
    assert_eq!(body["data"]["product"]["version"], 3, "{body}");
    assert_eq!(body["data"]["product"]["stock"]["reserved"], 5, "{body}");
    // Once: nothing is parked any more, a second replay finds nothing, and a redelivery
    // of versions 2 and 3 changes nothing. (It also leaves the topic in stream order after
    // version 1, as a republish from the store would, so a rebuild from the topic agrees.)
    let none = commerce_json(&["dlq", "replay", "--stream", &gap, "--projection", "product"]).await;
    assert_eq!(none.as_array().unwrap().len(), 0, "{none}");
    for env in [&second, &third] {
        produce(
            &producer,
            &topic_for("product"),
            &gap,
            &cloudevents::encode(env),
        )
        .await;
    }
    let marker = new_product(&client, &admin, 100, 1).await;
    assert_eq!(product_stock(&client, &marker).await, (1, 0, 1));
    let body = product(&client, &gap).await;
    assert_eq!(body["data"]["product"]["stock"]["reserved"], 5, "{body}");
    let parked = commerce_json(&["dlq", "parked", "--stream", &gap]).await;
    assert_eq!(parked["projections"], json!([]), "{parked}");

    // The NUL product cannot be fixed in place: the operator gives it up.
    let gone = commerce_json(&["dlq", "discard", "--stream", &nul]).await;
    assert_eq!(gone, json!(["product"]));
}

#[tokio::test]
async fn garbage_keyed_by_a_cart_parks_that_cart_until_the_operator_drops_it() {
    let client = http();
    let producer = producer();
    let cart = create_cart(&client).await;
    cart_at_version(&client, &cart, 1).await;
    produce(
        &producer,
        &topic_for("cart"),
        &cart,
        b"\x00\xffnot a CloudEvent",
    )
    .await;
    let product = new_id();
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": product, "q": 2 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");

    // Another cart advances meanwhile.
    let other = create_cart(&client).await;
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": other, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    cart_at_version(&client, &other, 2).await;

    // The cart read model holds the cart behind the garbage (version unknown: all of it).
    let parked = parked_until(&cart, "the cart parked", |v| {
        projection(v, "cart").is_some_and(|p| p["held_events"] == 2)
    })
    .await;
    let p = projection(&parked, "cart").unwrap();
    assert_eq!(p["first_version"], Value::Null, "{p}");
    assert!(p["reason"].as_str().unwrap().contains("CloudEvent"), "{p}");
    assert_eq!(p["held"][1]["version"], 2, "{p}");
    assert_eq!(p["held"][1]["event_type"], "CartItemAdded", "{p}");
    let body = gql(&client, CART, json!({ "id": cart })).await;
    assert_eq!(body["data"]["cart"]["version"], 1, "{body}");

    // The operator decides the garbage is no event: drop it, apply the rest, once. Every
    // projection that parked the cart (the cart model, the checkout saga) replays it.
    let replayed = commerce_json(&["dlq", "replay", "--stream", &cart, "--drop-first"]).await;
    let outcomes: Vec<&Value> = replayed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["outcome"])
        .collect();
    assert!(
        !outcomes.is_empty() && outcomes.iter().all(|o| *o == "replayed"),
        "{replayed}"
    );
    let seen = cart_at_version(&client, &cart, 2).await;
    assert_eq!(seen["version"], 2, "{seen}");
    assert_eq!(seen["lines"][0]["productId"], product.as_str());
    assert_eq!(seen["lines"][0]["quantity"], 2);
    let parked = commerce_json(&["dlq", "parked", "--stream", &cart]).await;
    assert_eq!(parked["projections"], json!([]), "{parked}");
    // The cart goes on as any other.
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 3, "{body}");
    cart_at_version(&client, &cart, 3).await;
}

#[tokio::test]
async fn the_relay_parks_a_poison_document_and_goes_on() {
    let client = http();
    let events = mongo_events().await;
    // A cart stream whose first document does not decode (its version is text), and its
    // second event, both unpublished: the relay must park the stream, not stall.
    let bad = uuid::Uuid::now_v7().to_string();
    let v1 = envelope("cart", &bad, 1, "CartCreated", 1, json!({ "cart_id": bad }));
    let product = new_id();
    let v2 = envelope(
        "cart",
        &bad,
        2,
        "CartItemAdded",
        3,
        json!({ "product_id": product, "quantity": 4 }),
    );
    let mut d1 = event_store::event_store::to_document(&v1).unwrap();
    d1.insert("version", "one");
    // A second stream whose event is larger than the broker takes (1.2 MB).
    let big = uuid::Uuid::now_v7().to_string();
    let huge = envelope(
        "cart",
        &big,
        1,
        "CartCreated",
        1,
        json!({ "cart_id": big, "padding": "x".repeat(1_200_000) }),
    );
    events
        .insert_many([
            d1,
            event_store::event_store::to_document(&v2).unwrap(),
            event_store::event_store::to_document(&huge).unwrap(),
        ])
        .await
        .unwrap();

    // The relay goes on: a cart created afterwards reaches the topic and the read model.
    let cart = create_cart(&client).await;
    let (cart2, bad2) = (cart.clone(), bad.clone());
    let records = tokio::task::spawn_blocking(move || {
        read_topic_until(&topic_for("cart"), Duration::from_secs(60), |rs| {
            rs.iter().any(|r| r.key == cart2)
        })
    })
    .await
    .unwrap();
    assert!(records.iter().any(|r| r.key == cart), "the relay stalled");
    assert!(
        !records.iter().any(|r| r.key == bad2 || r.key == big),
        "a parked stream's event was published"
    );
    cart_at_version(&client, &cart, 1).await;

    // Both streams are parked in the relay, listed with a reason and what waits.
    let parked = parked_until(&bad, "the poison document parked", |v| {
        v["relay"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let r = &parked["relay"][0];
    assert!(r["reason"].as_str().unwrap().contains("version"), "{r}");
    assert_eq!(r["held_events"], 2, "{r}");
    let parked = parked_until(&big, "the oversized event parked", |v| {
        v["relay"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let reason = parked["relay"][0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("large"), "{reason}");

    // The document is fixed and the stream unparked: both events reach the topic in order,
    // and the read model.
    events
        .update_one(
            doc! { "_id": v1.event_id.to_string() },
            doc! { "$set": { "version": Bson::Int64(1) } },
        )
        .await
        .unwrap();
    let unparked = commerce_json(&["dlq", "replay", "--relay", "--stream", &bad]).await;
    assert_eq!(unparked[0]["outcome"], "unparked", "{unparked}");
    let bad3 = bad.clone();
    let records = tokio::task::spawn_blocking(move || {
        read_topic_until(&topic_for("cart"), Duration::from_secs(60), |rs| {
            stream_records(rs, &bad3).len() >= 2
        })
    })
    .await
    .unwrap();
    let versions: Vec<Value> = stream_records(&records, &bad)
        .iter()
        .map(|r| r.value["streamversion"].clone())
        .collect();
    assert_eq!(versions, vec![json!(1), json!(2)]);
    let seen = cart_at_version(&client, &bad, 2).await;
    assert_eq!(seen["lines"][0]["quantity"], 4, "{seen}");

    // The oversized event cannot be published as it is: the operator removes it (test
    // cleanup), then unparks the stream.
    events
        .delete_one(doc! { "_id": huge.event_id.to_string() })
        .await
        .unwrap();
    let unparked = commerce_json(&["dlq", "replay", "--relay", "--stream", &big]).await;
    assert_eq!(unparked[0]["outcome"], "unparked", "{unparked}");
}
