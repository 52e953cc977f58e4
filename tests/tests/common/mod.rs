//! Shared helpers of the end-to-end tests: endpoints from the environment `make test` sets,
//! a plain-HTTP GraphQL client, polling with a deadline, the stack launcher, and readers of
//! the Kafka topic and the MongoDB event store.
#![allow(dead_code)]

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn graphql_url() -> String {
    env("GRAPHQL_URL", "http://127.0.0.1:18080/graphql")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts a GraphQL request through Envoy; returns the HTTP status and the JSON body.
pub async fn gql_raw(client: &reqwest::Client, query: &str, variables: Value) -> (u16, Value) {
    let resp = client
        .post(graphql_url())
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("GraphQL endpoint reachable");
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Posts a GraphQL request and insists on HTTP 200.
pub async fn gql(client: &reqwest::Client, query: &str, variables: Value) -> Value {
    let (status, body) = gql_raw(client, query, variables).await;
    assert_eq!(status, 200, "HTTP status of {query}: {body}");
    body
}

/// The `extensions.code` of the first error of a response.
pub fn error_code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

pub async fn create_cart(client: &reqwest::Client) -> String {
    let body = gql(
        client,
        "mutation { createCart { cartId version } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["createCart"]["version"], 1, "{body}");
    body["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub const ADD_ITEM: &str = "mutation($c: ID!, $p: ID!, $q: Int!) {
    addItemToCart(cartId: $c, productId: $p, quantity: $q) { cartId version } }";
pub const CHANGE_QTY: &str = "mutation($c: ID!, $p: ID!, $q: Int!) {
    changeCartItemQuantity(cartId: $c, productId: $p, quantity: $q) { cartId version } }";
pub const REMOVE_ITEM: &str = "mutation($c: ID!, $p: ID!) {
    removeItemFromCart(cartId: $c, productId: $p) { cartId version } }";
pub const CART: &str = "query($id: ID!) {
    cart(id: $id) { id status version itemCount lines { productId quantity version } } }";

/// Polls `f` until it returns `Some`, failing after `timeout`. Never a blind sleep: the
/// wait between tries is short and the deadline is the only bound.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the read model through GraphQL until the cart reaches `version`.
pub async fn cart_at_version(client: &reqwest::Client, cart_id: &str, version: u64) -> Value {
    poll(
        &format!("cart {cart_id} at version {version}"),
        Duration::from_secs(60),
        || async {
            let body = gql(client, CART, json!({ "id": cart_id })).await;
            let cart = body["data"]["cart"].clone();
            (cart["version"].as_u64() >= Some(version)).then_some(cart)
        },
    )
    .await
}

/// Runs `scripts/stack.sh <args>` with the test stack's environment.
pub fn stack(args: &[&str]) {
    let status = std::process::Command::new(repo_root().join("scripts/stack.sh"))
        .args(args)
        // The launcher's own defaults (from the exported ports) name the local components;
        // these would mark them as external.
        .env_remove("KAFKA_BROKERS")
        .env_remove("MONGODB_URI")
        .env_remove("DATABASE_URL")
        .status()
        .expect("run scripts/stack.sh");
    assert!(status.success(), "scripts/stack.sh {args:?} failed");
}

pub async fn mongo_events() -> mongodb::Collection<Document> {
    let uri = env(
        "MONGODB_URI",
        "mongodb://127.0.0.1:37017/?directConnection=true",
    );
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    client
        .database(&env("MONGODB_DB", "commerce"))
        .collection("events")
}

/// A stream's event documents in the store, by version.
pub async fn stored_events(stream_id: &str) -> Vec<Document> {
    mongo_events()
        .await
        .find(doc! { "stream_id": stream_id })
        .sort(doc! { "version": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// One record of an event topic, decoded as JSON.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Value,
}

/// Reads a topic from the earliest offset of every partition (no consumer group) until
/// `done` holds for the records seen so far, or the deadline passes.
pub fn read_topic_until(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .set("group.id", format!("e2e-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let partitions = {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        md.topics()[0].partitions().len() as i32
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    drop(tpl);
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while !done(&records) && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or(Value::Null),
            });
        }
    }
    records
}

/// The records of one stream, in the order the topic holds them.
pub fn stream_records(records: &[Record], stream_id: &str) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.key == stream_id)
        .cloned()
        .collect()
}

/// Checks that each Kafka record is the stored event document at the same position.
pub fn assert_records_match_store(records: &[Record], docs: &[Document]) {
    assert_eq!(
        records.len(),
        docs.len(),
        "records on Kafka vs events in the store"
    );
    for (r, d) in records.iter().zip(docs) {
        let v = &r.value;
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], d.get_str("_id").unwrap());
        assert_eq!(v["streamid"], d.get_str("stream_id").unwrap());
        assert_eq!(v["subject"], d.get_str("stream_id").unwrap());
        assert_eq!(v["streamversion"], d.get_i64("version").unwrap());
        assert_eq!(
            v["type"],
            format!("commerce.cart.{}", d.get_str("event_type").unwrap())
        );
        let millis = d.get_datetime("occurred_at").unwrap().timestamp_millis();
        let time = chrono_millis(v["time"].as_str().unwrap());
        assert_eq!(
            time, millis,
            "occurred_at of version {}",
            v["streamversion"]
        );
        let data = mongodb::bson::Bson::Document(d.get_document("data").unwrap().clone())
            .into_relaxed_extjson();
        assert_eq!(v["data"], data, "data of version {}", v["streamversion"]);
    }
}

fn chrono_millis(rfc3339: &str) -> i64 {
    mongodb::bson::DateTime::parse_rfc3339_str(rfc3339)
        .unwrap()
        .timestamp_millis()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
