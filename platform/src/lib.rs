//! What every process of the backend shares, at the bottom of the crate graph.
//!
//! - [`support`]: telemetry (logs, metrics, OTLP traces), the admin server with readiness,
//!   graceful shutdown, gRPC serving with health and reflection, lazy channels, start-up
//!   retries.
//! - [`host`]: the service host every binary's `main` calls: runtime, telemetry, the admin
//!   server's lifetime, start-up retries, the exit code.
//! - [`kafka`]: Kafka client configuration, topic creation and the relay's record headers.
//! - [`auth`]: access tokens (JWT) as the user service issues and the BFF verifies them.
//! - [`internal_auth`]: the signed credential of service-to-service calls and the actor it
//!   names.
//! - [`trace_context`]: W3C trace context over gRPC metadata, stored events and Kafka headers.
//! - [`status`]: gRPC status messages of bounded length.

pub mod auth;
pub mod host;
pub mod internal_auth;
pub mod kafka;
pub mod status;
pub mod support;
pub mod trace_context;
