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
    /// `admin` on the server, or the metrics token (`metrics-token-file`) as the bearer token.
    Metrics,
    /// `read` on every table the body's read-only SQL query reads (in the `{warehouse}` of the
    /// path); a query that reads no table needs only a token.
    SqlQuery,
}

/// Every route, as (method, route template, rule). The router's routes and this table are checked
/// against each other by a test.
pub const RULES: &[(Method, &str, Rule)] = &[
    (Method::GET, "/health", Rule::Public),
    (Method::GET, "/ready", Rule::Public),
    (Method::POST, "/v1/oauth/tokens", Rule::Public),
    (Method::GET, "/management/v1/openapi.yaml", Rule::Public),
    // The console's static files: the data they show comes from the routes below, with a token.
    (Method::GET, "/console", Rule::Public),
    (Method::GET, "/console/{asset}", Rule::Public),
    (Method::GET, "/v1/config", Rule::Authenticated),
    (Method::GET, "/metrics", Rule::Metrics),
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
        Method::POST,
        "/management/v1/warehouses/{warehouse}/sql",
        Rule::SqlQuery,
    ),
    (
        Method::GET,
        "/management/v1/server",
        Rule::Server(Privilege::Admin),
    ),
    (
        Method::GET,
        "/management/v1/maintenance/jobs",
        Rule::Server(Privilege::Admin),
    ),
    // Findings name files of any table: `maintain` on the server (which `admin` implies).
    (
        Method::GET,
        "/management/v1/scrub/findings",
        Rule::Server(Privilege::Maintain),
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
    // Credentials are scoped to what the caller holds: read-only without `write`.
    (
        Method::GET,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
        Rule::Table(Privilege::Read),
    ),
    // Signing a write also needs `write`: decided by the handler, which alone reads what the
    // request does (crate::delegation::sign).
    (
        Method::POST,
        "/v1/{prefix}/namespaces/{namespace}/tables/{table}/sign",
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

#[cfg(test)]
mod tests {
    //! The router and [`RULES`] must name the same (method, route) pairs. axum cannot list a
    //! router's routes, so the `.route("...", get(..).post(..))` calls of `lib.rs` are read from its
    //! source text; anything the small parser does not understand fails the test instead of
    //! slipping past it.

    use std::collections::BTreeSet;

    use super::*;

    const ROUTER_SOURCE: &str = include_str!("../lib.rs");

    /// The HTTP method of a `axum::routing` method router (`get`, `post`, ...), if `name` is one.
    fn method_named(name: &str) -> Option<Method> {
        Some(match name {
            "get" => Method::GET,
            "post" => Method::POST,
            "put" => Method::PUT,
            "delete" => Method::DELETE,
            "head" => Method::HEAD,
            "patch" => Method::PATCH,
            "options" => Method::OPTIONS,
            "trace" => Method::TRACE,
            _ => return None,
        })
    }

    /// The text between the `(` at `open` and its matching `)`.
    fn balanced(text: &str, open: usize) -> &str {
        let mut depth = 0usize;
        for (offset, character) in text[open..].char_indices() {
            match character {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[open + 1..open + offset];
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced parentheses after byte {open} of lib.rs");
    }

    /// Every identifier directly followed by `(` in `text`, in order.
    fn called_identifiers(text: &str) -> Vec<&str> {
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        for (index, byte) in bytes.iter().enumerate() {
            if *byte != b'(' {
                continue;
            }
            let start = text[..index]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |at| at + 1);
            if start < index {
                found.push(&text[start..index]);
            }
        }
        found
    }

    /// (method, route template) of every route `lib.rs` adds to the router.
    fn router_routes() -> BTreeSet<(String, String)> {
        for unsupported in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
            assert!(
                !ROUTER_SOURCE.contains(unsupported),
                "lib.rs uses {unsupported}: teach this test to read it"
            );
        }
        let mut routes = BTreeSet::new();
        let calls: Vec<usize> = ROUTER_SOURCE
            .match_indices(".route(")
            .map(|(at, _)| at + ".route".len())
            .collect();
        assert!(!calls.is_empty(), "found no .route( calls in lib.rs");
        for open in calls {
            let arguments = balanced(ROUTER_SOURCE, open);
            let template = arguments
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(template, _)| template)
                .unwrap_or_else(|| panic!("a .route( call without a literal path: {arguments}"));
            let methods: Vec<Method> = called_identifiers(arguments)
                .into_iter()
                .filter_map(method_named)
                .collect();
            assert!(
                !methods.is_empty(),
                "route {template} has no method router this test recognises: {arguments}"
            );
            for method in methods {
                assert!(
                    routes.insert((method.to_string(), template.to_string())),
                    "{method} {template} is routed twice"
                );
            }
        }
        routes
    }

    #[test]
    fn every_route_has_exactly_one_rule_and_every_rule_a_route() {
        let routes = router_routes();
        let mut ruled = BTreeSet::new();
        for (method, template, _) in RULES {
            assert!(
                ruled.insert((method.to_string(), template.to_string())),
                "{method} {template} has two rules"
            );
        }
        let without_rule: Vec<_> = routes.difference(&ruled).collect();
        assert!(
            without_rule.is_empty(),
            "routes without a rule in RULES: {without_rule:?}"
        );
        let without_route: Vec<_> = ruled.difference(&routes).collect();
        assert!(
            without_route.is_empty(),
            "rules that name no route of the router: {without_route:?}"
        );
    }

    #[test]
    fn the_route_parser_reads_chained_and_qualified_method_routers() {
        let source = r#".route("/a/{x}", get(h::load).head(h::exists).delete(h::drop))
            .route("/b", axum::routing::delete(access::delete_role))"#;
        let first = balanced(source, source.find('(').unwrap_or_default());
        let methods: Vec<Method> = called_identifiers(first)
            .into_iter()
            .filter_map(method_named)
            .collect();
        assert_eq!(methods, [Method::GET, Method::HEAD, Method::DELETE]);
        let second_open = source.rfind(".route(").unwrap_or_default() + ".route".len();
        let second: Vec<Method> = called_identifiers(balanced(source, second_open))
            .into_iter()
            .filter_map(method_named)
            .collect();
        assert_eq!(second, [Method::DELETE]);
    }

    #[test]
    fn rule_lookup_finds_the_table_entry_and_nothing_else() {
        assert_eq!(
            rule(
                &Method::DELETE,
                "/v1/{prefix}/namespaces/{namespace}/tables/{table}"
            ),
            Some(Rule::Table(Privilege::Drop))
        );
        assert_eq!(rule(&Method::PUT, "/v1/{prefix}/namespaces"), None);
    }
}
