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

/// The payment gateway's tokenization endpoint, behind Envoy beside the GraphQL API.
pub fn tokens_url() -> String {
    graphql_url().replace("/graphql", "/pay/v1/tokens")
}

/// Tokenizes a card at the payment gateway's endpoint (never through GraphQL); returns the
/// payment token (`pm_...`) checkout takes.
pub async fn card_token(client: &reqwest::Client, number: &str) -> String {
    match tokenize(client, number).await {
        Ok(token) => token,
        Err(e) => panic!("tokenizing: {e}"),
    }
}

/// [`card_token`], or `None` when the endpoint does not answer 201 (for fault tests).
pub async fn try_card_token(client: &reqwest::Client, number: &str) -> Option<String> {
    tokenize(client, number).await.ok()
}

async fn tokenize(client: &reqwest::Client, number: &str) -> Result<String, String> {
    let resp = client
        .post(tokens_url())
        .json(&json!({ "number": number, "exp_month": 12, "exp_year": 2099, "cvc": "123" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body["token"].as_str() {
        Some(token) if status == 201 => Ok(token.to_owned()),
        _ => Err(format!("{status} {body}")),
    }
}

/// `checkout` with a payment token (`$c`: cart, `$t`: token).
pub const CHECKOUT: &str =
    "mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId } }";

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

/// Posts a GraphQL request through Envoy, with a bearer token if given; returns the HTTP
/// status and the JSON body. A 429 of Envoy's rate limits (shared, per client, per token) is
/// retried until a deadline, as a well-behaved client would: the suite sends thousands of
/// requests from one address. The tests of the limits themselves send their own requests.
pub async fn post_graphql(
    client: &reqwest::Client,
    token: Option<&str>,
    query: &str,
    variables: &Value,
) -> (u16, Value) {
    let body = json!({ "query": query, "variables": variables });
    poll(
        "an answer that is not 429",
        Duration::from_secs(30),
        || async {
            let mut req = client.post(graphql_url()).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.expect("GraphQL endpoint reachable");
            let status = resp.status().as_u16();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            (status != 429).then_some((status, body))
        },
    )
    .await
}

/// Posts a GraphQL request through Envoy; returns the HTTP status and the JSON body.
pub async fn gql_raw(client: &reqwest::Client, query: &str, variables: Value) -> (u16, Value) {
    post_graphql(client, None, query, &variables).await
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

/// The test stack's event store.
pub fn mongodb_uri() -> String {
    env(
        "MONGODB_URI",
        "mongodb://127.0.0.1:17017/?directConnection=true",
    )
}

pub async fn mongo_events() -> mongodb::Collection<Document> {
    let client = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
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
    /// The topic's epoch the relay stamped on it (`relay-epoch`).
    pub epoch: Option<i64>,
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
                epoch: platform::kafka::record_origin(&m).1,
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

/// Posts a GraphQL request with a bearer token; returns the JSON body (HTTP 200 required).
pub async fn gql_as(client: &reqwest::Client, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = post_graphql(client, Some(token), query, &variables).await;
    assert_eq!(status, 200, "HTTP status of {query}: {body}");
    body
}

/// The stack's access-token secret: `JWT_SECRET`, else the file `JWT_SECRET_FILE` names
/// (stack.env has it), else the test stack's file.
pub fn jwt_secret() -> String {
    if let Ok(s) = std::env::var("JWT_SECRET") {
        return s.trim().to_owned();
    }
    let file = std::env::var("JWT_SECRET_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".stack-test/jwt_secret"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The same claims as `token` with `change` applied, signed with the stack's secret.
pub fn resign_token(token: &str, change: impl FnOnce(&mut Value)) -> String {
    use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let secret = jwt_secret();
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.validate_aud = false;
    let mut claims = decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .expect("the test knows the stack's secret")
        .claims;
    change(&mut claims);
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The BFF's own port (not through Envoy).
pub fn bff_url() -> String {
    env("BFF_URL", "http://127.0.0.1:18000/graphql")
}

/// Logs in; returns the access token.
pub async fn login(client: &reqwest::Client, email: &str, password: &str) -> String {
    let body = gql(
        client,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
        json!({ "e": email, "p": password }),
    )
    .await;
    body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

pub async fn admin_token(client: &reqwest::Client) -> String {
    login(
        client,
        &env("ADMIN_EMAIL", "admin@example.com"),
        &env("ADMIN_PASSWORD", ""),
    )
    .await
}

/// Registers a fresh customer and logs in: (user id, email, token).
pub async fn new_customer(client: &reqwest::Client) -> (String, String, String) {
    let email = format!("c-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = gql(
        client,
        "mutation($e: String!) { register(email: $e, password: \"s3cret-pass\", name: \"Test Customer\") { id } }",
        json!({ "e": email }),
    )
    .await;
    let id = body["data"]["register"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("register failed: {body}"))
        .to_owned();
    let token = login(client, &email, "s3cret-pass").await;
    (id, email, token)
}

/// Creates a product (as admin) and waits until the catalogue shows it.
pub async fn new_product(
    client: &reqwest::Client,
    admin: &str,
    price_minor: i64,
    stock: i64,
) -> String {
    let body = gql_as(
        client,
        admin,
        "mutation($p: Int!, $s: Int!) { createProduct(input: { name: \"Mug\", priceMinor: $p, currency: \"EUR\", initialStock: $s }) { id } }",
        json!({ "p": price_minor, "s": stock }),
    )
    .await;
    let id = body["data"]["createProduct"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createProduct failed: {body}"))
        .to_owned();
    product_stock(client, &id).await;
    id
}

/// The product's stock as the catalogue shows it: (on hand, reserved, available).
pub async fn product_stock(client: &reqwest::Client, id: &str) -> (i64, i64, i64) {
    poll(
        "the product in the catalogue",
        Duration::from_secs(30),
        || async {
            let body = gql(
                client,
                "query($id: ID!) { product(id: $id) { stock { onHand reserved available } } }",
                json!({ "id": id }),
            )
            .await;
            let s = &body["data"]["product"]["stock"];
            Some((
                s["onHand"].as_i64()?,
                s["reserved"].as_i64()?,
                s["available"].as_i64()?,
            ))
        },
    )
    .await
}

pub const ORDER: &str =
    "query($id: ID!) { order(id: $id) { id status cancelReason total { amountMinor currency }
    lines { productId quantity } payment { status captures refundedMinor cardLast4 cardBrand } } }";

/// Polls an order until its status is one of `statuses` (and its payment, if `payment`
/// is given, has that status).
pub async fn order_in(
    client: &reqwest::Client,
    token: &str,
    order_id: &str,
    statuses: &[&str],
    payment: Option<&str>,
) -> Value {
    poll(
        &format!("order {order_id} in {statuses:?}"),
        Duration::from_secs(60),
        || async {
            let body = gql_as(client, token, ORDER, json!({ "id": order_id })).await;
            let o = body["data"]["order"].clone();
            let status_ok = o["status"].as_str().is_some_and(|s| statuses.contains(&s));
            let payment_ok = match payment {
                None => true,
                Some(p) => o["payment"]["status"].as_str() == Some(p),
            };
            (status_ok && payment_ok).then_some(o)
        },
    )
    .await
}

/// The lines of a cart (as GraphQL returns it), by product id.
pub fn lines_of(cart: &Value) -> std::collections::BTreeMap<String, i64> {
    cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["productId"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// A new cart of the signed-in customer's holding `quantity` of `product`. Returns its id.
pub async fn customer_cart(
    client: &reqwest::Client,
    token: &str,
    product: &str,
    quantity: i64,
) -> String {
    let body = gql_as(
        client,
        token,
        "mutation { createCart { cartId } }",
        json!({}),
    )
    .await;
    let cart = body["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql_as(
        client,
        token,
        ADD_ITEM,
        json!({ "c": cart, "p": product, "q": quantity }),
    )
    .await;
    assert!(body["data"]["addItemToCart"]["version"].is_u64(), "{body}");
    cart
}

/// A cart of the customer's with `quantity` of `product`, checked out with `card` (tokenized
/// at the payment gateway's endpoint first).
/// Returns the order id.
pub async fn buy(
    client: &reqwest::Client,
    token: &str,
    product: &str,
    quantity: i64,
    card: &str,
) -> String {
    let cart = customer_cart(client, token, product, quantity).await;
    let payment = card_token(client, card).await;
    let body = gql_as(client, token, CHECKOUT, json!({ "c": cart, "t": payment })).await;
    body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("checkout failed: {body}"))
        .to_owned()
}

pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";
pub const NO_FUNDS_CARD: &str = "4000000000009995";

/// `query_sql_statements_total` of the shop query service: what queries cost in SQL.
pub async fn shop_sql_statements(client: &reqwest::Client) -> f64 {
    let url = format!(
        "{}/metrics",
        env("SHOP_QUERY_ADMIN_URL", "http://127.0.0.1:19210")
    );
    let text = client.get(&url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("query_sql_statements_total{service=\"shop\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
