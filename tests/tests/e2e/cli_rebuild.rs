//! Rebuild without downtime, resumable rebuild, and verify, on the cart read model:
//! - a GraphQL query loop sees no error while `commerce projections rebuild cart` builds the
//!   new tables and switches, and the read model afterwards equals the one before;
//! - a rebuild killed halfway shows as `rebuilding` in `projections status`, and the next run
//!   resumes and finishes with the same read model;
//! - `projections verify` reports no difference on a healthy model, and names the row when
//!   one has been tampered with.
//!
//! One test, because each step compares the whole read model with a snapshot.

use crate::cli_common::*;
use crate::common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn snapshot(pool: &sqlx::PgPool) -> (Vec<Value>, Vec<Value>) {
    (
        table_rows(pool, "carts", "id").await,
        table_rows(pool, "cart_lines", "cart_id, product_id").await,
    )
}

async fn caught_up() {
    poll(
        "cart projection caught up",
        Duration::from_secs(60),
        || async {
            let (events, _, state) = projection_lag("cart").await;
            (events == 0 && state == "caught-up").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn rebuild_without_downtime_resume_after_kill_and_verify() {
    let client = http();
    let pool = pg().await;
    let mut carts = Vec::new();
    for i in 0..12 {
        let cart = create_cart(&client).await;
        let (a, b) = (new_id(), new_id());
        gql(
            &client,
            ADD_ITEM,
            json!({ "c": cart, "p": a, "q": 1 + i % 3 }),
        )
        .await;
        gql(&client, ADD_ITEM, json!({ "c": cart, "p": b, "q": 2 })).await;
        if i % 3 == 0 {
            gql(&client, REMOVE_ITEM, json!({ "c": cart, "p": a })).await;
        } else if i % 3 == 1 {
            gql(&client, CHANGE_QTY, json!({ "c": cart, "p": b, "q": 9 })).await;
        }
        carts.push(cart);
    }
    caught_up().await;
    let before = snapshot(&pool).await;
    assert!(before.0.len() >= 12);

    // 1. Queries are served throughout a rebuild and its switch.
    let stop = Arc::new(AtomicBool::new(false));
    let expected: Vec<(String, Value)> = {
        let mut v = Vec::new();
        for c in &carts {
            v.push((
                c.clone(),
                gql(&client, CART, json!({ "id": c })).await["data"]["cart"].clone(),
            ));
        }
        v
    };
    let looping = {
        let (stop, client) = (stop.clone(), client.clone());
        tokio::spawn(async move {
            let (mut ok, mut errors) = (0u32, Vec::new());
            let mut tick = tokio::time::interval(Duration::from_millis(15));
            while !stop.load(Ordering::Relaxed) {
                for (id, want) in &expected {
                    tick.tick().await;
                    let (status, body) = gql_raw(&client, CART, json!({ "id": id })).await;
                    if status == 200 && body["errors"].is_null() && &body["data"]["cart"] == want {
                        ok += 1;
                    } else {
                        errors.push(format!("{status} {body}"));
                    }
                }
            }
            (ok, errors)
        })
    };
    let report = commerce_json(&["projections", "rebuild", "cart"]).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, errors) = looping.await.unwrap();
    assert!(
        errors.is_empty(),
        "{} query errors during the rebuild: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    assert!(ok > 0);
    assert_eq!(report["resumed"], false);
    assert!(report["events"].as_i64().unwrap() >= 12 * 3, "{report}");
    assert!(report["retired_schema"].is_null(), "old tables dropped");
    assert_eq!(snapshot(&pool).await, before, "read model after the switch");
    let retired: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'retired_cart%' OR nspname = 'rebuild_cart'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(retired, 0);
    // The live projector writes the new tables.
    let cart = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": cart, "p": new_id(), "q": 1 }),
    )
    .await;
    cart_at_version(&client, &cart, 2).await;
    caught_up().await;
    let before = snapshot(&pool).await;

    // 2. Killed halfway, then resumed.
    let mut child = tokio::process::Command::new(commerce_bin())
        .args([
            "projections",
            "rebuild",
            "cart",
            "--batch-size",
            "5",
            // Slow enough that a status probe (which may wait 2 s for a first record) sees
            // it halfway even when the topic holds only this test's few dozen events; it is
            // killed at the first sight of progress, so a long topic costs no more time.
            "--max-rate",
            "8",
        ])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let progress = poll("the rebuild halfway", Duration::from_secs(60), || async {
        let status = commerce_json(&["projections", "status", "cart"]).await;
        let s = &status[0];
        let done = s["rebuild"]["done"].as_i64()?;
        let target = s["rebuild"]["target"].as_i64()?;
        (done > 0 && done * 10 < target * 8).then(|| s.clone())
    })
    .await;
    child.kill().await.unwrap();
    assert!(
        progress["state"]
            .as_str()
            .unwrap()
            .starts_with("rebuilding"),
        "{progress}"
    );
    let status = commerce_json(&["projections", "status", "cart"]).await;
    assert!(status[0]["state"]
        .as_str()
        .unwrap()
        .starts_with("rebuilding"));
    assert_eq!(snapshot(&pool).await, before, "the live model is untouched");
    let report = commerce_json(&["projections", "rebuild", "cart"]).await;
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(
        snapshot(&pool).await,
        before,
        "read model after the resumed rebuild"
    );
    let status = commerce_json(&["projections", "status", "cart"]).await;
    assert_eq!(status[0]["rebuild"], Value::Null);

    // 3. Verify: healthy, then one tampered row named.
    for name in ["cart", "product", "order"] {
        let checks = commerce_json(&["projections", "verify", name]).await;
        for t in checks.as_array().unwrap() {
            assert_eq!(t["differences"], json!([]), "{name}: {t}");
            assert_eq!(t["live_checksum"], t["rebuilt_checksum"]);
        }
    }
    let victim = &carts[4];
    let line: (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT cart_id, product_id FROM cart_lines WHERE cart_id = $1::uuid LIMIT 1",
    )
    .bind(victim)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE cart_lines SET quantity = quantity + 1 WHERE cart_id = $1 AND product_id = $2",
    )
    .bind(line.0)
    .bind(line.1)
    .execute(&pool)
    .await
    .unwrap();
    let run = commerce(&["-o", "json", "projections", "verify", "cart"]).await;
    assert_eq!(run.code, 3, "differences exit with 3: {}", run.stderr);
    let checks = run.json();
    let lines = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "cart_lines")
        .unwrap();
    assert_ne!(lines["live_checksum"], lines["rebuilt_checksum"]);
    let diffs = lines["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{lines}");
    assert_eq!(diffs[0]["kind"], "differs");
    assert_eq!(diffs[0]["columns"], json!(["quantity"]));
    assert_eq!(diffs[0]["key"]["cart_id"], line.0.to_string());
    assert_eq!(diffs[0]["key"]["product_id"], line.1.to_string());
    let carts_table = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "carts")
        .unwrap();
    assert_eq!(carts_table["differences"], json!([]));
    let table = commerce(&["projections", "verify", "cart"]).await;
    assert!(
        table.stdout.contains(&line.0.to_string()),
        "{}",
        table.stdout
    );
    // Repair the row by rebuilding; verify is clean again.
    commerce_json(&["projections", "rebuild", "cart"]).await;
    let checks = commerce_json(&["projections", "verify", "cart"]).await;
    assert!(checks
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["differences"] == json!([])));
}
