//! What the store reads off MongoDB's errors (the server codes it acts on), and the writes a
//! command may add beside its events in the same transaction.

use mongodb::bson::Document;
use mongodb::error::{ErrorKind as MongoErrorKind, WriteFailure};

/// MongoDB server error codes we act on.
pub mod codes {
    pub const DUPLICATE_KEY: i32 = 11000;
    pub const WRITE_CONFLICT: i32 = 112;
    pub const NO_SUCH_TRANSACTION: i32 = 251;
}

/// The server error code of a driver error, wherever the driver put it.
pub fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        MongoErrorKind::Command(c) => Some(c.code),
        MongoErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        MongoErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        MongoErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first().map(|w| w.code))
            .or_else(|| m.write_concern_error.as_ref().map(|w| w.code)),
        _ => None,
    }
}

/// A write to another collection made in the same transaction as a command's events.
#[derive(Debug, Clone)]
pub enum SideWrite {
    /// Insert a document whose `_id` must be unique (a reservation).
    Insert {
        collection: &'static str,
        doc: Document,
    },
    /// Delete a document by `_id`.
    Delete {
        collection: &'static str,
        id: String,
    },
    /// Write a document by `_id`, replacing any there (or inserting it).
    Replace {
        collection: &'static str,
        id: String,
        doc: Document,
    },
}
