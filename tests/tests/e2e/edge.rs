//! Envoy at the edge: its config validates, an oversized body gets 413, and a burst past the
//! local rate limit gets 429. The tests share one mutex: a burst must not starve the others.

use crate::common::*;
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
    // Bounded: at most 3,000 small requests, all to loopback, 128 in flight at all times
    // (not in waves, which wait for the slowest: on a loaded machine waves stay under the
    // limit), stopping at the first 429.
    use futures::StreamExt;
    let mut statuses = Vec::new();
    let mut answers = futures::stream::iter(0..3000)
        .map(|_| {
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
        })
        .buffer_unordered(128);
    while let Some(status) = answers.next().await {
        statuses.push(status);
        if status == 429 {
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
    // 90 aliased fields of 6 each (under the alias limit): past the complexity limit.
    let field = "product(id: \"00000000-0000-0000-0000-000000000000\") { id name description archived version createdAt }";
    let wide = format!(
        "{{ {} }}",
        (0..90)
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

#[tokio::test]
async fn a_body_over_the_limit_straight_to_the_bff_gets_413() {
    let _g = EDGE.lock().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let body = serde_json::json!({ "query": format!("# {padding}\n{{ __typename }}") });
    let resp = http().post(bff_url()).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(
        error_code(&body).as_deref(),
        Some("PAYLOAD_TOO_LARGE"),
        "{body}"
    );
    // A body under the limit still works there.
    let resp = http()
        .post(bff_url())
        .json(&serde_json::json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// graphql-js's `getIntrospectionQuery()`, what GraphiQL and codegen send.
const INTROSPECTION_QUERY: &str = r#"
  query IntrospectionQuery {
    __schema {
      queryType { name } mutationType { name } subscriptionType { name }
      types { ...FullType }
      directives { name description locations args { ...InputValue } }
    }
  }
  fragment FullType on __Type {
    kind name description
    fields(includeDeprecated: true) {
      name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
    }
    inputFields { ...InputValue }
    interfaces { ...TypeRef }
    enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
    possibleTypes { ...TypeRef }
  }
  fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
  fragment TypeRef on __Type {
    kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name
      ofType { kind name ofType { kind name ofType { kind name } } } } } } }
  }
"#;

#[tokio::test]
async fn the_introspection_bomb_is_refused_while_the_standard_introspection_works() {
    let _g = EDGE.lock().await;
    let client = http();
    let (status, body) = gql_raw(&client, INTROSPECTION_QUERY, serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert!(body["errors"].is_null(), "{body}");
    assert!(
        body["data"]["__schema"]["types"].as_array().map(Vec::len) > Some(10),
        "{body}"
    );
    // 1.25 KB of aliased introspection (4.27 MB of answer before).
    let one =
        "__schema { types { name fields { name type { name fields { name type { name } } } } } }";
    let bomb = format!(
        "{{ {} }}",
        (0..12)
            .map(|i| format!("s{i}: {one}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(bomb.len() < 1300);
    let started = std::time::Instant::now();
    let resp = client
        .post(graphql_url())
        .json(&serde_json::json!({ "query": bomb }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.len() < 10_000, "{} bytes answered", text.len());
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INTROSPECTION_LIMIT"),
        "{body}"
    );
    assert!(body["data"].is_null(), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Without aliases, nesting the schema's lists is refused too.
    let nested =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let (_, body) = gql_raw(&client, nested, serde_json::json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INTROSPECTION_LIMIT"),
        "{body}"
    );
    // Too many aliases in a data query.
    let many = format!(
        "{{ {} }}",
        (0..150)
            .map(|i| format!("t{i}: __typename"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let data_many = many.replacen("{ ", "{ products(first: 1) { totalCount } ", 1);
    let (_, body) = gql_raw(&client, &data_many, serde_json::json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("TOO_MANY_ALIASES"),
        "{body}"
    );
}

#[tokio::test]
async fn an_error_quotes_only_a_prefix_of_the_input_and_breaks_nothing() {
    let _g = EDGE.lock().await;
    let client = http();
    let huge = format!("{}@example.com", "a".repeat(900 * 1024));
    let register = "mutation($e: String!) { register(email: $e, password: \"s3cret-pass\", name: \"Big\") { id } }";
    // Requests in flight beside it (on the BFF's connections to the backends) are unharmed.
    let beside = (0..8).map(|_| {
        let client = client.clone();
        async move {
            gql_raw(
                &client,
                "{ products(first: 1) { totalCount } }",
                serde_json::json!({}),
            )
            .await
        }
    });
    let (big, others) = tokio::join!(
        gql_raw(&client, register, serde_json::json!({ "e": huge })),
        futures::future::join_all(beside)
    );
    let (status, body) = big;
    assert_eq!(status, 200);
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{}",
        &body.to_string()[..300.min(body.to_string().len())]
    );
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.chars().count() <= 201,
        "{} characters echoed",
        message.len()
    );
    for (status, body) in others {
        assert_eq!(status, 200);
        assert!(body["errors"].is_null(), "{body}");
    }
    // The same through the login path: nothing of the input comes back.
    let (_, body) = gql_raw(
        &client,
        "mutation($e: String!) { login(email: $e, password: \"x-password\") { accessToken } }",
        serde_json::json!({ "e": huge }),
    )
    .await;
    assert!(
        body.to_string().len() < 2000,
        "{} bytes",
        body.to_string().len()
    );
}

#[tokio::test]
async fn a_burst_with_one_token_is_limited_per_token() {
    let _g = EDGE.lock().await;
    let client = http();
    let token = format!("Bearer burst-{}", new_id());
    // Bounded: at most 640 small requests, 64 at a time. The test stack gives a token 100 a
    // second (ENVOY_TOKEN_RATE_LIMIT), the client and everyone 400.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let wave = (0..64).map(|_| {
            let client = client.clone();
            let token = token.clone();
            async move {
                client
                    .post(graphql_url())
                    .header("authorization", token)
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
    let first = statuses.iter().position(|s| *s == 429);
    assert!(
        first.is_some_and(|i| i < 350),
        "the token's bucket, not the client's, ran out: {statuses:?}"
    );
    // Others (no token) are not held back by that token's bucket.
    poll(
        "a request without the token",
        std::time::Duration::from_secs(5),
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
