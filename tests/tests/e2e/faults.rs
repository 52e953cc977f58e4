//! Fault injection, bounded in count and time, against the real stack:
//! - a seeded random workload of carts, checkouts and cancellations of paid orders runs while
//!   command services, the relay, the projectors and the saga are killed with SIGKILL at
//!   random moments (24 kills, every other one the order or payment service while the saga's
//!   calls and the cancel-and-refund transactions are in flight) and restarted; afterwards
//!   the store and Kafka agree event for event, every read model equals the state folded from
//!   the store, no payment is captured twice, no stock is negative, no confirmed order was
//!   cancelled by a timeout, and every captured payment of a cancelled order is refunded in
//!   full;
//! - the broker is paused (SIGSTOP) and resumed: the relay and the projectors recover;
//! - the MongoDB-wire server restarts under load: commands fail cleanly as UNAVAILABLE (never
//!   INTERNAL) while it is down, recover by themselves, and nothing acknowledged is lost;
//! - PostgreSQL restarts under load: reads fail cleanly as UNAVAILABLE while it is down,
//!   commands go on, and the projectors, the saga and the query services recover by
//!   themselves with nothing acknowledged lost.

use crate::common::*;
use domain::cart::Cart;
use domain::order::{Order, OrderEvent};
use domain::payment::{Payment, PaymentEvent};
use domain::product::Product;
use domain::Aggregate;
use event_schemas::EventEnvelope;
use futures::TryStreamExt;
use mongodb::bson::doc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// These tests break the whole stack in different ways: one at a time.
static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A GraphQL request straight to the BFF (Envoy's client rate limit is not under test here).
async fn bff(client: &reqwest::Client, token: &str, query: &str, variables: Value) -> Value {
    let url = env("BFF_URL", "http://127.0.0.1:18000/graphql");
    let mut req = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Retries a mutation with one idempotency key while it fails retryably, for a while.
/// `Some(data)` once acknowledged.
async fn acknowledged(
    client: &reqwest::Client,
    token: &str,
    query: &str,
    mut variables: Value,
    field: &str,
) -> Option<Value> {
    variables["k"] = json!(new_id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let body = bff(client, token, query, variables.clone()).await;
        if body["data"][field].is_object() {
            return Some(body["data"][field].clone());
        }
        match error_code(&body).as_deref() {
            None | Some("UNAVAILABLE") | Some("CONFLICT") | Some("INTERNAL") => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Some(_) => return None,
        }
    }
    None
}

const CREATE: &str = "mutation($k: String) { createCart(idempotencyKey: $k) { cartId version } }";
const ADD: &str = "mutation($c: ID!, $p: ID!, $q: Int!, $k: String) {
  addItemToCart(cartId: $c, productId: $p, quantity: $q, idempotencyKey: $k) { cartId version } }";
const CHECKOUT_KEYED: &str = "mutation($c: ID!, $t: String!, $k: String) {
  checkout(cartId: $c, paymentToken: $t, idempotencyKey: $k) { orderId } }";

/// Cancels the customer's order once it is confirmed (or gives up after a while): in the
/// background, so the workload goes on.
fn cancel_once_confirmed(
    client: &reqwest::Client,
    token: &str,
    order: &str,
) -> tokio::task::JoinHandle<()> {
    let (client, token, order) = (client.clone(), token.to_owned(), order.to_owned());
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let body = bff(&client, &token, ORDER, json!({ "id": order })).await;
            if body["data"]["order"]["status"] == "CONFIRMED" {
                const CANCEL: &str =
                    "mutation($o: ID!) { cancelOrder(orderId: $o, reason: \"changed my mind\") { version } }";
                let body = bff(&client, &token, CANCEL, json!({ "o": order })).await;
                if body["data"]["cancelOrder"].is_object() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// Every event document of an aggregate type, by stream, in version order: the streams
/// begun since `since` (other tests' streams, some deliberately disordered on Kafka, are not
/// this test's business).
async fn store_streams(
    stream_type: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> BTreeMap<String, Vec<EventEnvelope>> {
    let docs: Vec<mongodb::bson::Document> = mongo_events()
        .await
        .find(doc! { "stream_type": stream_type })
        .sort(doc! { "stream_id": 1, "version": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut streams: BTreeMap<String, Vec<EventEnvelope>> = BTreeMap::new();
    for d in docs {
        let env = event_store::event_store::from_document(d).unwrap();
        streams.entry(env.stream_id.clone()).or_default().push(env);
    }
    streams.retain(|_, events| events.first().is_some_and(|e| e.occurred_at >= since));
    streams
}

fn fold<A: Aggregate>(events: &[EventEnvelope]) -> A {
    events.iter().fold(A::default(), |s, e| {
        s.evolve(&e.decode::<A::Event>().unwrap())
    })
}

/// Kafka holds every stored event of the type, each stream in version order (a relay crash
/// may repeat a record; consumers are idempotent), and nothing that is not in the store.
fn assert_topic_matches_store(
    stream_type: &str,
    store: &BTreeMap<String, Vec<EventEnvelope>>,
    since: chrono::DateTime<chrono::Utc>,
) {
    let topic = event_schemas::topic_for(stream_type);
    let wanted: BTreeSet<(String, i64)> = store
        .iter()
        .flat_map(|(id, events)| events.iter().map(move |e| (id.clone(), e.version as i64)))
        .collect();
    // Read until every stored event has been seen (or the deadline passes).
    let records = read_topic_until(&topic, Duration::from_secs(60), |rs| {
        let newest = rs.iter().filter_map(|r| r.epoch).max();
        let seen: BTreeSet<(String, i64)> = rs
            .iter()
            .filter(|r| r.epoch >= newest)
            .filter_map(|r| Some((r.key.clone(), r.value["streamversion"].as_i64()?)))
            .collect();
        wanted.is_subset(&seen)
    });
    // As the consumers do: a newer epoch (the relay's republish after the broker lost the
    // topic) holds the whole copy, and records of older ones are ignored (some may have been
    // produced to the emptied broker before the relay noticed the loss).
    let newest = records.iter().filter_map(|r| r.epoch).max();
    let mut on_kafka: BTreeMap<String, Vec<EventEnvelope>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.epoch >= newest) {
        // Other tests put garbage on the topics on purpose (dead-letter tests); it is no
        // event, and no event of the store may be garbled.
        let Ok(env) = event_schemas::cloudevents::decode(&serde_json::to_vec(&r.value).unwrap())
        else {
            assert!(
                r.value.get("specversion").is_none(),
                "a CloudEvent on {topic} does not decode: {}",
                r.value
            );
            continue;
        };
        // Streams born before the run (other tests', some still changing) are not checked;
        // a stream born during it must be in the store.
        let born_during_run = env.version == 1 && env.occurred_at >= since;
        if !store.contains_key(&env.stream_id)
            && !born_during_run
            && !on_kafka.contains_key(&env.stream_id)
        {
            continue;
        }
        let stream = on_kafka.entry(env.stream_id.clone()).or_default();
        // Repeats of the last record (or of an earlier one) are redelivery, not new facts.
        if stream.iter().any(|e| e.version == env.version) {
            let first = stream.iter().find(|e| e.version == env.version).unwrap();
            assert_eq!(first.event_id, env.event_id, "two events at one version");
            continue;
        }
        stream.push(env);
    }
    for (id, events) in store {
        let got = on_kafka.remove(id).unwrap_or_default();
        let versions: Vec<u64> = got.iter().map(|e| e.version).collect();
        let want: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(
            versions, want,
            "{stream_type} {id}: versions on Kafka, in order"
        );
        for (k, s) in got.iter().zip(events) {
            assert_eq!(k.event_id, s.event_id, "{stream_type} {id} v{}", s.version);
            assert_eq!(k.data, s.data, "{stream_type} {id} v{}", s.version);
        }
    }
    assert!(
        on_kafka.is_empty(),
        "{topic} holds streams the store does not: {:?}",
        on_kafka.keys().collect::<Vec<_>>()
    );
}

/// The writers the saga drives.
const WRITERS: [&str; 2] = ["order-command", "payment-command"];

const KILLABLE: [&str; 10] = [
    "cart-command",
    "product-command",
    "order-command",
    "payment-command",
    "relay",
    "cart-projector",
    "product-projector",
    "order-projector",
    "checkout-saga",
    "shop-query",
];

#[tokio::test]
async fn random_kills_under_load_lose_nothing_and_double_nothing() {
    let _one_at_a_time = FAULTS.lock().await;
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    eprintln!("fault injection seed {seed} (FAULT_SEED to replay)");
    // Stream times are to the millisecond; start a moment back.
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let client = http();
    let admin = admin_token(&client).await;
    let mut products = Vec::new();
    for _ in 0..4 {
        products.push(new_product(&client, &admin, 900, 25).await);
    }
    let mut customers = Vec::new();
    for _ in 0..4 {
        customers.push(new_customer(&client).await.2);
    }

    // The killer: 24 SIGKILLs at random moments, each followed by a restart.
    let running = Arc::new(AtomicBool::new(true));
    let killer = {
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut kills = Vec::new();
            for i in 0..24 {
                std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
                // Every other kill hits a writer the saga is calling (inside its appends,
                // the multi-event ones in a transaction, and between a gateway call and its
                // record).
                let victim = if i % 2 == 1 {
                    WRITERS[rng.random_range(0..WRITERS.len())]
                } else {
                    KILLABLE[rng.random_range(0..KILLABLE.len())]
                };
                stack(&["kill", victim]);
                stack(&["start", victim]);
                kills.push(victim);
            }
            running.store(false, Ordering::SeqCst);
            kills
        })
    };

    // The workload, until the killer is done: carts of random lines, checked out with a good
    // card, or now and then a declined one.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut orders = Vec::new();
    let mut cancellers = Vec::new();
    let mut acked_carts: BTreeMap<String, u64> = BTreeMap::new();
    let mut wiped = false;
    while running.load(Ordering::SeqCst) {
        let token = &customers[rng.random_range(0..customers.len())];
        let Some(cart) = acknowledged(&client, token, CREATE, json!({}), "createCart").await else {
            continue;
        };
        let cart_id = cart["cartId"].as_str().unwrap().to_owned();
        acked_carts.insert(cart_id.clone(), cart["version"].as_u64().unwrap());
        for _ in 0..rng.random_range(1..=3) {
            let p = &products[rng.random_range(0..products.len())];
            let q = rng.random_range(1..=2);
            if let Some(r) = acknowledged(
                &client,
                token,
                ADD,
                json!({ "c": cart_id, "p": p, "q": q }),
                "addItemToCart",
            )
            .await
            {
                acked_carts.insert(cart_id.clone(), r["version"].as_u64().unwrap());
            }
        }
        let card = if rng.random_bool(0.15) {
            DECLINED_CARD
        } else {
            GOOD_CARD
        };
        // The payment service may be down a while (it is one of those killed).
        let payment = poll("a card token", Duration::from_secs(60), || {
            try_card_token(&client, card)
        })
        .await;
        if let Some(r) = acknowledged(
            &client,
            token,
            CHECKOUT_KEYED,
            json!({ "c": cart_id, "t": payment }),
            "checkout",
        )
        .await
        {
            let order = r["orderId"].as_str().unwrap().to_owned();
            // Now and then the customer cancels once it is paid: the order's cancellation and
            // its refund are one transaction, and the saga refunds the capture.
            if card == GOOD_CARD && rng.random_bool(0.3) {
                cancellers.push(cancel_once_confirmed(&client, token, &order));
            }
            orders.push((token.clone(), order));
        }
        // Once mid-run the broker restarts empty (the local broker keeps nothing): the relay
        // republishes from the store, the read side replays, and every check below still holds.
        if !wiped && orders.len() >= 8 {
            wiped = true;
            eprintln!("the broker restarts empty mid-run");
            tokio::task::spawn_blocking(|| {
                stack(&["stop", "tansu"]);
                stack(&["start", "tansu"]);
            })
            .await
            .unwrap();
        }
    }
    let kills = killer.await.unwrap();
    for c in cancellers {
        c.await.unwrap();
    }
    eprintln!(
        "{} kills: {kills:?}; {} carts, {} orders acknowledged",
        kills.len(),
        acked_carts.len(),
        orders.len()
    );
    assert!(kills.len() >= 20);
    assert!(wiped, "the broker was wiped mid-run");
    assert!(orders.len() >= 3, "the workload made progress");

    // Every acknowledged order settles (the saga finishes or times it out).
    let pool = sqlx::PgPool::connect(&env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/commerce_test",
    ))
    .await
    .unwrap();
    let order_ids: Vec<uuid::Uuid> = orders
        .iter()
        .map(|(_, o)| uuid::Uuid::parse_str(o).unwrap())
        .collect();
    poll("every acknowledged order settled", Duration::from_secs(120), || async {
        let settled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE id = ANY($1) AND status IN ('confirmed', 'cancelled')",
        )
        .bind(&order_ids)
        .fetch_one(&pool)
        .await
        .unwrap();
        (settled as usize == order_ids.len()).then_some(())
    })
    .await;
    let (token, order) = &orders[0];
    order_in(&client, token, order, &["CONFIRMED", "CANCELLED"], None).await;
    // The relay has published everything.
    poll("every event published", Duration::from_secs(60), || async {
        let n = mongo_events()
            .await
            .count_documents(doc! { "published": false })
            .await
            .unwrap();
        (n == 0).then_some(())
    })
    .await;

    // Nothing acknowledged is lost.
    let carts = store_streams("cart", since).await;
    for (cart, version) in &acked_carts {
        let stored = carts.get(cart).map(Vec::len).unwrap_or(0) as u64;
        assert!(
            stored >= *version,
            "cart {cart}: acknowledged v{version}, stored {stored}"
        );
    }

    // The store and Kafka agree, per aggregate type.
    let orders_store = store_streams("order", since).await;
    let payments = store_streams("payment", since).await;
    let product_streams = store_streams("product", since).await;
    for (t, s) in [
        ("cart", &carts),
        ("order", &orders_store),
        ("payment", &payments),
        ("product", &product_streams),
    ] {
        assert_topic_matches_store(t, s, since);
    }

    // No payment is captured twice; no order has two captured payments.
    let mut captured_orders = BTreeSet::new();
    for (id, events) in &payments {
        let captures = events
            .iter()
            .filter(|e| {
                matches!(
                    e.decode::<PaymentEvent>(),
                    Ok(PaymentEvent::PaymentCaptured(_))
                )
            })
            .count();
        assert!(captures <= 1, "payment {id} captured {captures} times");
        if captures == 1 {
            let order = events[0].data["order_id"].as_str().unwrap().to_owned();
            assert!(
                captured_orders.insert(order.clone()),
                "order {order} paid twice"
            );
        }
        let _: Payment = fold(events);
    }

    // No timeout cancelled an order that was confirmed.
    for (id, events) in &orders_store {
        let mut confirmed = false;
        for e in events {
            match e.decode::<OrderEvent>() {
                Ok(OrderEvent::OrderConfirmed(_)) => confirmed = true,
                Ok(OrderEvent::OrderCancelled(c)) => assert!(
                    !(confirmed && c.reason == domain::order::TIMED_OUT),
                    "order {id} was confirmed, then cancelled by a timeout"
                ),
                _ => {}
            }
        }
    }
    // Every captured payment of a cancelled order is refunded in full (the saga may still be
    // at it: poll the store).
    poll(
        "every captured payment of a cancelled order refunded",
        Duration::from_secs(90),
        || async {
            let orders_now = store_streams("order", since).await;
            let payments_now = store_streams("payment", since).await;
            let mut unrefunded = Vec::new();
            for (id, events) in &payments_now {
                let p: Payment = fold(events);
                if p.captures == 0 {
                    continue;
                }
                let order = events[0].data["order_id"].as_str().unwrap_or_default();
                let Some(order_events) = orders_now.get(order) else {
                    continue;
                };
                let o: Order = fold(order_events);
                if o.status == domain::order::OrderStatus::Cancelled
                    && p.status != domain::payment::PaymentStatus::Refunded
                {
                    unrefunded.push(format!("payment {id} of order {order}: {:?}", p.status));
                }
            }
            if !unrefunded.is_empty() {
                eprintln!("not refunded yet: {unrefunded:?}");
            }
            unrefunded.is_empty().then_some(())
        },
    )
    .await;

    // Every read model equals the state folded from the store.
    poll(
        "read models equal the store",
        Duration::from_secs(120),
        || async {
            let mut diffs = Vec::new();
            for (id, events) in &product_streams {
                let p: Product = fold(events);
                if let Err(e) = p.check_invariants() {
                    panic!("product {id}: {e}");
                }
                let row: Option<(i32, i32, i64)> = sqlx::query_as(
                    "SELECT on_hand, reserved, version FROM products WHERE id = $1::uuid",
                )
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap();
                let want = (p.on_hand as i32, p.reserved() as i32, events.len() as i64);
                if row != Some(want) {
                    diffs.push(format!("product {id}: {row:?} != {want:?}"));
                }
            }
            for (id, events) in &orders_store {
                let o: Order = fold(events);
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT status, version FROM orders WHERE id = $1::uuid")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await
                        .unwrap();
                let want = (o.status.as_str().to_owned(), events.len() as i64);
                if row.as_ref() != Some(&want) {
                    diffs.push(format!("order {id}: {row:?} != {want:?}"));
                }
            }
            for (id, events) in &carts {
                let c: Cart = fold(events);
                let rows: Vec<(String, i32)> = sqlx::query_as(
                    "SELECT product_id::text, quantity FROM cart_lines WHERE cart_id = $1::uuid",
                )
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM carts WHERE id = $1::uuid")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await
                        .unwrap();
                let got: BTreeMap<String, i32> = rows.into_iter().collect();
                let want: BTreeMap<String, i32> = c
                    .lines
                    .iter()
                    .map(|(p, q)| (p.to_string(), q.get() as i32))
                    .collect();
                let deleted = version.is_none() && c.status == domain::cart::CartStatus::Deleted;
                if !deleted && (got != want || version != Some(events.len() as i64)) {
                    diffs.push(format!(
                        "cart {id}: {got:?} v{version:?} != {want:?} v{}",
                        events.len()
                    ));
                }
            }
            if !diffs.is_empty() {
                eprintln!(
                    "{} differences, e.g. {:?}",
                    diffs.len(),
                    &diffs[..diffs.len().min(3)]
                );
            }
            diffs.is_empty().then_some(())
        },
    )
    .await;

    // No stock is negative in the read model either (the table's CHECKs hold it too).
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(bad, 0);
}

#[tokio::test]
async fn a_paused_broker_and_a_restarted_store_are_survived() {
    let _one_at_a_time = FAULTS.lock().await;
    let client = http();
    let cart = create_cart(&client).await;

    // Pause the broker: commands still succeed (they only need the store); the read model
    // catches up once the broker resumes.
    let pid = std::fs::read_to_string(
        std::path::Path::new(&env("STACK_DIR", ".stack-test")).join("pids/tansu.pid"),
    )
    .unwrap();
    let pid = pid.trim();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let mut versions = Vec::new();
    for _ in 0..5 {
        let body = gql(
            &client,
            ADD_ITEM,
            json!({ "c": cart, "p": new_id(), "q": 1 }),
        )
        .await;
        versions.push(body["data"]["addItemToCart"]["version"].as_i64());
    }
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    assert!(versions.iter().all(Option::is_some), "{versions:?}");
    cart_at_version(&client, &cart, 6).await;
    // And a new command after the pause goes all the way through.
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], json!(7), "{body}");
    cart_at_version(&client, &cart, 7).await;

    // Restart the store while a writer runs: a command fails as UNAVAILABLE (retryable) or
    // succeeds; it never fails otherwise, and every acknowledged one is kept.
    let writer = add_items_for(&client, &cart, Duration::from_secs(25));
    outage("mongo", Duration::from_secs(4)).await;
    let (acked, codes) = writer.await.unwrap();
    eprintln!(
        "{} acknowledged around the store restart; refusals: {codes:?}",
        acked.len()
    );
    assert!(
        codes.contains("UNAVAILABLE"),
        "the outage was seen: {codes:?}"
    );
    assert!(
        codes.iter().all(|c| c == "UNAVAILABLE" || c == "CONFLICT"),
        "only retryable refusals: {codes:?}"
    );
    assert_acknowledged_kept(&client, &cart, &acked).await;
}

/// Adds items to `cart` through GraphQL, every 50 ms for `length`: the acknowledged versions
/// and the error codes of the refusals.
fn add_items_for(
    client: &reqwest::Client,
    cart: &str,
    length: Duration,
) -> tokio::task::JoinHandle<(Vec<i64>, BTreeSet<String>)> {
    let (client, cart) = (client.clone(), cart.to_owned());
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut codes = BTreeSet::new();
        let deadline = Instant::now() + length;
        // A few products, one unit at a time (a cart has a bounded number of lines).
        let products: Vec<String> = (0..5).map(|_| new_id()).collect();
        let mut i = 0;
        while Instant::now() < deadline {
            i += 1;
            let p = &products[i % products.len()];
            let (_, body) = gql_raw(&client, ADD_ITEM, json!({ "c": cart, "p": p, "q": 1 })).await;
            match body["data"]["addItemToCart"]["version"].as_i64() {
                Some(v) => acked.push(v),
                None => {
                    let code = error_code(&body).unwrap_or_default();
                    if code != "UNAVAILABLE" {
                        eprintln!("refused: {body}");
                    }
                    codes.insert(code);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (acked, codes)
    })
}

/// Stops a component of the stack two seconds from now, for `down`, then starts it again.
async fn outage(service: &'static str, down: Duration) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || stack(&["stop", service]))
        .await
        .unwrap();
    tokio::time::sleep(down).await;
    tokio::task::spawn_blocking(move || stack(&["start", service]))
        .await
        .unwrap();
}

/// Every acknowledged version of the cart is in the store, and the read model reaches the
/// last one by itself.
async fn assert_acknowledged_kept(client: &reqwest::Client, cart: &str, acked: &[i64]) {
    let last = *acked
        .iter()
        .max()
        .expect("commands succeed again after the restart");
    let stored = stored_events(cart).await;
    // (A command whose answer was lost in the restart may be stored too: the client saw no
    // acknowledgement and would retry it with its idempotency key.)
    assert!(
        stored.len() as i64 >= last,
        "every acknowledged command is stored"
    );
    for v in acked {
        assert!(
            stored.iter().any(|d| d.get_i64("version") == Ok(*v)),
            "acknowledged version {v} is stored"
        );
    }
    cart_at_version(client, cart, last as u64).await;
}

#[tokio::test]
async fn a_restarted_postgres_is_survived() {
    let _one_at_a_time = FAULTS.lock().await;
    let pid_file = std::path::Path::new(&env("STACK_DIR", ".stack-test")).join("pids/postgres.pid");
    assert!(
        pid_file.exists(),
        "the test stack runs a PostgreSQL of its own (PG_PRIVATE=1, set by make test)"
    );
    let client = http();
    let cart = create_cart(&client).await;
    let (_, _, customer) = new_customer(&client).await;
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1250, 1000).await;

    // While PostgreSQL is down for a few seconds: commands (which need only the store) go
    // on, and reads of the read models fail as UNAVAILABLE, never otherwise.
    let writer = add_items_for(&client, &cart, Duration::from_secs(20));
    let reader = {
        let (client, cart, product) = (client.clone(), cart.clone(), product.clone());
        tokio::spawn(async move {
            const READ: &str = "query($c: ID!, $p: ID!) { cart(id: $c) { version }
              product(id: $p) { name stock { available } } }";
            let (mut ok, mut codes) = (0, BTreeSet::new());
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let (status, body) =
                    gql_raw(&client, READ, json!({ "c": cart, "p": product })).await;
                assert!(status < 500, "HTTP {status}: {body}");
                match error_code(&body) {
                    None if body["data"]["product"]["name"].is_string() => ok += 1,
                    None => {
                        codes.insert(format!("no data: {body}"));
                    }
                    Some(code) => {
                        codes.insert(code);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, codes)
        })
    };
    outage("postgres", Duration::from_secs(4)).await;
    let (acked, write_codes) = writer.await.unwrap();
    let (reads, read_codes) = reader.await.unwrap();
    eprintln!(
        "{} commands acknowledged, {reads} reads answered around the PostgreSQL restart; \
         refused commands: {write_codes:?}, refused reads: {read_codes:?}",
        acked.len()
    );
    assert!(
        read_codes.contains("UNAVAILABLE"),
        "the outage was seen: {read_codes:?}"
    );
    assert!(
        read_codes.iter().all(|c| c == "UNAVAILABLE"),
        "reads are refused only as UNAVAILABLE: {read_codes:?}"
    );
    assert!(
        write_codes
            .iter()
            .all(|c| c == "UNAVAILABLE" || c == "CONFLICT"),
        "only retryable refusals: {write_codes:?}"
    );
    // Reads recover by themselves, and the projector wrote everything acknowledged.
    assert_acknowledged_kept(&client, &cart, &acked).await;
    // The saga and the order projection recovered too: a checkout goes all the way.
    let order = buy(&client, &customer, &product, 2, GOOD_CARD).await;
    order_in(&client, &customer, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    poll("2 units reserved", Duration::from_secs(30), || async {
        (product_stock(&client, &product).await == (1000, 2, 998)).then_some(())
    })
    .await;
}
