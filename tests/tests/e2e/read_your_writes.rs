//! Read-your-writes through Envoy: a mutation's `version` passed as `atLeastVersion` to the
//! next query returns the new state at once (the wait is woken by the projector's NOTIFY);
//! a version the read model never reaches gets `STALE` after the bounded wait.

use crate::common::*;
use serde_json::json;

const CART_AT_LEAST: &str = "query($id: ID!, $v: Int!) {
    cart(id: $id, atLeastVersion: $v) { version itemCount } }";

#[tokio::test]
async fn a_query_with_at_least_version_sees_the_mutation_100_times_in_a_row() {
    let client = http();
    let cart = create_cart(&client).await;
    let product = new_id();
    for i in 1..=100i64 {
        let body = gql(
            &client,
            ADD_ITEM,
            json!({ "c": cart, "p": product, "q": 1 }),
        )
        .await;
        let version = body["data"]["addItemToCart"]["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{body}"));
        let body = gql(&client, CART_AT_LEAST, json!({ "id": cart, "v": version })).await;
        assert_eq!(
            body["data"]["cart"]["version"], version,
            "round {i}: {body}"
        );
        assert_eq!(body["data"]["cart"]["itemCount"], i, "round {i}: {body}");
    }
}

#[tokio::test]
async fn a_version_never_reached_is_stale() {
    let client = http();
    let cart = create_cart(&client).await;
    let body = gql(&client, CART_AT_LEAST, json!({ "id": cart, "v": 1000 })).await;
    assert_eq!(error_code(&body).as_deref(), Some("STALE"), "{body}");
}
