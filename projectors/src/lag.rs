//! Consumer lag of a projection, per partition: how many records of its topics are past its
//! PostgreSQL checkpoint, and how old the oldest of them is.
//!
//! The broker's high watermark is not trusted on its own (the local broker reports a wrong
//! one, see docs/operations.md): the lag is counted by reading the records after the
//! checkpoint until the topic stays quiet, and the watermark is only used when there are
//! more records than the probe may read. The projectors export the result as Prometheus
//! gauges (`projector_lag_events`, `projector_lag_seconds`); `commerce projections status`
//! prints it.

use command_services::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// (topic, partition) → next offset to apply.
pub type Checkpoints = BTreeMap<(String, i32), i64>;

/// The lag of one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the projection will apply (0 when it has none yet).
    pub checkpoint: i64,
    /// The offset after the last record seen.
    pub end: i64,
    pub lag_events: i64,
    /// Age of the oldest record not applied yet (0 when none).
    pub lag_seconds: f64,
}

/// The projection's checkpoints as committed with its read model.
pub async fn load_checkpoints(pool: &PgPool, projection: &str) -> sqlx::Result<Checkpoints> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT topic, partition, next_offset FROM projector_checkpoints WHERE projection = $1",
    )
    .bind(projection)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// How many partitions each topic has.
pub fn partitions(
    consumer: &BaseConsumer,
    topics: &[String],
) -> anyhow::Result<Vec<(String, i32)>> {
    let mut out = Vec::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let n = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        for p in 0..n as i32 {
            out.push((topic.clone(), p));
        }
    }
    Ok(out)
}

/// Measures the lag of every partition of `topics` behind `checkpoints` (blocking: call it
/// from `spawn_blocking`). Reads at most `cap` records; stops after `quiet` without one.
pub fn measure(
    kafka: &KafkaArgs,
    topics: &[String],
    checkpoints: &Checkpoints,
    quiet: Duration,
    cap: usize,
) -> anyhow::Result<Vec<PartitionLag>> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "commerce-lag-probe")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let parts = partitions(&consumer, topics)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        let at = checkpoints
            .get(&(t.clone(), *p))
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        tpl.add_partition_offset(t, *p, at)?;
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    let mut counts: HashMap<(String, i32), (i64, i64, Option<i64>)> = HashMap::new();
    let mut total = 0usize;
    let mut last = Instant::now();
    let mut capped = false;
    while last.elapsed() < quiet {
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m?;
        last = Instant::now();
        let key = (m.topic().to_owned(), m.partition());
        let from = checkpoints.get(&key).copied().unwrap_or(0);
        if m.offset() < from {
            continue;
        }
        let e = counts.entry(key).or_insert((0, 0, None));
        e.0 += 1;
        e.1 = e.1.max(m.offset() + 1);
        if e.2.is_none() {
            e.2 = m.timestamp().to_millis();
        }
        total += 1;
        if total >= cap {
            capped = true;
            break;
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::new();
    for (t, p) in parts {
        let checkpoint = checkpoints.get(&(t.clone(), p)).copied().unwrap_or(0);
        let (count, seen_end, first_ts) =
            counts.get(&(t.clone(), p)).cloned().unwrap_or((0, 0, None));
        let mut lag = count;
        if capped {
            if let Ok((_, high)) = consumer.fetch_watermarks(&t, p, Duration::from_secs(5)) {
                lag = lag.max(high - checkpoint);
            }
        }
        out.push(PartitionLag {
            end: seen_end.max(checkpoint + lag),
            topic: t,
            partition: p,
            checkpoint,
            lag_events: lag,
            lag_seconds: first_ts.map_or(0.0, |ts| ((now - ts).max(0) as f64) / 1000.0),
        });
    }
    Ok(out)
}

/// Keeps `projector_lag_events` and `projector_lag_seconds` current, every `every`.
pub async fn export_metrics(
    pool: PgPool,
    kafka: KafkaArgs,
    projection: &'static str,
    topics: Vec<String>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match load_checkpoints(&pool, projection).await {
            Ok(cps) => {
                let (k, t) = (kafka.clone(), topics.clone());
                let measured = tokio::task::spawn_blocking(move || {
                    // Past 10k records the watermark is taken (right on real Kafka).
                    measure(&k, &t, &cps, Duration::from_millis(300), 10_000)
                })
                .await;
                match measured {
                    Ok(Ok(lags)) => {
                        for l in lags {
                            let partition = l.partition.to_string();
                            metrics::gauge!("projector_lag_events", "projection" => projection,
                                "topic" => l.topic.clone(), "partition" => partition.clone())
                            .set(l.lag_events as f64);
                            metrics::gauge!("projector_lag_seconds", "projection" => projection,
                                "topic" => l.topic, "partition" => partition)
                            .set(l.lag_seconds);
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "lag probe failed"),
                    Err(e) => tracing::debug!(error = %e, "lag probe panicked"),
                }
            }
            Err(e) => tracing::debug!(error = %e, "reading checkpoints for lag failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
