//! The query side: gRPC services answering from the PostgreSQL read models only.
//!
//! - [`cart`]: the `CartQueries` service.
//! - [`app`]: the `query-service` binary's wiring.
//!
//! Errors map to gRPC status codes in one place ([`QueryError`]). Every call carries an
//! internal credential (verified in front of the services, see
//! `platform::internal_auth`); catalogue reads are open to any credential, a cart,
//! an order and what hangs off it to its customer, admins and internal services.

use platform::internal_auth::Actor;

/// `PermissionDenied` unless the actor may see what `owner` (a user id) owns.
pub fn require_owner(actor: &Actor, owner: &str) -> Result<(), QueryError> {
    if actor.may_act_for(owner) {
        Ok(())
    } else {
        Err(QueryError::PermissionDenied(
            "this belongs to another customer".into(),
        ))
    }
}

/// `PermissionDenied` unless an admin or an internal service.
pub fn require_back_office(actor: &Actor) -> Result<(), QueryError> {
    if actor.is_admin() || actor.is_any_service() {
        Ok(())
    } else {
        Err(QueryError::PermissionDenied(
            "this needs the admin role".into(),
        ))
    }
}

/// The verified actor of a call.
pub fn actor<T>(request: &tonic::Request<T>) -> Result<Actor, tonic::Status> {
    platform::internal_auth::actor_of(request)
}

pub mod app;
pub mod cart;
pub mod search;
pub mod shop;
pub mod watch;

/// Counts one SQL statement in `query_sql_statements_total{service}`, so tests and operators
/// can see what a GraphQL query costs in the database (for example, that stitched product
/// details stay a fixed number of statements whatever the page size).
pub fn sql_statement(service: &'static str) {
    metrics::counter!("query_sql_statements_total", "service" => service).increment(1);
}

/// The query side's error enum.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller's credential does not allow this read.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("database: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for QueryError {
    /// A PostgreSQL data exception (SQLSTATE class 22: a value that does not cast, a NUL in
    /// text, a number out of range) comes from a value in the request, e.g. a forged cursor:
    /// the client's mistake, never a reason to retry. Every other database error is the read
    /// model being unavailable.
    fn from(e: sqlx::Error) -> Self {
        let data_exception = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("22"));
        if data_exception {
            tracing::debug!(error = %e, "request value refused by the database");
            QueryError::InvalidArgument("a value in the request is malformed".into())
        } else {
            QueryError::Db(e)
        }
    }
}

/// Records one query in `queries_total{service, method, outcome}` and
/// `query_duration_seconds{service, method}`.
pub fn record(
    service: &'static str,
    method: &'static str,
    started: std::time::Instant,
    error: Option<&QueryError>,
) {
    let outcome = match error {
        None => "ok",
        Some(QueryError::Db(_)) => "unavailable",
        Some(_) => "rejected",
    };
    metrics::counter!("queries_total", "service" => service, "method" => method, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("query_duration_seconds", "service" => service, "method" => method)
        .record(started.elapsed().as_secs_f64());
}

impl From<QueryError> for tonic::Status {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::InvalidArgument(m) => {
                tonic::Status::invalid_argument(platform::status::bounded_message(m))
            }
            QueryError::NotFound(m) => {
                tonic::Status::not_found(platform::status::bounded_message(m))
            }
            QueryError::PermissionDenied(m) => {
                tonic::Status::permission_denied(platform::status::bounded_message(m))
            }
            QueryError::Db(e) => {
                tracing::warn!(error = %e, "read model unavailable");
                tonic::Status::unavailable("read model temporarily unavailable; retry")
            }
        }
    }
}
