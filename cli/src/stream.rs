//! `stream show <id>`: one stream's history from the event store (upcast), and its state as
//! the domain folds it with `evolve`, at the latest version, at `--at-version N` or at
//! `--at-time T`.

use crate::output::{self, Format};
use crate::Endpoints;
use chrono::{DateTime, Utc};
use domain::Aggregate;
use event_schemas::EventEnvelope;
use serde::Serialize;

#[derive(Debug, clap::Subcommand)]
pub enum StreamCommand {
    /// A stream's history and its state as folded by the domain.
    Show {
        /// The stream id (the aggregate id).
        id: String,
        /// The state after this version.
        #[arg(long, conflicts_with = "at_time")]
        at_version: Option<u64>,
        /// The state as it was at this time (RFC 3339).
        #[arg(long)]
        at_time: Option<DateTime<Utc>>,
    },
}

#[derive(Serialize)]
struct Shown {
    stream_id: String,
    stream_type: String,
    /// The version the state reflects.
    version: u64,
    /// The folded state, as the domain prints it.
    state: String,
    events: Vec<EventEnvelope>,
}

/// Folds typed events of aggregate `A` and prints the state.
fn fold<A: Aggregate + std::fmt::Debug>(events: &[EventEnvelope]) -> anyhow::Result<String> {
    let typed = events
        .iter()
        .map(|e| e.decode::<A::Event>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("{:#?}", A::fold(&typed)))
}

pub async fn run(cmd: StreamCommand, ep: &Endpoints, out: Format) -> anyhow::Result<i32> {
    let StreamCommand::Show {
        id,
        at_version,
        at_time,
    } = cmd;
    let store = ep.store().await?;
    let all = store.load(&id, 0).await?;
    anyhow::ensure!(!all.is_empty(), "no stream {id} in the event store");
    let events: Vec<EventEnvelope> = all
        .into_iter()
        .filter(|e| at_version.is_none_or(|v| e.version <= v))
        .filter(|e| at_time.is_none_or(|t| e.occurred_at <= t))
        .map(|e| e.upcast())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        !events.is_empty(),
        "stream {id} has no event at or before that point"
    );
    let stream_type = events[0].stream_type.clone();
    let state = match stream_type.as_str() {
        "cart" => fold::<domain::cart::Cart>(&events)?,
        "order" => fold::<domain::order::Order>(&events)?,
        "payment" => fold::<domain::payment::Payment>(&events)?,
        "product" => fold::<domain::product::Product>(&events)?,
        "user" => fold::<domain::user::User>(&events)?,
        other => anyhow::bail!("unknown stream type {other}"),
    };
    let shown = Shown {
        stream_id: id,
        version: events.last().map_or(0, |e| e.version),
        stream_type,
        state,
        events,
    };
    match out {
        Format::Json => output::json(&shown)?,
        Format::Table => {
            println!(
                "{} stream {} at version {}\n",
                shown.stream_type, shown.stream_id, shown.version
            );
            let rows: Vec<Vec<String>> = shown
                .events
                .iter()
                .map(|e| {
                    vec![
                        e.version.to_string(),
                        e.occurred_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        format!("{} v{}", e.event_type, e.schema_version),
                        e.actor.clone(),
                        e.data.to_string(),
                    ]
                })
                .collect();
            output::table(&["version", "occurred_at", "event", "actor", "data"], &rows);
            println!("\nstate:\n{}", shown.state);
        }
    }
    Ok(0)
}
