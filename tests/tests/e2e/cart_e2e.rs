//! The cart end to end, through Envoy with plain HTTP GraphQL requests: the read model, the
//! records on Kafka and the documents in MongoDB agree; concurrent writers lose nothing; bad
//! input is refused with the right code and appends nothing.

use crate::common::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn cart_lifecycle_reaches_read_model_kafka_and_store() {
    let client = http();
    let cart = create_cart(&client).await;
    let products: Vec<String> = (0..3).map(|_| new_id()).collect();
    let mut version = 1;
    for (i, p) in products.iter().enumerate() {
        let body = gql(&client, ADD_ITEM, json!({ "c": cart, "p": p, "q": i + 1 })).await;
        version += 1;
        assert_eq!(body["data"]["addItemToCart"]["version"], version, "{body}");
    }
    let body = gql(
        &client,
        CHANGE_QTY,
        json!({ "c": cart, "p": products[0], "q": 7 }),
    )
    .await;
    assert_eq!(
        body["data"]["changeCartItemQuantity"]["version"], 5,
        "{body}"
    );
    let body = gql(&client, REMOVE_ITEM, json!({ "c": cart, "p": products[1] })).await;
    assert_eq!(body["data"]["removeItemFromCart"]["version"], 6, "{body}");

    // The read model reaches the final state.
    let view = cart_at_version(&client, &cart, 6).await;
    assert_eq!(view["version"], 6);
    assert_eq!(view["status"], "OPEN");
    assert_eq!(view["itemCount"], 7 + 3);
    let lines: Vec<(String, i64)> = view["lines"]
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
    assert_eq!(
        lines,
        vec![(products[0].clone(), 7), (products[2].clone(), 3)]
    );

    // Kafka holds the cart's six events as CloudEvents, versions 1..6 in order, and they
    // are the documents of the store.
    let records = tokio::task::spawn_blocking({
        let cart = cart.clone();
        move || {
            read_topic_until("commerce.cart.events", Duration::from_secs(30), |rs| {
                stream_records(rs, &cart).len() >= 6
            })
        }
    })
    .await
    .unwrap();
    let mine = stream_records(&records, &cart);
    let versions: Vec<i64> = mine
        .iter()
        .map(|r| r.value["streamversion"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6]);
    assert!(mine.iter().all(|r| r.partition == mine[0].partition));
    let types: Vec<&str> = mine
        .iter()
        .map(|r| r.value["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "commerce.cart.CartCreated",
            "commerce.cart.CartItemAdded",
            "commerce.cart.CartItemAdded",
            "commerce.cart.CartItemAdded",
            "commerce.cart.CartItemQuantityChanged",
            "commerce.cart.CartItemRemoved",
        ]
    );
    let docs = stored_events(&cart).await;
    assert_records_match_store(&mine, &docs);
}

#[tokio::test]
async fn concurrent_adds_on_one_cart_lose_nothing() {
    let client = http();
    let cart = create_cart(&client).await;
    let products: Vec<String> = (0..4).map(|_| new_id()).collect();
    let calls = (0..32).map(|i| {
        let client = client.clone();
        let cart = cart.clone();
        let product = products[i % 4].clone();
        let qty = 1 + (i % 3) as i64;
        async move {
            let (status, body) = gql_raw(
                &client,
                ADD_ITEM,
                json!({ "c": cart, "p": product, "q": qty }),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let ok = body["data"]["addItemToCart"]["version"].as_u64();
            if ok.is_none() {
                assert_eq!(error_code(&body).as_deref(), Some("CONFLICT"), "{body}");
            }
            (product, qty, ok)
        }
    });
    let results = futures::future::join_all(calls).await;
    let succeeded: Vec<_> = results.iter().filter(|r| r.2.is_some()).collect();
    assert!(!succeeded.is_empty());

    // No version gaps or duplicates in the store: 1 (created) + one event per success.
    let docs = stored_events(&cart).await;
    let versions: Vec<i64> = docs.iter().map(|d| d.get_i64("version").unwrap()).collect();
    let expected: Vec<i64> = (1..=1 + succeeded.len() as i64).collect();
    assert_eq!(versions, expected, "store versions");
    let mut reported: Vec<u64> = succeeded.iter().map(|r| r.2.unwrap()).collect();
    reported.sort_unstable();
    reported.dedup();
    assert_eq!(
        reported.len(),
        succeeded.len(),
        "two successes reported one version"
    );

    // Every success is in the final state, and quantities add up.
    let mut want: HashMap<String, i64> = HashMap::new();
    for (p, q, _) in &succeeded {
        *want.entry(p.clone()).or_default() += q;
    }
    let view = cart_at_version(&client, &cart, 1 + succeeded.len() as u64).await;
    let got: HashMap<String, i64> = view["lines"]
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
    assert_eq!(got, want);
    assert_eq!(view["itemCount"], want.values().sum::<i64>());
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_appends_nothing() {
    let client = http();
    let cart = create_cart(&client).await;
    let product = new_id();

    // A negative quantity.
    let (status, body) = gql_raw(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": product, "q": -2 }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
    // Zero and too many.
    for q in [0, 1_000_000] {
        let (_, body) = gql_raw(
            &client,
            ADD_ITEM,
            json!({ "c": cart, "p": product, "q": q }),
        )
        .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{body}"
        );
    }
    // Changing a line that is not there.
    let (_, body) = gql_raw(
        &client,
        CHANGE_QTY,
        json!({ "c": cart, "p": product, "q": 2 }),
    )
    .await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    assert_eq!(
        stored_events(&cart).await.len(),
        1,
        "nothing appended to the cart"
    );

    // An unknown cart.
    let unknown = new_id();
    let (status, body) = gql_raw(
        &client,
        ADD_ITEM,
        json!({ "c": unknown, "p": product, "q": 1 }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    let (_, body) = gql_raw(&client, CART, json!({ "id": unknown })).await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    assert!(
        stored_events(&unknown).await.is_empty(),
        "nothing appended for an unknown cart"
    );

    // A malformed id, as a mutation argument and as a query argument.
    let (status, body) = gql_raw(
        &client,
        ADD_ITEM,
        json!({ "c": "not-a-uuid", "p": product, "q": 1 }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
    let (_, body) = gql_raw(&client, CART, json!({ "id": "42" })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );

    // Internals never leak, and engine errors carry a code too.
    let (status, body) = gql_raw(&client, "{ nope }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
}

#[tokio::test]
async fn an_idempotency_key_applies_a_command_once() {
    let client = http();
    let cart = create_cart(&client).await;
    let product = new_id();
    let key = new_id();
    let query = "mutation($c: ID!, $p: ID!, $k: String!) {
        addItemToCart(cartId: $c, productId: $p, quantity: 2, idempotencyKey: $k) { version } }";
    let vars = json!({ "c": cart, "p": product, "k": key });
    let first = gql(&client, query, vars.clone()).await;
    let second = gql(&client, query, vars).await;
    assert_eq!(first["data"]["addItemToCart"]["version"], 2, "{first}");
    assert_eq!(second["data"], first["data"]);
    assert_eq!(stored_events(&cart).await.len(), 2);
    let view = cart_at_version(&client, &cart, 2).await;
    assert_eq!(view["itemCount"], 2);
}
