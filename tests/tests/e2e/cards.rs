//! Cards never pass through the BFF, against the running stack:
//! - the payment gateway's tokenization endpoint (`POST /pay/v1/tokens`, behind Envoy beside
//!   the GraphQL API) checks the card (Luhn, expiry, CVC, body shape and size) and answers an
//!   opaque `pm_` token, never echoing the number;
//! - no GraphQL field or input takes a card number; `checkout` takes only the token, and an
//!   unknown token is refused with INVALID_ARGUMENT;
//! - the cart's `CartCheckedOut` on Kafka carries the `pm_` reference, not the gateway's token.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn post_tokens(client: &reqwest::Client, body: String) -> (u16, Value, String) {
    let resp = client
        .post(tokens_url())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn card(number: &str, month: u32, year: u32, cvc: &str) -> String {
    json!({ "number": number, "exp_month": month, "exp_year": year, "cvc": cvc }).to_string()
}

#[tokio::test]
async fn the_tokenization_endpoint_checks_cards_and_answers_an_opaque_token() {
    let client = http();
    let (status, body, text) =
        post_tokens(&client, card("4242 4242 4242 4242", 12, 2099, "123")).await;
    assert_eq!(status, 201, "{text}");
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("pm_"), "{body}");
    assert_eq!(body["brand"], "visa");
    assert_eq!(body["last4"], "4242");
    assert!(!text.contains("42424242"), "{text}");

    for (what, request) in [
        ("Luhn", card("4242424242424241", 12, 2099, "123")),
        ("expired", card("4242424242424242", 1, 2001, "123")),
        ("month", card("4242424242424242", 13, 2099, "123")),
        ("CVC", card("4242424242424242", 12, 2099, "12a")),
        ("short", card("4242", 12, 2099, "123")),
        ("shape", r#"{"number": "4242424242424242"}"#.to_owned()),
        ("not JSON", "4242424242424242".to_owned()),
    ] {
        let (status, body, text) = post_tokens(&client, request).await;
        assert_eq!(status, 400, "{what}: {text}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{what}: {text}");
        assert!(!text.contains("424242"), "{what} echoes the card: {text}");
    }
    let huge = card(&"4".repeat(4096), 12, 2099, "123");
    let (status, _, _) = post_tokens(&client, huge).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn checkout_takes_only_a_token_and_no_graphql_field_takes_a_card() {
    let client = http();
    // No argument or input field anywhere in the schema is a card number or CVC.
    let body = gql(
        &client,
        "{ __schema { types { name inputFields { name } fields { name args { name } } } } }",
        json!({}),
    )
    .await;
    let types = body["data"]["__schema"]["types"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        types.iter().all(|t| t["name"] != "CardInput"),
        "CardInput is still there"
    );
    let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_owned();
    let mut names: Vec<String> = Vec::new();
    for t in types {
        for f in t["inputFields"].as_array().into_iter().flatten() {
            names.push(format!("{}.{}", name(t), name(f)));
        }
        for f in t["fields"].as_array().into_iter().flatten() {
            for a in f["args"].as_array().into_iter().flatten() {
                names.push(format!("{}.{}({})", name(t), name(f), name(a)));
            }
        }
    }
    for n in &names {
        let lower = n.to_lowercase();
        assert!(
            !lower.contains("cvc") && !lower.contains("cardnumber") && !lower.ends_with(".number"),
            "a GraphQL field takes a card: {n}"
        );
    }
    assert!(
        names.contains(&"MutationRoot.checkout(paymentToken)".to_owned()),
        "{names:?}"
    );

    // Checkout with a token; an unknown token is refused.
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 300, 5).await;
    let (_, _, token) = new_customer(&client).await;
    let cart = customer_cart(&client, &token, &product, 1).await;
    let body = gql_as(
        &client,
        &token,
        CHECKOUT,
        json!({ "c": cart, "t": "pm_0000000000000000000000000000dead" }),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{body}"
    );
    let payment = card_token(&client, GOOD_CARD).await;
    let body = gql_as(
        &client,
        &token,
        CHECKOUT,
        json!({ "c": cart, "t": payment }),
    )
    .await;
    let order = body["data"]["checkout"]["orderId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    order_in(&client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;

    // The cart event carries the reference, never the gateway's token.
    let records = read_topic_until("commerce.cart.events", Duration::from_secs(60), |rs| {
        rs.iter()
            .any(|r| r.key == cart && r.value["type"] == "commerce.cart.CartCheckedOut")
    });
    let checked_out = records
        .iter()
        .find(|r| r.key == cart && r.value["type"] == "commerce.cart.CartCheckedOut")
        .expect("CartCheckedOut on the topic");
    assert_eq!(
        checked_out.value["data"]["payment"]["token"],
        payment.as_str()
    );
    for r in &records {
        assert!(
            !r.value.to_string().contains("tok_sim_"),
            "a gateway token in a cart event: {:?}",
            r.value
        );
    }
}
