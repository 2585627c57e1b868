//! STS `AssumeRole` over HTTP, signed with the warehouse's keys.
//!
//! One form-encoded POST, signed with SigV4 (service `sts`), answered in XML. S3-compatible servers
//! (SeaweedFS) serve STS on their S3 endpoint; on AWS it is the regional STS endpoint.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use floe_storage::S3Access;
use serde::Deserialize;

use crate::{DelegationError, Result};

/// Temporary keys from STS. `Debug` shows no secret.
#[derive(Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What one `AssumeRole` asks for.
pub struct AssumeRole<'a> {
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub policy: &'a str,
    pub duration: Duration,
}

/// The STS endpoint of a warehouse: its setting, else the S3 endpoint (S3-compatible servers),
/// else AWS's regional STS.
pub fn endpoint(access: &S3Access) -> String {
    access
        .delegation
        .sts_endpoint
        .clone()
        .or_else(|| access.endpoint.clone())
        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", access.region))
}

/// Calls `AssumeRole` at the warehouse's STS with the warehouse's keys.
pub async fn assume_role(
    http: &reqwest::Client,
    access: &S3Access,
    request: &AssumeRole<'_>,
) -> Result<TemporaryCredentials> {
    let (Some(key), Some(secret)) = (&access.access_key_id, &access.secret_access_key) else {
        return Err(DelegationError::NotOffered(
            "the warehouse has no keys to call STS with".into(),
        ));
    };
    let url = format!("{}/", endpoint(access).trim_end_matches('/'));
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", request.role_arn)
        .append_pair("RoleSessionName", request.session_name)
        .append_pair("DurationSeconds", &request.duration.as_secs().to_string())
        .append_pair("Policy", request.policy)
        .finish();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = Credentials::new(
        key.clone(),
        secret.clone(),
        access.session_token.clone(),
        None,
        "floe-warehouse",
    )
    .into();
    let unavailable = |why: String| DelegationError::Unavailable(format!("STS at {url}: {why}"));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&access.region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|err| unavailable(err.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|err| unavailable(err.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|err| unavailable(err.to_string()))?
        .into_parts();
    let mut call = http
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in instructions.headers() {
        call = call.header(name, value);
    }
    let response = call
        .send()
        .await
        .map_err(|err| unavailable(err.without_url().to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| unavailable(err.without_url().to_string()))?;
    if !status.is_success() {
        let reason = quick_xml::de::from_str::<ErrorResponse>(&text)
            .map(|error| format!("{}: {}", error.error.code, error.error.message))
            .unwrap_or_else(|_| format!("HTTP {status}"));
        // A refusal (the role, the policy) is the operator's to fix; it is not the client's
        // fault, and retrying will not help, but the service is otherwise up: a 503 says "not
        // now" without blaming the request.
        return Err(unavailable(format!("AssumeRole refused: {reason}")));
    }
    let parsed: AssumeRoleResponse = quick_xml::de::from_str(&text)
        .map_err(|err| unavailable(format!("unreadable AssumeRole answer: {err}")))?;
    let credentials = parsed.result.credentials;
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(&credentials.expiration).map_err(|err| {
            unavailable(format!(
                "unreadable expiry {:?}: {err}",
                credentials.expiration
            ))
        })?;
    let expires_at = SystemTime::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(expires_at.timestamp_millis()).unwrap_or(0));
    Ok(TemporaryCredentials {
        access_key_id: credentials.access_key_id,
        secret_access_key: credentials.secret_access_key,
        session_token: credentials.session_token,
        expires_at,
    })
}

#[derive(Deserialize)]
struct AssumeRoleResponse {
    #[serde(rename = "AssumeRoleResult")]
    result: AssumeRoleResult,
}

#[derive(Deserialize)]
struct AssumeRoleResult {
    #[serde(rename = "Credentials")]
    credentials: CredentialsXml,
}

#[derive(Deserialize)]
struct CredentialsXml {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
    #[serde(rename = "SessionToken")]
    session_token: String,
    #[serde(rename = "Expiration")]
    expiration: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Error")]
    error: ErrorXml,
}

#[derive(Deserialize)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_answer_is_read() {
        let text = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleResult>
            <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>X:s</AssumedRoleId></AssumedRoleUser>
            <Credentials>
              <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
              <SecretAccessKey>secret</SecretAccessKey>
              <SessionToken>token</SessionToken>
              <Expiration>2026-12-07T22:00:00Z</Expiration>
            </Credentials>
          </AssumeRoleResult>
          <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
        </AssumeRoleResponse>"#;
        let parsed: AssumeRoleResponse = quick_xml::de::from_str(text).unwrap();
        assert_eq!(parsed.result.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(parsed.result.credentials.expiration, "2026-12-07T22:00:00Z");
        let error: ErrorResponse = quick_xml::de::from_str(
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>",
        )
        .unwrap();
        assert_eq!(error.error.code, "AccessDenied");
    }
}
