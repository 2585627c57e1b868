//! The per-table leases, held for as long as a job runs.
//!
//! A table has two: the *maintenance* lease, which every job that commits or deletes takes
//! (compaction, expiry, manifest rewrite, unreferenced-file removal, repair), so that one such
//! job runs per table at a time across all replicas; and the *scrub* lease, which only the
//! read-only scrubber takes, so that two replicas do not scrub one table at once. A scrub does
//! not wait for maintenance, nor maintenance for a scrub (see [`crate::scrub`] for why it may
//! run beside a job that commits).
//!
//! A job takes its lease in the metadata store before it starts and renews it every
//! [`LeaseSettings::renew_every`] while it runs, so that a long compaction keeps the table however
//! long it takes, while the lease of a replica that died runs out after one
//! [`LeaseSettings::ttl`]. A job stops — its future is dropped at its next await, so it commits and
//! deletes nothing more — as soon as either
//!
//! - a renewal finds the lease held by someone else (it expired and another run took it), or
//! - no renewal has succeeded for a whole `ttl`, counted on this process's monotonic clock from
//!   before the call that last took or renewed it (the store may be unreachable: the lease must
//!   then be taken as lost, since another replica can take it once it expires).
//!
//! A stopped job returns [`MaintenanceError::LeaseLost`]. What it committed before is
//! consistent (every commit is one pointer swap); files it had written and not committed are left
//! for unreferenced-file removal.
//!
//! The scheduler passes its settings to the jobs it runs with [`with_settings`]; other callers
//! (`floe maintain`) get the defaults.

use std::time::Duration;

use floe_commit::Catalog;
use floe_store::TableName;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::{MaintenanceError, Result};

/// How a job holds its table's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long the lease lasts without renewal: how long a table stays blocked after the process
    /// running its job died (a SIGKILLed `floe maintain`, a lost replica).
    pub ttl: Duration,
    /// Time between renewals; well below `ttl`, so that a slow renewal or two still keep it.
    pub renew_every: Duration,
}

impl Default for LeaseSettings {
    /// 60 s, renewed every 15 s. The TTL is what a dead job costs: its table waits that long,
    /// so it should be short, and renewal already keeps a long job's lease. It stays well
    /// above what a healthy job may go without renewing: three renewals in a row may fail (a
    /// metadata store that restarts or fails over within ~45 s) before the job stops, and a
    /// renewal costs one small row update per running job every 15 s. It is also below the
    /// scheduler's 5-minute pass interval, so the next pass finds a dead job's table free.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(15),
        }
    }
}

/// The name of `table`'s maintenance lease in the metadata store.
pub fn maintenance_lease_name(catalog: &Catalog, table: &TableName) -> String {
    // Per warehouse: two warehouses may each have a table of this name.
    format!("maintenance:{}:{table}", catalog.warehouse().name())
}

/// The name of `table`'s scrub lease in the metadata store.
pub fn scrub_lease_name(catalog: &Catalog, table: &TableName) -> String {
    format!("scrub:{}:{table}", catalog.warehouse().name())
}

tokio::task_local! {
    static SETTINGS: LeaseSettings;
}

/// Runs `job` (and every maintenance job inside it) with `settings` instead of the defaults.
pub async fn with_settings<F: Future>(settings: LeaseSettings, job: F) -> F::Output {
    SETTINGS.scope(settings, job).await
}

/// Holds the table's maintenance lease while `job` runs, renewing it; stops the job when the
/// lease is lost (see the module docs), then gives it up.
pub(crate) async fn with_lease<T, F>(catalog: &Catalog, table: &TableName, job: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let name = maintenance_lease_name(catalog, table);
    holding(catalog, table, &name, "maintenance", job).await
}

/// Holds the table's scrub lease while `job` runs, as [`with_lease`] holds the maintenance lease.
pub(crate) async fn with_scrub_lease<T, F>(
    catalog: &Catalog,
    table: &TableName,
    job: F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let name = scrub_lease_name(catalog, table);
    holding(catalog, table, &name, "scrub", job).await
}

async fn holding<T, F>(
    catalog: &Catalog,
    table: &TableName,
    name: &str,
    kind: &str,
    job: F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let settings = SETTINGS.try_with(|s| *s).unwrap_or_default();
    let holder = uuid::Uuid::new_v4().to_string();
    let store = catalog.store();
    let asked = Instant::now();
    if !store.try_acquire_lease(name, &holder, settings.ttl).await? {
        return Err(MaintenanceError::Busy(format!(
            "another {kind} run holds table {table}"
        )));
    }
    let (stop, stopped) = watch::channel(false);
    let (lost, lost_reason) = oneshot::channel();
    let run = async {
        let result = tokio::select! {
            // Checked first: a job whose lease is gone must not take one more step.
            biased;
            Ok(why) = lost_reason => Err(MaintenanceError::LeaseLost(
                format!("the {kind} job on {table} stopped: {why}")
            )),
            result = job => result,
        };
        // The job is dropped by now; the renewals stop at their next pause.
        let _ = stop.send(true);
        result
    };
    // The renewals are never dropped midway (see `keep`): releasing waits for the last one, so
    // that a late renewal cannot take the lease back after the release.
    let (result, ()) = tokio::join!(
        run,
        keep(catalog, name, &holder, settings, asked, stopped, lost)
    );
    if let Err(err) = store.release_lease(name, &holder).await {
        tracing::warn!(%table, lease = name, error = %err, "could not release a lease; it expires on its own");
    }
    result
}

/// Renews the lease until told to stop, or until it is lost; then sends why on `lost`.
///
/// A renewal in flight is never dropped: a metadata-store call cancelled midway may leave its
/// pooled connection inside a transaction (sqlx's SQLite `BEGIN IMMEDIATE` acknowledged to a
/// caller that is gone), which breaks the next user of that connection. So a renewal that
/// outlasts the lease reports the lease lost at once, and is still waited for.
async fn keep(
    catalog: &Catalog,
    name: &str,
    holder: &str,
    settings: LeaseSettings,
    mut renewed_at: Instant,
    mut stop: watch::Receiver<bool>,
    lost: oneshot::Sender<String>,
) {
    let store = catalog.store();
    let ran_out = || {
        format!(
            "its lease ran out ({:?} without a successful renewal)",
            settings.ttl
        )
    };
    loop {
        let expires = renewed_at + settings.ttl;
        let next = (Instant::now() + settings.renew_every).min(expires);
        tokio::select! {
            // A closed channel stops the renewals too.
            _ = stop.changed() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        if Instant::now() >= expires {
            let _ = lost.send(ran_out());
            return;
        }
        let asked = Instant::now();
        let renewal = store.try_acquire_lease(name, holder, settings.ttl);
        tokio::pin!(renewal);
        let renewal = tokio::select! {
            renewal = &mut renewal => renewal,
            () = tokio::time::sleep_until(expires) => {
                let _ = lost.send(ran_out());
                let _ = renewal.await;
                return;
            }
        };
        match renewal {
            Ok(true) => renewed_at = asked,
            Ok(false) => {
                let _ = lost.send("its lease expired and another run took it".to_string());
                return;
            }
            Err(err) => {
                tracing::warn!(lease = name, error = %err, "could not renew a maintenance lease; retrying until it runs out");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use floe_commit::open::{OpenOptions, open};
    use floe_store::TableName;

    use super::*;

    async fn catalog() -> (tempfile::TempDir, Arc<Catalog>) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&OpenOptions::new(dir.path().join("data")))
            .await
            .unwrap();
        (dir, Arc::new(catalog))
    }

    fn table() -> TableName {
        TableName::new(vec!["s".to_string()], "t")
    }

    const LEASE: &str = "maintenance:main:s.t";

    #[tokio::test]
    async fn a_job_that_outlives_its_lease_stops_and_a_rival_takes_the_table() {
        let (_dir, catalog) = catalog().await;
        // Renewals far apart: the lease runs out while the job is still at work.
        let settings = LeaseSettings {
            ttl: Duration::from_millis(300),
            renew_every: Duration::from_secs(3600),
        };
        let steps = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let job = {
            let steps = steps.clone();
            async move {
                loop {
                    steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let outcome: Result<()> =
            with_settings(settings, with_lease(&catalog, &table(), job)).await;
        let err = outcome.unwrap_err();
        assert!(
            matches!(&err, MaintenanceError::LeaseLost(m) if m.contains("ran out")),
            "{err}"
        );
        let steps_at_stop = steps.load(std::sync::atomic::Ordering::SeqCst);
        assert!(steps_at_stop > 0, "the job had started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            steps.load(std::sync::atomic::Ordering::SeqCst),
            steps_at_stop,
            "a stopped job takes no further step"
        );
        assert!(
            catalog
                .store()
                .try_acquire_lease(LEASE, "rival", Duration::from_secs(60))
                .await
                .unwrap(),
            "the stopped job gave its lease up"
        );
    }

    #[tokio::test]
    async fn renewals_keep_the_lease_for_a_job_longer_than_its_ttl() {
        let (_dir, catalog) = catalog().await;
        let settings = LeaseSettings {
            ttl: Duration::from_secs(2),
            renew_every: Duration::from_millis(100),
        };
        let store = catalog.store().clone();
        let job = async move {
            // Past two TTLs, a rival still finds the table taken.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let rival = store
                    .try_acquire_lease(LEASE, "rival", Duration::from_secs(60))
                    .await?;
                if rival {
                    return Err(MaintenanceError::Conflict("a rival took the lease".into()));
                }
            }
            Ok("done")
        };
        let outcome = with_settings(settings, with_lease(&catalog, &table(), job)).await;
        assert_eq!(outcome.unwrap(), "done");
    }

    #[tokio::test]
    async fn a_job_that_ends_mid_renewal_leaves_the_lease_free_and_the_store_whole() {
        let (_dir, catalog) = catalog().await;
        // Renewals back to back, so that jobs often end while one is in flight: it must be
        // finished, not dropped (a dropped SQLite `BEGIN IMMEDIATE` can leave its connection
        // inside a transaction), and must not take the lease back after the release.
        let settings = LeaseSettings {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_millis(1),
        };
        for round in 0..30u64 {
            let job = async move {
                tokio::time::sleep(Duration::from_millis(round % 7)).await;
                Ok(round)
            };
            let done = with_settings(settings, with_lease(&catalog, &table(), job)).await;
            assert_eq!(done.unwrap(), round);
            let store = catalog.store();
            assert!(
                store
                    .try_acquire_lease(LEASE, "rival", Duration::from_secs(60))
                    .await
                    .unwrap(),
                "round {round}: the lease was still held after the job"
            );
            store.release_lease(LEASE, "rival").await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_renewal_that_finds_the_lease_taken_reports_it_lost() {
        let (_dir, catalog) = catalog().await;
        // What a renewal meets after its lease expired and another replica took it.
        assert!(
            catalog
                .store()
                .try_acquire_lease(LEASE, "rival", Duration::from_secs(60))
                .await
                .unwrap()
        );
        let settings = LeaseSettings {
            ttl: Duration::from_secs(3600),
            renew_every: Duration::from_millis(10),
        };
        let (_stop, stopped) = watch::channel(false);
        let (lost, why) = oneshot::channel();
        keep(
            &catalog,
            LEASE,
            "this-job",
            settings,
            Instant::now(),
            stopped,
            lost,
        )
        .await;
        let why = why.await.unwrap();
        assert!(why.contains("another run took it"), "{why}");
    }

    #[tokio::test]
    async fn a_job_whose_lease_another_run_holds_does_not_start() {
        let (_dir, catalog) = catalog().await;
        assert!(
            catalog
                .store()
                .try_acquire_lease(LEASE, "rival", Duration::from_secs(60))
                .await
                .unwrap()
        );
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job = {
            let started = started.clone();
            async move {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        };
        let outcome = with_lease(&catalog, &table(), job).await;
        assert!(matches!(outcome, Err(MaintenanceError::Busy(_))));
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
    }
}
