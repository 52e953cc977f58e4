//! `query-bench`: GraphQL product search and product details through Envoy, at fixed request
//! rates (open loop: latency is measured from when each request was due, so a slow server
//! cannot hide its queueing) and at maximum throughput (closed loop), next to the very same
//! SQL run directly with sqlx against the same database in the same run. Also prints a Redis
//! GET round trip from this machine, the floor any cache in front of those queries would pay.
//! Seeds its own catalogue; bounded in count and time; loopback only. Run by `make bench`.

use clap::Parser;
use futures::StreamExt;
use proto::commands::commands_client::CommandsClient;
use proto::commands::{ExecuteRequest, Meta};
use proto::queries::SearchProductsRequest;
use query_services::shop::{
    by_ids, products_by_id, BRANDS_BY_NAME, PRODUCT_JSON, RATINGS_BY_ID, REVIEWS_BY_ID, STOCK_BY_ID,
};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Products to seed.
    #[arg(long, default_value_t = 2000)]
    products: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Fixed request rates (per second) to measure latency at.
    #[arg(long, value_delimiter = ',', default_value = "50,200")]
    rates: Vec<u32>,
    /// Concurrent clients for the maximum-throughput run.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, env = "GRAPHQL_URL")]
    graphql_url: String,
    #[arg(long, env = "PRODUCT_COMMAND_URL")]
    product_command_url: String,
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
}

const WORDS: [&str; 8] = [
    "lamp", "chair", "table", "kettle", "rug", "mug", "shelf", "clock",
];

const SEARCH: &str =
    "query($q: String!, $c: String!) { products(query: $q, filter: { category: $c }, first: 20) {
  totalCount edges { cursor node { id name price { amountMinor currency } } } } }";
const DETAILS: &str = "query($id: ID!) { product(id: $id) { id name description price { amountMinor currency }
  stock { available } rating { average count } brand { name productCount } reviews(first: 5) { rating title } } }";

/// Latency percentiles and throughput of one run.
struct Stats {
    n: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn of(mut lat: Vec<Duration>, errors: usize, elapsed: Duration) -> Self {
        lat.sort();
        let pick = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Stats {
            n: lat.len(),
            errors,
            elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }

    fn rps(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Open loop at `rate` per second for `secs`: each request is due at its slot, and its
/// latency counts from then.
async fn fixed_rate<F, Fut>(rate: u32, secs: u64, f: Arc<F>) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = rate as usize * secs as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let ok = f(i).await;
            (due.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    for h in handles {
        if let Ok((d, ok)) = h.await {
            lat.push(d);
            errors += usize::from(!ok);
        }
    }
    Stats::of(lat, errors, start.elapsed())
}

/// Closed loop: `concurrency` clients back to back for `secs`.
async fn max_throughput<F, Fut>(concurrency: usize, secs: u64, f: Arc<F>) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let workers = (0..concurrency).map(|w| {
        let f = f.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                errors += usize::from(!f(i).await);
                lat.push(t.elapsed());
                i += concurrency;
            }
            (lat, errors)
        })
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    for (l, e) in futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
    {
        lat.extend(l);
        errors += e;
    }
    Stats::of(lat, errors, start.elapsed())
}

async fn seed(args: &Args, run: &str) -> anyhow::Result<Vec<Uuid>> {
    let client = CommandsClient::new(
        e2e_tests::authed_channel(&args.product_command_url, e2e_tests::operator()).await?,
    );
    let ids: Vec<Uuid> = (0..args.products).map(|_| Uuid::now_v7()).collect();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let mut client = client.clone();
            let run = run.to_owned();
            async move {
                let word = WORDS[i % WORDS.len()];
                let color = ["red", "green", "blue"][i % 3];
                let command = json!({
                    "type": "create", "product_id": id,
                    "details": {
                        "name": format!("{word} {run} {i}"),
                        "description": format!("A {} {word} that goes with a {}.", WORDS[(i / 8) % 8], WORDS[(i / 64) % 8]),
                        "categories": [run],
                        "brand": format!("Brand {}", i % 20),
                        "attributes": { "color": color },
                    },
                    "price": { "amount_minor": 100 + (i * 37) % 10_000, "currency": "EUR" },
                    "initial_stock": i % 50,
                });
                client
                    .execute(ExecuteRequest {
                        meta: Some(Meta {
                            idempotency_key: String::new(),
                        }),
                        stream_id: id.to_string(),
                        command_json: command.to_string(),
                    })
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(ids)
}

fn gql_ok(body: &Value) -> bool {
    body["errors"].is_null() && body["data"].is_object()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = format!("qb{}", &Uuid::new_v4().simple().to_string()[..8]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&args.database_url)
        .await?;

    let started = Instant::now();
    let ids = Arc::new(seed(&args, &run).await?);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM products WHERE categories @> ARRAY[$1]")
                .bind(&run)
                .fetch_one(&pool)
                .await?;
        if n as usize >= ids.len() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the catalogue did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "seeded {} products in {:.1}s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let url = Arc::new(args.graphql_url.clone());
    let run = Arc::new(run);

    let gql_search = {
        let (http, url, run) = (http.clone(), url.clone(), run.clone());
        Arc::new(move |i: usize| {
            let (http, url, run) = (http.clone(), url.clone(), run.clone());
            async move {
                let vars = json!({ "q": WORDS[i % WORDS.len()], "c": *run });
                match http
                    .post(url.as_str())
                    .json(&json!({ "query": SEARCH, "variables": vars }))
                    .send()
                    .await
                {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|b| gql_ok(&b)),
                    Err(_) => false,
                }
            }
        })
    };
    let gql_details = {
        let (http, url, ids) = (http.clone(), url.clone(), ids.clone());
        Arc::new(move |i: usize| {
            let (http, url) = (http.clone(), url.clone());
            let id = ids[(i * 7919) % ids.len()];
            async move {
                match http
                    .post(url.as_str())
                    .json(&json!({ "query": DETAILS, "variables": { "id": id } }))
                    .send()
                    .await
                {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|b| gql_ok(&b)),
                    Err(_) => false,
                }
            }
        })
    };
    // The same SQL the query service runs, straight through sqlx.
    let sql_search = {
        let (pool, run) = (pool.clone(), run.clone());
        Arc::new(move |i: usize| {
            let pool = pool.clone();
            let req = SearchProductsRequest {
                query: WORDS[i % WORDS.len()].into(),
                category: (*run).clone(),
                first: 20,
                ..Default::default()
            };
            async move {
                query_services::search::search(&pool, &req, PRODUCT_JSON)
                    .await
                    .is_ok()
            }
        })
    };
    let sql_details = {
        let (pool, ids) = (pool.clone(), ids.clone());
        Arc::new(move |i: usize| {
            let pool = pool.clone();
            let id = ids[(i * 7919) % ids.len()];
            async move {
                let one = || vec![id];
                let Ok(p) = by_ids(&pool, &products_by_id(), one()).await else {
                    return false;
                };
                let brand = p
                    .json
                    .first()
                    .and_then(|j| serde_json::from_str::<Value>(j).ok())
                    .and_then(|v| v["brand"].as_str().map(str::to_owned));
                by_ids(&pool, STOCK_BY_ID, one()).await.is_ok()
                    && by_ids(&pool, RATINGS_BY_ID, one()).await.is_ok()
                    && by_ids(&pool, REVIEWS_BY_ID, one()).await.is_ok()
                    && sqlx::query_scalar::<_, String>(BRANDS_BY_NAME)
                        .bind(brand.into_iter().collect::<Vec<_>>())
                        .fetch_all(&pool)
                        .await
                        .is_ok()
            }
        })
    };

    // Warm up every path once.
    for i in 0..20 {
        gql_search(i).await;
        gql_details(i).await;
        sql_search(i).await;
        sql_details(i).await;
    }

    println!("| query | path | load | requests | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    let row = |q: &str, path: &str, load: &str, s: &Stats| {
        println!(
            "| {q} | {path} | {load} | {} | {} | {:.0} | {} | {} |",
            s.n,
            s.errors,
            s.rps(),
            ms(s.p50),
            ms(s.p99)
        );
    };
    let mut ratios = Vec::new();
    for rate in &args.rates {
        let load = format!("{rate}/s fixed");
        let g = fixed_rate(*rate, args.seconds, gql_search.clone()).await;
        row("search", "GraphQL via Envoy", &load, &g);
        let s = fixed_rate(*rate, args.seconds, sql_search.clone()).await;
        row("search", "same SQL (sqlx)", &load, &s);
        let g = fixed_rate(*rate, args.seconds, gql_details.clone()).await;
        row("details", "GraphQL via Envoy", &load, &g);
        let s = fixed_rate(*rate, args.seconds, sql_details.clone()).await;
        row("details", "same SQL (sqlx)", &load, &s);
    }
    let load = format!("max, {} clients", args.concurrency);
    for (name, g, s) in [
        (
            "search",
            max_throughput(args.concurrency, args.seconds, gql_search.clone()).await,
            max_throughput(args.concurrency, args.seconds, sql_search.clone()).await,
        ),
        (
            "details",
            max_throughput(args.concurrency, args.seconds, gql_details.clone()).await,
            max_throughput(args.concurrency, args.seconds, sql_details.clone()).await,
        ),
    ] {
        row(name, "GraphQL via Envoy", &load, &g);
        row(name, "same SQL (sqlx)", &load, &s);
        ratios.push((name, g.rps() / s.rps(), g.p50, s.p50));
    }
    println!();
    for (name, ratio, gp50, sp50) in ratios {
        println!(
            "- {name}: maximum throughput through GraphQL + Envoy is {ratio:.2}× the raw SQL's; \
             at that load the SQL is {:.0}% of the p50.",
            100.0 * sp50.as_secs_f64() / gp50.as_secs_f64().max(1e-9)
        );
    }
    if let Some(redis) = redis_get_latency(&args.redis).await {
        println!(
            "- A Redis GET round trip on this machine (the floor of any cache in front of these \
             queries): p50 {} ms.",
            ms(redis)
        );
    }
    Ok(())
}

/// The p50 of 2,000 `GET` round trips to Redis over RESP, or `None` when none answers.
async fn redis_get_latency(addr: &str) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let key = "query-bench:no-such-key";
    let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    let cmd = cmd.as_bytes();
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(cmd).await.ok()?;
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    lat.get(lat.len() / 2).copied()
}
