//! Personal data in events: which fields of which event types are personal, whose key seals
//! them (the person they are about), and the sealed form they take at rest and on the wire.
//!
//! A sealed field is replaced, in the envelope's `data`, by an object
//! `{"sealed": "A256GCM", "subject": <person id>, "nonce": <base64>, "ciphertext": <base64>}`
//! (AES-256-GCM over the field's JSON value, a fresh 96-bit nonce per field, the subject and
//! field name as associated data). Opening it with the person's key gives the value back;
//! once the key is destroyed (the account deleted) the field reads as [`ERASED`] (`null`).
//! Fields written before sealing existed are plaintext and read as they are. The crypto and
//! the key store live in `command_services::pii`.

use crate::EventEnvelope;
use serde_json::Value;

/// What a personal field reads as once its key is destroyed.
pub const ERASED: Value = Value::Null;

/// The algorithm tag of a sealed field.
pub const SEALED_ALG: &str = "A256GCM";

/// Whose key seals an event's personal fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The stream's own id (a user's events).
    Stream,
    /// The id held in this field of the payload.
    Field(&'static str),
}

/// The personal fields of one event type.
#[derive(Debug, Clone, Copy)]
pub struct PersonalFields {
    pub stream_type: &'static str,
    pub event_type: &'static str,
    pub subject: Subject,
    pub fields: &'static [&'static str],
}

/// Every event type with personal fields.
pub fn registry() -> &'static [PersonalFields] {
    &[
        PersonalFields {
            stream_type: "user",
            event_type: "UserRegistered",
            subject: Subject::Stream,
            fields: &["email", "name"],
        },
        PersonalFields {
            stream_type: "user",
            event_type: "UserProfileChanged",
            subject: Subject::Stream,
            fields: &["name", "addresses"],
        },
        // The raw token of a reset or verification, for the mail; only its hash is in the clear.
        PersonalFields {
            stream_type: "user",
            event_type: "PasswordResetRequested",
            subject: Subject::Stream,
            fields: &["token"],
        },
        PersonalFields {
            stream_type: "user",
            event_type: "EmailVerificationRequested",
            subject: Subject::Stream,
            fields: &["token"],
        },
    ]
}

/// The personal fields of an event type, if it has any.
pub fn personal_fields(stream_type: &str, event_type: &str) -> Option<&'static PersonalFields> {
    registry()
        .iter()
        .find(|p| p.stream_type == stream_type && p.event_type == event_type)
}

/// The person whose key seals this envelope's personal fields.
pub fn subject_of(env: &EventEnvelope, p: &PersonalFields) -> Option<String> {
    match p.subject {
        Subject::Stream => Some(env.stream_id.clone()),
        Subject::Field(f) => env.data.get(f).and_then(Value::as_str).map(str::to_owned),
    }
}

/// Is this value a sealed field?
pub fn is_sealed(v: &Value) -> bool {
    v.get("sealed").and_then(Value::as_str) == Some(SEALED_ALG)
}

/// The catalogue's section on personal fields (`docs/events.md`).
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "\n## Personal fields (crypto-shredding)\n\n\
         These fields are sealed with a key per person before the event is stored: in the\n\
         store's documents, on Kafka and in `commerce events export` (unless `--reveal`) they\n\
         read as\n\
         `{\"sealed\": \"A256GCM\", \"subject\": <person id>, \"nonce\": <base64>, \"ciphertext\": <base64>}`\n\
         (AES-256-GCM over the field's JSON value; a fresh 96-bit nonce per field; associated\n\
         data `pii/v1`, the subject and the field name). Deleting the account destroys the\n\
         key (`person_keys` in the store's database): from then on the field reads as `null`\n\
         (erased) everywhere it is opened (projectors, rebuilds, time travel, exports), and\n\
         every other fact of the event stays. The JSON Schemas below describe the opened\n\
         payload. Fields written before sealing existed are plaintext and read as they are.\n\n\
         | event | subject (whose key) | personal fields |\n|---|---|---|\n",
    );
    for p in registry() {
        let subject = match p.subject {
            Subject::Stream => "the stream id".to_owned(),
            Subject::Field(f) => format!("`{f}`"),
        };
        let fields: Vec<String> = p.fields.iter().map(|f| format!("`{f}`")).collect();
        out.push_str(&format!(
            "| `{}.{}` | {} | {} |\n",
            p.stream_type,
            p.event_type,
            subject,
            fields.join(", ")
        ));
    }
    out
}
