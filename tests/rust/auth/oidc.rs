//! `--auth oidc`: tokens of an external issuer, checked against the JWKS an in-test HTTP server
//! serves on 127.0.0.1, signed here with Ed25519 keys.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Caller, assert_error, create_namespace_as, create_table_as, grant_role, table_path};
use crate::support::*;

const ISSUER: &str = "https://issuer.test";

/// An Ed25519 key of the test's issuer.
struct IssuerKey {
    kid: String,
    signing: SigningKey,
}

impl IssuerKey {
    /// Fixed seeds: the keys need only differ, not be secret.
    fn new(seed: u8, kid: &str) -> Self {
        Self {
            kid: kid.to_string(),
            signing: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "use": "sig",
            "alg": "EdDSA",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes()),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let der = self.signing.to_pkcs8_der().expect("PKCS#8 key");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes()))
            .expect("sign a token")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn claims(subject: &str) -> Value {
    let now = unix_now();
    json!({ "iss": ISSUER, "aud": "floe", "sub": subject, "iat": now, "exp": now + 600 })
}

/// Claims with `changes` laid over [`claims`] (a `null` removes the claim).
fn claims_with(subject: &str, changes: Value) -> Value {
    let mut claims = claims(subject);
    let object = claims.as_object_mut().expect("claims object");
    for (key, value) in changes.as_object().expect("changes object") {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    claims
}

/// A JWKS served on 127.0.0.1 by an in-test HTTP server; the set can be replaced while it runs.
struct JwksServer {
    url: String,
    keys: Arc<RwLock<Value>>,
}

impl JwksServer {
    async fn start(keys: &[&IssuerKey]) -> Self {
        let keys = Arc::new(RwLock::new(Self::set(keys)));
        let served = keys.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let set = served.read().expect("jwks lock").clone();
                async move { axum::Json(set) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS server");
        let address = listener.local_addr().expect("JWKS address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{address}/jwks"),
            keys,
        }
    }

    fn set(keys: &[&IssuerKey]) -> Value {
        json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
    }

    fn publish(&self, keys: &[&IssuerKey]) {
        *self.keys.write().expect("jwks lock") = Self::set(keys);
    }
}

/// `floe serve --auth oidc` against `jwks`, with extra flags; started off the async runtime, whose
/// threads must stay free to answer the server's JWKS fetch.
async fn start_oidc_server(jwks: &JwksServer, extra: &[&str]) -> FloeServer {
    let mut args: Vec<String> = [
        "--auth",
        "oidc",
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        "floe",
        "--oidc-jwks-url",
        &jwks.url,
    ]
    .map(str::to_string)
    .to_vec();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        FloeServer::start_with_args(&args)
    })
    .await
    .expect("start floe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_accepts_only_its_issuers_signed_tokens_for_its_audience() {
    let first = IssuerKey::new(1, "k1");
    let jwks = JwksServer::start(&[&first]).await;
    let server = start_oidc_server(&jwks, &[]).await;
    grant_role(
        server.data_dir(),
        "lake_owners",
        &[("admin", "warehouse:main")],
        "carol",
    );
    let carol = Caller::new(&server, &first.sign(&claims("carol")));
    carol.wait_for("/v1/main/namespaces", StatusCode::OK).await;
    create_namespace_as(&carol, "lake").await;
    create_table_as(&carol, "lake", "t").await;
    let table = table_path("lake", "t");
    assert_eq!(carol.get(&table).await.status(), 200);

    // A valid token of a principal without grants is authenticated, then forbidden.
    let dave = Caller::new(&server, &first.sign(&claims("dave")));
    assert_error(dave.get(&table).await, 403, "ForbiddenException", "dave").await;

    let unknown = IssuerKey::new(9, "k-unknown");
    let now = unix_now();
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(first.kid.clone());
        let public = first.signing.verifying_key().to_bytes();
        let key = EncodingKey::from_secret(&public).expect("HMAC key");
        jsonwebtoken::encode(&header, &claims("carol"), &key).expect("HS256 token")
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": "k1"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims("carol").to_string())
    );
    let refused = [
        (
            first.sign(&claims_with("carol", json!({"iss": "https://evil.test"}))),
            "wrong issuer",
        ),
        (
            first.sign(&claims_with("carol", json!({"aud": "someone-else"}))),
            "wrong audience",
        ),
        (
            first.sign(&claims_with(
                "carol",
                json!({"iat": now - 7200, "exp": now - 3600}),
            )),
            "expired",
        ),
        (
            first.sign(&claims_with("carol", json!({"exp": null}))),
            "no expiry",
        ),
        (unknown.sign(&claims("carol")), "unknown kid"),
        (unsigned, "alg none"),
        (hs256_with_public_key, "HS256 signed with the public key"),
    ];
    for (token, what) in refused {
        let caller = Caller::new(&server, &token);
        assert_error(
            caller.get(&table).await,
            401,
            "NotAuthorizedException",
            what,
        )
        .await;
    }

    // The issuer rotates: a token of the new key is refused until the set lists it, then accepted
    // once the server fetches the set again (at most once a second).
    let second = IssuerKey::new(2, "k2");
    let rotated = Caller::new(&server, &second.sign(&claims("carol")));
    assert_error(
        rotated.get(&table).await,
        401,
        "NotAuthorizedException",
        "a key not yet published",
    )
    .await;
    jwks.publish(&[&first, &second]);
    rotated.wait_for(&table, StatusCode::OK).await;
    assert_eq!(
        carol.get(&table).await.status(),
        200,
        "the old key still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_principal_claim_names_the_principal() {
    let key = IssuerKey::new(3, "k3");
    let jwks = JwksServer::start(&[&key]).await;
    let server = start_oidc_server(&jwks, &["--oidc-principal-claim", "email"]).await;
    grant_role(
        server.data_dir(),
        "readers",
        &[("read", "warehouse:main")],
        "carol@example.com",
    );
    let carol = Caller::new(
        &server,
        &key.sign(&claims_with("u-123", json!({"email": "carol@example.com"}))),
    );
    carol.wait_for("/v1/main/namespaces", StatusCode::OK).await;
    // `sub` names nobody here: the grant is carol's, and this token's email is eve's.
    let eve = Caller::new(
        &server,
        &key.sign(&claims_with(
            "carol@example.com",
            json!({"email": "eve@example.com"}),
        )),
    );
    assert_error(
        eve.get("/v1/main/namespaces").await,
        403,
        "ForbiddenException",
        "email names eve",
    )
    .await;
    let nameless = Caller::new(&server, &key.sign(&claims("carol@example.com")));
    assert_error(
        nameless.get("/v1/main/namespaces").await,
        401,
        "NotAuthorizedException",
        "no email claim",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_oidc_token_stops_working_once_it_expires() {
    let key = IssuerKey::new(4, "k4");
    let jwks = JwksServer::start(&[&key]).await;
    let server = start_oidc_server(&jwks, &[]).await;
    grant_role(
        server.data_dir(),
        "readers",
        &[("read", "warehouse:main")],
        "carol",
    );
    Caller::new(&server, &key.sign(&claims("carol")))
        .wait_for("/v1/main/namespaces", StatusCode::OK)
        .await;

    // Expired 25 s ago: within the server's 30 s allowance for clock skew, so good for a few
    // seconds more, and remembered as verified.
    let issued = unix_now();
    let expiring = Caller::new(
        &server,
        &key.sign(&claims_with(
            "carol",
            json!({"iat": issued - 600, "exp": issued - 25}),
        )),
    );
    assert_eq!(expiring.get("/v1/main/namespaces").await.status(), 200);
    while unix_now() <= issued + 6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_error(
        expiring.get("/v1/main/namespaces").await,
        401,
        "NotAuthorizedException",
        "a token past its expiry and the allowance",
    )
    .await;
}
