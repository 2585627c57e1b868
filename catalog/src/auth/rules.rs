//! Route → what it needs: the one table of authorization rules (docs/security.md prints it).
//!
//! Every route of the REST and management APIs has exactly one entry; a route without one is
//! refused to everyone but an administrator, so a route added without a rule fails closed (and the
//! route-table test fails).

use axum::http::Method;
use floe_auth::Privilege;

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, with or without a token (health checks, the token endpoint itself).
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// The privilege on the whole server (in practice `admin`: the management API).
    Server(Privilege),
    /// The privilege on the namespace in the path.
    Namespace(Privilege),
    /// The privilege on the table in the path.
    Table(Privilege),
    /// The privilege on the view in the path.
    View(Privilege),
    /// The caller must be able to see the namespace in the path (the listing is then filtered).
    SeeNamespace,
    /// The caller must be able to see the `parent` namespace of the query, or the warehouse
    /// (the listing is then filtered).
    ListNamespaces,
    /// `create` on the parent of the namespace named in the body (the warehouse for a top-level one).
    CreateNamespace,
    /// `drop` on the source (table or view) and `create` on the destination's namespace, both
    /// named in the body.
    Rename { view: bool },
    /// `write` on every table the body commits to.
    CommitTransaction,
    /// `manage-grants` on the securable the body names.
    ManageGrants,
    /// The privilege on the namespace of the management path (`{warehouse}`, `{namespace}`).
    ManagementNamespace(Privilege),
    /// The privilege on the table of the management path.
    ManagementTable(Privilege),
}

/// Every route, as (method, route template, rule). The router's routes and this table are checked
/// against each other by a test.
pub const RULES: &[(Method, &str, Rule)] = &[
    (Method::GET, "/health", Rule::Public),
    (Method::GET, "/ready", Rule::Public),
    (Method::POST, "/v1/oauth/tokens", Rule::Public),
    (Method::GET, "/management/v1/openapi.yaml", Rule::Public),
    (Method::GET, "/v1/config", Rule::Authenticated),
    // Management: the server's administrators only, but maintenance settings.
    (
        Method::GET,
        "/management/v1/warehouses",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::POST,
        "/management/v1/warehouses",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/warehouses/{name}",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::DELETE,
        "/management/v1/warehouses/{name}",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/maintenance",
        Rule::ManagementNamespace(Privilege::Read),
    ),
    (
        Method::POST,
        "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/maintenance",
        Rule::ManagementNamespace(Privilege::Maintain),
    ),
    (
        Method::GET,
        "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance",
        Rule::ManagementTable(Privilege::Read),
    ),
    (
        Method::POST,
        "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance",
        Rule::ManagementTable(Privilege::Maintain),
    ),
    (
        Method::GET,
        "/management/v1/maintenance/jobs",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/principals",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::POST,
        "/management/v1/principals",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::DELETE,
        "/management/v1/principals/{principal}",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::POST,
        "/management/v1/principals/{principal}/rotate-secret",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/roles",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::POST,
        "/management/v1/roles",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::DELETE,
        "/management/v1/roles/{role}",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::POST,
        "/management/v1/roles/{role}/principals",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::DELETE,
        "/management/v1/roles/{role}/principals/{principal}",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/grants",
        Rule::Server(Privilege::Admin),
    ),
    (Method::POST, "/management/v1/grants", Rule::ManageGrants),
    (
        Method::POST,
        "/management/v1/grants/revoke",
        Rule::ManageGrants,
    ),
    (
        Method::GET,
        "/management/v1/audit",
        Rule::Server(Privilege::Admin),
    ),
    // The Iceberg REST API.
    (Method::GET, "/v1/{prefix}/namespaces", Rule::ListNamespaces),
    (
        Method::POST,
        "/v1/{prefix}/namespaces",
        Rule::CreateNamespace,
    ),
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}",
        Rule::SeeNamespace,
    ),
    (
        Method::HEAD,
        "/v1/{prefix}/namespaces/{namespace}",
        Rule::SeeNamespace,
    ),
    (
        Method::DELETE,
        "/v1/{prefix}/namespaces/{namespace}",
        Rule::Namespace(Privilege::Drop),
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/properties",
        Rule::Namespace(Privilege::Write),
    ),
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}/tables",
        Rule::SeeNamespace,
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/tables",
        Rule::Namespace(Privilege::Create),
    ),
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
        Rule::Table(Privilege::Read),
    ),
    (
        Method::HEAD,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
        Rule::Table(Privilege::Read),
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
        Rule::Table(Privilege::Write),
    ),
    (
        Method::DELETE,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
        Rule::Table(Privilege::Drop),
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
        Rule::Table(Privilege::Read),
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/register",
        Rule::Namespace(Privilege::Create),
    ),
    (
        Method::POST,
        "/v1/{prefix}/tables/rename",
        Rule::Rename { view: false },
    ),
    (
        Method::POST,
        "/v1/{prefix}/transactions/commit",
        Rule::CommitTransaction,
    ),
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}/views",
        Rule::SeeNamespace,
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/views",
        Rule::Namespace(Privilege::Create),
    ),
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}/views/{view}",
        Rule::View(Privilege::Read),
    ),
    (
        Method::HEAD,
        "/v1/{prefix}/namespaces/{namespace}/views/{view}",
        Rule::View(Privilege::Read),
    ),
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/views/{view}",
        Rule::View(Privilege::Write),
    ),
    (
        Method::DELETE,
        "/v1/{prefix}/namespaces/{namespace}/views/{view}",
        Rule::View(Privilege::Drop),
    ),
    (
        Method::POST,
        "/v1/{prefix}/views/rename",
        Rule::Rename { view: true },
    ),
];

/// The rule of a matched route; `None` when the table has no entry for it.
pub fn rule(method: &Method, template: &str) -> Option<Rule> {
    RULES
        .iter()
        .find(|(m, t, _)| m == method && *t == template)
        .map(|(_, _, rule)| *rule)
}
