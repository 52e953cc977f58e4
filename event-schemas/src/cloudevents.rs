//! CloudEvents 1.0 in structured mode (JSON): how an [`EventEnvelope`] is written to and read
//! from a Kafka record value, so `kcat` and any CloudEvents SDK read it as is.
//!
//! Envelope fields without a CloudEvents attribute travel as extension attributes
//! (lower-case letters only, as the spec requires): `streamtype`, `streamid`, `streamversion`,
//! `schemaversion`, `correlationid`, `causationid` and `actor`.

use crate::{CodecError, EventEnvelope};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The content type of a structured-mode CloudEvent, for the Kafka `content-type` header.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

#[derive(Serialize, Deserialize)]
struct CloudEvent {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    ty: String,
    subject: String,
    time: String,
    datacontenttype: String,
    dataschema: String,
    streamtype: String,
    streamid: String,
    streamversion: u64,
    schemaversion: u32,
    correlationid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causationid: Option<String>,
    actor: String,
    data: serde_json::Value,
}

fn type_prefix(stream_type: &str) -> String {
    format!("commerce.{stream_type}.")
}

/// Encodes an envelope as a CloudEvents JSON document.
pub fn encode(env: &EventEnvelope) -> Vec<u8> {
    let ce = CloudEvent {
        specversion: "1.0".into(),
        id: env.event_id.to_string(),
        source: format!("/commerce/{}", env.stream_type),
        ty: format!("{}{}", type_prefix(&env.stream_type), env.event_type),
        subject: env.stream_id.clone(),
        time: env.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        datacontenttype: "application/json".into(),
        dataschema: format!(
            "urn:commerce:schema:{}:{}:v{}",
            env.stream_type, env.event_type, env.schema_version
        ),
        streamtype: env.stream_type.clone(),
        streamid: env.stream_id.clone(),
        streamversion: env.version,
        schemaversion: env.schema_version,
        correlationid: env.correlation_id.clone(),
        causationid: env.causation_id.clone(),
        actor: env.actor.clone(),
        data: env.data.clone(),
    };
    // Serialising plain strings, numbers and a JSON value cannot fail.
    serde_json::to_vec(&ce).unwrap_or_default()
}

/// Decodes a CloudEvents JSON document into an envelope, checking every attribute.
pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, CodecError> {
    let ce: CloudEvent = serde_json::from_slice(bytes)?;
    let invalid = |m: String| CodecError::Invalid(m);
    if ce.specversion != "1.0" {
        return Err(invalid(format!(
            "specversion {:?} is not 1.0",
            ce.specversion
        )));
    }
    let event_id =
        Uuid::parse_str(&ce.id).map_err(|_| invalid(format!("id {:?} is not a UUID", ce.id)))?;
    let event_type = ce
        .ty
        .strip_prefix(&type_prefix(&ce.streamtype))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "type {:?} does not match stream type {:?}",
                ce.ty, ce.streamtype
            ))
        })?
        .to_owned();
    let occurred_at = DateTime::parse_from_rfc3339(&ce.time)
        .map_err(|_| invalid(format!("time {:?} is not RFC 3339", ce.time)))?
        .with_timezone(&Utc);
    if ce.streamversion == 0 {
        return Err(invalid("streamversion must be at least 1".into()));
    }
    if ce.streamid.is_empty() || ce.subject != ce.streamid {
        return Err(invalid(
            "subject and streamid must name the same stream".into(),
        ));
    }
    if !ce.data.is_object() {
        return Err(invalid("data must be a JSON object".into()));
    }
    Ok(EventEnvelope {
        event_id,
        stream_type: ce.streamtype,
        stream_id: ce.streamid,
        version: ce.streamversion,
        event_type,
        schema_version: ce.schemaversion,
        occurred_at,
        correlation_id: ce.correlationid,
        causation_id: ce.causationid,
        actor: ce.actor,
        data: ce.data,
        // The trace context travels beside the payload, in the record's `traceparent` header.
        traceparent: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventMeta;
    use domain::cart::{CartCreated, CartEvent};
    use domain::values::CartId;
    use proptest::prelude::*;

    fn sample() -> EventEnvelope {
        let id = CartId::generate();
        let event = CartEvent::CartCreated(CartCreated {
            cart_id: id,
            customer_id: None,
        });
        let meta = EventMeta {
            correlation_id: "corr-1".into(),
            causation_id: Some("cause-1".into()),
            actor: "anonymous".into(),
        };
        EventEnvelope::new("cart", &id.to_string(), 1, &event, &meta, Utc::now()).unwrap()
    }

    #[test]
    fn round_trips_every_field() {
        let env = sample();
        let bytes = encode(&env);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "commerce.cart.CartCreated");
        assert_eq!(json["streamversion"], 1);
        assert_eq!(decode(&bytes).unwrap(), env);
    }

    #[test]
    fn refuses_documents_that_are_not_our_cloudevents() {
        let mut json: serde_json::Value = serde_json::from_slice(&encode(&sample())).unwrap();
        json["specversion"] = "0.3".into();
        assert!(decode(&serde_json::to_vec(&json).unwrap()).is_err());
        assert!(decode(b"{}").is_err());
        assert!(decode(b"not json").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }
    }
}
