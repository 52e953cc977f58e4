//! The store is the truth, and the system heals from it, on the real processes:
//! - the broker stopped and started empty (the local broker keeps its log in memory): the
//!   relay notices, republishes from the store, the projections replay, and every earlier
//!   product, cart and order is readable again; new writes become visible;
//! - the whole stack down and up, data kept (the broker comes back empty): the same;
//! - the event store wiped while the read models stay (a new store under an old read side):
//!   the projectors notice by the store's identity and empty their read models, so nothing of
//!   the old store is served; new writes become visible;
//! - `scripts/stack.sh down --wipe` then up: an empty, working shop.
//!
//! The scenarios run in sequence in one test (so no scheduling of test threads can reorder
//! them), the wipes last, because they delete what the others created: on the shared stack,
//! since a second stack would cost minutes of both cores. The stack is left up and healthy
//! for the test binaries after this one.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// How long a replay of the whole store may take on a busy 2-core machine.
const HEAL: Duration = Duration::from_secs(240);

/// `scripts/stack.sh` with the test stack's environment, never wiping by itself (the test
/// stack is started with FRESH=1) and never building.
fn stack_keep(args: &[&str]) {
    let status = std::process::Command::new(repo_root().join("scripts/stack.sh"))
        .args(args)
        .env_remove("KAFKA_BROKERS")
        .env_remove("MONGODB_URI")
        .env_remove("DATABASE_URL")
        .env("FRESH", "0")
        .env("SKIP_BUILD", "1")
        .status()
        .expect("run scripts/stack.sh");
    assert!(status.success(), "scripts/stack.sh {args:?} failed");
}

/// What a shopper made before the restart.
struct Shop {
    product: String,
    token: String,
    cart: String,
    cart_version: u64,
    anonymous_cart: String,
    order: String,
}

async fn make_shop(client: &reqwest::Client) -> Shop {
    let admin = admin_token(client).await;
    let product = new_product(client, &admin, 700, 20).await;
    let (_, _, token) = new_customer(client).await;
    let cart = customer_cart(client, &token, &product, 2).await;
    let order = buy(client, &token, &product, 1, GOOD_CARD).await;
    order_in(client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    let anonymous_cart = create_cart(client).await;
    let body = gql(
        client,
        ADD_ITEM,
        json!({ "c": anonymous_cart, "p": product, "q": 3 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    cart_at_version(client, &anonymous_cart, 2).await;
    Shop {
        product,
        token,
        cart,
        cart_version: 2,
        anonymous_cart,
        order,
    }
}

/// Every earlier thing reads as it did, through GraphQL, within the heal deadline.
async fn assert_readable(client: &reqwest::Client, shop: &Shop) {
    poll("the product after the restart", HEAL, || async {
        let body = gql(
            client,
            "query($id: ID!) { product(id: $id) { id stock { onHand reserved } } }",
            json!({ "id": shop.product }),
        )
        .await;
        let s = &body["data"]["product"]["stock"];
        (s["onHand"] == 20 && s["reserved"] == 1).then_some(())
    })
    .await;
    poll("the anonymous cart after the restart", HEAL, || async {
        let body = gql(client, CART, json!({ "id": shop.anonymous_cart })).await;
        let c = &body["data"]["cart"];
        (c["version"] == 2 && c["lines"][0]["quantity"] == 3).then_some(())
    })
    .await;
    poll("the customer's cart after the restart", HEAL, || async {
        let body = gql_as(client, &shop.token, CART, json!({ "id": shop.cart })).await;
        let c = &body["data"]["cart"];
        (c["version"].as_u64() >= Some(shop.cart_version) && c["lines"][0]["quantity"] == 2)
            .then_some(())
    })
    .await;
    poll("the order after the restart", HEAL, || async {
        let body = gql_as(client, &shop.token, ORDER, json!({ "id": shop.order })).await;
        let o = &body["data"]["order"];
        (o["status"] == "CONFIRMED" && o["payment"]["status"] == "CAPTURED").then_some(())
    })
    .await;
}

/// New writes become visible: a product, a cart, and a whole checkout.
async fn assert_writable(client: &reqwest::Client) {
    let admin = admin_token(client).await;
    let product = new_product(client, &admin, 300, 5).await;
    let cart = create_cart(client).await;
    cart_at_version(client, &cart, 1).await;
    let (_, _, token) = new_customer(client).await;
    let order = buy(client, &token, &product, 1, GOOD_CARD).await;
    confirmed(client, &token, &order).await;
}

/// Polls an order until it is confirmed and captured, within the heal deadline (the saga
/// may be replaying the store first).
async fn confirmed(client: &reqwest::Client, token: &str, order: &str) {
    poll(&format!("order {order} confirmed"), HEAL, || async {
        let body = gql_as(client, token, ORDER, json!({ "id": order })).await;
        let o = &body["data"]["order"];
        (o["status"] == "CONFIRMED" && o["payment"]["status"] == "CAPTURED").then_some(())
    })
    .await;
}

/// A counter of an admin endpoint's metrics (0 when absent).
async fn metric(client: &reqwest::Client, admin_url_var: &str, default: &str, name: &str) -> f64 {
    let url = format!("{}/metrics", env(admin_url_var, default));
    let Ok(resp) = client.get(&url).send().await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The relay and the projectors report `ok` again once they have healed.
async fn assert_healthy(client: &reqwest::Client) {
    for (var, default) in [
        ("RELAY_ADMIN_URL", "http://127.0.0.1:19203"),
        ("CART_PROJECTOR_ADMIN_URL", "http://127.0.0.1:19204"),
    ] {
        let url = format!("{}/status", env(var, default));
        poll(&format!("{var} reports ok"), HEAL, || async {
            let body: serde_json::Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (body["state"] == "ok").then_some(())
        })
        .await;
    }
}

async fn a_broker_restarted_empty_is_refilled_from_the_store() {
    let client = http();
    let shop = make_shop(&client).await;
    let relay = ("RELAY_ADMIN_URL", "http://127.0.0.1:19203");
    let heals_before = metric(&client, relay.0, relay.1, "relay_heals_total").await;

    stack(&["stop", "tansu"]);
    stack(&["start", "tansu"]);

    // The relay notices by itself and says so.
    poll("the relay heals the lost topics", HEAL, || async {
        (metric(&client, relay.0, relay.1, "relay_heals_total").await > heals_before).then_some(())
    })
    .await;
    assert_readable(&client, &shop).await;
    assert_writable(&client).await;
    assert_healthy(&client).await;
}

async fn the_whole_stack_down_and_up_keeps_every_product_cart_and_order() {
    let client = http();
    let shop = make_shop(&client).await;

    stack_keep(&["down"]);
    stack_keep(&["up"]);
    // A new Envoy: connections kept alive to the old one are gone.
    let client = http();

    assert_readable(&client, &shop).await;
    assert_writable(&client).await;
    assert_healthy(&client).await;
}

async fn a_wiped_store_under_a_kept_read_side_is_never_served() {
    let client = http();
    let shop = make_shop(&client).await;

    // The store's data goes; PostgreSQL (the read models, the checkpoints) stays.
    stack_keep(&["down"]);
    let mongo = std::path::Path::new(&env("STACK_DIR", ".stack-test")).join("data/mongo");
    std::fs::remove_dir_all(&mongo).expect("remove the store's data");
    stack_keep(&["up"]);
    let client = http();

    // What the wiped store held is not served as if it were current.
    poll("the old product gone", HEAL, || async {
        let body = gql(
            &client,
            "query($id: ID!) { product(id: $id) { id } }",
            json!({ "id": shop.product }),
        )
        .await;
        body["data"]["product"].is_null().then_some(())
    })
    .await;
    poll("the old cart gone", HEAL, || async {
        let body = gql(&client, CART, json!({ "id": shop.anonymous_cart })).await;
        body["data"]["cart"].is_null().then_some(())
    })
    .await;
    assert_writable(&client).await;
    assert_healthy(&client).await;
}

async fn down_wipe_then_up_gives_an_empty_working_shop() {
    let client = http();
    let shop = make_shop(&client).await;

    stack_keep(&["down", "--wipe"]);
    stack_keep(&["up"]);
    let client = http();

    let body = gql(&client, CART, json!({ "id": shop.anonymous_cart })).await;
    assert!(body["data"]["cart"].is_null(), "{body}");
    let body = gql(
        &client,
        "query($id: ID!) { product(id: $id) { id } }",
        json!({ "id": shop.product }),
    )
    .await;
    assert!(body["data"]["product"].is_null(), "{body}");
    assert_writable(&client).await;
    assert_healthy(&client).await;
}

/// The four scenarios, in this order: the two that keep data, then the two wipes.
#[tokio::test]
async fn the_read_side_heals_from_the_store_after_restarts_and_wipes() {
    a_broker_restarted_empty_is_refilled_from_the_store().await;
    the_whole_stack_down_and_up_keeps_every_product_cart_and_order().await;
    a_wiped_store_under_a_kept_read_side_is_never_served().await;
    down_wipe_then_up_gives_an_empty_working_shop().await;
}
