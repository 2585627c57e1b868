//! `POST /v1/oauth/tokens`: the OAuth2 token endpoint of the `oauth2` mode.
//!
//! It answers the two grants Iceberg clients send: `client_credentials` (PyIceberg's and Spark's
//! `credential=id:secret`, in the form body or as HTTP Basic) and the token exchange with which
//! Iceberg Java refreshes a token before it expires. Errors follow RFC 6749 §5.2
//! (`{"error": "invalid_client", ...}`), which is what those clients parse here.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use floe_auth::AuthMode;
use floe_auth::principals::authenticate_client;
use serde_json::json;

use super::AuditedPrincipal;
use crate::AppState;

const CLIENT_CREDENTIALS: &str = "client_credentials";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description.into()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"floe\""),
        );
    }
    response
}

pub async fn issue(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let AuthMode::OAuth2(issuer) = state.auth.authorizer.mode() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "this server does not issue tokens (auth mode {})",
                state.auth.authorizer.mode().name()
            ),
        );
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let principal = match field("grant_type") {
        Some(CLIENT_CREDENTIALS) => {
            let Some((client_id, client_secret)) = client_credentials(&headers, &form) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "client_credentials needs client_id and client_secret (form fields or HTTP Basic)",
                );
            };
            let store = state.default_catalog().store().clone();
            match authenticate_client(store.access(), &client_id, &client_secret).await {
                Ok(Some(principal)) => principal,
                Ok(None) => {
                    let mut response = oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "unknown client id or wrong secret",
                    );
                    response
                        .extensions_mut()
                        .insert(AuditedPrincipal(format!("client {client_id}")));
                    return response;
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not check a client's credentials");
                    return oauth_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "could not check the credentials; retry",
                    );
                }
            }
        }
        Some(TOKEN_EXCHANGE) => {
            let Some(subject) = field("subject_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "token exchange needs subject_token",
                );
            };
            match issuer.verify(subject).await {
                Ok(claims) => claims.sub,
                Err(err) => {
                    return oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant", err.to_string());
                }
            }
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant type {other:?} is not supported (use client_credentials)"),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type",
            );
        }
    };
    let token = match issuer.issue(&principal) {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error = %err, "could not issue a token");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "could not issue a token",
            );
        }
    };
    let mut response = (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": token.expires_in.as_secs(),
            "issued_token_type": ACCESS_TOKEN_TYPE,
        })),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(AuditedPrincipal(principal));
    response
}

/// The client id and secret, from HTTP Basic (RFC 6749 §2.3.1, preferred) or the form.
fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    if basic.is_some() {
        return basic;
    }
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    Some((field("client_id")?, field("client_secret")?))
}
