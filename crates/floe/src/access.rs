//! `floe principal`, `floe role`, `floe grant`, `floe revoke`, `floe audit`: identities, grants and
//! the audit log, on a data dir's metadata store (or a shared PostgreSQL one) directly — safe while
//! servers run on it: they pick every change up within a second. A running server offers the same
//! under /management/v1/ (principals, roles, grants, audit) to its administrators.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use floe_auth::principals::{Credential, create_principal, make_admin, rotate_secret};
use floe_auth::{Privilege, format_securable, parse_securable};
use floe_store::{AccessStore, AuditFilter, GrantRecord, MetadataStore, RoleAssignment};

/// Where the metadata store is.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Data dir whose metadata store to use [default: ./floe-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Shared PostgreSQL metadata store (postgres:// URL) instead of DIR/catalog.db.
    #[arg(long, global = true, value_name = "URL")]
    metastore: Option<String>,
}

impl StoreArgs {
    /// The data dir and metastore as the other data-dir commands open them.
    pub(crate) fn options(&self) -> floe_commit::open::OpenOptions {
        crate::data_dir_options(&self.data_dir, &self.metastore, &None)
    }
}

#[derive(Args, Debug)]
#[command(
    long_about = "Manage the principals of the oauth2 auth mode: clients that trade a client id \
        and secret for a short-lived token at /v1/oauth/tokens (PyIceberg and Spark: \
        credential=CLIENT_ID:CLIENT_SECRET). Secrets are printed once, when made, and stored only \
        as argon2 hashes. A principal may do what its roles' grants allow (floe role, floe grant)."
)]
pub struct PrincipalArgs {
    #[command(subcommand)]
    command: PrincipalCommand,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand, Debug)]
enum PrincipalCommand {
    /// Create a principal and print its client id and secret (shown only this once).
    Create {
        /// Letters, digits, '.', '_', '@', '-'; at most 128 characters.
        name: String,
        /// Also give it the admin role (admin on the whole server, management API included).
        #[arg(long)]
        admin: bool,
    },
    /// List principals (names and client ids; never secrets).
    List,
    /// Delete a principal and its role memberships; its tokens stop working within a second.
    Delete { name: String },
    /// Give a principal a new secret (printed once); the old one stops working for new tokens.
    RotateSecret { name: String },
}

#[derive(Args, Debug)]
#[command(
    long_about = "Manage roles: a role holds grants (floe grant) and principals hold roles. With \
        --auth oidc, principals are the names the issuer's tokens carry (the configured claim) and \
        need not be created here."
)]
pub struct RoleArgs {
    #[command(subcommand)]
    command: RoleCommand,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand, Debug)]
enum RoleCommand {
    /// Create an empty role.
    Create { name: String },
    /// Delete a role with its grants and memberships.
    Delete { name: String },
    /// List roles with their members and grants.
    List,
    /// Give PRINCIPAL the role ROLE.
    Assign { role: String, principal: String },
    /// Take the role ROLE from PRINCIPAL.
    Unassign { role: String, principal: String },
}

#[derive(Args, Debug)]
#[command(long_about = GRANT_HELP)]
pub struct GrantArgs {
    /// read, write, create, drop, maintain, manage-grants or admin.
    privilege: String,
    /// What it applies to: server, warehouse:W, namespace:W:a.b, table:W:a.b.t, view:W:a.b.v.
    #[arg(long)]
    on: String,
    /// The role that gets (or loses) it.
    #[arg(long = "to", visible_alias = "from")]
    role: String,
    #[command(flatten)]
    store: StoreArgs,
}

const GRANT_HELP: &str = "Grant a privilege on a securable to a role (floe revoke takes it back). \
    Privileges: read (list, load, scan), write (commit; implies read), create (namespaces, tables, \
    views), drop (drop, purge, rename away), maintain (maintenance settings and jobs), manage-grants \
    (grant and revoke there), admin (everything; on `server`, the management API too). A grant on a \
    namespace covers the namespaces nested in it and everything inside them; on a warehouse, all of \
    it. Example: floe grant read --on namespace:main:sales --to analysts";

#[derive(Args, Debug)]
#[command(
    long_about = "Every mutation and every denied request, newest first: time, principal, \
    route, target, outcome, status and request id."
)]
pub struct AuditArgs {
    /// Only records since this time: RFC 3339 (2026-12-07T10:00:00Z) or an age like 30m, 12h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only this principal's records.
    #[arg(long)]
    principal: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

async fn open_store(args: &StoreArgs) -> Result<std::sync::Arc<dyn MetadataStore>, String> {
    let options = crate::data_dir_options(&args.data_dir, &args.metastore, &None);
    let warehouses = floe_commit::open::open_warehouses(&options).await?;
    Ok(warehouses.default_catalog().store().clone())
}

fn print_credential(credential: &Credential) {
    println!("principal:     {}", credential.principal);
    println!("client id:     {}", credential.client_id);
    println!("client secret: {}", credential.client_secret.expose());
    println!(
        "credential:    {}   (PyIceberg/Spark: credential=...; shown only now)",
        credential.client_credential()
    );
}

pub fn run_principal(args: PrincipalArgs) -> Result<(), String> {
    crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let access = store.access();
        match args.command {
            PrincipalCommand::Create { name, admin } => {
                let credential = create_principal(access, &name)
                    .await
                    .map_err(|err| err.to_string())?;
                if admin {
                    make_admin(access, &name)
                        .await
                        .map_err(|err| err.to_string())?;
                }
                print_credential(&credential);
            }
            PrincipalCommand::List => {
                for principal in access.list_principals().await.map_err(|e| e.to_string())? {
                    println!("{}\t{}", principal.name, principal.client_id);
                }
            }
            PrincipalCommand::Delete { name } => {
                access
                    .delete_principal(&name)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("deleted principal {name}");
            }
            PrincipalCommand::RotateSecret { name } => {
                let credential = rotate_secret(access, &name)
                    .await
                    .map_err(|err| err.to_string())?;
                print_credential(&credential);
            }
        }
        Ok(())
    })
}

pub fn run_role(args: RoleArgs) -> Result<(), String> {
    crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let access = store.access();
        let error = |err: floe_store::StoreError| err.to_string();
        match args.command {
            RoleCommand::Create { name } => {
                floe_auth::principals::validate_principal_name(&name)
                    .map_err(|_| format!("invalid role name {name:?}"))?;
                access.create_role(&name).await.map_err(error)?;
                println!("created role {name}");
            }
            RoleCommand::Delete { name } => {
                access.delete_role(&name).await.map_err(error)?;
                println!("deleted role {name} with its grants and memberships");
            }
            RoleCommand::List => {
                let policy = access.load_policy().await.map_err(error)?;
                for role in &policy.roles {
                    let members: Vec<&str> = policy
                        .assignments
                        .iter()
                        .filter(|a| &a.role == role)
                        .map(|a| a.principal.as_str())
                        .collect();
                    println!("{role}\tprincipals: {}", members.join(", "));
                    for grant in policy.grants.iter().filter(|g| &g.role == role) {
                        println!("\t{} on {}", grant.privilege, format_securable(&grant.on));
                    }
                }
            }
            RoleCommand::Assign { role, principal } => {
                access
                    .assign_role(&RoleAssignment {
                        principal: principal.clone(),
                        role: role.clone(),
                    })
                    .await
                    .map_err(error)?;
                println!("{principal} now holds role {role}");
            }
            RoleCommand::Unassign { role, principal } => {
                let held = access
                    .unassign_role(&RoleAssignment {
                        principal: principal.clone(),
                        role: role.clone(),
                    })
                    .await
                    .map_err(error)?;
                if !held {
                    return Err(format!("{principal} does not hold role {role}"));
                }
                println!("{principal} no longer holds role {role}");
            }
        }
        Ok(())
    })
}

fn grant_record(args: &GrantArgs) -> Result<GrantRecord, String> {
    let privilege = args.privilege.parse::<Privilege>()?;
    Ok(GrantRecord {
        role: args.role.clone(),
        privilege: privilege.as_str().to_string(),
        on: parse_securable(&args.on)?,
    })
}

pub fn run_grant(args: GrantArgs, revoke: bool) -> Result<(), String> {
    let grant = grant_record(&args)?;
    crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let access: &dyn AccessStore = store.access();
        let on = format_securable(&grant.on);
        if revoke {
            if !access.revoke(&grant).await.map_err(|e| e.to_string())? {
                return Err(format!(
                    "role {} holds no {} on {on}",
                    grant.role, grant.privilege
                ));
            }
            println!(
                "revoked {} on {on} from role {}",
                grant.privilege, grant.role
            );
        } else {
            access.grant(&grant).await.map_err(|e| e.to_string())?;
            println!("granted {} on {on} to role {}", grant.privilege, grant.role);
        }
        Ok(())
    })
}

/// Unix ms of `--since`: an RFC 3339 time or an age (`30m`, `12h`, `7d`).
fn since_ms(text: &str) -> Result<i64, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if n >= 0 && seconds > 0 => {
            Ok(chrono::Utc::now().timestamp_millis() - n * seconds * 1000)
        }
        _ => Err(format!(
            "--since {text:?}: expected an RFC 3339 time or an age such as 30m, 12h, 7d"
        )),
    }
}

pub fn run_audit(args: AuditArgs) -> Result<(), String> {
    let filter = AuditFilter {
        since_ms: args.since.as_deref().map(since_ms).transpose()?,
        principal: args.principal.clone(),
    };
    crate::runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let records = store
            .access()
            .list_audit(&filter, args.limit.max(1))
            .await
            .map_err(|e| e.to_string())?;
        for record in records {
            let at = chrono::DateTime::from_timestamp_millis(record.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "at": at, "principal": record.principal, "route": record.route,
                        "target": record.target, "outcome": record.outcome,
                        "status": record.status, "request-id": record.request_id,
                    })
                );
            } else {
                println!(
                    "{at}  {:<16} {:<12} {:>3}  {}  {}  [{}]",
                    record.principal,
                    record.outcome,
                    record.status,
                    record.route,
                    record.target,
                    record.request_id
                );
            }
        }
        Ok(())
    })
}
