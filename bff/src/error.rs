//! The BFF's one error enum and its single mapping to GraphQL errors: every error carries
//! `extensions.code`, internal details never reach the client, and no message is longer than
//! [`MAX_MESSAGE_CHARS`] (a backend's message, or an engine error quoting the input, is cut).

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
    /// Too many attempts (log-in, registration, refresh): retry later.
    #[error("{0}")]
    Throttled(String),
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
            BffError::Throttled(_) => "THROTTLED",
            BffError::Conflict => "CONFLICT",
            BffError::Unavailable => "UNAVAILABLE",
            BffError::Internal => "INTERNAL",
        }
    }
}

impl BffError {
    /// The error of a read that asked for `at_least` (a version a mutation returned): when
    /// the read model does not have the stream at all yet, that is `STALE` (retry), not
    /// `NOT_FOUND`.
    pub fn waited_for(self, at_least: u64) -> Self {
        match self {
            BffError::NotFound(_) if at_least > 0 => {
                BffError::Stale(format!("not yet projected at version {at_least}; retry"))
            }
            e => e,
        }
    }
}

/// Whether a status was made on this side of the wire from a transport failure (connection
/// refused or reset, a backend killed mid-call, an h2 stream reset, a broken body) rather than
/// sent by the backend. tonic keeps the underlying error as the status's source only then; a
/// status decoded from `grpc-status` has none. Its code says nothing about the request (h2
/// resets come out as `Internal` or `Unknown`, an aborted connection as `Aborted`, a short
/// read as `OutOfRange`): all of them mean "the backend went away; retry".
fn is_transport_failure(s: &tonic::Status) -> bool {
    if std::error::Error::source(s).is_some() {
        return true;
    }
    matches!(s.code(), Code::Unknown | Code::Internal)
        && [
            "h2 protocol error",
            "transport error",
            "error reading a body",
            "connection",
        ]
        .iter()
        .any(|m| s.message().starts_with(m))
}

/// The longest error message sent to a client, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// `message`, cut to [`MAX_MESSAGE_CHARS`] characters (marked with an ellipsis).
pub fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_owned(),
        Some((i, _)) => format!("{}…", &message[..i]),
    }
}

impl From<tonic::Status> for BffError {
    fn from(s: tonic::Status) -> Self {
        let msg = bounded(s.message());
        if is_transport_failure(&s) {
            tracing::warn!(status = ?s, "backend unreachable or gone mid-call");
            return BffError::Unavailable;
        }
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => BffError::InvalidArgument(msg),
            Code::NotFound => BffError::NotFound(msg),
            Code::AlreadyExists => BffError::AlreadyExists(msg),
            Code::FailedPrecondition => BffError::FailedPrecondition(msg),
            Code::Aborted => BffError::Conflict,
            Code::PermissionDenied => BffError::Forbidden(msg),
            Code::Unauthenticated => BffError::Unauthenticated(msg),
            // A client-side timeout surfaces as Cancelled ("Timeout expired"), a stream the
            // backend's shutdown cancelled as Cancelled too: retryable.
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
        async_graphql::Error::new(bounded(&self.to_string()))
            .extend_with(|_, ext| ext.set("code", code))
    }
}

/// The one place a BFF result becomes a GraphQL result. (async-graphql converts any
/// `Display` error on `?`, which would drop the code: resolvers go through this instead.)
pub fn gql<T>(r: Result<T, BffError>) -> async_graphql::Result<T> {
    r.map_err(|e| e.extend())
}

/// The error of one field whose value, as a read model sent it, does not map to its GraphQL
/// type (a status outside the enum, a time that is not RFC 3339): logged, and `INTERNAL` for
/// that field alone (the rest of the response stands).
pub fn unmappable(field: &str, raw: &str) -> async_graphql::Error {
    tracing::error!(
        field,
        value = %bounded(raw),
        "a read model value does not map to its GraphQL type"
    );
    BffError::Internal.extend()
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
    } else if message.starts_with(crate::limits::INTROSPECTION_PREFIX) {
        "INTROSPECTION_LIMIT"
    } else if message.starts_with(crate::limits::ALIAS_PREFIX) {
        "TOO_MANY_ALIASES"
    } else {
        GRAPHQL_VALIDATION_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable_whatever_their_code() {
        // What tonic makes of a connection the backend reset mid-call.
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "aborted");
        let s = tonic::Status::from_error(Box::new(io));
        assert!(matches!(BffError::from(s), BffError::Unavailable));
        for (code, msg) in [
            (
                Code::Internal,
                "h2 protocol error: error reading a body from connection",
            ),
            (Code::Unknown, "transport error"),
            (Code::Cancelled, "operation was canceled"),
        ] {
            let s = tonic::Status::new(code, msg);
            assert!(matches!(BffError::from(s), BffError::Unavailable), "{msg}");
        }
        // Codes a backend sent keep their meaning.
        let s = tonic::Status::internal("internal error");
        assert!(matches!(BffError::from(s), BffError::Internal));
        let s = tonic::Status::aborted("changed concurrently");
        assert!(matches!(BffError::from(s), BffError::Conflict));
        let s = tonic::Status::not_found("no cart");
        assert!(matches!(BffError::from(s), BffError::NotFound(_)));
    }

    #[test]
    fn long_messages_are_cut() {
        let huge = "é".repeat(1_000_000);
        let s = tonic::Status::invalid_argument(format!("invalid email: {huge}"));
        let e = BffError::from(s);
        assert!(e.to_string().chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn not_found_after_a_wait_is_stale() {
        let e = BffError::NotFound("cart not found".into());
        assert_eq!(e.clone().waited_for(0).code(), "NOT_FOUND");
        assert_eq!(e.waited_for(3).code(), "STALE");
        assert_eq!(
            BffError::Forbidden("x".into()).waited_for(3).code(),
            "FORBIDDEN"
        );
    }
}
