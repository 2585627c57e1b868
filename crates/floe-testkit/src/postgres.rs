//! A throwaway PostgreSQL cluster: the real server, in a temporary directory, on a free port of
//! 127.0.0.1.
//!
//! [`TestPostgres::start`] runs `initdb` and `postgres` from the PostgreSQL installation whose
//! `initdb` is first on `PATH` (else `/usr/lib/postgresql/15/bin`); without one it panics, so tests
//! that need PostgreSQL fail instead of being skipped. Both refuse to run as root, and tests often
//! do: then they run as the unprivileged system user `floe-pg`, created on first use, through
//! `setpriv` (which execs, so the server is this process's own child and signals reach it). The
//! server listens on 127.0.0.1 only (and a socket in its directory), trusts local connections as
//! the superuser `postgres`, and keeps `fsync` on: what it acknowledged survives [`TestPostgres::kill`].
//!
//! Starting a cluster takes a second or two, a database tens of milliseconds: tests share one
//! cluster per test binary ([`TestPostgres::shared`]) and take a fresh database each
//! ([`TestPostgres::create_database`]). Outage tests start their own cluster and
//! [`kill`](TestPostgres::kill) / [`restart`](TestPostgres::restart) it.
//!
//! [`TestPostgres::start_with_tls`] starts a cluster that takes TCP connections over TLS only
//! (`hostssl` in `pg_hba.conf`; a plain connection is refused), with a server certificate for the
//! names the test asks for, signed by a certificate authority made for that cluster
//! ([`crate::tls::TestCa`]); [`TestPostgres::ca_cert`] is the file a client trusts.
//! [`TestPostgres::start_with_client_certs`] also wants a client certificate from that CA
//! ([`TestPostgres::client_cert`]).
//!
//! A cluster stops and its directory goes when it is dropped; the shared one when the test process
//! exits. One left behind by a test process that was itself killed is removed by the next start.

use std::fs;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The system user the server runs as when the tests run as root.
const SERVER_USER: &str = "floe-pg";
/// The cluster's superuser, which every URL connects as.
const SUPERUSER: &str = "postgres";
/// Temporary directories of clusters start with this.
const DIR_PREFIX: &str = "floe-pg-";

const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;

unsafe extern "C" {
    safe fn geteuid() -> u32;
    #[link_name = "kill"]
    safe fn send_signal(pid: i32, signal: i32) -> i32;
    safe fn atexit(callback: extern "C" fn()) -> i32;
}

/// A running PostgreSQL cluster (see the module docs). Stopped and deleted when dropped.
pub struct TestPostgres {
    bindir: PathBuf,
    /// `(uid, gid)` the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    /// Holds `data/`, `socket/`, `server.log` and `owner.pid`.
    dir: PathBuf,
    port: u16,
    /// The postmaster, leader of its own process group; `None` while stopped.
    server: Mutex<Option<Child>>,
    next_database: AtomicU64,
    /// The certificate of the CA that signed the server's, when the cluster takes TLS.
    ca_cert: Option<PathBuf>,
    /// The superuser's client certificate and key, when the cluster wants one.
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// How a cluster takes TLS.
struct TlsSetup<'a> {
    server_names: &'a [&'a str],
    client_certs: bool,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();

impl TestPostgres {
    /// Creates a cluster in a new temporary directory and starts it. Panics, with the reason and
    /// the server's log, if it cannot.
    pub fn start() -> Self {
        Self::start_cluster(None)
    }

    /// Like [`start`](Self::start), but TCP connections must use TLS: `ssl = on` with a server
    /// certificate for `server_names` (e.g. `["localhost"]`, or `["127.0.0.1"]`), signed by a CA
    /// made for this cluster, whose certificate is [`ca_cert`](Self::ca_cert); `pg_hba.conf` has
    /// `hostssl` lines only, so a plain TCP connection is refused. (`psql` here negotiates TLS by
    /// itself, without checking the certificate.)
    pub fn start_with_tls(server_names: &[&str]) -> Self {
        Self::start_cluster(Some(TlsSetup {
            server_names,
            client_certs: false,
        }))
    }

    /// Like [`start_with_tls`](Self::start_with_tls), and every TCP connection must also present
    /// a client certificate from the cluster's CA naming its user (`clientcert=verify-full`):
    /// [`client_cert`](Self::client_cert) is the superuser's. `psql` here presents it.
    pub fn start_with_client_certs(server_names: &[&str]) -> Self {
        Self::start_cluster(Some(TlsSetup {
            server_names,
            client_certs: true,
        }))
    }

    fn start_cluster(tls: Option<TlsSetup<'_>>) -> Self {
        let bindir = find_bindir();
        let run_as = server_user();
        remove_orphans();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("create a temporary directory for PostgreSQL")
            .keep();
        fs::write(dir.join("owner.pid"), std::process::id().to_string()).expect("write owner.pid");
        fs::create_dir(dir.join("socket")).expect("create the socket directory");
        if let Some((uid, gid)) = run_as {
            for path in [dir.clone(), dir.join("socket")] {
                chown(&path, Some(uid), Some(gid)).unwrap_or_else(|err| {
                    panic!("chown {} to {SERVER_USER}: {err}", path.display())
                });
            }
        }
        let mut cluster = Self {
            bindir,
            run_as,
            dir,
            port: 0,
            server: Mutex::new(None),
            next_database: AtomicU64::new(0),
            ca_cert: None,
            client_cert: None,
        };
        cluster.initdb();
        if let Some(tls) = tls {
            cluster.configure_tls(&tls);
        }
        // The free port may be taken by someone else before the server binds it: try a few.
        let mut attempts = 0;
        loop {
            attempts += 1;
            cluster.port = crate::free_port();
            match cluster.spawn() {
                Ok(()) => return cluster,
                Err(err) if attempts < 5 && err.contains("could not bind") => continue,
                Err(err) => panic!("PostgreSQL did not start: {err}"),
            }
        }
    }

    /// The cluster every test of this process shares, started on first use and stopped when the
    /// process exits.
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(|| {
            let cluster = TestPostgres::start();
            // Statics are never dropped: stop the cluster when the test binary exits.
            atexit(stop_shared);
            cluster
        })
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database` in this cluster.
    pub fn url_for(&self, database: &str) -> String {
        self.url_with_host("127.0.0.1", database)
    }

    /// The URL of `database` naming the server `host` (`localhost` or `127.0.0.1`: it listens on
    /// the latter), e.g. to check that a client compares the name with the certificate's.
    pub fn url_with_host(&self, host: &str, database: &str) -> String {
        format!("postgres://{SUPERUSER}@{host}:{}/{database}", self.port)
    }

    /// The certificate of the CA that signed the server's (PEM, mode 0600), of a cluster started
    /// with [`start_with_tls`](Self::start_with_tls). Panics for a cluster without TLS.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_cert
            .clone()
            .expect("the cluster was started without TLS (TestPostgres::start_with_tls)")
    }

    /// The superuser's client certificate and key files (PEM, mode 0600), of a cluster started
    /// with [`start_with_client_certs`](Self::start_with_client_certs). Panics for another.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        self.client_cert
            .clone()
            .expect("the cluster was started without client certificates")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Creates an empty database and returns its URL. It lives as long as the cluster.
    pub fn create_database(&self) -> String {
        self.create_database_with("")
    }

    /// Like [`create_database`](Self::create_database), with options for `CREATE DATABASE`, e.g.
    /// `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`.
    pub fn create_database_with(&self, options: &str) -> String {
        let name = format!(
            "test_{}",
            self.next_database.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name} {options}"));
        self.url_for(&name)
    }

    /// Runs `sql` in `database` as the superuser with `psql`; returns its unaligned output.
    /// Panics if it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let output =
            Command::new(self.tool("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    SUPERUSER,
                    "-d",
                    database,
                ])
                .args(["-c", sql])
                .env("PGCONNECT_TIMEOUT", "10")
                .env("LC_ALL", "C")
                .envs(self.client_cert.iter().flat_map(|(cert, key)| {
                    [("PGSSLCERT", cert.clone()), ("PGSSLKEY", key.clone())]
                }))
                .stdin(Stdio::null())
                .output()
                .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// SIGKILL to the server and all its backends at once: what a machine crash looks like to
    /// clients (only what the server fsynced survives). [`restart`](Self::restart) brings it back.
    pub fn kill(&self) {
        if let Some(mut server) = self.server().take() {
            let pid = server_pid(&server);
            send_signal(-pid, SIGKILL);
            let _ = server.wait();
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected, nothing is lost) if it is
    /// running, and starts it again on the same directory and port.
    pub fn restart(&self) {
        self.stop(SIGINT);
        // Right after a kill, the old server's lock file or shared memory may linger a moment.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.spawn() {
                Ok(()) => return,
                Err(_) if attempts < 10 => std::thread::sleep(Duration::from_millis(200)),
                Err(err) => panic!("PostgreSQL did not restart: {err}"),
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    fn server(&self) -> MutexGuard<'_, Option<Child>> {
        self.server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A command running `program` from the installation as the server's user.
    fn command(&self, program: &str) -> Command {
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(self.tool(program));
                command
            }
            None => Command::new(self.tool(program)),
        };
        command
            .current_dir(&self.dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        command
    }

    fn initdb(&self) {
        let output = self
            .command("initdb")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--username", SUPERUSER, "--auth=trust"])
            .args(["--encoding=UTF8", "--no-locale", "--no-instructions"])
            // The new cluster's files need not reach the disk before the server starts: it lives
            // in a temporary directory that no machine crash is expected to keep. The server
            // itself runs with fsync on.
            .arg("--no-sync")
            .output()
            .unwrap_or_else(|err| panic!("run initdb (through setpriv when root): {err}"));
        assert!(
            output.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes a CA, a server certificate for `names` and its key (all 0600, the server's own
    /// files owned by its user) into the cluster's directory, turns `ssl` on and allows TCP
    /// connections over TLS only.
    fn configure_tls(&mut self, tls: &TlsSetup<'_>) {
        let ca = crate::tls::TestCa::new("floe test CA");
        let server = ca.issue_server_cert(tls.server_names);
        let ca_cert = self.dir.join("ca.pem");
        ca.write_cert(&ca_cert);
        let cert_file = self.dir.join("server.crt");
        let key_file = self.dir.join("server.key");
        // The server's own copy of the CA, to check client certificates with.
        let server_ca = self.dir.join("server-ca.pem");
        crate::tls::write_private(&cert_file, server.cert_pem.as_bytes());
        crate::tls::write_private(&key_file, server.key_pem.as_bytes());
        ca.write_cert(&server_ca);
        if let Some((uid, gid)) = self.run_as {
            for path in [&cert_file, &key_file, &server_ca] {
                chown(path, Some(uid), Some(gid)).unwrap_or_else(|err| {
                    panic!("chown {} to {SERVER_USER}: {err}", path.display())
                });
            }
        }
        // Appended and rewritten in place, the files keep the owner initdb gave them.
        let config = self.data_dir().join("postgresql.conf");
        let mut settings = fs::OpenOptions::new()
            .append(true)
            .open(&config)
            .unwrap_or_else(|err| panic!("open {}: {err}", config.display()));
        std::io::Write::write_all(
            &mut settings,
            format!(
                "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
                cert_file.display(),
                key_file.display(),
                server_ca.display()
            )
            .as_bytes(),
        )
        .expect("write postgresql.conf");
        let client_cert = if tls.client_certs {
            let client = ca.issue_client_cert(SUPERUSER);
            let cert = self.dir.join("client.crt");
            let key = self.dir.join("client.key");
            crate::tls::write_private(&cert, client.cert_pem.as_bytes());
            crate::tls::write_private(&key, client.key_pem.as_bytes());
            self.client_cert = Some((cert, key));
            " clientcert=verify-full"
        } else {
            ""
        };
        // The socket stays open without TLS: it is the test's own.
        let hba = self.data_dir().join("pg_hba.conf");
        fs::write(
            &hba,
            format!("local all all trust\nhostssl all all 127.0.0.1/32 trust{client_cert}\n"),
        )
        .unwrap_or_else(|err| panic!("write {}: {err}", hba.display()));
        self.ca_cert = Some(ca_cert);
    }

    /// Starts the server and waits until it accepts connections. On failure, returns what the
    /// server logged meanwhile.
    fn spawn(&self) -> Result<(), String> {
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the server log");
        let mut server = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.join("socket"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            // Its own process group, so that `kill` reaches every backend and a Ctrl-C meant for
            // the tests does not stop it halfway.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn postgres: {err}"));
        let pid_file = self.data_dir().join("postmaster.pid");
        let pid = server.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let failure = loop {
            if let Ok(Some(status)) = server.try_wait() {
                break format!("postgres exited with {status}");
            }
            // The postmaster writes "ready" on the lock file's 8th line once it accepts
            // connections; the first line tells this server's file from a killed one's.
            let lock_file = fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = lock_file.lines().map(str::trim).collect();
            if lines.first() == Some(&pid.as_str()) && lines.get(7) == Some(&"ready") {
                *self.server() = Some(server);
                return Ok(());
            }
            if Instant::now() > deadline {
                send_signal(-server_pid(&server), SIGKILL);
                let _ = server.wait();
                break "postgres was not ready within 60 s".to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = fs::read(&log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
        Err(format!("{failure}; its log:\n{log}"))
    }

    /// Sends `signal` to the postmaster (SIGINT: fast shutdown) and waits for it to exit, killing
    /// its process group if it takes longer than 30 s.
    fn stop(&self, signal: i32) {
        let Some(mut server) = self.server().take() else {
            return;
        };
        let pid = server_pid(&server);
        send_signal(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        send_signal(-pid, SIGKILL);
        let _ = server.wait();
    }

    /// Kills the server, then the directory goes: nothing of the cluster is kept, so it needs no
    /// orderly shutdown (even an immediate one waits for every backend, seconds when the disk is
    /// busy). Never panics: it also runs at process exit.
    fn shutdown(&self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        cluster.shutdown();
    }
}

fn server_pid(server: &Child) -> i32 {
    i32::try_from(server.id()).expect("a pid fits in pid_t")
}

/// The directory of the first `initdb` on `PATH` (symlinks resolved), else of the newest Debian
/// installation under `/usr/lib/postgresql/<version>/bin`.
fn find_bindir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file());
    let debian = || {
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let initdb = entry.path().join("bin/initdb");
                initdb.is_file().then_some((version, initdb))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, initdb)| initdb)
    };
    let initdb = on_path.or_else(debian).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's `initdb` is neither on PATH nor under /usr/lib/postgresql/*/bin: \
             install the PostgreSQL server (Debian: postgresql) to run these tests; they are not \
             skipped"
        )
    });
    let initdb = fs::canonicalize(&initdb).unwrap_or(initdb);
    let bindir = initdb
        .parent()
        .expect("initdb in a directory")
        .to_path_buf();
    for tool in ["postgres", "psql"] {
        assert!(
            bindir.join(tool).is_file(),
            "`{tool}` is missing next to {}",
            initdb.display()
        );
    }
    bindir
}

/// `None` unless this process is root; then the uid and gid of [`SERVER_USER`], created if missing.
fn server_user() -> Option<(u32, u32)> {
    if geteuid() != 0 {
        return None;
    }
    let lookup = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let output = Command::new("id").args([flag, SERVER_USER]).output().ok()?;
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(ids) = lookup() {
        return Some(ids);
    }
    // Another test process may be creating it at the same time: only the lookup after decides.
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "--user-group"])
        .args(["--shell", "/usr/sbin/nologin", SERVER_USER])
        .status();
    Some(lookup().unwrap_or_else(|| {
        panic!(
            "PostgreSQL refuses to run as root, and the user {SERVER_USER:?} to run it as could \
             not be created with useradd"
        )
    }))
}

/// Removes clusters whose test process is gone without stopping them (it was killed).
fn remove_orphans() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_cluster = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(DIR_PREFIX));
        let owner = fs::read_to_string(dir.join("owner.pid")).unwrap_or_default();
        let Ok(owner) = owner.trim().parse::<u32>() else {
            continue;
        };
        if !is_cluster || process_named(owner).is_some() {
            continue;
        }
        let lock_file = fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
        if let Some(server) = lock_file
            .lines()
            .next()
            .and_then(|pid| pid.trim().parse().ok())
            && process_named(server).as_deref() == Some("postgres")
        {
            send_signal(-(server as i32), SIGKILL);
            send_signal(server as i32, SIGKILL);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The command name of process `pid`, if it is alive.
fn process_named(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_survive_kill_and_restart() {
        let cluster = TestPostgres::start();
        let url = cluster.create_database();
        let database = url.rsplit('/').next().unwrap().to_string();
        assert_ne!(cluster.create_database(), url, "databases are fresh");
        cluster.psql(
            &database,
            "CREATE TABLE t (x INT); INSERT INTO t VALUES (42)",
        );
        let listening = cluster.psql("postgres", "SHOW listen_addresses");
        assert_eq!(listening.trim(), "127.0.0.1");
        assert_eq!(cluster.psql("postgres", "SHOW fsync").trim(), "on");

        cluster.kill();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_err(),
            "a killed server still accepts connections"
        );
        cluster.restart();
        assert_eq!(cluster.psql(&database, "SELECT x FROM t").trim(), "42");
        cluster.restart();
        assert_eq!(cluster.psql(&database, "SELECT x FROM t").trim(), "42");

        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!dir.exists(), "the cluster's directory outlived it");
    }

    #[test]
    fn a_tls_cluster_takes_tcp_connections_over_tls_only() {
        use std::os::unix::fs::PermissionsExt;

        let cluster = TestPostgres::start_with_tls(&["localhost"]);
        let ssl = cluster.psql(
            "postgres",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert_eq!(ssl.trim(), "t", "psql's connection is not over TLS");
        let ca = cluster.ca_cert();
        assert!(
            fs::read_to_string(&ca)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        for file in [ca, cluster.dir.join("server.key")] {
            let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }

        let plain = Command::new(cluster.tool("psql"))
            .args(["-X", "-h", "127.0.0.1", "-p", &cluster.port().to_string()])
            .args(["-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 1"])
            .env("PGSSLMODE", "disable")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!plain.status.success(), "a plain connection was accepted");
        let refused = String::from_utf8_lossy(&plain.stderr);
        assert!(refused.contains("no encryption"), "{refused}");

        cluster.restart();
        assert_eq!(cluster.psql("postgres", "SHOW ssl").trim(), "on");
    }
}
