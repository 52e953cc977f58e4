//! The event store's error: what can go wrong talking to the store, and how the driver's and
//! the key vault's errors map onto it.

use crate::mongo::{codes, error_code};
use crate::pii::PiiError;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended at the expected version first, or a transaction collided.
    #[error("concurrent write to the stream")]
    Conflict,
    /// The store cannot be reached or is failing over; retrying later may succeed.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A unique value written beside the events (e.g. an email reservation) is taken.
    #[error("already taken in {0}")]
    Taken(&'static str),
    /// A stored document does not decode: a bug or a tampered store.
    #[error("corrupt event document: {0}")]
    Corrupt(String),
}

impl From<PiiError> for StoreError {
    fn from(e: PiiError) -> Self {
        match e {
            PiiError::Unavailable(m) => StoreError::Unavailable(m),
            PiiError::Corrupt(m) => StoreError::Corrupt(m),
        }
    }
}

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        match error_code(&e) {
            Some(codes::DUPLICATE_KEY) | Some(codes::WRITE_CONFLICT) => StoreError::Conflict,
            _ if e.contains_label("TransientTransactionError") => StoreError::Conflict,
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}
