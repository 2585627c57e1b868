//! The `floe` command: runs the catalog server and shows its configuration.
//!
//! Configuration is layered, lowest precedence first: built-in defaults, a TOML file
//! (`--config`), `FLOE_*` environment variables, command-line flags. `floe config show` prints the
//! result, so what the server will do is never a guess.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use floe_catalog::ServerConfig;

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Floe: a managed Apache Iceberg table service",
    long_about = "Floe serves Apache Iceberg tables through the Iceberg REST catalog API. \
        With no set-up it keeps its catalog in SQLite and its tables in a local directory \
        (./floe-data); Spark, PyIceberg, DuckDB and iceberg-rust connect to it unchanged."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Iceberg REST catalog server (default: http://127.0.0.1:8181, data in ./floe-data).
    Serve(ConfigArgs),
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration `floe serve` would use with the same flags, as TOML.
    Show(ConfigArgs),
}

/// Every setting, each optional here so that unset flags fall through to the lower layers.
#[derive(Args, Debug, Default)]
struct ConfigArgs {
    /// TOML file with settings (keys as in `floe config show`).
    #[arg(long, env = "FLOE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1]. Only loopback unless you mean to expose it.
    #[arg(long, env = "FLOE_HOST")]
    host: Option<IpAddr>,
    /// Port to listen on [default: 8181]; 0 picks a free port (printed at start).
    #[arg(long, env = "FLOE_PORT")]
    port: Option<u16>,
    /// Directory for catalog.db (the metadata store) and warehouse/ (table files) [default: ./floe-data].
    #[arg(long, env = "FLOE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata store shared by replicas, as a postgres:// URL (password also from PGPASSWORD)
    /// [default: embedded SQLite, DIR/catalog.db].
    #[arg(long, env = "FLOE_METASTORE", value_name = "URL")]
    metastore: Option<String>,
    /// Pooled metadata-store connections per replica [default: 16].
    #[arg(long, env = "FLOE_METASTORE_MAX_CONNECTIONS", value_name = "N")]
    metastore_max_connections: Option<u32>,
    /// Longest wait for a metadata-store connection before a request gets a 503, in ms
    /// [default: 3000].
    #[arg(long, env = "FLOE_METASTORE_ACQUIRE_TIMEOUT_MS", value_name = "MS")]
    metastore_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL statement_timeout for metadata-store statements, in ms; 0 keeps the
    /// database's setting [default: 30000].
    #[arg(long, env = "FLOE_METASTORE_STATEMENT_TIMEOUT_MS", value_name = "MS")]
    metastore_statement_timeout_ms: Option<u64>,
    /// Name of the default warehouse; clients see it as the REST prefix [default: main].
    #[arg(long, env = "FLOE_WAREHOUSE")]
    warehouse: Option<String>,
    /// Largest request body accepted, in bytes [default: 33554432].
    #[arg(long, env = "FLOE_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// Attempts a commit gets when concurrent commits keep winning, before a 409 [default: 10].
    #[arg(long, env = "FLOE_COMMIT_MAX_ATTEMPTS")]
    commit_max_attempts: Option<u32>,
}

impl ConfigArgs {
    fn resolve(self) -> Result<ServerConfig, String> {
        let mut config = match &self.config {
            Some(path) => read_config_file(path)?,
            None => ServerConfig::default(),
        };
        if let Some(host) = self.host {
            config.host = host;
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(metastore) = self.metastore {
            config.metastore = Some(metastore);
        }
        if let Some(connections) = self.metastore_max_connections {
            config.metastore_max_connections = connections;
        }
        if let Some(timeout) = self.metastore_acquire_timeout_ms {
            config.metastore_acquire_timeout_ms = timeout;
        }
        if let Some(timeout) = self.metastore_statement_timeout_ms {
            config.metastore_statement_timeout_ms = timeout;
        }
        if let Some(warehouse) = self.warehouse {
            config.warehouse = warehouse;
        }
        if let Some(bytes) = self.max_request_bytes {
            config.max_request_bytes = bytes;
        }
        if let Some(attempts) = self.commit_max_attempts {
            config.commit_max_attempts = attempts;
        }
        validate(&config)?;
        Ok(config)
    }
}

fn read_config_file(path: &Path) -> Result<ServerConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read config file {}: {err}", path.display()))?;
    toml::from_str(&text).map_err(|err| format!("invalid config file {}: {err}", path.display()))
}

fn validate(config: &ServerConfig) -> Result<(), String> {
    let name_ok = !config.warehouse.is_empty()
        && config
            .warehouse
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "warehouse name {:?} must be non-empty ASCII letters, digits, '-' or '_'",
            config.warehouse
        ));
    }
    if let Some(url) = &config.metastore
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err("metastore must be a postgres:// URL".into());
    }
    if config.metastore_max_connections == 0 {
        return Err("metastore-max-connections must be at least 1".into());
    }
    if config.metastore_acquire_timeout_ms == 0 {
        return Err("metastore-acquire-timeout-ms must be at least 1".into());
    }
    if config.max_request_bytes < 1024 {
        return Err("max-request-bytes must be at least 1024".into());
    }
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for people at a terminal; logs redirected to files stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("FLOE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|config| {
            init_logging();
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|err| format!("cannot start the async runtime: {err}"))?;
            runtime
                .block_on(floe_catalog::serve(config, shutdown_signal()))
                .map_err(|err| err.to_string())
        }),
        Command::Config {
            command: ConfigCommand::Show(args),
        } => args.resolve().and_then(|config| {
            let text = toml::to_string_pretty(&config)
                .map_err(|err| format!("cannot print configuration: {err}"))?;
            print!("{text}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("floe: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<ServerConfig, String> {
        let cli =
            Cli::try_parse_from(["floe", "serve"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(args) => args.resolve(),
            Command::Config { .. } => unreachable!("parsed a serve command"),
        }
    }

    #[test]
    fn defaults_are_loopback_and_local() {
        let config = resolve(&[]).unwrap();
        assert_eq!(config, ServerConfig::default());
        assert!(config.host.is_loopback());
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(&file, "port = 9000\nwarehouse = \"lake\"\n").unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file, "--port", "9100"]).unwrap();
        assert_eq!(config.port, 9100, "flag beats file");
        assert_eq!(config.warehouse, "lake", "file beats default");
        assert_eq!(
            config.max_request_bytes,
            ServerConfig::default().max_request_bytes
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(&file, "prot = 9000\n").unwrap();
        let err = resolve(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = resolve(&["--warehouse", "../x"]).unwrap_err();
        assert!(err.contains("warehouse name"), "{err}");
        let err = resolve(&["--metastore", "mysql://db/floe"]).unwrap_err();
        assert!(err.contains("metastore"), "{err}");
    }

    #[test]
    fn metastore_pool_settings_layer_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "metastore-max-connections = 4\nmetastore-acquire-timeout-ms = 500\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file, "--metastore-acquire-timeout-ms", "750"]).unwrap();
        assert_eq!(config.metastore_max_connections, 4, "file beats default");
        assert_eq!(config.metastore_acquire_timeout_ms, 750, "flag beats file");
        assert_eq!(
            config.metastore_statement_timeout(),
            Some(std::time::Duration::from_secs(30))
        );
        let config = resolve(&["--metastore-statement-timeout-ms", "0"]).unwrap();
        assert_eq!(config.metastore_statement_timeout(), None);
        let err = resolve(&["--metastore-max-connections", "0"]).unwrap_err();
        assert!(err.contains("metastore-max-connections"), "{err}");
        let err = resolve(&["--metastore-acquire-timeout-ms", "0"]).unwrap_err();
        assert!(err.contains("metastore-acquire-timeout-ms"), "{err}");
    }

    #[test]
    fn metastore_is_embedded_unless_a_url_is_given() {
        assert_eq!(resolve(&[]).unwrap().metastore, None);
        let url = "postgres://floe@127.0.0.1:5432/floe";
        let config = resolve(&["--metastore", url]).unwrap();
        assert_eq!(config.metastore.as_deref(), Some(url));
    }
}
