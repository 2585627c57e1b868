//! `floe secrets`: the secrets sealed in the metadata store. `reseal` brings every one of them
//! under the current secret key (after a rotation) and reports what is left, so that an operator
//! knows when a previous key can be dropped.
//!
//! It opens the store directly (a data dir's `catalog.db`, or `--metastore`), without the pass a
//! server runs at start, runs that pass itself and prints what it did.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
#[command(
    long_about = "The secrets Floe keeps in its metadata store (registered warehouses' storage \
        secrets, token signing keys' private halves) are sealed with the secret key \
        (FLOE_SECRET_KEY, or --secret-key-file / FLOE_SECRET_KEY_FILE; the embedded store's \
        DIR/secret.key otherwise).\n\n\
        To rotate it: give every server the new key as its key and the old one as a previous key \
        (--previous-secret-key-file, repeatable, or FLOE_PREVIOUS_SECRET_KEY_FILES; \
        FLOE_PREVIOUS_SECRET_KEYS for keys themselves) and restart them: each start re-seals \
        what the old key sealed. Then run `floe secrets reseal` with the same keys: once it \
        reports 0 left, the old key can be dropped everywhere. See docs/security.md."
)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Subcommand, Debug)]
enum SecretsCommand {
    /// Seal every stored secret with the current key: values sealed with a previous key are
    /// re-sealed, values stored before sealing existed are sealed. Prints how many, and every
    /// value it could not bring under the key (by where it is and which key sealed it, never the
    /// value); exits 1 if any is left. Safe while servers run; running it again changes nothing.
    Reseal(ResealArgs),
}

#[derive(Args, Debug)]
struct ResealArgs {
    /// Data dir holding catalog.db [default: ./floe-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The shared PostgreSQL metadata store (postgres:// URL) instead of DIR/catalog.db.
    #[arg(long, value_name = "URL")]
    metastore: Option<String>,
    /// File holding the current (new) key, 32 bytes in base64 [default: FLOE_SECRET_KEY_FILE,
    /// else DIR/secret.key for the embedded store]. FLOE_SECRET_KEY, the key itself, comes first
    /// when it is set, as for `floe serve`.
    #[arg(long, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// File holding a previous (old) key, repeatable [default: FLOE_PREVIOUS_SECRET_KEY_FILES;
    /// keys themselves in FLOE_PREVIOUS_SECRET_KEYS].
    #[arg(long = "previous-secret-key-file", value_name = "FILE")]
    previous_secret_key_files: Vec<PathBuf>,
}

pub fn run(args: SecretsArgs) -> Result<(), String> {
    match args.command {
        SecretsCommand::Reseal(args) => reseal(args),
    }
}

fn reseal(args: ResealArgs) -> Result<(), String> {
    let mut options = crate::data_dir_options(&args.data_dir, &args.metastore, &None);
    options.secret_key_file = args.secret_key_file;
    options.previous_secret_key_files = args.previous_secret_key_files;
    options.seal_on_open = false;
    let runtime = crate::runtime()?;
    let report = runtime.block_on(async {
        let store = floe_commit::open::open_store(&options).await?;
        store
            .secrets()
            .reseal_secrets()
            .await
            .map_err(|err| err.to_string())
    })?;
    println!(
        "secret key {}: re-sealed {} value(s) sealed with a previous key, sealed {} value(s) \
         stored in the clear; {} left",
        report.key_id,
        report.resealed,
        report.sealed,
        report.left.len()
    );
    if report.left.is_empty() {
        return Ok(());
    }
    for why in &report.left {
        eprintln!("left: {why}");
    }
    Err(format!(
        "{} value(s) are not sealed with the current key: give the keys that sealed them as \
         previous keys (--previous-secret-key-file) and run again",
        report.left.len()
    ))
}
