//! Authentication, authorization and audit of every request: one middleware, one decision.
//!
//! ```text
//! request ──► route matched ──► rules::rule(method, template) ──► token → principal
//!                                                                 ──► Authorizer::decide (in memory)
//!          ◄── 401 / 403 (audited) ◄── denied         allowed ──► handler (Caller in extensions)
//!                                                                 ──► audit if it was a mutation
//! ```
//!
//! Handlers never decide; listing handlers only filter what they list through [`Caller`], with
//! the same policy. The token endpoint ([`token`]) and the management API for principals, roles,
//! grants and the audit log ([`management`]) live here too. `/metrics` also takes the metrics
//! token in place of an administrator's ([`Rule::Metrics`]). Every decision is counted
//! (`floe_auth_decisions_total`), and the principal is set on the response for the access log.

pub mod config;
pub mod management;
pub mod rules;
pub mod token;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use floe_auth::audit::{AuditLog, new_record};
use floe_auth::{AuthError, Authorizer, Principal, Privilege, Securable, format_securable};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::names::parse_namespace;
use crate::telemetry::RequestPrincipal;
use rules::Rule;

pub use config::{AuthConfig, AuthKind};

/// The header that carries a request's id (set by the server when the client sent none).
pub const REQUEST_ID: &str = "x-request-id";

/// The principal the access log names for a scrape that presented the metrics token.
pub const METRICS_TOKEN_PRINCIPAL: &str = "metrics-token";

/// What the server needs to authenticate, decide and audit.
#[derive(Clone)]
pub struct AuthState {
    pub authorizer: Arc<Authorizer>,
    pub audit: AuditLog,
}

/// The authenticated caller of a request, for handlers that filter listings.
#[derive(Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    authorizer: Arc<Authorizer>,
}

impl Caller {
    /// Whether the caller may see that `target` exists. A decision that cannot be made hides it.
    pub fn can_see(&self, target: &Securable) -> bool {
        self.authorizer
            .can_see(&self.principal, target)
            .unwrap_or(false)
    }

    /// Whether the caller holds `privilege` on `target`.
    pub fn may(&self, privilege: Privilege, target: &Securable) -> bool {
        self.authorizer
            .decide(&self.principal, privilege, target)
            .unwrap_or(false)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "request reached a handler without an authorization decision",
            )
        })
    }
}

/// The principal a public route authenticated itself (the token endpoint), for the audit log.
#[derive(Clone)]
pub struct AuditedPrincipal(pub String);

/// The middleware: authenticate, decide once, run the handler, audit.
///
/// A request refused here leaves its body unread, and the server then closes the connection:
/// such refusals say `Connection: close`, so that a client does not send its next request on a
/// connection that is going away (it would see the connection drop with no answer).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let carries_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .is_some_and(|length| length.trim() != "0");
    let handler_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let marker = HandlerRan(handler_ran.clone());
    let mut request = request;
    request.extensions_mut().insert(marker);
    let mut response = decide(state, request, next).await;
    if carries_body && !handler_ran.load(std::sync::atomic::Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Set when the request reaches its handler (which reads the body, if it has one).
#[derive(Clone)]
struct HandlerRan(Arc<std::sync::atomic::AtomicBool>);

/// Runs the rest of the stack, noting that the request got past the decision.
async fn run_handler(request: Request, next: Next) -> Response {
    if let Some(HandlerRan(ran)) = request.extensions().get::<HandlerRan>() {
        ran.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    next.run(request).await
}

async fn decide(state: AppState, request: Request, next: Next) -> Response {
    let Some(template) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string())
    else {
        // No route matched: the 404 fallback answers, and there is nothing to protect.
        return next.run(request).await;
    };
    let auth = state.auth.clone();
    let method = request.method().clone();
    let route = || format!("{method} {template}");
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mutation = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    // A route without a rule fails closed: administrators only.
    let rule = rules::rule(&method, &template)
        .or_else(|| {
            (method == Method::HEAD)
                .then(|| rules::rule(&Method::GET, &template))
                .flatten()
        })
        .unwrap_or(Rule::Server(Privilege::Admin));

    if rule == Rule::Public {
        let mut response = run_handler(request, next).await;
        if let Some(principal) = response.extensions().get::<AuditedPrincipal>().cloned() {
            response
                .extensions_mut()
                .insert(RequestPrincipal(principal.0));
        }
        if mutation || is_denial(response.status()) {
            let principal = response
                .extensions()
                .get::<AuditedPrincipal>()
                .map(|p| p.0.clone())
                .unwrap_or_else(|| "unauthenticated".to_string());
            let outcome = if is_denial(response.status()) {
                "denied"
            } else {
                "allowed"
            };
            auth.audit
                .record(new_record(
                    &principal,
                    route(),
                    String::new(),
                    outcome,
                    response.status().as_u16(),
                    &request_id,
                ))
                .await;
        }
        return response;
    }

    let bearer = bearer_token(&request);
    if rule == Rule::Metrics
        && let (Some(token), Some(bearer)) = (&state.metrics.token, &bearer)
        && token.matches(bearer)
    {
        crate::metrics::auth_decision("allowed");
        let mut response = run_handler(request, next).await;
        response
            .extensions_mut()
            .insert(RequestPrincipal(METRICS_TOKEN_PRINCIPAL.to_string()));
        return response;
    }
    let principal = match auth.authorizer.authenticate(bearer.as_deref()).await {
        Ok(principal) => principal,
        Err(err) => {
            let response = auth_error_response(err);
            if response.status() == StatusCode::UNAUTHORIZED {
                crate::metrics::auth_decision("unauthenticated");
            }
            auth.audit
                .record(new_record(
                    "unauthenticated",
                    route(),
                    String::new(),
                    "unauthenticated",
                    response.status().as_u16(),
                    &request_id,
                ))
                .await;
            return response;
        }
    };

    let with_principal = |mut response: Response| {
        response
            .extensions_mut()
            .insert(RequestPrincipal(principal.name.clone()));
        response
    };
    let (mut request, needs) = match needs(&state, rule, request).await {
        Ok(found) => found,
        Err(err) => return with_principal(err.into_response()),
    };
    // Only denials and mutations are recorded: a read that is allowed builds no strings.
    let target = || {
        needs
            .iter()
            .map(|need| need.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = needs.iter().try_fold(true, |allowed, need| {
        Ok::<_, AuthError>(allowed && need.check(&auth.authorizer, &principal)?)
    });
    match verdict {
        Ok(true) => crate::metrics::auth_decision("allowed"),
        Ok(false) => {
            crate::metrics::auth_decision("denied");
            let target = target();
            let response = ApiError::new(
                StatusCode::FORBIDDEN,
                "ForbiddenException",
                format!(
                    "principal {} may not {} on {}: it lacks {}",
                    principal.name,
                    route(),
                    if target.is_empty() {
                        "this server"
                    } else {
                        &target
                    },
                    needs
                        .iter()
                        .map(Need::privilege_name)
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )
            .into_response();
            auth.audit
                .record(new_record(
                    &principal.name,
                    route(),
                    target,
                    "denied",
                    403,
                    &request_id,
                ))
                .await;
            return with_principal(response);
        }
        Err(err) => return with_principal(auth_error_response(err)),
    }

    request.extensions_mut().insert(Caller {
        principal: principal.clone(),
        authorizer: auth.authorizer.clone(),
    });
    let response = run_handler(request, next).await;
    let (outcome, target) = match response.extensions().get::<HandlerAudit>() {
        Some(HandlerAudit::Denied(asked)) => ("denied", format!("{} {asked}", target())),
        Some(HandlerAudit::NotAMutation) => return with_principal(response),
        None if mutation => ("allowed", target()),
        None => return with_principal(response),
    };
    auth.audit
        .record(new_record(
            &principal.name,
            route(),
            target,
            outcome,
            response.status().as_u16(),
            &request_id,
        ))
        .await;
    with_principal(response)
}

/// What a handler tells this middleware to audit, where the method alone would say wrong: set
/// as a response extension.
#[derive(Clone, Debug)]
pub enum HandlerAudit {
    /// The handler refused what the request asked for, after the middleware let it in (a
    /// signing request for a key outside the table): audited as a denial, with what was asked.
    Denied(String),
    /// A `POST` that changes nothing in the catalog (signing an object-store request): not
    /// audited when allowed.
    NotAMutation,
}

fn is_denial(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer_token(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|token| !token.is_empty())
}

fn auth_error_response(err: AuthError) -> Response {
    let (status, kind) = match &err {
        AuthError::MissingToken | AuthError::InvalidToken(_) => {
            (StatusCode::UNAUTHORIZED, "NotAuthorizedException")
        }
        AuthError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
        AuthError::Unavailable(_) | AuthError::Store(floe_store::StoreError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        ),
        AuthError::Store(_) | AuthError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
        }
    };
    let mut response = ApiError::new(status, kind, err.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// One thing a request needs: a privilege on a securable, or to see it.
enum Need {
    Authenticated,
    Holds(Privilege, Securable),
    Sees(Securable),
}

impl Need {
    fn check(&self, authorizer: &Authorizer, principal: &Principal) -> Result<bool, AuthError> {
        match self {
            Need::Authenticated => Ok(true),
            Need::Holds(privilege, target) => authorizer.decide(principal, *privilege, target),
            Need::Sees(target) => authorizer.can_see(principal, target),
        }
    }

    fn describe(&self) -> String {
        match self {
            Need::Authenticated => String::new(),
            Need::Holds(_, target) | Need::Sees(target) => format_securable(target),
        }
    }

    fn privilege_name(&self) -> String {
        match self {
            Need::Authenticated => "a token".to_string(),
            Need::Holds(privilege, _) => format!("'{privilege}'"),
            Need::Sees(_) => "any privilege there".to_string(),
        }
    }
}

/// What the matched route needs, from its path, query and (for a few routes) body. Returns the
/// request, whose body is put back when it was read.
async fn needs(
    state: &AppState,
    rule: Rule,
    mut request: Request,
) -> Result<(Request, Vec<Need>), ApiError> {
    let params = path_params(&mut request).await?;
    let param = |name: &str| -> Result<String, ApiError> {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| ApiError::bad_request(format!("missing path parameter {name}")))
    };
    let namespace_of = |warehouse: String, raw: &str| -> Result<Securable, ApiError> {
        Ok(Securable::Namespace {
            warehouse,
            namespace: parse_namespace(raw)?,
        })
    };
    let needs = match rule {
        Rule::Public | Rule::Authenticated => vec![Need::Authenticated],
        Rule::Server(privilege) => vec![Need::Holds(privilege, Securable::Server)],
        Rule::Metrics => vec![Need::Holds(Privilege::Admin, Securable::Server)],
        Rule::Namespace(privilege) => {
            vec![Need::Holds(
                privilege,
                namespace_of(param("prefix")?, &param("namespace")?)?,
            )]
        }
        Rule::SeeNamespace => vec![Need::Sees(namespace_of(
            param("prefix")?,
            &param("namespace")?,
        )?)],
        Rule::ManagementNamespace(privilege) => vec![Need::Holds(
            privilege,
            namespace_of(param("warehouse")?, &param("namespace")?)?,
        )],
        Rule::Table(privilege) | Rule::View(privilege) | Rule::ManagementTable(privilege) => {
            let (warehouse, leaf) = match rule {
                Rule::ManagementTable(_) => (param("warehouse")?, param("table")?),
                Rule::View(_) => (param("prefix")?, param("view")?),
                _ => (param("prefix")?, param("table")?),
            };
            let namespace = parse_namespace(&param("namespace")?)?;
            let target = if matches!(rule, Rule::View(_)) {
                Securable::View {
                    warehouse,
                    namespace,
                    name: leaf,
                }
            } else {
                Securable::Table {
                    warehouse,
                    namespace,
                    name: leaf,
                }
            };
            vec![Need::Holds(privilege, target)]
        }
        Rule::ListNamespaces => {
            let warehouse = param("prefix")?;
            let parent = request.uri().query().and_then(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == "parent")
                    .map(|(_, value)| value.into_owned())
            });
            vec![Need::Sees(match parent {
                Some(parent) => namespace_of(warehouse, &parent)?,
                None => Securable::Warehouse(warehouse),
            })]
        }
        Rule::CreateNamespace
        | Rule::SqlQuery
        | Rule::Rename { .. }
        | Rule::CommitTransaction
        | Rule::ManageGrants => {
            let (request, body) = read_body(state, request).await?;
            let needs = body_needs(rule, &params, &body)?;
            return Ok((request, needs));
        }
    };
    Ok((request, needs))
}

/// The matched route's path parameters, percent-decoded.
async fn path_params(request: &mut Request) -> Result<Vec<(String, String)>, ApiError> {
    use axum::RequestExt;
    let raw = request
        .extract_parts::<RawPathParams>()
        .await
        .map_err(|err| {
            ApiError::bad_request(format!("invalid request path: {}", err.body_text()))
        })?;
    Ok(raw
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect())
}

/// Reads the body (within the size limit) to decide on what it names, and puts it back.
async fn read_body(state: &AppState, request: Request) -> Result<(Request, Value), ApiError> {
    let (parts, body) = request.into_parts();
    // Outside the request-timeout layer (the decision comes before the idempotency layer, which
    // comes before the timeout), so this read keeps the request's deadline itself.
    let deadline = crate::limits::Deadline::of(&parts.extensions, &state.config);
    let read = axum::body::to_bytes(body, state.config.max_request_bytes);
    let bytes = tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| crate::limits::timed_out_error(&state.config))?
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                "request body is larger than the server's limit (max-request-bytes)",
            )
        })?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))?;
    Ok((Request::from_parts(parts, Body::from(bytes)), value))
}

fn body_needs(
    rule: Rule,
    params: &[(String, String)],
    body: &Value,
) -> Result<Vec<Need>, ApiError> {
    let warehouse = || {
        params
            .iter()
            .find(|(key, _)| key == "prefix" || key == "warehouse")
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let levels = |value: Option<&Value>, what: &str| -> Result<Vec<String>, ApiError> {
        let levels: Option<Vec<String>> = value.and_then(Value::as_array).and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        });
        levels
            .filter(|levels| !levels.is_empty() && levels.iter().all(|l| !l.is_empty()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{what} must be a non-empty list of non-empty strings"
                ))
            })
    };
    let identifier =
        |value: Option<&Value>, what: &str| -> Result<(Vec<String>, String), ApiError> {
            let namespace = levels(
                value.and_then(|v| v.get("namespace")),
                &format!("{what}.namespace"),
            )?;
            let name = value
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{what}.name must be a non-empty string"))
                })?;
            Ok((namespace, name.to_string()))
        };
    Ok(match rule {
        Rule::CreateNamespace => {
            let mut namespace = levels(body.get("namespace"), "namespace")?;
            namespace.pop();
            let parent = if namespace.is_empty() {
                Securable::Warehouse(warehouse())
            } else {
                Securable::Namespace {
                    warehouse: warehouse(),
                    namespace,
                }
            };
            vec![Need::Holds(Privilege::Create, parent)]
        }
        Rule::Rename { view } => {
            let (namespace, name) = identifier(body.get("source"), "source")?;
            let (destination, _) = identifier(body.get("destination"), "destination")?;
            let source = if view {
                Securable::View {
                    warehouse: warehouse(),
                    namespace,
                    name,
                }
            } else {
                Securable::Table {
                    warehouse: warehouse(),
                    namespace,
                    name,
                }
            };
            vec![
                Need::Holds(Privilege::Drop, source),
                Need::Holds(
                    Privilege::Create,
                    Securable::Namespace {
                        warehouse: warehouse(),
                        namespace: destination,
                    },
                ),
            ]
        }
        Rule::CommitTransaction => {
            let changes = body
                .get("table-changes")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::bad_request("table-changes must be a list"))?;
            let mut needs = Vec::with_capacity(changes.len());
            for change in changes {
                let (namespace, name) = identifier(change.get("identifier"), "identifier")?;
                needs.push(Need::Holds(
                    Privilege::Write,
                    Securable::Table {
                        warehouse: warehouse(),
                        namespace,
                        name,
                    },
                ));
            }
            needs
        }
        Rule::ManageGrants => {
            let grant = management::GrantBody::from_value(body)?;
            vec![Need::Holds(Privilege::ManageGrants, grant.on)]
        }
        Rule::SqlQuery => {
            // The same text the handler runs, parsed the same way: what is checked is what runs.
            let sql = body
                .get("sql")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("sql must be a string"))?;
            let query =
                floe_sql::read_only::read_only(sql).map_err(crate::handlers::sql::sql_error)?;
            let mut needs: Vec<Need> = query
                .tables
                .into_iter()
                .map(|read| {
                    Need::Holds(
                        Privilege::Read,
                        Securable::Table {
                            warehouse: warehouse(),
                            namespace: read.namespace,
                            name: read.table,
                        },
                    )
                })
                .collect();
            if needs.is_empty() {
                needs.push(Need::Authenticated);
            }
            needs
        }
        _ => Vec::new(),
    })
}

/// The auth mode's background work: keeping grants fresh, rotating keys, writing and expiring
/// the audit log.
pub struct AuthTasks {
    background: Vec<tokio::task::JoinHandle<()>>,
    audit_writer: tokio::task::JoinHandle<()>,
}

impl AuthTasks {
    /// Stops the background work and waits (briefly) for queued audit records to be written. Call
    /// it after the server dropped its state, so that the audit queue has closed.
    pub async fn stop(self) {
        for task in self.background {
            task.abort();
        }
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.audit_writer)
            .await
            .is_err()
        {
            tracing::warn!("audit records still queued at shutdown were not all written");
        }
    }
}

/// Sets up the configured auth mode on `store`: token keys or the OIDC key set, the first
/// administrator of a new `oauth2` deployment, the grants, the audit log.
pub async fn start(
    config: &crate::ServerConfig,
    store: Arc<dyn floe_store::MetadataStore>,
) -> Result<(AuthState, AuthTasks), crate::StartError> {
    use floe_auth::AuthMode;
    use std::time::Duration;
    let settings = &config.auth;
    let fail = |what: &str, err: AuthError| crate::StartError::from(format!("{what}: {err}"));
    let mut background = Vec::new();
    let mode = match settings.mode {
        AuthKind::None => AuthMode::None,
        AuthKind::Oauth2 => {
            let rotation = Duration::from_secs(settings.signing_key_rotation_days * 86_400);
            let issuer = Arc::new(
                floe_auth::tokens::TokenIssuer::open(
                    store.clone(),
                    Duration::from_secs(settings.token_lifetime_secs),
                    rotation,
                )
                .await
                .map_err(|err| fail("token signing keys", err))?,
            );
            if let Some(credential) = floe_auth::principals::bootstrap_admin(store.access())
                .await
                .map_err(|err| fail("creating the first administrator", err))?
            {
                announce_first_admin(&config.data_dir, &credential)?;
            }
            let rotating = issuer.clone();
            background.push(tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    interval.tick().await;
                    if let Err(err) = rotating.rotate_if_due().await {
                        tracing::warn!(error = %err, "could not rotate the token signing keys");
                    }
                }
            }));
            AuthMode::OAuth2(issuer)
        }
        AuthKind::Oidc => {
            let jwks = match (&settings.oidc_jwks_url, &settings.oidc_jwks_file) {
                (Some(url), _) => floe_auth::oidc::JwksSource::Url(url.clone()),
                (None, Some(file)) => floe_auth::oidc::JwksSource::File(file.clone()),
                (None, None) => {
                    return Err("--auth oidc needs a JWKS URL or file".to_string().into());
                }
            };
            let verifier = floe_auth::oidc::OidcVerifier::open(floe_auth::oidc::OidcSettings {
                issuer: settings.oidc_issuer.clone().unwrap_or_default(),
                audience: settings.oidc_audience.clone(),
                jwks,
                principal_claim: settings.oidc_principal_claim.clone(),
            })
            .await
            .map_err(|err| fail("the OIDC issuer's key set", err))?;
            AuthMode::Oidc(Arc::new(verifier))
        }
    };
    let authorizer = Authorizer::new(mode, store.clone())
        .await
        .map_err(|err| fail("reading the grants", err))?;
    background.extend(authorizer.spawn_refresher());
    let (audit, audit_writer) = AuditLog::start(store.clone());
    background.push(tokio::spawn(floe_auth::audit::expire_periodically(
        store,
        Duration::from_secs(settings.audit_retention_days * 86_400),
    )));
    tracing::info!(mode = authorizer.mode().name(), "authentication");
    Ok((
        AuthState { authorizer, audit },
        AuthTasks {
            background,
            audit_writer,
        },
    ))
}

/// Writes the first administrator's credential to a file only the server's user can read, and
/// says where: the secret itself never goes to a log or the terminal.
fn announce_first_admin(
    data_dir: &std::path::Path,
    credential: &floe_auth::principals::Credential,
) -> Result<(), crate::StartError> {
    use floe_commit::private_files::{Existing, create_private_dir, write_private_file};
    create_private_dir(data_dir)
        .map_err(|err| format!("cannot create {}: {err}", data_dir.display()))?;
    let path = data_dir.join("admin-credential");
    // A new file under a temporary name, then renamed over the old one: never written through a
    // symlink planted at the name, never readable by others even for a moment.
    write_private_file(
        &path,
        format!("{}\n", credential.client_credential()).as_bytes(),
        Existing::Replace,
    )
    .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    tracing::info!(principal = credential.principal, file = %path.display(), "created the first administrator");
    println!(
        "created principal '{}' with the admin role; its credential (client_id:client_secret) is in {} \
         (readable only by this user). Clients use it as credential=<that>; keep it safe and delete the file.",
        credential.principal,
        path.display()
    );
    Ok(())
}
