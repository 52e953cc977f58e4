//! `rebuild-bench`: the rebuild's throughput over a large topic, next to a raw rdkafka
//! consumer reading the same topic in the same run. It fills `commerce.cart.events` with
//! synthetic cart streams (one `CartCreated` and `--items` `CartItemAdded` per cart, as
//! CloudEvents, key = cart id), reads them once with a bare consumer, then runs the
//! engine behind `commerce projections rebuild cart --adopt-offsets` (the one of
//! `projectors::rebuild`) into an empty database and reports the whole time, the catch-up
//! rate, and where the time went. Run it through `scripts/bench-rebuild.sh`, which starts a
//! broker of its own and records the output in docs/BENCHMARKS.md.

use clap::Parser;
use event_schemas::{cloudevents, topic_for, EventEnvelope};
use platform::kafka::KafkaArgs;
use projectors::rebuild::{rebuild, RebuildOptions};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Events to write and rebuild from.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// `CartItemAdded` per cart (each cart also has a `CartCreated`).
    #[arg(long, default_value_t = 4)]
    items: usize,
    /// Records per rebuild transaction.
    #[arg(long, default_value_t = 5000)]
    batch_size: usize,
    /// Apply one event at a time (the live projector's way) instead of the batched path.
    #[arg(long)]
    per_event: bool,
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: String,
}

fn envelope(
    cart: &str,
    version: u64,
    event_type: &str,
    schema: u32,
    data: serde_json::Value,
) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream_type: "cart".into(),
        stream_id: cart.into(),
        version,
        event_type: event_type.into(),
        schema_version: schema,
        occurred_at: chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
            .unwrap_or_default(),
        correlation_id: "bench".into(),
        causation_id: None,
        actor: "anonymous".into(),
        data,
        traceparent: None,
    }
}

fn fill(args: &Args, topic: &str) -> anyhow::Result<(usize, Duration)> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka_brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .create()?;
    let start = Instant::now();
    let mut n = 0;
    while n < args.events {
        let cart = uuid::Uuid::now_v7().to_string();
        let mut events = vec![envelope(
            &cart,
            1,
            "CartCreated",
            1,
            json!({ "cart_id": cart }),
        )];
        for i in 0..args.items {
            events.push(envelope(
                &cart,
                i as u64 + 2,
                "CartItemAdded",
                3,
                json!({ "product_id": uuid::Uuid::new_v4(), "quantity": 1 + i % 5 }),
            ));
        }
        for e in events {
            let payload = cloudevents::encode(&e);
            let mut record = BaseRecord::to(topic).key(cart.as_str()).payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            n += 1;
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok((n, start.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let topic = topic_for("cart");
    let kafka = KafkaArgs {
        kafka_brokers: args.kafka_brokers.clone(),
        kafka_partitions: 3,
        kafka_replication: 1,
    };
    kafka.ensure_topics(std::slice::from_ref(&topic)).await?;
    let pool = read_model::connect_pg(&args.database_url, 4).await?;
    read_model::migrate(&pool).await?;
    for q in [
        "TRUNCATE carts, cart_lines",
        "DELETE FROM projector_checkpoints WHERE projection = 'cart'",
        "DROP SCHEMA IF EXISTS rebuild_cart CASCADE",
    ] {
        sqlx::query(q).execute(&pool).await?;
    }

    let a = args;
    let (written, fill_time) = tokio::task::block_in_place(|| fill(&a, &topic))?;
    eprintln!("wrote {written} events in {:.1} s", fill_time.as_secs_f64());
    let (read, read_time) = tokio::task::block_in_place(|| {
        e2e_tests::raw_consume(&a.kafka_brokers, &topic, written, Duration::from_secs(600))
    })?;
    let raw_rate = read as f64 / read_time.as_secs_f64();
    eprintln!(
        "raw consumer: {read} records in {:.1} s",
        read_time.as_secs_f64()
    );

    let model = projectors::registry::find("cart").ok_or_else(|| anyhow::anyhow!("no cart"))?;
    let opts = RebuildOptions {
        batch_size: a.batch_size,
        adopt_offsets: true,
        quiet: Duration::from_secs(3),
        per_event: a.per_event,
        ..RebuildOptions::default()
    };
    let mut last_print = Instant::now();
    let report = rebuild(&pool, &kafka, &model, &opts, |p| {
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("rebuild: {} events, {:.0}/s", p.done, p.rate_per_sec);
            last_print = Instant::now();
        }
    })
    .await?;
    let carts: i64 = sqlx::query_scalar("SELECT count(*) FROM carts")
        .fetch_one(&pool)
        .await?;
    let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_lines")
        .fetch_one(&pool)
        .await?;
    let rate = report.events as f64 / report.catch_up_seconds;
    println!("| measure | events | seconds | rate | raw consumer, same run | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| raw rdkafka consumer, `{topic}` from offset 0 | {read} | {:.1} | {:.0}/s | - | - |",
        read_time.as_secs_f64(),
        raw_rate
    );
    println!(
        "| `projections rebuild cart` catch-up (batch {}, {}) | {} | {:.1} | {:.0}/s | {:.0}/s | {:.3} |",
        a.batch_size,
        if a.per_event { "one event at a time" } else { "batched apply" },
        report.events,
        report.catch_up_seconds,
        rate,
        raw_rate,
        rate / raw_rate
    );
    println!(
        "| whole rebuild (schema, catch-up, {} s quiet wait, switch, drop) | {} | {:.1} | - | - | - |",
        opts.quiet.as_secs(),
        report.events,
        report.seconds
    );
    println!();
    println!(
        "Rebuilt: {carts} carts, {lines} cart lines ({} skipped). Where the catch-up's time went: \
         {:.1} s applying events in PostgreSQL ({:.0} µs per event), {:.1} s committing, \
         {:.1} s reading and decoding records.",
        report.skipped,
        report.profile.apply_seconds,
        1e6 * report.profile.apply_seconds / report.events.max(1) as f64,
        report.profile.commit_seconds,
        report.profile.read_seconds,
    );
    Ok(())
}
