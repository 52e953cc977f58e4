//! `projections status | rebuild | verify`: lag per partition and each projection's state,
//! and the no-downtime rebuild and the verify of `projectors::rebuild`, with a progress bar.

use crate::output::{self, Format};
use crate::Endpoints;
use projectors::lag::{self, PartitionLag};
use projectors::rebuild::{self, Progress, RebuildOptions};
use projectors::registry::{self, ReadModel};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Checkpoint and lag (events, seconds) per partition, and the state of each projection:
    /// caught-up, live (behind, consuming) or rebuilding (with progress).
    Status {
        /// Only this projection.
        name: Option<String>,
    },
    /// Rebuild a read model beside the live one from offset zero, then switch atomically.
    /// Resumable: run it again after it was killed.
    Rebuild {
        name: String,
        /// Keep the old tables (schema `retired_<name>_<time>`) after the switch.
        #[arg(long)]
        keep: bool,
        /// Records per transaction.
        #[arg(long, default_value_t = 5000)]
        batch_size: usize,
        /// After the broker lost its data and `kafka republish` refilled it: take the
        /// rebuild's offsets as the projection's checkpoints (stop the projector first,
        /// start it after).
        #[arg(long)]
        adopt_offsets: bool,
        /// At most this many events per second (spares a busy database).
        #[arg(long)]
        max_rate: Option<u32>,
    },
    /// Move a projection's checkpoints to the end of its topics, skipping what is there
    /// (a process manager after `kafka republish`: its effects are done). Stop it first.
    Reset {
        name: String,
        /// To the end of the topics, as read until quiet.
        #[arg(long, required = true)]
        to_end: bool,
    },
    /// Rebuild into a scratch schema and compare with the live read model, table by table.
    /// Exits with 3 when a row differs.
    Verify { name: String },
}

#[derive(Serialize)]
struct Status {
    projection: String,
    /// `caught-up`, `live` (behind, consuming), `healing` (replaying after the broker lost
    /// a topic or the store changed) or `rebuilding N%`.
    state: String,
    /// What the projector itself last reported (`ok`, `lagging`, `healing`, `stalled`),
    /// `down` when it has not reported for 15 s, `unknown` when it never did.
    health: String,
    health_detail: String,
    lag_events: i64,
    lag_seconds: f64,
    partitions: Vec<PartitionLag>,
    rebuild: Option<Progress>,
}

/// One projection's checkpoints, lag and state.
async fn status(
    pool: &sqlx::PgPool,
    ep: &Endpoints,
    m: &ReadModel,
    reported: &std::collections::HashMap<String, (String, String, f64)>,
) -> anyhow::Result<Status> {
    let cps = lag::load_checkpoints(pool, m.name).await?;
    let (k, topics) = (ep.kafka(), m.topics.clone());
    let partitions = tokio::task::spawn_blocking(move || {
        lag::measure(&k, &topics, &cps, Duration::from_millis(500), 1_000_000)
    })
    .await??;
    let lag_events = partitions.iter().map(|p| p.lag_events).sum();
    let lag_seconds = partitions.iter().map(|p| p.lag_seconds).fold(0.0, f64::max);
    let rebuild = rebuild::rebuild_progress(pool, m).await?;
    let (health, health_detail) = match reported.get(m.name) {
        Some((_, _, age)) if *age > 15.0 => {
            ("down".to_owned(), format!("no report for {age:.0} s"))
        }
        Some((s, d, _)) => (s.clone(), d.clone()),
        None => ("unknown".to_owned(), String::new()),
    };
    let state = match &rebuild {
        Some(p) => format!(
            "rebuilding {:.0}%",
            100.0 * p.done as f64 / (p.target.max(1)) as f64
        ),
        None if health == "healing" => "healing".into(),
        None if lag_events == 0 => "caught-up".into(),
        None => "live".into(),
    };
    Ok(Status {
        projection: m.name.to_owned(),
        state,
        health,
        health_detail,
        lag_events,
        lag_seconds,
        partitions,
        rebuild,
    })
}

fn model(name: &str) -> anyhow::Result<ReadModel> {
    registry::find(name).ok_or_else(|| {
        let names: Vec<&str> = registry::read_models().iter().map(|m| m.name).collect();
        anyhow::anyhow!("no projection {name}; one of {names:?}")
    })
}

pub async fn run(cmd: ProjectionsCommand, ep: &Endpoints, out: Format) -> anyhow::Result<i32> {
    let pool = ep.pg().await?;
    match cmd {
        ProjectionsCommand::Status { name } => status_of(&pool, ep, name, out).await,
        ProjectionsCommand::Rebuild {
            name,
            keep,
            batch_size,
            adopt_offsets,
            max_rate,
        } => {
            let opts = RebuildOptions {
                batch_size: batch_size.max(1),
                keep,
                adopt_offsets,
                max_rate,
                ..RebuildOptions::default()
            };
            rebuild_one(&pool, ep, &name, &opts, out).await
        }
        ProjectionsCommand::Reset { name, .. } => reset(&pool, ep, &name, out).await,
        ProjectionsCommand::Verify { name } => verify(&pool, ep, &name, out).await,
    }
}

/// `projections status`: every projection's state, health and lag per partition.
async fn status_of(
    pool: &sqlx::PgPool,
    ep: &Endpoints,
    name: Option<String>,
    out: Format,
) -> anyhow::Result<i32> {
    let models = match name {
        Some(n) => vec![model(&n)?],
        None => registry::read_models(),
    };
    let reported = lag::reported_status(pool).await.unwrap_or_default();
    // Every projection is measured at once: each probe waits for a quiet topic.
    let all = futures::future::try_join_all(models.iter().map(|m| status(pool, ep, m, &reported)))
        .await?;
    match out {
        Format::Json => output::json(&all)?,
        Format::Table => {
            let mut rows = Vec::new();
            for s in &all {
                for p in &s.partitions {
                    rows.push(vec![
                        s.projection.clone(),
                        s.state.clone(),
                        s.health.clone(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.checkpoint.to_string(),
                        p.end.to_string(),
                        p.lag_events.to_string(),
                        format!("{:.1}", p.lag_seconds),
                    ]);
                }
            }
            output::table(
                &[
                    "projection",
                    "state",
                    "health",
                    "topic",
                    "partition",
                    "checkpoint",
                    "end",
                    "lag",
                    "lag s",
                ],
                &rows,
            );
            for s in all.iter().filter(|s| !s.health_detail.is_empty()) {
                println!("{}: {}: {}", s.projection, s.health, s.health_detail);
            }
        }
    }
    Ok(0)
}

/// `projections rebuild`: beside the live model from offset zero, then switched.
async fn rebuild_one(
    pool: &sqlx::PgPool,
    ep: &Endpoints,
    name: &str,
    opts: &RebuildOptions,
    out: Format,
) -> anyhow::Result<i32> {
    let m = model(name)?;
    let bar = output::progress(0, &format!("rebuilding {name}"));
    let report = rebuild::rebuild(pool, &ep.kafka(), &m, opts, |p| {
        bar.set_length(p.target.max(p.done) as u64);
        bar.set_position(p.done as u64);
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    match out {
        Format::Json => output::json(&report)?,
        Format::Table => println!(
            "rebuilt {} from {} events ({} skipped) in {:.1} s, catch-up {:.0} events/s{}; switched{}",
            report.projection,
            report.events,
            report.skipped,
            report.seconds,
            report.events as f64 / report.catch_up_seconds.max(1e-3),
            if report.resumed { ", resumed" } else { "" },
            report
                .retired_schema
                .as_ref()
                .map(|s| format!(", old tables kept in {s}"))
                .unwrap_or_default()
        ),
    }
    Ok(0)
}

/// `projections reset`: the checkpoints moved to the end of the topics.
async fn reset(
    pool: &sqlx::PgPool,
    ep: &Endpoints,
    name: &str,
    out: Format,
) -> anyhow::Result<i32> {
    let m = model(name)?;
    let cps = rebuild::reset_to_end(pool, &ep.kafka(), &m).await?;
    let rows: Vec<Vec<String>> = cps
        .iter()
        .map(|((t, p), o)| vec![name.to_owned(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    match out {
        Format::Json => output::json(&rows)?,
        Format::Table => output::table(&["projection", "topic", "partition", "checkpoint"], &rows),
    }
    Ok(0)
}

/// `projections verify`: a rebuild into a scratch schema compared with the live model.
async fn verify(
    pool: &sqlx::PgPool,
    ep: &Endpoints,
    name: &str,
    out: Format,
) -> anyhow::Result<i32> {
    let m = model(name)?;
    // The replay takes each projection's per-event reference path, so a verify
    // cross-checks the live projector's set-based apply (the cart model).
    let verify_options = RebuildOptions {
        per_event: true,
        ..RebuildOptions::default()
    };
    let bar = output::progress(0, &format!("verifying {name}"));
    let checks = rebuild::verify(pool, &ep.kafka(), &m, &verify_options, |p| {
        bar.set_length(p.target.max(p.done) as u64);
        bar.set_position(p.done as u64);
    })
    .await;
    bar.finish_and_clear();
    let checks = checks?;
    let differing: usize = checks.iter().map(|c| c.differences.len()).sum();
    match out {
        Format::Json => output::json(&checks)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|c| {
                    vec![
                        c.table.clone(),
                        c.live_rows.to_string(),
                        c.rebuilt_rows.to_string(),
                        c.live_checksum.clone(),
                        c.rebuilt_checksum.clone(),
                        c.differences.len().to_string(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "table",
                    "live rows",
                    "rebuilt rows",
                    "live checksum",
                    "rebuilt checksum",
                    "differences",
                ],
                &rows,
            );
            for c in &checks {
                for d in &c.differences {
                    println!("{}: {} {} {}", c.table, d.key, d.kind, d.columns.join(","));
                }
            }
            if differing == 0 {
                println!("no differences");
            }
        }
    }
    Ok(if differing == 0 { 0 } else { 3 })
}
