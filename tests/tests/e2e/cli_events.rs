//! `commerce events export | tail` and `commerce stream show` against the running stack:
//! an export of one event type in a time window holds exactly the matching events of the
//! store, from Kafka and from the store alike, as JSON lines and as CSV.

use crate::cli_common::*;
use crate::common::*;
use chrono::{SecondsFormat, Utc};
use mongodb::bson::{self, doc};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The next whole millisecond, once the clock has reached it.
fn next_millisecond() -> chrono::DateTime<Utc> {
    let now = Utc::now().timestamp_millis();
    let next = chrono::DateTime::<Utc>::from_timestamp_millis(now + 1).unwrap_or_else(Utc::now);
    while Utc::now() < next {
        std::hint::spin_loop();
    }
    next
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn export_of_one_type_in_a_window_matches_the_store() {
    let client = http();
    // Events before the window, in it, and after it.
    let before = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": before, "p": new_id(), "q": 1 }),
    )
    .await;
    // The store keeps milliseconds: the window starts at the next millisecond boundary, and
    // nothing is written until the clock has passed it (so `before` lies outside).
    let since = next_millisecond();
    let mut carts = Vec::new();
    for i in 0..4 {
        let cart = create_cart(&client).await;
        for q in 1..=(i % 2 + 1) {
            gql(
                &client,
                ADD_ITEM,
                json!({ "c": cart, "p": new_id(), "q": q }),
            )
            .await;
        }
        carts.push(cart);
    }
    let until = next_millisecond();
    let after = create_cart(&client).await;
    gql(
        &client,
        ADD_ITEM,
        json!({ "c": after, "p": new_id(), "q": 1 }),
    )
    .await;

    let expected = mongo_events()
        .await
        .count_documents(doc! {
            "event_type": "CartItemAdded",
            "occurred_at": {
                "$gte": bson::DateTime::from_millis(since.timestamp_millis()),
                "$lt": bson::DateTime::from_millis(until.timestamp_millis()),
            },
        })
        .await
        .unwrap() as usize;
    assert!(
        expected >= 6,
        "the window holds at least this test's 6 additions"
    );

    let (since_s, until_s) = (rfc3339(since), rfc3339(until));
    let args = [
        "events",
        "export",
        "-a",
        "cart",
        "--type",
        "CartItemAdded",
        "--since",
        &since_s,
        "--until",
        &until_s,
    ];
    // The store.
    let mut store_args = args.to_vec();
    store_args.extend(["--source", "store"]);
    let run = commerce(&store_args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let from_store = lines(&run.stdout);
    assert_eq!(from_store.len(), expected, "store export vs store count");

    // Kafka: poll until the relay has published everything in the window.
    let from_kafka = poll("the window on Kafka", Duration::from_secs(60), || async {
        let run = commerce(&args).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let l = lines(&run.stdout);
        (l.len() >= expected).then_some(l)
    })
    .await;
    assert_eq!(from_kafka.len(), expected, "Kafka export vs store count");
    for e in &from_kafka {
        assert_eq!(e["event_type"], "CartItemAdded");
        assert_eq!(e["schema_version"], 3, "upcast to the current version");
        let t: chrono::DateTime<Utc> = e["occurred_at"].as_str().unwrap().parse().unwrap();
        assert!(t >= since && t < until, "{t} outside the window");
        assert_ne!(e["stream_id"], before);
        assert_ne!(e["stream_id"], after);
    }
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v.iter().map(|e| e["event_id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&from_kafka),
        ids(&from_store),
        "same events from both sources"
    );
    for cart in &carts {
        assert!(from_kafka.iter().any(|e| e["stream_id"] == cart.as_str()));
    }

    // CSV into a file: a header and one row per event.
    let file = std::env::temp_dir().join(format!("export-{}.csv", new_id()));
    let file_s = file.to_str().unwrap().to_owned();
    let mut csv_args = args.to_vec();
    csv_args.extend(["--format", "csv", "--out", &file_s]);
    let run = commerce(&csv_args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let mut rows = text.lines();
    assert!(rows
        .next()
        .unwrap()
        .starts_with("event_id,stream_type,stream_id,version,event_type"));
    assert_eq!(rows.count(), expected);

    // One stream, by id.
    let run = commerce(&[
        "events", "export", "--stream", &carts[1], "--source", "store",
    ])
    .await;
    let one = lines(&run.stdout);
    assert_eq!(one.len(), 3, "{}", run.stdout);
    assert_eq!(one[0]["event_type"], "CartCreated");
}

#[tokio::test]
async fn stream_show_folds_the_history_at_a_version_and_a_time() {
    let client = http();
    let cart = create_cart(&client).await;
    let (a, b) = (new_id(), new_id());
    gql(&client, ADD_ITEM, json!({ "c": cart, "p": a, "q": 2 })).await;
    let between = Utc::now();
    gql(&client, ADD_ITEM, json!({ "c": cart, "p": b, "q": 5 })).await;

    let all = commerce_json(&["stream", "show", &cart]).await;
    assert_eq!(all["stream_type"], "cart");
    assert_eq!(all["version"], 3);
    assert_eq!(all["events"].as_array().unwrap().len(), 3);
    let state = all["state"].as_str().unwrap();
    assert!(state.contains(&a) && state.contains(&b), "{state}");

    let v2 = commerce_json(&["stream", "show", &cart, "--at-version", "2"]).await;
    assert_eq!(v2["version"], 2);
    let state = v2["state"].as_str().unwrap();
    assert!(state.contains(&a) && !state.contains(&b), "{state}");

    let at = commerce_json(&["stream", "show", &cart, "--at-time", &rfc3339(between)]).await;
    assert_eq!(at["version"], 2);

    let table = commerce(&["stream", "show", &cart]).await;
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("CartItemAdded v3"),
        "{}",
        table.stdout
    );
    let missing = commerce(&["stream", "show", &new_id()]).await;
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("no stream"), "{}", missing.stderr);
}

#[tokio::test]
async fn tail_follows_new_events() {
    let client = http();
    let cart = create_cart(&client).await;
    let mut child = tokio::process::Command::new(commerce_bin())
        .args([
            "events",
            "tail",
            "-a",
            "cart",
            "--type",
            "CartItemAdded",
            "--timeout",
            "60s",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The tail starts at "now": events before it started are not shown, those after are.
    let started = Utc::now();
    let seen = async {
        // Keep adding until the tail shows one (it may start after the first addition).
        let mut q = 1;
        loop {
            gql(
                &client,
                ADD_ITEM,
                json!({ "c": cart, "p": new_id(), "q": 1 }),
            )
            .await;
            q += 1;
            let next = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(Some(line)) = out.next_line().await {
                    let e: Value = serde_json::from_str(&line).unwrap();
                    if e["stream_id"] == cart.as_str() {
                        return Some(e);
                    }
                }
                None
            })
            .await;
            if let Ok(Some(e)) = next {
                return e;
            }
            assert!(q < 10, "the tail never showed the cart's events");
        }
    };
    let e = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .unwrap();
    assert_eq!(e["event_type"], "CartItemAdded");
    let t: chrono::DateTime<Utc> = e["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!(t >= started - chrono::Duration::seconds(1));
    child.kill().await.unwrap();
}
