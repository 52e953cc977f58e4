//! A record the cart projector cannot decode goes to `commerce.cart.events.dlq` with the
//! reason, and the projector goes on with the next records. The record's key names a stream,
//! which is parked (and then given up with `commerce dlq discard`).

use crate::cli_common::*;
use crate::common::*;
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn an_undecodable_record_is_dead_lettered_and_the_projector_goes_on() {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .create()
        .unwrap();
    let key = format!("poison-{}", new_id());
    producer
        .send(
            FutureRecord::to("commerce.cart.events")
                .key(&key)
                .payload("this is not a CloudEvent"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    // The projector goes on: a cart written after the poison record reaches the read model.
    let client = http();
    let cart = create_cart(&client).await;
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    cart_at_version(&client, &cart, 2).await;

    // The poison record is on the dead-letter topic with its reason and origin.
    let key2 = key.clone();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic_until("commerce.cart.events.dlq", Duration::from_secs(30), |rs| {
            rs.iter().any(|r| r.key == key2)
        })
    })
    .await
    .unwrap();
    assert!(
        dead.iter().any(|r| r.key == key),
        "poison record not dead-lettered"
    );

    // Both consumers of the cart topic (the cart projection and the checkout saga) dead-letter
    // it on their own, each saying why and where it came from.
    let key3 = key.clone();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic_until("commerce.cart.events.dlq", Duration::from_secs(30), |rs| {
            rs.iter().filter(|r| r.key == key3).count() >= 2
        })
    })
    .await
    .unwrap();
    let mut projections = Vec::new();
    for record in dead.iter().filter(|r| r.key == key) {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
            .set("group.id", format!("e2e-dlq-{}", new_id()))
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(
            "commerce.cart.events.dlq",
            record.partition,
            rdkafka::Offset::Offset(record.offset),
        )
        .unwrap();
        rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
        drop(tpl);
        let message = poll("the dead letter", Duration::from_secs(30), || {
            let m = consumer
                .poll(Duration::from_millis(200))
                .and_then(Result::ok)
                .map(|m| m.detach());
            async move { m }
        })
        .await;
        let headers = message.headers().unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let reason = header("dlq-reason").unwrap_or_default();
        assert!(reason.contains("CloudEvents"), "reason: {reason}");
        assert_eq!(
            header("dlq-source-topic").as_deref(),
            Some("commerce.cart.events")
        );
        assert_eq!(
            message.payload(),
            Some("this is not a CloudEvent".as_bytes())
        );
        projections.push(header("dlq-projection").unwrap_or_default());
    }
    projections.sort();
    assert_eq!(projections, vec!["cart", "checkout-saga"]);

    // Its key's stream is parked in both (committed with their checkpoints, just after the
    // dead letters were sent), and the operator gives it up.
    poll(
        "the stream parked in both",
        Duration::from_secs(30),
        || async {
            let parked = commerce_json(&["dlq", "parked", "--stream", &key]).await;
            let mut names: Vec<String> = parked["projections"]
                .as_array()?
                .iter()
                .filter_map(|p| p["projection"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            (names == ["cart", "checkout-saga"]).then_some(())
        },
    )
    .await;
    let mut gone = commerce_json(&["dlq", "discard", "--stream", &key]).await;
    gone.as_array_mut().unwrap().sort_by_key(|v| v.to_string());
    assert_eq!(gone, json!(["cart", "checkout-saga"]));
    let parked = commerce_json(&["dlq", "parked", "--stream", &key]).await;
    assert_eq!(parked["projections"], json!([]), "{parked}");
}
