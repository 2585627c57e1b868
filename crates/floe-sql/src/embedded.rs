//! [`EmbeddedCatalog`]: iceberg-rust's [`iceberg::Catalog`] over Floe's own commit engine, for
//! `floe sql --data-dir` without a server.
//!
//! Every change goes through [`floe_commit::Catalog`] — table updates through
//! [`floe_commit::Catalog::commit`], the same protocol the REST server runs — so a table written
//! here is exactly what the server would have written. Table files are read and written through
//! the warehouse's own object store ([`floe_commit::Catalog::file_io`]), local or S3.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use floe_commit::{CommitError, CreateTable, LoadedTable, TableChange};
use floe_store::{PageRequest, TableName};
use iceberg::io::FileIO;
use iceberg::spec::FormatVersion;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};

/// An [`iceberg::Catalog`] whose every operation is a call on a [`floe_commit::Catalog`].
pub struct EmbeddedCatalog {
    inner: Arc<floe_commit::Catalog>,
    file_io: FileIO,
}

impl std::fmt::Debug for EmbeddedCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCatalog")
            .field("warehouse", &self.inner.warehouse().root())
            .finish()
    }
}

impl EmbeddedCatalog {
    pub fn new(inner: Arc<floe_commit::Catalog>) -> Self {
        let file_io = inner.file_io();
        Self { inner, file_io }
    }

    /// The commit engine underneath.
    pub fn engine(&self) -> &Arc<floe_commit::Catalog> {
        &self.inner
    }

    fn table(&self, ident: TableIdent, loaded: LoadedTable) -> Result<Table> {
        let mut builder = Table::builder()
            .identifier(ident)
            .file_io(self.file_io.clone())
            .metadata(Arc::new(loaded.metadata().clone()))
            .runtime(iceberg::Runtime::try_current()?);
        if let Some(location) = loaded.metadata_location {
            builder = builder.metadata_location(location);
        }
        builder.build()
    }
}

fn table_name(ident: &TableIdent) -> TableName {
    TableName::new(ident.namespace().as_ref().clone(), ident.name())
}

/// The commit engine's errors as iceberg's error kinds, so that iceberg's own retry logic (a
/// transaction retries on a retryable [`ErrorKind::CatalogCommitConflicts`]) and callers see the
/// right kind.
fn iceberg_error(err: CommitError) -> Error {
    let kind = match &err {
        CommitError::NamespaceNotFound(_) => ErrorKind::NamespaceNotFound,
        CommitError::TableNotFound(_) => ErrorKind::TableNotFound,
        CommitError::AlreadyExists(message) if message.starts_with("namespace ") => {
            ErrorKind::NamespaceAlreadyExists
        }
        CommitError::AlreadyExists(_) => ErrorKind::TableAlreadyExists,
        CommitError::Conflict(_) => ErrorKind::CatalogCommitConflicts,
        CommitError::InvalidRequest(_) | CommitError::NotFound(_) => ErrorKind::DataInvalid,
        CommitError::NamespaceNotEmpty(_)
        | CommitError::ViewNotFound(_)
        | CommitError::WarehouseNotFound(_)
        | CommitError::WarehouseNotEmpty(_)
        | CommitError::Unavailable(_)
        | CommitError::Corrupt(_)
        | CommitError::Internal(_) => ErrorKind::Unexpected,
    };
    // As iceberg's REST client does: a conflict is retryable, so that a transaction (e.g. an
    // INSERT's fast append) re-reads the table and tries again instead of failing.
    let retryable = kind == ErrorKind::CatalogCommitConflicts;
    Error::new(kind, err.to_string()).with_retryable(retryable)
}

fn everything() -> PageRequest {
    PageRequest::default()
}

#[async_trait]
impl Catalog for EmbeddedCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        let parent = parent.map(|p| p.as_ref().as_slice());
        let page = self
            .inner
            .list_namespaces(parent, &everything())
            .await
            .map_err(iceberg_error)?;
        page.items
            .into_iter()
            .map(NamespaceIdent::from_vec)
            .collect()
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        let stored: BTreeMap<String, String> = properties.clone().into_iter().collect();
        self.inner
            .create_namespace(namespace.as_ref(), &stored)
            .await
            .map_err(iceberg_error)?;
        Ok(Namespace::with_properties(namespace.clone(), properties))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        let properties = self
            .inner
            .load_namespace(namespace.as_ref())
            .await
            .map_err(iceberg_error)?;
        Ok(Namespace::with_properties(
            namespace.clone(),
            properties.into_iter().collect(),
        ))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        match self.inner.load_namespace(namespace.as_ref()).await {
            Ok(_) => Ok(true),
            Err(CommitError::NamespaceNotFound(_)) => Ok(false),
            Err(err) => Err(iceberg_error(err)),
        }
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        // iceberg's `update_namespace` sets the full set: remove what is not in it.
        let current = self
            .inner
            .load_namespace(namespace.as_ref())
            .await
            .map_err(iceberg_error)?;
        let removals: Vec<String> = current
            .keys()
            .filter(|key| !properties.contains_key(*key))
            .cloned()
            .collect();
        let updates: BTreeMap<String, String> = properties.into_iter().collect();
        self.inner
            .update_namespace_properties(namespace.as_ref(), &removals, &updates)
            .await
            .map_err(iceberg_error)?;
        Ok(())
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.inner
            .drop_namespace(namespace.as_ref())
            .await
            .map_err(iceberg_error)
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let page = self
            .inner
            .list_tables(namespace.as_ref(), &everything())
            .await
            .map_err(iceberg_error)?;
        Ok(page
            .items
            .into_iter()
            .map(|name| TableIdent::new(namespace.clone(), name))
            .collect())
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let mut properties = creation.properties;
        let version = match creation.format_version {
            FormatVersion::V1 => "1",
            FormatVersion::V2 => "2",
            FormatVersion::V3 => "3",
        };
        properties.insert("format-version".to_string(), version.to_string());
        let loaded = self
            .inner
            .create_table(CreateTable {
                name: table_name(&ident),
                location: creation.location,
                schema: creation.schema,
                partition_spec: creation.partition_spec,
                sort_order: creation.sort_order,
                properties,
                stage: false,
            })
            .await
            .map_err(iceberg_error)?;
        self.table(ident, loaded)
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        let loaded = self
            .inner
            .load_table(&table_name(ident))
            .await
            .map_err(iceberg_error)?;
        self.table(ident.clone(), loaded)
    }

    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner
            .drop_table(&table_name(ident), false)
            .await
            .map_err(iceberg_error)
    }

    async fn purge_table(&self, ident: &TableIdent) -> Result<()> {
        self.inner
            .drop_table(&table_name(ident), true)
            .await
            .map_err(iceberg_error)
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        match self.inner.table_pointer(&table_name(ident)).await {
            Ok(_) => Ok(true),
            Err(CommitError::TableNotFound(_)) => Ok(false),
            Err(err) => Err(iceberg_error(err)),
        }
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.inner
            .rename_table(&table_name(src), &table_name(dest))
            .await
            .map_err(iceberg_error)
    }

    async fn register_table(&self, ident: &TableIdent, metadata_location: String) -> Result<Table> {
        let loaded = self
            .inner
            .register_table(&table_name(ident), &metadata_location, false)
            .await
            .map_err(iceberg_error)?;
        self.table(ident.clone(), loaded)
    }

    /// Runs the commit through [`floe_commit::Catalog::commit`]: the same protocol as a REST
    /// `updateTable`.
    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let change = TableChange {
            table: table_name(&ident),
            requirements: commit.take_requirements(),
            updates: commit.take_updates(),
        };
        let mut committed = self
            .inner
            .commit(vec![change])
            .await
            .map_err(iceberg_error)?;
        self.table(ident, committed.remove(0))
    }
}
