//! The BFF's one error enum and its single mapping to GraphQL errors: every error carries
//! `extensions.code`, and internal details never reach the client.

use async_graphql::ErrorExtensions;
use tonic::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BffError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Stale(String),
    #[error("the resource was changed concurrently; retry")]
    Conflict,
    #[error("a backend service is temporarily unavailable; retry")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl BffError {
    pub fn code(&self) -> &'static str {
        match self {
            BffError::InvalidArgument(_) => "INVALID_ARGUMENT",
            BffError::NotFound(_) => "NOT_FOUND",
            BffError::AlreadyExists(_) => "ALREADY_EXISTS",
            BffError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            BffError::Forbidden(_) => "FORBIDDEN",
            BffError::Unauthenticated(_) => "UNAUTHENTICATED",
            BffError::Stale(_) => "STALE",
            BffError::Conflict => "CONFLICT",
            BffError::Unavailable => "UNAVAILABLE",
            BffError::Internal => "INTERNAL",
        }
    }
}

impl From<tonic::Status> for BffError {
    fn from(s: tonic::Status) -> Self {
        let msg = s.message().to_owned();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => BffError::InvalidArgument(msg),
            Code::NotFound => BffError::NotFound(msg),
            Code::AlreadyExists => BffError::AlreadyExists(msg),
            Code::FailedPrecondition => BffError::FailedPrecondition(msg),
            Code::Aborted => BffError::Conflict,
            Code::PermissionDenied => BffError::Forbidden(msg),
            Code::Unauthenticated => BffError::Unauthenticated(msg),
            // A client-side timeout surfaces as Cancelled ("Timeout expired"): retryable too.
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled => {
                tracing::warn!(status = ?s, "backend unavailable");
                BffError::Unavailable
            }
            _ => {
                tracing::error!(status = ?s, "backend failed");
                BffError::Internal
            }
        }
    }
}

impl From<domain::values::ValueError> for BffError {
    fn from(e: domain::values::ValueError) -> Self {
        BffError::InvalidArgument(e.0)
    }
}

impl ErrorExtensions for BffError {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| ext.set("code", code))
    }
}

/// The one place a BFF result becomes a GraphQL result. (async-graphql converts any
/// `Display` error on `?`, which would drop the code: resolvers go through this instead.)
pub fn gql<T>(r: Result<T, BffError>) -> async_graphql::Result<T> {
    r.map_err(|e| e.extend())
}

/// The code given to errors raised by the GraphQL engine itself (syntax, validation).
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

/// The code of an engine error, by its (stable) message: the depth and complexity limits
/// get codes of their own.
pub fn engine_error_code(message: &str) -> &'static str {
    if message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else {
        GRAPHQL_VALIDATION_FAILED
    }
}
