//! The command side's one error enum, and its one mapping to the wire (tonic `Status`).
//! Messages of `Internal` and `Unavailable` are logged, never sent to clients; every other
//! message is cut to [`MAX_STATUS_MESSAGE`] characters, so no status header can outgrow what
//! an HTTP/2 peer accepts (an oversized header breaks the whole connection, not one call).

use domain::{DomainError, ErrorKind};
use event_store::event_store::StoreError;
use platform::status::bounded_message;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("the stream was changed concurrently; retry the command")]
    Conflict,
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    /// A refused command, with the domain's client-safe message.
    pub fn domain<E: DomainError>(e: &E) -> Self {
        let msg = e.to_string();
        match e.kind() {
            ErrorKind::InvalidArgument => Self::InvalidArgument(msg),
            ErrorKind::NotFound => Self::NotFound(msg),
            ErrorKind::AlreadyExists => Self::AlreadyExists(msg),
            ErrorKind::FailedPrecondition => Self::FailedPrecondition(msg),
            ErrorKind::PermissionDenied => Self::PermissionDenied(msg),
        }
    }
}

impl From<domain::values::ValueError> for CommandError {
    fn from(e: domain::values::ValueError) -> Self {
        Self::InvalidArgument(e.0)
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict,
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Taken(what) => Self::AlreadyExists(format!("already taken ({what})")),
            StoreError::Corrupt(m) => Self::Internal(m),
        }
    }
}

impl From<CommandError> for tonic::Status {
    fn from(e: CommandError) -> Self {
        use tonic::Status;
        let e = match e {
            CommandError::InvalidArgument(m) => CommandError::InvalidArgument(bounded_message(m)),
            CommandError::NotFound(m) => CommandError::NotFound(bounded_message(m)),
            CommandError::AlreadyExists(m) => CommandError::AlreadyExists(bounded_message(m)),
            CommandError::FailedPrecondition(m) => {
                CommandError::FailedPrecondition(bounded_message(m))
            }
            CommandError::PermissionDenied(m) => CommandError::PermissionDenied(bounded_message(m)),
            e => e,
        };
        match e {
            CommandError::InvalidArgument(m) => Status::invalid_argument(m),
            CommandError::NotFound(m) => Status::not_found(m),
            CommandError::AlreadyExists(m) => Status::already_exists(m),
            CommandError::FailedPrecondition(m) => Status::failed_precondition(m),
            CommandError::PermissionDenied(m) => Status::permission_denied(m),
            CommandError::Conflict => Status::aborted(CommandError::Conflict.to_string()),
            CommandError::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                Status::unavailable("service temporarily unavailable; retry")
            }
            CommandError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
