//! `floe maintenance`: what the server's scheduler did (`history`), and each table's maintenance
//! settings (`show`, `set`), through a running server's management API.
//!
//! (`floe maintain` runs a job by hand; this command looks at and steers the automatic ones.)

use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args, Debug)]
#[command(
    long_about = "Inspect and steer the maintenance a running Floe server does by itself: \
        compaction, snapshot expiry, manifest rewrite and unreferenced-file removal, by each \
        table's settings. Settings are floe.maintenance.* properties on the table, its namespace \
        or its warehouse (the most specific wins; `show` tells where each comes from). Defaults \
        follow S3 Tables: 512 MiB target files, keep 1 snapshot, expire after 120 hours, remove \
        unreferenced files after 3 days."
)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    command: MaintenanceCommand,
    /// URL of the running Floe server.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8181"
    )]
    catalog: String,
    /// Warehouse of the table [default: the server's default warehouse].
    #[arg(long, global = true)]
    warehouse: Option<String>,
}

#[derive(Subcommand, Debug)]
enum MaintenanceCommand {
    /// Recorded job runs, newest first (jobs that changed something or failed, and every scrub),
    /// with the number of scrub findings each job's table has open now.
    History {
        /// Only this table (namespace.table; a nested namespace as a.b.table).
        #[arg(long)]
        table: Option<String>,
        /// Only this kind: compaction, snapshot-expiry, manifest-rewrite, orphan-removal, scrub.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A table's effective settings and where each comes from.
    Show {
        /// namespace.table
        table: String,
    },
    /// Set (KEY=VALUE) or remove (--remove KEY) a table's settings, e.g.
    /// floe.maintenance.compaction.target-file-size-bytes=134217728.
    Set {
        /// namespace.table
        table: String,
        #[arg(value_name = "KEY=VALUE", value_parser = key_value)]
        updates: Vec<(String, String)>,
        /// A setting to remove, so that the namespace's, warehouse's or built-in value applies.
        #[arg(long = "remove", value_name = "KEY")]
        removals: Vec<String>,
    },
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// `a.b.t` → (["a", "b"], "t").
fn split_table(text: &str) -> Result<(Vec<String>, String), String> {
    match text.rsplit_once('.') {
        Some((namespace, table)) if !namespace.is_empty() && !table.is_empty() => Ok((
            namespace.split('.').map(str::to_string).collect(),
            table.to_string(),
        )),
        _ => Err(format!("expected namespace.table, got {text:?}")),
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>()
}

pub fn run(args: MaintenanceArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        let base = args.catalog.trim_end_matches('/').to_string();
        let api = Api { client, base };
        match args.command {
            MaintenanceCommand::History {
                table,
                kind,
                limit,
                json,
            } => {
                let mut query: Vec<(String, String)> = vec![("limit".into(), limit.to_string())];
                if let Some(warehouse) = &args.warehouse {
                    query.push(("warehouse".into(), warehouse.clone()));
                }
                if let Some(table) = &table {
                    let (namespace, name) = split_table(table)?;
                    query.push(("namespace".into(), namespace.join("\u{1f}")));
                    query.push(("table".into(), name));
                }
                if let Some(kind) = kind {
                    query.push(("kind".into(), kind));
                }
                let url = format!("{}/management/v1/maintenance/jobs", api.base);
                let jobs = api.send(api.client.get(url).query(&query)).await?;
                let jobs = jobs["jobs"].as_array().cloned().unwrap_or_default();
                if json {
                    println!("{}", pretty(&Value::Array(jobs)));
                } else {
                    print_history(&jobs);
                }
            }
            MaintenanceCommand::Show { table } => {
                let url = api.settings_url(args.warehouse.as_deref(), &table).await?;
                print_settings(&api.send(api.client.get(url)).await?);
            }
            MaintenanceCommand::Set {
                table,
                updates,
                removals,
            } => {
                if updates.is_empty() && removals.is_empty() {
                    return Err("nothing to set: give KEY=VALUE pairs or --remove KEY".into());
                }
                let url = api.settings_url(args.warehouse.as_deref(), &table).await?;
                let updates: std::collections::BTreeMap<String, String> =
                    updates.into_iter().collect();
                let body = json!({ "updates": updates, "removals": removals });
                print_settings(&api.send(api.client.post(url).json(&body)).await?);
            }
        }
        Ok(())
    })
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn settings_url(&self, warehouse: Option<&str>, table: &str) -> Result<String, String> {
        let (namespace, name) = split_table(table)?;
        let warehouse = match warehouse {
            Some(warehouse) => warehouse.to_string(),
            None => {
                let config = self
                    .send(self.client.get(format!("{}/v1/config", self.base)))
                    .await?;
                config["overrides"]["prefix"]
                    .as_str()
                    .ok_or("the server's /v1/config names no prefix")?
                    .to_string()
            }
        };
        Ok(format!(
            "{}/management/v1/warehouses/{}/namespaces/{}/tables/{}/maintenance",
            self.base,
            encode(&warehouse),
            encode(&namespace.join("\u{1f}")),
            encode(&name)
        ))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .send()
            .await
            .map_err(|err| format!("cannot reach the server at {}: {err}", self.base))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|err| format!("cannot read the server's answer: {err}"))?;
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

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn print_settings(response: &Value) {
    let Some(settings) = response["settings"].as_object() else {
        println!("{}", pretty(response));
        return;
    };
    let width = settings.keys().map(String::len).max().unwrap_or(0);
    for (name, setting) in settings {
        println!(
            "{name:<width$}  {:<12}  ({})",
            setting["value"].as_str().unwrap_or_default(),
            setting["source"].as_str().unwrap_or_default()
        );
    }
}

fn print_history(jobs: &[Value]) {
    if jobs.is_empty() {
        println!("no maintenance jobs recorded");
        return;
    }
    let rows: Vec<[String; 7]> = jobs
        .iter()
        .map(|job| {
            let namespace: Vec<&str> = job["namespace"]
                .as_array()
                .map(|levels| levels.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let started = job["started-at-ms"].as_i64().unwrap_or_default();
            let took = job["finished-at-ms"]
                .as_i64()
                .map(|end| format!("{:.1}s", (end - started) as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            let stats = job["stats"]
                .as_object()
                .map(|stats| {
                    stats
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let detail = match job["error"].as_str() {
                Some(error) => format!("error: {error}"),
                None => stats,
            };
            [
                format_time(started),
                format!(
                    "{}/{}.{}",
                    job["warehouse"].as_str().unwrap_or_default(),
                    namespace.join("."),
                    job["table"].as_str().unwrap_or_default()
                ),
                job["kind"].as_str().unwrap_or_default().to_string(),
                job["outcome"].as_str().unwrap_or_default().to_string(),
                took,
                // The table's scrub findings open now, whatever the job.
                job["open-findings"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |open| open.to_string()),
                detail,
            ]
        })
        .collect();
    let header = [
        "started (UTC)",
        "table",
        "job",
        "outcome",
        "took",
        "open findings",
        "details",
    ];
    print_rows(&header, &rows);
}

/// Prints `rows` under `header`, every column but the last padded to its widest cell.
pub(crate) fn print_rows<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `YYYY-MM-DD HH:MM:SS`, UTC.
pub(crate) fn format_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| millis.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_861_845_000), "2026-11-28 10:30:45");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn table_names_split_at_the_last_dot() {
        assert_eq!(
            split_table("a.b.t").unwrap(),
            (vec!["a".to_string(), "b".to_string()], "t".to_string())
        );
        assert!(split_table("t").is_err());
        assert!(split_table(".t").is_err());
    }
}
