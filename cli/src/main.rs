//! `commerce`: one CLI for the operators and analysts of the event history.
//!
//! - [`events`]: `events export` (Kafka or the store, filtered, JSONL or CSV) and `events tail`;
//! - [`stream`]: `stream show`, a stream's history and its state folded by the domain;
//! - [`projections`]: `projections status | rebuild | verify` (engine in `projectors::rebuild`);
//! - [`dlq`]: `dlq list | replay`;
//! - [`republish`]: `kafka republish --from-store`;
//! - `credential`: prints an internal credential (`INTERNAL_SECRET`) for direct gRPC calls,
//!   e.g. with grpcurl (`-H "authorization: Bearer $(commerce credential)"`).
//!
//! Every command prints a table for people, or JSON with `-o json`; endpoints come from the
//! same environment variables as the services (`KAFKA_BROKERS`, `MONGODB_URI`, `DATABASE_URL`).

mod dlq;
mod events;
mod output;
mod projections;
mod republish;
mod stream;

use clap::{Parser, Subcommand};
use output::Format;
use platform::kafka::KafkaArgs;

#[derive(Debug, Parser)]
#[command(
    name = "commerce",
    version,
    about = "Replay, export and operate the commerce event history",
    propagate_version = true
)]
struct Cli {
    /// Output: a table for people, or JSON for tools.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(flatten)]
    endpoints: Endpoints,
    #[command(subcommand)]
    command: Command,
}

/// Where the stack is (the services' own variables).
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoints {
    /// Kafka bootstrap brokers.
    #[arg(
        long,
        global = true,
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// Partitions of topics this tool creates (republish onto an empty broker).
    #[arg(long, global = true, env = "KAFKA_PARTITIONS", default_value_t = 3)]
    pub kafka_partitions: i32,
    /// The event store.
    #[arg(
        long,
        global = true,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    pub mongodb_uri: String,
    #[arg(long, global = true, env = "MONGODB_DB", default_value = "commerce")]
    pub mongodb_db: String,
    /// The read models.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce"
    )]
    pub database_url: String,
}

impl Endpoints {
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs {
            kafka_brokers: self.kafka_brokers.clone(),
            kafka_partitions: self.kafka_partitions,
            kafka_replication: 1,
        }
    }

    /// A consumer of its own group (a fresh one per run, never committed to), reading a
    /// partition from its beginning unless told where.
    pub fn consumer(&self) -> platform::kafka::ConsumerBuilder {
        self.kafka()
            .consumer(format!("commerce-cli-{}", uuid::Uuid::new_v4()))
            .from_earliest()
    }

    pub async fn store(&self) -> anyhow::Result<event_store::event_store::EventStore> {
        event_store::event_store::EventStore::connect(&self.mongodb_uri, &self.mongodb_db).await
    }

    pub async fn pg(&self) -> anyhow::Result<sqlx::PgPool> {
        read_model::connect_pg(&self.database_url, 4).await
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export or follow events.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// One stream: its history and state.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Read models: status and lag, rebuild without downtime, verify.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Dead-lettered messages.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Kafka disaster recovery.
    #[command(subcommand)]
    Kafka(republish::KafkaCommand),
    /// Prints an internal credential for direct gRPC calls (valid for 60 s).
    Credential(CredentialArgs),
}

#[derive(Debug, clap::Args)]
struct CredentialArgs {
    /// Whom it names: `service:operator`, `admin:<user id>`, `user:<user id>`, `anonymous`.
    #[arg(long = "as", default_value = "service:operator")]
    actor: String,
    #[command(flatten)]
    internal: platform::internal_auth::InternalAuthArgs,
}

fn credential(c: CredentialArgs) -> anyhow::Result<i32> {
    let actor = platform::internal_auth::Actor::parse(&c.actor)
        .ok_or_else(|| anyhow::anyhow!("not an actor: {:?}", c.actor))?;
    println!("{}", c.internal.auth()?.mint(&actor)?);
    Ok(0)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COMMERCE_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,librdkafka=off,rdkafka=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    event_schemas::upcast::check().map_err(anyhow::Error::msg)?;
    let (out, ep) = (cli.output, &cli.endpoints);
    // Sealed personal fields are opened with the store's person keys (connected on first use).
    event_store::pii::install(&ep.mongodb_uri, &ep.mongodb_db);
    match cli.command {
        Command::Events(c) => events::run(c, ep, out).await,
        Command::Stream(c) => stream::run(c, ep, out).await,
        Command::Projections(c) => projections::run(c, ep, out).await,
        Command::Dlq(c) => dlq::run(c, ep, out).await,
        Command::Kafka(c) => republish::run(c, ep, out).await,
        Command::Credential(c) => credential(c),
    }
}
