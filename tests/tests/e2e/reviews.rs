//! Reviews and ratings: only a customer who received the product (in a delivered order of
//! theirs) can review it, once, with 1 to 5 stars; refused reviews append nothing; the
//! catalogue's rating and review list, and the rating sort, follow; public reviews name the
//! reviewer by a display name ("Test C."), never by customer or order id.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const REVIEW: &str = "mutation($p: ID!, $o: ID!, $r: Int!) {
  reviewProduct(productId: $p, orderId: $o, rating: $r, title: \"Solid\", body: \"Does the job.\") { version } }";

async fn review(
    client: &reqwest::Client,
    token: &str,
    product: &str,
    order: &str,
    rating: i64,
) -> Value {
    gql_as(
        client,
        token,
        REVIEW,
        json!({ "p": product, "o": order, "r": rating }),
    )
    .await
}

async fn delivered_order(
    client: &reqwest::Client,
    admin: &str,
    token: &str,
    product: &str,
) -> String {
    let order = buy(client, token, product, 1, GOOD_CARD).await;
    order_in(client, token, &order, &["CONFIRMED"], None).await;
    for m in [
        "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"UPS\", trackingNumber: \"1Z\") { version } }",
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
    ] {
        let body = gql_as(client, admin, m, json!({ "o": order })).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    order
}

async fn product_version(client: &reqwest::Client, product: &str) -> i64 {
    let body = gql(
        client,
        "query($p: ID!) { product(id: $p) { version } }",
        json!({ "p": product }),
    )
    .await;
    body["data"]["product"]["version"].as_i64().unwrap()
}

#[tokio::test]
async fn only_customers_who_received_a_product_review_it_once() {
    let client = http();
    let admin = admin_token(&client).await;
    let category = format!("reviews-{}", uuid::Uuid::new_v4().simple());
    let mut products = Vec::new();
    for name in ["Reviewed kettle", "Unreviewed kettle"] {
        let body = gql_as(
            &client,
            &admin,
            "mutation($n: String!, $c: String!) { createProduct(input: { name: $n, categories: [$c], priceMinor: 2500, currency: \"EUR\", initialStock: 20 }) { id } }",
            json!({ "n": name, "c": category }),
        )
        .await;
        let id = body["data"]["createProduct"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        product_stock(&client, &id).await;
        products.push(id);
    }
    let (kettle, other_kettle) = (products[0].clone(), products[1].clone());

    let (_, _, ada) = new_customer(&client).await;
    let (_, _, bob) = new_customer(&client).await;
    let (_, _, cyd) = new_customer(&client).await;
    let ada_order = delivered_order(&client, &admin, &ada, &kettle).await;
    // Cyd's order is paid but not delivered yet.
    let cyd_order = buy(&client, &cyd, &kettle, 1, GOOD_CARD).await;
    order_in(&client, &cyd, &cyd_order, &["CONFIRMED"], None).await;

    let before = product_version(&client, &kettle).await;
    for (token, order, rating, code, why) in [
        (&bob, &ada_order, 4, "FORBIDDEN", "someone else's order"),
        (&cyd, &cyd_order, 4, "FORBIDDEN", "not delivered yet"),
        (&ada, &ada_order, 0, "INVALID_ARGUMENT", "zero stars"),
        (&ada, &ada_order, 6, "INVALID_ARGUMENT", "six stars"),
    ] {
        let body = review(&client, token, &kettle, order, rating).await;
        assert_eq!(error_code(&body).as_deref(), Some(code), "{why}: {body}");
    }
    // A delivered order that does not hold this product proves nothing about it.
    let body = review(&client, &ada, &other_kettle, &ada_order, 5).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let (_, anonymous) = gql_raw(
        &client,
        REVIEW,
        json!({ "p": kettle, "o": ada_order, "r": 5 }),
    )
    .await;
    assert_eq!(error_code(&anonymous).as_deref(), Some("UNAUTHENTICATED"));
    assert_eq!(
        product_version(&client, &kettle).await,
        before,
        "nothing appended"
    );

    // Ada reviews once; a second review is refused.
    let body = review(&client, &ada, &kettle, &ada_order, 5).await;
    assert!(body["data"]["reviewProduct"]["version"].is_i64(), "{body}");
    let body = review(&client, &ada, &kettle, &ada_order, 1).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("ALREADY_EXISTS"),
        "{body}"
    );

    // Cyd, once delivered, reviews too.
    for m in [
        "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"UPS\", trackingNumber: \"1Z\") { version } }",
        "mutation($o: ID!) { markDelivered(orderId: $o) { version } }",
    ] {
        gql_as(&client, &admin, m, json!({ "o": cyd_order })).await;
    }
    let body = poll(
        "Cyd's order delivered in the store",
        Duration::from_secs(30),
        || async {
            let body = review(&client, &cyd, &kettle, &cyd_order, 2).await;
            body["data"]["reviewProduct"]["version"]
                .is_i64()
                .then_some(body)
        },
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");

    // The catalogue shows the rating and the reviews, and sorts by rating.
    let shown = poll("two reviews in the catalogue", Duration::from_secs(30), || async {
        let body = gql(
            &client,
            "query($p: ID!) { product(id: $p) { rating { average count } reviews { rating title body reviewerName } } }",
            json!({ "p": kettle }),
        )
        .await;
        let p = body["data"]["product"].clone();
        (p["rating"]["count"] == json!(2)).then_some(p)
    })
    .await;
    assert_eq!(shown["rating"]["average"], json!(3.5));
    let mut stars: Vec<i64> = shown["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rating"].as_i64().unwrap())
        .collect();
    stars.sort();
    assert_eq!(stars, vec![2, 5]);
    assert_eq!(shown["reviews"][0]["title"], json!("Solid"));
    for r in shown["reviews"].as_array().unwrap() {
        assert_eq!(r["reviewerName"], json!("Test C."), "{r}");
    }
    let body = gql(
        &client,
        "{ __type(name: \"Review\") { fields { name } } }",
        json!({}),
    )
    .await;
    let fields: Vec<&str> = body["data"]["__type"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"reviewerName"), "{fields:?}");
    for id_field in ["customerId", "orderId"] {
        assert!(
            !fields.contains(&id_field),
            "a public review shows {id_field}"
        );
    }
    let body = gql(
        &client,
        "query($c: String!) { products(filter: { category: $c }, sort: RATING) { edges { node { id rating { average } } } } }",
        json!({ "c": category }),
    )
    .await;
    let order: Vec<&str> = body["data"]["products"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![kettle.as_str(), other_kettle.as_str()],
        "{body}"
    );
}
