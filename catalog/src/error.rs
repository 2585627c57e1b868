//! REST errors: the one place where Floe's errors become the spec's `ErrorModel` responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floe_commit::CommitError;
use serde_json::json;

/// An error response: status, the spec's exception type name, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }
}

impl From<CommitError> for ApiError {
    fn from(err: CommitError) -> Self {
        let message = err.to_string();
        match err {
            CommitError::NamespaceNotFound(_) => {
                Self::not_found("NoSuchNamespaceException", message)
            }
            CommitError::TableNotFound(_) => Self::not_found("NoSuchTableException", message),
            CommitError::ViewNotFound(_) => Self::not_found("NoSuchViewException", message),
            CommitError::WarehouseNotFound(_) => {
                Self::not_found("NoSuchWarehouseException", message)
            }
            CommitError::WarehouseNotEmpty(_) => {
                Self::new(StatusCode::CONFLICT, "WarehouseNotEmptyException", message)
            }
            CommitError::NotFound(_) => Self::not_found("NotFoundException", message),
            CommitError::AlreadyExists(_) => {
                Self::new(StatusCode::CONFLICT, "AlreadyExistsException", message)
            }
            CommitError::NamespaceNotEmpty(_) => {
                Self::new(StatusCode::CONFLICT, "NamespaceNotEmptyException", message)
            }
            CommitError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "CommitFailedException", message)
            }
            CommitError::InvalidRequest(_) => Self::bad_request(message),
            // A corrupt metadata file: the table is unavailable until an operator restores the
            // file or repairs the table, not a fault of the request.
            CommitError::Unavailable(_) | CommitError::Corrupt(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                message,
            ),
            CommitError::Internal(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                message,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), kind = self.kind, message = %self.message, "request rejected");
        }
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.status.as_u16(),
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
