//! Remote signing: a client that holds no keys sends each S3 request it wants to make (method,
//! URI, headers) to the catalog, which decides whether that request touches only the table's
//! objects in a way the caller may, and if so signs it (SigV4) with the warehouse's own keys.
//!
//! What is signed is decided from the request alone, so the checks are strict and closed: only
//! the S3 operations a table reader or writer needs are recognised (object reads, writes,
//! multipart uploads and deletes, `ListObjects` with a prefix inside the table, and, on AWS only,
//! `DeleteObjects` whose body names only the table's keys); anything else is refused. The URI
//! that was checked is the one signed and returned: the client sends exactly that.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use floe_storage::S3Access;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{DelegationError, Result, TablePrefix};

/// The spec's `RemoteSignRequest`: the object-store request a client wants signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignRequest {
    /// The client's idea of the region; Floe signs for the warehouse's own.
    #[serde(default)]
    pub region: String,
    pub uri: String,
    pub method: String,
    /// Header name → values, as the client will send them.
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The request body, for requests whose body names what they act on (`DeleteObjects`).
    #[serde(default)]
    pub body: Option<String>,
    /// `s3` when absent.
    #[serde(default)]
    pub provider: Option<String>,
}

/// The spec's `RemoteSignResult`: the URI to send to and every header to send with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedRequest {
    pub uri: String,
    pub headers: BTreeMap<String, Vec<String>>,
}

/// What the caller may do with the table's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAccess {
    /// `GET` and `HEAD` (and listing the table's prefix).
    Read,
    /// Also `PUT`, `POST` and `DELETE` of the table's objects.
    ReadWrite,
}

/// The S3 operation a request is, as far as signing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    /// A request on one object of the table (read, write, multipart part, delete).
    Object { write: bool },
    /// `ListObjects`/`ListObjectsV2` with a prefix inside the table.
    List,
    /// `DeleteObjects`: every key of its body is inside the table.
    DeleteObjects,
}

/// Query parameters each kind of request may carry; any other (`?acl`, `?tagging`, `?policy`,
/// presigned-URL parameters, ...) is a different operation and refused.
const OBJECT_READ_PARAMETERS: &[&str] = &["versionId", "partNumber", "uploadId", "x-id"];
const OBJECT_WRITE_PARAMETERS: &[&str] =
    &["partNumber", "uploadId", "uploads", "versionId", "x-id"];
const LIST_PARAMETERS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "marker",
    "x-id",
];

/// Headers that would make a write reach beyond the object's bytes: ACLs that could publish the
/// table, object locks that would keep its files from being deleted.
const REFUSED_HEADER_PREFIXES: &[&str] = &[
    "x-amz-acl",
    "x-amz-grant-",
    "x-amz-object-lock-",
    "x-amz-bypass-governance-retention",
];

/// Headers the signature replaces (whatever the client sent is dropped). `host` among them: the
/// signature covers the URI's host, and a `Host` of the client's choosing would name another
/// bucket to a virtual-hosted S3 (`other.s3...` with the checked path as its key).
const SIGNATURE_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Checks `request` against the table and the caller's access, and signs it with the
/// warehouse's keys at `now`.
pub fn sign(
    request: &SignRequest,
    access: TableAccess,
    table: &TablePrefix,
    s3: &S3Access,
    now: SystemTime,
) -> Result<SignedRequest> {
    if let Some(provider) = &request.provider
        && !matches!(provider.as_str(), "s3" | "s3a")
    {
        return Err(DelegationError::NotOffered(format!(
            "this warehouse signs S3 requests only, not {provider:?}"
        )));
    }
    let (Some(key_id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) else {
        return Err(DelegationError::NotOffered(
            "the warehouse has no keys to sign with".into(),
        ));
    };
    let method = request.method.to_ascii_uppercase();
    let write = match method.as_str() {
        "GET" | "HEAD" => false,
        "PUT" | "POST" | "DELETE" => true,
        other => return Err(forbidden(format!("method {other} is not signed"))),
    };
    if write && access == TableAccess::Read {
        return Err(forbidden(format!(
            "{method} needs the write privilege on the table; the caller may only read"
        )));
    }
    let url = Url::parse(&request.uri)
        .map_err(|err| DelegationError::BadRequest(format!("uri is not a URL: {err}")))?;
    let key = object_key(&url, s3)?;
    let headers = lowercase_headers(&request.headers);
    let operation = operation(&method, key.as_deref(), &url, table)?;
    check_headers(&headers, table, write)?;

    let delete_body;
    let payload = match &operation {
        Operation::DeleteObjects if s3.endpoint.is_some() => {
            return Err(forbidden(
                "DeleteObjects is signed only for AWS S3: its keys are in its body, and an \
                 S3-compatible server need not check the body against the signature (SeaweedFS \
                 does not), so the keys could be swapped after signing; delete the objects one by \
                 one (DELETE)",
            ));
        }
        Operation::DeleteObjects => {
            let body = request.body.as_deref().ok_or_else(|| {
                forbidden("DeleteObjects is signed only with its body (the keys it deletes)")
            })?;
            check_delete_body(body, table)?;
            // The body's own hash is signed: AWS S3 refuses the request if another body is sent.
            delete_body = body.as_bytes();
            SignableBody::Bytes(delete_body)
        }
        _ => match headers.get("x-amz-content-sha256").and_then(|v| v.first()) {
            Some(hash) if hash.starts_with("STREAMING-") && hash.contains("HMAC") => {
                return Err(DelegationError::BadRequest(
                    "signed streaming payloads need the key for every chunk: send \
                     UNSIGNED-PAYLOAD or the body's SHA-256"
                        .into(),
                ));
            }
            // The client hashed its body: S3 checks the body against the signed hash.
            Some(hash) => SignableBody::Precomputed(hash.clone()),
            None => SignableBody::UnsignedPayload,
        },
    };

    let mut headers = headers;
    if let SignableBody::Bytes(body) = &payload {
        // DeleteObjects needs a Content-MD5 (or a checksum) of its body: signed, it is the
        // body's own.
        use base64::Engine as _;
        use md5::Digest as _;
        let digest = md5::Md5::digest(body);
        headers.insert(
            "content-md5".into(),
            vec![base64::engine::general_purpose::STANDARD.encode(digest)],
        );
    }
    let kept: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| !SIGNATURE_HEADERS.contains(&name.as_str()))
        .flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), v.as_str())))
        .collect();
    let mut settings = SigningSettings::default();
    // How S3 (unlike other AWS services) computes signatures: the path as sent, the payload
    // hash in `x-amz-content-sha256`.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = aws_credential_types::Credentials::new(
        key_id,
        secret,
        s3.session_token.clone(),
        None,
        "floe-warehouse",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&s3.region)
        .name("s3")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|err| DelegationError::Unavailable(format!("cannot sign: {err}")))?
        .into();
    let signable = SignableRequest::new(&method, url.as_str(), kept.iter().copied(), payload)
        .map_err(|err| DelegationError::BadRequest(format!("cannot sign this request: {err}")))?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|err| DelegationError::BadRequest(format!("cannot sign this request: {err}")))?
        .into_parts();

    let mut signed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in kept {
        signed
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    for (name, value) in instructions.headers() {
        signed.insert(name.to_ascii_lowercase(), vec![value.to_string()]);
    }
    Ok(SignedRequest {
        uri: url.to_string(),
        headers: signed,
    })
}

fn forbidden(why: impl Into<String>) -> DelegationError {
    DelegationError::Forbidden(why.into())
}

/// The object key `url` addresses in the warehouse's bucket (`None`: the bucket itself), path
/// style (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`). Anything not on the
/// warehouse's endpoint and bucket is refused.
fn object_key(url: &Url, s3: &S3Access) -> Result<Option<String>> {
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(DelegationError::BadRequest(
            "uri has a fragment or user info".into(),
        ));
    }
    let host = url
        .host_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| DelegationError::BadRequest("uri has no host".into()))?;
    let bucket = s3.bucket.to_ascii_lowercase();
    for endpoint in endpoints(s3)? {
        let Some(endpoint_host) = endpoint.host_str().map(str::to_ascii_lowercase) else {
            continue;
        };
        if url.scheme() != endpoint.scheme()
            || url.port_or_known_default() != endpoint.port_or_known_default()
        {
            continue;
        }
        let base = endpoint.path().trim_end_matches('/');
        let Some(path) = url.path().strip_prefix(base) else {
            continue;
        };
        // Whole segments only: an endpoint at `/s3` does not cover `/s3x/...`.
        if !(path.is_empty() || path.starts_with('/')) {
            continue;
        }
        if host == endpoint_host {
            let path = path.strip_prefix('/').unwrap_or(path);
            let (first, rest) = path.split_once('/').unwrap_or((path, ""));
            if decode(first)? != s3.bucket {
                return Err(forbidden(format!(
                    "{} is not in the warehouse's bucket",
                    url.as_str()
                )));
            }
            return key_of(rest);
        }
        if host == format!("{bucket}.{endpoint_host}") {
            return key_of(path.strip_prefix('/').unwrap_or(path));
        }
    }
    Err(forbidden(format!(
        "{} is not the warehouse's S3 endpoint and bucket",
        url.as_str()
    )))
}

/// The warehouse's endpoint, or AWS's S3 endpoints for its region.
fn endpoints(s3: &S3Access) -> Result<Vec<Url>> {
    let parse = |text: &str| {
        Url::parse(text).map_err(|err| {
            DelegationError::Unavailable(format!("the warehouse's endpoint is not a URL: {err}"))
        })
    };
    match &s3.endpoint {
        Some(endpoint) => Ok(vec![parse(endpoint)?]),
        None => Ok(vec![
            parse(&format!("https://s3.{}.amazonaws.com", s3.region))?,
            parse("https://s3.amazonaws.com")?,
        ]),
    }
}

fn key_of(encoded: &str) -> Result<Option<String>> {
    let key = decode(encoded)?;
    Ok((!key.is_empty()).then_some(key))
}

fn decode(encoded: &str) -> Result<String> {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| DelegationError::BadRequest("the object key is not UTF-8".into()))
}

/// Which operation the request is, refused unless it touches only the table's objects.
fn operation(method: &str, key: Option<&str>, url: &Url, table: &TablePrefix) -> Result<Operation> {
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        // S3 and this check could read a repeated parameter differently.
        if query
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(forbidden(format!("query parameter {name} is repeated")));
        }
    }
    let only = |allowed: &[&str], what: &str| -> Result<()> {
        // `response-*` parameters only set the headers of a read's response.
        let allows = |name: &str| {
            allowed.contains(&name) || (what == "read" && name.starts_with("response-"))
        };
        match query.keys().find(|name| !allows(name)) {
            Some(name) => Err(forbidden(format!(
                "query parameter {name} is not part of an object {what} this signer allows"
            ))),
            None => Ok(()),
        }
    };
    match key {
        Some(key) => {
            if !table.contains_key(key) {
                return Err(forbidden(format!(
                    "key {key} is outside the table (its objects are under {}/{})",
                    table.bucket, table.key_prefix
                )));
            }
            let write = !matches!(method, "GET" | "HEAD");
            if write {
                only(OBJECT_WRITE_PARAMETERS, "write")?;
            } else {
                only(OBJECT_READ_PARAMETERS, "read")?;
            }
            Ok(Operation::Object { write })
        }
        None if method == "GET" => {
            only(LIST_PARAMETERS, "listing")?;
            match query.get("prefix") {
                Some(prefix) if table.contains_key(prefix) => Ok(Operation::List),
                Some(prefix) => Err(forbidden(format!(
                    "listing prefix {prefix} is outside the table (its objects are under {}/{})",
                    table.bucket, table.key_prefix
                ))),
                None => Err(forbidden(
                    "listing the bucket needs a prefix inside the table",
                )),
            }
        }
        None if method == "POST" && query.contains_key("delete") => {
            only(&["delete", "x-id"], "deletion")?;
            Ok(Operation::DeleteObjects)
        }
        None => Err(forbidden(format!(
            "{method} on the bucket itself is not a table operation"
        ))),
    }
}

/// Header names lowercased (HTTP names are case-insensitive); two spellings of one name are
/// merged.
fn lowercase_headers(headers: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut lowered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, values) in headers {
        lowered
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .extend(values.iter().cloned());
    }
    lowered
}

fn check_headers(
    headers: &BTreeMap<String, Vec<String>>,
    table: &TablePrefix,
    write: bool,
) -> Result<()> {
    if let Some(name) = headers.keys().find(|name| {
        REFUSED_HEADER_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
    }) {
        return Err(forbidden(format!("header {name} is not signed")));
    }
    // A copy reads another object: it must be one of the table's too.
    if let Some(sources) = headers.get("x-amz-copy-source") {
        if !write {
            return Err(forbidden("x-amz-copy-source belongs to a PUT"));
        }
        for source in sources {
            let source = source.split_once('?').map_or(source.as_str(), |(s, _)| s);
            let decoded = decode(source.trim_start_matches('/'))?;
            let inside = decoded
                .split_once('/')
                .is_some_and(|(bucket, key)| bucket == table.bucket && table.contains_key(key));
            if !inside {
                return Err(forbidden(format!(
                    "copy source {decoded} is outside the table"
                )));
            }
        }
    }
    Ok(())
}

/// `DeleteObjects`' body: `<Delete><Object><Key>..</Key></Object>...</Delete>`.
#[derive(Deserialize)]
struct DeleteBody {
    #[serde(rename = "Object", default)]
    objects: Vec<DeleteEntry>,
}

#[derive(Deserialize)]
struct DeleteEntry {
    #[serde(rename = "Key")]
    key: String,
}

fn check_delete_body(body: &str, table: &TablePrefix) -> Result<()> {
    let parsed: DeleteBody = quick_xml::de::from_str(body).map_err(|err| {
        DelegationError::BadRequest(format!("the DeleteObjects body is not valid: {err}"))
    })?;
    if parsed.objects.is_empty() {
        return Err(DelegationError::BadRequest(
            "the DeleteObjects body names no object".into(),
        ));
    }
    match parsed
        .objects
        .iter()
        .find(|entry| !table.contains_key(&entry.key))
    {
        Some(outside) => Err(forbidden(format!(
            "DeleteObjects names {}, outside the table",
            outside.key
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
