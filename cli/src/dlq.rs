//! `dlq list` and `dlq replay`: the records projectors dead-lettered on `<topic>.dlq`, with
//! the reason and source position from their headers, and sending them back to their source
//! topic once the cause is fixed. Each replay is recorded in PostgreSQL (`dlq_replays`), so a
//! record is sent back once unless `--force` is given.
//!
//! `dlq parked` and `dlq replay --stream`: the streams a poison event parked, in a projection
//! (`parked_streams`, with their held events) or in the relay (`relay_parked`), and releasing
//! one once the cause is fixed: the projector applies its held events once, in order, and
//! unparks it; the relay publishes the stream's waiting events at its next sweep.

use crate::events::{parse_duration, AGGREGATES};
use crate::output::{self, Format};
use crate::Endpoints;
use event_schemas::{cloudevents, dead_letter_topic, topic_for};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Dead-lettered records with their reason.
    List {
        #[command(flatten)]
        which: Which,
    },
    /// Streams parked behind a poison event (projections and relay), with their held events.
    Parked {
        /// Only this projection's.
        #[arg(long)]
        projection: Option<String>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
    },
    /// Give up a parked stream: its held events are deleted without being applied.
    Discard {
        #[arg(long)]
        stream: String,
        /// Only this projection's (default: every projection that parked it).
        #[arg(long)]
        projection: Option<String>,
    },
    /// Send dead-lettered records back to their source topic (key and value unchanged); with
    /// `--stream`, release a parked stream instead.
    Replay {
        #[command(flatten)]
        which: Which,
        /// Release this parked stream: its held events are applied once, in order (every
        /// projection that parked it, or the one given with --projection).
        #[arg(long)]
        stream: Option<String>,
        /// With --stream: only this projection's parked stream.
        #[arg(long)]
        projection: Option<String>,
        /// With --stream: do not apply the event that parked the stream (it stays on the
        /// dead-letter topic); apply the rest.
        #[arg(long)]
        drop_first: bool,
        /// With --stream: unpark the stream in the relay (after fixing its document or the
        /// broker's limit); the relay publishes its waiting events at its next sweep.
        #[arg(long)]
        relay: bool,
        /// With --stream: how long to wait for the projector to replay it.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        wait: Duration,
        /// Only these records, as `<partition>:<offset>` of the dead-letter topic; repeatable.
        #[arg(long = "record")]
        records: Vec<String>,
        /// Replay records that were replayed before.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Which {
    /// Source topics (their `.dlq` is read); default: every event topic.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// The end is reached after this long without a record.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    quiet: Duration,
}

/// One dead-lettered record.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub dlq_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub reason: String,
    pub projection: String,
    pub source_topic: String,
    pub source_partition: String,
    pub source_offset: String,
    /// The CloudEvent's type, if the value is one.
    pub event_type: Option<String>,
    pub replayed: bool,
    #[serde(skip)]
    value: Option<Vec<u8>>,
}

fn read_dead_letters(ep: &Endpoints, which: &Which) -> anyhow::Result<Vec<DeadLetter>> {
    let sources: Vec<String> = if which.topics.is_empty() {
        AGGREGATES.iter().map(|a| topic_for(a)).collect()
    } else {
        which.topics.clone()
    };
    let dlqs: Vec<String> = sources.iter().map(|t| dead_letter_topic(t)).collect();
    let consumer = ep.consumer().no_topic_creation().base()?;
    let mut tpl = TopicPartitionList::new();
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    for t in md.topics() {
        if dlqs.iter().any(|d| d == t.name()) {
            for p in t.partitions() {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(vec![]);
    }
    consumer.assign(&tpl)?;
    drop(tpl);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < which.quiet {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        last = Instant::now();
        let header = |name: &str| -> String {
            m.headers()
                .and_then(|h| {
                    h.iter()
                        .find(|x| x.key == name)
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default()
        };
        out.push(DeadLetter {
            dlq_topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            reason: header("dlq-reason"),
            projection: header("dlq-projection"),
            source_topic: header("dlq-source-topic"),
            source_partition: header("dlq-source-partition"),
            source_offset: header("dlq-source-offset"),
            event_type: m
                .payload()
                .and_then(|p| cloudevents::decode(p).ok())
                .map(|e| format!("{} v{}", e.event_type, e.schema_version)),
            replayed: false,
            value: m.payload().map(<[u8]>::to_vec),
        });
    }
    out.sort_by(|a, b| {
        (&a.dlq_topic, a.partition, a.offset).cmp(&(&b.dlq_topic, b.partition, b.offset))
    });
    Ok(out)
}

async fn replayed(pool: &sqlx::PgPool) -> anyhow::Result<HashSet<(String, i32, i64)>> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT dlq_topic, partition, dlq_offset FROM dlq_replays")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

fn print(out: Format, letters: &[DeadLetter]) -> anyhow::Result<()> {
    match out {
        Format::Json => output::json(&letters),
        Format::Table => {
            let rows: Vec<Vec<String>> = letters
                .iter()
                .map(|d| {
                    vec![
                        d.dlq_topic.clone(),
                        format!("{}:{}", d.partition, d.offset),
                        d.key.clone().unwrap_or_default(),
                        d.event_type.clone().unwrap_or_else(|| "-".into()),
                        d.projection.clone(),
                        format!("{}:{}", d.source_partition, d.source_offset),
                        if d.replayed { "yes" } else { "no" }.into(),
                        d.reason.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "dlq topic",
                    "record",
                    "key",
                    "event",
                    "projection",
                    "source",
                    "replayed",
                    "reason",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

/// What `dlq replay --stream` did for one projection (or the relay).
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    pub projection: String,
    pub stream_id: String,
    /// `replayed`, `parked again` (with the new reason), `pending` (not yet replayed when
    /// the wait ended), or `unparked` (relay).
    pub outcome: String,
    pub reason: Option<String>,
}

async fn parked(
    ep: &Endpoints,
    out: Format,
    projection: Option<String>,
    stream: Option<String>,
) -> anyhow::Result<i32> {
    let pool = ep.pg().await?;
    let streams = projectors::parked::list(&pool, projection.as_deref(), stream.as_deref()).await?;
    let store = ep.store().await?;
    let relay: Vec<_> = event_store::parking::list(store.database())
        .await?
        .into_iter()
        .filter(|r| stream.is_none() || r.stream_id == stream)
        .filter(|_| projection.is_none() || projection.as_deref() == Some("relay"))
        .collect();
    match out {
        Format::Json => {
            output::json(&serde_json::json!({ "projections": streams, "relay": relay }))?
        }
        Format::Table => {
            let mut rows: Vec<Vec<String>> = streams
                .iter()
                .map(|p| {
                    vec![
                        p.projection.clone(),
                        p.stream_id.clone(),
                        p.first_version.map_or("?".into(), |v| v.to_string()),
                        p.held_events.to_string(),
                        p.parked_at.to_rfc3339(),
                        if p.released_at.is_some() {
                            "replaying"
                        } else {
                            "parked"
                        }
                        .into(),
                        p.reason.clone(),
                    ]
                })
                .collect();
            rows.extend(relay.iter().map(|r| {
                vec![
                    "relay".into(),
                    r.stream_id
                        .clone()
                        .unwrap_or_else(|| format!("document:{}", r.doc_id)),
                    r.version.map_or("?".into(), |v| v.to_string()),
                    r.held_events.to_string(),
                    r.parked_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    "parked".into(),
                    r.reason.clone(),
                ]
            }));
            output::table(
                &[
                    "projection",
                    "stream",
                    "from version",
                    "held",
                    "parked at",
                    "state",
                    "reason",
                ],
                &rows,
            );
            let held: Vec<Vec<String>> = streams
                .iter()
                .flat_map(|p| {
                    p.held.iter().map(|h| {
                        vec![
                            p.projection.clone(),
                            p.stream_id.clone(),
                            h.version.map_or("?".into(), |v| v.to_string()),
                            h.event_type.clone().unwrap_or_else(|| "-".into()),
                            h.source.clone(),
                            h.reason.clone().unwrap_or_default(),
                        ]
                    })
                })
                .collect();
            if !held.is_empty() {
                println!();
                output::table(
                    &[
                        "projection",
                        "stream",
                        "version",
                        "event",
                        "source",
                        "poison reason",
                    ],
                    &held,
                );
            }
        }
    }
    Ok(0)
}

async fn release(
    ep: &Endpoints,
    out: Format,
    stream: &str,
    projection: Option<String>,
    drop_first: bool,
    relay: bool,
    wait: Duration,
) -> anyhow::Result<i32> {
    let mut done: Vec<Released> = Vec::new();
    if relay {
        let store = ep.store().await?;
        if event_store::parking::unpark(store.database(), stream).await? {
            done.push(Released {
                projection: "relay".into(),
                stream_id: stream.to_owned(),
                outcome: "unparked".into(),
                reason: None,
            });
        } else {
            eprintln!("the relay has not parked {stream}");
        }
    } else {
        let pool = ep.pg().await?;
        let released =
            projectors::parked::release(&pool, projection.as_deref(), stream, drop_first).await?;
        if released.is_empty() {
            eprintln!("no projection has parked {stream}");
        }
        // The projector replays a released stream within about a second.
        let deadline = Instant::now() + wait;
        for p in released {
            let outcome = loop {
                let row: Option<(Option<chrono::DateTime<chrono::Utc>>, String)> = sqlx::query_as(
                    "SELECT released_at, reason FROM parked_streams WHERE projection = $1 AND stream_id = $2",
                )
                .bind(&p)
                .bind(stream)
                .fetch_optional(&pool)
                .await?;
                match row {
                    None => break ("replayed", None),
                    Some((None, reason)) => break ("parked again", Some(reason)),
                    Some((Some(_), _)) if Instant::now() >= deadline => break ("pending", None),
                    Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            done.push(Released {
                projection: p,
                stream_id: stream.to_owned(),
                outcome: outcome.0.into(),
                reason: outcome.1,
            });
        }
    }
    match out {
        Format::Json => output::json(&done)?,
        Format::Table => output::table(
            &["projection", "stream", "outcome", "reason"],
            &done
                .iter()
                .map(|d| {
                    vec![
                        d.projection.clone(),
                        d.stream_id.clone(),
                        d.outcome.clone(),
                        d.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(
        if done
            .iter()
            .all(|d| d.outcome == "replayed" || d.outcome == "unparked")
        {
            0
        } else {
            1
        },
    )
}

pub async fn run(cmd: DlqCommand, ep: &Endpoints, out: Format) -> anyhow::Result<i32> {
    let cmd = match cmd {
        DlqCommand::Parked { projection, stream } => {
            return parked(ep, out, projection, stream).await
        }
        DlqCommand::Replay {
            stream: Some(stream),
            projection,
            drop_first,
            relay,
            wait,
            ..
        } => return release(ep, out, &stream, projection, drop_first, relay, wait).await,
        DlqCommand::Discard { stream, projection } => {
            let pool = ep.pg().await?;
            let gone = projectors::parked::discard(&pool, projection.as_deref(), &stream).await?;
            if gone.is_empty() {
                eprintln!("no projection has parked {stream}");
            }
            match out {
                Format::Json => output::json(&gone)?,
                Format::Table => {
                    for p in &gone {
                        println!("{p}: {stream} discarded");
                    }
                }
            }
            return Ok(0);
        }
        other => other,
    };
    let pool = ep.pg().await?;
    let done = replayed(&pool).await?;
    let which = match &cmd {
        DlqCommand::List { which } | DlqCommand::Replay { which, .. } => which.clone(),
        DlqCommand::Parked { .. } | DlqCommand::Discard { .. } => return Ok(0),
    };
    let ep2 = ep.clone();
    let mut letters =
        tokio::task::spawn_blocking(move || read_dead_letters(&ep2, &which)).await??;
    for d in &mut letters {
        d.replayed = done.contains(&(d.dlq_topic.clone(), d.partition, d.offset));
    }
    match cmd {
        DlqCommand::List { .. } => {
            print(out, &letters)?;
            Ok(0)
        }
        DlqCommand::Parked { .. } | DlqCommand::Discard { .. } => Ok(0),
        DlqCommand::Replay { records, force, .. } => {
            let wanted: HashSet<String> = records.into_iter().collect();
            let chosen: Vec<DeadLetter> = letters
                .into_iter()
                .filter(|d| {
                    wanted.is_empty() || wanted.contains(&format!("{}:{}", d.partition, d.offset))
                })
                .filter(|d| force || !d.replayed)
                .collect();
            let producer = ep.kafka().producer()?;
            for d in &chosen {
                anyhow::ensure!(
                    !d.source_topic.is_empty(),
                    "{}:{}:{} has no dlq-source-topic header",
                    d.dlq_topic,
                    d.partition,
                    d.offset
                );
                let from = format!("{}:{}:{}", d.dlq_topic, d.partition, d.offset);
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "content-type",
                        value: Some(cloudevents::CONTENT_TYPE),
                    })
                    .insert(Header {
                        key: "dlq-replayed-from",
                        value: Some(from.as_str()),
                    });
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&d.source_topic).headers(headers);
                if let Some(k) = &d.key {
                    record = record.key(k.as_bytes());
                }
                if let Some(v) = &d.value {
                    record = record.payload(v.as_slice());
                }
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| anyhow::anyhow!("producing the replay of {from}: {e}"))?;
                sqlx::query(
                    "INSERT INTO dlq_replays (dlq_topic, partition, dlq_offset) VALUES ($1, $2, $3)
                     ON CONFLICT (dlq_topic, partition, dlq_offset) DO UPDATE SET replayed_at = now()",
                )
                .bind(&d.dlq_topic)
                .bind(d.partition)
                .bind(d.offset)
                .execute(&pool)
                .await?;
            }
            let replayed: Vec<DeadLetter> = chosen
                .into_iter()
                .map(|mut d| {
                    d.replayed = true;
                    d
                })
                .collect();
            print(out, &replayed)?;
            Ok(0)
        }
    }
}
