//! The table both maintenance test files work on: a catalog in a temp dir, one table `s.t`
//! written with SQL through the commit engine.

use std::sync::Arc;

use floe_commit::Catalog;
use floe_commit::open::{OpenOptions, open};
use floe_sql::{EmbeddedCatalog, Session};
use floe_store::TableName;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub catalog: Arc<Catalog>,
    pub table: TableName,
}

impl Fixture {
    /// A fresh catalog with schema `s` and table `s.t` created by `create_table` (SQL).
    pub async fn with_table(create_table: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(
            open(&OpenOptions::new(dir.path().join("data")))
                .await
                .unwrap(),
        );
        let fixture = Self {
            _dir: dir,
            catalog,
            table: TableName::new(vec!["s".to_string()], "t"),
        };
        fixture.sql("CREATE SCHEMA s").await;
        fixture.sql(create_table).await;
        fixture
    }

    /// The data dir the catalog lives in, for opening a second engine on it.
    #[allow(dead_code)] // not every test file that includes this module needs it
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn session(&self) -> Session {
        Session::new(Arc::new(EmbeddedCatalog::new(self.catalog.clone())))
    }

    /// Runs `sql` through the embedded SQL engine; returns the last statement's rows.
    pub async fn sql(&self, sql: &str) -> Vec<arrow::array::RecordBatch> {
        self.session()
            .run(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .into_iter()
            .flatten()
            .collect()
    }
}
