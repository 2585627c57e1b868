//! `floe warehouse`: create, list, show and drop the warehouses a Floe deployment hosts.
//!
//! Through a running server's management API (`--catalog URL`), or straight on the metadata store
//! of a data dir (or a shared PostgreSQL one) with no server running: both go through
//! `floe_commit::Warehouses`, so the checks (name, allowed storage root, storage reachable, no
//! overlap) are the same.
//! Servers pick a new warehouse up on its first use; nothing needs a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use floe_commit::{NewWarehouse, WarehouseInfo, Warehouses};
use serde_json::{Value, json};

#[derive(Args, Debug)]
#[command(
    long_about = "Manage warehouses: each has its own namespaces and tables, and its own storage \
        (a local directory, or s3://bucket/prefix with its own endpoint and credentials). \
        Clients choose one by name: it is the REST prefix, and /v1/config?warehouse=NAME \
        returns it. The server's default warehouse comes from its configuration \
        (--warehouse, --warehouse-url) and always exists. A new warehouse's storage must lie \
        under one of the operator's allowed storage roots (--allowed-storage-root; by default \
        only the data dir's warehouse/ directory).\n\n\
        With --catalog the command goes through a running server's management API; otherwise \
        it opens the data dir's metadata store directly (./floe-data by default), which is also \
        safe while a server runs on it."
)]
pub struct WarehouseArgs {
    #[command(subcommand)]
    command: WarehouseCommand,
    /// URL of a running Floe server, e.g. http://127.0.0.1:8181.
    #[arg(long, global = true, value_name = "URL", conflicts_with_all = ["data_dir", "metastore"])]
    catalog: Option<String>,
    /// Data dir whose metadata store to use, without a server [default: ./floe-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Shared PostgreSQL metadata store (postgres:// URL) instead of DIR/catalog.db.
    #[arg(long, global = true, value_name = "URL")]
    metastore: Option<String>,
    /// Without a server: a storage URL under which new warehouses may keep their files,
    /// repeatable, as `floe serve --allowed-storage-root` [default: file://DIR/warehouse only].
    /// With --catalog, the server's own setting applies.
    #[arg(
        long = "allowed-storage-root",
        global = true,
        value_name = "URL",
        conflicts_with = "catalog"
    )]
    allowed_storage_roots: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum WarehouseCommand {
    /// Register a warehouse; its storage is reached once first, so a wrong bucket, endpoint or
    /// key fails now, not on the first commit.
    Create {
        /// Lowercase letters, digits, '-' and '_', at most 63 characters.
        name: String,
        /// Where its files go: s3://bucket/prefix or file:///absolute/dir.
        #[arg(long, value_name = "URL")]
        storage_url: String,
        /// A storage setting, repeatable: s3.endpoint, s3.region, s3.path-style-access,
        /// s3.allow-http, s3.access-key-id, s3.secret-access-key, s3.session-token,
        /// s3.share-credentials; delegated access for clients: s3.access-delegation
        /// (vended-credentials, remote-signing), s3.default-access-delegation, s3.sts-role-arn,
        /// s3.sts-endpoint, s3.credentials-duration-seconds (docs/security.md). Nothing comes
        /// from the server's environment: without keys, requests to the bucket go unsigned
        /// (public buckets only).
        #[arg(long = "property", short = 'p', value_name = "KEY=VALUE", value_parser = key_value)]
        properties: Vec<(String, String)>,
    },
    /// List every warehouse, the default first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one warehouse as JSON (secrets masked).
    Show { name: String },
    /// Unregister an empty warehouse (drop its namespaces first); its files stay where they are.
    Drop { name: String },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

pub fn run(args: WarehouseArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async {
        let target = match &args.catalog {
            Some(url) => Target::Server(Server::new(url)?),
            None => {
                let options = crate::data_dir_options(&args.data_dir, &args.metastore, &None);
                let warehouses = floe_commit::open::open_warehouses(&options)
                    .await
                    .map_err(|err| err.to_string())?;
                // The same rule, and the same default, as `floe serve` on this data dir.
                let config = floe_catalog::ServerConfig {
                    data_dir: options.data_dir.clone(),
                    allowed_storage_roots: args.allowed_storage_roots.clone(),
                    ..floe_catalog::ServerConfig::default()
                };
                let roots = config
                    .allowed_storage_roots()
                    .map_err(|err| format!("--allowed-storage-root: {err}"))?;
                Target::Store(Box::new(warehouses.with_allowed_roots(roots)))
            }
        };
        match args.command {
            WarehouseCommand::Create {
                name,
                storage_url,
                properties,
            } => {
                let created = target
                    .create(NewWarehouse {
                        name,
                        storage_url,
                        properties: properties.into_iter().collect(),
                    })
                    .await?;
                println!(
                    "created warehouse {} at {}; clients use prefix {} (or ?warehouse={} in /v1/config)",
                    created["name"].as_str().unwrap_or_default(),
                    created["storage-url"].as_str().unwrap_or_default(),
                    created["prefix"].as_str().unwrap_or_default(),
                    created["name"].as_str().unwrap_or_default(),
                );
            }
            WarehouseCommand::List { json } => {
                let warehouses = target.list().await?;
                if json {
                    println!("{}", pretty(&Value::Array(warehouses)));
                } else {
                    print_table(&warehouses);
                }
            }
            WarehouseCommand::Show { name } => println!("{}", pretty(&target.show(&name).await?)),
            WarehouseCommand::Drop { name } => {
                target.drop_warehouse(&name).await?;
                println!("dropped warehouse {name}");
            }
        }
        Ok(())
    })
}

/// Where the command's requests go. Both answer in the management API's JSON shape, so printing
/// is the same either way.
enum Target {
    Server(Server),
    Store(Box<Warehouses>),
}

impl Target {
    async fn create(&self, new: NewWarehouse) -> Result<Value, String> {
        match self {
            Target::Server(server) => {
                let body = json!({
                    "name": new.name,
                    "storage-url": new.storage_url,
                    "properties": new.properties,
                });
                server
                    .send(server.client.post(server.url("")).json(&body))
                    .await
            }
            Target::Store(warehouses) => Ok(to_json(
                &warehouses
                    .create(new)
                    .await
                    .map_err(|err| err.to_string())?,
            )),
        }
    }

    async fn list(&self) -> Result<Vec<Value>, String> {
        match self {
            Target::Server(server) => {
                let listed = server.send(server.client.get(server.url(""))).await?;
                Ok(listed["warehouses"].as_array().cloned().unwrap_or_default())
            }
            Target::Store(warehouses) => Ok(warehouses
                .list()
                .await
                .map_err(|err| err.to_string())?
                .iter()
                .map(to_json)
                .collect()),
        }
    }

    async fn show(&self, name: &str) -> Result<Value, String> {
        match self {
            Target::Server(server) => server.send(server.client.get(server.url(name))).await,
            Target::Store(warehouses) => Ok(to_json(
                &warehouses
                    .describe(name)
                    .await
                    .map_err(|err| err.to_string())?,
            )),
        }
    }

    async fn drop_warehouse(&self, name: &str) -> Result<(), String> {
        match self {
            Target::Server(server) => server
                .send(server.client.delete(server.url(name)))
                .await
                .map(|_| ()),
            Target::Store(warehouses) => warehouses
                .drop_warehouse(name)
                .await
                .map_err(|err| err.to_string()),
        }
    }
}

/// The management API of a running server.
struct Server {
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn new(url: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        Ok(Self {
            base: format!("{}/management/v1/warehouses", url.trim_end_matches('/')),
            client,
        })
    }

    fn url(&self, name: &str) -> String {
        if name.is_empty() {
            self.base.clone()
        } else {
            // Names are plain ASCII when valid; anything else is escaped, and the server refuses it.
            let escaped: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            format!("{}/{escaped}", self.base)
        }
    }

    /// Sends the request; an error response becomes its `ErrorModel` message.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .send()
            .await
            .map_err(|err| format!("cannot reach the server: {err}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| format!("cannot read the server's answer: {err}"))?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        Err(format!("{message} (HTTP {})", status.as_u16()))
    }
}

/// A warehouse in the management API's JSON shape.
fn to_json(info: &WarehouseInfo) -> Value {
    let mut value = json!({
        "name": info.name,
        "prefix": info.name,
        "storage-url": info.storage_url,
        "properties": info.properties,
        "default": info.default,
    });
    if let Some(created) = info.created_at_ms {
        value["created-at-ms"] = json!(created);
    }
    value
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn print_table(warehouses: &[Value]) {
    let rows: Vec<[String; 3]> = warehouses
        .iter()
        .map(|warehouse| {
            let settings: BTreeMap<String, Value> = warehouse["properties"]
                .as_object()
                .map(|map| map.clone().into_iter().collect())
                .unwrap_or_default();
            let settings = settings
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ");
            let mut name = warehouse["name"].as_str().unwrap_or_default().to_string();
            if warehouse["default"].as_bool() == Some(true) {
                name.push_str(" (default)");
            }
            [
                name,
                warehouse["storage-url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                settings,
            ]
        })
        .collect();
    let header = ["warehouse", "storage", "settings"];
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .chain([header[column].len()])
            .max()
            .unwrap_or(0)
    };
    let (name_width, storage_width) = (width(0), width(1));
    println!(
        "{:<name_width$}  {:<storage_width$}  {}",
        header[0], header[1], header[2]
    );
    for row in &rows {
        println!(
            "{:<name_width$}  {:<storage_width$}  {}",
            row[0], row[1], row[2]
        );
    }
    println!(
        "{} warehouse{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}
