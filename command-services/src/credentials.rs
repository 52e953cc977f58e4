//! Password hashes, private to the user service: one document per account in `credentials`
//! (`{_id: <user id>, password_hash: <argon2id PHC string>, changed_at}`), written in the same
//! transaction as the event that records the fact (`UserRegistered`, `UserPasswordChanged`)
//! and deleted with the account. No event carries a hash, so none reaches Kafka or an export.
//!
//! Accounts registered before this collection existed have their hash only in their stored
//! v1 events: [`password_hash`] falls back to the newest one there, and [`scrub_legacy`]
//! blanks those (and any plaintext personal field) in the store when the account is deleted.

use crate::error::CommandError;
use event_store::event_store::{EventStore, SideWrite};
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};

/// The collection of password hashes.
pub const CREDENTIALS: &str = "credentials";

/// The write storing a user's (new) hash, for the transaction of its event.
pub fn set(user_id: &str, password_hash: &str) -> SideWrite {
    SideWrite::Replace {
        collection: CREDENTIALS,
        id: user_id.to_owned(),
        doc: doc! {
            "_id": user_id,
            "password_hash": password_hash,
            "changed_at": bson::DateTime::now(),
        },
    }
}

/// The write removing a user's hash, for the transaction of their deletion.
pub fn remove(user_id: &str) -> SideWrite {
    SideWrite::Delete {
        collection: CREDENTIALS,
        id: user_id.to_owned(),
    }
}

fn unavailable(e: mongodb::error::Error) -> CommandError {
    CommandError::Unavailable(e.to_string())
}

/// The user's password hash: from `credentials`, else from their legacy (v1) events.
pub async fn password_hash(
    store: &EventStore,
    user_id: &str,
) -> Result<Option<String>, CommandError> {
    let found = store
        .database()
        .collection::<Document>(CREDENTIALS)
        .find_one(doc! { "_id": user_id })
        .await
        .map_err(unavailable)?;
    if let Some(hash) = found.and_then(|d| d.get_str("password_hash").ok().map(str::to_owned)) {
        return Ok(Some(hash));
    }
    let docs: Vec<Document> = store
        .events()
        .find(doc! { "stream_id": user_id, "stream_type": "user" })
        .sort(doc! { "version": -1 })
        .await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)?;
    Ok(docs.iter().find_map(|d| {
        d.get_document("data")
            .ok()?
            .get_str("password_hash")
            .ok()
            .map(str::to_owned)
    }))
}

/// Blanks, in a deleted user's stored events, what was written before sealing existed: the
/// v1 password hash and plaintext personal fields become `null`. Events are otherwise never
/// rewritten; erasure is the one exception. (Copies already on Kafka cannot be reached.)
pub async fn scrub_legacy(store: &EventStore, user_id: &str) -> Result<u64, CommandError> {
    let docs: Vec<Document> = store
        .events()
        .find(doc! { "stream_id": user_id, "stream_type": "user" })
        .await
        .map_err(unavailable)?
        .try_collect()
        .await
        .map_err(unavailable)?;
    let mut scrubbed = 0;
    for d in docs {
        let (Ok(id), Ok(event_type), Ok(data)) = (
            d.get_str("_id"),
            d.get_str("event_type"),
            d.get_document("data"),
        ) else {
            continue;
        };
        let mut fields: Vec<&str> = vec!["password_hash"];
        if let Some(p) = event_schemas::personal::personal_fields("user", event_type) {
            fields.extend(p.fields);
        }
        let mut set = Document::new();
        for f in fields {
            match data.get(f) {
                None | Some(Bson::Null) => {}
                // Sealed: its key is destroyed, nothing to do.
                Some(Bson::Document(inner)) if inner.contains_key("sealed") => {}
                Some(_) => {
                    set.insert(format!("data.{f}"), Bson::Null);
                }
            }
        }
        if set.is_empty() {
            continue;
        }
        store
            .events()
            .update_one(doc! { "_id": id }, doc! { "$set": set })
            .await
            .map_err(unavailable)?;
        scrubbed += 1;
    }
    Ok(scrubbed)
}
