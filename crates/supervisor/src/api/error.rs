//! API errors: a status, a stable code, a message that names the bad field, and the request id. The
//! domain's [`Error`] becomes one here, the only place that builds HTTP answers from it.
//! Internal errors are logged with their cause and returned only as `internal` with the request id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::error::{REQUEST_ID, current_request_id};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `invalid_field` (422), `bad_request` (400), `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict`, `too_large` (413),
    /// `unsupported_media_type` / `unsupported_document` (415), `too_many_requests`, `busy` (503, with
    /// `Retry-After`), `internal`. Every
    /// error response of the API has this shape, whatever part of the server refused the request.
    pub code: String,
    pub message: String,
    /// The field (a JSON path like `sip.user`, a query parameter, a multipart part) that was wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub request_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 503: the server is too busy for this request now; try again after `retry_after_secs`.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
        }
    }

    /// 503: a part the server needs (its store) does not answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 422 naming the field that was wrong.
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: format!("{field}: {message}"),
            field: Some(field.to_owned()),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), "{context}: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the server log",
        )
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
            store::Error::NotFound { what } => ApiError::not_found(what),
            store::Error::LastAdministrator => ApiError::conflict(
                "this would leave no enabled client with the administrator role in scope all; \
                 grant it to another client first",
            ),
            other => ApiError::internal("store", other),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, message } => ApiError::field(&field, message),
            Error::Unauthorized => ApiError::unauthorized(),
            Error::Forbidden(m) => ApiError::forbidden(m),
            Error::NotFound(what) => ApiError::not_found(&what),
            Error::Conflict(m) => ApiError::conflict(m),
            Error::TooManyRequests {
                message,
                retry_after_secs,
            } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            },
            Error::Busy {
                message,
                retry_after_secs,
            } => ApiError::busy(message, retry_after_secs),
            Error::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            Error::Unsupported { field, message } => ApiError {
                field: Some(field),
                ..ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_document",
                    message,
                )
            },
            Error::Malformed(m) => ApiError::bad_request(m),
            Error::Store(e) => e.into(),
            // Logged where it happened.
            Error::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the request id identifies it in the server log",
            ),
        }
    }
}

impl From<crate::auth::HashError> for ApiError {
    fn from(e: crate::auth::HashError) -> Self {
        Error::from(e).into()
    }
}

impl From<protocol::settings::FieldError> for ApiError {
    fn from(e: protocol::settings::FieldError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
                request_id: current_request_id(),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is left unread, so the connection cannot carry another request:
            // say so, or a client that pools it sends its next request into a closed socket.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"faxhub\""),
            );
        }
        resp.extensions_mut().insert(Shaped);
        resp
    }
}

/// Marks a response whose body already has the error shape.
#[derive(Debug, Clone, Copy)]
pub struct Shaped;

impl ApiError {
    /// The error shape for a response someone else made (axum's extractors, the body-size limit, the
    /// router's 405): its status, a code for it, and its text as the message. The field is named when
    /// the text names it (a JSON body's path, a missing or unknown field).
    pub fn from_response(status: StatusCode, text: &str, allow: Option<&str>) -> Self {
        let code = match status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "timeout",
            409 => "conflict",
            413 => "too_large",
            415 => "unsupported_media_type",
            422 => "invalid_field",
            429 => "too_many_requests",
            500..=599 => "internal",
            _ => "error",
        };
        let text = text.trim();
        let message = match (status, allow) {
            (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) => {
                format!("this route does not take that method; it allows {allow}")
            }
            (StatusCode::PAYLOAD_TOO_LARGE, _) => {
                "the request body is over the size limit".to_owned()
            }
            _ if text.is_empty() => status
                .canonical_reason()
                .unwrap_or("request refused")
                .to_ascii_lowercase(),
            _ => text.chars().take(500).collect(),
        };
        Self {
            status,
            code,
            field: field_named_in(text),
            message,
            retry_after: None,
        }
    }
}

/// The field a rejection's text names: serde's path before `: ` in a JSON body error, or the field of
/// "missing field `x`" / "unknown field `x`".
fn field_named_in(text: &str) -> Option<String> {
    if let Some(rest) =
        text.strip_prefix("Failed to deserialize the JSON body into the target type: ")
        && let Some((path, _)) = rest.split_once(": ")
        && !path.is_empty()
        && !path.contains(' ')
    {
        return Some(path.to_owned());
    }
    ["missing field `", "unknown field `"].iter().find_map(|p| {
        let (_, after) = text.split_once(p)?;
        after.split_once('`').map(|(f, _)| f.to_owned())
    })
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_get_a_code_and_name_their_field() {
        let e = ApiError::from_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body into the target type: sip.transport: invalid type: integer `5`, expected a string at line 1 column 30",
            None,
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_field", Some("sip.transport"))
        );
        let e = ApiError::from_response(
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: missing field `from`",
            None,
        );
        assert_eq!((e.code, e.field.as_deref()), ("bad_request", Some("from")));
        let e = ApiError::from_response(StatusCode::METHOD_NOT_ALLOWED, "", Some("GET,POST"));
        assert_eq!(e.code, "method_not_allowed");
        assert!(e.message.contains("GET,POST"), "{}", e.message);
        let e =
            ApiError::from_response(StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded", None);
        assert_eq!((e.code, e.field), ("too_large", None));
        let e = ApiError::from_response(StatusCode::IM_A_TEAPOT, "", None);
        assert_eq!((e.code, e.message.as_str()), ("error", "i'm a teapot"));
    }
}
