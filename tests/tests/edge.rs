//! Envoy at the edge: its config validates, an oversized body gets 413, and a burst past the
//! local rate limit gets 429. The tests share one mutex: a burst must not starve the others.

mod common;

use common::*;
use tokio::sync::Mutex;

static EDGE: Mutex<()> = Mutex::const_new(());

#[test]
fn envoy_config_validates() {
    let _g = EDGE.blocking_lock();
    let envoy = env(
        "ENVOY_BIN",
        &format!("{}/.cache/commerce-tools/bin/envoy", env("HOME", "/root")),
    );
    let config = repo_root().join("bff/envoy/envoy.yaml");
    let out = std::process::Command::new(&envoy)
        .args(["--mode", "validate", "-c"])
        .arg(&config)
        .output()
        .expect("run envoy");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("OK"), "{text}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let _g = EDGE.lock().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = serde_json::json!({ "query": format!("# {padding}\n{{ __typename }}") });
    let resp = http().post(graphql_url()).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
}

#[tokio::test]
async fn a_burst_past_the_rate_limit_gets_429() {
    let _g = EDGE.lock().await;
    let client = http();
    // Bounded: at most 3,000 small requests, 64 at a time, all to loopback.
    let mut statuses = Vec::new();
    for _ in 0..(3000 / 64) {
        let wave = (0..64).map(|_| {
            let client = client.clone();
            async move {
                client
                    .post(graphql_url())
                    .json(&serde_json::json!({ "query": "{ __typename }" }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        statuses.extend(futures::future::join_all(wave).await);
        if statuses.contains(&429) {
            break;
        }
    }
    assert!(
        statuses.contains(&429),
        "no 429 in {} requests",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // The limit refills: the API answers again.
    poll(
        "rate limit refill",
        std::time::Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                let (status, _) = gql_raw(&client, "{ __typename }", serde_json::json!({})).await;
                (status == 200).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    let _g = EDGE.lock().await;
    let resp = http().get(graphql_url()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
}

#[tokio::test]
async fn queries_past_the_depth_or_complexity_limit_are_refused_with_a_code() {
    let _g = EDGE.lock().await;
    let client = http();
    let statements_before = shop_sql_statements(&client).await;
    // 14 levels of nesting beside a data field: past the depth limit of 12.
    let deep = "{ product(id: \"00000000-0000-0000-0000-000000000000\") { id } __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
    let (status, body) = gql_raw(&client, deep, serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("QUERY_TOO_DEEP"),
        "{body}"
    );
    // Hundreds of aliased fields: past the complexity limit.
    let field = "product(id: \"00000000-0000-0000-0000-000000000000\") { id }";
    let wide = format!(
        "{{ {} }}",
        (0..600)
            .map(|i| format!("a{i}: {field}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (status, body) = gql_raw(&client, &wide, serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("QUERY_TOO_COMPLEX"),
        "{body}"
    );
    // Refused before any resolver ran: not one SQL statement.
    assert_eq!(shop_sql_statements(&client).await, statements_before);

    // Pure introspection (what GraphiQL and code generators send) is not limited.
    let (status, body) = gql_raw(
        &client,
        deep.replacen(
            "product(id: \"00000000-0000-0000-0000-000000000000\") { id } ",
            "",
            1,
        )
        .as_str(),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["data"]["__schema"]["types"].is_array(), "{body}");
}
