//! Disaster recovery: the broker loses every record (the local broker keeps them in memory,
//! so restarting it is the disaster). `commerce kafka republish --from-store` refills the
//! topics from the event store, `projections rebuild <name> --adopt-offsets` rebuilds every
//! read model from them, the checkout saga skips to the end, and every read model equals
//! the one before; new commands flow through afterwards.

use crate::cli_common::*;
use crate::common::*;
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::time::Duration;

const MODELS: &[(&str, &str)] = &[
    ("carts", "id"),
    ("cart_lines", "cart_id, product_id"),
    ("products", "id"),
    ("reviews", "product_id, customer_id"),
    ("orders", "id"),
    ("order_lines", "order_id, position"),
    ("payments", "id"),
    ("order_timeline", "order_id, version"),
];

const PROJECTORS: &[&str] = &[
    "cart-projector",
    "product-projector",
    "order-projector",
    "checkout-saga",
    "notification-projector",
];

async fn snapshot(pool: &sqlx::PgPool) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for (t, order) in MODELS {
        all.push(table_rows(pool, t, order).await);
    }
    all
}

#[tokio::test]
async fn republish_from_the_store_and_rebuild_restore_every_read_model() {
    let client = http();
    let pool = pg().await;
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1500, 50).await;
    let (_, _, token) = new_customer(&client).await;
    let order = buy(&client, &token, &product, 2, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    let cart = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 3 }),
    )
    .await;
    cart_at_version(&client, &cart, 2).await;
    for name in ["cart", "product", "order", "checkout-saga", "notification"] {
        poll(
            &format!("{name} caught up"),
            Duration::from_secs(60),
            || async {
                let (events, _, _) = projection_lag(name).await;
                (events == 0).then_some(())
            },
        )
        .await;
    }
    let before = snapshot(&pool).await;

    // The disaster: the projectors are stopped, the broker restarts empty.
    for &s in PROJECTORS {
        stack(&["stop", s]);
    }
    stack(&["restart", "tansu"]);

    let published = commerce_json(&["kafka", "republish", "--from-store"]).await;
    let events = mongo_events().await;
    for p in published.as_array().unwrap() {
        let stored = events
            .count_documents(doc! { "stream_type": p["aggregate"].as_str().unwrap() })
            .await
            .unwrap();
        assert_eq!(p["events"].as_u64().unwrap(), stored, "{p}");
    }
    // Every stored event of the order is on Kafka again.
    let mine = read_topic_until("commerce.order.events", Duration::from_secs(30), |r| {
        !stream_records(r, &order).is_empty()
    });
    assert!(!stream_records(&mine, &order).is_empty());

    for name in ["cart", "product", "order"] {
        let report = commerce_json(&["projections", "rebuild", name, "--adopt-offsets"]).await;
        assert!(report["events"].as_i64().unwrap() > 0, "{report}");
    }
    // The process managers' effects are done: they skip what was republished.
    for name in ["checkout-saga", "notification"] {
        commerce_json(&["projections", "reset", name, "--to-end"]).await;
    }
    for &s in PROJECTORS {
        stack(&["start", s]);
    }
    assert_eq!(snapshot(&pool).await, before, "every read model restored");

    // The system works on: a new cart, and a new order through the saga.
    let cart = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    cart_at_version(&client, &cart, 2).await;
    let order = buy(&client, &token, &product, 1, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    for name in ["cart", "product", "order"] {
        let checks = commerce_json(&["projections", "verify", name]).await;
        for t in checks.as_array().unwrap() {
            assert_eq!(t["differences"], json!([]), "{name}: {t}");
        }
    }
}
