//! `floe serve`'s flags for what the server tells its operators: metrics and log format.

use std::path::PathBuf;

use clap::Args;
use floe_catalog::ServerConfig;
use floe_catalog::config::LogFormat;

#[derive(Args, Debug, Default)]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics (GET /metrics) on this port of the same address instead of the
    /// main port, e.g. to expose them to a scraper but not the catalog [default: the main port].
    #[arg(long, env = "FLOE_METRICS_PORT", value_name = "PORT")]
    metrics_port: Option<u16>,
    /// A file holding a token that may read /metrics (Authorization: Bearer TOKEN) when auth is
    /// on, so that a scraper needs no principal; without it /metrics needs the admin privilege.
    /// The token is never logged [default: none].
    #[arg(long, env = "FLOE_METRICS_TOKEN_FILE", value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Log lines as json (one object per line), text, or auto: JSON when stderr is not a
    /// terminal [default: auto].
    #[arg(long, env = "FLOE_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

impl TelemetryArgs {
    /// Flags over what the file (or the defaults) said.
    pub fn apply(&self, config: &mut ServerConfig) {
        if self.metrics_port.is_some() {
            config.metrics_port = self.metrics_port;
        }
        if self.metrics_token_file.is_some() {
            config
                .metrics_token_file
                .clone_from(&self.metrics_token_file);
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
    }
}

/// Whether log lines are JSON: as asked, or when stderr is not a terminal.
pub fn json_logs(format: LogFormat) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    }
}

/// The log format of the commands that take no `--log-format` (all but `floe serve`): what
/// `FLOE_LOG_FORMAT` says, else text, since people run them and read what they print.
pub fn log_format_from_env() -> LogFormat {
    match std::env::var("FLOE_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("auto") => LogFormat::Auto,
        _ => LogFormat::Text,
    }
}
