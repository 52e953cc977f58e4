//! `events export` and `events tail`: the same filters over Kafka (seeking with
//! `offsets_for_times`) or the event store, every event upcast to its current schema version,
//! written as JSON lines or CSV to stdout or a file. Kafka may hold a record twice
//! (at-least-once); an export writes each event id once, so both sources give the same data.

use crate::output::Format;
use crate::Endpoints;
use chrono::{DateTime, Utc};
use event_schemas::{cloudevents, topic_for, EventEnvelope};
use event_store::pii::{open_installed, Reveal};
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Document};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// Every aggregate type with an event topic.
pub const AGGREGATES: &[&str] = &["cart", "user", "product", "order", "payment"];

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Export events matching the filters, oldest first per partition (Kafka) or by time
    /// (store).
    Export {
        #[command(flatten)]
        filter: Filter,
        /// Where to read: Kafka (the topics) or the event store.
        #[arg(long, value_enum, default_value_t = Source::Kafka)]
        source: Source,
        #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
        format: FileFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Kafka: the end is reached after this long without a record (the local broker's
        /// high watermark cannot be trusted).
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        quiet: Duration,
        /// Open sealed personal fields whose key is alive (plaintext in the export). Without
        /// it they stay sealed; either way, fields of erased people read `null`.
        #[arg(long)]
        reveal: bool,
    },
    /// Follow new events matching the filters on Kafka, as JSON lines.
    Tail {
        #[command(flatten)]
        filter: Filter,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Stop after this long.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Kafka,
    Store,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Jsonl,
    Csv,
}

/// Which events.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// Aggregate type (cart, user, product, order, payment); repeatable. Default: all.
    #[arg(long = "aggregate", short = 'a')]
    pub aggregates: Vec<String>,
    /// A topic instead of an aggregate type; repeatable.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Event type, e.g. CartItemAdded; repeatable.
    #[arg(long = "type", short = 't')]
    pub types: Vec<String>,
    /// Stream id; repeatable.
    #[arg(long = "stream", short = 's')]
    pub streams: Vec<String>,
    /// Events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Events that occurred before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// The aggregate types asked for (topics named `commerce.<type>.events` count too).
    fn stream_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.aggregates.clone();
        for t in &self.topics {
            if let Some(a) = t
                .strip_prefix("commerce.")
                .and_then(|r| r.strip_suffix(".events"))
            {
                types.push(a.to_owned());
            }
        }
        if types.is_empty() && self.topics.is_empty() {
            types = AGGREGATES.iter().map(|s| s.to_string()).collect();
        }
        types
    }

    fn kafka_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.aggregates.iter().map(|a| topic_for(a)).collect();
        topics.extend(self.topics.iter().cloned());
        if topics.is_empty() {
            topics = AGGREGATES.iter().map(|a| topic_for(a)).collect();
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Whether an envelope passes every filter.
    pub fn matches(&self, env: &EventEnvelope) -> bool {
        (self.types.is_empty() || self.types.contains(&env.event_type))
            && (self.streams.is_empty() || self.streams.contains(&env.stream_id))
            && self.since.is_none_or(|s| env.occurred_at >= s)
            && self.until.is_none_or(|u| env.occurred_at < u)
    }

    fn store_query(&self) -> Document {
        let mut q = doc! { "stream_type": { "$in": self.stream_types() } };
        if !self.types.is_empty() {
            q.insert("event_type", doc! { "$in": &self.types });
        }
        if !self.streams.is_empty() {
            q.insert("stream_id", doc! { "$in": &self.streams });
        }
        let mut time = Document::new();
        if let Some(s) = self.since {
            time.insert("$gte", bson::DateTime::from_millis(s.timestamp_millis()));
        }
        if let Some(u) = self.until {
            time.insert("$lt", bson::DateTime::from_millis(u.timestamp_millis()));
        }
        if !time.is_empty() {
            q.insert("occurred_at", time);
        }
        q
    }
}

/// `2s`, `500ms`, `1m` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit in {s} (ms, s, m)")),
    }
}

/// Writes events as JSON lines or CSV.
pub struct Sink {
    jsonl: Option<Box<dyn Write + Send>>,
    csv: Option<csv::Writer<Box<dyn Write + Send>>>,
    pub written: u64,
    /// Which sealed personal fields are opened (erased ones always read `null`).
    pub reveal: Reveal,
    /// Progress on stderr while writing to a file.
    bar: Option<indicatif::ProgressBar>,
}

impl Sink {
    pub fn new(format: FileFormat, out: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let w: Box<dyn Write + Send> = match out {
            Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        let bar = out.map(|p| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} events ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.set_message(format!("exporting to {}", p.display()));
            bar
        });
        Ok(match format {
            FileFormat::Jsonl => Self {
                jsonl: Some(w),
                csv: None,
                written: 0,
                reveal: Reveal::ErasedOnly,
                bar,
            },
            FileFormat::Csv => {
                let mut c = csv::Writer::from_writer(w);
                c.write_record([
                    "event_id",
                    "stream_type",
                    "stream_id",
                    "version",
                    "event_type",
                    "schema_version",
                    "occurred_at",
                    "correlation_id",
                    "causation_id",
                    "actor",
                    "data",
                ])?;
                Self {
                    jsonl: None,
                    csv: Some(c),
                    written: 0,
                    reveal: Reveal::ErasedOnly,
                    bar,
                }
            }
        })
    }

    pub fn write(&mut self, env: &EventEnvelope) -> anyhow::Result<()> {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if let Some(w) = &mut self.jsonl {
            serde_json::to_writer(&mut *w, env)?;
            w.write_all(b"\n")?;
        }
        if let Some(c) = &mut self.csv {
            c.write_record([
                env.event_id.to_string(),
                env.stream_type.clone(),
                env.stream_id.clone(),
                env.version.to_string(),
                env.event_type.clone(),
                env.schema_version.to_string(),
                env.occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                env.correlation_id.clone(),
                env.causation_id.clone().unwrap_or_default(),
                env.actor.clone(),
                env.data.to_string(),
            ])?;
        }
        self.written += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(w) = &mut self.jsonl {
            w.flush()?;
        }
        if let Some(c) = &mut self.csv {
            c.flush()?;
        }
        Ok(())
    }
}

pub async fn run(cmd: EventsCommand, ep: &Endpoints, _out: Format) -> anyhow::Result<i32> {
    match cmd {
        EventsCommand::Export {
            filter,
            source,
            format,
            out,
            quiet,
            reveal,
        } => {
            let mut sink = Sink::new(format, out.as_deref())?;
            if reveal {
                sink.reveal = Reveal::All;
            }
            match source {
                Source::Store => export_store(ep, &filter, &mut sink).await?,
                Source::Kafka => {
                    let ep = ep.clone();
                    sink = tokio::task::spawn_blocking(move || {
                        read_kafka(&ep, &filter, quiet, None, None, false, &mut sink)?;
                        Ok::<_, anyhow::Error>(sink)
                    })
                    .await??;
                }
            }
            sink.flush()?;
            if out.is_some() {
                eprintln!("exported {} events", sink.written);
            }
            Ok(0)
        }
        EventsCommand::Tail {
            mut filter,
            limit,
            timeout,
        } => {
            // From now on (or --since), whatever the broker's idea of its end.
            filter.since.get_or_insert_with(Utc::now);
            let ep = ep.clone();
            tokio::task::spawn_blocking(move || {
                let mut sink = Sink::new(FileFormat::Jsonl, None)?;
                let stop = timeout.map(|t| Instant::now() + t);
                read_kafka(&ep, &filter, Duration::MAX, stop, limit, true, &mut sink)?;
                sink.flush()
            })
            .await??;
            Ok(0)
        }
    }
}

async fn export_store(ep: &Endpoints, filter: &Filter, sink: &mut Sink) -> anyhow::Result<()> {
    let store = ep.store().await?;
    let mut cursor = store
        .events()
        .find(filter.store_query())
        .sort(doc! { "occurred_at": 1, "_id": 1 })
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let mut env = event_store::event_store::from_document(d)?.upcast()?;
        open_installed(&mut env, sink.reveal).await?;
        sink.write(&env)?;
    }
    Ok(())
}

/// Reads the filter's topics from `since` (through `offsets_for_times`) or the beginning,
/// until `quiet` passes without a record or `stop` is reached. With `follow`, flushes after
/// every event.
pub fn read_kafka(
    ep: &Endpoints,
    filter: &Filter,
    quiet: Duration,
    stop: Option<Instant>,
    limit: Option<usize>,
    follow: bool,
    sink: &mut Sink,
) -> anyhow::Result<()> {
    let consumer = ep.consumer().base()?;
    let parts = projectors::lag::partitions(&consumer, &filter.kafka_topics())?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        match filter.since {
            // A record's Kafka timestamp is when it was produced, never before its event
            // occurred: seeking by `since` skips nothing that matches.
            Some(s) => tpl.add_partition_offset(t, *p, Offset::Offset(s.timestamp_millis()))?,
            None => tpl.add_partition_offset(t, *p, Offset::Beginning)?,
        }
    }
    let tpl = if filter.since.is_some() {
        let found = consumer.offsets_for_times(tpl, Duration::from_secs(10))?;
        let mut start = TopicPartitionList::new();
        for e in found.elements() {
            let at = match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                // No record at or after `since`: start at the end.
                _ => Offset::End,
            };
            start.add_partition_offset(e.topic(), e.partition(), at)?;
        }
        start
    } else {
        tpl
    };
    consumer.assign(&tpl)?;
    drop(tpl);
    let mut seen: HashSet<uuid::Uuid> = HashSet::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet && stop.is_none_or(|s| Instant::now() < s) {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m?;
        last = Instant::now();
        let Some(env) = m.payload().and_then(|p| cloudevents::decode(p).ok()) else {
            continue;
        };
        if !filter.matches(&env) || !seen.insert(env.event_id) {
            continue;
        }
        let mut env = env.upcast()?;
        // Blocking code on a runtime's blocking thread: the key lookup runs on the runtime.
        tokio::runtime::Handle::current().block_on(open_installed(&mut env, sink.reveal))?;
        sink.write(&env)?;
        if follow {
            sink.flush()?;
        }
        if limit.is_some_and(|l| sink.written >= l as u64) {
            break;
        }
    }
    Ok(())
}
