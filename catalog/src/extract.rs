//! Request extractors that fail with the spec's `ErrorModel` instead of axum's plain-text errors.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed or ill-typed JSON is a 400 naming what is wrong; a body over the size
/// limit is a 413.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BadRequestException",
                    "request body is larger than the server's limit (max-request-bytes)",
                )
            } else {
                ApiError::bad_request(format!("cannot read request body: {rejection}"))
            }
        })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
        Ok(JsonBody(value))
    }
}

/// Path parameters. A segment that does not decode (e.g. percent-encoded bytes that are not UTF-8)
/// is a 400 naming what is wrong.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) if rejection.status().is_client_error() => Err(ApiError::bad_request(
                format!("invalid request path: {}", rejection.body_text()),
            )),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "InternalServerError",
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters as a map; parsing them never fails, each handler checks what it uses.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::bad_request(format!("invalid query string: {err}")))?;
        Ok(QueryParams(map))
    }
}

impl QueryParams {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean flag such as `purgeRequested=true`.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "query parameter {key} must be true or false, not {v:?}"
            ))),
        }
    }

    /// The spec's `pageToken` / `pageSize` pair. Without `pageToken` the client asked for
    /// everything in one response.
    pub fn page(&self) -> Result<floe_store::PageRequest, ApiError> {
        let size = match self.get("pageSize") {
            None => None,
            Some(raw) => match raw.parse::<usize>() {
                Ok(size) if size >= 1 => Some(size),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "pageSize must be a positive integer, not {raw:?}"
                    )));
                }
            },
        };
        Ok(match self.get("pageToken") {
            None => floe_store::PageRequest {
                token: None,
                size: None,
            },
            Some(token) => floe_store::PageRequest {
                token: (!token.is_empty()).then(|| token.to_string()),
                size: Some(size.unwrap_or(DEFAULT_PAGE_SIZE)),
            },
        })
    }
}

/// Page size when a client asks for pages without saying how large.
const DEFAULT_PAGE_SIZE: usize = 1000;
