//! Mail end to end, through Envoy and a real SMTP server (MailDev, started by the stack; its
//! REST API tells what arrived): a password reset by the mailed token works once and ends the
//! old password and sessions, an unknown email is answered alike and mailed nothing, an email
//! is verified by its mailed token, and an order confirmation is mailed too.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a mail may take: the relay, the notification projection and the sender.
const MAIL_DEADLINE: Duration = Duration::from_secs(60);

fn maildev_url() -> String {
    env("MAILDEV_URL", "http://127.0.0.1:11080")
}

/// Every mail MailDev holds for `address`, in full.
async fn mails_to(client: &reqwest::Client, address: &str) -> Vec<Value> {
    let url = format!("{}/api/email/summary", maildev_url());
    let Ok(r) = client
        .get(&url)
        .query(&[("search", address), ("limit", "100")])
        .send()
        .await
    else {
        return Vec::new();
    };
    let summary: Value = r.json().await.unwrap_or_default();
    let mut out = Vec::new();
    for item in summary["items"].as_array().cloned().unwrap_or_default() {
        let to_it = item["to"]
            .as_array()
            .is_some_and(|to| to.iter().any(|t| t["address"] == address));
        let Some(id) = item["id"].as_str().filter(|_| to_it) else {
            continue;
        };
        let url = format!("{}/api/email/{id}", maildev_url());
        if let Ok(r) = client.get(&url).send().await {
            if let Ok(mail) = r.json::<Value>().await {
                out.push(mail);
            }
        }
    }
    out
}

/// The first mail to `address` whose subject contains `subject`, waited for.
async fn mail_to(client: &reqwest::Client, address: &str, subject: &str) -> Value {
    poll(
        &format!("a mail \"{subject}\" to {address}"),
        MAIL_DEADLINE,
        || async {
            mails_to(client, address)
                .await
                .into_iter()
                .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)))
        },
    )
    .await
}

/// The token of the link to `path` in a mail's text.
fn token_in(mail: &Value, path: &str) -> String {
    let text = mail["text"].as_str().unwrap_or_default();
    let marker = format!("/{path}?token=");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} link in {text}"))
        + marker.len();
    text[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET: &str =
    "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";

#[tokio::test]
async fn a_mailed_reset_token_resets_the_password_once() {
    let client = http();
    let (_, email, _) = new_customer(&client).await;
    let body = gql(
        &client,
        "mutation($e: String!) { login(email: $e, password: \"s3cret-pass\") { refreshToken } }",
        json!({ "e": email }),
    )
    .await;
    let refresh = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned();

    let body = gql(&client, REQUEST_RESET, json!({ "e": email })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mail = mail_to(&client, &email, "Reset your password").await;
    assert!(
        mail["from"][0]["address"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{mail}"
    );
    let token = token_in(&mail, "reset-password");
    assert!(token.len() > 64, "a token of 32 random bytes: {token}");

    // A password too short is refused, and does not use the token up.
    let body = gql(&client, RESET, json!({ "t": token, "p": "x" })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
    let body = gql(
        &client,
        RESET,
        json!({ "t": token, "p": "n3w-s3cret-pass" }),
    )
    .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    // Single use.
    let body = gql(&client, RESET, json!({ "t": token, "p": "an0ther-pass" })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );

    let login_with = |password: &'static str| {
        let (client, email) = (client.clone(), email.clone());
        async move {
            gql(
                &client,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
                json!({ "e": email, "p": password }),
            )
            .await
        }
    };
    let body = login_with("s3cret-pass").await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "the old password: {body}"
    );
    let body = login_with("n3w-s3cret-pass").await;
    assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    // The sessions from before the reset are over.
    let body = gql(
        &client,
        "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }",
        json!({ "r": refresh }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("UNAUTHENTICATED"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_email_is_answered_alike_and_mailed_nothing() {
    let client = http();
    let unknown = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = gql(&client, REQUEST_RESET, json!({ "e": unknown })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let body = gql(&client, REQUEST_RESET, json!({ "e": "not an email" })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    // A request made after it, for an account, is mailed: by then the first would have been.
    let (_, email, _) = new_customer(&client).await;
    let body = gql(&client, REQUEST_RESET, json!({ "e": email })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    mail_to(&client, &email, "Reset your password").await;
    assert!(mails_to(&client, &unknown).await.is_empty());

    // Tokens that were never mailed do nothing.
    for token in [
        "garbage".to_owned(),
        format!("{}.{}", uuid::Uuid::now_v7(), "ab".repeat(32)),
    ] {
        let body = gql(
            &client,
            RESET,
            json!({ "t": token, "p": "n3w-s3cret-pass" }),
        )
        .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("INVALID_ARGUMENT"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_email_is_verified_by_its_mailed_token() {
    let client = http();
    let (_, email, token) = new_customer(&client).await;
    let verified = || async {
        let body = gql_as(&client, &token, "{ me { emailVerified } }", json!({})).await;
        body["data"]["me"]["emailVerified"].clone()
    };
    assert_eq!(verified().await, false);
    let body = gql_as(
        &client,
        &token,
        "mutation { requestEmailVerification }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["requestEmailVerification"], true, "{body}");
    let mail = mail_to(&client, &email, "Confirm your email address").await;
    let link_token = token_in(&mail, "verify-email");
    let verify = "mutation($t: String!) { verifyEmail(token: $t) }";
    let body = gql(&client, verify, json!({ "t": link_token })).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(verified().await, true);
    let body = gql(&client, verify, json!({ "t": link_token })).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
    let body = gql_as(
        &client,
        &token,
        "mutation { requestEmailVerification }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("FAILED_PRECONDITION"),
        "{body}"
    );
}

#[tokio::test]
async fn an_order_confirmation_is_mailed_and_recorded_as_sent() {
    let client = http();
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1299, 5).await;
    let (_, email, token) = new_customer(&client).await;
    let order = buy(&client, &token, &product, 1, GOOD_CARD).await;
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    let mail = mail_to(&client, &email, "is confirmed").await;
    let text = mail["text"].as_str().unwrap_or_default();
    assert!(text.contains("12.99 EUR"), "{text}");
    // The outbox says so.
    poll(
        "the confirmation recorded as sent",
        MAIL_DEADLINE,
        || async {
            let body = gql_as(
                &client,
                &token,
                "{ myNotifications { kind sentAt } }",
                json!({}),
            )
            .await;
            body["data"]["myNotifications"]
                .as_array()?
                .iter()
                .any(|n| n["kind"] == "ORDER_CONFIRMATION" && n["sentAt"].is_string())
                .then_some(())
        },
    )
    .await;
}
