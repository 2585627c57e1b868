use async_trait::async_trait;
use std::time::Duration;
use crate::*;
macro_rules! stub { ($t:ty) => {
#[async_trait]
impl AccessStore for $t {
    async fn create_principal(&self, _: &PrincipalRecord) -> Result<()> { todo!() }
    async fn principal_by_client_id(&self, _: &str) -> Result<Option<PrincipalRecord>> { todo!() }
    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>> { todo!() }
    async fn delete_principal(&self, _: &str) -> Result<()> { todo!() }
    async fn set_principal_secret(&self, _: &str, _: &str) -> Result<()> { todo!() }
    async fn create_role(&self, _: &str) -> Result<()> { todo!() }
    async fn delete_role(&self, _: &str) -> Result<()> { todo!() }
    async fn assign_role(&self, _: &RoleAssignment) -> Result<()> { todo!() }
    async fn unassign_role(&self, _: &RoleAssignment) -> Result<bool> { todo!() }
    async fn grant(&self, _: &GrantRecord) -> Result<()> { todo!() }
    async fn revoke(&self, _: &GrantRecord) -> Result<bool> { todo!() }
    async fn policy_version(&self) -> Result<i64> { todo!() }
    async fn load_policy(&self) -> Result<Policy> { todo!() }
    async fn add_signing_key(&self, _: &SigningKeyRecord) -> Result<()> { todo!() }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> { todo!() }
    async fn expire_signing_keys(&self, _: Duration) -> Result<u64> { todo!() }
    async fn record_audit(&self, _: &[AuditRecord]) -> Result<()> { todo!() }
    async fn list_audit(&self, _: &AuditFilter, _: usize) -> Result<Vec<AuditRecord>> { todo!() }
    async fn expire_audit(&self, _: Duration) -> Result<u64> { todo!() }
}
}}
stub!(crate::sqlite::SqliteStore);
stub!(crate::postgres::PostgresStore);
