//! Subscriptions through Envoy with a real external client (Python `gql` over
//! graphql-transport-ws): an order's owner sees its statuses through checkout, shipment and
//! delivery in order; nobody else sees anything of it; a client that reconnects is up to date
//! again; the back office sees orders placed; a replayed (stale) record is never sent; and a
//! cart subscribed to before it is projected is waited for, not refused.

use crate::common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// One websocket connection of the Python client.
struct WsClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Messages read while waiting for another subscription's.
    pending: Vec<Value>,
}

fn ws_url() -> String {
    graphql_url().replacen("http://", "ws://", 1) + "/ws"
}

impl WsClient {
    async fn connect(token: &str) -> Self {
        let tools = std::env::var("TOOLS_DIR")
            .unwrap_or_else(|_| format!("{}/.cache/commerce-tools", env("HOME", "/root")));
        let script = repo_root().join("tests/clients/subscribe.py");
        let mut child = tokio::process::Command::new(format!("{tools}/bin/gql-python"))
            .arg(script)
            .arg(ws_url())
            .arg(token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Python gql client (scripts/install-tools.sh installs it)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut c = Self {
            child,
            stdin,
            lines,
            pending: Vec::new(),
        };
        let ready = c.next_line(Duration::from_secs(30)).await;
        assert_eq!(ready, json!({ "ready": true }));
        c
    }

    async fn next_line(&mut self, timeout: Duration) -> Value {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .expect("a message from the subscription client in time")
            .unwrap()
            .expect("the subscription client is running");
        serde_json::from_str(&line).unwrap()
    }

    async fn start(&mut self, id: &str, query: &str, variables: Value) {
        let cmd = json!({ "id": id, "query": query, "variables": variables }).to_string() + "\n";
        self.stdin.write_all(cmd.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next message of subscription `id`.
    async fn next(&mut self, id: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(i);
        }
        loop {
            let m = self.next_line(Duration::from_secs(60)).await;
            if m["id"] == id {
                return m;
            }
            self.pending.push(m);
        }
    }

    async fn close(mut self) {
        let _ = self.stdin.write_all(b"{\"quit\": true}\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

const STATUS: &str =
    "subscription($o: ID!) { orderStatusChanged(orderId: $o) { orderId status version } }";
const CART_CHANGED: &str = "subscription($c: ID!) { cartChanged(cartId: $c) { id version itemCount lines { productId quantity } } }";
const PLACED: &str =
    "subscription { orderPlaced { orderId customerId itemCount total { amountMinor currency } } }";
const PATH: [&str; 6] = [
    "PLACED",
    "STOCK_RESERVED",
    "PAYMENT_AUTHORIZED",
    "CONFIRMED",
    "SHIPPED",
    "DELIVERED",
];

fn status_of(m: &Value) -> (String, i64) {
    let s = &m["data"]["orderStatusChanged"];
    assert!(s.is_object(), "{m}");
    (
        s["status"].as_str().unwrap().to_owned(),
        s["version"].as_i64().unwrap(),
    )
}

fn code_of(m: &Value) -> Option<String> {
    m["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

async fn admin_mutation(client: &reqwest::Client, admin: &str, query: &str, order: &str) {
    let body = gql_as(client, admin, query, json!({ "o": order })).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn order_statuses_reach_their_owner_only_in_order_and_again_after_reconnecting() {
    let client = http();
    let admin = admin_token(&client).await;
    let (owner_id, _, owner) = new_customer(&client).await;
    let (_, _, other) = new_customer(&client).await;
    let product = new_product(&client, &admin, 1500, 10).await;
    let cart = customer_cart(&client, &owner, &product, 2).await;

    // Connected before the checkout, so the subscription can start the moment the order
    // id is known.
    let mut ws = WsClient::connect(&owner).await;
    let mut back_office = WsClient::connect(&admin).await;
    back_office.start("placed", PLACED, json!({})).await;
    let mut snooper = WsClient::connect(&other).await;
    snooper.start("placed", PLACED, json!({})).await;
    assert_eq!(
        code_of(&snooper.next("placed").await).as_deref(),
        Some("FORBIDDEN"),
        "orderPlaced is for the back office"
    );

    let body = gql_as(
        &client,
        &owner,
        "mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId } }",
        json!({ "c": cart, "t": card_token(&client, GOOD_CARD).await }),
    )
    .await;
    let order = body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    ws.start("s", STATUS, json!({ "o": order })).await;

    // From whatever status the order is in when the subscription starts, every later status
    // arrives once, in order, up to CONFIRMED.
    let mut seen: Vec<(String, i64)> = Vec::new();
    while seen.last().map(|s| s.0.as_str()) != Some("CONFIRMED") {
        seen.push(status_of(&ws.next("s").await));
        assert!(seen.len() <= PATH.len(), "{seen:?}");
    }

    // Someone else's subscription to the order is refused and carries nothing.
    snooper.start("s", STATUS, json!({ "o": order })).await;
    let refused = snooper.next("s").await;
    assert_eq!(code_of(&refused).as_deref(), Some("FORBIDDEN"), "{refused}");
    assert!(refused["data"].is_null());

    admin_mutation(
        &client,
        &admin,
        "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"DHL\", trackingNumber: \"JD1\") { version } }",
        &order,
    )
    .await;
    seen.push(status_of(&ws.next("s").await));

    // The owner's client goes away and reconnects: it is up to date at once (SHIPPED) and
    // follows the rest.
    ws.close().await;
    let mut ws = WsClient::connect(&owner).await;
    ws.start("s2", STATUS, json!({ "o": order })).await;
    let again = status_of(&ws.next("s2").await);
    assert_eq!(
        again,
        seen.last().unwrap().clone(),
        "current state on reconnect"
    );
    admin_mutation(
        &client,
        &admin,
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
        &order,
    )
    .await;
    seen.push(status_of(&ws.next("s2").await));

    eprintln!("statuses seen: {seen:?}");
    let statuses: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let start = PATH.iter().position(|p| *p == statuses[0]).unwrap();
    assert_eq!(
        statuses,
        PATH[start..].to_vec(),
        "statuses in order: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "versions increase: {seen:?}"
    );

    // The back office saw the order placed.
    loop {
        let m = back_office.next("placed").await;
        let p = &m["data"]["orderPlaced"];
        assert!(p.is_object(), "{m}");
        if p["orderId"] == json!(order) {
            assert_eq!(p["customerId"], json!(owner_id));
            assert_eq!(p["itemCount"], json!(2));
            assert_eq!(p["total"]["amountMinor"], json!(3000));
            break;
        }
    }

    // The other customer's client received nothing of this order, ever (a subscription that
    // is refused at once marks the end of what it received).
    snooper
        .start("own", CART_CHANGED, json!({ "c": "not-a-cart" }))
        .await;
    let m = snooper.next("own").await;
    assert_eq!(code_of(&m).as_deref(), Some("INVALID_ARGUMENT"), "{m}");
    assert!(
        snooper.pending.is_empty(),
        "nothing else: {:?}",
        snooper.pending
    );
    ws.close().await;
    snooper.close().await;
    back_office.close().await;
}

/// Taken by the tests that depend on the cart projector (one of them stops it).
static CART_PROJECTOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a service when dropped (no-op when it runs already).
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        stack(&["start", self.0]);
    }
}

#[tokio::test]
async fn cart_changed_subscribed_right_after_create_cart_waits_for_the_cart() {
    let _g = CART_PROJECTOR.lock().await;
    let client = http();
    let mut ws = WsClient::connect("").await;
    // The cart is created while the cart projector is stopped, so the subscription surely
    // starts before the read model has it.
    let restart = Restart("cart-projector");
    stack(&["stop", "cart-projector"]);
    let cart = create_cart(&client).await;
    ws.start("c", CART_CHANGED, json!({ "c": cart })).await;
    // The cart-query's bounded wait (2 s) passes at least once with nothing to send.
    let q = "query($id: ID!) { cart(id: $id, atLeastVersion: 1) { id } }";
    let body = gql(&client, q, json!({ "id": cart })).await;
    assert_eq!(code_of(&body).as_deref(), Some("STALE"), "{body}");
    drop(restart);

    // Once projected, the cart arrives, then its next change.
    let first = ws.next("c").await;
    let c = &first["data"]["cartChanged"];
    assert_eq!(c["id"], json!(cart), "not an error: {first}");
    assert_eq!(c["version"], json!(1), "{first}");
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 2 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], json!(2), "{body}");
    let m = ws.next("c").await;
    assert_eq!(m["data"]["cartChanged"]["version"], json!(2), "{m}");
    assert_eq!(m["data"]["cartChanged"]["itemCount"], json!(2), "{m}");
    assert!(ws.pending.is_empty(), "{:?}", ws.pending);
    ws.close().await;
}

#[tokio::test]
async fn a_replayed_record_is_never_sent_as_new() {
    let _g = CART_PROJECTOR.lock().await;
    let client = http();
    let cart = create_cart(&client).await;
    let mut ws = WsClient::connect("").await;
    ws.start("c", CART_CHANGED, json!({ "c": cart })).await;
    let first = ws.next("c").await;
    assert_eq!(first["data"]["cartChanged"]["version"], json!(1), "{first}");

    let (a, b) = (new_id(), new_id());
    let body = gql(&client, ADD_ITEM, json!({ "c": cart, "p": a, "q": 1 })).await;
    assert_eq!(body["data"]["addItemToCart"]["version"], json!(2), "{body}");
    let m = ws.next("c").await;
    assert_eq!(m["data"]["cartChanged"]["version"], json!(2), "{m}");

    // The broker replays version 2: the same record again on the topic.
    let topic = event_schemas::topic_for("cart");
    let records = read_topic_until(&topic, Duration::from_secs(30), |rs| {
        stream_records(rs, &cart).len() >= 2
    });
    // A stream's records are in one partition, in version order.
    let v2 = stream_records(&records, &cart).remove(1);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BROKERS", "127.0.0.1:19092"))
        .create()
        .unwrap();
    let payload = serde_json::to_vec(&v2.value).unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key(&cart).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // The next real change arrives, and nothing came in between.
    let body = gql(&client, ADD_ITEM, json!({ "c": cart, "p": b, "q": 3 })).await;
    assert_eq!(body["data"]["addItemToCart"]["version"], json!(3), "{body}");
    let m = ws.next("c").await;
    let c = &m["data"]["cartChanged"];
    assert_eq!(c["version"], json!(3), "no stale version 2 again: {m}");
    assert_eq!(c["itemCount"], json!(4));
    assert!(ws.pending.is_empty(), "{:?}", ws.pending);
    ws.close().await;
}

#[tokio::test]
async fn a_subscription_is_closed_when_its_token_expires() {
    // (Other tests here stop the cart projector; this one needs carts projected.)
    let _g = CART_PROJECTOR.lock().await;
    let client = http();
    let (_, _, token) = new_customer(&client).await;
    let body = gql_as(
        &client,
        &token,
        "mutation { createCart { cartId } }",
        json!({}),
    )
    .await;
    let cart = body["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    // The same token, but valid for a few more seconds only (enough to connect and start on
    // a loaded machine: a token already expired at the start is refused another way).
    let short = resign_token(&token, |c| {
        c["exp"] = json!(chrono::Utc::now().timestamp() + 8);
    });
    let mut ws = WsClient::connect(&short).await;
    ws.start("c", CART_CHANGED, json!({ "c": cart })).await;
    // Beside it, the same subscription with the full token.
    let mut long = WsClient::connect(&token).await;
    long.start("l", CART_CHANGED, json!({ "c": cart })).await;
    let started = std::time::Instant::now();
    // The cart arrives while the token is good; then the server closes the connection.
    let ended = loop {
        let m = ws.next("c").await;
        if m["errors"].is_array() || m["complete"] == json!(true) {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still open: {m}"
        );
    };
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before the token expired: {ended}"
    );
    assert_eq!(code_of(&ended).as_deref(), Some("TRANSPORT"), "{ended}");
    assert_eq!(
        ended["errors"][0]["extensions"]["closeCode"],
        json!(4401),
        "closed as expired: {ended}"
    );
    // The connection with the good token is still open: it sees the next change.
    let first = long.next("l").await;
    assert_eq!(first["data"]["cartChanged"]["version"], json!(1), "{first}");
    let body = gql_as(
        &client,
        &token,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], json!(2), "{body}");
    let m = long.next("l").await;
    assert_eq!(m["data"]["cartChanged"]["version"], json!(2), "{m}");
    long.close().await;
    ws.close().await;
}
