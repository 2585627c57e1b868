//! The management API for roles and grants: changes count at once on the server that made them,
//! and no call through it can leave the server without an administrator.

use reqwest::StatusCode;
use serde_json::json;

use super::{Caller, admin_of, assert_error, create_namespace_as, create_principal, token_for};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_through_the_api_counts_at_once_on_the_server_that_made_it() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let admin = admin_of(&server).await;
    create_namespace_as(&admin, "sales").await;
    let credential = create_principal(server.data_dir(), "dana");
    let dana = Caller::new(&server, &token_for(&server, &credential).await);
    assert_eq!(dana.get("/v1/main/namespaces/sales").await.status(), 403);

    for (path, body) in [
        ("/management/v1/roles", json!({"name": "readers"})),
        (
            "/management/v1/roles/readers/principals",
            json!({"principal": "dana"}),
        ),
        (
            "/management/v1/grants",
            json!({"role": "readers", "privilege": "read", "on": "namespace:main:sales"}),
        ),
    ] {
        let response = admin.post(path, &body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    // No waiting: the very next request to this server sees the grant.
    assert_eq!(dana.get("/v1/main/namespaces/sales").await.status(), 200);

    let revoke = json!({"role": "readers", "privilege": "read", "on": "namespace:main:sales"});
    assert_eq!(
        admin
            .post("/management/v1/grants/revoke", &revoke)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(dana.get("/v1/main/namespaces/sales").await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_never_leaves_the_server_without_an_administrator() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let admin = admin_of(&server).await;

    assert_error(
        admin.delete("/management/v1/roles/admin").await,
        409,
        "ConflictException",
        "deleting the admin role",
    )
    .await;
    let admin_grant = json!({"role": "admin", "privilege": "admin", "on": "server"});
    assert_error(
        admin
            .post("/management/v1/grants/revoke", &admin_grant)
            .await,
        409,
        "ConflictException",
        "revoking the admin role's grant",
    )
    .await;
    assert_error(
        admin
            .delete("/management/v1/roles/admin/principals/admin")
            .await,
        409,
        "ConflictException",
        "unassigning the last administrator",
    )
    .await;
    assert_error(
        admin.delete("/management/v1/principals/admin").await,
        409,
        "ConflictException",
        "deleting the last administrator",
    )
    .await;
    // Still an administrator after all of that.
    assert_eq!(admin.get("/management/v1/principals").await.status(), 200);

    // With a second administrator, the first may go.
    let credential = create_principal(server.data_dir(), "erin");
    let response = admin
        .post(
            "/management/v1/roles/admin/principals",
            &json!({"principal": "erin"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let erin = Caller::new(&server, &token_for(&server, &credential).await);
    assert_eq!(
        erin.delete("/management/v1/roles/admin/principals/admin")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(admin.get("/management/v1/principals").await.status(), 403);
    assert_eq!(erin.get("/management/v1/principals").await.status(), 200);
}
