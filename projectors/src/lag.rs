//! Consumer lag of a projection, per partition: how many records of its topics are past its
//! PostgreSQL checkpoint, and how old the oldest of them is.
//!
//! The broker's high watermark is not trusted on its own (the local broker reports a wrong
//! one, see docs/operations.md): the lag is counted by reading the records after the
//! checkpoint until the topic stays quiet, and the watermark is only used when there are
//! more records than the probe may read. The projectors export the result as Prometheus
//! gauges (`projector_lag_events`, `projector_lag_seconds`); `commerce projections status`
//! prints it.
//!
//! Beside the lag, [`ProjectorHealth`] turns what the runtime reports (commits, failing
//! batches, heals) and the lag into one state: `ok`, `lagging`, `healing` or `stalled`. It is
//! refreshed with every measurement (every 2 s): the admin `/healthz` body and `/status`, the
//! `projector_state` gauge, and the `projector_status` row that `projections status` reads.

use platform::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
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
    let consumer = kafka
        .consumer("commerce-lag-probe")
        .from_earliest()
        .base()?;
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
    // A new consumer's first fetch can take far longer than `quiet` on a loaded machine: until
    // the broker has answered with a record, "quiet" would only mean "not connected yet".
    let first_wait = quiet.max(FIRST_RECORD_WAIT);
    let mut heard = false;
    while last.elapsed() < if heard { quiet } else { first_wait } {
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m?;
        heard = true;
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

/// What the relay's watermark says about the broker the projection reads (see
/// `event_store::watermark::read_watermark`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RelayMark {
    /// The projection has no event store configured: only the broker is measured.
    #[default]
    Untracked,
    /// No watermark for the cluster the projection reads (the relay has not checked it yet,
    /// is republishing what it lost, or is down).
    Unknown,
    /// Every event committed before this time is on the broker.
    Through(chrono::DateTime<chrono::Utc>),
}

/// A replay after a reset.
#[derive(Debug)]
struct Healing {
    reason: String,
    since: Instant,
    since_wall: chrono::DateTime<chrono::Utc>,
    /// A measurement was taken since the replay began, after the relay had confirmed that
    /// the broker holds every event committed before it.
    seen: bool,
    /// Such measurements in a row that found nothing left to replay.
    caught_up: u32,
}

/// What the runtime tells the health report.
#[derive(Debug, Default)]
struct HealthInner {
    healing: Option<Healing>,
    relay: RelayMark,
    failing_since: Option<(Instant, String)>,
    last_commit: Option<Instant>,
    lag_events: i64,
    lag_seconds: f64,
    /// When the last lag measurement was taken (wall clock).
    measured_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A projector's health, shared by its runtime and its lag exporter.
#[derive(Debug, Default, Clone)]
pub struct ProjectorHealth(Arc<Mutex<HealthInner>>);

/// How long the lag probe waits for the broker's first record before it takes the
/// partitions as empty past the checkpoints.
const FIRST_RECORD_WAIT: Duration = Duration::from_secs(2);

/// A heal ends after this many measurements in a row that found nothing left to replay.
const HEALED_AFTER: u32 = 2;

/// How long a failing batch or a lag without a commit may last before it is `stalled`.
const STALL_AFTER: Duration = Duration::from_secs(8);

impl ProjectorHealth {
    fn with<T>(&self, f: impl FnOnce(&mut HealthInner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    /// The projection reset its checkpoints and replays: healing until it has caught up.
    pub fn healing(&self, reason: impl Into<String>) {
        let reason = reason.into();
        metrics::counter!("projector_heals_total").increment(1);
        self.with(|h| {
            h.healing = Some(Healing {
                reason,
                since: Instant::now(),
                since_wall: chrono::Utc::now(),
                seen: false,
                caught_up: 0,
            })
        });
    }
    /// A batch committed.
    pub fn committed(&self) {
        self.with(|h| {
            h.last_commit = Some(Instant::now());
            h.failing_since = None;
        });
    }
    /// A batch failed and is retried.
    pub fn failed(&self, error: &str) {
        self.with(|h| {
            if h.failing_since.is_none() {
                h.failing_since = Some((Instant::now(), error.to_owned()));
            }
        });
    }
    /// A lag measurement, and the relay's watermark as read just before it.
    fn measured(&self, lag_events: i64, lag_seconds: f64, relay: RelayMark) {
        self.with(|h| {
            h.lag_events = lag_events;
            h.lag_seconds = lag_seconds;
            h.relay = relay;
            h.measured_at = Some(chrono::Utc::now());
            // Nothing left to apply: whatever failed before (a broker that was down, a batch
            // retried until it went through) no longer holds the projection back.
            if lag_events == 0 {
                h.failing_since = None;
            }
            if let Some(heal) = &mut h.healing {
                // A measurement that began after the reset, over a broker the relay had
                // refilled: a lag of 0 then means the replay is done, not that the refill
                // has not begun.
                heal.seen |= match relay {
                    RelayMark::Untracked => heal.since.elapsed() > Duration::from_secs(1),
                    RelayMark::Unknown => false,
                    RelayMark::Through(t) => t > heal.since_wall,
                };
                if heal.seen && lag_events == 0 {
                    heal.caught_up += 1;
                } else {
                    heal.caught_up = 0;
                }
            }
        });
    }
    /// Up to when every event has been applied, as of the last measurement: the time of
    /// the oldest record still waiting (the measurement's time if none waits), and never
    /// past the relay's watermark (events still in the store only are not applied either).
    /// `None` before the first measurement, while replaying after a reset and while the
    /// relay vouches for no time on this broker. A saga may take "no answer came by the
    /// deadline" as true only for deadlines before this.
    pub fn consumed_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.with(|h| {
            if h.healing.is_some() {
                return None;
            }
            let at = h.measured_at?;
            let behind = chrono::Duration::milliseconds((h.lag_seconds * 1000.0) as i64);
            let applied = at - behind;
            match h.relay {
                RelayMark::Untracked => Some(applied),
                RelayMark::Unknown => None,
                RelayMark::Through(t) => Some(applied.min(t)),
            }
        })
    }
    /// The state (`ok`, `lagging`, `healing`, `stalled`) and a detail line.
    pub fn state(&self) -> (&'static str, String) {
        self.with(|h| {
            if h.healing
                .as_ref()
                .is_some_and(|heal| heal.caught_up >= HEALED_AFTER)
            {
                h.healing = None;
            }
            if let Some((since, e)) = &h.failing_since {
                if since.elapsed() >= STALL_AFTER {
                    return (
                        "stalled",
                        format!("batches failing for {} s: {e}", since.elapsed().as_secs()),
                    );
                }
            }
            if let Some(heal) = &h.healing {
                let waiting = if heal.seen {
                    ""
                } else {
                    "; waiting for the relay to vouch for the broker's copy"
                };
                return (
                    "healing",
                    format!(
                        "{}; {} events to replay{waiting}",
                        heal.reason, h.lag_events
                    ),
                );
            }
            let idle = h.last_commit.map_or(Duration::MAX, |t| t.elapsed());
            if h.lag_events > 0 && idle >= STALL_AFTER && h.lag_seconds >= STALL_AFTER.as_secs_f64()
            {
                return (
                    "stalled",
                    format!(
                        "{} events waiting for {:.0} s, nothing applied",
                        h.lag_events, h.lag_seconds
                    ),
                );
            }
            if h.lag_events > 0 {
                return (
                    "lagging",
                    format!("{} events, {:.1} s behind", h.lag_events, h.lag_seconds),
                );
            }
            ("ok", String::new())
        })
    }
}

/// Publishes the health: readiness state, gauges and the `projector_status` row.
async fn report(
    pool: &PgPool,
    projection: &'static str,
    health: &ProjectorHealth,
    ready: &platform::support::Readiness,
) {
    let (state, detail) = health.state();
    if ready.is_ready() {
        ready.set_state(state, detail.clone());
    }
    for s in ["ok", "lagging", "healing", "stalled"] {
        metrics::gauge!("projector_state", "projection" => projection, "state" => s)
            .set(if s == state { 1.0 } else { 0.0 });
    }
    let lag = health.with(|h| h.lag_events);
    let written = sqlx::query(
        "INSERT INTO projector_status (projection, state, detail, lag_events, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (projection) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail,
             lag_events = EXCLUDED.lag_events, updated_at = now()",
    )
    .bind(projection)
    .bind(state)
    .bind(&detail)
    .bind(lag)
    .execute(pool)
    .await;
    if let Err(e) = written {
        tracing::debug!(error = %e, "writing the projector status");
    }
}

/// The projectors' last reports: projection → (state, detail, seconds since the report).
pub async fn reported_status(
    pool: &PgPool,
) -> sqlx::Result<HashMap<String, (String, String, f64)>> {
    let rows: Vec<(String, String, String, f64)> = sqlx::query_as(
        "SELECT projection, state, detail, EXTRACT(EPOCH FROM now() - updated_at)::float8
         FROM projector_status",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, s, d, age)| (p, (s, d, age)))
        .collect())
}

/// The store id and the highest epoch on the first record of each partition of `topics`
/// (blocking): a topic the relay refilled after the broker lost it starts with the new
/// epoch, whatever the projection's checkpoints say. Topics with no record are left out.
pub fn first_epochs(
    kafka: &KafkaArgs,
    topics: &[String],
    wait: Duration,
) -> anyhow::Result<HashMap<String, (Option<String>, i64)>> {
    let consumer = kafka
        .consumer("commerce-epoch-probe")
        .from_earliest()
        .base()?;
    let parts = partitions(&consumer, topics)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        tpl.add_partition_offset(t, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    // The first records of each partition (a record or two of the old epoch may precede a
    // republish the relay began after it noticed the loss).
    const FIRST: usize = 50;
    let mut seen: HashMap<(String, i32), usize> = HashMap::new();
    let mut out: HashMap<String, (Option<String>, i64)> = HashMap::new();
    let deadline = Instant::now() + wait;
    let full = |seen: &HashMap<(String, i32), usize>| {
        seen.len() == parts.len() && seen.values().all(|n| *n >= FIRST)
    };
    while !full(&seen) && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let n = seen
            .entry((m.topic().to_owned(), m.partition()))
            .or_default();
        *n += 1;
        if *n > FIRST {
            continue;
        }
        if let (store, Some(epoch)) = platform::kafka::record_origin(&m) {
            let e = out
                .entry(m.topic().to_owned())
                .or_insert((store.clone(), epoch));
            if epoch > e.1 {
                *e = (store, epoch);
            }
        }
    }
    Ok(out)
}

/// Where a projection reads the relay's watermark: the event store, and the broker cluster
/// the projection counts its checkpoints in (`None` while unknown).
pub struct RelayWatch {
    pub store: Option<(String, String)>,
    pub cluster: Arc<Mutex<Option<String>>>,
}

impl RelayWatch {
    /// The watermark's word on the cluster the projection reads, read now.
    async fn read(&self, db: &mut Option<event_store::event_store::Database>) -> RelayMark {
        let Some((uri, name)) = &self.store else {
            return RelayMark::Untracked;
        };
        if db.is_none() {
            match event_store::event_store::connect_database(uri, name).await {
                Ok(d) => *db = Some(d),
                Err(e) => {
                    tracing::debug!(error = %e, "connecting to the store for the watermark");
                    return RelayMark::Unknown;
                }
            }
        }
        let Some(d) = db.as_ref() else {
            return RelayMark::Unknown;
        };
        let ours = self
            .cluster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match event_store::watermark::read_watermark(d).await {
            Ok(Some(w)) if ours.as_deref() == Some(w.cluster.as_str()) => {
                RelayMark::Through(w.through)
            }
            Ok(_) => RelayMark::Unknown,
            Err(e) => {
                tracing::debug!(error = %e, "reading the relay's watermark");
                RelayMark::Unknown
            }
        }
    }
}

/// Keeps `projector_lag_events` and `projector_lag_seconds` current, every `every`, and
/// publishes the projector's health with each measurement.
#[allow(clippy::too_many_arguments)]
pub async fn export_metrics(
    pool: PgPool,
    kafka: KafkaArgs,
    projection: &'static str,
    topics: Vec<String>,
    every: Duration,
    health: ProjectorHealth,
    ready: platform::support::Readiness,
    relay: RelayWatch,
    shutdown: CancellationToken,
) {
    let mut db = None;
    loop {
        // Read before the checkpoints and the broker: what it vouches for is on the broker
        // by the time they are measured.
        let mark = relay.read(&mut db).await;
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
                        let events = lags.iter().map(|l| l.lag_events).sum();
                        let seconds = lags.iter().map(|l| l.lag_seconds).fold(0.0, f64::max);
                        health.measured(events, seconds, mark);
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
        report(&pool, projection, &health, &ready).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing_for(secs: u64) -> ProjectorHealth {
        let health = ProjectorHealth::default();
        let since = Instant::now()
            .checked_sub(Duration::from_secs(secs))
            .unwrap_or_else(Instant::now);
        health.with(|h| h.failing_since = Some((since, "consumer: AllBrokersDown".into())));
        health
    }

    #[test]
    fn a_failure_that_lasts_is_stalled() {
        assert_eq!(failing_for(20).state().0, "stalled");
    }

    #[test]
    fn nothing_left_to_apply_is_ok_again_after_a_failure() {
        // The broker was down for a while, then came back: no commit follows in a quiet
        // shop, but nothing waits either.
        let health = failing_for(20);
        health.measured(0, 0.0, RelayMark::Untracked);
        assert_eq!(health.state(), ("ok", String::new()));
    }

    #[test]
    fn consumed_until_is_the_oldest_waiting_record() {
        let health = ProjectorHealth::default();
        assert_eq!(health.consumed_until(), None, "never measured");
        health.measured(0, 0.0, RelayMark::Untracked);
        let caught_up = health.consumed_until().unwrap_or_default();
        assert!((chrono::Utc::now() - caught_up).num_seconds() < 2);
        health.measured(5, 60.0, RelayMark::Untracked);
        let behind = health.consumed_until().unwrap_or_default();
        assert!((chrono::Utc::now() - behind).num_seconds() >= 59);
        health.healing("the broker is a new cluster");
        assert_eq!(health.consumed_until(), None, "replaying");
    }

    #[test]
    fn a_heal_waits_for_the_relay_to_vouch_for_the_refill() {
        let health = ProjectorHealth::default();
        health.healing("the broker is a new cluster");
        // The broker is empty and the relay has not noticed yet: lag 0 proves nothing.
        health.measured(0, 0.0, RelayMark::Unknown);
        assert_eq!(health.state().0, "healing");
        assert_eq!(health.consumed_until(), None);
        // A watermark from before the heal began (the relay's last word on the old copy).
        let before = chrono::Utc::now() - chrono::Duration::seconds(30);
        health.measured(0, 0.0, RelayMark::Through(before));
        assert_eq!(health.state().0, "healing");
        // The relay republished after the heal began; the replay is then measured done.
        let after = chrono::Utc::now() + chrono::Duration::milliseconds(5);
        health.measured(0, 0.0, RelayMark::Through(after));
        assert_eq!(
            health.state().0,
            "healing",
            "one empty probe may have come too early"
        );
        health.measured(3, 1.0, RelayMark::Through(after));
        health.measured(0, 0.0, RelayMark::Through(after));
        assert_eq!(health.state().0, "healing", "not twice in a row");
        health.measured(0, 0.0, RelayMark::Through(after));
        assert_eq!(health.state(), ("ok", String::new()));
    }

    #[test]
    fn consumed_until_never_passes_the_relay() {
        let health = ProjectorHealth::default();
        let relay = chrono::Utc::now() - chrono::Duration::seconds(40);
        health.measured(0, 0.0, RelayMark::Through(relay));
        assert_eq!(health.consumed_until(), Some(relay));
        health.measured(0, 0.0, RelayMark::Unknown);
        assert_eq!(
            health.consumed_until(),
            None,
            "the relay vouches for nothing"
        );
    }

    #[test]
    fn events_still_waiting_keep_the_failure() {
        let health = failing_for(20);
        health.measured(3, 20.0, RelayMark::Untracked);
        assert_eq!(health.state().0, "stalled");
    }
}
