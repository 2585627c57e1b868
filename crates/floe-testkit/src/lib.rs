//! Starts the real things Floe's tests and benchmarks need, so that no test re-implements a
//! launcher: a `floe serve` process on a free loopback port with its own data directory.
//!
//! The server is the real binary, not an in-process router: tests see exactly what users see,
//! and crash tests can SIGKILL it. The binary is found next to the test executable in cargo's
//! target directory (brought up to date with `cargo build -p floe` once per test process), or at
//! `$FLOE_BIN`.
//!
//! Several servers on one PostgreSQL database and one data dir are replicas of one catalog
//! ([`FloeServer::start_replica`]): they share the metadata store and the warehouse.
//!
//! [`postgres::TestPostgres`] is a throwaway PostgreSQL cluster on a free loopback port, and
//! [`seaweedfs::TestS3`] a throwaway S3 server (SeaweedFS) for `s3://` warehouses; [`tls::TestCa`]
//! a certificate authority for servers started with TLS.

#[cfg(feature = "iceberg")]
pub mod iceberg_data;
pub mod postgres;
pub mod seaweedfs;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The warehouse prefix a default server hands out.
pub const DEFAULT_PREFIX: &str = "main";

/// A running `floe serve`. Killed when dropped.
pub struct FloeServer {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Keeps a temporary data dir alive as long as the server.
    _temp: Option<TempDir>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

impl FloeServer {
    /// A server on a fresh temporary data dir.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// A server on a fresh temporary data dir, with extra `floe serve` flags.
    pub fn start_with_args(args: &[&str]) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("floe-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Self::launch(&data_dir, args);
        server._temp = Some(temp);
        server
    }

    /// A server on a fresh temporary data dir, with extra `floe serve` flags and environment
    /// variables (e.g. `AWS_ACCESS_KEY_ID` for an S3 warehouse).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("floe-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Self::prepare(&data_dir, args);
        server.extra_env = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        server._temp = Some(temp);
        server.spawn();
        server
    }

    /// A server on an existing data dir (e.g. to restart after a crash).
    pub fn start_in(data_dir: &Path) -> Self {
        Self::launch(data_dir, &[])
    }

    /// A server on an existing data dir, with extra `floe serve` flags (not `--data-dir`,
    /// `--host` or `--port`, which the testkit sets).
    pub fn start_in_with_args(data_dir: &Path, args: &[&str]) -> Self {
        Self::launch(data_dir, args)
    }

    /// A replica: a server whose metadata store is the PostgreSQL database at `metastore` and
    /// whose warehouse is `data_dir/warehouse`, shared with every other replica started on the
    /// same two (the SQLite file `data_dir/catalog.db` is not used). Extra `floe serve` flags go
    /// in `args`, but not `--data-dir`, `--host` or `--port`, which the testkit sets. The data dir
    /// is the caller's to remove.
    pub fn start_replica(metastore: &str, data_dir: &Path, args: &[&str]) -> Self {
        let mut all = vec!["--metastore", metastore];
        all.extend_from_slice(args);
        Self::launch(data_dir, &all)
    }

    fn launch(data_dir: &Path, args: &[&str]) -> Self {
        let mut server = Self::prepare(data_dir, args);
        server.spawn();
        server
    }

    fn prepare(data_dir: &Path, args: &[&str]) -> Self {
        let log_path = data_dir.with_extension(format!("log.{}", unique()));
        std::fs::create_dir_all(data_dir).expect("create data dir");
        Self {
            child: None,
            port: 0,
            data_dir: data_dir.to_path_buf(),
            log_path,
            _temp: None,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
        }
    }

    /// Servers sharing a PostgreSQL store must share the key that seals its secrets (the embedded
    /// store generates one in its data dir): every test server on a shared store gets this one,
    /// unless the test sets `FLOE_SECRET_KEY` itself.
    fn shared_store_key(&self) -> Option<(&'static str, &'static str)> {
        let shared = self.extra_args.iter().any(|arg| arg == "--metastore");
        let own = self
            .extra_env
            .iter()
            .any(|(name, _)| name == "FLOE_SECRET_KEY");
        // 32 bytes of 0x2a, base64: a test key, never one to deploy.
        (shared && !own).then_some((
            "FLOE_SECRET_KEY",
            "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
        ))
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log_path).expect("create server log");
        let mut child = Command::new(floe_binary())
            .arg("serve")
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .envs(self.shared_store_key())
            .envs(self.extra_env.iter().map(|(name, value)| (name, value)))
            .env(
                "FLOE_LOG",
                std::env::var("FLOE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn floe serve");
        let stdout = child.stdout.take().expect("server stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("floe catalog listening on ") {
                    let _ = sender.send(address.to_string());
                }
            }
        });
        let address = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "floe serve did not start within 30 s; its log:\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
        };
        self.port = address
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("port in the listening line");
        self.child = Some(child);
    }

    /// `http://127.0.0.1:<port>`
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>/v1/<prefix>`: the base of every catalog route.
    pub fn api(&self) -> String {
        format!("{}/v1/{DEFAULT_PREFIX}", self.uri())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.data_dir.join("warehouse")
    }

    /// The server's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flushing. What a power cut or OOM kill looks like to the store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Starts the server again on the same data dir, flags and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for FloeServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Path of the `floe` binary: `$FLOE_BIN`, or cargo's target dir next to the running test.
pub fn floe_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/floe
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable inside a cargo target dir");
    let binary = profile_dir.join(format!("floe{}", std::env::consts::EXE_SUFFIX));
    // Tests must run the server built from the current source, not whatever binary an earlier
    // build left: `cargo test -p floe-e2e` does not rebuild other packages' binaries by itself. A
    // no-op build takes well under a second.
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let release = profile_dir
            .file_name()
            .is_some_and(|name| name == "release");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "--quiet", "-p", "floe", "--bin", "floe"]);
        // `cargo test` gives the test process the variables of the crate under test. Build
        // scripts (ring's) declare some of them with `rerun-if-env-changed`, which cargo checks
        // against its own environment: inherited, they would make this build and the next
        // `cargo build` from a shell each rebuild half the tree.
        for (name, _) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            let per_crate = name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_MANIFEST_LINKS"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if per_crate {
                cargo.env_remove(name);
            }
        }
        if release {
            cargo.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cargo.arg("--target-dir").arg(target_dir);
        }
        let status = cargo.status().expect("run cargo build -p floe");
        assert!(status.success(), "cargo build -p floe failed");
    });
    binary
}

/// A free TCP port on 127.0.0.1 (racy by nature; prefer `--port 0` where the caller can read the
/// port back, as [`FloeServer`] does).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind 127.0.0.1:0")
}

/// A small HTTP client for raw REST calls in tests.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Reads an error response body and returns `(type, code)` from the spec's ErrorModel.
pub async fn error_model(response: reqwest::Response) -> (String, u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = &body["error"];
    assert_eq!(
        error["code"].as_u64(),
        Some(u64::from(status)),
        "ErrorModel code must equal the HTTP status; body: {body}"
    );
    (
        error["type"].as_str().unwrap_or_default().to_string(),
        status,
        error["message"].as_str().unwrap_or_default().to_string(),
    )
}
