//! Personal data can be forgotten (crypto-shredding), against the running stack:
//! - a customer's email and name are sealed wherever events rest or travel (the store's
//!   documents, the Kafka topic) while the read side that needs them (notification
//!   recipients) has them in the clear;
//! - after `deleteAccount` they cannot be read from the store's documents, the topics,
//!   `commerce events export` (from the store and from Kafka, even with `--reveal`),
//!   `commerce stream show`, or a rebuilt read model, and the customer's orders still total
//!   the same;
//! - no argon2 hash travels on any topic, and login works from the private credentials,
//!   also after the user service restarts and after a password change.

use crate::cli_common::*;
use crate::common::*;
use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use std::time::Duration;

/// The second test restarts the user service: the two run one after the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn database() -> mongodb::Database {
    mongodb::Client::with_uri_str(mongodb_uri())
        .await
        .unwrap()
        .database(&env("MONGODB_DB", "commerce"))
}

/// Every stored event document that mentions `needle` anywhere.
async fn store_docs_with(needle: &str) -> Vec<String> {
    let docs: Vec<Document> = mongo_events()
        .await
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter()
        .map(|d| {
            mongodb::bson::Bson::Document(d.clone())
                .into_relaxed_extjson()
                .to_string()
        })
        .filter(|s| s.contains(needle))
        .collect()
}

/// The records of a topic up to (and including) the first one `done` accepts.
fn topic_until(topic: &str, done: impl Fn(&Record) -> bool) -> Vec<Record> {
    let records = read_topic_until(topic, Duration::from_secs(60), |rs| rs.iter().any(&done));
    assert!(records.iter().any(&done), "the record awaited on {topic}");
    records
}

fn is_event(r: &Record, stream: &str, event_type: &str) -> bool {
    r.key == stream
        && r.value["type"]
            .as_str()
            .is_some_and(|t| t.ends_with(event_type))
}

async fn order_totals(pool: &sqlx::PgPool, customer: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(total_minor), 0)::bigint FROM orders WHERE customer_id = $1::uuid",
    )
    .bind(customer)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_deleted_account_is_forgotten_everywhere_but_its_orders_stay() {
    let _serial = SERIAL.lock().await;
    let client = http();
    let pool = pg().await;
    let (user_id, email, token) = new_customer(&client).await;
    let name = format!("Zed{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let street = format!(
        "{} Forget Street",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let body = gql_as(
        &client,
        &token,
        "mutation($n: String!, $l: String!) { updateProfile(name: $n, addresses: [{ line1: $l, city: \"Springfield\", postalCode: \"12345\", country: \"US\" }]) { version } }",
        json!({ "n": format!("{name} Quux"), "l": street }),
    )
    .await;
    assert!(body["data"]["updateProfile"]["version"].is_u64(), "{body}");

    // Two orders, projected.
    let admin = admin_token(&client).await;
    let product = new_product(&client, &admin, 1250, 10).await;
    buy(&client, &token, &product, 2, GOOD_CARD).await;
    buy(&client, &token, &product, 1, GOOD_CARD).await;
    let before = poll("both orders projected", Duration::from_secs(60), || async {
        let t = order_totals(&pool, &user_id).await;
        (t.0 == 2).then_some(t)
    })
    .await;
    assert_eq!(before.1, 3 * 1250);

    // Sealed at rest and in transit, in the clear where the read side needs it.
    let recipient = poll(
        "the recipient projected",
        Duration::from_secs(60),
        || async {
            sqlx::query_as::<_, (Option<String>, String)>(
                "SELECT email, name FROM notification_recipients WHERE customer_id = $1::uuid",
            )
            .bind(&user_id)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .filter(|(_, n)| n.starts_with(&name))
        },
    )
    .await;
    assert_eq!(recipient.0.as_deref(), Some(email.as_str()));
    for needle in [&email, &name, &street] {
        assert!(
            store_docs_with(needle).await.is_empty(),
            "{needle} in the store in the clear"
        );
    }
    let registered = stored_events(&user_id).await;
    let data = registered[0].get_document("data").unwrap();
    assert_eq!(
        data.get_document("email")
            .unwrap()
            .get_str("sealed")
            .unwrap(),
        "A256GCM"
    );
    assert!(data.get("password_hash").is_none(), "{data:?}");

    // Deleted.
    let body = gql_as(&client, &token, "mutation { deleteAccount }", json!({})).await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    let key: Document = database()
        .await
        .collection::<Document>("person_keys")
        .find_one(doc! { "_id": &user_id })
        .await
        .unwrap()
        .expect("a tombstone in person_keys");
    assert!(!key.contains_key("key"), "the key survived: {key:?}");

    // The topic: sealed fields only, and the deletion is on it.
    let records = topic_until("commerce.user.events", |r| {
        is_event(r, &user_id, "UserDeleted")
    });
    let mine: Vec<&Record> = records.iter().filter(|r| r.key == user_id).collect();
    assert!(mine.len() >= 3, "{mine:?}");
    for r in &mine {
        let text = r.value.to_string();
        for needle in [&email, &name, &street] {
            assert!(!text.contains(needle.as_str()), "{needle} on Kafka: {text}");
        }
    }

    // Exports, from either source, even revealing: erased reads null.
    for source in ["store", "kafka"] {
        let run = commerce(&[
            "events", "export", "--source", source, "--stream", &user_id, "--reveal",
        ])
        .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        for needle in [&email, &name, &street] {
            assert!(
                !run.stdout.contains(needle.as_str()),
                "{needle} in the {source} export"
            );
        }
        let events: Vec<Value> = run
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let reg = events
            .iter()
            .find(|e| e.to_string().contains("UserRegistered"))
            .unwrap_or_else(|| panic!("no UserRegistered in the {source} export: {events:?}"));
        let text = reg.to_string();
        assert!(
            text.contains("\"email\":null") && text.contains("\"name\":null"),
            "{source}: {text}"
        );
    }

    // The folded stream (the CLI's time travel) shows the erasure too.
    let run = commerce(&[
        "-o",
        "json",
        "stream",
        "show",
        &user_id,
        "--at-version",
        "2",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for needle in [&email, &name, &street] {
        assert!(
            !run.stdout.contains(needle.as_str()),
            "{needle}: {}",
            run.stdout
        );
    }

    // The read side forgot, and a rebuilt read model keeps every other fact.
    let (email_now,): (Option<String>,) =
        sqlx::query_as("SELECT email FROM notification_recipients WHERE customer_id = $1::uuid")
            .bind(&user_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(email_now, None);
    let report = commerce_json(&["projections", "rebuild", "order"]).await;
    assert!(report.to_string().contains("order"), "{report}");
    assert_eq!(order_totals(&pool, &user_id).await, before);

    // Login of the deleted account fails; no hash anywhere on the topics.
    let body = gql(
        &client,
        "mutation($e: String!) { login(email: $e, password: \"s3cret-pass\") { accessToken } }",
        json!({ "e": email }),
    )
    .await;
    assert!(
        body["data"].is_null() || body["errors"].is_array(),
        "{body}"
    );
    for aggregate in ["user", "cart", "order", "payment", "product"] {
        let topic = format!("commerce.{aggregate}.events");
        let records = read_topic_until(&topic, Duration::from_secs(3), |_| false);
        for r in &records {
            assert!(
                !r.value.to_string().contains("$argon2"),
                "an argon2 hash on {topic}: {:?}",
                r.value
            );
        }
    }
}

#[tokio::test]
async fn login_reads_private_credentials_across_restarts_and_password_changes() {
    let _serial = SERIAL.lock().await;
    let client = http();
    let (user_id, email, token) = new_customer(&client).await;
    let body = gql_as(
        &client,
        &token,
        "mutation { changePassword(currentPassword: \"s3cret-pass\", newPassword: \"n3w-secret-pass\") }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let creds = database()
        .await
        .collection::<Document>("credentials")
        .find_one(doc! { "_id": &user_id })
        .await
        .unwrap()
        .expect("a credentials document");
    assert!(creds
        .get_str("password_hash")
        .unwrap()
        .starts_with("$argon2"));
    for d in stored_events(&user_id).await {
        let text = mongodb::bson::Bson::Document(d)
            .into_relaxed_extjson()
            .to_string();
        assert!(!text.contains("$argon2"), "a hash in an event: {text}");
    }
    stack(&["restart", "user-command"]);
    let token = poll("login after the restart", Duration::from_secs(60), || async {
        let body = gql(
            &client,
            "mutation($e: String!) { login(email: $e, password: \"n3w-secret-pass\") { accessToken } }",
            json!({ "e": email }),
        )
        .await;
        body["data"]["login"]["accessToken"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(!token.is_empty());
    let body = gql(
        &client,
        "mutation($e: String!) { login(email: $e, password: \"s3cret-pass\") { accessToken } }",
        json!({ "e": email }),
    )
    .await;
    assert!(
        body["data"].is_null() || body["errors"].is_array(),
        "{body}"
    );
}
