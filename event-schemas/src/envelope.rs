//! The event envelope of ARCHITECTURE.md: identity, stream position, type and schema version,
//! causality and the typed payload as JSON.

use chrono::{DateTime, SubsecRound, Utc};
use domain::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an event could not be decoded. The text names the field or rule that failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a CloudEvents JSON document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid CloudEvent: {0}")]
    Invalid(String),
    #[error("unknown event type {event_type} (schema version {schema_version}) for {stream_type}")]
    UnknownType {
        stream_type: String,
        event_type: String,
        schema_version: u32,
    },
    #[error("payload of {event_type} does not match its schema: {reason}")]
    Payload { event_type: String, reason: String },
}

/// Who and what caused a command, carried into every event it produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMeta {
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor: String,
}

/// One stored event: the envelope fields and the payload as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// UUIDv7, unique across all streams.
    pub event_id: Uuid,
    /// The aggregate type, e.g. `cart`.
    pub stream_type: String,
    /// The aggregate id.
    pub stream_id: String,
    /// 1-based, gap-free position in the stream.
    pub version: u64,
    /// e.g. `CartItemAdded`.
    pub event_type: String,
    /// The shape version of `data` for this `event_type`.
    pub schema_version: u32,
    /// When the command was decided, to the millisecond (UTC).
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who issued the command.
    pub actor: String,
    pub data: serde_json::Value,
    /// The W3C `traceparent` of the span that decided the event, when tracing was on: the
    /// relay carries it on as the record's `traceparent` header, so the event's consumers
    /// join the command's trace. Events stored before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventEnvelope {
    /// Wraps a domain event at a stream position.
    pub fn new<E: DomainEvent>(
        stream_type: &str,
        stream_id: &str,
        version: u64,
        event: &E,
        meta: &EventMeta,
        occurred_at: DateTime<Utc>,
    ) -> Result<Self, CodecError> {
        let mut tagged = serde_json::to_value(event)?;
        let data = tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_else(|| serde_json::json!({}));
        Ok(Self {
            event_id: Uuid::now_v7(),
            stream_type: stream_type.to_owned(),
            stream_id: stream_id.to_owned(),
            version,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            occurred_at: occurred_at.trunc_subsecs(3),
            correlation_id: meta.correlation_id.clone(),
            causation_id: meta.causation_id.clone(),
            actor: meta.actor.clone(),
            data,
            traceparent: None,
        })
    }

    /// The typed domain event in this envelope, upcast from an older schema version first.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, CodecError> {
        let (_, data) = crate::upcast::upcast_data(
            &self.stream_type,
            &self.event_type,
            self.schema_version,
            self.data.clone(),
        )?;
        let tagged = serde_json::json!({ "event_type": self.event_type, "data": data });
        serde_json::from_value(tagged).map_err(|e| CodecError::Payload {
            event_type: self.event_type.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::cart::{CartEvent, CartItemAdded};
    use domain::values::{ProductId, Quantity};

    #[test]
    fn wraps_and_unwraps_a_domain_event() {
        let event = CartEvent::CartItemAdded(CartItemAdded {
            product_id: ProductId::generate(),
            quantity: Quantity::new(3).unwrap(),
        });
        let env = EventEnvelope::new("cart", "c-1", 2, &event, &EventMeta::default(), Utc::now())
            .unwrap();
        assert_eq!(env.event_type, "CartItemAdded");
        assert_eq!(env.data["quantity"], 3);
        assert_eq!(env.decode::<CartEvent>().unwrap(), event);
    }

    #[test]
    fn a_payload_that_breaks_a_rule_is_refused() {
        let event = CartEvent::CartItemAdded(CartItemAdded {
            product_id: ProductId::generate(),
            quantity: Quantity::new(3).unwrap(),
        });
        let mut env =
            EventEnvelope::new("cart", "c-1", 2, &event, &EventMeta::default(), Utc::now())
                .unwrap();
        env.data["quantity"] = serde_json::json!(0);
        assert!(matches!(
            env.decode::<CartEvent>(),
            Err(CodecError::Payload { .. })
        ));
    }
}
