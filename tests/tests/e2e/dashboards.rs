//! The Grafana dashboards and the Prometheus config against what the running services really
//! export. Every PromQL expression of `deploy/grafana/dashboards/*.json` is parsed with
//! `promql-parser`; each metric it selects must be served by the `/metrics` of a service of
//! the stack (after a small journey, so that lazily registered series exist), and each label
//! it groups by or matches on must be on that metric's series. `deploy/prometheus.yml` must
//! scrape every service and pass `promtool check config` (Debian's promtool, installed by
//! `scripts/install-tools.sh`).

use crate::common::*;
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One metric a dashboard query selects, with the labels the query needs it to carry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricUse {
    metric: String,
    labels: BTreeSet<String>,
}

/// A PromQL expression of a dashboard, and where it is (file, panel title).
struct Query {
    place: String,
    expr: String,
}

fn dashboards_dir() -> PathBuf {
    repo_root().join("deploy/grafana/dashboards")
}

/// Every `targets[].expr` of every panel (rows' nested panels too) and every templating
/// query of every dashboard file.
fn dashboard_queries() -> Vec<Query> {
    fn panels(file: &str, panel: &Value, out: &mut Vec<Query>) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(Query {
                    place: format!("{file}: panel \"{title}\""),
                    expr: expr.to_owned(),
                });
            }
        }
        for inner in panel["panels"].as_array().into_iter().flatten() {
            panels(file, inner, out);
        }
    }
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dashboards_dir())
        .expect("deploy/grafana/dashboards")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {:?}", dashboards_dir());
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect(&file);
        panels(&file, &dashboard, &mut out);
        for var in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // `label_values(metric, label)`: the metric is PromQL, the label must be on it.
            let q = var["query"]
                .as_str()
                .or(var["query"]["query"].as_str())
                .unwrap_or("");
            if let Some(args) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
            {
                if let Some((metric, label)) = args.rsplit_once(',') {
                    out.push(Query {
                        place: format!("{file}: variable {}", var["name"]),
                        expr: format!("sum by ({}) ({})", label.trim(), metric.trim()),
                    });
                }
            }
        }
    }
    out
}

/// Grafana's interval variables, which are not PromQL, as a plain range.
fn without_grafana_variables(expr: &str) -> String {
    ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(expr.to_owned(), |e, v| e.replace(v, "1m"))
}

/// The metrics an expression selects, each with the labels it must carry: those matched on in
/// its selector and those the aggregations around it group by (`by (...)`).
fn metric_uses(expr: &Expr, grouping: &BTreeSet<String>, out: &mut Vec<MetricUse>) {
    let selector = |vs: &parser::VectorSelector, out: &mut Vec<MetricUse>| {
        let mut labels = grouping.clone();
        let mut name = vs.name.clone();
        for m in &vs.matchers.matchers {
            if m.name == "__name__" {
                if let MatchOp::Equal = m.op {
                    name = Some(m.value.clone());
                }
            } else {
                labels.insert(m.name.clone());
            }
        }
        out.push(MetricUse {
            metric: name.expect("a selector names its metric"),
            labels,
        });
    };
    match expr {
        Expr::Aggregate(a) => {
            let inner = match &a.modifier {
                Some(LabelModifier::Include(ls)) => {
                    let mut g = grouping.clone();
                    g.extend(ls.labels.iter().cloned());
                    g
                }
                _ => grouping.clone(),
            };
            metric_uses(&a.expr, &inner, out);
            if let Some(p) = &a.param {
                metric_uses(p, grouping, out);
            }
        }
        Expr::Unary(u) => metric_uses(&u.expr, grouping, out),
        Expr::Binary(b) => {
            metric_uses(&b.lhs, grouping, out);
            metric_uses(&b.rhs, grouping, out);
        }
        Expr::Paren(p) => metric_uses(&p.expr, grouping, out),
        Expr::Subquery(s) => metric_uses(&s.expr, grouping, out),
        Expr::Call(c) => {
            // These make labels of their own: what is grouped by above them need not exist.
            let g = if c.func.name.starts_with("label_") {
                BTreeSet::new()
            } else {
                grouping.clone()
            };
            for arg in &c.args.args {
                metric_uses(arg, &g, out);
            }
        }
        Expr::VectorSelector(vs) => selector(vs, out),
        Expr::MatrixSelector(ms) => selector(&ms.vs, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The sample names of a Prometheus text exposition, each with the label names seen on it.
fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            labels.extend(label_names(&line[end + 1..]));
        }
    }
    out
}

/// The label names of `a="x",b="y\"z"} 1`: names up to `=`, values quoted with escapes.
fn label_names(rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = rest.chars();
    let mut name = String::new();
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            ',' | ' ' => {}
            '=' => {
                names.push(std::mem::take(&mut name));
                assert_eq!(chars.next(), Some('"'), "a quoted label value in {rest}");
                while let Some(v) = chars.next() {
                    match v {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            c => name.push(c),
        }
    }
    names
}

/// The stack's admin endpoints by service (as compose names them: `cart-command`, ...), with
/// the path each serves its metrics on, from the `*_ADMIN_URL` variables of `stack.env`.
fn scrape_targets() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, url) in std::env::vars() {
        let Some(service) = key.strip_suffix("_ADMIN_URL") else {
            continue;
        };
        let service = service.to_lowercase().replace('_', "-");
        let path = if service == "envoy" {
            "/stats/prometheus"
        } else {
            "/metrics"
        };
        out.insert(service, format!("{url}{path}"));
    }
    assert!(
        out.len() >= 15,
        "the stack's admin URLs are in the environment (set -a; . .stack-test/stack.env): {out:?}"
    );
    out
}

/// Every series name every service exports now, with its label names and who serves it.
async fn scrape_all(
    client: &reqwest::Client,
    targets: &BTreeMap<String, String>,
) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut all: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for (service, url) in targets {
        let resp = client.get(url).send().await.expect(url);
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        for (name, labels) in exposition(&resp.text().await.unwrap()) {
            let entry = all.entry(name).or_default();
            entry.0.extend(labels);
            entry.1.insert(service.clone());
        }
    }
    all
}

/// What is wrong with the dashboards' metric uses against what is exported, one line each.
fn problems(
    uses: &[(String, MetricUse)],
    exported: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (place, u) in uses {
        match exported.get(&u.metric) {
            None => {
                let hint = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find(|s| exported.contains_key(&format!("{}{s}", u.metric)))
                    .map(|s| format!(" (a histogram: select {}{s})", u.metric))
                    .unwrap_or_default();
                out.push(format!(
                    "{place}: metric {} is exported by no service{hint}",
                    u.metric
                ));
            }
            Some((labels, services)) => {
                // Prometheus adds `job` and `instance` to every series it scrapes.
                let missing: Vec<_> = u
                    .labels
                    .difference(labels)
                    .filter(|l| *l != "job" && *l != "instance")
                    .collect();
                if !missing.is_empty() {
                    out.push(format!(
                        "{place}: metric {} (from {services:?}) has no label {missing:?}; it has {labels:?}",
                        u.metric
                    ));
                }
            }
        }
    }
    out
}

/// A short journey through Envoy, so that the series registered on first use exist: a
/// product, a search, a customer's cart checked out and confirmed, one refused command.
async fn exercise(client: &reqwest::Client) {
    let admin = admin_token(client).await;
    let product = new_product(client, &admin, 1299, 10).await;
    let (_, _, token) = new_customer(client).await;
    let body = gql_as(
        client,
        &token,
        "query { products(query: \"Mug\", first: 5) { totalCount edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert!(body["data"]["products"]["totalCount"].is_u64(), "{body}");
    let order = buy(client, &token, &product, 1, GOOD_CARD).await;
    order_in(client, &token, &order, &["CONFIRMED"], Some("CAPTURED")).await;
    let cart = create_cart(client).await;
    let (_, bad) = gql_raw(client, ADD_ITEM, json!({ "c": cart, "p": product, "q": 0 })).await;
    assert_eq!(
        error_code(&bad).as_deref(),
        Some("INVALID_ARGUMENT"),
        "{bad}"
    );
}

#[tokio::test]
async fn every_dashboard_metric_is_exported_by_a_service() {
    let queries = dashboard_queries();
    let mut uses = Vec::new();
    for q in &queries {
        let expr = parser::parse(&without_grafana_variables(&q.expr))
            .unwrap_or_else(|e| panic!("{}: {:?} does not parse: {e}", q.place, q.expr));
        let mut found = Vec::new();
        metric_uses(&expr, &BTreeSet::new(), &mut found);
        assert!(
            !found.is_empty(),
            "{}: {:?} selects no metric",
            q.place,
            q.expr
        );
        uses.extend(found.into_iter().map(|u| (q.place.clone(), u)));
    }
    uses.sort();
    uses.dedup();

    let client = http();
    exercise(&client).await;
    let targets = scrape_targets();
    // The journey's effects reach the projectors and the saga asynchronously: scrape until
    // nothing is missing, or report what still is at the deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let exported = scrape_all(&client, &targets).await;
        let wrong = problems(&uses, &exported);
        if wrong.is_empty() {
            let metrics: BTreeSet<_> = uses.iter().map(|(_, u)| &u.metric).collect();
            eprintln!(
                "{} queries, {} metrics, all exported by the {} services scraped",
                queries.len(),
                metrics.len(),
                targets.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard queries the services do not answer:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The scrape targets of `deploy/prometheus.yml`, as `host:port`.
fn prometheus_targets(config: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in config.lines().map(str::trim) {
        let items = if let Some(list) = line.strip_prefix("- targets:") {
            list
        } else if let Some(item) = line.strip_prefix("- ") {
            item
        } else {
            continue;
        };
        for item in items
            .trim_matches(|c| c == '[' || c == ']' || c == ' ')
            .split(',')
        {
            let item = item.trim().trim_matches('"').trim_matches('\'');
            if let Some((host, port)) = item.split_once(':') {
                if !host.is_empty() && port.parse::<u16>().is_ok() {
                    out.insert(item.to_owned());
                }
            }
        }
    }
    out
}

fn promtool() -> PathBuf {
    std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env(
                "TOOLS_DIR",
                &format!("{}/.cache/commerce-tools", env("HOME", "/root")),
            ))
            .join("bin/promtool")
        })
}

#[test]
fn prometheus_scrapes_every_service_and_its_config_is_valid() {
    let path = repo_root().join("deploy/prometheus.yml");
    let promtool = promtool();
    assert!(
        promtool.exists(),
        "{promtool:?} is missing: scripts/install-tools.sh installs it (Debian's prometheus package)"
    );
    let out = std::process::Command::new(&promtool)
        .args(["check", "config", "--syntax-only"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let config = std::fs::read_to_string(&path).unwrap();
    let scraped: BTreeSet<String> = prometheus_targets(&config)
        .into_iter()
        .map(|t| t.split_once(':').unwrap().0.to_owned())
        .collect();
    let services: BTreeSet<String> = scrape_targets().into_keys().collect();
    let unscraped: Vec<_> = services.difference(&scraped).collect();
    let unknown: Vec<_> = scraped.difference(&services).collect();
    assert!(
        unscraped.is_empty() && unknown.is_empty(),
        "deploy/prometheus.yml misses {unscraped:?} and names {unknown:?}, which the stack does not run"
    );
}

#[test]
fn the_promql_walk_finds_metrics_and_labels() {
    let expr = parser::parse(
        "histogram_quantile(0.99, sum by (le, aggregate) (rate(command_duration_seconds_bucket{job=\"commerce\"}[1m]))) / on() group_left max(up)",
    )
    .unwrap();
    let mut found = Vec::new();
    metric_uses(&expr, &BTreeSet::new(), &mut found);
    let set = |ls: &[&str]| ls.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        found,
        vec![
            MetricUse {
                metric: "command_duration_seconds_bucket".into(),
                labels: set(&["aggregate", "job", "le"]),
            },
            MetricUse {
                metric: "up".into(),
                labels: set(&[]),
            },
        ]
    );
    let text = "# TYPE x counter\nx{a=\"1,2\",b=\"q\\\"}\"} 3\ny 1\n";
    let parsed = exposition(text);
    assert_eq!(parsed["x"], set(&["a", "b"]));
    assert_eq!(parsed["y"], set(&[]));
}
