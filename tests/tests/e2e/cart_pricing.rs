//! A cart as a storefront shows it: `myCart` for the signed-in customer, each line with its
//! product, live unit price and line total, and the cart's subtotal, correct after every
//! change and after the catalogue reprices a product. And the catalogue's back office:
//! archived products listed for admins only, and put back on sale.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const MY_CART: &str = "{ myCart { id version itemCount
    lines { productId quantity product { name } unitPrice { amountMinor currency } lineTotal { amountMinor currency } }
    subtotal { amountMinor currency } } }";

/// Polls `myCart` until it reflects `version`; returns it.
async fn my_cart_at(client: &reqwest::Client, token: &str, version: u64) -> Value {
    poll(
        &format!("myCart at version {version}"),
        Duration::from_secs(30),
        || async {
            let body = gql_as(client, token, MY_CART, json!({})).await;
            let cart = body["data"]["myCart"].clone();
            (cart["version"].as_u64() >= Some(version)).then_some(cart)
        },
    )
    .await
}

fn subtotal(cart: &Value) -> Option<i64> {
    cart["subtotal"]["amountMinor"].as_i64()
}

fn line<'a>(cart: &'a Value, product: &str) -> &'a Value {
    cart["lines"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["productId"] == product))
        .unwrap_or_else(|| panic!("no line for {product} in {cart}"))
}

#[tokio::test]
async fn my_cart_shows_live_prices_and_totals_after_every_change() {
    let client = http();
    let admin = admin_token(&client).await;
    let mug = new_product(&client, &admin, 1250, 50).await;
    let cup = new_product(&client, &admin, 399, 50).await;
    let (_, _, token) = new_customer(&client).await;

    // Signed out: no cart to show. Signed in without a cart: null.
    let body = gql(&client, MY_CART, json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let body = gql_as(&client, &token, MY_CART, json!({})).await;
    assert!(body["data"]["myCart"].is_null(), "{body}");

    let cart = customer_cart(&client, &token, &mug, 2).await;
    let view = my_cart_at(&client, &token, 2).await;
    assert_eq!(view["id"], cart.as_str());
    assert_eq!(line(&view, &mug)["product"]["name"], "Mug");
    assert_eq!(line(&view, &mug)["unitPrice"]["amountMinor"], 1250);
    assert_eq!(line(&view, &mug)["lineTotal"]["amountMinor"], 2500);
    assert_eq!(
        view["subtotal"],
        json!({ "amountMinor": 2500, "currency": "EUR" })
    );

    let mut expected_version = 2;
    for (query, vars, want) in [
        (
            ADD_ITEM,
            json!({ "c": cart, "p": cup, "q": 3 }),
            2 * 1250 + 3 * 399,
        ),
        (
            CHANGE_QTY,
            json!({ "c": cart, "p": mug, "q": 1 }),
            1250 + 3 * 399,
        ),
        (REMOVE_ITEM, json!({ "c": cart, "p": cup }), 1250),
    ] {
        let body = gql_as(&client, &token, query, vars).await;
        assert!(body["errors"].is_null(), "{body}");
        expected_version += 1;
        let view = my_cart_at(&client, &token, expected_version).await;
        assert_eq!(subtotal(&view), Some(want), "{view}");
    }

    // The catalogue reprices the mug: the cart shows the price checkout would charge.
    let body = gql_as(
        &client,
        &admin,
        "mutation($id: ID!) { changeProductPrice(id: $id, priceMinor: 1400, currency: \"EUR\") { version } }",
        json!({ "id": mug }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let view = poll(
        "the new price in the cart",
        Duration::from_secs(30),
        || async {
            let body = gql_as(&client, &token, MY_CART, json!({})).await;
            let cart = body["data"]["myCart"].clone();
            (subtotal(&cart) == Some(1400)).then_some(cart)
        },
    )
    .await;
    assert_eq!(line(&view, &mug)["unitPrice"]["amountMinor"], 1400);

    // Another customer's token sees their own (absent) cart, never this one.
    let (_, _, other) = new_customer(&client).await;
    let body = gql_as(&client, &other, MY_CART, json!({})).await;
    assert!(body["data"]["myCart"].is_null(), "{body}");
}

const LIST: &str = "query($q: String!, $all: Boolean!) {
    products(query: $q, includeArchived: $all, first: 10) { edges { node { id archived } } } }";

fn listed(body: &Value, id: &str) -> Option<bool> {
    body["data"]["products"]["edges"]
        .as_array()?
        .iter()
        .find(|e| e["node"]["id"] == id)
        .and_then(|e| e["node"]["archived"].as_bool())
}

#[tokio::test]
async fn archived_products_are_listed_for_admins_and_can_be_put_back_on_sale() {
    let client = http();
    let admin = admin_token(&client).await;
    let name = format!("Lamp{}", uuid::Uuid::new_v4().simple());
    let body = gql_as(
        &client,
        &admin,
        "mutation($n: String!) { createProduct(input: { name: $n, priceMinor: 2000, currency: \"EUR\", initialStock: 5 }) { id } }",
        json!({ "n": name }),
    )
    .await;
    let id = body["data"]["createProduct"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let vars = |all: bool| json!({ "q": name, "all": all });
    poll("the lamp in search", Duration::from_secs(30), || async {
        listed(&gql(&client, LIST, vars(false)).await, &id)
    })
    .await;

    let body = gql_as(
        &client,
        &admin,
        "mutation($id: ID!) { archiveProduct(id: $id) { version } }",
        json!({ "id": id }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    poll(
        "the lamp archived, for admins",
        Duration::from_secs(30),
        || async {
            (listed(&gql_as(&client, &admin, LIST, vars(true)).await, &id) == Some(true))
                .then_some(())
        },
    )
    .await;
    // Shoppers no longer find it, and may not ask for archived products.
    assert_eq!(listed(&gql(&client, LIST, vars(false)).await, &id), None);
    let (_, _, customer) = new_customer(&client).await;
    let body = gql_as(&client, &customer, LIST, vars(true)).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let unarchive = "mutation($id: ID!) { unarchiveProduct(id: $id) { version } }";
    let body = gql_as(&client, &customer, unarchive, json!({ "id": id })).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");

    let body = gql_as(&client, &admin, unarchive, json!({ "id": id })).await;
    assert!(body["errors"].is_null(), "{body}");
    poll(
        "the lamp on sale again",
        Duration::from_secs(30),
        || async {
            (listed(&gql(&client, LIST, vars(false)).await, &id) == Some(false)).then_some(())
        },
    )
    .await;
    // Again: nothing to record, the same version back.
    let again = gql_as(&client, &admin, unarchive, json!({ "id": id })).await;
    assert_eq!(
        again["data"]["unarchiveProduct"]["version"], body["data"]["unarchiveProduct"]["version"],
        "{again}"
    );
}
