//! What the supervisor's domain code refuses or fails with. Every face turns an [`Error`] into its own
//! answer (the REST API into `api::error::ApiError`, its JSON error shape and status); domain code never
//! builds a face's answer itself, so a new face gets the same refusals with the same words.
//!
//! Internal failures are logged with their cause where they happen; the error itself carries only what
//! a caller may be told.

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware (audit entries carry it).
    pub static REQUEST_ID: String;
}

/// The id of the request being served, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value the caller gave is wrong: the field (a JSON path like `sip.user`, a parameter, a multipart
    /// part) and why, in words that name it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No credentials, or ones that open nothing.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// The caller is known but may not do this; the message says which competence or authority it lacks.
    #[error("{0}")]
    Forbidden(String),
    /// There is no such thing, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(String),
    /// The change contradicts the state (a name taken, the last administrator).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts from this name or address: try again after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The supervisor is too busy for this now: try again after `retry_after_secs`.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    /// What the caller sent is over a limit (an upload's size); the message names it and the limit.
    #[error("{0}")]
    TooLarge(String),
    /// A document in a format faxhub does not read: the field and why.
    #[error("{field}: {message}")]
    Unsupported { field: String, message: String },
    /// What the caller sent could not be read as a request at all (a broken upload stream).
    #[error("{0}")]
    Malformed(String),
    /// The store failed or refused (its own variants say which).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A failure inside the supervisor; its cause was logged with the request id.
    #[error("internal error")]
    Internal,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The value of `field` is wrong, because `message`.
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Error::Invalid {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        Error::NotFound(what.to_owned())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict(message.into())
    }

    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Error::Busy {
            message: message.into(),
            retry_after_secs,
        }
    }

    /// Logs `err` with its context and the request id; the caller is told only that it failed.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), "{context}: {err}");
        Error::Internal
    }
}

impl From<protocol::settings::FieldError> for Error {
    fn from(e: protocol::settings::FieldError) -> Self {
        Error::field(&e.field, e.reason)
    }
}

/// A document after a merge patch, read as its type: the error names the field that does not fit
/// (`sip.transport: SIP over TLS is not supported; …`).
pub fn patched<T: serde::de::DeserializeOwned>(doc: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Error::field(&field, e.into_inner())
    })
}
