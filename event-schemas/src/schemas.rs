//! The JSON Schema of every event type, generated from the Rust payload types with schemars.
//! The generated files are checked in under `event-schemas/schemas/`; the test below fails when
//! they drift from the code (run it with `UPDATE_SCHEMAS=1` to rewrite them).

use schemars::{schema_for, JsonSchema};

/// One event type's schema at one schema version.
pub struct EventSchema {
    pub stream_type: &'static str,
    pub event_type: &'static str,
    pub schema_version: u32,
    pub schema: serde_json::Value,
}

impl EventSchema {
    fn of<T: JsonSchema>(stream_type: &'static str, event_type: &'static str, v: u32) -> Self {
        let mut schema = serde_json::to_value(schema_for!(T)).unwrap_or_default();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                format!("urn:commerce:schema:{stream_type}:{event_type}:v{v}").into(),
            );
        }
        Self {
            stream_type,
            event_type,
            schema_version: v,
            schema,
        }
    }

    /// Path relative to the crate: `schemas/<stream_type>/<event_type>.v<N>.json`.
    pub fn relative_path(&self) -> String {
        format!(
            "schemas/{}/{}.v{}.json",
            self.stream_type, self.event_type, self.schema_version
        )
    }

    /// The file's content: pretty JSON with keys sorted (whatever serde_json's features in
    /// this build) and a trailing newline.
    pub fn render(&self) -> String {
        let mut s = serde_json::to_string_pretty(&sorted(&self.schema)).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A copy of a JSON value with every object's keys in sorted order.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The event catalogue (`docs/events.md`), generated from the schemas.
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "# Event catalogue\n\n\
         Generated from the JSON Schemas in `event-schemas/schemas/` by the test\n\
         `checked_in_schemas_match_the_code` (run it with `UPDATE_SCHEMAS=1` to rewrite).\n\n\
         Every event travels in the envelope of `docs/architecture.md`: on Kafka as a\n\
         CloudEvents 1.0 JSON document on `commerce.<stream_type>.events`, key = stream id,\n\
         `type` = `commerce.<stream_type>.<EventType>`, payload in `data`.\n",
    );
    let mut current = "";
    for s in all() {
        if s.stream_type != current {
            current = s.stream_type;
            out.push_str(&format!(
                "\n## {current} (`commerce.{current}.events`)\n\n| event | schema version | fields | meaning |\n|---|---|---|---|\n"
            ));
        }
        let schema = sorted(&s.schema);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let fields: Vec<String> = schema["properties"]
            .as_object()
            .map(|p| {
                p.keys()
                    .map(|k| {
                        if required.contains(&k.as_str()) {
                            format!("`{k}`")
                        } else {
                            format!("`{k}`?")
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fields = if fields.is_empty() {
            "-".to_owned()
        } else {
            fields.join(", ")
        };
        let meaning = s.schema["description"]
            .as_str()
            .unwrap_or("")
            .replace('\n', " ");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.event_type, s.schema_version, fields, meaning
        ));
    }
    out.push_str(&crate::personal::catalogue_markdown());
    out
}

/// Every event type of every aggregate, at every schema version still read.
pub fn all() -> Vec<EventSchema> {
    use domain::cart::*;
    use domain::order as o;
    use domain::payment as y;
    use domain::product as p;
    use domain::user as u;
    vec![
        EventSchema::of::<CartCreated>("cart", "CartCreated", 1),
        EventSchema::of::<crate::upcast::history::CartItemAddedV1>("cart", "CartItemAdded", 1),
        EventSchema::of::<crate::upcast::history::CartItemAddedV2>("cart", "CartItemAdded", 2),
        EventSchema::of::<CartItemAdded>("cart", "CartItemAdded", 3),
        EventSchema::of::<CartItemQuantityChanged>("cart", "CartItemQuantityChanged", 1),
        EventSchema::of::<CartItemRemoved>("cart", "CartItemRemoved", 1),
        EventSchema::of::<CartCleared>("cart", "CartCleared", 1),
        EventSchema::of::<CartCheckedOut>("cart", "CartCheckedOut", 1),
        EventSchema::of::<CartDeleted>("cart", "CartDeleted", 1),
        EventSchema::of::<CartClaimed>("cart", "CartClaimed", 1),
        EventSchema::of::<CartCheckoutFailed>("cart", "CartCheckoutFailed", 1),
        EventSchema::of::<crate::upcast::history::UserRegisteredV1>("user", "UserRegistered", 1),
        EventSchema::of::<u::UserRegistered>("user", "UserRegistered", 2),
        EventSchema::of::<u::UserProfileChanged>("user", "UserProfileChanged", 1),
        EventSchema::of::<crate::upcast::history::UserPasswordChangedV1>(
            "user",
            "UserPasswordChanged",
            1,
        ),
        EventSchema::of::<u::UserPasswordChanged>("user", "UserPasswordChanged", 2),
        EventSchema::of::<u::RefreshTokenIssued>("user", "RefreshTokenIssued", 1),
        EventSchema::of::<u::RefreshTokenRevoked>("user", "RefreshTokenRevoked", 1),
        EventSchema::of::<u::UserDeleted>("user", "UserDeleted", 1),
        EventSchema::of::<u::PasswordResetRequested>("user", "PasswordResetRequested", 1),
        EventSchema::of::<u::PasswordReset>("user", "PasswordReset", 1),
        EventSchema::of::<u::EmailVerificationRequested>("user", "EmailVerificationRequested", 1),
        EventSchema::of::<u::EmailVerified>("user", "EmailVerified", 1),
        EventSchema::of::<p::ProductCreated>("product", "ProductCreated", 1),
        EventSchema::of::<p::ProductUpdated>("product", "ProductUpdated", 1),
        EventSchema::of::<p::ProductPriceChanged>("product", "ProductPriceChanged", 1),
        EventSchema::of::<p::ProductArchived>("product", "ProductArchived", 1),
        EventSchema::of::<p::ProductUnarchived>("product", "ProductUnarchived", 1),
        EventSchema::of::<p::StockAdjusted>("product", "StockAdjusted", 1),
        EventSchema::of::<p::StockReserved>("product", "StockReserved", 1),
        EventSchema::of::<p::StockReservationReleased>("product", "StockReservationReleased", 1),
        EventSchema::of::<p::StockReservationCommitted>("product", "StockReservationCommitted", 1),
        EventSchema::of::<p::ProductReviewed>("product", "ProductReviewed", 1),
        EventSchema::of::<o::OrderPlaced>("order", "OrderPlaced", 1),
        EventSchema::of::<o::OrderStockReserved>("order", "OrderStockReserved", 1),
        EventSchema::of::<o::OrderPaymentAuthorized>("order", "OrderPaymentAuthorized", 1),
        EventSchema::of::<o::OrderConfirmed>("order", "OrderConfirmed", 1),
        EventSchema::of::<o::OrderShipped>("order", "OrderShipped", 1),
        EventSchema::of::<o::OrderDelivered>("order", "OrderDelivered", 1),
        EventSchema::of::<o::OrderCancelled>("order", "OrderCancelled", 1),
        EventSchema::of::<o::OrderRefunded>("order", "OrderRefunded", 1),
        EventSchema::of::<y::PaymentAuthorized>("payment", "PaymentAuthorized", 1),
        EventSchema::of::<y::PaymentDeclined>("payment", "PaymentDeclined", 1),
        EventSchema::of::<y::PaymentCaptured>("payment", "PaymentCaptured", 1),
        EventSchema::of::<y::PaymentVoided>("payment", "PaymentVoided", 1),
        EventSchema::of::<y::PaymentRefunded>("payment", "PaymentRefunded", 1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn checked_in_schemas_match_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut drifted = Vec::new();
        for s in all() {
            let path = root.join(s.relative_path());
            let want = s.render();
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &want).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
                drifted.push(s.relative_path());
            }
        }
        let catalogue = root.join("../docs/events.md");
        let want = catalogue_markdown();
        if update {
            std::fs::write(&catalogue, &want).unwrap();
        } else if std::fs::read_to_string(&catalogue).ok().as_deref() != Some(want.as_str()) {
            drifted.push("docs/events.md".into());
        }
        assert!(
            drifted.is_empty(),
            "JSON Schemas drifted from the code: {drifted:?}; run `UPDATE_SCHEMAS=1 cargo test -p event-schemas` and commit"
        );
    }

    #[test]
    fn every_cart_event_has_a_schema() {
        let names: Vec<_> = all().iter().map(|s| s.event_type).collect();
        for n in [
            "CartCreated",
            "CartItemAdded",
            "CartItemQuantityChanged",
            "CartItemRemoved",
            "CartCleared",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }
}
