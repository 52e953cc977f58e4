//! One checkout is one trace: the test places a real checkout through Envoy and GraphQL with
//! a W3C `traceparent` of its own, then reads what the stack's OpenTelemetry collector
//! (Rotel, started by `TRACING=1 scripts/stack.sh up`, which writes every span it receives to
//! the Kafka topic `OTEL_TRACES_TOPIC` as OTLP JSON) exported, until that one trace id holds
//! spans of the BFF, the cart command service it called, the relay, the checkout saga, the
//! order command service the saga called, and the order projector; and the cart command stored
//! the trace context with the event it appended.

use crate::common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The services one checkout passes through (`OTEL_SERVICE_NAME`, as stack.sh sets it).
const EXPECTED: &[&str] = &[
    "commerce-bff",
    "commerce-cart-command",
    "commerce-relay",
    "commerce-checkout-saga",
    "commerce-order-command",
    "commerce-order-projector",
];

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The service name of one OTLP JSON `ResourceSpans`.
fn service_of(resource_spans: &Value) -> Option<&str> {
    resource_spans["resource"]["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == "service.name")?["value"]["stringValue"]
        .as_str()
}

/// Every (service, span name) of `trace_id` in one exported record: an array of
/// `ResourceSpans`, or an `ExportTraceServiceRequest` holding them.
fn spans_of(record: &Value, trace_id: &str) -> Vec<(String, String)> {
    let list = match record {
        Value::Array(a) => a.as_slice(),
        v => v["resourceSpans"].as_array().map_or(&[][..], Vec::as_slice),
    };
    let mut out = Vec::new();
    for rs in list {
        let service = service_of(rs).unwrap_or("?").to_owned();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                if span["traceId"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == Some(trace_id)
                {
                    let name = span["name"].as_str().unwrap_or("?").to_owned();
                    out.push((service.clone(), name));
                }
            }
        }
    }
    out
}

/// Reads the collector's topic from its beginning until `trace_id` has spans of every
/// expected service, or the deadline passes; returns the span names per service found.
fn spans_by_service(
    topic: &str,
    trace_id: &str,
    timeout: Duration,
) -> BTreeMap<String, BTreeSet<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .set("group.id", format!("e2e-traces-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let deadline = Instant::now() + timeout;
    // The collector's first export creates the topic.
    let partitions = loop {
        let n = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|md| {
                md.topics()
                    .first()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.partitions().len() as i32)
            })
            .unwrap_or(0);
        if n > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} never appeared: is the collector running (TRACING=1)?"
        );
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&tpl).expect("assignment");
    drop(tpl);
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while Instant::now() < deadline && !EXPECTED.iter().all(|s| found.contains_key(*s)) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let Ok(record) = serde_json::from_slice::<Value>(m.payload().unwrap_or_default())
            else {
                continue;
            };
            for (service, name) in spans_of(&record, trace_id) {
                found.entry(service).or_default().insert(name);
            }
        }
    }
    found
}

#[tokio::test]
async fn one_checkout_is_one_trace_through_every_service() {
    let topic = std::env::var("OTEL_TRACES_TOPIC")
        .expect("OTEL_TRACES_TOPIC: start the stack with TRACING=1 (make test does)");
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 450, 5).await;
    let (_, _, token) = new_customer(&client).await;
    let cart = customer_cart(&client, &token, &product, 1).await;
    let payment = card_token(&client, GOOD_CARD).await;

    // The test is the trace's root: the BFF's span is a child of this traceparent.
    let trace_id = random_hex(16);
    let traceparent = format!("00-{trace_id}-{}-01", random_hex(8));
    let body = json!({ "query": CHECKOUT, "variables": { "c": cart, "t": payment } });
    let reply: Value = poll(
        "a checkout answer that is not 429",
        Duration::from_secs(30),
        || async {
            let resp = client
                .post(graphql_url())
                .bearer_auth(&token)
                .header("traceparent", &traceparent)
                .json(&body)
                .send()
                .await
                .expect("GraphQL endpoint reachable");
            let status = resp.status().as_u16();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            (status != 429).then_some(body)
        },
    )
    .await;
    let order = reply["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("checkout failed: {reply}"))
        .to_owned();
    // The saga ran to the end and the order projector saw it.
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;

    // The cart command stored the trace context with the event it appended.
    let docs = stored_events(&cart).await;
    assert!(
        docs.iter().any(|d| d
            .get_str("traceparent")
            .is_ok_and(|t| t.contains(&trace_id))),
        "no event of cart {cart} carries trace {trace_id}: {docs:?}"
    );

    let found = tokio::task::spawn_blocking(move || {
        spans_by_service(&topic, &trace_id, Duration::from_secs(90))
    })
    .await
    .expect("the reader");
    eprintln!("spans of trace {traceparent}: {found:#?}");
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|s| !found.contains_key(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "the checkout's trace lacks spans of {missing:?}; it has: {found:#?}"
    );
    // The saga's own commands are in it too: their server spans, under the saga's.
    assert!(
        found["commerce-order-command"]
            .iter()
            .any(|n| n.starts_with("commerce.commands.v1.Commands/")),
        "{found:#?}"
    );
}
