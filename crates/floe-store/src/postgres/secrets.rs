//! Re-sealing the stored secrets in PostgreSQL: the shared pass of [`crate::secrets`] in one
//! READ COMMITTED transaction (its conditional updates leave rows changed meanwhile alone).

use async_trait::async_trait;

use super::{Mode, PostgresStore};
use crate::Result;
use crate::secrets::{SealReport, SecretStore, seal_stored};

#[async_trait]
impl SecretStore for PostgresStore {
    async fn reseal_secrets(&self) -> Result<SealReport> {
        let sealer = self.sealer.clone();
        self.run(Mode::Write, async |conn| seal_stored(conn, &sealer).await)
            .await
    }
}
