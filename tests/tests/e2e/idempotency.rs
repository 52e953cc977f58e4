//! Idempotency keys end to end: a key belongs to one stream and one caller, and is looked up
//! only after the caller was authorized. Another customer's command with the same key
//! applies normally; a customer cannot reach another's result with it; a client key shaped
//! like one of the checkout saga's keys changes nothing in the saga (the checkout still
//! reserves its stock); a retried keyed creation names the same cart or product.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const CREATE_KEYED: &str =
    "mutation($k: String) { createCart(idempotencyKey: $k) { cartId version } }";
const ADD_KEYED: &str = "mutation($c: ID!, $p: ID!, $q: Int!, $k: String) {
    addItemToCart(cartId: $c, productId: $p, quantity: $q, idempotencyKey: $k) { cartId version } }";

/// The order id the BFF derives for a customer's checkout with an idempotency key.
fn derived_order_id(customer: &str, key: &str) -> String {
    let digest = platform::auth::sha256_hex(&format!("{customer}:{key}"));
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digest[2 * i..2 * i + 2], 16).unwrap();
    }
    uuid::Uuid::new_v8(bytes).to_string()
}

#[tokio::test]
async fn a_key_another_customer_used_applies_normally_for_them() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 300, 10).await;
    let (_, _, a) = new_customer(&client).await;
    let (b_id, _, b) = new_customer(&client).await;
    let key = new_id();

    // createCart: the same key gives each customer their own cart, and A's retry A's.
    let first = gql_as(&client, &a, CREATE_KEYED, json!({ "k": key })).await;
    let cart_a = first["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let other = gql_as(&client, &b, CREATE_KEYED, json!({ "k": key })).await;
    let cart_b = other["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap_or_else(|| panic!("{other}"))
        .to_owned();
    assert_ne!(cart_a, cart_b, "B's createCart applies for B");
    let retry = gql_as(&client, &a, CREATE_KEYED, json!({ "k": key })).await;
    assert_eq!(retry["data"], first["data"], "A's retry names A's cart");
    let stored_b = stored_events(&cart_b).await;
    assert_eq!(stored_b.len(), 1);
    assert_eq!(
        stored_b[0]
            .get_document("data")
            .unwrap()
            .get_str("customer_id")
            .unwrap(),
        b_id,
        "B's cart is B's"
    );

    // addItemToCart: A uses a key, then B uses it on B's cart: it applies for B.
    let add = |cart: &str, q: i64| json!({ "c": cart, "p": product, "q": q, "k": key });
    let body = gql_as(&client, &a, ADD_KEYED, add(&cart_a, 1)).await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    let body = gql_as(&client, &b, ADD_KEYED, add(&cart_b, 3)).await;
    assert_eq!(
        body["data"]["addItemToCart"]["cartId"],
        cart_b.as_str(),
        "{body}"
    );
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    assert_eq!(
        stored_events(&cart_b).await.len(),
        2,
        "B's item was appended"
    );
    let view = poll(
        "B's cart with B's line",
        Duration::from_secs(30),
        || async {
            let body = gql_as(&client, &b, CART, json!({ "id": cart_b })).await;
            let c = body["data"]["cart"].clone();
            (c["version"] == 2).then_some(c)
        },
    )
    .await;
    assert_eq!(lines_of(&view)[&product], 3);

    // A cannot get anything out of B's cart with the key: refused before it is looked up.
    let body = gql_as(&client, &a, ADD_KEYED, add(&cart_b, 1)).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    assert_eq!(stored_events(&cart_b).await.len(), 2);

    // A's own retry still gets A's first result and appends nothing.
    let body = gql_as(&client, &a, ADD_KEYED, add(&cart_a, 1)).await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    assert_eq!(stored_events(&cart_a).await.len(), 2);
}

#[tokio::test]
async fn a_client_key_shaped_like_a_saga_key_changes_nothing_in_the_saga() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 700, 10).await;
    let (customer, _, token) = new_customer(&client).await;

    // A delivered order lets the customer write to the product's stream (a review).
    let first = buy(&client, &token, &product, 1, GOOD_CARD).await;
    order_in(&client, &token, &first, &["CONFIRMED"], None).await;
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"DHL\", trackingNumber: \"1\") { version } }",
        json!({ "o": first }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    order_in(&client, &token, &first, &["SHIPPED"], None).await;
    let body = gql_as(
        &client,
        &admin,
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
        json!({ "o": first }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    order_in(&client, &token, &first, &["DELIVERED"], None).await;
    poll("stock committed", Duration::from_secs(30), || async {
        (product_stock(&client, &product).await == (9, 0, 9)).then_some(())
    })
    .await;

    // The next checkout's order id is predictable from the customer and the key: the review
    // takes the key the saga will use to reserve that order's stock.
    let checkout_key = new_id();
    let next_order = derived_order_id(&customer, &checkout_key);
    let saga_key = format!("saga:reserve:{next_order}:{product}");
    let body = gql_as(
        &client,
        &token,
        "mutation($p: ID!, $o: ID!, $k: String) { reviewProduct(productId: $p, orderId: $o, rating: 5, title: \"ok\", idempotencyKey: $k) { version } }",
        json!({ "p": product, "o": first, "k": saga_key }),
    )
    .await;
    assert!(
        body["errors"].is_null(),
        "the review itself is fine: {body}"
    );

    let cart = customer_cart(&client, &token, &product, 2).await;
    let body = gql_as(
        &client,
        &token,
        "mutation($c: ID!, $k: String, $t: String!) { checkout(cartId: $c, idempotencyKey: $k, paymentToken: $t) { orderId } }",
        json!({ "c": cart, "k": checkout_key, "t": card_token(&client, GOOD_CARD).await }),
    )
    .await;
    assert_eq!(
        body["data"]["checkout"]["orderId"],
        next_order.as_str(),
        "{body}"
    );
    order_in(
        &client,
        &token,
        &next_order,
        &["CONFIRMED"],
        Some("CAPTURED"),
    )
    .await;
    // The saga reserved the order's 2 units: its key was not the client's.
    poll("2 units reserved", Duration::from_secs(30), || async {
        (product_stock(&client, &product).await == (9, 2, 7)).then_some(())
    })
    .await;
    let reserved = stored_events(&product)
        .await
        .into_iter()
        .filter(|d| d.get_str("event_type").ok() == Some("StockReserved"))
        .filter(|d| {
            d.get_document("data")
                .ok()
                .and_then(|x| x.get_str("order_id").ok().map(str::to_owned))
                == Some(next_order.clone())
        })
        .count();
    assert_eq!(reserved, 1, "one StockReserved for the order in the store");
}

#[tokio::test]
async fn a_retried_keyed_product_creation_names_the_same_product() {
    let client = http();
    let admin = admin_token(&client).await;
    let key = new_id();
    let create = "mutation($k: String) { createProduct(input: { name: \"Keyed\", priceMinor: 5, currency: \"EUR\" }, idempotencyKey: $k) { id version } }";
    let first = gql_as(&client, &admin, create, json!({ "k": key })).await;
    let second = gql_as(&client, &admin, create, json!({ "k": key })).await;
    assert!(first["data"]["createProduct"]["id"].is_string(), "{first}");
    assert_eq!(second["data"], first["data"]);
    let id = first["data"]["createProduct"]["id"].as_str().unwrap();
    assert_eq!(stored_events(id).await.len(), 1);
    let other = gql_as(&client, &admin, create, json!({ "k": new_id() })).await;
    assert_ne!(
        other["data"]["createProduct"]["id"],
        first["data"]["createProduct"]["id"]
    );
}
