//! DataFusion's catalog traits over an [`iceberg::Catalog`], live: namespaces and tables are
//! looked up when a statement is planned, never listed once and kept.
//!
//! - [`FloeCatalogProvider`] is the DataFusion catalog (`floe` by default). Its schemas are the
//!   Iceberg namespaces; a nested namespace is one schema whose name joins the levels with `.`,
//!   so it is written quoted: `SELECT * FROM "sales.europe".orders`.
//! - [`FloeSchemaProvider`] resolves a table name when DataFusion plans a statement, loading the
//!   table's current metadata from the catalog then. Besides plain names it resolves
//!   `name@v<snapshot-id>` and `name@ts<epoch-millis>` (time travel, read-only, with the schema
//!   that was current at that snapshot; see [`crate::rewrite`] for the SQL clauses that produce
//!   them) and `name$snapshots`, `$history`, `$refs`, `$manifests`, `$files` (metadata tables).
//!
//! Every table's scans are measured ([`crate::scan`]: files scanned and pruned, for
//! `EXPLAIN ANALYZE`). Plain names get iceberg-datafusion's `IcebergTableProvider`, which scans the table's current
//! snapshot (loading it again at scan time) and supports `INSERT INTO` as a fast append committed
//! through the catalog. iceberg-datafusion only builds that provider from its own catalog
//! provider, which lists every namespace and table once and then goes stale; so each resolution
//! here hands it a one-table view of the real catalog ([`OneTable`]) and takes the provider out.
//!
//! DataFusion's listing methods (`schema_names`, `table_names`, `table_exist`) are synchronous;
//! they block on the catalog, which needs a multi-threaded tokio runtime (they return nothing on a
//! current-thread runtime). Planning and execution never use them.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, TableCommit, TableCreation, TableIdent,
};
use iceberg_datafusion::{IcebergCatalogProvider, IcebergStaticTableProvider};

use crate::SqlError;
use crate::error::to_datafusion;
use crate::metadata_tables::MetadataTable;
use crate::scan::MeasuredTable;

type Result<T, E = Error> = std::result::Result<T, E>;

/// The DataFusion catalog over an Iceberg catalog.
#[derive(Debug)]
pub struct FloeCatalogProvider {
    catalog: Arc<dyn Catalog>,
}

impl FloeCatalogProvider {
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

impl CatalogProvider for FloeCatalogProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        block_on(all_namespaces(self.catalog.as_ref()))
            .and_then(|result| result.ok())
            .map(|namespaces| namespaces.iter().map(schema_name).collect())
            .unwrap_or_default()
    }

    /// Every name is a schema here; whether its namespace exists is found out when a table in it
    /// is resolved, so that the error can say which namespaces do exist.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let namespace = namespace_of(name)?;
        Some(Arc::new(FloeSchemaProvider {
            catalog: self.catalog.clone(),
            namespace,
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "registering schema {name}; use CREATE SCHEMA"
        )))
    }
}

/// The tables of one namespace.
#[derive(Debug)]
pub struct FloeSchemaProvider {
    catalog: Arc<dyn Catalog>,
    namespace: NamespaceIdent,
}

#[async_trait]
impl SchemaProvider for FloeSchemaProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        block_on(self.catalog.list_tables(&self.namespace))
            .and_then(|result| result.ok())
            .map(|tables| tables.into_iter().map(|t| t.name().to_string()).collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let reference = TableSpec::parse(name);
        let ident = TableIdent::new(self.namespace.clone(), reference.base.to_string());
        let table = match self.catalog.load_table(&ident).await {
            Ok(table) => table,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => return Err(to_datafusion(err.into())),
        };
        resolve(self.catalog.clone(), table, reference.version)
            .await
            .map(Some)
            .map_err(to_datafusion)
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "registering table {name}; use CREATE TABLE"
        )))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "deregistering table {name}; use DROP TABLE"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        let ident = TableIdent::new(
            self.namespace.clone(),
            TableSpec::parse(name).base.to_string(),
        );
        block_on(self.catalog.table_exists(&ident))
            .and_then(|result| result.ok())
            .unwrap_or(false)
    }
}

/// A table name as the schema provider reads it: the table, and which version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec<'a> {
    pub base: &'a str,
    pub version: Version<'a>,
}

/// Which version of a table a name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version<'a> {
    Current,
    Snapshot(i64),
    /// The snapshot a branch or tag points at.
    Ref(&'a str),
    /// The snapshot current at this time (epoch milliseconds).
    AsOf(i64),
    Metadata(MetadataTable),
}

impl<'a> TableSpec<'a> {
    /// `t`, `t@v<id>`, `t@ref=<branch or tag>`, `t@ts<millis>`, `t$<metadata table>`; anything
    /// else is a plain name.
    pub fn parse(name: &'a str) -> Self {
        // First, so that a ref name may hold `$` or `@`.
        if let Some((base, name)) = name.split_once(&format!("@{}", crate::rewrite::REF_MARKER))
            && !base.is_empty()
            && !name.is_empty()
        {
            return Self {
                base,
                version: Version::Ref(name),
            };
        }
        if let Some((base, kind)) = name.rsplit_once('$')
            && let Some(kind) = MetadataTable::parse(kind)
        {
            return Self {
                base,
                version: Version::Metadata(kind),
            };
        }
        if let Some((base, suffix)) = name.rsplit_once('@') {
            if let Some(id) = suffix.strip_prefix('v').and_then(|s| s.parse().ok()) {
                return Self {
                    base,
                    version: Version::Snapshot(id),
                };
            }
            if let Some(ms) = suffix.strip_prefix("ts").and_then(|s| s.parse().ok()) {
                return Self {
                    base,
                    version: Version::AsOf(ms),
                };
            }
        }
        Self {
            base: name,
            version: Version::Current,
        }
    }
}

async fn resolve(
    catalog: Arc<dyn Catalog>,
    table: Table,
    version: Version<'_>,
) -> Result<Arc<dyn TableProvider>, SqlError> {
    let provider = match version {
        Version::Current => writable_provider(catalog, table).await?,
        Version::Snapshot(id) => snapshot_provider(table, id).await?,
        Version::Ref(name) => {
            let id = snapshot_of_ref(&table, name)?;
            snapshot_provider(table, id).await?
        }
        Version::AsOf(millis) => {
            let id = snapshot_as_of(&table, millis)?;
            snapshot_provider(table, id).await?
        }
        Version::Metadata(kind) => return kind.provider(&table).await,
    };
    Ok(Arc::new(MeasuredTable::new(provider)))
}

async fn snapshot_provider(table: Table, id: i64) -> Result<Arc<dyn TableProvider>, SqlError> {
    if table.metadata().snapshot_by_id(id).is_none() {
        return Err(SqlError::new(format!(
            "table {} has no snapshot {id}; its snapshots are: {}",
            display_ident(table.identifier()),
            list_or_none(table.metadata().snapshots().map(|s| s.snapshot_id()))
        )));
    }
    Ok(Arc::new(
        IcebergStaticTableProvider::try_new_from_table_snapshot(table, id).await?,
    ))
}

/// The snapshot a branch or tag points at; an unknown name's error lists the refs there are.
pub fn snapshot_of_ref(table: &Table, name: &str) -> Result<i64, SqlError> {
    if let Some(snapshot) = table.metadata().snapshot_for_ref(name) {
        return Ok(snapshot.snapshot_id());
    }
    let refs = crate::metadata_tables::refs_of(table.metadata())?;
    Err(SqlError::new(format!(
        "table {} has no branch or tag named {name:?}; its refs are: {}",
        display_ident(table.identifier()),
        list_or_none(refs.iter().map(|(name, reference)| {
            let kind = if reference.is_branch() {
                "branch"
            } else {
                "tag"
            };
            format!("{name} ({kind})")
        }))
    )))
}

/// The snapshot that was current at `millis`: the last entry of the snapshot log made at or
/// before it.
pub fn snapshot_as_of(table: &Table, millis: i64) -> Result<i64, SqlError> {
    let metadata: &TableMetadata = table.metadata();
    let history = metadata.history();
    if let Some(entry) = history.iter().rev().find(|e| e.timestamp_ms <= millis) {
        return Ok(entry.snapshot_id);
    }
    let shown = format_millis(millis);
    let name = display_ident(table.identifier());
    match history.first() {
        Some(first) => Err(SqlError::new(format!(
            "table {name} had no snapshot at {shown}; its first snapshot was made at {}",
            format_millis(first.timestamp_ms)
        ))),
        None => Err(SqlError::new(format!(
            "table {name} has no snapshots to read as of {shown}"
        ))),
    }
}

fn format_millis(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|at| at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| format!("{millis} ms"))
}

/// iceberg-datafusion's writable provider for `table`, built through a [`OneTable`] view.
async fn writable_provider(
    catalog: Arc<dyn Catalog>,
    table: Table,
) -> Result<Arc<dyn TableProvider>, SqlError> {
    let view = Arc::new(OneTable::new(catalog, table));
    let provider = IcebergCatalogProvider::try_new(view).await?;
    let schema = provider
        .schema(OneTable::NAMESPACE)
        .ok_or_else(|| SqlError::new("internal: one-table view has no schema"))?;
    schema
        .table(OneTable::NAME)
        .await?
        .ok_or_else(|| SqlError::new("internal: one-table view has no table"))
}

/// A catalog that shows exactly one table, as `t.t`, and forwards its loads and commits to the
/// real catalog (under the table's real name). See the module docs for why.
#[derive(Debug)]
pub(crate) struct OneTable {
    inner: Arc<dyn Catalog>,
    ident: TableIdent,
    /// The table as already loaded, handed out on the first load (the provider's construction).
    preloaded: Mutex<Option<Table>>,
}

impl OneTable {
    const NAMESPACE: &'static str = "t";
    const NAME: &'static str = "t";

    fn new(inner: Arc<dyn Catalog>, table: Table) -> Self {
        Self {
            inner,
            ident: table.identifier().clone(),
            preloaded: Mutex::new(Some(table)),
        }
    }

    fn alias() -> TableIdent {
        TableIdent::new(
            NamespaceIdent::new(Self::NAMESPACE.into()),
            Self::NAME.into(),
        )
    }

    /// The real name of `ident`, which is the alias or already real.
    fn real(&self, ident: &TableIdent) -> TableIdent {
        if *ident == Self::alias() {
            self.ident.clone()
        } else {
            ident.clone()
        }
    }

    fn unsupported<T>(what: &str) -> Result<T> {
        Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!("{what} is not available through a one-table view"),
        ))
    }
}

#[async_trait]
impl Catalog for OneTable {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        Ok(match parent {
            None => vec![NamespaceIdent::new(Self::NAMESPACE.into())],
            Some(_) => vec![],
        })
    }

    async fn create_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        Self::unsupported("creating namespaces")
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        Ok(Namespace::new(namespace.clone()))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        Ok(namespace.as_ref() == &[Self::NAMESPACE.to_string()])
    }

    async fn update_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> Result<()> {
        Self::unsupported("updating namespaces")
    }

    async fn drop_namespace(&self, _namespace: &NamespaceIdent) -> Result<()> {
        Self::unsupported("dropping namespaces")
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let alias = Self::alias();
        Ok(if namespace == alias.namespace() {
            vec![alias]
        } else {
            vec![]
        })
    }

    async fn create_table(
        &self,
        _namespace: &NamespaceIdent,
        _creation: TableCreation,
    ) -> Result<Table> {
        Self::unsupported("creating tables")
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<Table> {
        let real = self.real(ident);
        if real == self.ident {
            let preloaded = self.preloaded.lock().expect("not poisoned").take();
            if let Some(table) = preloaded {
                return Ok(table);
            }
        }
        self.inner.load_table(&real).await
    }

    async fn drop_table(&self, _ident: &TableIdent) -> Result<()> {
        Self::unsupported("dropping tables")
    }

    async fn purge_table(&self, _ident: &TableIdent) -> Result<()> {
        Self::unsupported("purging tables")
    }

    async fn table_exists(&self, ident: &TableIdent) -> Result<bool> {
        self.inner.table_exists(&self.real(ident)).await
    }

    async fn rename_table(&self, _src: &TableIdent, _dest: &TableIdent) -> Result<()> {
        Self::unsupported("renaming tables")
    }

    async fn register_table(&self, _ident: &TableIdent, _location: String) -> Result<Table> {
        Self::unsupported("registering tables")
    }

    /// Commits carry the table's real name (iceberg's transactions take it from the loaded
    /// table): straight to the real catalog.
    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.inner.update_table(commit).await
    }
}

// ---- helpers shared with the session

/// Whether `err` says a table or namespace does not exist.
pub fn is_not_found(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
    )
}

/// A schema name as a namespace: levels joined by `.`.
pub fn namespace_of(schema: &str) -> Option<NamespaceIdent> {
    NamespaceIdent::from_vec(schema.split('.').map(str::to_string).collect()).ok()
}

/// A namespace as a schema name.
pub fn schema_name(namespace: &NamespaceIdent) -> String {
    namespace.as_ref().join(".")
}

pub fn display_ident(ident: &TableIdent) -> String {
    format!("{}.{}", schema_name(ident.namespace()), ident.name())
}

/// Every namespace, nested ones included, parents before children.
pub async fn all_namespaces(catalog: &dyn Catalog) -> Result<Vec<NamespaceIdent>> {
    let mut found = Vec::new();
    let mut queue = catalog.list_namespaces(None).await?;
    queue.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let mut next = 0;
    while next < queue.len() {
        let namespace = queue[next].clone();
        next += 1;
        let mut children = catalog.list_namespaces(Some(&namespace)).await?;
        // A catalog that ignores `parent` would list the top level again: only take children.
        children.retain(|child| {
            child.as_ref().len() > namespace.as_ref().len()
                && child.as_ref().starts_with(namespace.as_ref())
        });
        children.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        queue.extend(children);
        found.push(namespace);
    }
    found.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    Ok(found)
}

pub fn list_or_none(items: impl Iterator<Item = impl ToString>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// Runs `future` to completion from synchronous code inside a multi-threaded tokio runtime;
/// `None` elsewhere (a current-thread runtime would deadlock).
fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        tracing::warn!("listing needs a multi-threaded tokio runtime; returning nothing");
        return None;
    }
    Some(tokio::task::block_in_place(|| handle.block_on(future)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_carry_their_version() {
        let spec = TableSpec::parse("orders@v42");
        assert_eq!((spec.base, spec.version), ("orders", Version::Snapshot(42)));
        let spec = TableSpec::parse("orders@v-42");
        assert_eq!(spec.version, Version::Snapshot(-42));
        let spec = TableSpec::parse("orders@ts1700000000000");
        assert_eq!(spec.version, Version::AsOf(1_700_000_000_000));
        let spec = TableSpec::parse("orders@ref=audit$2024@x");
        assert_eq!(
            (spec.base, spec.version),
            ("orders", Version::Ref("audit$2024@x"))
        );
        let spec = TableSpec::parse("orders$history");
        assert_eq!(
            (spec.base, spec.version),
            ("orders", Version::Metadata(MetadataTable::History))
        );
        // Anything else is part of the name.
        for name in ["a@b", "a$b", "mail@vx", "plain", "a@ref=", "@ref=x"] {
            assert_eq!(TableSpec::parse(name).base, name);
            assert_eq!(TableSpec::parse(name).version, Version::Current);
        }
    }

    #[test]
    fn schema_names_are_dotted_namespaces() {
        let namespace = namespace_of("a.b").unwrap();
        assert_eq!(namespace.as_ref(), &["a".to_string(), "b".to_string()]);
        assert_eq!(schema_name(&namespace), "a.b");
    }
}
