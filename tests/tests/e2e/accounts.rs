//! Accounts and authorization through Envoy: customers see and change only their own carts
//! and orders, admin operations need the admin role, bad tokens are refused, an email is
//! unique even under concurrent registrations, and a deleted account leaves no personal data
//! in the read models.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn customers_only_reach_their_own_things() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 100, 10).await;
    let (_, _, a) = new_customer(&client).await;
    let (_, _, b) = new_customer(&client).await;

    let order = buy(&client, &a, &product, 1, GOOD_CARD).await;
    order_in(&client, &a, &order, &["CONFIRMED"], None).await;
    // B reads A's order.
    let body = gql_as(&client, &b, ORDER, json!({ "id": order })).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    // B cancels A's order.
    let body = gql_as(
        &client,
        &b,
        "mutation($o: ID!) { cancelOrder(orderId: $o) { version } }",
        json!({ "o": order }),
    )
    .await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");

    // B changes A's cart: refused, and the cart is unchanged.
    let body = gql_as(&client, &a, "mutation { createCart { cartId } }", json!({})).await;
    let cart = body["data"]["createCart"]["cartId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql_as(
        &client,
        &b,
        ADD_ITEM,
        json!({ "c": cart, "p": product, "q": 1 }),
    )
    .await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let body = gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": product, "q": 1 }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FORBIDDEN"),
        "anonymous: {body}"
    );
    assert_eq!(
        stored_events(&cart).await.len(),
        1,
        "nothing appended to A's cart"
    );
    cart_at_version_as(&client, &a, &cart, 1).await;
    let body = gql_as(&client, &b, CART, json!({ "id": cart })).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");

    // A customer calls admin mutations.
    for (q, v) in [
        ("mutation { createProduct(input: { name: \"X\", priceMinor: 1, currency: \"EUR\" }) { id } }", json!({})),
        ("mutation($o: ID!) { shipOrder(orderId: $o, carrier: \"c\", trackingNumber: \"t\") { version } }", json!({ "o": order })),
        ("mutation($o: ID!) { refundPayment(orderId: $o, amountMinor: 1) { version } }", json!({ "o": order })),
        ("{ orders { totalCount } }", json!({})),
    ] {
        let body = gql_as(&client, &a, q, v).await;
        assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{q}: {body}");
    }
    let o = order_in(&client, &a, &order, &["CONFIRMED"], None).await;
    assert_eq!(o["status"], "CONFIRMED", "nothing changed");

    // No token, a tampered token, an expired token.
    let body = gql(&client, "{ me { id } }", json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let mut tampered = a.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let body = gql_as(&client, &tampered, "{ me { id } }", json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let expired = expired_token(&a);
    let body = gql_as(&client, &expired, ORDER, json!({ "id": order })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let body = gql_as(
        &client,
        &expired,
        "mutation { createCart { cartId } }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
}

/// The same claims as `token`, signed with the real secret, but expired a minute ago.
fn expired_token(token: &str) -> String {
    resign_token(token, |claims| {
        let now = chrono::Utc::now().timestamp();
        claims["iat"] = json!(now - 3600);
        claims["exp"] = json!(now - 60);
    })
}

async fn cart_at_version_as(client: &reqwest::Client, token: &str, cart: &str, version: u64) {
    poll(
        "cart in the read model",
        Duration::from_secs(30),
        || async {
            let body = gql_as(client, token, CART, json!({ "id": cart })).await;
            (body["data"]["cart"]["version"].as_u64() == Some(version)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_let_exactly_one_through() {
    let client = http();
    let email = format!("race-{}@example.com", uuid::Uuid::new_v4().simple());
    let attempts = (0..8).map(|i| {
        let client = client.clone();
        let email = email.clone();
        async move {
            gql(
                &client,
                "mutation($e: String!, $n: String!) { register(email: $e, password: \"s3cret-pass\", name: $n) { id } }",
                json!({ "e": email, "n": format!("Racer {i}") }),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results
        .iter()
        .filter(|b| b["data"]["register"]["id"].is_string())
        .count();
    assert_eq!(ok, 1, "{results:?}");
    for b in results
        .iter()
        .filter(|b| !b["data"]["register"]["id"].is_string())
    {
        assert_eq!(error_code(b).as_deref(), Some("ALREADY_EXISTS"), "{b}");
    }
    // The same email in another case is the same email.
    let body = gql(
        &client,
        "mutation($e: String!) { register(email: $e, password: \"s3cret-pass\", name: \"Again\") { id } }",
        json!({ "e": email.to_uppercase() }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("ALREADY_EXISTS"),
        "{body}"
    );
}

#[tokio::test]
async fn a_deleted_account_leaves_no_cart_and_no_personal_data() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 100, 10).await;
    let (user_id, email, token) = new_customer(&client).await;
    let body = gql_as(
        &client,
        &token,
        "mutation { updateProfile(name: \"Zelda Unique-Name\") { version } }",
        json!({}),
    )
    .await;
    assert!(body["data"]["updateProfile"]["version"].is_i64(), "{body}");
    let cart = customer_cart(&client, &token, &product, 1).await;
    cart_at_version_as(&client, &token, &cart, 2).await;

    let body = gql_as(&client, &token, "mutation { deleteAccount }", json!({})).await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");

    // The cart goes.
    poll("the cart removed", Duration::from_secs(60), || async {
        let body = gql_as(&client, &admin, CART, json!({ "id": cart })).await;
        (error_code(&body).as_deref() == Some("NOT_FOUND")).then_some(())
    })
    .await;
    // The account is gone: no log-in, no profile.
    let body = gql(
        &client,
        "mutation($e: String!) { login(email: $e, password: \"s3cret-pass\") { accessToken } }",
        json!({ "e": email }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    // Its access token is refused outright.
    let body = gql_as(&client, &token, "{ me { id } }", json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    // No read model holds the email or the name.
    let pool = sqlx::PgPool::connect(&env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/commerce_test",
    ))
    .await
    .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // These hold the user id (no personal data) for bookkeeping; the notifications sent
    // keep their event id, so a replay does not send them again.
    let allowed = [
        "orders",
        "checkouts",
        "notifications",
        "notification_recipients",
        "notification_orders",
    ];
    // Every projection erases on its own schedule: wait (bounded) until none mentions it.
    poll(
        "no read model mentioning the deleted user",
        Duration::from_secs(60),
        || async {
            let mut mentioning = Vec::new();
            for t in &tables {
                let hits: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM \"{t}\" x WHERE row_to_json(x)::text ILIKE $1 OR row_to_json(x)::text ILIKE $2 OR row_to_json(x)::text ILIKE $3"
                ))
                .bind(format!("%{email}%"))
                .bind("%Zelda Unique-Name%")
                .bind(format!("%{user_id}%"))
                .fetch_one(&pool)
                .await
                .unwrap();
                if hits > 0 && !allowed.contains(&t.as_str()) {
                    mentioning.push(t.clone());
                }
            }
            if !mentioning.is_empty() {
                eprintln!("still mentioning the deleted user: {mentioning:?}");
            }
            mentioning.is_empty().then_some(())
        },
    )
    .await;
    // And the bookkeeping tables keep no email or name.
    for t in allowed {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{t}\" x WHERE row_to_json(x)::text ILIKE $1 OR row_to_json(x)::text ILIKE $2"
        ))
        .bind(format!("%{email}%"))
        .bind("%Zelda Unique-Name%")
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(hits, 0, "{t} keeps personal data");
    }
}

#[tokio::test]
async fn an_anonymous_cart_is_merged_into_the_customers_cart_at_login() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 100, 10).await;
    let other = new_product(&client, &admin, 100, 10).await;
    let login_with_cart = "mutation($e: String!, $c: ID!) {
        login(email: $e, password: \"s3cret-pass\", anonymousCartId: $c) { accessToken cartId } }";

    // A customer without a cart: the anonymous cart becomes theirs.
    let (_, email, _) = new_customer(&client).await;
    let anon = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": anon, "p": product, "q": 2 }),
    )
    .await;
    let body = gql(&client, login_with_cart, json!({ "e": email, "c": anon })).await;
    assert_eq!(body["data"]["login"]["cartId"], anon, "{body}");
    let token = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql(&client, ADD_ITEM, json!({ "c": anon, "p": other, "q": 1 })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FORBIDDEN"),
        "no longer anonymous: {body}"
    );
    let body = gql_as(
        &client,
        &token,
        ADD_ITEM,
        json!({ "c": anon, "p": other, "q": 1 }),
    )
    .await;
    assert_eq!(body["data"]["addItemToCart"]["version"], 4, "{body}");

    // A customer with an open cart: the anonymous lines are merged into it.
    let (_, email, token) = new_customer(&client).await;
    let mine = customer_cart(&client, &token, &product, 1).await;
    cart_at_version_as(&client, &token, &mine, 2).await;
    let anon = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": anon, "p": product, "q": 2 }),
    )
    .await;
    gql(&client, ADD_ITEM, json!({ "c": anon, "p": other, "q": 3 })).await;
    let body = gql(&client, login_with_cart, json!({ "e": email, "c": anon })).await;
    assert_eq!(body["data"]["login"]["cartId"], mine, "{body}");
    let token = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    cart_at_version_as(&client, &token, &mine, 4).await;
    let body = gql_as(&client, &token, CART, json!({ "id": mine })).await;
    let lines = lines_of(&body["data"]["cart"]);
    assert_eq!(
        lines,
        [(product.clone(), 3), (other.clone(), 3)]
            .into_iter()
            .collect()
    );
    poll(
        "the anonymous cart removed",
        Duration::from_secs(30),
        || async {
            let body = gql(&client, CART, json!({ "id": anon })).await;
            (error_code(&body).as_deref() == Some("NOT_FOUND")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_logout_or_a_new_password_revokes_them() {
    let client = http();
    let (_, email, _) = new_customer(&client).await;
    let login_q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }";
    let refresh_q =
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";
    let body = gql(&client, login_q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let first = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // Refresh works once, and the used token is dead afterwards.
    let body = gql(&client, refresh_q, json!({ "t": first })).await;
    let access = body["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let second = body["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql_as(&client, &access, "{ me { email name role } }", json!({})).await;
    assert_eq!(body["data"]["me"]["email"], email.as_str(), "{body}");
    assert_eq!(body["data"]["me"]["role"], "customer");
    let body = gql(&client, refresh_q, json!({ "t": first })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    // That replay revoked the family: the token issued from `first` is dead too.
    let body = gql(&client, refresh_q, json!({ "t": second })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );

    // Log-out revokes.
    let body = gql(&client, login_q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let second = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql(
        &client,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": second }),
    )
    .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    let body = gql(&client, refresh_q, json!({ "t": second })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );

    // A new password revokes every refresh token, and only the new password logs in.
    let body = gql(&client, login_q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let access = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let third = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql_as(
        &client,
        &access,
        "mutation { changePassword(currentPassword: \"wrong-one\", newPassword: \"n3w-secret\") }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let body = gql_as(
        &client,
        &access,
        "mutation { changePassword(currentPassword: \"s3cret-pass\", newPassword: \"n3w-secret\") }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let body = gql(&client, refresh_q, json!({ "t": third })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let body = gql(&client, login_q, json!({ "e": email, "p": "s3cret-pass" })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let body = gql(&client, login_q, json!({ "e": email, "p": "n3w-secret" })).await;
    assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    // Too short a password is refused at registration.
    let body = gql(
        &client,
        "mutation { register(email: \"short@example.com\", password: \"short\", name: \"S\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
}

const LOGIN_Q: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }";
const REFRESH_Q: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test]
async fn fifty_aliased_logins_in_one_request_are_throttled() {
    let client = http();
    let (_, email, _) = new_customer(&client).await;
    let fields: Vec<String> = (0..50)
        .map(|i| format!("l{i}: login(email: $e, password: \"guess-{i}\") {{ accessToken }}"))
        .collect();
    let q = format!("mutation($e: String!) {{ {} }}", fields.join(" "));
    let body = gql(&client, &q, json!({ "e": email })).await;
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let codes: Vec<&str> = errors
        .iter()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert_eq!(codes.len(), 50, "one error per guess: {body}");
    let throttled = codes.iter().filter(|c| **c == "THROTTLED").count();
    let guessed = codes.iter().filter(|c| **c == "UNAUTHENTICATED").count();
    assert!(
        throttled >= 40 && guessed <= 10,
        "{guessed} guesses ran, {throttled} throttled: {codes:?}"
    );
    let retry = errors
        .iter()
        .find(|e| e["extensions"]["code"] == "THROTTLED")
        .map(|e| e["message"].to_string())
        .unwrap_or_default();
    assert!(retry.contains("retry in"), "{retry}");
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_get_the_same_answer() {
    let client = http();
    let (_, email, _) = new_customer(&client).await;
    let wrong = gql(
        &client,
        LOGIN_Q,
        json!({ "e": email, "p": "not-the-password" }),
    )
    .await;
    let unknown = gql(
        &client,
        LOGIN_Q,
        json!({ "e": format!("nobody-{}@example.com", new_id()), "p": "not-the-password" }),
    )
    .await;
    assert_eq!(
        error_code(&wrong).as_deref(),
        Some("UNAUTHENTICATED"),
        "{wrong}"
    );
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["extensions"],
        unknown["errors"][0]["extensions"]
    );
}

#[tokio::test]
async fn of_ten_parallel_refreshes_one_succeeds_and_a_replayed_token_revokes_its_family() {
    let client = http();
    let (_, email, _) = new_customer(&client).await;
    let body = gql(&client, LOGIN_Q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let token = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let attempts = (0..10).map(|_| {
        let client = client.clone();
        let token = token.clone();
        async move { gql(&client, REFRESH_Q, json!({ "t": token })).await }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&serde_json::Value> = results
        .iter()
        .filter(|b| b["data"]["refreshToken"]["refreshToken"].is_string())
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for b in results
        .iter()
        .filter(|b| !b["data"]["refreshToken"]["refreshToken"].is_string())
    {
        assert_eq!(error_code(b).as_deref(), Some("UNAUTHENTICATED"), "{b}");
    }

    // A clean rotation, then the rotated token is replayed: the whole family is revoked, so
    // the token issued from it stops working.
    let body = gql(&client, LOGIN_Q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let first = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql(&client, REFRESH_Q, json!({ "t": first })).await;
    let second = body["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let replay = gql(&client, REFRESH_Q, json!({ "t": first })).await;
    assert_eq!(
        error_code(&replay).as_deref(),
        Some("UNAUTHENTICATED"),
        "{replay}"
    );
    let body = gql(&client, REFRESH_Q, json!({ "t": second })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "the successor of a replayed token is revoked: {body}"
    );
    // Another log-in (another family) is not affected.
    let body = gql(&client, LOGIN_Q, json!({ "e": email, "p": "s3cret-pass" })).await;
    let other = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = gql(&client, REFRESH_Q, json!({ "t": other })).await;
    assert!(
        body["data"]["refreshToken"]["accessToken"].is_string(),
        "{body}"
    );
}

/// Polls until `token` gets UNAUTHENTICATED for a cart creation (the BFF re-checks a
/// session within seconds).
async fn refused_soon(client: &reqwest::Client, token: &str, what: &str) {
    poll(what, Duration::from_secs(15), || async {
        let body = gql_as(
            client,
            token,
            "mutation { createCart { cartId } }",
            json!({}),
        )
        .await;
        (error_code(&body).as_deref() == Some("UNAUTHENTICATED")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn access_tokens_die_with_the_account_and_with_its_password() {
    let client = http();
    // A password change: the token from before it is refused, a new log-in works.
    let (_, email, token) = new_customer(&client).await;
    let body = gql_as(&client, &token, "{ me { id } }", json!({})).await;
    assert!(body["data"]["me"]["id"].is_string(), "{body}");
    let body = gql_as(
        &client,
        &token,
        "mutation { changePassword(currentPassword: \"s3cret-pass\", newPassword: \"n3w-secret\") }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    refused_soon(
        &client,
        &token,
        "the old token refused after a password change",
    )
    .await;
    let body = gql_as(&client, &token, "{ me { id } }", json!({})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
    let fresh = login(&client, &email, "n3w-secret").await;
    let body = gql_as(
        &client,
        &fresh,
        "mutation { createCart { cartId } }",
        json!({}),
    )
    .await;
    assert!(body["data"]["createCart"]["cartId"].is_string(), "{body}");

    // A deleted account: its token no longer creates carts.
    let (_, _, token) = new_customer(&client).await;
    let body = gql_as(&client, &token, "mutation { deleteAccount }", json!({})).await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    refused_soon(&client, &token, "a deleted account's token refused").await;
}

#[tokio::test]
async fn tokens_of_another_issuer_or_audience_are_refused() {
    let client = http();
    let (_, _, token) = new_customer(&client).await;
    for (claim, value) in [("iss", "someone-else"), ("aud", "another-api")] {
        let forged = resign_token(&token, |c| c[claim] = json!(value));
        let body = gql_as(&client, &forged, "{ me { id } }", json!({})).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "{claim}: {body}"
        );
    }
    let body = gql_as(&client, &token, "{ me { id } }", json!({})).await;
    assert!(body["data"]["me"]["id"].is_string(), "{body}");
}
