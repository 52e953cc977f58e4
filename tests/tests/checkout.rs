//! The checkout saga end to end, through Envoy: a good card confirms and captures, a declined
//! card or missing stock cancels and compensates, two customers racing for the last unit get
//! exactly one order, and the back office ships, delivers and refunds.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn happy_checkout_confirms_captures_and_moves_stock() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1299, 10).await;
    let (_, _, token) = new_customer(&client).await;

    let order = buy(&client, &token, &product, 3, GOOD_CARD).await;
    let o = order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    assert_eq!(o["total"]["amountMinor"], 3 * 1299);
    assert_eq!(o["payment"]["captures"], 1);
    assert_eq!(o["payment"]["cardLast4"], "4242");
    assert_eq!(o["payment"]["cardBrand"], "visa");
    let stock = poll(
        "stock reserved",
        std::time::Duration::from_secs(30),
        || async {
            let s = product_stock(&client, &product).await;
            (s.2 == 7).then_some(s)
        },
    )
    .await;
    assert_eq!(stock, (10, 3, 7), "3 of 10 reserved for the order");

    // The back office ships, delivers and refunds part of it.
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"DHL\", trackingNumber: \"JD014600\") { version } }",
        json!({ "o": order }),
    )
    .await;
    assert!(body["data"]["shipOrder"]["version"].is_i64(), "{body}");
    order_in(&client, &token, &order, &["SHIPPED"], None).await;
    poll(
        "stock committed at shipment",
        std::time::Duration::from_secs(30),
        || async { (product_stock(&client, &product).await == (7, 0, 7)).then_some(()) },
    )
    .await;
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
        json!({ "o": order }),
    )
    .await;
    assert!(body["data"]["markDelivered"]["version"].is_i64(), "{body}");
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { refundPayment(orderId: $o, amountMinor: 1299) { version } }",
        json!({ "o": order }),
    )
    .await;
    assert!(body["data"]["refundPayment"]["version"].is_i64(), "{body}");
    poll(
        "refund reaches the payment",
        std::time::Duration::from_secs(30),
        || async {
            let body = gql_as(&client, &token, ORDER, json!({ "id": order })).await;
            let o = &body["data"]["order"];
            (o["status"] == "DELIVERED" && o["payment"]["refundedMinor"] == 1299).then_some(())
        },
    )
    .await;
    // Refunding more than is left is refused.
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { refundPayment(orderId: $o, amountMinor: 999999) { version } }",
        json!({ "o": order }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FAILED_PRECONDITION"),
        "{body}"
    );
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_gives_the_stock_back() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 500, 4).await;
    for card in [DECLINED_CARD, NO_FUNDS_CARD] {
        let (_, _, token) = new_customer(&client).await;
        let order = buy(&client, &token, &product, 2, card).await;
        let o = order_in(&client, &token, &order, &["CANCELLED"], Some("DECLINED")).await;
        assert_eq!(o["payment"]["captures"], 0);
        poll(
            "stock released",
            std::time::Duration::from_secs(30),
            || async { (product_stock(&client, &product).await == (4, 0, 4)).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn out_of_stock_cancels_without_a_payment() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 500, 1).await;
    let (_, _, token) = new_customer(&client).await;
    let order = buy(&client, &token, &product, 2, GOOD_CARD).await;
    let o = order_in(&client, &token, &order, &["CANCELLED"], None).await;
    assert!(
        o["cancelReason"]
            .as_str()
            .unwrap_or_default()
            .contains("out of stock"),
        "{o}"
    );
    assert!(o["payment"].is_null(), "no payment was authorized: {o}");
    assert_eq!(product_stock(&client, &product).await, (1, 0, 1));
}

#[tokio::test]
async fn two_customers_race_for_the_last_unit() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 700, 1).await;
    let (_, _, a) = new_customer(&client).await;
    let (_, _, b) = new_customer(&client).await;
    let (oa, ob) = tokio::join!(
        buy(&client, &a, &product, 1, GOOD_CARD),
        buy(&client, &b, &product, 1, GOOD_CARD)
    );
    let ra = order_in(&client, &a, &oa, &["CONFIRMED", "CANCELLED"], None).await;
    let rb = order_in(&client, &b, &ob, &["CONFIRMED", "CANCELLED"], None).await;
    let confirmed = [&ra, &rb]
        .iter()
        .filter(|o| o["status"] == "CONFIRMED")
        .count();
    assert_eq!(
        confirmed, 1,
        "exactly one order gets the last unit: {ra} {rb}"
    );
    let stock = product_stock(&client, &product).await;
    assert_eq!(stock, (1, 1, 0), "stock is 0, never -1");
}

#[tokio::test]
async fn a_retried_checkout_with_a_key_places_one_order() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 100, 5).await;
    let (_, _, token) = new_customer(&client).await;
    let cart = customer_cart(&client, &token, &product, 1).await;
    let checkout = "mutation($c: ID!) { checkout(cartId: $c, idempotencyKey: \"k-1\", payment: { number: \"4242424242424242\", expMonth: 12, expYear: 2099, cvc: \"123\" }) { orderId cartVersion } }";
    let first = gql_as(&client, &token, checkout, json!({ "c": cart })).await;
    let second = gql_as(&client, &token, checkout, json!({ "c": cart })).await;
    assert_eq!(first["data"], second["data"], "{first} {second}");
    let order = first["data"]["checkout"]["orderId"].as_str().unwrap();
    order_in(&client, &token, order, &["CONFIRMED"], Some("CAPTURED")).await;
}
