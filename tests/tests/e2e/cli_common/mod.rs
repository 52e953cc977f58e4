//! Helpers of the `commerce` CLI's end-to-end tests: finding and running the binary (with the
//! test stack's endpoints, which it reads from the same environment), and PostgreSQL.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// The `commerce` binary of this build: beside the test executable's `deps/` directory.
/// `cargo test --workspace` builds it (the CLI package has an integration test).
pub fn commerce_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let bin = dir.join(format!("commerce{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p commerce-cli` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// What one run of the CLI printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `commerce <args>` to its end.
pub async fn commerce(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(commerce_bin())
        .args(args)
        .output()
        .await
        .expect("run commerce");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `commerce -o json <args>`, insists on success, and parses the output.
pub async fn commerce_json(args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let run = commerce(&all).await;
    assert_eq!(run.code, 0, "commerce {args:?} failed: {}", run.stderr);
    run.json()
}

pub async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&super::common::env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/commerce_test",
        ))
        .await
        .expect("PostgreSQL")
}

/// Every row of a table as JSON, in primary-key order (`order_by` is a column list).
pub async fn table_rows(pool: &sqlx::PgPool, table: &str, order_by: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM {table} t ORDER BY {order_by}"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The lag of a projection as `projections status` reports it: (events, seconds, state).
pub async fn projection_lag(name: &str) -> (i64, f64, String) {
    let v = commerce_json(&["projections", "status", name]).await;
    let s = &v[0];
    (
        s["lag_events"].as_i64().unwrap(),
        s["lag_seconds"].as_f64().unwrap(),
        s["state"].as_str().unwrap().to_owned(),
    )
}
