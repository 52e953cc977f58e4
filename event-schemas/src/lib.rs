//! Events as they travel and rest: the envelope every stored event carries, the CloudEvents
//! 1.0 (structured mode, JSON) codec used on Kafka, and the JSON Schema of every event type.
//!
//! The payload types themselves live in `domain` (each aggregate's `decide` returns them);
//! this crate wraps them in an [`EventEnvelope`] and names their topics. [`upcast`] turns old
//! payload shapes into current ones on read; [`personal`] names the personal fields that are
//! sealed with a key per person.

pub mod cloudevents;
mod envelope;
pub mod personal;
pub mod schemas;
pub mod upcast;

pub use envelope::{CodecError, EventEnvelope, EventMeta};

/// The Kafka topic of an aggregate type: `commerce.<stream_type>.events`.
pub fn topic_for(stream_type: &str) -> String {
    format!("commerce.{stream_type}.events")
}

/// The dead-letter topic of a topic: `<topic>.dlq`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
