//! The end-to-end tests, one binary: every module below drives the running stack (started
//! by `scripts/stack.sh` through `make test`) through its public edges — GraphQL behind
//! Envoy, gRPC, Kafka, MongoDB, PostgreSQL, SMTP — and shares the helpers of [`common`] and
//! [`cli_common`].
//!
//! `scripts/e2e.sh` (called by `make test`) runs the modules one after another, each module's
//! tests side by side, because some modules stop, kill or wipe parts of the stack that the
//! others use. `cargo test -p e2e-tests --test e2e <module>::` runs one module.

mod cli_common;
mod common;

mod accounts;
mod cards;
mod cart_e2e;
mod cart_pricing;
mod cart_rules;
mod checkout;
mod cli_dlq;
mod cli_events;
mod cli_lag;
mod cli_rebuild;
mod cli_republish;
mod cli_upcast;
mod compose;
mod crash;
mod dashboards;
mod dead_letters;
mod edge;
mod edge_codes;
mod faults;
mod forget;
mod fuzz;
mod hostile;
mod idempotency;
mod kafka_cli;
mod mail;
mod observability;
mod orders;
mod otlp;
mod poison;
mod read_your_writes;
mod restart;
mod reviews;
mod search;
mod service_auth;
mod store;
mod subscriptions;
mod time_travel;
mod traces;
