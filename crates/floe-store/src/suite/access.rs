//! The conformance checks of the access-control records ([`crate::AccessStore`]), run by
//! [`metadata_store_suite!`](crate::metadata_store_suite) with the others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    AccessStore, AuditFilter, AuditRecord, GrantRecord, MetadataStore, PrincipalRecord,
    RoleAssignment, Securable, SigningKeyRecord, StoreError,
};

fn principal(name: &str, client_id: &str, secret_hash: &str) -> PrincipalRecord {
    PrincipalRecord {
        name: name.into(),
        client_id: client_id.into(),
        secret_hash: secret_hash.into(),
        created_at_ms: 0,
    }
}

fn levels(levels: &[&str]) -> Vec<String> {
    levels.iter().map(|level| level.to_string()).collect()
}

fn granted(role: &str, privilege: &str, on: Securable) -> GrantRecord {
    GrantRecord {
        role: role.into(),
        privilege: privilege.into(),
        on,
    }
}

fn member(principal: &str, role: &str) -> RoleAssignment {
    RoleAssignment {
        principal: principal.into(),
        role: role.into(),
    }
}

fn table(warehouse: &str, namespace: &[&str], name: &str) -> Securable {
    Securable::Table {
        warehouse: warehouse.into(),
        namespace: levels(namespace),
        name: name.into(),
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn assert_already_exists<T: std::fmt::Debug>(result: crate::Result<T>, names: &str) {
    match result {
        Err(StoreError::AlreadyExists(message)) => {
            assert!(message.contains(names), "{message:?} names {names:?}")
        }
        other => panic!("expected AlreadyExists({names}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, names: &str) {
    match result {
        Err(StoreError::NotFound(message)) => {
            assert!(message.contains(names), "{message:?} names {names:?}")
        }
        other => panic!("expected NotFound({names}), got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::InvalidInput(_))),
        "{what}: {result:?}"
    );
}

pub async fn principals_life_cycle(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    let before = now_ms();
    for (name, client_id) in [("zoë", "c-zoe"), ("alice", "c-alice"), ("Bob", "c-bob")] {
        access
            .create_principal(&principal(
                name,
                client_id,
                &format!("$argon2id$v=19${name}"),
            ))
            .await
            .unwrap();
    }
    assert_already_exists(
        access
            .create_principal(&principal("alice", "c-other", "$argon2id$x"))
            .await,
        "principal alice",
    );
    assert_already_exists(
        access
            .create_principal(&principal("carol", "c-alice", "$argon2id$x"))
            .await,
        "c-alice",
    );

    let listed = access.list_principals().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Bob", "alice", "zoë"], "code point order");
    for record in &listed {
        assert!(
            record.created_at_ms >= before - 60_000 && record.created_at_ms <= now_ms() + 60_000,
            "the store sets created_at: {record:?}"
        );
        assert!(
            !format!("{record:?}").contains("argon2"),
            "Debug shows the secret's hash: {record:?}"
        );
    }

    let alice = access
        .principal_by_client_id("c-alice")
        .await
        .unwrap()
        .expect("alice by her client id");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.secret_hash, "$argon2id$v=19$alice");
    assert_eq!(access.principal_by_client_id("alice").await.unwrap(), None);

    // A rotated secret replaces the old hash; nothing else changes.
    access
        .set_principal_secret("alice", "$argon2id$rotated")
        .await
        .unwrap();
    let rotated = access
        .principal_by_client_id("c-alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret_hash, "$argon2id$rotated");
    assert_eq!(rotated.created_at_ms, alice.created_at_ms);
    assert_not_found(
        access.set_principal_secret("nobody", "$argon2id$x").await,
        "principal nobody",
    );

    // Every warehouse handle sees the same principals.
    let other = store.in_warehouse("lake").unwrap();
    assert_eq!(other.access().list_principals().await.unwrap().len(), 3);

    access.delete_principal("alice").await.unwrap();
    assert_eq!(
        access.principal_by_client_id("c-alice").await.unwrap(),
        None
    );
    assert_not_found(access.delete_principal("alice").await, "principal alice");
    let names: Vec<String> = access
        .list_principals()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Bob", "zoë"]);
    // Name and client id are free again.
    access
        .create_principal(&principal("alice", "c-alice", "$argon2id$new"))
        .await
        .unwrap();
}

/// Deleting a role takes its grants and assignments with it; deleting a principal its
/// assignments. Neither comes back when the name is used again.
pub async fn roles_cascade(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    access.create_role("readers").await.unwrap();
    access.create_role("writers").await.unwrap();
    assert_already_exists(access.create_role("readers").await, "role readers");

    let on = Securable::Warehouse("main".into());
    access
        .grant(&granted("readers", "read", on.clone()))
        .await
        .unwrap();
    access
        .grant(&granted("writers", "write", on.clone()))
        .await
        .unwrap();
    access
        .create_principal(&principal("ana", "c-ana", "$argon2id$a"))
        .await
        .unwrap();
    for assignment in [
        member("ana", "readers"),
        member("ana", "writers"),
        member("oidc:ben", "readers"),
    ] {
        access.assign_role(&assignment).await.unwrap();
    }

    assert_not_found(
        access.assign_role(&member("ana", "admins")).await,
        "role admins",
    );
    assert_not_found(
        access
            .grant(&granted("admins", "admin", Securable::Server))
            .await,
        "role admins",
    );

    access.delete_role("readers").await.unwrap();
    assert_not_found(access.delete_role("readers").await, "role readers");
    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.roles, ["writers"]);
    assert_eq!(policy.grants, [granted("writers", "write", on.clone())]);
    assert_eq!(policy.assignments, [member("ana", "writers")]);

    access.create_role("readers").await.unwrap();
    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.roles, ["readers", "writers"]);
    assert_eq!(policy.grants.len(), 1, "a recreated role starts empty");

    access.delete_principal("ana").await.unwrap();
    let policy = access.load_policy().await.unwrap();
    assert!(policy.assignments.is_empty(), "{policy:?}");
    access
        .create_principal(&principal("ana", "c-ana", "$argon2id$a"))
        .await
        .unwrap();
    assert!(access.load_policy().await.unwrap().assignments.is_empty());
}

/// Granting or assigning again changes nothing; revoking and unassigning say whether there was
/// anything to take away.
pub async fn grants_are_idempotent(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    access.create_role("readers").await.unwrap();
    let grant = granted("readers", "read", table("main", &["sales"], "orders"));
    access.grant(&grant).await.unwrap();
    access.grant(&grant).await.unwrap();
    access.assign_role(&member("ana", "readers")).await.unwrap();
    access.assign_role(&member("ana", "readers")).await.unwrap();
    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.grants, std::slice::from_ref(&grant));
    assert_eq!(policy.assignments, [member("ana", "readers")]);

    assert!(access.revoke(&grant).await.unwrap());
    assert!(!access.revoke(&grant).await.unwrap());
    assert!(
        !access
            .revoke(&granted("nobody", "read", Securable::Server))
            .await
            .unwrap(),
        "revoking from a missing role revokes nothing"
    );
    assert!(
        access
            .unassign_role(&member("ana", "readers"))
            .await
            .unwrap()
    );
    assert!(
        !access
            .unassign_role(&member("ana", "readers"))
            .await
            .unwrap()
    );
    let policy = access.load_policy().await.unwrap();
    assert!(policy.grants.is_empty() && policy.assignments.is_empty());
}

/// Every change that can alter a decision bumps the version by one; reads, no-ops and the other
/// records leave it.
pub async fn policy_version_moves_with_every_change(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    let start = access.policy_version().await.unwrap();
    assert!(start >= 1, "a version a never-loaded cache (0) cannot have");
    let mut expected = start;
    macro_rules! step {
        ($what:literal, $bumps:expr, $op:expr) => {
            $op.await.unwrap();
            if $bumps {
                expected += 1;
            }
            assert_eq!(
                access.policy_version().await.unwrap(),
                expected,
                "after {}",
                $what
            );
        };
    }
    let grant = granted("readers", "read", Securable::Server);
    step!("create role", true, access.create_role("readers"));
    step!("grant", true, access.grant(&grant));
    step!("grant again", false, access.grant(&grant));
    step!(
        "assign",
        true,
        access.assign_role(&member("ana", "readers"))
    );
    step!(
        "assign again",
        false,
        access.assign_role(&member("ana", "readers"))
    );
    step!(
        "create principal",
        false,
        access.create_principal(&principal("ana", "c-ana", "$argon2id$a"))
    );
    step!(
        "rotate secret",
        false,
        access.set_principal_secret("ana", "$argon2id$b")
    );
    step!("list principals", false, access.list_principals());
    step!("lookup", false, access.principal_by_client_id("c-ana"));
    step!("load policy", false, access.load_policy());
    step!(
        "add signing key",
        false,
        access.add_signing_key(&key("k1", b"private-1"))
    );
    step!("list signing keys", false, access.signing_keys());
    step!(
        "record audit",
        false,
        access.record_audit(&[audit("a1", now_ms(), "ana")])
    );
    step!(
        "list audit",
        false,
        access.list_audit(&AuditFilter::default(), 10)
    );
    step!(
        "expire audit",
        false,
        access.expire_audit(Duration::from_secs(3600))
    );
    step!("revoke", true, access.revoke(&grant));
    step!("revoke nothing", false, access.revoke(&grant));
    step!(
        "unassign",
        true,
        access.unassign_role(&member("ana", "readers"))
    );
    step!(
        "unassign nothing",
        false,
        access.unassign_role(&member("ana", "readers"))
    );
    step!("delete principal", true, access.delete_principal("ana"));
    step!("delete role", true, access.delete_role("readers"));

    // Refused changes leave it too.
    assert!(access.create_role("").await.is_err());
    assert!(access.delete_role("readers").await.is_err());
    assert!(access.grant(&grant).await.is_err());
    assert!(access.delete_principal("ana").await.is_err());
    assert_eq!(access.policy_version().await.unwrap(), expected);
    assert_eq!(access.load_policy().await.unwrap().version, expected);
}

/// What was granted on every kind of securable reads back exactly, with nested namespaces and
/// names beyond ASCII kept apart.
pub async fn policy_holds_every_securable(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    let roles = ["analystes-é", "admins", "读者"];
    for role in roles {
        access.create_role(role).await.unwrap();
    }
    access.create_role("idle").await.unwrap();
    let on = [
        Securable::Server,
        Securable::Warehouse("main".into()),
        Securable::Warehouse("lake".into()),
        Securable::Namespace {
            warehouse: "main".into(),
            namespace: levels(&["sales"]),
        },
        Securable::Namespace {
            warehouse: "main".into(),
            namespace: levels(&["sales", "eu", "çà"]),
        },
        // Not the namespace `sales.eu`: one level with a dot in it.
        Securable::Namespace {
            warehouse: "main".into(),
            namespace: levels(&["sales.eu"]),
        },
        table("main", &["sales", "eu"], "orders 📦"),
        table("lake", &["sales", "eu"], "orders 📦"),
        Securable::View {
            warehouse: "main".into(),
            namespace: levels(&["sales", "eu"]),
            name: "orders 📦".into(),
        },
    ];
    let mut grants = BTreeSet::new();
    for (index, securable) in on.iter().enumerate() {
        for privilege in ["read", "manage-grants"] {
            let grant = granted(roles[index % roles.len()], privilege, securable.clone());
            access.grant(&grant).await.unwrap();
            grants.insert(grant);
        }
    }
    let assignments: BTreeSet<RoleAssignment> = [
        member("ana", "admins"),
        member("ana", "读者"),
        member("https://idp.example/ben", "analystes-é"),
    ]
    .into();
    for assignment in &assignments {
        access.assign_role(assignment).await.unwrap();
    }

    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.version, access.policy_version().await.unwrap());
    assert_eq!(policy.roles, ["admins", "analystes-é", "idle", "读者"]);
    assert_eq!(policy.grants.len(), grants.len(), "no duplicates");
    assert_eq!(policy.grants.into_iter().collect::<BTreeSet<_>>(), grants);
    assert_eq!(
        policy.assignments.into_iter().collect::<BTreeSet<_>>(),
        assignments
    );

    // Revoking one of them takes exactly that one.
    let view = granted(roles[8 % roles.len()], "read", on[8].clone());
    assert!(access.revoke(&view).await.unwrap());
    grants.remove(&view);
    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.grants.into_iter().collect::<BTreeSet<_>>(), grants);
}

/// Grants from many tasks at once: none is lost, and each moved the version once.
pub async fn concurrent_grants(store: Arc<dyn MetadataStore>) {
    const TASKS: usize = 16;
    const GRANTS: usize = 8;
    let access = store.access();
    access.create_role("readers").await.unwrap();
    let start = access.policy_version().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut granted_here = Vec::new();
            for index in 0..GRANTS {
                let grant = granted(
                    "readers",
                    "read",
                    table("main", &["sales"], &format!("t{task}-{index}")),
                );
                store.access().grant(&grant).await.unwrap();
                // Everyone grants this one too: it is recorded once.
                store
                    .access()
                    .grant(&granted("readers", "read", Securable::Server))
                    .await
                    .unwrap();
                granted_here.push(grant);
            }
            granted_here
        });
    }
    let mut expected: BTreeSet<GrantRecord> =
        tasks.join_all().await.into_iter().flatten().collect();
    expected.insert(granted("readers", "read", Securable::Server));
    let policy = access.load_policy().await.unwrap();
    assert!(policy.version > start);
    assert_eq!(
        policy.version,
        start + i64::try_from(expected.len()).unwrap(),
        "one bump per grant that changed something"
    );
    assert_eq!(policy.grants.len(), expected.len());
    assert_eq!(policy.grants.into_iter().collect::<BTreeSet<_>>(), expected);
}

fn key(kid: &str, private_key: &[u8]) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: private_key.to_vec(),
        public_key: [private_key, b"-public"].concat(),
        created_at_ms: 0,
    }
}

pub async fn signing_keys_newest_first(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    assert!(access.signing_keys().await.unwrap().is_empty());
    // Added within the same millisecond, they still list newest first.
    for kid in ["k-b", "k-c", "k-a"] {
        access
            .add_signing_key(&key(kid, &[0, 159, 255, kid.as_bytes()[2]]))
            .await
            .unwrap();
    }
    assert_already_exists(
        access.add_signing_key(&key("k-a", b"other")).await,
        "signing key k-a",
    );
    let keys = access.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
    assert_eq!(kids, ["k-a", "k-c", "k-b"], "newest first");
    let mut read_back = keys[0].clone();
    read_back.created_at_ms = 0;
    assert_eq!(read_back, key("k-a", &[0, 159, 255, b'a']), "bytes kept");
    assert!(keys[0].created_at_ms > keys[1].created_at_ms);
    assert!(
        !format!("{:?}", keys[0]).contains("159"),
        "Debug shows the key"
    );

    // Young keys stay; old ones go, except the newest, which still signs.
    assert_eq!(
        access
            .expire_signing_keys(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(access.expire_signing_keys(Duration::ZERO).await.unwrap(), 2);
    let kids: Vec<String> = access
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.kid)
        .collect();
    assert_eq!(kids, ["k-a"]);
    assert_eq!(access.expire_signing_keys(Duration::ZERO).await.unwrap(), 0);
    // Every warehouse handle signs with the same keys.
    assert_eq!(
        store
            .in_warehouse("lake")
            .unwrap()
            .access()
            .signing_keys()
            .await
            .unwrap()
            .len(),
        1
    );
}

fn audit(id: &str, at_ms: i64, principal: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at_ms,
        principal: principal.into(),
        route: "POST /v1/{prefix}/namespaces".into(),
        target: "main/sales".into(),
        outcome: "allowed".into(),
        status: 200,
        request_id: format!("req-{id}"),
    }
}

pub async fn audit_log_lists_and_expires(store: Arc<dyn MetadataStore>) {
    let access = store.access();
    let now = now_ms();
    let day = 24 * 3_600_000;
    let mut denied = audit("a3", now - 3_000, "ben");
    denied.outcome = "denied".into();
    denied.status = 403;
    denied.target = String::new();
    access
        .record_audit(&[
            audit("a1", now - 5_000, "ana"),
            audit("a2", now - 4_000, "ana"),
            denied.clone(),
        ])
        .await
        .unwrap();
    access
        .record_audit(&[
            audit("a4", now - 1_000, "ana"),
            audit("a0", now - 40 * day, "ana"),
        ])
        .await
        .unwrap();
    // A batch sent again records nothing twice.
    access
        .record_audit(&[audit("a4", now - 1_000, "ana")])
        .await
        .unwrap();
    access.record_audit(&[]).await.unwrap();

    let ids = |records: Vec<AuditRecord>| -> Vec<String> {
        records.into_iter().map(|record| record.id).collect()
    };
    let all = access
        .list_audit(&AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(all[1], denied, "a record reads back as written");
    assert_eq!(ids(all), ["a4", "a3", "a2", "a1", "a0"], "newest first");
    let of_ana = AuditFilter {
        since_ms: None,
        principal: Some("ana".into()),
    };
    assert_eq!(
        ids(access.list_audit(&of_ana, 100).await.unwrap()),
        ["a4", "a2", "a1", "a0"]
    );
    assert_eq!(
        ids(access.list_audit(&of_ana, 2).await.unwrap()),
        ["a4", "a2"],
        "limited to the newest"
    );
    let recent_of_ana = AuditFilter {
        since_ms: Some(now - 4_000),
        principal: Some("ana".into()),
    };
    assert_eq!(
        ids(access.list_audit(&recent_of_ana, 100).await.unwrap()),
        ["a4", "a2"],
        "since is inclusive"
    );
    let recent = AuditFilter {
        since_ms: Some(now - 3_500),
        principal: None,
    };
    assert_eq!(
        ids(access.list_audit(&recent, 100).await.unwrap()),
        ["a4", "a3"]
    );
    assert!(
        access
            .list_audit(&AuditFilter::default(), 0)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        access
            .expire_audit(Duration::from_secs(30 * 24 * 3600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ids(access.list_audit(&of_ana, 100).await.unwrap()),
        ["a4", "a2", "a1"]
    );
}

/// Names that are empty or hold U+0000 are refused alike by every operation and every backend,
/// and a batch with one bad record records nothing.
pub async fn invalid_access_names_are_refused(store: Arc<dyn MetadataStore>) {
    let access: &dyn AccessStore = store.access();
    let version = access.policy_version().await.unwrap();
    for bad in ["", "a\0b"] {
        assert_invalid(
            access
                .create_principal(&principal(bad, "c", "$argon2id$x"))
                .await,
            "principal name",
        );
        assert_invalid(
            access
                .create_principal(&principal("p", bad, "$argon2id$x"))
                .await,
            "client id",
        );
        assert_invalid(access.create_role(bad).await, "role");
        assert_invalid(access.delete_role(bad).await, "role");
        assert_invalid(access.delete_principal(bad).await, "principal");
        assert_invalid(access.principal_by_client_id(bad).await, "client id");
        assert_invalid(access.assign_role(&member(bad, "r")).await, "member");
        assert_invalid(access.unassign_role(&member("p", bad)).await, "role");
        assert_invalid(
            access.grant(&granted(bad, "read", Securable::Server)).await,
            "role",
        );
        assert_invalid(
            access.grant(&granted("r", bad, Securable::Server)).await,
            "privilege",
        );
        assert_invalid(
            access
                .grant(&granted("r", "read", Securable::Warehouse(bad.into())))
                .await,
            "warehouse",
        );
        assert_invalid(
            access
                .revoke(&granted("r", "read", table("main", &["a"], bad)))
                .await,
            "table",
        );
        assert_invalid(access.add_signing_key(&key(bad, b"k")).await, "kid");
        assert_invalid(
            access.record_audit(&[audit(bad, now_ms(), "ana")]).await,
            "audit id",
        );
    }
    access.create_role("r").await.unwrap();
    let version = version + 1;
    for namespace in [levels(&[]), levels(&["a", ""]), levels(&["a\u{1f}b"])] {
        assert_invalid(
            access
                .grant(&granted(
                    "r",
                    "read",
                    Securable::Namespace {
                        warehouse: "main".into(),
                        namespace: namespace.clone(),
                    },
                ))
                .await,
            "namespace",
        );
    }
    let mut bad_target = audit("a2", now_ms(), "ana");
    bad_target.target = "a\0".into();
    assert_invalid(
        access
            .record_audit(&[audit("a1", now_ms(), "ana"), bad_target])
            .await,
        "audit target",
    );
    assert!(
        access
            .list_audit(&AuditFilter::default(), 10)
            .await
            .unwrap()
            .is_empty(),
        "a refused batch recorded something"
    );
    assert_eq!(access.policy_version().await.unwrap(), version);
    let policy = access.load_policy().await.unwrap();
    assert_eq!(policy.roles, ["r"]);
    assert!(policy.grants.is_empty() && policy.assignments.is_empty());
    assert!(access.list_principals().await.unwrap().is_empty());
}
