//! Failures keep their code at the edge, on the real processes: every id-taking field given
//! an id of another kind, a malformed, empty or very long id answers NOT_FOUND or
//! INVALID_ARGUMENT (never INTERNAL or UNAVAILABLE) and appends nothing; forged cursors are
//! INVALID_ARGUMENT; with the BFF stopped Envoy answers GraphQL-shaped JSON with
//! UNAVAILABLE; a backend stopped or killed mid-call is UNAVAILABLE; a read that waited for a
//! version not projected yet is STALE. The tests stop shared services, so they run one at a
//! time, and each puts the stack back as it found it.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Starts a service when dropped (no-op when it runs already), so a failed assertion still
/// leaves the stack whole for the next test binary.
struct Restart(&'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        stack(&["start", self.0]);
    }
}

/// Codes that tell a client to retry or that the server failed: never the answer to a bad id.
const SERVER_CODES: [&str; 2] = ["INTERNAL", "UNAVAILABLE"];

/// The codes of a response's errors (`None` for an error without a code).
fn codes(body: &Value) -> Vec<Option<String>> {
    body["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A field taking an id: the document (`$id` is the id under test) and whether the id is a
/// filter or a loose reference (a filter matches nothing for an id of another kind; a cart
/// line may name any product, priced only at checkout): there an answer is no error.
struct Field {
    name: &'static str,
    query: String,
    filter: bool,
}

fn field(name: &'static str, query: impl Into<String>) -> Field {
    Field {
        name,
        query: query.into(),
        filter: false,
    }
}

#[tokio::test]
async fn ids_of_the_wrong_kind_malformed_empty_or_huge_are_not_found_or_invalid_everywhere() {
    let _g = SERIAL.lock().await;
    let client = http();
    let admin = admin_token(&client).await;
    let (user, email, customer) = new_customer(&client).await;
    let product = new_product(&client, &admin, 700, 50).await;
    let order = buy(&client, &customer, &product, 1, GOOD_CARD).await;
    let order_view = order_in(&client, &customer, &order, &["CONFIRMED"], None).await;
    let cart = customer_cart(&client, &customer, &product, 2).await;
    poll("the cart projected", Duration::from_secs(60), || async {
        let body = gql_as(&client, &customer, CART, json!({ "id": cart })).await;
        body["data"]["cart"]["version"].as_u64()
    })
    .await;
    let payment = poll("the order's payment", Duration::from_secs(30), || async {
        let body = gql_as(
            &client,
            &admin,
            "query($id: ID!) { order(id: $id) { payment { id } } }",
            json!({ "id": order }),
        )
        .await;
        body["data"]["order"]["payment"]["id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert_eq!(order_view["status"], "CONFIRMED");

    // Every field that takes an id, with the other arguments valid.
    let p = &product;
    let o = &order;
    let c = &cart;
    let mut fields = vec![
        field("cart", "query($id: ID!) { cart(id: $id) { id } }"),
        field(
            "cartAt",
            "query($id: ID!) { cartAt(id: $id, version: 1) { id } }",
        ),
        field("order", "query($id: ID!) { order(id: $id) { id } }"),
        field(
            "orderAt",
            "query($id: ID!) { orderAt(id: $id, version: 1) { id } }",
        ),
        field("product", "query($id: ID!) { product(id: $id) { id } }"),
        field(
            "addItemToCart.cartId",
            format!("mutation($id: ID!) {{ addItemToCart(cartId: $id, productId: \"{p}\", quantity: 1) {{ version }} }}"),
        ),
        field(
            "changeCartItemQuantity.cartId",
            format!("mutation($id: ID!) {{ changeCartItemQuantity(cartId: $id, productId: \"{p}\", quantity: 3) {{ version }} }}"),
        ),
        field(
            "changeCartItemQuantity.productId",
            format!("mutation($id: ID!) {{ changeCartItemQuantity(cartId: \"{c}\", productId: $id, quantity: 3) {{ version }} }}"),
        ),
        field(
            "removeItemFromCart.cartId",
            format!("mutation($id: ID!) {{ removeItemFromCart(cartId: $id, productId: \"{p}\") {{ version }} }}"),
        ),
        field(
            "removeItemFromCart.productId",
            format!("mutation($id: ID!) {{ removeItemFromCart(cartId: \"{c}\", productId: $id) {{ version }} }}"),
        ),
        field(
            "clearCart",
            "mutation($id: ID!) { clearCart(cartId: $id) { version } }",
        ),
        field(
            "checkout",
            "mutation($id: ID!) { checkout(cartId: $id, paymentToken: \"pm_unused\") { orderId } }",
        ),
        field(
            "updateProduct",
            "mutation($id: ID!) { updateProduct(id: $id, input: { name: \"Cup\" }) { version } }",
        ),
        field(
            "changeProductPrice",
            "mutation($id: ID!) { changeProductPrice(id: $id, priceMinor: 900, currency: \"EUR\") { version } }",
        ),
        field(
            "archiveProduct",
            "mutation($id: ID!) { archiveProduct(id: $id) { version } }",
        ),
        field(
            "adjustStock",
            "mutation($id: ID!) { adjustStock(id: $id, delta: 1, reason: \"count\") { version } }",
        ),
        field(
            "cancelOrder",
            "mutation($id: ID!) { cancelOrder(orderId: $id, reason: \"no\") { version } }",
        ),
        field(
            "shipOrder",
            "mutation($id: ID!) { shipOrder(orderId: $id, carrier: \"DHL\", trackingNumber: \"T1\") { version } }",
        ),
        field(
            "markDelivered",
            "mutation($id: ID!) { markDelivered(orderId: $id) { version } }",
        ),
        field(
            "refundPayment",
            "mutation($id: ID!) { refundPayment(orderId: $id, amountMinor: 1) { version } }",
        ),
        field(
            "reviewProduct.productId",
            format!("mutation($id: ID!) {{ reviewProduct(productId: $id, orderId: \"{o}\", rating: 5) {{ version }} }}"),
        ),
        field(
            "reviewProduct.orderId",
            format!("mutation($id: ID!) {{ reviewProduct(productId: \"{p}\", orderId: $id, rating: 5) {{ version }} }}"),
        ),
    ];
    // Loose references change a cart of their own, not one of the streams checked below.
    let spare = customer_cart(&client, &customer, &product, 1).await;
    let add_any = format!("mutation($id: ID!) {{ addItemToCart(cartId: \"{spare}\", productId: $id, quantity: 1) {{ version }} }}");
    for (name, query) in [
        ("addItemToCart.productId", add_any.as_str()),
        (
            "createCart.customerId",
            "mutation($id: ID!) { createCart(customerId: $id) { cartId } }",
        ),
        (
            "orders.customerId",
            "query($id: ID!) { orders(filter: { customerId: $id }) { totalCount } }",
        ),
        (
            "notifications.orderId",
            "query($id: ID!) { notifications(orderId: $id) { kind } }",
        ),
        (
            "notifications.customerId",
            "query($id: ID!) { notifications(customerId: $id) { kind } }",
        ),
    ] {
        fields.push(Field {
            name,
            query: query.into(),
            filter: true,
        });
    }

    // Ids of every kind, each given where another kind belongs, and ids that are no id.
    let kinds = [
        ("user", user.clone()),
        ("cart", cart.clone()),
        ("order", order.clone()),
        ("product", product.clone()),
        ("payment", payment.clone()),
    ];
    let malformed = [
        ("random", new_id()),
        ("nil", "00000000-0000-0000-0000-000000000000".to_owned()),
        ("malformed", "not-an-id".to_owned()),
        ("empty", String::new()),
        ("blank", "   ".to_owned()),
        ("nul", format!("{}\u{0}", new_id())),
        ("quote", "'; DROP TABLE carts; --".to_owned()),
        ("huge", "7".repeat(100_000)),
    ];
    // What each field's own kind is (its right id is not under test here).
    let own = |f: &str| -> &'static str {
        if f.ends_with("orderId") {
            "order"
        } else if f.contains("productId")
            || f.contains("Product")
            || f == "product"
            || f == "adjustStock"
        {
            "product"
        } else if f.contains("customerId") {
            "user"
        } else if f.contains("cart") || f.contains("Cart") || f == "checkout" {
            "cart"
        } else {
            "order"
        }
    };
    let streams_before: Vec<usize> = {
        let mut v = Vec::new();
        for (_, id) in &kinds {
            v.push(stored_events(id).await.len());
        }
        v
    };

    let mut wrong = Vec::new();
    let mut checked = 0;
    for f in &fields {
        let ids = kinds
            .iter()
            .filter(|(k, _)| *k != own(f.name))
            .chain(malformed.iter());
        for (kind, id) in ids {
            let (status, body) = gql_raw_as(&client, &admin, &f.query, json!({ "id": id })).await;
            checked += 1;
            let got = codes(&body);
            let ok = status == 200
                && got.iter().all(|c| c.is_some())
                && !got
                    .iter()
                    .flatten()
                    .any(|c| SERVER_CODES.contains(&c.as_str()))
                && if f.filter {
                    // Matches nothing or is taken for an id of another kind, or refuses
                    // a malformed one.
                    got.is_empty()
                        || got
                            .iter()
                            .flatten()
                            .all(|c| c == "NOT_FOUND" || c == "INVALID_ARGUMENT")
                } else {
                    !got.is_empty()
                        && got
                            .iter()
                            .flatten()
                            .all(|c| c == "NOT_FOUND" || c == "INVALID_ARGUMENT")
                };
            if !ok {
                let shown: String = body.to_string().chars().take(300).collect();
                wrong.push(format!(
                    "{} with a {kind} id: HTTP {status} {shown}",
                    f.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The three that answered INTERNAL before, by name: NOT_FOUND.
    for (query, id) in [
        ("query($id: ID!) { orderAt(id: $id, version: 1) { id } }", &user),
        ("query($id: ID!) { cartAt(id: $id, version: 1) { id } }", &order),
        (
            &*format!("mutation($id: ID!) {{ reviewProduct(productId: \"{p}\", orderId: $id, rating: 5) {{ version }} }}"),
            &cart,
        ),
    ] {
        let body = gql_as(&client, &customer, query, json!({ "id": id })).await;
        assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{query}: {body}");
    }

    // Nothing was appended to any stream given where another kind belongs.
    for ((kind, id), before) in kinds.iter().zip(streams_before) {
        assert_eq!(
            stored_events(id).await.len(),
            before,
            "events appended to the {kind} stream {id}"
        );
    }
    // Logging in with an order's id as the anonymous cart to adopt: NOT_FOUND, and the order
    // is untouched.
    let before = stored_events(&order).await.len();
    let body = gql(
        &client,
        "mutation($e: String!, $c: ID!) { login(email: $e, password: \"s3cret-pass\", anonymousCartId: $c) { accessToken } }",
        json!({ "e": email, "c": order }),
    )
    .await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    assert_eq!(stored_events(&order).await.len(), before);
}

/// Posts with a bearer token; returns the HTTP status and the body (whatever the status).
async fn gql_raw_as(
    client: &reqwest::Client,
    token: &str,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    post_graphql(client, Some(token), query, &variables).await
}

/// A cursor of the right shape (base64url JSON, as the query service writes them) with a
/// key of the forger's choosing.
fn forged(sort: &str, key: &str) -> String {
    query_services::search::Cursor {
        sort: sort.into(),
        key: key.into(),
        id: uuid::Uuid::new_v4(),
    }
    .encode()
}

#[tokio::test]
async fn forged_cursors_are_invalid_arguments() {
    let _g = SERIAL.lock().await;
    let client = http();
    let admin = admin_token(&client).await;
    let (_, _, customer) = new_customer(&client).await;
    let products = |sort: &str, arg: &str| {
        format!(
            "query($c: String!) {{ products(sort: {sort}, {arg}: $c, {}: 5) {{ totalCount }} }}",
            if arg == "after" { "first" } else { "last" }
        )
    };
    let huge = "A".repeat(200_000);
    let cases: Vec<(String, String)> = vec![
        (products("NEWEST", "after"), "not a cursor".into()),
        (products("NEWEST", "after"), huge.clone()),
        (products("NEWEST", "after"), forged("NEWEST", "yesterday")),
        (
            products("NEWEST", "before"),
            forged("NEWEST", "2026-13-45 99:99:99+00"),
        ),
        (products("PRICE_ASC", "after"), forged("PRICE_ASC", "cheap")),
        (
            products("PRICE_DESC", "after"),
            forged("PRICE_DESC", "1e999"),
        ),
        (products("RATING", "after"), forged("RATING", "five stars")),
        (products("NAME", "after"), forged("NAME", "a\u{0}b")),
        (products("NAME", "after"), forged("PRICE_ASC", "100")),
        (
            "query($c: String!) { orders(first: 5, after: $c) { totalCount } }".into(),
            forged("ORDERS", "last tuesday"),
        ),
        (
            "query($c: String!) { orders(first: 5, after: $c) { totalCount } }".into(),
            huge.clone(),
        ),
        (
            "query($c: String!) { myOrders(first: 5, after: $c) { totalCount } }".into(),
            forged("ORDERS", "1"),
        ),
    ];
    let mut wrong = Vec::new();
    for (query, cursor) in &cases {
        let token = if query.contains("myOrders") {
            &customer
        } else {
            &admin
        };
        let (status, body) = gql_raw_as(&client, token, query, json!({ "c": cursor })).await;
        if status != 200 || error_code(&body).as_deref() != Some("INVALID_ARGUMENT") {
            let shown: String = cursor.chars().take(60).collect();
            wrong.push(format!("{query} after {shown:?}: HTTP {status} {body}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A real cursor still pages.
    let body = gql(
        &client,
        "{ products(sort: NEWEST, first: 1) { pageInfo { endCursor } } }",
        json!({}),
    )
    .await;
    if let Some(end) = body["data"]["products"]["pageInfo"]["endCursor"].as_str() {
        let body = gql(&client, &products("NEWEST", "after"), json!({ "c": end })).await;
        assert!(body["errors"].is_null(), "{body}");
    }
}

#[tokio::test]
async fn with_the_bff_down_envoy_answers_graphql_shaped_unavailable() {
    let _g = SERIAL.lock().await;
    let client = http();
    let restart = Restart("bff");
    stack(&["stop", "bff"]);
    let resp = client
        .post(graphql_url())
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("Envoy answers");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(error_code(&body).as_deref(), Some("UNAVAILABLE"), "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");

    drop(restart);
    // Healthy again through Envoy.
    poll("the BFF behind Envoy", Duration::from_secs(60), || async {
        let (status, body) = gql_raw(&client, "{ __typename }", json!({})).await;
        (status == 200 && body["data"]["__typename"].is_string()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_backend_stopped_or_killed_mid_call_is_unavailable() {
    let _g = SERIAL.lock().await;
    let client = http();
    let cart = create_cart(&client).await;
    cart_at_version(&client, &cart, 1).await;
    let wait = "query($id: ID!) { cart(id: $id, atLeastVersion: 99) { id } }";

    // Killed while the call waits in it (a read waiting for a version that never comes).
    {
        let _restart = Restart("cart-query");
        let call = {
            let client = client.clone();
            let cart = cart.clone();
            tokio::spawn(async move { gql_raw(&client, wait, json!({ "id": cart })).await })
        };
        // The call is in flight for about 2 s (the read wait); the kill lands inside it or,
        // at worst, just before it reaches the backend: either way the answer must be
        // UNAVAILABLE.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack(&["kill", "cart-query"]);
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body).as_deref(), Some("UNAVAILABLE"), "{body}");

        // Down: refused connections are UNAVAILABLE too.
        let (_, body) = gql_raw(&client, CART, json!({ "id": cart })).await;
        assert_eq!(error_code(&body).as_deref(), Some("UNAVAILABLE"), "{body}");
    }
    // Back: the same read answers.
    let back = cart_at_version(&client, &cart, 1).await;
    assert_eq!(back["id"], json!(cart));
}

#[tokio::test]
async fn a_read_waiting_for_a_version_not_projected_yet_is_stale() {
    let _g = SERIAL.lock().await;
    let client = http();
    let q = "query($id: ID!, $v: Int) { cart(id: $id, atLeastVersion: $v) { id version } }";
    let cart = {
        let _restart = Restart("cart-projector");
        stack(&["stop", "cart-projector"]);
        let cart = create_cart(&client).await;
        let body = gql(&client, q, json!({ "id": cart, "v": 1 })).await;
        assert_eq!(error_code(&body).as_deref(), Some("STALE"), "{body}");
        // Without a version it is simply not there (yet).
        let body = gql(&client, q, json!({ "id": cart })).await;
        assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
        cart
    };
    // Projected once the projector is back; a version beyond the current one is STALE.
    let v = poll("the cart projected", Duration::from_secs(60), || async {
        let body = gql(&client, q, json!({ "id": cart, "v": 1 })).await;
        body["data"]["cart"]["version"].as_i64()
    })
    .await;
    assert_eq!(v, 1);
    let body = gql(&client, q, json!({ "id": cart, "v": 2 })).await;
    assert_eq!(error_code(&body).as_deref(), Some("STALE"), "{body}");
}
