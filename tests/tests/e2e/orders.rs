//! Orders after checkout: the timeline reads as what happened, `orderAt` folds the event store
//! to any version or time, the back office lists and filters every order with cursor paging,
//! and notifications: exactly one per notifying order event, even after the notification
//! projection is replayed from the start of the topic.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const SHIP: &str = "mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"DHL\", trackingNumber: \"JD014600\") { version } }";
const DELIVER: &str = "mutation($o: ID!) { markDelivered(orderId: $o) { version } }";
const REFUND: &str =
    "mutation($o: ID!) { refundPayment(orderId: $o, amountMinor: 500) { version } }";

async fn ok(client: &reqwest::Client, token: &str, query: &str, order: &str) {
    let body = gql_as(client, token, query, json!({ "o": order })).await;
    assert!(body["errors"].is_null(), "{body}");
}

/// An order of two units at 15.00 EUR, confirmed, shipped, delivered and refunded 5.00.
async fn full_order(client: &reqwest::Client, admin: &str, customer: &str) -> String {
    let product = new_product(client, admin, 1500, 10).await;
    let order = buy(client, customer, &product, 2, GOOD_CARD).await;
    order_in(client, customer, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    ok(client, admin, SHIP, &order).await;
    ok(client, admin, DELIVER, &order).await;
    ok(client, admin, REFUND, &order).await;
    order
}

async fn timeline(client: &reqwest::Client, token: &str, order: &str, len: usize) -> Vec<Value> {
    poll("the order's timeline", Duration::from_secs(60), || async {
        let body = gql_as(
            client,
            token,
            "query($o: ID!) { order(id: $o) { timeline { version eventType summary actor occurredAt } } }",
            json!({ "o": order }),
        )
        .await;
        let t = body["data"]["order"]["timeline"].as_array().cloned()?;
        (t.len() >= len).then_some(t)
    })
    .await
}

const AT: &str = "query($o: ID!, $v: Int, $t: DateTime) { orderAt(id: $o, version: $v, at: $t) {
    status version asOf carrier trackingNumber refunded { amountMinor } total { amountMinor currency }
    lines { productId quantity unitPriceMinor } } }";

#[tokio::test]
async fn timeline_time_travel_and_the_back_office_list() {
    let client = http();
    let admin = admin_token(&client).await;
    let (customer_id, _, customer) = new_customer(&client).await;
    let (_, _, other) = new_customer(&client).await;
    let order = full_order(&client, &admin, &customer).await;

    // The timeline: every event in order, readable.
    let t = timeline(&client, &customer, &order, 7).await;
    let types: Vec<&str> = t.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "OrderStockReserved",
            "OrderPaymentAuthorized",
            "OrderConfirmed",
            "OrderShipped",
            "OrderDelivered",
            "OrderRefunded"
        ]
    );
    assert_eq!(t[0]["summary"], "Order placed: 2 items, 30.00 EUR");
    assert_eq!(
        t[4]["summary"],
        "Shipped with DHL, tracking number JD014600"
    );
    assert_eq!(t[6]["summary"], "Refunded 5.00 EUR (5.00 EUR in all)");
    assert!(t
        .iter()
        .enumerate()
        .all(|(i, e)| e["version"] == json!(i + 1)));

    // orderAt each version: the status the order had then.
    let statuses = [
        "PLACED",
        "STOCK_RESERVED",
        "PAYMENT_AUTHORIZED",
        "CONFIRMED",
        "SHIPPED",
        "DELIVERED",
        "DELIVERED",
    ];
    for (i, status) in statuses.iter().enumerate() {
        let v = i as i64 + 1;
        let body = gql_as(&client, &customer, AT, json!({ "o": order, "v": v })).await;
        let s = &body["data"]["orderAt"];
        assert_eq!(s["status"], json!(status), "at version {v}: {body}");
        assert_eq!(s["version"], json!(v));
        assert_eq!(s["total"]["amountMinor"], json!(3000));
        assert_eq!(s["carrier"].is_string(), v >= 5, "carrier at {v}");
        assert_eq!(s["refunded"].is_object(), v >= 7, "refund at {v}");
        let as_of: chrono::DateTime<chrono::Utc> = s["asOf"].as_str().unwrap().parse().unwrap();
        let happened: chrono::DateTime<chrono::Utc> =
            t[i]["occurredAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(as_of, happened, "asOf is when version {v} happened");
    }
    // At a time: everything that had happened by the shipment.
    let shipped_at = t[4]["occurredAt"].as_str().unwrap();
    let body = gql_as(
        &client,
        &customer,
        AT,
        json!({ "o": order, "t": shipped_at }),
    )
    .await;
    let s = &body["data"]["orderAt"];
    let v = s["version"].as_i64().unwrap_or_else(|| panic!("{body}"));
    assert!(v >= 5, "{body}");
    assert_eq!(s["status"], json!(statuses[v as usize - 1]));
    // The latest state equals the read model.
    let body = gql_as(&client, &customer, AT, json!({ "o": order, "v": 7 })).await;
    let latest = &body["data"]["orderAt"];
    let now = gql_as(&client, &customer, ORDER, json!({ "id": order })).await;
    let o = &now["data"]["order"];
    assert_eq!(latest["status"], o["status"]);
    assert_eq!(latest["total"], o["total"]);
    assert_eq!(latest["lines"][0]["productId"], o["lines"][0]["productId"]);
    assert_eq!(latest["lines"][0]["quantity"], o["lines"][0]["quantity"]);
    // Someone else's order, and a bad version, are refused.
    let body = gql_as(&client, &other, AT, json!({ "o": order, "v": 1 })).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let body = gql_as(&client, &customer, AT, json!({ "o": order, "v": 0 })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );

    // Two more orders of the customer's; one stays confirmed.
    let product = new_product(&client, &admin, 700, 10).await;
    let second = buy(&client, &customer, &product, 1, GOOD_CARD).await;
    let third = buy(&client, &customer, &product, 1, GOOD_CARD).await;
    for o in [&second, &third] {
        order_in(&client, &customer, o, &["CONFIRMED"], None).await;
    }
    let list = "query($f: OrderFilter, $first: Int, $after: String) { orders(filter: $f, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id status customerId placedAt } } } }";
    let by_customer = json!({ "customerId": customer_id });
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = gql_as(
            &client,
            &admin,
            list,
            json!({ "f": by_customer, "first": 1, "after": after }),
        )
        .await;
        let c = &body["data"]["orders"];
        assert_eq!(c["totalCount"], json!(3), "{body}");
        for e in c["edges"].as_array().unwrap() {
            assert_eq!(e["node"]["customerId"], json!(customer_id));
            let placed: chrono::DateTime<chrono::Utc> =
                e["node"]["placedAt"].as_str().unwrap().parse().unwrap();
            seen.push((placed, e["node"]["id"].as_str().unwrap().to_owned()));
        }
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    // Newest first (the saga may place two checkouts in either order), each once.
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "{seen:?}");
    let ids: BTreeSet<String> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([order.clone(), second.clone(), third.clone()])
    );

    let count = |f: Value| {
        let client = client.clone();
        let admin = admin.clone();
        async move {
            let body = gql_as(&client, &admin, list, json!({ "f": f, "first": 10 })).await;
            body["data"]["orders"]["totalCount"]
                .as_i64()
                .unwrap_or_else(|| panic!("{body}"))
        }
    };
    assert_eq!(
        count(json!({ "customerId": customer_id, "status": "DELIVERED" })).await,
        1
    );
    assert_eq!(
        count(json!({ "customerId": customer_id, "status": "CONFIRMED" })).await,
        2
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        count(json!({ "customerId": customer_id, "placedFrom": future })).await,
        0
    );
    assert_eq!(
        count(json!({ "customerId": customer_id, "placedTo": future })).await,
        3
    );

    // A customer lists their own orders only.
    let body = gql_as(
        &client,
        &other,
        "{ myOrders { totalCount edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["myOrders"]["totalCount"], json!(0), "{body}");
    let body = gql_as(
        &client,
        &customer,
        "{ myOrders(first: 2) { totalCount pageInfo { hasNextPage } edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["myOrders"]["totalCount"], json!(3), "{body}");
    assert_eq!(
        body["data"]["myOrders"]["pageInfo"]["hasNextPage"],
        json!(true)
    );
}

async fn notifications_of(client: &reqwest::Client, admin: &str, order: &str) -> Vec<Value> {
    let body = gql_as(
        client,
        admin,
        "query($o: ID!) { notifications(orderId: $o) { eventId kind recipient subject body } }",
        json!({ "o": order }),
    )
    .await;
    body["data"]["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn one_notification_per_order_event_even_after_a_replay() {
    let client = http();
    let admin = admin_token(&client).await;
    let (_, email, customer) = new_customer(&client).await;
    let order = full_order(&client, &admin, &customer).await;

    let kinds = [
        "ORDER_RECEIVED",
        "ORDER_CONFIRMATION",
        "SHIPMENT",
        "DELIVERY",
        "REFUND",
    ];
    let before = poll("five notifications", Duration::from_secs(60), || async {
        let n = notifications_of(&client, &admin, &order).await;
        (n.len() >= kinds.len()).then_some(n)
    })
    .await;
    assert_eq!(before.len(), kinds.len(), "{before:?}");
    let got: BTreeSet<&str> = before.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(got, kinds.iter().copied().collect());
    for n in &before {
        assert_eq!(n["recipient"], json!(email));
        assert!(
            n["body"]
                .as_str()
                .unwrap()
                .starts_with("Hello Test Customer,"),
            "{n}"
        );
    }
    let shipment = before.iter().find(|n| n["kind"] == "SHIPMENT").unwrap();
    assert!(shipment["body"].as_str().unwrap().contains("JD014600"));
    let mine = gql_as(
        &client,
        &customer,
        "{ myNotifications { kind } }",
        json!({}),
    )
    .await;
    assert_eq!(
        mine["data"]["myNotifications"].as_array().unwrap().len(),
        kinds.len()
    );

    // Replay: the projection forgets its checkpoints and reads the topics from the start.
    let pool = sqlx::PgPool::connect(&env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/commerce_test",
    ))
    .await
    .unwrap();
    stack(&["stop", "notification-projector"]);
    let checkpoints: Vec<(String, i32, i64)> = sqlx::query_as(
        "DELETE FROM projector_checkpoints WHERE projection = 'notification'
         RETURNING topic, partition, next_offset",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!checkpoints.is_empty());
    stack(&["start", "notification-projector"]);
    poll(
        "the replayed notification projection back where it was",
        Duration::from_secs(120),
        || async {
            let now: Vec<(String, i32, i64)> = sqlx::query_as(
                "SELECT topic, partition, next_offset FROM projector_checkpoints
                 WHERE projection = 'notification'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            checkpoints
                .iter()
                .all(|(t, p, o)| now.iter().any(|(t2, p2, o2)| t == t2 && p == p2 && o2 >= o))
                .then_some(())
        },
    )
    .await;
    let after = notifications_of(&client, &admin, &order).await;
    assert_eq!(after, before, "the replay sent nothing again");
    // Across the whole table: no order got any kind of notification twice (refunds aside:
    // an order may be refunded in parts; account mails belong to no order).
    let doubled: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, kind, count(*) FROM notifications
         WHERE kind <> 'refund' AND order_id IS NOT NULL
         GROUP BY order_id, kind HAVING count(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(doubled.is_empty(), "{doubled:?}");
}
