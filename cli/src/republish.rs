//! `kafka republish --from-store`: produces every stored event (or one aggregate type's) to
//! its topic again, in stream order, exactly as the relay does (CloudEvents value, key =
//! stream id, idempotent producer). For disaster recovery after the broker lost its data; it
//! is safe on a broker that still has them, since every consumer skips versions it has seen.

use crate::events::AGGREGATES;
use crate::output::{self, Format};
use crate::Endpoints;
use event_schemas::{cloudevents, topic_for};
use futures::TryStreamExt;
use mongodb::bson::doc;
use rdkafka::producer::FutureRecord;
use serde::Serialize;

#[derive(Debug, clap::Subcommand)]
pub enum KafkaCommand {
    /// Re-publish the event store to Kafka.
    Republish {
        /// Read the events from the event store (the only source there is).
        #[arg(long, required = true)]
        from_store: bool,
        /// Only this aggregate type; repeatable. Default: all.
        #[arg(long = "aggregate", short = 'a')]
        aggregates: Vec<String>,
    },
}

#[derive(Serialize)]
struct Published {
    aggregate: String,
    topic: String,
    events: u64,
}

pub async fn run(cmd: KafkaCommand, ep: &Endpoints, out: Format) -> anyhow::Result<i32> {
    let KafkaCommand::Republish { aggregates, .. } = cmd;
    let aggregates: Vec<String> = if aggregates.is_empty() {
        AGGREGATES.iter().map(|s| s.to_string()).collect()
    } else {
        aggregates
    };
    let store = ep.store().await?;
    let kafka = ep.kafka();
    let producer = kafka.producer()?;
    let mut report = Vec::new();
    for agg in &aggregates {
        let topic = topic_for(agg);
        kafka.ensure_topics(std::slice::from_ref(&topic)).await?;
        let total = store
            .events()
            .count_documents(doc! { "stream_type": agg })
            .await?;
        let bar = output::progress(total, &format!("republishing {agg}"));
        let mut cursor = store
            .events()
            .find(doc! { "stream_type": agg })
            .sort(doc! { "stream_id": 1, "version": 1 })
            .await?;
        let mut pending = Vec::new();
        let mut events = 0u64;
        while let Some(d) = cursor.try_next().await? {
            let env = event_store::event_store::from_document(d)?;
            let payload = cloudevents::encode(&env);
            let headers = platform::kafka::event_headers(
                cloudevents::CONTENT_TYPE,
                &env.correlation_id,
                None,
                None,
            );
            let mut record = FutureRecord::to(&topic)
                .key(env.stream_id.as_str())
                .payload(&payload)
                .headers(headers);
            let delivery = loop {
                match producer.send_result(record) {
                    Ok(d) => break d,
                    // The local queue is full: wait for the oldest delivery.
                    Err((e, _)) if pending.is_empty() => {
                        anyhow::bail!("enqueueing to Kafka: {e}")
                    }
                    Err((_, back)) => {
                        record = back;
                        let first: rdkafka::producer::DeliveryFuture = pending.remove(0);
                        wait(first).await?;
                    }
                }
            };
            pending.push(delivery);
            if pending.len() >= 10_000 {
                for d in pending.drain(..) {
                    wait(d).await?;
                }
            }
            events += 1;
            bar.inc(1);
        }
        for d in pending.drain(..) {
            wait(d).await?;
        }
        bar.finish_and_clear();
        report.push(Published {
            aggregate: agg.clone(),
            topic,
            events,
        });
    }
    match out {
        Format::Json => output::json(&report)?,
        Format::Table => output::table(
            &["aggregate", "topic", "events"],
            &report
                .iter()
                .map(|r| vec![r.aggregate.clone(), r.topic.clone(), r.events.to_string()])
                .collect::<Vec<_>>(),
        ),
    }
    Ok(0)
}

async fn wait(d: rdkafka::producer::DeliveryFuture) -> anyhow::Result<()> {
    match d.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => anyhow::bail!("Kafka refused a record: {e}"),
        Err(_) => anyhow::bail!("Kafka producer dropped a record"),
    }
}
