//! The GraphQL backend-for-frontend: the one API clients see (behind Envoy).
//!
//! - [`schema`]: the GraphQL types, queries and mutations.
//! - [`clients`]: tonic clients of the command and query services, with deadlines.
//! - [`error`]: the BFF's error enum and its one mapping to GraphQL `extensions.code`.
//! - [`limits`]: alias, introspection and size limits of a document, checked before it runs.
//! - [`session`]: is a token's session (account, password) still current?
//! - [`throttle`]: per-account and per-client throttling of log-in, registration, refresh.
//! - [`ws`]: graphql-ws connections: per-client message rate, closed when the token expires.
//! - [`server`]: the axum app (`POST /graphql`, GraphiQL on `GET /graphql`, graphql-ws on
//!   `/graphql/ws`, `/healthz`) and the binary's wiring.

pub mod auth;
pub mod catalogue;
pub mod clients;
pub mod connection;
pub mod error;
pub mod limits;
pub mod live;
pub mod orders;
pub mod schema;
pub mod server;
pub mod session;
pub mod shop;
pub mod throttle;
pub mod ws;
