//! SQL over Floe's tables: DataFusion planning and running statements against an Iceberg catalog.
//!
//! This crate owns `floe sql`'s engine. Its one seam is iceberg-rust's [`iceberg::Catalog`]
//! trait, so the same code serves both ways of reaching tables:
//!
//! - **REST** ([`Session::connect`]): iceberg-rust's `RestCatalog` against a running Floe server
//!   (or any Iceberg REST catalog);
//! - **embedded** ([`Session::open_embedded`]): [`EmbeddedCatalog`], an `iceberg::Catalog` over
//!   Floe's commit engine ([`floe_commit::Catalog`]) opened straight from a data dir, no server.
//!   Writes go through [`floe_commit::Catalog::commit`], the protocol the server runs.
//!
//! On top of the catalog, [`provider`] implements DataFusion's catalog traits *live*: every
//! statement sees the namespaces and tables as they are when it is planned. A [`Session`] runs
//! statements: queries and `INSERT` through DataFusion (scans push projections and filters into
//! the Iceberg scan; inserts are fast appends committed through the catalog), and the DDL that
//! must reach the catalog (`CREATE TABLE [... PARTITIONED BY (...)] [AS SELECT ...]`,
//! `DROP TABLE`, `CREATE SCHEMA`, `DROP SCHEMA`) itself, `ALTER TABLE ... ADD/RENAME/DROP COLUMN`
//! as one schema change (`alter.rs`), `DELETE`/`UPDATE` copy-on-write (`dml.rs`: affected files
//! rewritten, one `overwrite` snapshot from [`floe_commit::producer`]) and `INSERT OVERWRITE`
//! (dynamic partition overwrite, `overwrite.rs`). Scans ([`scan`]) are planned with the query,
//! spread over `target_partitions` partitions of about equal bytes (large files cut into byte
//! ranges), give the planner the row counts of the manifests, are measured (files scanned and
//! pruned, shown by `EXPLAIN ANALYZE`), and read the current rows with the current schema.
//! Queries see a table's columns without their field-id metadata and with strings as `Utf8View`
//! (`scan_types`: why, and the conversions at the scan and before a write).
//!
//! # Names
//!
//! - Iceberg namespaces are DataFusion schemas, inside one catalog named [`CATALOG`]. The default
//!   schema is [`DEFAULT_SCHEMA`] (change it with `SET datafusion.catalog.default_schema = 'x'`).
//!   A nested namespace is one schema named by its levels joined with `.`, quoted:
//!   `SELECT * FROM "sales.europe".orders`, `CREATE SCHEMA "sales.europe"`.
//! - Time travel: `t FOR VERSION AS OF <snapshot-id>` (also `VERSION AS OF`,
//!   `FOR SYSTEM_VERSION AS OF`), `t FOR VERSION AS OF '<branch or tag>'` and
//!   `t FOR SYSTEM_TIME AS OF '<timestamp>'` (also `FOR TIMESTAMP AS OF`, `TIMESTAMP AS OF`; UTC
//!   unless the literal has a zone). The clause directly follows the table name. It reads the
//!   snapshot with the schema that was current then. [`rewrite`] turns these into the references
//!   `"t@v<id>"` / `"t@ref=<name>"` / `"t@ts<millis>"`, which can also be written directly.
//! - Metadata tables: `t$snapshots`, `t$history`, `t$refs`, `t$manifests`, `t$files`
//!   (see [`metadata_tables`]), also in Spark's spelling `ns.t.snapshots` where no real table has
//!   that name (a real table wins).
//!
//! [`read_only`] is the way in for callers that must change nothing (the server's SQL route): one
//! query, checked on its parsed statement and plan, the tables it reads named before it runs, its
//! rows returned as text up to a limit.
//!
//! Errors are [`SqlError`]s: one message for a person, e.g. an unknown table's error lists the
//! tables of its namespace, an unknown namespace's the namespaces that exist.

mod alter;
mod dml;
pub mod embedded;
mod error;
pub mod metadata_tables;
mod overwrite;
pub mod provider;
pub mod read_only;
pub mod rewrite;
pub mod scan;
mod scan_types;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema as ArrowSchema, TimeUnit};
use datafusion::common::{SchemaReference, TableReference};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    CreateCatalogSchema, CreateMemoryTable, DdlStatement, DropCatalogSchema, DropTable,
    LogicalPlan, WriteOp, dml::InsertOp,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, Statement as SqlStatement, visit_relations, visit_relations_mut,
};
use futures::TryStreamExt;
use iceberg::spec::{Schema, Transform, UnboundPartitionSpec};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::RestCatalogBuilder;

pub use embedded::EmbeddedCatalog;
pub use error::{SqlError, describe};
pub use rewrite::{PartitionTerm, PreparedStatement, is_complete, prepare};

use provider::{FloeCatalogProvider, TableSpec, display_ident, list_or_none, namespace_of};

/// The name of the one DataFusion catalog: `floe.<namespace>.<table>`.
pub const CATALOG: &str = "floe";

/// The schema (namespace) of unqualified table names.
pub const DEFAULT_SCHEMA: &str = "default";

/// What a statement produced.
pub enum Output {
    /// Rows: a query's, or an `INSERT`'s count. Errors can still surface while streaming.
    Rows(SendableRecordBatchStream),
    /// A statement without rows, and what it did (e.g. "created table sales.orders").
    Done(String),
}

/// A SQL session over one Iceberg catalog.
pub struct Session {
    ctx: SessionContext,
    catalog: Arc<dyn Catalog>,
    /// The REST catalog's URL, for messages about reaching it.
    uri: Option<String>,
    /// Where `DELETE`/`UPDATE` commit their snapshots; `None` for a bare `iceberg::Catalog`.
    committer: Option<dml::Committer>,
}

impl Session {
    /// A session over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self::with_runtime(catalog, None)
    }

    /// A session over `catalog` whose sorts, joins and aggregations may hold at most
    /// `memory_bytes` (a statement that needs more fails with a message saying so): for a server
    /// that runs other people's queries.
    pub fn with_memory_limit(
        catalog: Arc<dyn Catalog>,
        memory_bytes: usize,
    ) -> Result<Self, SqlError> {
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(memory_bytes, 1.0)
            .build_arc()?;
        Ok(Self::with_runtime(catalog, Some(runtime)))
    }

    fn with_runtime(
        catalog: Arc<dyn Catalog>,
        runtime: Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
    ) -> Self {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        // Iceberg strings are plain Utf8: keep SQL string types the same.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        let ctx = match runtime {
            Some(runtime) => SessionContext::new_with_config_rt(config, runtime),
            None => SessionContext::new_with_config(config),
        };
        ctx.register_catalog(CATALOG, Arc::new(FloeCatalogProvider::new(catalog.clone())));
        Self {
            ctx,
            catalog,
            uri: None,
            committer: None,
        }
    }

    /// A session on the Iceberg REST catalog at `uri` (e.g. `http://127.0.0.1:8181`), optionally
    /// on a named warehouse. Table files are read and written as any Iceberg client does: local
    /// `file://` tables directly, `s3://` ones with the table's FileIO config from the catalog
    /// and this process's own credentials (`AWS_*`).
    pub async fn connect(uri: &str, warehouse: Option<&str>) -> Result<Self, SqlError> {
        let mut properties = HashMap::from([("uri".to_string(), uri.to_string())]);
        if let Some(warehouse) = warehouse {
            properties.insert("warehouse".to_string(), warehouse.to_string());
        }
        let catalog = RestCatalogBuilder::default()
            .with_storage_factory(Arc::new(floe_commit::file_io::ClientStorageFactory))
            .load(CATALOG, properties)
            .await
            .map_err(|err| {
                SqlError::new(format!(
                    "cannot connect to the catalog at {uri}: {}",
                    error::describe_iceberg(&err)
                ))
            })?;
        let mut session = Self::new(Arc::new(catalog));
        session.uri = Some(uri.to_string());
        session.committer = Some(dml::Committer::rest(uri, warehouse).await?);
        Ok(session)
    }

    /// A session on the catalog in a data dir, through Floe's commit engine, without a server.
    pub async fn open_embedded(options: &floe_commit::open::OpenOptions) -> Result<Self, SqlError> {
        Self::open_embedded_warehouse(options, None).await
    }

    /// As [`Session::open_embedded`], on warehouse `warehouse` of that deployment (a registered
    /// one, or the default when `None`).
    pub async fn open_embedded_warehouse(
        options: &floe_commit::open::OpenOptions,
        warehouse: Option<&str>,
    ) -> Result<Self, SqlError> {
        let engine = floe_commit::open::open_catalog(options, warehouse)
            .await
            .map_err(SqlError::new)?;
        let mut session = Self::new(Arc::new(EmbeddedCatalog::new(engine.clone())));
        session.committer = Some(dml::Committer::Embedded(engine));
        Ok(session)
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// The DataFusion context, for callers that need more than [`Session::execute`].
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs every statement of `sql` in order and collects the rows of each: for tests and small
    /// scripts. Stops at the first error.
    pub async fn run(&self, sql: &str) -> Result<Vec<Vec<arrow::array::RecordBatch>>, SqlError> {
        let mut results = Vec::new();
        for statement in prepare(sql)? {
            results.push(match self.execute(&statement).await? {
                Output::Rows(stream) => stream.try_collect().await?,
                Output::Done(_) => Vec::new(),
            });
        }
        Ok(results)
    }

    /// Plans and starts one statement (from [`prepare`]).
    pub async fn execute(&self, statement: &PreparedStatement) -> Result<Output, SqlError> {
        self.execute_inner(statement)
            .await
            .map_err(|err| self.with_context(err))
    }

    /// Says which catalog could not be reached, when that is the problem.
    fn with_context(&self, err: SqlError) -> SqlError {
        match &self.uri {
            Some(uri) if err.message().starts_with("Failed to execute http request") => {
                let cause = err.message().rsplit(": ").next().unwrap_or_default();
                SqlError::new(format!("cannot reach the catalog at {uri}: {cause}"))
            }
            _ => err,
        }
    }

    async fn execute_inner(&self, statement: &PreparedStatement) -> Result<Output, SqlError> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut parsed = state.sql_to_statement(&statement.sql, &dialect)?;
        self.spell_metadata_tables(&mut parsed).await;
        let ctas_query = match &parsed {
            DFStatement::Statement(inner) => match inner.as_ref() {
                SqlStatement::CreateTable(create) => create.query.as_ref().map(|q| q.to_string()),
                _ => None,
            },
            _ => None,
        };
        if let DFStatement::Statement(inner) = &parsed {
            match inner.as_ref() {
                SqlStatement::Delete(delete) => {
                    return Ok(Output::Rows(self.delete(delete).await?));
                }
                SqlStatement::Update(update) => {
                    return Ok(Output::Rows(self.update(update).await?));
                }
                SqlStatement::AlterTable(alter) => return self.alter_table(alter).await,
                _ => {}
            }
        }
        let references = state.resolve_table_references(&parsed).unwrap_or_default();
        let plan = match state.statement_to_plan(parsed).await {
            Ok(plan) => plan,
            Err(err) => return Err(self.explain(err, &references).await),
        };
        let is_create_table = matches!(plan, LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)));
        if let LogicalPlan::Dml(dml) = &plan {
            let target = dml.table_name.table();
            let spec = TableSpec::parse(target);
            if spec.version != provider::Version::Current {
                return Err(SqlError::new(format!(
                    "{target} is a past version or metadata table of {}: it is read-only",
                    spec.base
                )));
            }
        }
        if let LogicalPlan::Dml(dml) = &plan
            && dml.op == WriteOp::Insert(InsertOp::Overwrite)
        {
            if statement.partitioning.is_some() {
                return Err(SqlError::new(
                    "PARTITIONED BY is only supported in CREATE TABLE",
                ));
            }
            let LogicalPlan::Dml(dml) = plan else {
                unreachable!("matched above")
            };
            return Ok(Output::Rows(self.insert_overwrite(dml).await?));
        }
        if statement.partitioning.is_some() && !is_create_table {
            return Err(SqlError::new(
                "PARTITIONED BY is only supported in CREATE TABLE",
            ));
        }
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                self.create_table(create, statement.partitioning.as_deref(), ctas_query)
                    .await
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => self.drop_table(drop).await,
            LogicalPlan::Ddl(DdlStatement::CreateCatalogSchema(create)) => {
                self.create_schema(create).await
            }
            LogicalPlan::Ddl(DdlStatement::DropCatalogSchema(drop)) => self.drop_schema(drop).await,
            LogicalPlan::Ddl(other) => Err(SqlError::new(format!(
                "{} is not supported by floe sql",
                statement_words(other.name())
            ))),
            plan => {
                let frame = self.ctx.execute_logical_plan(plan).await?;
                Ok(Output::Rows(frame.execute_stream().await?))
            }
        }
    }

    /// Every namespace, as schema names (nested ones dotted), sorted.
    pub async fn namespaces(&self) -> Result<Vec<String>, SqlError> {
        Ok(provider::all_namespaces(self.catalog.as_ref())
            .await?
            .iter()
            .map(provider::schema_name)
            .collect())
    }

    /// The tables of `schema` (a dotted namespace), sorted.
    pub async fn tables(&self, schema: &str) -> Result<Vec<String>, SqlError> {
        let namespace = self.namespace(schema)?;
        let mut tables: Vec<String> = self
            .catalog
            .list_tables(&namespace)
            .await?
            .into_iter()
            .map(|t| t.name().to_string())
            .collect();
        tables.sort();
        Ok(tables)
    }

    // ---- DDL: these reach the catalog directly.

    async fn create_table(
        &self,
        create: CreateMemoryTable,
        partitioning: Option<&[PartitionTerm]>,
        ctas_query: Option<String>,
    ) -> Result<Output, SqlError> {
        let ident = self.ident(&create.name)?;
        let shown = display_ident(&ident);
        if create.temporary {
            return Err(SqlError::new("temporary tables are not supported"));
        }
        if create.or_replace {
            return Err(SqlError::new(
                "CREATE OR REPLACE TABLE is not supported yet; DROP TABLE first",
            ));
        }
        if !create.constraints.is_empty() {
            return Err(SqlError::new(
                "table constraints (PRIMARY KEY, UNIQUE) are not supported; columns may be NOT NULL",
            ));
        }
        if !create.column_defaults.is_empty() {
            return Err(SqlError::new("column DEFAULT values are not supported"));
        }
        if self.catalog.table_exists(&ident).await? {
            if create.if_not_exists {
                return Ok(Output::Done(format!(
                    "table {shown} already exists; nothing done"
                )));
            }
            return Err(SqlError::new(format!("table {shown} already exists")));
        }
        let arrow_schema = iceberg_friendly_schema(create.input.schema().as_arrow());
        let schema = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&arrow_schema)
            .map_err(|err| {
                SqlError::new(format!(
                    "cannot create {shown}: {}",
                    error::describe_iceberg(&err)
                ))
            })?;
        let spec = partition_spec(&schema, partitioning.unwrap_or_default())?;
        let creation = TableCreation::builder()
            .name(ident.name().to_string())
            .schema(schema)
            .partition_spec(spec)
            .build();
        match self.catalog.create_table(ident.namespace(), creation).await {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::NamespaceNotFound => {
                return Err(SqlError::new(format!(
                    "cannot create {shown}: {}",
                    self.missing_namespace(ident.namespace()).await
                )));
            }
            Err(err) => return Err(err.into()),
        }
        let Some(query) = ctas_query else {
            return Ok(Output::Done(format!("created table {shown}")));
        };
        let insert = format!("INSERT INTO {} {query}", quoted_reference(&ident));
        let rows = match self.insert(&insert).await {
            Ok(rows) => rows,
            Err(err) => {
                return Err(SqlError::new(format!(
                    "created table {shown}, but filling it failed: {err}"
                )));
            }
        };
        Ok(Output::Done(format!(
            "created table {shown} with {rows} rows"
        )))
    }

    /// Runs an `INSERT` statement (plain SQL, no rewriting) and returns how many rows it added.
    async fn insert(&self, sql: &str) -> Result<u64, SqlError> {
        let plan = self.ctx.state().create_logical_plan(sql).await?;
        let batches: Vec<arrow::array::RecordBatch> =
            self.ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok(count_of(&batches))
    }

    async fn drop_table(&self, drop: DropTable) -> Result<Output, SqlError> {
        let ident = self.ident(&drop.name)?;
        let shown = display_ident(&ident);
        match self.catalog.drop_table(&ident).await {
            Ok(()) => Ok(Output::Done(format!("dropped table {shown}"))),
            Err(err) if provider::is_not_found(&err) => {
                if drop.if_exists {
                    Ok(Output::Done(format!(
                        "table {shown} does not exist; nothing done"
                    )))
                } else {
                    Err(SqlError::new(self.missing_table(&ident).await))
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn create_schema(&self, create: CreateCatalogSchema) -> Result<Output, SqlError> {
        let name = create
            .schema_name
            .strip_prefix(&format!("{CATALOG}."))
            .unwrap_or(&create.schema_name);
        let namespace = self.namespace(name)?;
        match self
            .catalog
            .create_namespace(&namespace, HashMap::new())
            .await
        {
            Ok(_) => Ok(Output::Done(format!("created schema {name}"))),
            Err(err) if err.kind() == ErrorKind::NamespaceAlreadyExists => {
                if create.if_not_exists {
                    Ok(Output::Done(format!(
                        "schema {name} already exists; nothing done"
                    )))
                } else {
                    Err(SqlError::new(format!("schema {name} already exists")))
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn drop_schema(&self, drop: DropCatalogSchema) -> Result<Output, SqlError> {
        let name = match &drop.name {
            SchemaReference::Bare { schema } => schema.to_string(),
            SchemaReference::Full { catalog, schema } if catalog.as_ref() == CATALOG => {
                schema.to_string()
            }
            SchemaReference::Full { catalog, schema } => format!("{catalog}.{schema}"),
        };
        if drop.cascade {
            return Err(SqlError::new(
                "DROP SCHEMA ... CASCADE is not supported; drop its tables first",
            ));
        }
        let namespace = self.namespace(&name)?;
        match self.catalog.drop_namespace(&namespace).await {
            Ok(()) => Ok(Output::Done(format!("dropped schema {name}"))),
            Err(err) if err.kind() == ErrorKind::NamespaceNotFound => {
                if drop.if_exists {
                    Ok(Output::Done(format!(
                        "schema {name} does not exist; nothing done"
                    )))
                } else {
                    Err(SqlError::new(self.missing_namespace(&namespace).await))
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    // ---- names and the errors about them

    /// Spark's spelling of metadata tables, `ns.t.snapshots` (and `t.snapshots`,
    /// `floe.ns.t.snapshots`), becomes Floe's `ns."t$snapshots"` in the relations a query,
    /// `INSERT`, `DELETE` or `UPDATE` reads, unless a real table has that name: a real table wins.
    async fn spell_metadata_tables(&self, statement: &mut DFStatement) {
        let inner = match statement {
            DFStatement::Statement(inner) => inner,
            DFStatement::Explain(explain) => {
                return Box::pin(self.spell_metadata_tables(&mut explain.statement)).await;
            }
            _ => return,
        };
        if !matches!(
            inner.as_ref(),
            SqlStatement::Query(_)
                | SqlStatement::Insert(_)
                | SqlStatement::Delete(_)
                | SqlStatement::Update(_)
        ) {
            return;
        }
        let mut names = Vec::new();
        let _ = visit_relations(inner.as_ref(), |name: &ObjectName| {
            if !names.contains(name) {
                names.push(name.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let mut renames = Vec::new();
        for name in names {
            if let Some(renamed) = self.metadata_spelling(&name).await {
                renames.push((name, renamed));
            }
        }
        if renames.is_empty() {
            return;
        }
        let _ = visit_relations_mut(inner.as_mut(), |name: &mut ObjectName| {
            if let Some((_, renamed)) = renames.iter().find(|(old, _)| old == name) {
                *name = renamed.clone();
            }
            ControlFlow::<()>::Continue(())
        });
    }

    /// `[[floe.]ns.]t.<metadata table>` as `[[floe.]ns.]"t$<metadata table>"`, when that is what
    /// it means: no real table has the name, and either the table `t` exists or the name cannot
    /// mean a real table at all (`sales.orders.files`: there is no catalog `sales`).
    async fn metadata_spelling(&self, name: &ObjectName) -> Option<ObjectName> {
        let normalize = self
            .ctx
            .state()
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization;
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|part| {
                part.as_ident().map(|ident| {
                    if ident.quote_style.is_none() && normalize {
                        ident.value.to_lowercase()
                    } else {
                        ident.value.clone()
                    }
                })
            })
            .collect::<Option<_>>()?;
        let (kind, rest) = parts.split_last()?;
        let kind = metadata_tables::MetadataTable::parse(kind)?;
        let (table, path) = rest.split_last()?;
        let (schema, real) = match path {
            [] => (self.default_schema(), Some((table.clone(), kind.name()))),
            [schema] => {
                let real = (schema == CATALOG).then(|| (table.clone(), kind.name()));
                (schema.clone(), real)
            }
            [catalog, schema] if catalog == CATALOG => (schema.clone(), None),
            _ => return None,
        };
        let exists = |schema: &str, table: &str| {
            let ident = namespace_of(schema).map(|ns| TableIdent::new(ns, table.to_string()));
            async move {
                match ident {
                    Some(ident) => self.catalog.table_exists(&ident).await.unwrap_or(false),
                    None => false,
                }
            }
        };
        if let Some((real_schema, real_table)) = &real
            && exists(real_schema, real_table).await
        {
            return None;
        }
        if real.is_some() && !exists(&schema, table).await {
            return None;
        }
        let mut renamed: Vec<Ident> = path
            .iter()
            .map(|part| Ident::with_quote('"', part.clone()))
            .collect();
        renamed.push(Ident::with_quote('"', format!("{table}${}", kind.name())));
        Some(ObjectName::from(renamed))
    }

    fn default_schema(&self) -> String {
        self.ctx
            .state()
            .config_options()
            .catalog
            .default_schema
            .clone()
    }

    fn namespace(&self, schema: &str) -> Result<NamespaceIdent, SqlError> {
        namespace_of(schema)
            .ok_or_else(|| SqlError::new(format!("{schema:?} is not a schema name")))
    }

    /// The Iceberg name of a table reference in this session's catalog.
    fn ident(&self, reference: &TableReference) -> Result<TableIdent, SqlError> {
        if let Some(catalog) = reference.catalog()
            && catalog != CATALOG
        {
            return Err(unknown_catalog(catalog));
        }
        let schema = reference
            .schema()
            .map(str::to_string)
            .unwrap_or_else(|| self.default_schema());
        Ok(TableIdent::new(
            self.namespace(&schema)?,
            reference.table().to_string(),
        ))
    }

    /// Turns DataFusion's "table 'x' not found" into which name is unknown and what exists.
    async fn explain(
        &self,
        err: datafusion::error::DataFusionError,
        references: &[TableReference],
    ) -> SqlError {
        let message = describe(&err);
        if !(message.starts_with("table '") && message.contains("' not found")) {
            return SqlError::new(message);
        }
        for reference in references {
            let resolved = reference.clone().resolve(CATALOG, &self.default_schema());
            if resolved.catalog.as_ref() != CATALOG {
                return unknown_catalog(&resolved.catalog);
            }
            let Some(namespace) = namespace_of(&resolved.schema) else {
                continue;
            };
            let base = TableSpec::parse(&resolved.table).base.to_string();
            let ident = TableIdent::new(namespace, base);
            if let Ok(false) = self.catalog.table_exists(&ident).await {
                return SqlError::new(self.missing_table(&ident).await);
            }
        }
        SqlError::new(message)
    }

    async fn missing_table(&self, ident: &TableIdent) -> String {
        let namespace = ident.namespace();
        match self.catalog.namespace_exists(namespace).await {
            Ok(true) => {
                let schema = provider::schema_name(namespace);
                let tables = self.tables(&schema).await.unwrap_or_default();
                format!(
                    "table {} does not exist; tables in {schema}: {}",
                    display_ident(ident),
                    list_or_none(tables.iter())
                )
            }
            _ => format!(
                "table {} does not exist: {}",
                display_ident(ident),
                self.missing_namespace(namespace).await
            ),
        }
    }

    async fn missing_namespace(&self, namespace: &NamespaceIdent) -> String {
        let existing = self.namespaces().await.unwrap_or_default();
        format!(
            "schema {} does not exist; schemas: {}",
            provider::schema_name(namespace),
            list_or_none(existing.iter()),
        )
    }
}

/// `CreateView` → `CREATE VIEW`.
fn statement_words(name: &str) -> String {
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

fn unknown_catalog(catalog: &str) -> SqlError {
    SqlError::new(format!(
        "unknown catalog {catalog}: the only catalog is {CATALOG}; a nested namespace is one \
         quoted schema name, e.g. \"{catalog}.sub\".table"
    ))
}

/// `"ns.sub"."table"`
fn quoted_reference(ident: &TableIdent) -> String {
    format!(
        "{}.{}",
        rewrite::quote_ident(&provider::schema_name(ident.namespace())),
        rewrite::quote_ident(ident.name())
    )
}

/// The `count` of an `INSERT`'s result.
fn count_of(batches: &[arrow::array::RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|batch| {
            batch
                .column_by_name("count")?
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|counts| counts.iter().flatten().sum::<u64>())
        })
        .sum()
}

/// The Iceberg partition spec of `PARTITIONED BY` terms over `schema`.
fn partition_spec(
    schema: &Schema,
    terms: &[PartitionTerm],
) -> Result<UnboundPartitionSpec, SqlError> {
    let mut builder = UnboundPartitionSpec::builder();
    for term in terms {
        let Some(field) = schema.field_by_name(&term.column) else {
            let columns: Vec<&str> = schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            return Err(SqlError::new(format!(
                "PARTITIONED BY names column {}, which the table does not have; its columns are: {}",
                term.column,
                columns.join(", ")
            )));
        };
        let name = match term.transform {
            Transform::Identity => term.column.clone(),
            Transform::Bucket(_) => format!("{}_bucket", term.column),
            Transform::Truncate(_) => format!("{}_trunc", term.column),
            Transform::Year => format!("{}_year", term.column),
            Transform::Month => format!("{}_month", term.column),
            Transform::Day => format!("{}_day", term.column),
            Transform::Hour => format!("{}_hour", term.column),
            _ => format!("{}_null", term.column),
        };
        builder = builder
            .add_partition_field(field.id, name, term.transform)
            .map_err(|err| {
                SqlError::new(format!(
                    "cannot partition by {} of {}: {}",
                    term.transform,
                    term.column,
                    error::describe_iceberg(&err)
                ))
            })?;
    }
    Ok(builder.build())
}

/// Arrow types as Iceberg has them: SQL's `TIMESTAMP` is nanoseconds in DataFusion but
/// microseconds in Iceberg (before v3), small integers are `int`, every string is `string`.
fn iceberg_friendly_schema(schema: &ArrowSchema) -> ArrowSchema {
    let fields: Fields = schema.fields().iter().map(|f| friendly_field(f)).collect();
    ArrowSchema::new(fields)
}

fn friendly_field(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(friendly_type(field.data_type()))
}

fn friendly_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(_, zone) => DataType::Timestamp(
            TimeUnit::Microsecond,
            zone.as_ref().map(|_| "+00:00".into()),
        ),
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::List(item) | DataType::LargeList(item) => {
            DataType::List(Arc::new(friendly_field(item)))
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| friendly_field(f)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod scan_types_tests;
#[cfg(test)]
mod tests;
