//! OTLP trace export switches on by environment variable: a BFF started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` sends its spans, over OTLP/HTTP (protobuf), to a collector;
//! the request's span carries the correlation id, so a trace can be found from any log line.

use crate::common::*;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal OTLP/HTTP collector: answers every request with 200 and hands over
/// (request line, body).
async fn collector() -> (String, tokio::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if sock.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let _ = tx.send((line, body)).await;
                }
            });
        }
    });
    (addr, rx)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn otlp_trace_export_switches_on_by_environment_variable() {
    let (collector, mut received) = collector().await;
    let (port, admin) = (free_port(), free_port());
    // The BFF binary next to this test's (target/<profile>/deps/<test> → target/<profile>/bff).
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("bff");
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_SERVICE_NAME", "bff-otlp-test")
        // The BFF does not start without the secret of its backend credentials.
        .env("INTERNAL_SECRET", "otlp-test-internal-secret-".repeat(2))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));

    let client = http();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let correlation = format!("otlp-{}", uuid::Uuid::new_v4().simple());
    poll(
        "the BFF with OTLP answering",
        Duration::from_secs(30),
        || async {
            let r = client
                .post(&url)
                .header("x-request-id", &correlation)
                .json(&json!({ "query": "{ __typename }" }))
                .send()
                .await
                .ok()?;
            (r.status().as_u16() == 200).then_some(())
        },
    )
    .await;

    // The span of that request reaches the collector, with its correlation id.
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((line, body)) = received.recv().await {
            let text = String::from_utf8_lossy(&body);
            if line.starts_with("POST /v1/traces")
                && text.contains("bff-otlp-test")
                && text.contains(&correlation)
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    assert!(
        found,
        "no OTLP export to /v1/traces carrying the service name and correlation id"
    );
}
