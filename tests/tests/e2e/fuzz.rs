//! Fuzzing the GraphQL API with Schemathesis (from PyPI), bounded in count, as a signed-in
//! customer: every operation of the schema gets generated arguments. No case may get a 5xx or
//! an error without a client-facing code (see tests/clients/fuzz_checks.py), and the BFF
//! stays up. (The CloudEvents decoder is fuzzed by proptest in event-schemas.)

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn fuzzed_graphql_requests_are_refused_cleanly_and_the_server_stays_up() {
    let client = http();
    let (_, _, token) = new_customer(&client).await;
    let tools = std::env::var("TOOLS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/commerce-tools", env("HOME", "/root")));
    let url = env("BFF_URL", "http://127.0.0.1:18000/graphql");
    let out = tokio::process::Command::new(format!("{tools}/venv-clients/bin/st"))
        .current_dir(repo_root().join("tests/clients"))
        .env("SCHEMATHESIS_HOOKS", "fuzz_checks")
        .args([
            "run",
            &url,
            "--checks",
            "refused_cleanly",
            "--phases",
            "fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261122",
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .output()
        .await
        .expect("schemathesis (scripts/install-tools.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}",
        report
            .lines()
            .filter(|l| l.contains("generated") || l.contains("issues") || l.contains("fail"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "fuzzing found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("generated"), "{report}");

    // Still up and answering.
    let health = client
        .get(format!(
            "{}/healthz",
            env("BFF_ADMIN_URL", "http://127.0.0.1:19205")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body = gql(&client, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "QueryRoot", "{body}");
}
