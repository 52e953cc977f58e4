//! Every service serves Prometheus metrics on its admin port; a cart command shows up in the
//! command service's, the relay's, the projector's, the query service's and the BFF's.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

async fn metrics(client: &reqwest::Client, var: &str, default: &str) -> String {
    let url = format!("{}/metrics", env(var, default));
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    resp.text().await.unwrap()
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn services_expose_prometheus_metrics() {
    let client = http();
    let cart = create_cart(&client).await;
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 2, "{body}");
    let (_, bad) = gql_raw(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 0 }),
    )
    .await;
    assert_eq!(error_code(&bad).as_deref(), Some("INVALID_ARGUMENT"));
    cart_at_version(&client, &cart, 2).await;

    let text = metrics(&client, "CART_COMMAND_ADMIN_URL", "http://127.0.0.1:19201").await;
    let ok = sample(&text, "commands_total{aggregate=\"cart\",outcome=\"ok\"}").unwrap_or(0.0);
    assert!(ok >= 2.0, "{text}");
    assert!(text.contains("command_duration_seconds_bucket"), "{text}");

    let text = metrics(&client, "BFF_ADMIN_URL", "http://127.0.0.1:19205").await;
    assert!(
        text.contains("graphql_errors_total{code=\"INVALID_ARGUMENT\"}"),
        "{text}"
    );

    let text = metrics(&client, "CART_QUERY_ADMIN_URL", "http://127.0.0.1:19202").await;
    assert!(
        text.contains("queries_total{service=\"cart\",method=\"GetCart\",outcome=\"ok\"}"),
        "{text}"
    );

    // The relay and the projector count what they moved (the relay may still be flushing).
    poll(
        "relay and projector metrics",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let relay = metrics(&client, "RELAY_ADMIN_URL", "http://127.0.0.1:19203").await;
                let proj = metrics(
                    &client,
                    "CART_PROJECTOR_ADMIN_URL",
                    "http://127.0.0.1:19204",
                )
                .await;
                let published = sample(&relay, "relay_events_published_total").unwrap_or(0.0);
                let applied =
                    sample(&proj, "projector_events_total{projection=\"cart\"}").unwrap_or(0.0);
                (published >= 2.0 && applied >= 2.0 && proj.contains("projector_checkpoint_offset"))
                    .then_some(())
            }
        },
    )
    .await;
}
