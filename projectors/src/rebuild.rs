//! Rebuilding a read model without downtime, and verifying one.
//!
//! A rebuild writes a new copy of the model's tables in a schema of its own
//! (`rebuild_<name>`, tables created `LIKE` the live ones, foreign keys included) from offset
//! zero, while the live projector and the query services go on with the live tables in
//! `public`. Each batch is one transaction with the batch's rows and one checkpoint row per
//! partition (no per-event checkpoint writes; `synchronous_commit` off, since a lost commit
//! is only replayed). Killed, it resumes from those checkpoints.
//!
//! It has caught up when its offsets reach the live projector's PostgreSQL checkpoints (the
//! broker's watermarks are not trusted). The switch is one transaction: it locks the live
//! tables against writes (reads go on), applies what the live projector committed since the
//! last batch, and swaps the tables by moving schemas; queries wait for milliseconds at most
//! and resolve the names to the new tables afterwards. The old tables are dropped unless kept.
//!
//! A verify is the same catch-up into `verify_<name>`, compared table by table with the live
//! model under a share lock (so both reflect the same offsets), then thrown away.

use crate::lag::{load_checkpoints, partitions, Checkpoints};
use crate::registry::{self, ReadModel};
use crate::runtime::ProjectionError;
use event_schemas::cloudevents;
use event_store::pii::{PiiError, Reveal};
use futures::StreamExt;
use platform::kafka::KafkaArgs;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The schema a rebuild of `name` writes into.
pub fn rebuild_schema(name: &str) -> String {
    format!("rebuild_{}", name.replace('-', "_"))
}

/// The scratch schema of a verify of `name`.
pub fn verify_schema(name: &str) -> String {
    format!("verify_{}", name.replace('-', "_"))
}

/// Tuning and behaviour of a rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    pub batch_size: usize,
    /// How long a batch waits to fill.
    pub linger: Duration,
    /// Keep the old tables (in `retired_<name>_<time>`) after the switch.
    pub keep: bool,
    /// Take the rebuild's own offsets as the projection's checkpoints at the switch instead
    /// of catching up with the live ones: after the broker lost its data and the store was
    /// republished. The live projector must be stopped, and started after the switch.
    pub adopt_offsets: bool,
    /// With `adopt_offsets`: the topics are at their end after this long without a record.
    pub quiet: Duration,
    /// At most this many records per second, to spare a busy database.
    pub max_rate: Option<u32>,
    /// Apply one event at a time (each projection's reference path) even where the model
    /// has a set-based one: `projections verify` does, to cross-check the live projector;
    /// the benchmark does, for comparison.
    pub per_event: bool,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            batch_size: 5000,
            linger: Duration::from_millis(50),
            keep: false,
            adopt_offsets: false,
            quiet: Duration::from_secs(3),
            max_rate: None,
            per_event: false,
        }
    }
}

/// Where a catch-up is: for the progress bar and `projections status`.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Records read (applied or skipped) by the rebuild, over all partitions.
    pub done: i64,
    /// The live checkpoints' total, the rebuild's target (grows while it runs).
    pub target: i64,
    pub skipped: i64,
    pub rate_per_sec: f64,
}

/// Where a catch-up's time went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    /// Waiting for and reading records from Kafka, and decoding nothing yet.
    pub read_seconds: f64,
    /// Decoding and applying records in PostgreSQL (inside the batch transactions).
    pub apply_seconds: f64,
    /// Saving the batch checkpoints and committing.
    pub commit_seconds: f64,
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    pub resumed: bool,
    pub events: i64,
    pub skipped: i64,
    pub seconds: f64,
    pub events_per_sec: f64,
    /// From the start of the catch-up to its last batch.
    pub catch_up_seconds: f64,
    pub profile: Profile,
    pub retired_schema: Option<String>,
    pub checkpoints: Vec<(String, i32, i64)>,
}

/// One table's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub live_rows: i64,
    pub rebuilt_rows: i64,
    pub live_checksum: String,
    pub rebuilt_checksum: String,
    pub differences: Vec<RowDifference>,
}

/// A row that is not the same in the live and the rebuilt model.
#[derive(Debug, Clone, Serialize)]
pub struct RowDifference {
    /// The primary key of the row.
    pub key: serde_json::Value,
    /// `differs`, `missing_in_live` or `missing_in_rebuild`.
    pub kind: String,
    /// The columns whose values differ (for `differs`).
    pub columns: Vec<String>,
    pub live: Option<serde_json::Value>,
    pub rebuilt: Option<serde_json::Value>,
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Does `schema` exist?
async fn schema_exists(pool: &PgPool, schema: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
}

async fn table_exists(pool: &PgPool, schema: &str, table: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(pool)
    .await
}

/// Creates `schema` with empty copies of the model's tables (or finds the one a killed run
/// left). Returns whether an earlier run is resumed.
pub async fn prepare(
    pool: &PgPool,
    model: &ReadModel,
    schema: &str,
    fresh: bool,
) -> anyhow::Result<bool> {
    anyhow::ensure!(ident_ok(schema), "bad schema name {schema}");
    if !fresh && schema_exists(pool, schema).await? {
        let mut complete = table_exists(pool, schema, "rebuild_checkpoints").await?;
        for t in model.tables {
            complete &= table_exists(pool, schema, t).await?;
        }
        if complete {
            return Ok(true);
        }
    }
    // Views over a model's tables would follow the old tables at the switch: refuse.
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT view_schema || '.' || view_name FROM information_schema.view_table_usage
         WHERE table_schema = 'public' AND table_name = ANY($1)",
    )
    .bind(model.tables)
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(
        views.is_empty(),
        "views depend on the tables of {}: {views:?}; a schema swap would leave them behind",
        model.name
    );
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *tx)
        .await?;
    let mut fks = Vec::new();
    for t in model.tables {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = ('public.' || $1)::regclass AND contype = 'f'",
        )
        .bind(t)
        .fetch_all(&mut *tx)
        .await?;
        fks.extend(rows.into_iter().map(|(n, d)| (t, n, d)));
    }
    // The constraint text names its tables unqualified: resolve them in the new schema.
    sqlx::query(&format!("SET LOCAL search_path TO {schema}"))
        .execute(&mut *tx)
        .await?;
    for (t, name, def) in fks {
        sqlx::query(&format!(
            "ALTER TABLE {schema}.{t} ADD CONSTRAINT {name} {def}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!(
        "CREATE TABLE {schema}.rebuild_checkpoints (
            topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset BIGINT NOT NULL,
            PRIMARY KEY (topic, partition))"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "CREATE TABLE {schema}.rebuild_info (
            projection TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            applied BIGINT NOT NULL DEFAULT 0, skipped BIGINT NOT NULL DEFAULT 0)"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {schema}.rebuild_info (projection) VALUES ($1)"
    ))
    .bind(model.name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(false)
}

/// The offsets a rebuild in `schema` has reached.
pub async fn rebuild_checkpoints(pool: &PgPool, schema: &str) -> sqlx::Result<Checkpoints> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(&format!(
        "SELECT topic, partition, next_offset FROM {schema}.rebuild_checkpoints"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// Progress of a rebuild that may be running in another process, if there is one.
pub async fn rebuild_progress(
    pool: &PgPool,
    model: &ReadModel,
) -> anyhow::Result<Option<Progress>> {
    let schema = rebuild_schema(model.name);
    if !table_exists(pool, &schema, "rebuild_checkpoints").await? {
        return Ok(None);
    }
    let done: i64 = rebuild_checkpoints(pool, &schema).await?.values().sum();
    let target: i64 = load_checkpoints(pool, model.name).await?.values().sum();
    let (skipped, secs): (i64, f64) = sqlx::query_as(&format!(
        "SELECT skipped, EXTRACT(EPOCH FROM now() - started_at)::float8 FROM {schema}.rebuild_info LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?
    .unwrap_or((0, 0.0));
    Ok(Some(Progress {
        done,
        target: target.max(done),
        skipped,
        rate_per_sec: if secs > 0.0 { done as f64 / secs } else { 0.0 },
    }))
}

fn behind(done: &Checkpoints, target: &Checkpoints) -> bool {
    target
        .iter()
        .any(|(k, t)| done.get(k).copied().unwrap_or(0) < *t)
}

/// A consumer assigned to every partition of the model's topics at `from`.
fn consumer_at(
    kafka: &KafkaArgs,
    model: &ReadModel,
    from: &Checkpoints,
) -> anyhow::Result<StreamConsumer> {
    let consumer = kafka
        .consumer(format!("rebuild.{}", model.name))
        .from_earliest()
        .no_partition_eof()
        .set("fetch.max.bytes", "52428800")
        .set("queued.min.messages", "200000")
        .stream()?;
    let parts = partitions(&kafka.metadata_consumer()?, &model.topics)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in parts {
        let at = from
            .get(&(t.clone(), p))
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        tpl.add_partition_offset(&t, p, at)?;
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    Ok(consumer)
}

/// Which records a replay takes: those of the store the live projection belongs to, in the
/// epoch its checkpoints count in or a newer one (older epochs were republished whole in the
/// newer one, see `runtime`). Records without the relay's headers are taken.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    store_id: Option<String>,
    epochs: BTreeMap<String, i64>,
}

impl Origin {
    /// What the live projection `name` recorded.
    pub async fn of(pool: &PgPool, name: &str) -> sqlx::Result<Self> {
        let store_id =
            sqlx::query_scalar("SELECT store_id FROM projector_identity WHERE projection = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT topic, epoch FROM projector_topic_epochs WHERE projection = $1")
                .bind(name)
                .fetch_all(pool)
                .await?;
        Ok(Self {
            store_id,
            epochs: rows.into_iter().collect(),
        })
    }

    fn takes(&self, m: &OwnedMessage) -> bool {
        let (store, epoch) = platform::kafka::record_origin(m);
        if let (Some(ours), Some(theirs)) = (&self.store_id, &store) {
            if ours != theirs {
                return false;
            }
        }
        match (epoch, self.epochs.get(m.topic())) {
            (Some(e), Some(k)) => e >= *k,
            _ => true,
        }
    }
}

/// Applies records to the model in `schema` on `conn` (inside its transaction); records at
/// or past `limit` of their partition are left out. Returns (applied, skipped) and moves
/// `offsets`.
#[allow(clippy::too_many_arguments)]
async fn apply_records(
    conn: &mut PgConnection,
    model: &ReadModel,
    schema: &str,
    records: &[OwnedMessage],
    offsets: &mut Checkpoints,
    limit: Option<&Checkpoints>,
    per_event: bool,
    origin: &Origin,
) -> anyhow::Result<(i64, i64, Vec<OwnedMessage>)> {
    // Only the rebuild's schema: a table the registry does not list fails the rebuild
    // instead of being written in the live schema.
    sqlx::query(&format!("SET LOCAL search_path TO {schema}"))
        .execute(&mut *conn)
        .await?;
    let (mut applied, mut skipped) = (0, 0);
    let mut later = Vec::new();
    let mut envs = Vec::with_capacity(records.len());
    for m in records {
        let key = (m.topic().to_owned(), m.partition());
        let next = offsets.get(&key).copied().unwrap_or(0);
        if m.offset() < next {
            continue;
        }
        if let Some(limit) = limit {
            if m.offset() >= limit.get(&key).copied().unwrap_or(0) {
                later.push(m.clone());
                continue;
            }
        }
        offsets.insert(key, m.offset() + 1);
        if !origin.takes(m) {
            skipped += 1;
            continue;
        }
        match m.payload().map(cloudevents::decode) {
            Some(Ok(mut env)) => {
                // Sealed personal fields open with the person's key; erased ones read null.
                match event_store::pii::open_installed(&mut env, Reveal::All).await {
                    Ok(()) => envs.push(env),
                    Err(e @ PiiError::Unavailable(_)) => return Err(e.into()),
                    Err(PiiError::Corrupt(reason)) => {
                        tracing::warn!(%reason, "a sealed field does not open; skipped");
                        skipped += 1;
                    }
                }
            }
            _ => skipped += 1,
        }
    }
    if !envs.is_empty() {
        let results = if per_event {
            let mut out = Vec::with_capacity(envs.len());
            for env in &envs {
                out.push(match registry::apply(model.name, conn, env).await {
                    Ok(()) => Ok(None),
                    Err(ProjectionError::Poison(reason)) => Ok(Some(reason)),
                    Err(e) => Err(e),
                }?);
            }
            Ok(out)
        } else {
            registry::apply_batch(model.name, conn, &envs).await
        };
        match results {
            Ok(results) => {
                for r in results {
                    match r {
                        None => applied += 1,
                        // The live projector dead-lettered it too; `dlq replay` brings a
                        // fixed copy.
                        Some(reason) => {
                            tracing::debug!(%reason, "rebuild skips a record the projection refuses");
                            skipped += 1;
                        }
                    }
                }
            }
            Err(ProjectionError::Db(e)) => return Err(e.into()),
            Err(ProjectionError::Transient(e)) | Err(ProjectionError::Poison(e)) => {
                anyhow::bail!(e)
            }
        }
    }
    Ok((applied, skipped, later))
}

async fn save_offsets(
    conn: &mut PgConnection,
    schema: &str,
    offsets: &Checkpoints,
    applied: i64,
    skipped: i64,
) -> sqlx::Result<()> {
    for ((t, p), o) in offsets {
        sqlx::query(&format!(
            "INSERT INTO {schema}.rebuild_checkpoints (topic, partition, next_offset) VALUES ($1, $2, $3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"
        ))
        .bind(t)
        .bind(p)
        .bind(o)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(&format!(
        "UPDATE {schema}.rebuild_info SET applied = applied + $1, skipped = skipped + $2"
    ))
    .bind(applied)
    .bind(skipped)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A catch-up's position: the consumer, the offsets applied, and the records read past the
/// live checkpoints (applied once the live projector has committed them).
pub struct CaughtUp {
    consumer: StreamConsumer,
    origin: Origin,
    offsets: Checkpoints,
    pending: Vec<OwnedMessage>,
    applied: i64,
    skipped: i64,
    profile: Profile,
    catch_up_seconds: f64,
}

/// Reads the model's topics into `schema` from its saved offsets until they reach the live
/// checkpoints (or, with `adopt_offsets`, until the topics stay quiet). Never applies a
/// record the live projector has not committed yet, so the rebuilt tables never run ahead
/// of the live checkpoints.
pub async fn catch_up(
    pool: &PgPool,
    kafka: &KafkaArgs,
    model: &ReadModel,
    schema: &str,
    opts: &RebuildOptions,
    mut on_progress: impl FnMut(&Progress),
) -> anyhow::Result<CaughtUp> {
    let mut pending: Vec<OwnedMessage> = Vec::new();
    let origin = Origin::of(pool, model.name).await?;
    let mut offsets = rebuild_checkpoints(pool, schema).await?;
    let consumer = consumer_at(kafka, model, &offsets)?;
    let started = Instant::now();
    let start_done: i64 = offsets.values().sum();
    let (mut applied_total, mut skipped_total) = (0i64, 0i64);
    let mut last_record = Instant::now();
    let mut profile = Profile::default();
    let mut last_batch_at = started;
    let mut stream = consumer.stream();
    loop {
        let target = if opts.adopt_offsets {
            BTreeMap::new()
        } else {
            load_checkpoints(pool, model.name).await?
        };
        let done: i64 = offsets.values().sum();
        let rate = (done - start_done) as f64 / started.elapsed().as_secs_f64().max(1e-3);
        on_progress(&Progress {
            done,
            target: target.values().sum::<i64>().max(done),
            skipped: skipped_total,
            rate_per_sec: rate,
        });
        if !opts.adopt_offsets && !behind(&offsets, &target) {
            break;
        }
        if opts.adopt_offsets && last_record.elapsed() >= opts.quiet {
            break;
        }
        // One batch: what waited for the live projector, then new records; the first new
        // record waits up to a second, the rest linger.
        let read_started = Instant::now();
        let mut batch = std::mem::take(&mut pending);
        let carried = batch.len();
        let waited = if batch.is_empty() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        match tokio::time::timeout(waited, stream.next()).await {
            Ok(Some(m)) => batch.push(m?.detach()),
            Ok(None) => anyhow::bail!("consumer stream ended"),
            Err(_) if !batch.is_empty() => {}
            Err(_) => {
                if !opts.adopt_offsets && last_record.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!(
                        "no records for 30 s while the live checkpoints of {} are ahead: \
                         after a broker lost its data, republish and rebuild with --adopt-offsets",
                        model.name
                    );
                }
                continue;
            }
        }
        let linger = Instant::now() + opts.linger;
        while batch.len() < opts.batch_size {
            match tokio::time::timeout_at(linger.into(), stream.next()).await {
                Ok(Some(m)) => batch.push(m?.detach()),
                _ => break,
            }
        }
        if batch.len() > carried {
            last_record = Instant::now();
        }
        let limit = (!opts.adopt_offsets).then_some(&target);
        let apply_started = Instant::now();
        profile.read_seconds += (apply_started - read_started).as_secs_f64();
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit TO off")
            .execute(&mut *tx)
            .await?;
        let mut next = offsets.clone();
        let (a, s, later) = apply_records(
            &mut tx,
            model,
            schema,
            &batch,
            &mut next,
            limit,
            opts.per_event,
            &origin,
        )
        .await?;
        let commit_started = Instant::now();
        profile.apply_seconds += (commit_started - apply_started).as_secs_f64();
        save_offsets(&mut tx, schema, &next, a, s).await?;
        tx.commit().await?;
        profile.commit_seconds += commit_started.elapsed().as_secs_f64();
        if a + s > 0 {
            last_batch_at = Instant::now();
        }
        pending = later;
        offsets = next;
        applied_total += a;
        skipped_total += s;
        if let Some(rate) = opts.max_rate.filter(|r| *r > 0) {
            let due =
                Duration::from_secs_f64((applied_total + skipped_total) as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    drop(stream);
    Ok(CaughtUp {
        consumer,
        origin,
        offsets,
        pending,
        applied: applied_total,
        skipped: skipped_total,
        profile,
        catch_up_seconds: (last_batch_at - started).as_secs_f64(),
    })
}

/// Applies what waited and reads on until the offsets reach `target`, inside `conn`'s
/// transaction. Fails after `deadline`.
async fn finish_inside(
    conn: &mut PgConnection,
    model: &ReadModel,
    schema: &str,
    up: &mut CaughtUp,
    target: &Checkpoints,
    deadline: Duration,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    let pending = std::mem::take(&mut up.pending);
    let (a, s, _) = apply_records(
        conn,
        model,
        schema,
        &pending,
        &mut up.offsets,
        Some(target),
        false,
        &up.origin,
    )
    .await?;
    up.applied += a;
    up.skipped += s;
    let mut stream = up.consumer.stream();
    while behind(&up.offsets, target) {
        let left = until.saturating_duration_since(Instant::now());
        let m = match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(m)) => m?.detach(),
            _ => anyhow::bail!("could not reach the live checkpoints in time"),
        };
        let (a, s, _) = apply_records(
            conn,
            model,
            schema,
            &[m],
            &mut up.offsets,
            Some(target),
            false,
            &up.origin,
        )
        .await?;
        up.applied += a;
        up.skipped += s;
    }
    Ok(())
}

async fn lock_live(conn: &mut PgConnection, model: &ReadModel, mode: &str) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *conn)
        .await?;
    let tables: Vec<String> = model.tables.iter().map(|t| format!("public.{t}")).collect();
    sqlx::query(&format!("LOCK TABLE {} IN {mode} MODE", tables.join(", ")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn live_checkpoints_locked(
    conn: &mut PgConnection,
    model: &ReadModel,
    lock: &str,
) -> sqlx::Result<Checkpoints> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(&format!(
        "SELECT topic, partition, next_offset FROM public.projector_checkpoints
         WHERE projection = $1 FOR {lock}"
    ))
    .bind(model.name)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// Rebuilds `model` beside the live one, then switches. `on_progress` is called after every
/// batch.
pub async fn rebuild(
    pool: &PgPool,
    kafka: &KafkaArgs,
    model: &ReadModel,
    opts: &RebuildOptions,
    on_progress: impl FnMut(&Progress),
) -> anyhow::Result<RebuildReport> {
    anyhow::ensure!(
        model.rebuildable,
        "{} sends commands; it cannot be rebuilt by replaying",
        model.name
    );
    let started = Instant::now();
    let schema = rebuild_schema(model.name);
    let resumed = prepare(pool, model, &schema, false).await?;
    let mut up = catch_up(pool, kafka, model, &schema, opts, on_progress).await?;

    let mut tx = pool.begin().await?;
    lock_live(&mut tx, model, "EXCLUSIVE").await?;
    if opts.adopt_offsets {
        sqlx::query("DELETE FROM public.projector_checkpoints WHERE projection = $1")
            .bind(model.name)
            .execute(&mut *tx)
            .await?;
        for ((t, p), o) in &up.offsets {
            sqlx::query(
                "INSERT INTO public.projector_checkpoints (projection, topic, partition, next_offset, updated_at)
                 VALUES ($1, $2, $3, $4, now())",
            )
            .bind(model.name)
            .bind(t)
            .bind(p)
            .bind(o)
            .execute(&mut *tx)
            .await?;
        }
    } else {
        let target = live_checkpoints_locked(&mut tx, model, "UPDATE").await?;
        finish_inside(
            &mut tx,
            model,
            &schema,
            &mut up,
            &target,
            Duration::from_secs(30),
        )
        .await?;
    }
    let retired = format!(
        "retired_{}_{}",
        model.name.replace('-', "_"),
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL search_path TO public")
        .execute(&mut *tx)
        .await?;
    // Children first out of public, parents first in: names never clash.
    for t in model.tables.iter().rev() {
        sqlx::query(&format!("ALTER TABLE public.{t} SET SCHEMA {retired}"))
            .execute(&mut *tx)
            .await?;
    }
    for t in model.tables {
        sqlx::query(&format!("ALTER TABLE {schema}.{t} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let CaughtUp {
        consumer,
        offsets,
        applied,
        skipped,
        profile,
        catch_up_seconds,
        ..
    } = up;
    drop(consumer);
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;
    let retired_schema = if opts.keep {
        Some(retired)
    } else {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
            .execute(pool)
            .await?;
        None
    };
    let events: i64 = offsets.values().sum();
    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildReport {
        projection: model.name.to_owned(),
        resumed,
        events,
        skipped,
        seconds,
        events_per_sec: (applied + skipped) as f64 / seconds.max(1e-3),
        catch_up_seconds,
        profile,
        retired_schema,
        checkpoints: offsets.into_iter().map(|((t, p), o)| (t, p, o)).collect(),
    })
}

/// Sets the projection's checkpoints to the end of its topics (as read until quiet), so it
/// skips what is there: for a process manager after `kafka republish`, whose effects are
/// already done. Returns the new checkpoints.
pub async fn reset_to_end(
    pool: &PgPool,
    kafka: &KafkaArgs,
    model: &ReadModel,
) -> anyhow::Result<Checkpoints> {
    let (k, topics) = (kafka.clone(), model.topics.clone());
    let ends = tokio::task::spawn_blocking(move || {
        crate::lag::measure(
            &k,
            &topics,
            &Checkpoints::new(),
            Duration::from_secs(2),
            usize::MAX,
        )
    })
    .await??;
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM public.projector_checkpoints WHERE projection = $1")
        .bind(model.name)
        .execute(&mut *tx)
        .await?;
    let mut out = Checkpoints::new();
    for e in ends {
        sqlx::query(
            "INSERT INTO public.projector_checkpoints (projection, topic, partition, next_offset, updated_at)
             VALUES ($1, $2, $3, $4, now())",
        )
        .bind(model.name)
        .bind(&e.topic)
        .bind(e.partition)
        .bind(e.end)
        .execute(&mut *tx)
        .await?;
        out.insert((e.topic, e.partition), e.end);
    }
    tx.commit().await?;
    Ok(out)
}

/// Rebuilds `model` into a scratch schema and compares it with the live one, table by table.
pub async fn verify(
    pool: &PgPool,
    kafka: &KafkaArgs,
    model: &ReadModel,
    opts: &RebuildOptions,
    on_progress: impl FnMut(&Progress),
) -> anyhow::Result<Vec<TableCheck>> {
    anyhow::ensure!(
        model.rebuildable,
        "{} sends commands; it cannot be replayed",
        model.name
    );
    let schema = verify_schema(model.name);
    prepare(pool, model, &schema, true).await?;
    let result = async {
        let mut up = catch_up(pool, kafka, model, &schema, opts, on_progress).await?;
        let mut tx = pool.begin().await?;
        // Writers wait while the two are compared at the same offsets; readers do not.
        lock_live(&mut tx, model, "SHARE").await?;
        let target = live_checkpoints_locked(&mut tx, model, "SHARE").await?;
        finish_inside(
            &mut tx,
            model,
            &schema,
            &mut up,
            &target,
            Duration::from_secs(30),
        )
        .await?;
        let mut checks = Vec::new();
        for t in model.tables {
            checks.push(compare_table(&mut tx, &schema, t).await?);
        }
        tx.rollback().await?;
        Ok::<_, anyhow::Error>(checks)
    }
    .await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;
    result
}

async fn compare_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<TableCheck> {
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisprimary ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let checksum = |s: &str| {
        format!(
            "SELECT count(*), coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '')
             FROM {s}.{table} x"
        )
    };
    let (live_rows, live_checksum): (i64, String) = sqlx::query_as(&checksum("public"))
        .fetch_one(&mut *conn)
        .await?;
    let (rebuilt_rows, rebuilt_checksum): (i64, String) = sqlx::query_as(&checksum(schema))
        .fetch_one(&mut *conn)
        .await?;
    let mut differences = Vec::new();
    if live_checksum != rebuilt_checksum {
        let key_expr = if pk.is_empty() {
            "to_jsonb(d)".to_owned()
        } else {
            format!(
                "jsonb_build_object({})",
                pk.iter()
                    .map(|c| format!("'{c}', d.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let diff = |a: &str, b: &str| {
            format!(
                "SELECT {key_expr}, to_jsonb(d) FROM (SELECT * FROM {a}.{table} EXCEPT SELECT * FROM {b}.{table}) d LIMIT 1000"
            )
        };
        let live_only: Vec<(serde_json::Value, serde_json::Value)> =
            sqlx::query(&diff("public", schema))
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
        let mut rebuilt_only: BTreeMap<String, (serde_json::Value, serde_json::Value)> =
            sqlx::query(&diff(schema, "public"))
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| {
                    let k: serde_json::Value = r.get(0);
                    (k.to_string(), (k, r.get(1)))
                })
                .collect();
        for (key, live) in live_only {
            match rebuilt_only.remove(&key.to_string()) {
                Some((_, rebuilt)) => {
                    let columns = live
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .filter(|(c, v)| rebuilt.get(c.as_str()) != Some(v))
                                .map(|(c, _)| c.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    differences.push(RowDifference {
                        key,
                        kind: "differs".into(),
                        columns,
                        live: Some(live),
                        rebuilt: Some(rebuilt),
                    });
                }
                None => differences.push(RowDifference {
                    key,
                    kind: "missing_in_rebuild".into(),
                    columns: vec![],
                    live: Some(live),
                    rebuilt: None,
                }),
            }
        }
        for (_, (key, rebuilt)) in rebuilt_only {
            differences.push(RowDifference {
                key,
                kind: "missing_in_live".into(),
                columns: vec![],
                live: None,
                rebuilt: Some(rebuilt),
            });
        }
    }
    Ok(TableCheck {
        table: table.to_owned(),
        live_rows,
        rebuilt_rows,
        live_checksum,
        rebuilt_checksum,
        differences,
    })
}
