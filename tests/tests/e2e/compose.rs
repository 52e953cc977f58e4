//! docker-compose, read by a real Compose (`docker-compose config`, which needs no engine):
//! it refuses to render without each of its secrets and names the one missing, and with them
//! it publishes Envoy's port and nothing else. Its application services are what the service
//! table (`deploy/services.tsv`, through `scripts/gen-compose.sh`) gives.

use std::path::PathBuf;
use std::process::{Command, Output};

const SECRETS: [&str; 4] = [
    "JWT_SECRET",
    "INTERNAL_SECRET",
    "ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
];

fn compose_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("docker-compose.yml"))
        .unwrap_or_default()
}

/// `docker-compose config` with only the given variables (no `.env`, nothing inherited).
fn config(vars: &[(&str, &str)]) -> Output {
    let empty = std::env::temp_dir().join(format!("commerce-compose-{}.env", std::process::id()));
    std::fs::write(&empty, "").expect("write an empty env file");
    let mut cmd = Command::new("docker-compose");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
        )
        // A developer's `.env` must not fill in what the test leaves out.
        .arg("--env-file")
        .arg(&empty)
        .arg("-f")
        .arg(compose_file())
        .arg("config");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("docker-compose is installed (scripts/install-tools.sh installs it)")
}

fn all_but(missing: Option<&str>) -> Vec<(&'static str, &'static str)> {
    SECRETS
        .iter()
        .filter(|s| Some(**s) != missing)
        .map(|s| (*s, "0123456789abcdef0123456789abcdef-test-only"))
        .collect()
}

#[test]
fn compose_refuses_to_start_without_each_secret_and_names_it() {
    for secret in SECRETS {
        let out = config(&all_but(Some(secret)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{secret} missing, yet: {stderr}");
        assert!(
            stderr.contains(secret),
            "the message names {secret}: {stderr}"
        );
    }
}

#[test]
fn with_its_secrets_compose_publishes_only_envoy() {
    let out = config(&all_but(None));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rendered file: services at two spaces, their keys at four.
    let mut published = Vec::new();
    let mut in_services = false;
    let mut service = String::new();
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            in_services = line == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        if line.trim_end() == "    ports:" {
            published.push(service.clone());
        } else if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                service = name.to_owned();
            }
        }
    }
    assert!(!service.is_empty(), "services rendered: {stdout}");
    assert_eq!(published, vec!["envoy".to_owned()], "{stdout}");
}

/// The application services (and x-app's URL variables) are generated from the table that
/// `scripts/stack.sh` starts the same services from: like a checked-in schema, the file must
/// be what the generator writes now (`scripts/gen-compose.sh --check` prints the difference).
#[test]
fn compose_application_services_are_what_the_service_table_gives() {
    let root = compose_file()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let out = Command::new("bash")
        .arg(root.join("scripts/gen-compose.sh"))
        .arg("--check")
        .output()
        .expect("bash runs scripts/gen-compose.sh");
    assert!(
        out.status.success(),
        "docker-compose.yml is out of date; run scripts/gen-compose.sh:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
