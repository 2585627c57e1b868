//! Re-sealing the stored secrets in SQLite: the shared pass of [`crate::secrets`] in one write
//! transaction.

use async_trait::async_trait;

use super::SqliteStore;
use crate::Result;
use crate::secrets::{SealReport, SecretStore, seal_stored};

#[async_trait]
impl SecretStore for SqliteStore {
    async fn reseal_secrets(&self) -> Result<SealReport> {
        let sealer = self.sealer.clone();
        self.write(async |conn| seal_stored(conn, &sealer).await)
            .await
    }
}
