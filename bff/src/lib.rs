//! The GraphQL backend-for-frontend: the one API clients see (behind Envoy).
//!
//! Infrastructure (imports no resource):
//! - [`clients`]: tonic clients of the command and query services, with deadlines.
//! - [`error`]: the BFF's error enum and its one mapping to GraphQL `extensions.code`.
//! - [`auth`]: who the caller is, from the bearer token.
//! - [`limits`]: alias, introspection and size limits of a document, checked before it runs.
//! - [`session`]: is a token's session (account, password) still current?
//! - [`throttle`]: per-account and per-client throttling of log-in, registration, refresh.
//! - [`ws`]: graphql-ws connections: per-client message rate, closed when the token expires.
//! - [`edge`]: the edge's shared services (sessions, throttle, ws rate, trusted proxies).
//! - [`feed`]: the Kafka feed subscriptions follow.
//! - [`context`]: what every resolver shares (per-request data, caller, backends, helpers).
//!
//! The API: [`resources`] (one module per resource), merged by [`schema`]; [`server`] is the
//! axum app (`POST /graphql`, GraphiQL on `GET /graphql`, graphql-ws on `/graphql/ws`,
//! `/healthz`) and the binary's wiring.

pub mod auth;
pub mod clients;
pub mod context;
pub mod edge;
pub mod error;
pub mod feed;
pub mod limits;
pub mod resources;
pub mod schema;
pub mod server;
pub mod session;
pub mod throttle;
pub mod ws;
