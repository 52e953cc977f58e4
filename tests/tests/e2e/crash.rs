//! Crash safety with real processes: the relay stopped while events are appended and the
//! command service killed with SIGKILL; the projector killed mid-stream. The tests run one at
//! a time (they stop shared services).

use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Starts a service when dropped (no-op when it runs already).
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        stack(&["start", self.0]);
    }
}

#[tokio::test]
async fn events_appended_while_the_relay_is_down_reach_kafka_exactly_as_stored() {
    let _g = SERIAL.lock().await;
    let client = http();
    let cart = create_cart(&client).await;

    stack(&["stop", "relay"]);
    let mut version = 1;
    for i in 0..5 {
        let body = gql(
            &client,
            ADD_ITEM,
            json!({ "c": cart, "p": new_id(), "q": i + 1 }),
        )
        .await;
        version += 1;
        assert_eq!(body["data"]["addItemToCart"]["version"], version, "{body}");
    }
    stack(&["kill", "cart-command"]);
    stack(&["start", "relay"]);
    stack(&["start", "cart-command"]);

    // The command service answers again, and everything stored reaches Kafka once, in order.
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 7, "{body}");
    let records = tokio::task::spawn_blocking({
        let cart = cart.clone();
        move || {
            read_topic_until("commerce.cart.events", Duration::from_secs(60), |rs| {
                stream_records(rs, &cart).len() >= 7
            })
        }
    })
    .await
    .unwrap();
    let mine = stream_records(&records, &cart);
    let docs = stored_events(&cart).await;
    assert_eq!(docs.len(), 7);
    assert_records_match_store(&mine, &docs);
    assert!(docs.iter().all(|d| d.get_bool("published") == Ok(true)));
    cart_at_version(&client, &cart, 7).await;
}

#[tokio::test]
async fn a_projector_killed_mid_stream_resumes_without_applying_twice() {
    let _g = SERIAL.lock().await;
    let client = http();
    let carts: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(create_cart(&client).await);
        }
        v
    };
    let products: Vec<String> = (0..3).map(|_| new_id()).collect();

    // A writer keeps appending while the projector is killed under it.
    let writer = tokio::spawn({
        let client = client.clone();
        let carts = carts.clone();
        async move {
            // expected[cart][product] = quantity; versions[cart] = last version.
            let mut expected: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
            let mut versions: BTreeMap<String, u64> = BTreeMap::new();
            for i in 0..60usize {
                let cart = carts[i % carts.len()].clone();
                let product = products[i % products.len()].clone();
                let q = 1 + (i % 2) as i64;
                let body = gql(
                    &client,
                    ADD_ITEM,
                    json!({ "c": cart, "p": product, "q": q }),
                )
                .await;
                let v = body["data"]["addItemToCart"]["version"].as_u64();
                versions.insert(cart.clone(), v.unwrap_or_else(|| panic!("{body}")));
                *expected
                    .entry(cart)
                    .or_default()
                    .entry(product)
                    .or_default() += q;
            }
            (expected, versions)
        }
    });
    // Kill the projector once it has applied part of the stream, and restart it.
    cart_at_version(&client, &carts[0], 3).await;
    stack(&["kill", "cart-projector"]);
    let (expected, versions) = writer.await.unwrap();
    stack(&["start", "cart-projector"]);

    for cart in &carts {
        let view = cart_at_version(&client, cart, versions[cart]).await;
        assert_eq!(view["version"].as_u64(), Some(versions[cart]));
        let got = lines_of(&view);
        assert_eq!(got, expected[cart], "cart {cart}");
        assert_eq!(stored_events(cart).await.len() as u64, versions[cart]);
    }
}

#[tokio::test]
async fn a_saga_killed_mid_checkout_finishes_every_checkout_and_charges_once() {
    let _g = SERIAL.lock().await;
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 250, 100).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        let (_, _, token) = new_customer(&client).await;
        let card = if i % 2 == 0 { GOOD_CARD } else { DECLINED_CARD };
        orders.push((token.clone(), buy(&client, &token, &product, 1, card).await));
        if i == 1 {
            stack(&["kill", "checkout-saga"]);
        }
    }
    stack(&["start", "checkout-saga"]);
    for (token, order) in &orders {
        let o = order_in(&client, token, order, &["CONFIRMED", "CANCELLED"], None).await;
        match o["status"].as_str() {
            Some("CONFIRMED") => {
                let o = order_in(&client, token, order, &["CONFIRMED"], Some("CAPTURED")).await;
                assert_eq!(o["payment"]["captures"], 1, "charged exactly once: {o}");
            }
            _ => assert_ne!(o["payment"]["status"], "CAPTURED", "{o}"),
        }
    }
    // Every cancelled checkout gave its unit back.
    let confirmed = {
        let mut n = 0;
        for (token, order) in &orders {
            let body = gql_as(&client, token, ORDER, json!({ "id": order })).await;
            if body["data"]["order"]["status"] == "CONFIRMED" {
                n += 1;
            }
        }
        n
    };
    poll("stock settles", Duration::from_secs(60), || async {
        let (on_hand, reserved, _) = product_stock(&client, &product).await;
        (on_hand == 100 && reserved == confirmed).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_checkout_whose_payment_step_times_out_is_compensated() {
    let _g = SERIAL.lock().await;
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 300, 5).await;
    let (_, _, token) = new_customer(&client).await;

    let cart = customer_cart(&client, &token, &product, 2).await;
    // The saga waits while the customer checks out (the card is tokenized by the payment
    // service); then the payment service goes down before the saga gets to it.
    stack(&["stop", "checkout-saga"]);
    let body = gql_as(
        &client,
        &token,
        "mutation($c: ID!, $t: String!) { checkout(cartId: $c, paymentToken: $t) { orderId } }",
        json!({ "c": cart, "t": card_token(&client, GOOD_CARD).await }),
    )
    .await;
    let order = body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    stack(&["stop", "payment-command"]);
    // Whatever happens below, the payment service comes back for the next tests.
    let _restart = Restart("payment-command");
    stack(&["start", "checkout-saga"]);
    // The payment step cannot complete; the checkout's deadline passes and it is cancelled.
    order_in(&client, &token, &order, &["CANCELLED"], None).await;
    stack(&["start", "payment-command"]);
    // Compensation: the stock comes back, and no money is held or taken.
    poll("stock released", Duration::from_secs(60), || async {
        (product_stock(&client, &product).await == (5, 0, 5)).then_some(())
    })
    .await;
    let o = poll("payment settled", Duration::from_secs(60), || async {
        let body = gql_as(&client, &token, ORDER, json!({ "id": order })).await;
        let o = body["data"]["order"].clone();
        (o["payment"].is_null() || o["payment"]["status"] == "VOIDED").then_some(o)
    })
    .await;
    assert_eq!(o["status"], "CANCELLED");
}
