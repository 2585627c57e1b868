use std::time::{Duration, UNIX_EPOCH};

use floe_storage::DelegationOptions;

use super::*;

const ENDPOINT: &str = "http://127.0.0.1:8333";

fn warehouse() -> S3Access {
    S3Access {
        bucket: "lake".into(),
        endpoint: Some(ENDPOINT.into()),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: Some("warehouse-key".into()),
        secret_access_key: Some("warehouse-secret".into()),
        session_token: None,
        delegation: DelegationOptions::default(),
    }
}

fn table() -> TablePrefix {
    TablePrefix::of(&warehouse(), "s3://lake/wh", "s3://lake/wh/sales/orders-1").unwrap()
}

fn request(method: &str, uri: &str) -> SignRequest {
    SignRequest {
        region: "us-east-1".into(),
        uri: uri.into(),
        method: method.into(),
        headers: BTreeMap::from([("User-Agent".into(), vec!["test".into()])]),
        ..SignRequest::default()
    }
}

fn signed(request: &SignRequest, access: TableAccess) -> Result<SignedRequest> {
    sign(request, access, &table(), &warehouse(), SystemTime::now())
}

fn refused(request: &SignRequest, access: TableAccess) -> String {
    match signed(request, access) {
        Err(DelegationError::Forbidden(why)) => why,
        other => panic!(
            "{} {} was not refused: {other:?}",
            request.method, request.uri
        ),
    }
}

const OBJECT: &str = "http://127.0.0.1:8333/lake/wh/sales/orders-1/data/a.parquet";

#[test]
fn a_read_of_a_table_object_is_signed_with_the_warehouse_key_and_keeps_the_client_headers() {
    let mut get = request("GET", OBJECT);
    get.headers.insert("Range".into(), vec!["bytes=0-9".into()]);
    get.headers
        .insert("Authorization".into(), vec!["client junk".into()]);
    let result = signed(&get, TableAccess::Read).unwrap();
    assert_eq!(result.uri, OBJECT);
    let authorization = &result.headers["authorization"][0];
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=warehouse-key/"),
        "{authorization}"
    );
    assert!(authorization.contains("/us-east-1/s3/aws4_request"));
    assert!(authorization.contains("range"), "{authorization}");
    assert_eq!(result.headers["range"], ["bytes=0-9"]);
    assert_eq!(result.headers["user-agent"], ["test"]);
    assert_eq!(result.headers["x-amz-content-sha256"], ["UNSIGNED-PAYLOAD"]);
    assert!(result.headers.contains_key("x-amz-date"));
    let text = format!("{result:?}");
    assert!(!text.contains("warehouse-secret"), "{text}");
}

/// The example of AWS's SigV4 documentation for S3 (GET /test.txt with a range), whose
/// signature AWS publishes: Floe's signatures are S3's.
#[test]
fn the_signature_is_the_one_aws_documents_for_its_example_request() {
    let aws = S3Access {
        bucket: "examplebucket".into(),
        endpoint: None,
        region: "us-east-1".into(),
        path_style: false,
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        secret_access_key: Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        session_token: None,
        delegation: DelegationOptions::default(),
    };
    let whole_bucket = TablePrefix {
        bucket: "examplebucket".into(),
        key_prefix: String::new(),
    };
    let request = SignRequest {
        region: "us-east-1".into(),
        uri: "https://examplebucket.s3.amazonaws.com/test.txt".into(),
        method: "GET".into(),
        headers: BTreeMap::from([
            ("Range".into(), vec!["bytes=0-9".into()]),
            (
                "x-amz-content-sha256".into(),
                vec!["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()],
            ),
        ]),
        ..SignRequest::default()
    };
    // 20130524T000000Z
    let at = UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    let result = sign(&request, TableAccess::Read, &whole_bucket, &aws, at).unwrap();
    assert_eq!(
        result.headers["authorization"],
        [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
          SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
          Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ]
    );
    assert_eq!(result.headers["x-amz-date"], ["20130524T000000Z"]);
}

#[test]
fn virtual_hosted_style_and_writes_with_the_write_privilege_are_signed() {
    let mut aws = warehouse();
    aws.endpoint = None;
    let put = request(
        "PUT",
        "https://lake.s3.us-east-1.amazonaws.com/wh/sales/orders-1/data/b.parquet",
    );
    let result = sign(
        &put,
        TableAccess::ReadWrite,
        &table(),
        &aws,
        SystemTime::now(),
    )
    .unwrap();
    assert!(result.headers.contains_key("authorization"));
    for (method, uri) in [
        ("PUT", format!("{OBJECT}?partNumber=1&uploadId=abc")),
        ("POST", format!("{OBJECT}?uploads")),
        ("POST", format!("{OBJECT}?uploadId=abc")),
        ("DELETE", OBJECT.to_string()),
        ("DELETE", format!("{OBJECT}?uploadId=abc")),
    ] {
        assert!(
            signed(&request(method, &uri), TableAccess::ReadWrite).is_ok(),
            "{method} {uri}"
        );
    }
}

#[test]
fn a_listing_inside_the_table_is_signed() {
    let list = request(
        "GET",
        "http://127.0.0.1:8333/lake?list-type=2&prefix=wh%2Fsales%2Forders-1%2Fdata%2F",
    );
    assert!(signed(&list, TableAccess::Read).is_ok());
}

#[test]
fn writes_need_the_write_privilege() {
    for method in ["PUT", "POST", "DELETE"] {
        let why = refused(&request(method, OBJECT), TableAccess::Read);
        assert!(why.contains("write privilege"), "{why}");
    }
}

#[test]
fn methods_outside_get_head_put_post_delete_are_refused() {
    for method in ["PATCH", "OPTIONS", "TRACE"] {
        refused(&request(method, OBJECT), TableAccess::ReadWrite);
    }
}

#[test]
fn keys_outside_the_table_are_refused() {
    for uri in [
        // Another table, a table whose name starts the same, the warehouse root.
        "http://127.0.0.1:8333/lake/wh/sales/other/data/a.parquet",
        "http://127.0.0.1:8333/lake/wh/sales/orders-10/data/a.parquet",
        "http://127.0.0.1:8333/lake/wh/x",
        // `..` that S3 would not resolve but a reader of the key might.
        "http://127.0.0.1:8333/lake/wh/sales/orders-1/%2E%2E/other/a",
        // Another bucket, path style and virtual-hosted.
        "http://127.0.0.1:8333/other/wh/sales/orders-1/data/a.parquet",
        // Another endpoint: host, port, scheme.
        "http://127.0.0.2:8333/lake/wh/sales/orders-1/data/a.parquet",
        "http://127.0.0.1:9000/lake/wh/sales/orders-1/data/a.parquet",
        "https://127.0.0.1:8333/lake/wh/sales/orders-1/data/a.parquet",
        "http://evil.example/lake/wh/sales/orders-1/data/a.parquet",
    ] {
        refused(&request("GET", uri), TableAccess::ReadWrite);
    }
}

#[test]
fn bucket_level_requests_other_than_a_listing_of_the_table_are_refused() {
    for (method, uri) in [
        // The bucket root listing, with no prefix or one outside the table.
        ("GET", "http://127.0.0.1:8333/lake"),
        ("GET", "http://127.0.0.1:8333/lake/?list-type=2"),
        ("GET", "http://127.0.0.1:8333/lake?list-type=2&prefix=wh%2F"),
        (
            "GET",
            "http://127.0.0.1:8333/lake?list-type=2&prefix=wh%2Fsales%2Forders-1",
        ),
        // A repeated prefix that S3 might read as the other one.
        (
            "GET",
            "http://127.0.0.1:8333/lake?prefix=wh%2Fsales%2Forders-1%2F&prefix=wh%2F",
        ),
        // Sub-resources of the bucket.
        ("GET", "http://127.0.0.1:8333/lake?policy"),
        (
            "GET",
            "http://127.0.0.1:8333/lake?versions&prefix=wh%2Fsales%2Forders-1%2F",
        ),
        ("PUT", "http://127.0.0.1:8333/lake"),
        ("DELETE", "http://127.0.0.1:8333/lake"),
        ("HEAD", "http://127.0.0.1:8333/lake"),
    ] {
        refused(&request(method, uri), TableAccess::ReadWrite);
    }
}

#[test]
fn object_sub_resources_and_widening_headers_are_refused() {
    for (method, uri) in [
        ("GET", format!("{OBJECT}?acl")),
        ("PUT", format!("{OBJECT}?tagging")),
        ("PUT", format!("{OBJECT}?retention")),
        ("GET", format!("{OBJECT}?X-Amz-Credential=someone")),
    ] {
        refused(&request(method, &uri), TableAccess::ReadWrite);
    }
    for (name, value) in [
        ("x-amz-acl", "public-read"),
        (
            "X-Amz-Grant-Read",
            "uri=http://acs.amazonaws.com/groups/global/AllUsers",
        ),
        ("x-amz-object-lock-mode", "COMPLIANCE"),
        ("x-amz-copy-source", "/lake/wh/sales/other/data/a.parquet"),
        (
            "x-amz-copy-source",
            "other/wh/sales/orders-1/data/a.parquet",
        ),
    ] {
        let mut put = request("PUT", OBJECT);
        put.headers.insert(name.into(), vec![value.into()]);
        refused(&put, TableAccess::ReadWrite);
    }
    let mut copy = request("PUT", OBJECT);
    copy.headers.insert(
        "x-amz-copy-source".into(),
        vec!["/lake/wh/sales/orders-1/data/b.parquet?versionId=1".into()],
    );
    assert!(signed(&copy, TableAccess::ReadWrite).is_ok());
}

fn delete_objects(keys: &[&str]) -> SignRequest {
    let mut post = request("POST", "http://127.0.0.1:8333/lake?delete");
    let objects: String = keys
        .iter()
        .map(|key| format!("<Object><Key>{key}</Key></Object>"))
        .collect();
    post.body = Some(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{objects}<Quiet>true</Quiet></Delete>"#
    ));
    post
}

fn aws() -> S3Access {
    S3Access {
        endpoint: None,
        ..warehouse()
    }
}

fn signed_on_aws(request: &SignRequest, access: TableAccess) -> Result<SignedRequest> {
    sign(request, access, &table(), &aws(), SystemTime::now())
}

fn delete_objects_on_aws(keys: &[&str]) -> SignRequest {
    let mut post = delete_objects(keys);
    post.uri = "https://s3.us-east-1.amazonaws.com/lake?delete".into();
    post
}

#[test]
fn delete_objects_is_signed_on_aws_only_with_a_body_of_the_tables_keys_and_signs_that_body() {
    let inside = delete_objects_on_aws(&[
        "wh/sales/orders-1/data/a.parquet",
        "wh/sales/orders-1/data/b.parquet",
    ]);
    let result = signed_on_aws(&inside, TableAccess::ReadWrite).unwrap();
    let hash = &result.headers["x-amz-content-sha256"][0];
    assert_ne!(
        hash, "UNSIGNED-PAYLOAD",
        "the body's hash is what is signed"
    );
    assert_eq!(hash.len(), 64);
    assert_eq!(result.headers["content-md5"].len(), 1);
    assert!(result.headers["authorization"][0].contains("content-md5"));

    let refused_on_aws = |request: &SignRequest, access| match signed_on_aws(request, access) {
        Err(DelegationError::Forbidden(why)) => why,
        other => panic!("not refused: {other:?}"),
    };
    let why = refused_on_aws(
        &delete_objects_on_aws(&["wh/sales/orders-1/data/a.parquet", "wh/sales/other/x"]),
        TableAccess::ReadWrite,
    );
    assert!(why.contains("wh/sales/other/x"), "{why}");
    let mut without_body = inside.clone();
    without_body.body = None;
    refused_on_aws(&without_body, TableAccess::ReadWrite);
    refused_on_aws(&inside, TableAccess::Read);
    assert!(matches!(
        signed_on_aws(&delete_objects_on_aws(&[]), TableAccess::ReadWrite),
        Err(DelegationError::BadRequest(_))
    ));
}

#[test]
fn delete_objects_is_refused_on_s3_compatible_endpoints() {
    // Such a server need not check the body against the signed hash (SeaweedFS does not): the
    // keys could be swapped after signing.
    let why = refused(
        &delete_objects(&["wh/sales/orders-1/data/a.parquet"]),
        TableAccess::ReadWrite,
    );
    assert!(why.contains("only for AWS"), "{why}");
}

#[test]
fn what_cannot_be_signed_is_a_bad_request_or_not_offered() {
    assert!(matches!(
        signed(&request("GET", "not a url"), TableAccess::Read),
        Err(DelegationError::BadRequest(_))
    ));
    let mut gcs = request("GET", OBJECT);
    gcs.provider = Some("gcs".into());
    assert!(matches!(
        signed(&gcs, TableAccess::Read),
        Err(DelegationError::NotOffered(_))
    ));
    let mut keyless = warehouse();
    keyless.secret_access_key = None;
    assert!(matches!(
        sign(
            &request("GET", OBJECT),
            TableAccess::Read,
            &table(),
            &keyless,
            SystemTime::now()
        ),
        Err(DelegationError::NotOffered(_))
    ));
    let mut streaming = request("PUT", OBJECT);
    streaming.headers.insert(
        "x-amz-content-sha256".into(),
        vec!["STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()],
    );
    assert!(matches!(
        signed(&streaming, TableAccess::ReadWrite),
        Err(DelegationError::BadRequest(_))
    ));
}

#[test]
fn the_spec_json_reads_into_a_sign_request() {
    let request: SignRequest = serde_json::from_value(serde_json::json!({
        "region": "us-east-1",
        "uri": OBJECT,
        "method": "GET",
        "headers": {"Range": ["bytes=0-1"]}
    }))
    .unwrap();
    assert_eq!(request.headers["Range"], ["bytes=0-1"]);
    assert!(request.body.is_none() && request.provider.is_none());
}

#[test]
fn a_host_header_of_the_clients_choosing_is_neither_signed_nor_returned() {
    // Sent to a virtual-hosted S3, `Host: other.<endpoint>` would make the checked path a key
    // of bucket `other`.
    let mut get = request("GET", OBJECT);
    get.headers
        .insert("Host".into(), vec!["other.127.0.0.1:8333".into()]);
    let result = signed(&get, TableAccess::Read).unwrap();
    assert!(!result.headers.contains_key("host"), "{:?}", result.headers);
    assert!(!result.headers.contains_key("Host"));
    let authorization = &result.headers["authorization"][0];
    assert!(
        authorization.contains("SignedHeaders=host;"),
        "{authorization}"
    );
}

#[test]
fn an_endpoint_with_a_path_covers_whole_segments_only() {
    let mut behind_a_path = warehouse();
    behind_a_path.endpoint = Some("http://127.0.0.1:8333/s3".into());
    let sign_at = |uri: &str| {
        sign(
            &request("GET", uri),
            TableAccess::Read,
            &table(),
            &behind_a_path,
            SystemTime::now(),
        )
    };
    assert!(sign_at("http://127.0.0.1:8333/s3/lake/wh/sales/orders-1/data/a.parquet").is_ok());
    assert!(matches!(
        sign_at("http://127.0.0.1:8333/s3x/lake/wh/sales/orders-1/data/a.parquet"),
        Err(DelegationError::Forbidden(_))
    ));
}
