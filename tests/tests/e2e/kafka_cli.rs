//! The Kafka CLI example of docs/operations.md ("Kafka topics"), run as it is written against
//! the test stack: `kafka-console` (installed by scripts/install-tools.sh) lists the topics
//! and prints the record of a cart this test created, with its key, the relay's headers and
//! the CloudEvents value, then exits by itself.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const MARKER: &str = "<!-- tests/tests/e2e/kafka_cli.rs runs the next block as it is";

/// The shell block that follows the marker in docs/operations.md.
fn documented_block() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let after = &doc[doc.find(MARKER).expect("the marker in docs/operations.md")..];
    let start = after
        .find("```sh\n")
        .expect("a ```sh block after the marker")
        + "```sh\n".len();
    let len = after[start..].find("```").expect("the block's end");
    after[start..start + len].to_owned()
}

#[tokio::test]
async fn the_documented_kafka_cli_prints_a_cart_event_with_its_headers() {
    let client = http();
    let cart = create_cart(&client).await;
    let stored = stored_events(&cart).await;
    let event_id = stored[0].get_str("_id").unwrap().to_owned();
    // The relay has published it before the CLI looks.
    let seen = {
        let cart = cart.clone();
        tokio::task::spawn_blocking(move || {
            read_topic_until("commerce.cart.events", Duration::from_secs(60), |rs| {
                rs.iter().any(|r| r.key == cart)
            })
        })
        .await
        .unwrap()
    };
    assert!(seen.iter().any(|r| r.key == cart), "cart {cart} on Kafka");

    let block = documented_block();
    let child = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // A deadline against a hung CLI, not a measure of its speed.
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the documented commands exit by themselves")
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the documented block failed ({}):\n{block}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        stdout
            .lines()
            .any(|l| l.trim() == "\"commerce.cart.events\""),
        "the topic list names commerce.cart.events:\n{stdout}"
    );
    let records: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let record = records
        .iter()
        .find(|r| r["key"] == cart.as_str())
        .unwrap_or_else(|| panic!("no record of cart {cart} in:\n{stdout}"));
    assert_eq!(record["value"]["specversion"], "1.0", "{record}");
    assert_eq!(record["value"]["id"], event_id.as_str(), "{record}");
    assert_eq!(
        record["value"]["type"], "commerce.cart.CartCreated",
        "{record}"
    );
    assert_eq!(record["headers"]["event-id"], event_id.as_str(), "{record}");
    assert!(record["headers"]["store-id"].is_string(), "{record}");
    assert!(record["partition"].is_number(), "{record}");
    assert!(record["offset"].is_string(), "{record}");
}
