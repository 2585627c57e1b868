//! Request extractors that fail with the spec's `ErrorModel` instead of axum's plain-text errors.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. It must come as `Content-Type: application/json` (parameters such as
/// `charset=utf-8` allowed), else 415: a web page can make a browser POST `text/plain` to a
/// server on loopback without asking first (no CORS preflight), but not `application/json`. An
/// empty body needs no content type (there is nothing to mislabel); it is parsed like any other.
/// Malformed or ill-typed JSON is a 400 naming what is wrong; a body over the size limit is a 413.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| is_json(value.as_bytes()));
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
        match declared_json {
            Some(true) => {}
            None if bytes.is_empty() => {}
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaTypeException",
                    "request bodies must be sent as Content-Type: application/json",
                ));
            }
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
        Ok(JsonBody(value))
    }
}

/// Whether a `Content-Type` value is `application/json`, whatever its case and parameters.
fn is_json(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
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

    /// The spec's `pageToken` / `pageSize` pair. A client that sends either gets pages of at most
    /// `pageSize` items, and never more than `max_page_size`, with a `next-page-token` while more
    /// follow; a client that sends neither does not page, and gets every item in one response.
    pub fn page(&self, max_page_size: usize) -> Result<floe_store::PageRequest, ApiError> {
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
        let token = self.get("pageToken");
        if size.is_none() && token.is_none() {
            return Ok(floe_store::PageRequest::default());
        }
        let max_page_size = max_page_size.max(1);
        Ok(floe_store::PageRequest {
            token: token.filter(|token| !token.is_empty()).map(str::to_string),
            size: Some(size.map_or(max_page_size, |size| size.min(max_page_size))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn pages_are_asked_for_by_size_or_token_and_capped() {
        let everything = query(&[]).page(100).unwrap();
        assert_eq!((everything.token, everything.size), (None, None));
        let first = query(&[("pageSize", "5")]).page(100).unwrap();
        assert_eq!((first.token, first.size), (None, Some(5)));
        let capped = query(&[("pageSize", "5000")]).page(100).unwrap();
        assert_eq!(capped.size, Some(100));
        let next = query(&[("pageToken", "abc")]).page(100).unwrap();
        assert_eq!((next.token.as_deref(), next.size), (Some("abc"), Some(100)));
        let empty_token = query(&[("pageToken", "")]).page(100).unwrap();
        assert_eq!((empty_token.token, empty_token.size), (None, Some(100)));
        assert!(query(&[("pageSize", "0")]).page(100).is_err());
    }

    #[test]
    fn json_content_types_are_recognized_with_parameters_in_any_case() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            assert!(is_json(json.as_bytes()), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(other.as_bytes()), "{other}");
        }
    }
}
