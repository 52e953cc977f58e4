//! Schema evolution: upcasters that turn an old shape of an event's payload into the next
//! one, chained up to the shape the code writes today. Events are never rewritten where they
//! rest (store or Kafka); they are upcast on read, in [`EventEnvelope::decode`] and in
//! [`EventEnvelope::upcast`] (the CLI's exports), so both sources give the same data.
//!
//! The one real chain so far is `cart.CartItemAdded`:
//! - v1 (the first releases): `{ "sku": <product uuid>, "qty": n }`;
//! - v2: `sku` renamed to `product_id`;
//! - v3 (current, [`domain::cart::CartItemAdded`]): `qty` renamed to `quantity`.
//!
//! `user.UserRegistered` and `user.UserPasswordChanged`: v1 carried the argon2 hash
//! (`password_hash`); v2 (current) does not (the user service keeps it privately): the
//! upcaster drops it. Old plaintext personal fields (written before sealing) read as they are;
//! sealed ones are opened before decoding (see [`crate::personal`]).
//!
//! [`check`] runs at start-up of every service that reads events: each event type's chain
//! must be complete (one upcaster per version from 1 to the current one) and each upcaster's
//! fixture must upcast into a payload the current type accepts.

use crate::{CodecError, EventEnvelope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Historical payload shapes, kept for their JSON Schemas (`event-schemas/schemas/`).
pub mod history {
    use super::*;

    /// `CartItemAdded` v1: a product was added as a new line (`sku` is the product id).
    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "CartItemAdded")]
    pub struct CartItemAddedV1 {
        pub sku: uuid::Uuid,
        pub qty: u32,
    }

    /// `CartItemAdded` v2: a product was added as a new line.
    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "CartItemAdded")]
    pub struct CartItemAddedV2 {
        pub product_id: uuid::Uuid,
        pub qty: u32,
    }

    /// `UserRegistered` v1: with the argon2 hash of the password.
    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "UserRegistered")]
    pub struct UserRegisteredV1 {
        pub user_id: domain::values::UserId,
        pub email: domain::values::Email,
        pub name: String,
        pub role: domain::user::Role,
        pub password_hash: String,
    }

    /// `UserPasswordChanged` v1: with the argon2 hash of the new password.
    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "UserPasswordChanged")]
    pub struct UserPasswordChangedV1 {
        pub password_hash: String,
    }
}

/// Turns a payload of `from` into one of `from + 1`.
pub struct Upcaster {
    pub stream_type: &'static str,
    pub event_type: &'static str,
    pub from: u32,
    pub apply: fn(Value) -> Result<Value, String>,
    /// A payload of version `from`, checked at start-up.
    pub fixture: fn() -> Value,
}

/// The current schema version of every event type that has more than one.
pub fn current_versions() -> &'static [(&'static str, &'static str, u32)] {
    &[
        ("cart", "CartItemAdded", 3),
        ("user", "UserRegistered", 2),
        ("user", "UserPasswordChanged", 2),
    ]
}

/// The schema version the code writes for an event type.
pub fn current_version(stream_type: &str, event_type: &str) -> u32 {
    current_versions()
        .iter()
        .find(|(s, e, _)| *s == stream_type && *e == event_type)
        .map(|(_, _, v)| *v)
        .unwrap_or(1)
}

fn rename(mut v: Value, from: &str, to: &str) -> Result<Value, String> {
    let obj = v.as_object_mut().ok_or("payload is not an object")?;
    // Lenient: a payload that already has the new name (an early store written before the
    // version was bumped) passes through unchanged.
    if obj.contains_key(to) && !obj.contains_key(from) {
        return Ok(v);
    }
    let value = obj.remove(from).ok_or_else(|| format!("missing {from}"))?;
    obj.insert(to.to_owned(), value);
    Ok(v)
}

fn drop_field(mut v: Value, field: &str) -> Result<Value, String> {
    v.as_object_mut()
        .ok_or("payload is not an object")?
        .remove(field);
    Ok(v)
}

/// Every upcaster, in chain order per event type.
pub fn upcasters() -> Vec<Upcaster> {
    vec![
        Upcaster {
            stream_type: "cart",
            event_type: "CartItemAdded",
            from: 1,
            apply: |v| rename(v, "sku", "product_id"),
            fixture: || serde_json::json!({ "sku": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "qty": 2 }),
        },
        Upcaster {
            stream_type: "cart",
            event_type: "CartItemAdded",
            from: 2,
            apply: |v| rename(v, "qty", "quantity"),
            fixture: || serde_json::json!({ "product_id": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "qty": 2 }),
        },
        Upcaster {
            stream_type: "user",
            event_type: "UserRegistered",
            from: 1,
            apply: |v| drop_field(v, "password_hash"),
            fixture: || {
                serde_json::json!({
                    "user_id": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203",
                    "email": "ann@example.com",
                    "name": "Ann",
                    "role": "customer",
                    "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
                })
            },
        },
        Upcaster {
            stream_type: "user",
            event_type: "UserPasswordChanged",
            from: 1,
            apply: |v| drop_field(v, "password_hash"),
            fixture: || serde_json::json!({ "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA" }),
        },
    ]
}

/// Upcasts a payload from `version` to the current version of its event type.
pub fn upcast_data(
    stream_type: &str,
    event_type: &str,
    version: u32,
    mut data: Value,
) -> Result<(u32, Value), CodecError> {
    let current = current_version(stream_type, event_type);
    if version > current {
        return Err(CodecError::UnknownType {
            stream_type: stream_type.to_owned(),
            event_type: event_type.to_owned(),
            schema_version: version,
        });
    }
    let all = upcasters();
    let mut v = version.max(1);
    while v < current {
        let step = all
            .iter()
            .find(|u| u.stream_type == stream_type && u.event_type == event_type && u.from == v)
            .ok_or_else(|| CodecError::UnknownType {
                stream_type: stream_type.to_owned(),
                event_type: event_type.to_owned(),
                schema_version: v,
            })?;
        data = (step.apply)(data).map_err(|reason| CodecError::Payload {
            event_type: format!("{event_type} v{v}"),
            reason,
        })?;
        v += 1;
    }
    Ok((current, data))
}

impl EventEnvelope {
    /// This envelope with its payload upcast to the current schema version.
    pub fn upcast(mut self) -> Result<Self, CodecError> {
        let (v, data) = upcast_data(
            &self.stream_type,
            &self.event_type,
            self.schema_version,
            std::mem::take(&mut self.data),
        )?;
        self.schema_version = v;
        self.data = data;
        Ok(self)
    }
}

/// Checks at start-up that every chain is complete and every fixture upcasts into the
/// current type. Returns what is wrong.
pub fn check() -> Result<(), String> {
    let all = upcasters();
    for (stream, event, current) in current_versions() {
        for from in 1..*current {
            let Some(u) = all
                .iter()
                .find(|u| u.stream_type == *stream && u.event_type == *event && u.from == from)
            else {
                return Err(format!("{stream}.{event}: no upcaster from v{from}"));
            };
            let (_, data) = upcast_data(stream, event, from, (u.fixture)())
                .map_err(|e| format!("{stream}.{event} v{from} fixture: {e}"))?;
            let tagged = serde_json::json!({ "event_type": event, "data": data });
            let decoded = match *stream {
                "cart" => serde_json::from_value::<domain::cart::CartEvent>(tagged).map(|_| ()),
                "user" => serde_json::from_value::<domain::user::UserEvent>(tagged).map(|_| ()),
                _ => Ok(()),
            };
            decoded
                .map_err(|e| format!("{stream}.{event} v{from} fixture does not decode: {e}"))?;
        }
    }
    for u in &all {
        if u.from >= current_version(u.stream_type, u.event_type) {
            return Err(format!(
                "{}.{}: upcaster from v{} is past the current version",
                u.stream_type, u.event_type, u.from
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::cart::CartEvent;

    #[test]
    fn chains_are_complete_and_fixtures_decode() {
        check().unwrap();
    }

    #[test]
    fn v1_and_v2_upcast_to_the_current_shape() {
        let v1 = serde_json::json!({ "sku": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "qty": 4 });
        let (v, data) = upcast_data("cart", "CartItemAdded", 1, v1).unwrap();
        assert_eq!(v, 3);
        assert_eq!(
            data,
            serde_json::json!({ "product_id": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "quantity": 4 })
        );
        let v2 =
            serde_json::json!({ "product_id": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "qty": 4 });
        assert_eq!(upcast_data("cart", "CartItemAdded", 2, v2).unwrap().1, data);
        // Events of other types are at v1 and pass through.
        let other = serde_json::json!({ "product_id": "x" });
        assert_eq!(
            upcast_data("cart", "CartItemRemoved", 1, other.clone()).unwrap(),
            (1, other)
        );
    }

    #[test]
    fn a_v1_envelope_decodes_into_the_current_type() {
        let env = EventEnvelope {
            event_id: uuid::Uuid::now_v7(),
            stream_type: "cart".into(),
            stream_id: "c".into(),
            version: 2,
            event_type: "CartItemAdded".into(),
            schema_version: 1,
            occurred_at: chrono::Utc::now(),
            correlation_id: "x".into(),
            causation_id: None,
            actor: "anonymous".into(),
            data: serde_json::json!({ "sku": "0190f5b6-3c1e-7a2b-9c4d-5e6f70819203", "qty": 4 }),
            traceparent: None,
        };
        let CartEvent::CartItemAdded(e) = env.decode::<CartEvent>().unwrap() else {
            panic!("not an item added");
        };
        assert_eq!(e.quantity.get(), 4);
        assert!(upcast_data("cart", "CartItemAdded", 4, serde_json::json!({})).is_err());
    }
}
