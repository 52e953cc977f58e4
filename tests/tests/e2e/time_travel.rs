//! Time travel: `cartAt` at each version, folded from the event store with the domain's
//! `evolve`, equals what the read model showed at that version.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn shape(cart: &Value) -> (i64, String, i64, BTreeMap<String, i64>) {
    let lines = cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["productId"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    (
        cart["version"].as_i64().unwrap(),
        cart["status"].as_str().unwrap().to_owned(),
        cart["itemCount"].as_i64().unwrap(),
        lines,
    )
}

#[tokio::test]
async fn cart_at_each_version_equals_the_read_model_then() {
    let client = http();
    let cart = create_cart(&client).await;
    let (a, b, c) = (new_id(), new_id(), new_id());
    let steps = [
        (
            ADD_ITEM,
            json!({ "c": cart, "p": a, "q": 1 }),
            "addItemToCart",
        ),
        (
            ADD_ITEM,
            json!({ "c": cart, "p": b, "q": 2 }),
            "addItemToCart",
        ),
        (
            CHANGE_QTY,
            json!({ "c": cart, "p": a, "q": 5 }),
            "changeCartItemQuantity",
        ),
        (
            REMOVE_ITEM,
            json!({ "c": cart, "p": b }),
            "removeItemFromCart",
        ),
        (
            ADD_ITEM,
            json!({ "c": cart, "p": c, "q": 3 }),
            "addItemToCart",
        ),
        (
            ADD_ITEM,
            json!({ "c": cart, "p": a, "q": 1 }),
            "addItemToCart",
        ),
    ];
    let read = "query($id: ID!, $v: Int!) { cart(id: $id, atLeastVersion: $v) {
        version status itemCount lines { productId quantity } } }";
    let mut seen = vec![shape(
        &gql(&client, read, json!({ "id": cart, "v": 1 })).await["data"]["cart"],
    )];
    for (mutation, vars, field) in steps {
        let body = gql(&client, mutation, vars).await;
        let v = body["data"][field]["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{body}"));
        let body = gql(&client, read, json!({ "id": cart, "v": v })).await;
        seen.push(shape(&body["data"]["cart"]));
    }
    let at = "query($id: ID!, $v: Int) { cartAt(id: $id, version: $v) {
        version status itemCount lines { productId quantity } } }";
    for expected in &seen {
        let body = gql(&client, at, json!({ "id": cart, "v": expected.0 })).await;
        assert_eq!(&shape(&body["data"]["cartAt"]), expected, "{body}");
    }
    // By time: now is the latest state; a version of 0 is refused.
    let now = chrono::Utc::now().to_rfc3339();
    let body = gql(
        &client,
        "query($id: ID!, $t: DateTime) { cartAt(id: $id, at: $t) { version status itemCount lines { productId quantity } } }",
        json!({ "id": cart, "t": now }),
    )
    .await;
    assert_eq!(
        &shape(&body["data"]["cartAt"]),
        seen.last().unwrap(),
        "{body}"
    );
    let body = gql(&client, at, json!({ "id": cart, "v": 0 })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
}
