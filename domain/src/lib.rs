//! The pure domain of the commerce backend.
//!
//! Each aggregate is one module holding its commands, events, state, `decide` and `evolve`.
//! Nothing here does I/O or knows about tokio, MongoDB or Kafka: the command services load a
//! stream, fold it with [`Aggregate::evolve`], call [`Aggregate::decide`] and append what it
//! returns. Value types ([`values`]) can only be built through constructors that check them.

pub mod cart;
pub mod order;
pub mod payment;
pub mod product;
pub mod user;
pub mod values;

#[cfg(test)]
pub(crate) mod testing;

use serde::{de::DeserializeOwned, Serialize};

/// What kind of failure a domain error is; the outer layers map this to the wire
/// (gRPC status, GraphQL `extensions.code`) in one place each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or out of range.
    InvalidArgument,
    /// The aggregate, or a part of it the command names, does not exist.
    NotFound,
    /// The aggregate already exists.
    AlreadyExists,
    /// The command is well formed but not allowed in the aggregate's current state.
    FailedPrecondition,
    /// The actor may not touch this aggregate.
    PermissionDenied,
}

/// A domain error that knows its [`ErrorKind`]. Its `Display` text is safe to show to clients.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
}

/// An event of an aggregate: a serde enum, adjacently tagged as `{ "event_type", "data" }`, so
/// the envelope can store the type name and the payload separately.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The event's type name, as stored in the envelope (e.g. `CartItemAdded`).
    fn event_type(&self) -> &'static str;
    /// The schema version of this event type's current shape.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// An event-sourced aggregate: the state folded from its events.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The stream type, e.g. `cart`; also names the Kafka topic `commerce.<type>.events`.
    const STREAM_TYPE: &'static str;
    type Command: Send + Sync;
    type Event: DomainEvent;
    type Error: DomainError;

    /// May `actor` command this aggregate? Actors are `user:<id>`, `admin:<id>`,
    /// `service:<name>` or `anonymous`. Checked by the handler before `decide`.
    fn authorize(&self, _actor: &str) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Decides what happens on a command, given the current state. Pure.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    /// Applies one event to the state. Pure and total: events are facts.
    fn evolve(self, event: &Self::Event) -> Self;

    /// The state as it may be shown (time travel, tools), or `None` when it must not be
    /// (a user's state holds a password hash).
    fn view(&self) -> Option<serde_json::Value> {
        None
    }

    /// Folds a history into a state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}
