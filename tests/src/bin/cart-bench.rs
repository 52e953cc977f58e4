//! `cart-bench`: cart commands per second through gRPC, next to the raw MongoDB driver insert
//! rate against the same store in the same run; and the projector's events per second next to
//! a raw Kafka consumer reading the same topic; the same command through GraphQL and Envoy;
//! and freshness (mutation answered → visible in a query) at a steady rate. Bounded in count;
//! loopback only. Run it through
//! `make bench`, which brings up a release-mode stack of its own and records the output in
//! docs/BENCHMARKS.md.

use clap::Parser;
use domain::cart::{CartEvent, CartItemAdded};
use domain::values::{ProductId, Quantity};
use event_schemas::{EventEnvelope, EventMeta};
use event_store::event_store::to_document;
use proto::cart::cart_commands_client::CartCommandsClient;
use proto::cart::{AddItemRequest, CreateCartRequest};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Commands (and raw inserts) per measurement.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, env = "MONGODB_URI")]
    mongodb_uri: String,
    #[arg(long, env = "MONGODB_DB", default_value = "commerce")]
    mongodb_db: String,
    #[arg(long, env = "CART_COMMAND_URL")]
    cart_command_url: String,
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: String,
    #[arg(long, env = "GRAPHQL_URL")]
    graphql_url: String,
    /// The cart projector's admin address (its `/metrics`: batches committed).
    #[arg(long, env = "CART_PROJECTOR_ADMIN_URL")]
    cart_projector_admin_url: String,
    /// Steady command rate (per second) for the freshness measurement; by default 500/s or,
    /// if the GraphQL path held less, 80% of what it held.
    #[arg(long)]
    freshness_rate: Option<u32>,
    /// Seconds of the freshness measurement.
    #[arg(long, default_value_t = 10)]
    freshness_seconds: u64,
    /// Command that stops / starts the projector (the launcher).
    #[arg(long, default_value = "scripts/stack.sh")]
    stack: String,
}

struct Rate {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i].as_secs_f64() * 1000.0
    }
}

/// Runs `per_worker` operations on each of `workers` tasks and times them.
async fn measure<F, Fut>(workers: usize, per_worker: usize, op: F) -> anyhow::Result<Rate>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let t = Instant::now();
                op(w, i).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Rate {
        ops: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    })
}

/// Stops or starts a service of the stack through the launcher, with extra environment.
fn stack(args: &Args, verb: &str, service: &str, env: &[(&str, &str)]) -> anyhow::Result<()> {
    let ok = std::process::Command::new(&args.stack)
        .args([verb, service])
        .env_remove("KAFKA_BROKERS")
        .env_remove("MONGODB_URI")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .status()?
        .success();
    anyhow::ensure!(ok, "{} {verb} {service} failed", args.stack);
    Ok(())
}

/// Restarts the cart command service with `env` (group-commit settings) and connects to it.
async fn restart_cart_command(
    args: &Args,
    env: &[(&str, &str)],
) -> anyhow::Result<CartCommandsClient<e2e_tests::AuthedChannel>> {
    stack(args, "stop", "cart-command", &[])?;
    stack(args, "start", "cart-command", env)?;
    Ok(CartCommandsClient::new(
        e2e_tests::authed_channel(&args.cart_command_url, e2e_tests::operator()).await?,
    ))
}

/// `AddItem` from `workers` clients, each on a cart of its own.
async fn add_items(
    grpc: &CartCommandsClient<e2e_tests::AuthedChannel>,
    workers: usize,
    per_worker: usize,
) -> anyhow::Result<(Rate, Vec<String>)> {
    let mut carts = Vec::new();
    for _ in 0..workers {
        let r = grpc
            .clone()
            .create_cart(CreateCartRequest::default())
            .await?;
        carts.push(r.into_inner().cart_id);
    }
    let products: Vec<String> = (0..50).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let rate = measure(workers, per_worker, {
        let grpc = grpc.clone();
        let carts = carts.clone();
        move |w, i| {
            let mut grpc = grpc.clone();
            let cart_id = carts[w].clone();
            let product_id = products[i % products.len()].clone();
            async move {
                grpc.add_item(AddItemRequest {
                    meta: None,
                    cart_id,
                    product_id,
                    quantity: 1,
                })
                .await?;
                Ok(())
            }
        }
    })
    .await?;
    Ok((rate, carts))
}

fn sample_event(i: usize) -> anyhow::Result<EventEnvelope> {
    let e = CartEvent::CartItemAdded(CartItemAdded {
        product_id: ProductId::generate(),
        quantity: Quantity::new(1 + (i % 5) as i64)?,
    });
    Ok(EventEnvelope::new(
        "bench",
        &uuid::Uuid::now_v7().to_string(),
        1,
        &e,
        &EventMeta::default(),
        chrono::Utc::now(),
    )?)
}

/// Rows written (inserted, updated, deleted) in this database so far, from PostgreSQL's
/// statistics.
async fn pg_writes(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (tup_inserted + tup_updated + tup_deleted)::bigint \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// [`pg_writes`] once the projector's counts are in: a backend reports its statistics when
/// it goes idle, at most once a second and otherwise up to 10 s later, so this waits for the
/// count to move past `before` and then to hold still for 11 seconds.
async fn pg_writes_settled(pool: &sqlx::PgPool, before: i64) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = pg_writes(pool).await?;
    let mut still_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = pg_writes(pool).await?;
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if last > before && still_since.elapsed() >= Duration::from_secs(11) {
            break;
        }
    }
    Ok(last)
}

/// A counter or histogram field summed over a metrics page, e.g. the projector's
/// `projector_batch_size_count` for one projection.
async fn metric(
    http: &reqwest::Client,
    admin: &str,
    name: &str,
    label: &str,
) -> anyhow::Result<f64> {
    let page = http
        .get(format!("{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(page
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

const ADD_ITEM: &str = "mutation($c: ID!, $p: ID!) { addItemToCart(cartId: $c, productId: $p, quantity: 1) { version } }";

async fn graphql(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    variables: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .post(url)
        .json(&serde_json::json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?)
}

/// Open loop at `freshness_rate`: each tick adds an item to one of the carts, then asks for
/// the cart at the new version. Returns the answer-to-visible latencies and the STALE count.
async fn freshness(
    http: &reqwest::Client,
    args: &Args,
    rate: u32,
    carts: &[String],
) -> anyhow::Result<(Rate, usize)> {
    const AT_LEAST: &str =
        "query($c: ID!, $v: Int!) { cart(id: $c, atLeastVersion: $v) { version } }";
    let total = rate as usize * args.freshness_seconds as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    // One task per cart in turn would serialise on the cart; spread ticks over many carts.
    let mut spread = carts.to_vec();
    for _ in 0..(50usize.saturating_sub(carts.len())) {
        let body = graphql(
            http,
            &args.graphql_url,
            "mutation { createCart { cartId } }",
            serde_json::json!({}),
        )
        .await?;
        if let Some(c) = body["data"]["createCart"]["cartId"].as_str() {
            spread.push(c.to_owned());
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let (http, url) = (http.clone(), args.graphql_url.clone());
        let cart = spread[i % spread.len()].clone();
        tasks.push(tokio::spawn(async move {
            let product = uuid::Uuid::from_u128(i as u128 % 50 + 1).to_string();
            let body = graphql(
                &http,
                &url,
                ADD_ITEM,
                serde_json::json!({ "c": cart, "p": product }),
            )
            .await?;
            let v = body["data"]["addItemToCart"]["version"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("{body}"))?;
            let answered = Instant::now();
            let body = graphql(
                &http,
                &url,
                AT_LEAST,
                serde_json::json!({ "c": cart, "v": v }),
            )
            .await?;
            let visible = body["data"]["cart"]["version"]
                .as_i64()
                .is_some_and(|got| got >= v);
            Ok::<_, anyhow::Error>((answered.elapsed(), visible))
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut stale = 0;
    for t in tasks {
        let (d, visible) = t.await??;
        if visible {
            latencies.push(d);
        } else {
            stale += 1;
        }
    }
    Ok((
        Rate {
            ops: latencies.len() + stale,
            elapsed: start.elapsed(),
            latencies,
        },
        stale,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let per_worker = args.count.div_ceil(args.concurrency);
    let workers = args.concurrency;

    // 1. The raw limit: single driver inserts of event-shaped documents, same store.
    let client = mongodb::Client::with_uri_str(&args.mongodb_uri).await?;
    let raw = client
        .database(&args.mongodb_db)
        .collection::<mongodb::bson::Document>("bench_raw_inserts");
    raw.drop().await?;
    // The same indexes as the events collection, so the raw inserts pay what appends pay.
    for keys in [
        mongodb::bson::doc! { "stream_id": 1, "version": 1 },
        mongodb::bson::doc! { "published": 1, "stream_id": 1, "version": 1 },
        mongodb::bson::doc! { "stream_type": 1, "occurred_at": 1 },
    ] {
        raw.create_index(mongodb::IndexModel::builder().keys(keys).build())
            .await?;
    }
    let raw_rate = measure(workers, per_worker, {
        let raw = raw.clone();
        move |_, i| {
            let raw = raw.clone();
            async move {
                let doc = to_document(&sample_event(i)?)?;
                raw.insert_one(doc).await?;
                Ok(())
            }
        }
    })
    .await?;

    // 1b. The store's batching option: the same documents, `batch` per `insert_many`, from
    //     two clients (what group commit turns concurrent appends into).
    let mut raw_batched = Vec::new();
    for batch in [8usize, 64] {
        let requests = args.count.div_ceil(batch * 2);
        let rate = measure(2, requests, {
            let raw = raw.clone();
            move |_, i| {
                let raw = raw.clone();
                async move {
                    let docs = (0..batch)
                        .map(|j| Ok(to_document(&sample_event(i * batch + j)?)?))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    raw.insert_many(docs).ordered(false).await?;
                    Ok(())
                }
            }
        })
        .await?;
        raw_batched.push((batch, rate));
    }

    // 2. Commands through gRPC, first with group commit off (one insert per append), then
    //    with the default; for the second the projector is stopped, so the events pile up
    //    for step 3.
    //    First, with the relay stopped: what the command path costs the store on its own,
    //    without the relay's change-stream reads and `published` marks; once restarted, the
    //    relay publishes the backlog before the next measurement starts.
    let grpc = CartCommandsClient::new(
        e2e_tests::authed_channel(&args.cart_command_url, e2e_tests::operator()).await?,
    );
    stack(&args, "stop", "relay", &[])?;
    let (no_relay_rate, _) = add_items(&grpc, workers, per_worker).await?;
    stack(&args, "start", "relay", &[])?;
    let events = client
        .database(&args.mongodb_db)
        .collection::<mongodb::bson::Document>("events");
    let deadline = Instant::now() + Duration::from_secs(180);
    while events
        .count_documents(mongodb::bson::doc! { "published": false })
        .await?
        > 0
    {
        anyhow::ensure!(Instant::now() < deadline, "the relay did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grpc = restart_cart_command(&args, &[("STORE_GROUP_COMMIT", "1")]).await?;
    let (single_rate, _) = add_items(&grpc, workers, per_worker).await?;
    let grpc = restart_cart_command(&args, &[]).await?;
    stack(&args, "stop", "cart-projector", &[])?;
    let (cmd_rate, carts) = add_items(&grpc, workers, per_worker).await?;

    // 3. The projector catching up on the backlog: from its first committed batch to the last.
    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    let target: i64 = workers as i64 * (per_worker as i64 + 1);
    let applied = |pool: sqlx::PgPool, carts: Vec<String>| async move {
        let ids: Vec<uuid::Uuid> = carts.iter().filter_map(|c| c.parse().ok()).collect();
        let v: Option<i64> =
            sqlx::query_scalar("SELECT sum(version)::bigint FROM carts WHERE id = ANY($1)")
                .bind(ids)
                .fetch_one(&pool)
                .await?;
        Ok::<_, anyhow::Error>(v.unwrap_or(0))
    };
    let before = applied(pool.clone(), carts.clone()).await?;
    let written_before = pg_writes(&pool).await?;
    let started = Instant::now();
    stack(&args, "start", "cart-projector", &[])?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut first, mut first_at) = (None, Instant::now());
    loop {
        let now = applied(pool.clone(), carts.clone()).await?;
        if first.is_none() && now > before {
            first = Some(now);
            first_at = Instant::now();
        }
        if now >= target || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done_at = Instant::now();
    let final_applied = applied(pool.clone(), carts.clone()).await?;
    let rows_written = pg_writes_settled(&pool, written_before).await? - written_before;
    let http = reqwest::Client::new();
    let batches = metric(
        &http,
        &args.cart_projector_admin_url,
        "projector_batch_size_count",
        "projection=\"cart\"",
    )
    .await?;
    // From the first committed batch to the last; a projector that applied the whole
    // backlog before its health check answered (the first look saw it all) is timed from
    // the start command instead, start-up included: a lower bound.
    let (from, since) = match first {
        Some(f) if f < final_applied => (f, first_at),
        _ => (before, started),
    };
    let projected = (final_applied - from).max(0) as usize;
    let proj_rate = Rate {
        ops: projected,
        elapsed: done_at
            .saturating_duration_since(since)
            .max(Duration::from_millis(1)),
        latencies: Vec::new(),
    };

    // 4. The raw limit of the read side: a plain consumer over the same topic.
    let topic_events = target as usize;
    let brokers = args.kafka_brokers.clone();
    let consume = tokio::task::spawn_blocking(move || {
        e2e_tests::raw_consume(
            &brokers,
            "commerce.cart.events",
            topic_events,
            Duration::from_secs(120),
        )
        .map(|(ops, elapsed)| Rate {
            ops,
            elapsed,
            latencies: Vec::new(),
        })
    })
    .await??;

    // 5. The same command through GraphQL and Envoy (the projector running again).
    let gql_carts = {
        let mut ids = Vec::new();
        for _ in 0..workers {
            let body = graphql(
                &http,
                &args.graphql_url,
                "mutation { createCart { cartId } }",
                serde_json::json!({}),
            )
            .await?;
            ids.push(
                body["data"]["createCart"]["cartId"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("createCart: {body}"))?
                    .to_owned(),
            );
        }
        ids
    };
    let gql_rate = measure(workers, per_worker / 2, {
        let (http, url, carts) = (http.clone(), args.graphql_url.clone(), gql_carts.clone());
        move |w, i| {
            let (http, url, cart) = (http.clone(), url.clone(), carts[w].clone());
            async move {
                let product = uuid::Uuid::from_u128(i as u128 % 50 + 1).to_string();
                let body = graphql(
                    &http,
                    &url,
                    ADD_ITEM,
                    serde_json::json!({ "c": cart, "p": product }),
                )
                .await?;
                anyhow::ensure!(body["data"]["addItemToCart"]["version"].is_u64(), "{body}");
                Ok(())
            }
        }
    })
    .await?;

    // 6. Freshness: at a steady rate, from a mutation's answer to a query showing it (the
    //    query waits on the projector's NOTIFY for `atLeastVersion`).
    let fresh_rate = args
        .freshness_rate
        .unwrap_or_else(|| (gql_rate.per_sec() * 0.8).clamp(10.0, 500.0) as u32);
    let fresh = freshness(&http, &args, fresh_rate, &gql_carts).await?;

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("| measure | rate | p50 ms | p99 ms | raw limit, same run | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| MongoDB driver `insert_one`, {workers} clients ({} docs) | {:.0}/s | {:.2} | {:.2} | - | - |",
        raw_rate.ops,
        raw_rate.per_sec(),
        raw_rate.pct(0.5),
        raw_rate.pct(0.99)
    );
    for (batch, rate) in &raw_batched {
        println!(
            "| MongoDB driver `insert_many`, {batch} docs per call, 2 clients ({} docs) | {:.0}/s | {:.2} | {:.2} | {:.0}/s `insert_one` | {:.2} |",
            rate.ops * batch,
            rate.per_sec() * *batch as f64,
            rate.pct(0.5),
            rate.pct(0.99),
            raw_rate.per_sec(),
            rate.per_sec() * *batch as f64 / raw_rate.per_sec()
        );
    }
    println!(
        "| cart `AddItem` via gRPC, group commit on, relay stopped, {workers} clients ({} commands) | {:.0}/s | {:.2} | {:.2} | {:.0}/s inserts | {:.2} |",
        no_relay_rate.ops,
        no_relay_rate.per_sec(),
        no_relay_rate.pct(0.5),
        no_relay_rate.pct(0.99),
        raw_rate.per_sec(),
        no_relay_rate.per_sec() / raw_rate.per_sec()
    );
    println!(
        "| cart `AddItem` via gRPC, group commit off, {workers} clients ({} commands) | {:.0}/s | {:.2} | {:.2} | {:.0}/s inserts | {:.2} |",
        single_rate.ops,
        single_rate.per_sec(),
        single_rate.pct(0.5),
        single_rate.pct(0.99),
        raw_rate.per_sec(),
        single_rate.per_sec() / raw_rate.per_sec()
    );
    println!(
        "| cart `AddItem` via gRPC, group commit on (default), {workers} clients ({} commands) | {:.0}/s | {:.2} | {:.2} | {:.0}/s inserts | {:.2} |",
        cmd_rate.ops,
        cmd_rate.per_sec(),
        cmd_rate.pct(0.5),
        cmd_rate.pct(0.99),
        raw_rate.per_sec(),
        cmd_rate.per_sec() / raw_rate.per_sec()
    );
    println!(
        "| raw Kafka consumer, same topic ({} records) | {:.0}/s | - | - | - | - |",
        consume.ops,
        consume.per_sec()
    );
    println!(
        "| cart projector catching up ({} events applied, final {final_applied}/{target}) | {:.0}/s | - | - | {:.0}/s consumer | {:.2} |",
        proj_rate.ops,
        proj_rate.per_sec(),
        consume.per_sec(),
        proj_rate.per_sec() / consume.per_sec()
    );
    println!(
        "| cart projector's PostgreSQL writes, start to caught up ({rows_written} rows for {} events, {batches:.0} transactions) | {:.0} rows/s | - | - | - | - |",
        target - before,
        rows_written as f64 / done_at.duration_since(started).as_secs_f64()
    );
    println!(
        "| cart `addItemToCart` via GraphQL + Envoy, {workers} clients ({} commands) | {:.0}/s | {:.2} | {:.2} | {:.0}/s inserts | {:.2} |",
        gql_rate.ops,
        gql_rate.per_sec(),
        gql_rate.pct(0.5),
        gql_rate.pct(0.99),
        raw_rate.per_sec(),
        gql_rate.per_sec() / raw_rate.per_sec()
    );
    println!(
        "| freshness: mutation answered → visible in a query, at {}/s for {} s ({} commands, {} stale) | - | {:.2} | {:.2} | - | - |",
        fresh_rate,
        args.freshness_seconds,
        fresh.0.ops,
        fresh.1,
        fresh.0.pct(0.5),
        fresh.0.pct(0.99)
    );
    println!();
    println!(
        "p99 GraphQL command latency / p99 raw insert latency: {:.2}",
        gql_rate.pct(0.99) / raw_rate.pct(0.99).max(1e-9)
    );
    println!(
        "p99 command latency / p99 raw insert latency: {:.2} (group commit off: {:.2})",
        cmd_rate.pct(0.99) / raw_rate.pct(0.99).max(1e-9),
        single_rate.pct(0.99) / raw_rate.pct(0.99).max(1e-9)
    );
    println!("machine: {cpus} CPUs; {}", std::env::consts::ARCH);
    Ok(())
}
