//! The write side of the commerce backend, over the event store (crate `event-store`) and the
//! shared plumbing (crate `platform`).
//!
//! - [`handler`]: the one generic command handler every aggregate uses.
//! - [`generic_service`], [`cart_service`], [`payment_service`], [`user_service`]: the gRPC
//!   command services.
//! - [`relay`]: tails the store and publishes every committed event to Kafka.
//! - [`policies`]: who may issue which command; [`passwords`], [`credentials`], [`tokens`]:
//!   the user service's secrets and the payment service's card tokens; [`gateway`]: the
//!   payment gateway it calls.
//! - [`error`]: the command side's error enum and its mapping to gRPC status codes.
//! - [`app`]: the binaries' wiring.

pub mod app;
pub mod cart_service;
pub mod credentials;
pub mod error;
pub mod gateway;
pub mod generic_service;
pub mod handler;
pub mod passwords;
pub mod payment_service;
pub mod policies;
pub mod relay;
pub mod reviews;
pub mod tokens;
pub mod user_service;
