//! The checkout saga end to end, through Envoy: a good card confirms and captures, a declined
//! card or missing stock cancels and compensates (and the cart is open again with its lines
//! for another try), two customers racing for the last unit get exactly one order, the back
//! office ships, delivers and refunds (in part, never more than was paid), and cancelling a
//! paid order refunds it in full.

use crate::common::*;
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
    let checkout = "mutation($c: ID!, $t: String!) { checkout(cartId: $c, idempotencyKey: \"k-1\", paymentToken: $t) { orderId cartVersion } }";
    let t = card_token(&client, GOOD_CARD).await;
    let first = gql_as(&client, &token, checkout, json!({ "c": cart, "t": t })).await;
    let second = gql_as(&client, &token, checkout, json!({ "c": cart, "t": t })).await;
    assert_eq!(first["data"], second["data"], "{first} {second}");
    let order = first["data"]["checkout"]["orderId"].as_str().unwrap();
    order_in(&client, &token, order, &["CONFIRMED"], Some("CAPTURED")).await;
}

const CANCEL: &str =
    "mutation($o: ID!) { cancelOrder(orderId: $o, reason: \"changed my mind\") { version } }";
const REFUND_SOME: &str =
    "mutation($o: ID!, $a: Int!) { refundPayment(orderId: $o, amountMinor: $a) { version } }";
const CART_OF: &str =
    "query($id: ID!) { cart(id: $id) { status version lines { productId quantity } } }";

/// Polls the order until its payment has `refunded` minor units refunded and `status`.
async fn payment_refunded(
    client: &reqwest::Client,
    token: &str,
    order: &str,
    refunded: i64,
    status: &str,
) -> serde_json::Value {
    poll(
        &format!("payment of {order} {status} with {refunded} refunded"),
        std::time::Duration::from_secs(60),
        || async {
            let body = gql_as(client, token, ORDER, json!({ "id": order })).await;
            let o = body["data"]["order"].clone();
            (o["payment"]["refundedMinor"] == refunded && o["payment"]["status"] == status)
                .then_some(o)
        },
    )
    .await
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_in_full() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1250, 5).await;
    let (_, _, token) = new_customer(&client).await;
    let order = buy(&client, &token, &product, 2, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;

    let body = gql_as(&client, &token, CANCEL, json!({ "o": order })).await;
    assert!(body["data"]["cancelOrder"]["version"].is_i64(), "{body}");
    let o = payment_refunded(&client, &token, &order, 2500, "REFUNDED").await;
    assert_eq!(o["status"], "CANCELLED", "{o}");
    assert_eq!(o["payment"]["captures"], 1, "{o}");
    poll("stock back", std::time::Duration::from_secs(30), || async {
        (product_stock(&client, &product).await == (5, 0, 5)).then_some(())
    })
    .await;
    // Nothing is left to refund.
    let body = gql_as(&client, &admin, REFUND_SOME, json!({ "o": order, "a": 1 })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FAILED_PRECONDITION"),
        "{body}"
    );
}

#[tokio::test]
async fn partial_refunds_up_to_what_was_captured_then_cancelling_refunds_the_rest() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1000, 5).await;
    let (_, _, token) = new_customer(&client).await;
    let order = buy(&client, &token, &product, 3, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;

    for amount in [700, 1300] {
        let body = gql_as(
            &client,
            &admin,
            REFUND_SOME,
            json!({ "o": order, "a": amount }),
        )
        .await;
        assert!(body["data"]["refundPayment"]["version"].is_i64(), "{body}");
    }
    payment_refunded(&client, &token, &order, 2000, "CAPTURED").await;
    // More than is left (1000) is refused, and changes nothing.
    let body = gql_as(
        &client,
        &admin,
        REFUND_SOME,
        json!({ "o": order, "a": 1001 }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FAILED_PRECONDITION"),
        "{body}"
    );
    // Cancelling refunds the rest, and only the rest.
    let body = gql_as(&client, &token, CANCEL, json!({ "o": order })).await;
    assert!(body["data"]["cancelOrder"]["version"].is_i64(), "{body}");
    payment_refunded(&client, &token, &order, 3000, "REFUNDED").await;
    // The order's status and its payment are projected from two topics: wait for both.
    order_in(&client, &token, &order, &["CANCELLED"], Some("REFUNDED")).await;
    let body = gql_as(&client, &admin, REFUND_SOME, json!({ "o": order, "a": 1 })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FAILED_PRECONDITION"),
        "{body}"
    );
}

#[tokio::test]
async fn a_declined_card_reopens_the_cart_for_another_try() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 800, 3).await;
    let (_, _, token) = new_customer(&client).await;
    let cart = customer_cart(&client, &token, &product, 2).await;
    let checkout = CHECKOUT;
    let body = gql_as(
        &client,
        &token,
        checkout,
        json!({ "c": cart, "t": card_token(&client, DECLINED_CARD).await }),
    )
    .await;
    let declined = body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let o = order_in(&client, &token, &declined, &["CANCELLED"], Some("DECLINED")).await;
    assert!(
        o["cancelReason"]
            .as_str()
            .unwrap_or_default()
            .contains("declined"),
        "a reason is given: {o}"
    );
    // The cart is open again, with its lines.
    let view = poll(
        "the cart open again",
        std::time::Duration::from_secs(60),
        || async {
            let body = gql_as(&client, &token, CART_OF, json!({ "id": cart })).await;
            let c = body["data"]["cart"].clone();
            (c["status"] == "OPEN").then_some(c)
        },
    )
    .await;
    assert_eq!(
        lines_of(&view),
        [(product.clone(), 2)].into_iter().collect(),
        "{view}"
    );
    poll(
        "stock released",
        std::time::Duration::from_secs(30),
        || async { (product_stock(&client, &product).await == (3, 0, 3)).then_some(()) },
    )
    .await;
    // Another try with a good card goes through.
    let body = gql_as(
        &client,
        &token,
        checkout,
        json!({ "c": cart, "t": card_token(&client, GOOD_CARD).await }),
    )
    .await;
    let order = body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("second checkout: {body}"))
        .to_owned();
    assert_ne!(order, declined);
    let o = order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    assert_eq!(o["total"]["amountMinor"], 1600, "{o}");
}
