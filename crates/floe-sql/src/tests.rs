//! Sessions over an embedded catalog in a temporary data dir: every statement kind end to end
//! through DataFusion, iceberg-rust and Floe's commit engine.

use arrow::array::{Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use futures::TryStreamExt;
use iceberg::spec::{PrimitiveType, Transform, Type};
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use tempfile::TempDir;

use super::*;

struct Fixture {
    session: Session,
    _dir: TempDir,
}

async fn session() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = floe_commit::open::OpenOptions::new(dir.path().join("data"));
    let session = Session::open_embedded(&options).await.unwrap();
    Fixture { session, _dir: dir }
}

/// The rows of the last statement of `sql`, as CSV with a header.
async fn csv(session: &Session, sql: &str) -> String {
    let results = session
        .run(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    to_csv(results.last().unwrap())
}

fn to_csv(batches: &[RecordBatch]) -> String {
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for batch in batches {
            writer.write(batch).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}

async fn error(session: &Session, sql: &str) -> String {
    match session.run(sql).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(err) => err.to_string(),
    }
}

fn int64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(column).unwrap();
            let array = array.as_any().downcast_ref::<Int64Array>().unwrap();
            array.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_insert_select_round_trip() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id BIGINT NOT NULL, customer VARCHAR, amount DOUBLE);
         INSERT INTO sales.orders VALUES (1, 'ada', 10.5), (2, 'bob', 20.0);
         INSERT INTO sales.orders SELECT id + 10, upper(customer), amount * 2 FROM sales.orders;",
    )
    .await
    .unwrap();
    assert_eq!(
        csv(s, "SELECT * FROM sales.orders ORDER BY id").await,
        "id,customer,amount\n1,ada,10.5\n2,bob,20.0\n11,ADA,21.0\n12,BOB,40.0\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT count(*) AS n, sum(amount) AS total FROM sales.orders"
        )
        .await,
        "n,total\n4,91.5\n"
    );
    // The NOT NULL column is required in Iceberg.
    let table = s
        .catalog()
        .load_table(&TableIdent::from_strs(["sales", "orders"]).unwrap())
        .await
        .unwrap();
    let schema = table.metadata().current_schema();
    assert!(schema.field_by_name("id").unwrap().required);
    assert!(!schema.field_by_name("customer").unwrap().required);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_reports_its_row_count_and_commits_one_append() {
    let f = session().await;
    let s = &f.session;
    s.run("CREATE SCHEMA default; CREATE TABLE t (id BIGINT)")
        .await
        .unwrap();
    assert_eq!(
        csv(s, "INSERT INTO t VALUES (1), (2), (3)").await,
        "count\n3\n"
    );
    assert_eq!(
        csv(s, "SELECT operation FROM t$snapshots").await,
        "operation\nappend\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_and_filters_reach_the_iceberg_scan() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT, name VARCHAR, note VARCHAR);
         INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z');",
    )
    .await
    .unwrap();
    let plan = csv(s, "EXPLAIN SELECT name FROM t WHERE id > 1").await;
    let scan = plan
        .lines()
        .find(|line| line.contains("IcebergTableScan"))
        .unwrap_or_else(|| panic!("no Iceberg scan in {plan}"));
    assert!(
        scan.contains("projection:[name,id]") || scan.contains("projection:[id,name]"),
        "{scan}"
    );
    assert!(scan.contains("predicate:[id > 1]"), "{scan}");
    assert_eq!(
        csv(s, "SELECT name FROM t WHERE id > 1 ORDER BY name").await,
        "name\nb\nc\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_tables_write_one_file_per_partition() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE events (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO events VALUES (1, 'eu'), (2, 'us'), (3, 'eu');",
    )
    .await
    .unwrap();
    let table = s
        .catalog()
        .load_table(&TableIdent::from_strs(["default", "events"]).unwrap())
        .await
        .unwrap();
    let spec = table.metadata().default_partition_spec();
    assert_eq!(spec.fields().len(), 1);
    assert_eq!(spec.fields()[0].name, "region");
    assert_eq!(spec.fields()[0].transform, Transform::Identity);
    assert_eq!(
        csv(
            s,
            "SELECT partition, record_count FROM events$files ORDER BY partition"
        )
        .await,
        "partition,record_count\n{region=eu},2\n{region=us},1\n"
    );
    assert_eq!(
        csv(s, "SELECT id FROM events WHERE region = 'eu' ORDER BY id").await,
        "id\n1\n3\n"
    );
    let err = error(s, "CREATE TABLE bad (id BIGINT) PARTITIONED BY (nope)").await;
    assert!(err.contains("column nope") && err.contains("id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_partition_transforms_are_accepted() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT, ts TIMESTAMP, s VARCHAR)
           PARTITIONED BY (bucket(4, id), day(ts), truncate(2, s));",
    )
    .await
    .unwrap();
    let table = s
        .catalog()
        .load_table(&TableIdent::from_strs(["default", "t"]).unwrap())
        .await
        .unwrap();
    let fields: Vec<_> = table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.transform))
        .collect();
    assert_eq!(
        fields,
        [
            ("id_bucket".to_string(), Transform::Bucket(4)),
            ("ts_day".to_string(), Transform::Day),
            ("s_trunc".to_string(), Transform::Truncate(2)),
        ]
    );
    // SQL's TIMESTAMP (nanoseconds in DataFusion) is Iceberg's microsecond timestamp.
    let ts = table
        .metadata()
        .current_schema()
        .field_by_name("ts")
        .unwrap();
    assert_eq!(*ts.field_type, Type::Primitive(PrimitiveType::Timestamp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_by_snapshot_and_by_timestamp() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1);",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.run("INSERT INTO t VALUES (2)").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.run("INSERT INTO t VALUES (3)").await.unwrap();

    let history = s
        .run("SELECT snapshot_id, made_current_at FROM t$history ORDER BY made_current_at")
        .await
        .unwrap()
        .remove(0);
    let ids = int64s(&history, "snapshot_id");
    let times: Vec<i64> = history
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name("made_current_at").unwrap();
            let array = array
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            (0..array.len()).map(|i| array.value(i)).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    let expected = ["id\n1\n", "id\n1\n2\n", "id\n1\n2\n3\n"];
    for (i, rows) in expected.iter().enumerate() {
        let by_id = format!("SELECT * FROM t FOR VERSION AS OF {} ORDER BY id", ids[i]);
        assert_eq!(csv(s, &by_id).await, *rows, "{by_id}");
        let at = chrono::DateTime::from_timestamp_micros(times[i]).unwrap();
        let by_time = format!(
            "SELECT * FROM t FOR SYSTEM_TIME AS OF '{}' ORDER BY id",
            at.format("%Y-%m-%d %H:%M:%S%.3f")
        );
        assert_eq!(csv(s, &by_time).await, *rows, "{by_time}");
        let spark = format!(
            "SELECT * FROM t TIMESTAMP AS OF '{}' ORDER BY id",
            at.to_rfc3339()
        );
        assert_eq!(csv(s, &spark).await, *rows, "{spark}");
    }
    let err = error(s, "SELECT * FROM t VERSION AS OF 12345").await;
    assert!(
        err.contains("no snapshot 12345") && err.contains(&ids[0].to_string()),
        "{err}"
    );
    let err = error(s, "SELECT * FROM t FOR SYSTEM_TIME AS OF '2001-01-01'").await;
    assert!(err.contains("no snapshot at 2001-01-01"), "{err}");
    // Time travel is read-only.
    let err = error(s, &format!("INSERT INTO \"t@v{}\" VALUES (9)", ids[0])).await;
    assert_eq!(
        err,
        format!(
            "t@v{} is a past version or metadata table of t: it is read-only",
            ids[0]
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_reads_the_schema_of_its_snapshot() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1);",
    )
    .await
    .unwrap();
    let first = int64s(
        &s.run("SELECT snapshot_id FROM t$snapshots").await.unwrap()[0],
        "snapshot_id",
    )[0];
    let ident = TableIdent::from_strs(["default", "t"]).unwrap();
    let table = s.catalog().load_table(&ident).await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_schema()
        .add_column(AddColumn::optional(
            "note",
            Type::Primitive(PrimitiveType::String),
        ))
        .apply(tx)
        .unwrap();
    tx.commit(s.catalog().as_ref()).await.unwrap();
    s.run("INSERT INTO t VALUES (2, 'new')").await.unwrap();
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,note\n1,\n2,new\n"
    );
    assert_eq!(
        csv(s, &format!("SELECT * FROM t VERSION AS OF {first}")).await,
        "id\n1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_tables_describe_the_table() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1), (2);
         INSERT INTO t VALUES (3);",
    )
    .await
    .unwrap();
    let snapshots = &s
        .run("SELECT snapshot_id, parent_id FROM t$snapshots ORDER BY committed_at")
        .await
        .unwrap()[0];
    let ids = int64s(snapshots, "snapshot_id");
    assert_eq!(ids.len(), 2);
    assert_eq!(
        csv(s, "SELECT snapshot_id, parent_id, is_current_ancestor FROM t$history ORDER BY made_current_at").await,
        format!(
            "snapshot_id,parent_id,is_current_ancestor\n{},,true\n{},{},true\n",
            ids[0], ids[1], ids[0]
        )
    );
    assert_eq!(
        csv(s, "SELECT name, type, snapshot_id FROM t$refs").await,
        format!("name,type,snapshot_id\nmain,BRANCH,{}\n", ids[1])
    );
    assert_eq!(
        csv(s, "SELECT count(*) AS manifests FROM t$manifests").await,
        "manifests\n2\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT content, file_format, record_count FROM t$files ORDER BY record_count"
        )
        .await,
        "content,file_format,record_count\n0,parquet,1\n0,parquet,2\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_made_elsewhere_are_seen_at_once() {
    let f = session().await;
    let s = &f.session;
    s.run("CREATE SCHEMA default").await.unwrap();
    // Planned once before the table exists...
    let err = error(s, "SELECT * FROM later").await;
    assert!(err.contains("does not exist"), "{err}");
    // ... then created by another session on the same catalog.
    let other = Session::new(s.catalog().clone());
    other
        .run("CREATE TABLE later (id BIGINT); INSERT INTO later VALUES (7)")
        .await
        .unwrap();
    assert_eq!(csv(s, "SELECT * FROM later").await, "id\n7\n");
    assert_eq!(
        csv(
            s,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'default'"
        )
        .await,
        "table_name\nlater\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_explained_with_what_exists() {
    let f = session().await;
    let s = &f.session;
    s.run("CREATE SCHEMA sales; CREATE TABLE sales.orders (id BIGINT); CREATE SCHEMA hr")
        .await
        .unwrap();
    let mut errors = Vec::new();
    let err = error(s, "SELECT * FROM sales.order").await;
    assert_eq!(
        err,
        "table sales.order does not exist; tables in sales: orders"
    );
    errors.push(err);
    let err = error(s, "SELECT * FROM salez.orders").await;
    assert_eq!(
        err,
        "table salez.orders does not exist: schema salez does not exist; schemas: hr, sales"
    );
    errors.push(err);
    let err = error(s, "INSERT INTO sales.nope VALUES (1)").await;
    assert!(err.contains("tables in sales: orders"), "{err}");
    errors.push(err);
    let err = error(s, "DROP TABLE sales.nope").await;
    assert!(err.contains("tables in sales: orders"), "{err}");
    errors.push(err);
    let err = error(s, "SELECT * FROM other.sales.orders").await;
    assert!(err.contains("unknown catalog other"), "{err}");
    errors.push(err);
    let err = error(s, "SELEC 1").await;
    assert!(err.starts_with("syntax error"), "{err}");
    errors.push(err);
    let err = error(s, "CREATE VIEW v AS SELECT 1").await;
    assert_eq!(err, "CREATE VIEW is not supported by floe sql");
    errors.push(err);
    // None of them is a Debug dump or carries an error-kind prefix.
    for err in errors {
        assert!(
            !err.contains("DataFusionError") && !err.contains("Error {") && !err.contains("=>"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_tables_are_created_and_dropped() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA a;
         CREATE SCHEMA IF NOT EXISTS a;
         CREATE SCHEMA \"a.b\";
         CREATE TABLE \"a.b\".t (id BIGINT);
         INSERT INTO \"a.b\".t VALUES (5);
         CREATE TABLE IF NOT EXISTS \"a.b\".t (other VARCHAR);",
    )
    .await
    .unwrap();
    assert_eq!(s.namespaces().await.unwrap(), ["a", "a.b"]);
    assert_eq!(csv(s, "SELECT * FROM floe.\"a.b\".t").await, "id\n5\n");
    assert_eq!(error(s, "CREATE SCHEMA a").await, "schema a already exists");
    assert_eq!(
        error(s, "CREATE TABLE \"a.b\".t (id BIGINT)").await,
        "table a.b.t already exists"
    );
    s.run("DROP TABLE \"a.b\".t; DROP TABLE IF EXISTS \"a.b\".t; DROP SCHEMA \"a.b\"")
        .await
        .unwrap();
    assert_eq!(s.namespaces().await.unwrap(), ["a"]);
    s.run("DROP SCHEMA IF EXISTS \"a.b\"; DROP SCHEMA a")
        .await
        .unwrap();
    assert!(s.namespaces().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_as_select_fills_the_table() {
    let f = session().await;
    let s = &f.session;
    let results = s
        .run(
            "CREATE SCHEMA default;
             CREATE TABLE src (id BIGINT, name VARCHAR);
             INSERT INTO src VALUES (1, 'a'), (2, 'b');
             CREATE TABLE copy AS SELECT id * 10 AS id, name FROM src WHERE id > 1;",
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(csv(s, "SELECT * FROM copy").await, "id,name\n20,b\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stream_as_batches() {
    let f = session().await;
    let s = &f.session;
    s.run("CREATE SCHEMA default; CREATE TABLE t (id BIGINT); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let statement = prepare("SELECT * FROM t ORDER BY id").unwrap().remove(0);
    let Output::Rows(stream) = s.execute(&statement).await.unwrap() else {
        panic!("a query has rows");
    };
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(int64s(&batches, "id"), [1, 2]);
    let statement = prepare("DROP TABLE t").unwrap().remove(0);
    let Output::Done(message) = s.execute(&statement).await.unwrap() else {
        panic!("DROP has no rows");
    };
    assert_eq!(message, "dropped table default.t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_update_rewrite_only_the_files_with_matching_rows() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         INSERT INTO t VALUES (10, 'x'), (11, 'y');",
    )
    .await
    .unwrap();
    let files_before = csv(s, "SELECT file_path FROM t$files ORDER BY file_path").await;
    let untouched = files_before
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect::<Vec<_>>();
    let before = int64s(
        &s.run("SELECT snapshot_id FROM t$snapshots ORDER BY committed_at")
            .await
            .unwrap()[0],
        "snapshot_id",
    );

    assert_eq!(csv(s, "DELETE FROM t WHERE id = 2").await, "count\n1\n");
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,name\n1,a\n3,c\n10,x\n11,y\n"
    );
    // The second insert's file was not rewritten.
    let files_after = csv(s, "SELECT file_path FROM t$files").await;
    assert_eq!(
        untouched
            .iter()
            .filter(|f| files_after.contains(*f))
            .count(),
        1,
        "{files_before} → {files_after}"
    );

    assert_eq!(
        csv(s, "UPDATE t SET name = upper(name) WHERE id >= 3").await,
        "count\n3\n"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,name\n1,a\n3,C\n10,X\n11,Y\n"
    );
    // Nothing matches: no snapshot.
    assert_eq!(csv(s, "DELETE FROM t WHERE id = 99").await, "count\n0\n");
    assert_eq!(
        csv(s, "SELECT operation FROM t$snapshots ORDER BY committed_at").await,
        "operation\nappend\nappend\noverwrite\noverwrite\n"
    );
    // Time travel to before the delete still sees the old rows.
    assert_eq!(
        csv(
            s,
            &format!(
                "SELECT * FROM t FOR VERSION AS OF {} ORDER BY id",
                before[1]
            )
        )
        .await,
        "id,name\n1,a\n2,b\n3,c\n10,x\n11,y\n"
    );
    let err = error(s, "UPDATE t SET id = NULL WHERE id = 1").await;
    assert!(err.contains("id"), "{err}");
    // A whole-table delete.
    assert_eq!(csv(s, "DELETE FROM t").await, "count\n4\n");
    assert_eq!(csv(s, "SELECT count(*) AS n FROM t").await, "n\n0\n");
    let err = error(s, "UPDATE t SET nope = 1").await;
    assert!(err.contains("no column nope"), "{err}");
    let err = error(s, &format!("DELETE FROM \"t@v{}\"", before[0])).await;
    assert!(err.contains("read-only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_update_keep_partitions() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE events (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO events VALUES (1, 'eu'), (2, 'us'), (3, 'eu');",
    )
    .await
    .unwrap();
    assert_eq!(
        csv(s, "DELETE FROM events WHERE id = 3").await,
        "count\n1\n"
    );
    assert_eq!(
        csv(s, "UPDATE events SET id = id * 10 WHERE region = 'us'").await,
        "count\n1\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT partition, record_count FROM events$files ORDER BY partition"
        )
        .await,
        "partition,record_count\n{region=eu},1\n{region=us},1\n"
    );
    assert_eq!(
        csv(s, "SELECT id, region FROM events ORDER BY id").await,
        "id,region\n1,eu\n20,us\n"
    );
    let err = error(s, "UPDATE events SET region = 'x'").await;
    assert!(err.contains("partitioned by it"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_reads_only_the_files_the_predicate_may_match() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT, name VARCHAR);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');
         INSERT INTO t VALUES (10, 'x'), (11, 'y');",
    )
    .await
    .unwrap();
    let ident = TableIdent::from_strs(["default", "t"]).unwrap();
    let table = s.catalog().load_table(&ident).await.unwrap();
    let reference = datafusion::common::TableReference::bare("t");
    let candidates = |sql: &str| {
        let expr = datafusion::sql::sqlparser::parser::Parser::new(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
        )
        .try_with_sql(sql)
        .unwrap()
        .parse_expr()
        .unwrap();
        let (s, table, reference) = (s, &table, &reference);
        async move {
            s.candidate_files(reference, table, Some(&expr))
                .await
                .map(|files| files.len())
        }
    };
    assert_eq!(candidates("id = 2").await, Some(1));
    assert_eq!(candidates("id > 100").await, Some(0));
    assert_eq!(candidates("id = 2 OR id = 10").await, Some(2));
    // Under NOT, a partly converted predicate would prune wrongly: no pruning.
    assert_eq!(candidates("NOT (id = 2 AND upper(name) = 'B')").await, None);
    assert_eq!(
        csv(s, "DELETE FROM t WHERE NOT (id = 2 AND upper(name) = 'B')").await,
        "count\n3\n"
    );
    assert_eq!(csv(s, "SELECT * FROM t").await, "id,name\n2,b\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_with_delete_files_are_refused_for_delete_and_update() {
    use iceberg::spec::{
        DataContentType, DataFileBuilder, DataFileFormat, MAIN_BRANCH, ManifestList,
        ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot, SnapshotReference,
        SnapshotRetention, Summary,
    };

    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1), (2);",
    )
    .await
    .unwrap();
    let ident = TableIdent::from_strs(["default", "t"]).unwrap();
    let table = s.catalog().load_table(&ident).await.unwrap();
    let metadata = table.metadata();
    let file_io = table.file_io();
    let location = metadata.location();
    let current = metadata.current_snapshot().unwrap();

    // A snapshot with a position-delete file, as a merge-on-read writer (Spark) makes it.
    let data_path = s
        .run("SELECT file_path FROM t$files")
        .await
        .unwrap()
        .remove(0);
    let data_path = to_csv(&data_path).lines().nth(1).unwrap().to_string();
    let delete_file = DataFileBuilder::default()
        .content(DataContentType::PositionDeletes)
        .file_path(format!("{location}/data/deletes.parquet"))
        .file_format(DataFileFormat::Parquet)
        .record_count(1)
        .file_size_in_bytes(100)
        .referenced_data_file(Some(data_path))
        .build()
        .unwrap();
    let snapshot_id = 4242;
    let mut writer = ManifestWriterBuilder::new(
        file_io
            .new_output(format!("{location}/metadata/deletes-m0.avro"))
            .unwrap(),
        Some(snapshot_id),
        metadata.current_schema().clone(),
        metadata.default_partition_spec().as_ref().clone(),
    )
    .build_v2_deletes();
    writer.add_file(delete_file, -1).unwrap();
    let delete_manifest = writer.write_manifest_file().await.unwrap();
    let old = file_io
        .new_input(current.manifest_list())
        .unwrap()
        .read()
        .await
        .unwrap();
    let mut manifests: Vec<_> = ManifestList::parse_with_version(&old, metadata.format_version())
        .unwrap()
        .consume_entries()
        .into_iter()
        .collect();
    manifests.push(delete_manifest);
    let list_path = format!("{location}/metadata/snap-{snapshot_id}-deletes.avro");
    let mut list = ManifestListWriter::v2(
        file_io
            .new_output(&list_path)
            .unwrap()
            .writer()
            .await
            .unwrap(),
        snapshot_id,
        Some(current.snapshot_id()),
        metadata.next_sequence_number(),
    );
    list.add_manifests(manifests.into_iter()).unwrap();
    list.close().await.unwrap();
    let snapshot = Snapshot::builder()
        .with_manifest_list(list_path)
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(current.snapshot_id()))
        .with_sequence_number(metadata.next_sequence_number())
        .with_summary(Summary {
            operation: Operation::Delete,
            additional_properties: Default::default(),
        })
        .with_schema_id(metadata.current_schema_id())
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .build();
    let Some(dml::Committer::Embedded(engine)) = &s.committer else {
        panic!("an embedded session");
    };
    engine
        .commit_table(floe_commit::TableChange {
            table: floe_store::TableName::new(vec!["default".to_string()], "t"),
            requirements: Vec::new(),
            updates: vec![
                iceberg::TableUpdate::AddSnapshot { snapshot },
                iceberg::TableUpdate::SetSnapshotRef {
                    ref_name: MAIN_BRANCH.to_string(),
                    reference: SnapshotReference::new(
                        snapshot_id,
                        SnapshotRetention::branch(None, None, None),
                    ),
                },
            ],
        })
        .await
        .unwrap();

    for sql in [
        "DELETE FROM t WHERE id = 1",
        "UPDATE t SET id = 3 WHERE id = 1",
    ] {
        let err = error(s, sql).await;
        assert!(
            err.contains("has delete files (merge-on-read"),
            "{sql}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_and_inserts_all_land() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1), (2), (3), (4), (5), (6);",
    )
    .await
    .unwrap();
    // A second session on the same data dir: another writer.
    let options = floe_commit::open::OpenOptions::new(f._dir.path().join("data"));
    let other = Session::open_embedded(&options).await.unwrap();
    for (delete, insert) in [(1, 101), (2, 102), (3, 103)] {
        let delete = format!("DELETE FROM t WHERE id = {delete}");
        let insert_sql = format!("INSERT INTO t VALUES ({insert})");
        let update = format!("UPDATE t SET id = id + 1000 WHERE id = {}", insert - 97);
        let (a, b, c) = tokio::join!(s.run(&delete), other.run(&insert_sql), other.run(&update));
        a.unwrap();
        b.unwrap();
        c.unwrap();
    }
    assert_eq!(
        csv(s, "SELECT id FROM t ORDER BY id").await,
        "id\n101\n102\n103\n1004\n1005\n1006\n"
    );
}

/// The message of a statement without rows.
async fn done(session: &Session, sql: &str) -> String {
    let statement = prepare(sql).unwrap().remove(0);
    match session.execute(&statement).await {
        Ok(Output::Done(message)) => message,
        Ok(Output::Rows(_)) => panic!("{sql} returned rows"),
        Err(err) => panic!("{sql}: {err}"),
    }
}

async fn snapshot_ids(session: &Session, table: &str) -> Vec<i64> {
    int64s(
        &session
            .run(&format!(
                "SELECT snapshot_id FROM {table}$snapshots ORDER BY committed_at"
            ))
            .await
            .unwrap()[0],
        "snapshot_id",
    )
}

/// `(name, field id, required)` of the table's current schema.
async fn columns(session: &Session, table: &str) -> Vec<(String, i32, bool)> {
    let table = session
        .catalog()
        .load_table(&TableIdent::from_strs(["default", table]).unwrap())
        .await
        .unwrap();
    table
        .metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.id, f.required))
        .collect()
}

fn owned(columns: &[(&str, i32, bool)]) -> Vec<(String, i32, bool)> {
    columns
        .iter()
        .map(|(name, id, required)| (name.to_string(), *id, *required))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_adds_renames_and_drops_columns() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO t VALUES (1, 'a', 'eu'), (2, 'b', 'us');",
    )
    .await
    .unwrap();
    let first = snapshot_ids(s, "t").await[0];

    assert_eq!(
        done(s, "ALTER TABLE t ADD COLUMN score DOUBLE").await,
        "altered table default.t: added column score"
    );
    s.run("INSERT INTO t VALUES (3, 'c', 'eu', 1.5)")
        .await
        .unwrap();
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,name,region,score\n1,a,eu,\n2,b,us,\n3,c,eu,1.5\n"
    );
    assert_eq!(
        done(s, "ALTER TABLE t RENAME COLUMN name TO label").await,
        "altered table default.t: renamed column name to label"
    );
    // Old files read under the new name: the field id is the same.
    assert_eq!(
        csv(s, "SELECT id, label FROM t WHERE label <> 'b' ORDER BY id").await,
        "id,label\n1,a\n3,c\n"
    );
    assert_eq!(
        done(s, "ALTER TABLE t DROP COLUMN score").await,
        "altered table default.t: dropped column score"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,label,region\n1,a,eu\n2,b,us\n3,c,eu\n"
    );
    // A column added again under a dropped name is a new column: old values do not come back.
    done(s, "ALTER TABLE t ADD COLUMN score DOUBLE NULL").await;
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,label,region,score\n1,a,eu,\n2,b,us,\n3,c,eu,\n"
    );
    assert_eq!(
        columns(s, "t").await,
        owned(&[
            ("id", 1, true),
            ("label", 2, false),
            ("region", 3, false),
            ("score", 5, false)
        ])
    );
    // Time travel still reads the schema of its snapshot.
    assert_eq!(
        csv(
            s,
            &format!("SELECT * FROM t VERSION AS OF {first} ORDER BY id")
        )
        .await,
        "id,name,region\n1,a,eu\n2,b,us\n"
    );
    // Several changes in one statement are one schema change.
    let schemas_before = s
        .catalog()
        .load_table(&TableIdent::from_strs(["default", "t"]).unwrap())
        .await
        .unwrap()
        .metadata()
        .schemas_iter()
        .count();
    assert_eq!(
        done(
            s,
            "ALTER TABLE t ADD COLUMN note VARCHAR, RENAME COLUMN label TO name, DROP COLUMN score"
        )
        .await,
        "altered table default.t: added column note, renamed column label to name, dropped column score"
    );
    let table = s
        .catalog()
        .load_table(&TableIdent::from_strs(["default", "t"]).unwrap())
        .await
        .unwrap();
    assert_eq!(table.metadata().schemas_iter().count(), schemas_before + 1);
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,name,region,note\n1,a,eu,\n2,b,us,\n3,c,eu,\n"
    );
    // IF [NOT] EXISTS that do not apply change nothing.
    assert_eq!(
        done(
            s,
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS note VARCHAR, DROP COLUMN IF EXISTS nope"
        )
        .await,
        "table default.t already has that schema; nothing done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_mistakes_are_explained() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO t VALUES (1, 'a', 'eu');
         CREATE TABLE empty (id BIGINT);",
    )
    .await
    .unwrap();
    let id = snapshot_ids(s, "t").await[0];
    let cases = [
        (
            "ALTER TABLE t RENAME COLUMN nope TO x",
            "default.t has no column nope; its columns are: id, name, region".to_string(),
        ),
        (
            "ALTER TABLE t DROP COLUMN nope",
            "default.t has no column nope; its columns are: id, name, region".to_string(),
        ),
        (
            "ALTER TABLE t ADD COLUMN Name VARCHAR",
            "default.t already has a column named name".to_string(),
        ),
        (
            "ALTER TABLE t RENAME COLUMN id TO name",
            "cannot rename id to name: default.t already has a column named name".to_string(),
        ),
        (
            "ALTER TABLE t DROP COLUMN region",
            "cannot drop region: partition field region (identity) of default.t uses it"
                .to_string(),
        ),
        (
            "ALTER TABLE t ADD COLUMN must BIGINT NOT NULL",
            "cannot add NOT NULL column must to default.t: the table has rows, which would have \
             no value for it; add it without NOT NULL (a nullable column)"
                .to_string(),
        ),
        (
            "ALTER TABLE nope ADD COLUMN x INT",
            "table default.nope does not exist; tables in default: empty, t".to_string(),
        ),
        (
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE ... RENAME TO is not supported by floe sql; it supports ADD COLUMN, \
             RENAME COLUMN and DROP COLUMN"
                .to_string(),
        ),
        (
            "ALTER TABLE t ADD COLUMN x FOO",
            "ADD COLUMN x: not supported: Unsupported SQL type FOO".to_string(),
        ),
        (
            "ALTER TABLE t ADD COLUMN x INT DEFAULT 1",
            "ADD COLUMN x: column option DEFAULT 1 is not supported (only NULL and NOT NULL)"
                .to_string(),
        ),
        (
            &format!("ALTER TABLE \"t@v{id}\" ADD COLUMN x INT"),
            format!(
                "t@v{id} is a past version or metadata table of t: ALTER TABLE cannot change it"
            ),
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(error(s, sql).await, expected, "{sql}");
    }
    // Nothing above changed the schema.
    assert_eq!(
        columns(s, "t").await,
        owned(&[("id", 1, true), ("name", 2, false), ("region", 3, false)])
    );
    assert_eq!(
        done(s, "ALTER TABLE IF EXISTS nope ADD COLUMN x INT").await,
        "table default.nope does not exist; nothing done"
    );
    // An empty table takes a NOT NULL column.
    done(s, "ALTER TABLE empty ADD COLUMN k BIGINT NOT NULL").await;
    assert_eq!(
        columns(s, "empty").await,
        owned(&[("id", 1, false), ("k", 2, true)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_refuses_identifier_fields_and_concurrent_schema_changes() {
    use iceberg::spec::NestedField;

    let f = session().await;
    let s = &f.session;
    s.run("CREATE SCHEMA default").await.unwrap();
    let schema = Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(
                1,
                "key",
                Type::Primitive(PrimitiveType::Long),
            )),
            Arc::new(NestedField::optional(
                2,
                "value",
                Type::Primitive(PrimitiveType::String),
            )),
        ])
        .with_identifier_field_ids([1])
        .build()
        .unwrap();
    s.catalog()
        .create_table(
            &NamespaceIdent::new("default".into()),
            TableCreation::builder()
                .name("keyed".to_string())
                .schema(schema)
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        error(s, "ALTER TABLE keyed DROP COLUMN key").await,
        "cannot drop key: it is an identifier field (row key) of default.keyed"
    );

    // A schema change planned on a schema that another writer has changed since fails whole.
    let ident = TableIdent::from_strs(["default", "keyed"]).unwrap();
    let stale = s.catalog().load_table(&ident).await.unwrap();
    done(s, "ALTER TABLE keyed ADD COLUMN other VARCHAR").await;
    let statement = prepare("ALTER TABLE keyed RENAME COLUMN value TO v").unwrap();
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let parsed =
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &statement[0].sql).unwrap();
    let SqlStatement::AlterTable(alter) = &parsed[0] else {
        panic!("an ALTER TABLE");
    };
    let err = s.alter_on(alter, stale).await.err().unwrap().to_string();
    assert!(
        err.starts_with(
            "default.keyed changed while ALTER TABLE ran (another writer changed its schema), so \
             nothing was changed"
        ),
        "{err}"
    );
    assert_eq!(
        columns(s, "keyed").await,
        owned(&[("key", 1, true), ("value", 2, false), ("other", 3, false)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_overwrite_replaces_the_partitions_it_writes() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE events (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO events VALUES (1, 'eu'), (2, 'us'), (3, 'eu');
         INSERT INTO events VALUES (4, 'ap');",
    )
    .await
    .unwrap();
    let us_file = csv(
        s,
        "SELECT file_path FROM events$files WHERE partition = '{region=us}'",
    )
    .await;
    let before = snapshot_ids(s, "events").await;
    assert_eq!(
        csv(
            s,
            "INSERT OVERWRITE events SELECT id * 10, region FROM events WHERE region = 'eu'"
        )
        .await,
        "count\n2\n"
    );
    assert_eq!(
        csv(s, "SELECT id, region FROM events ORDER BY id").await,
        "id,region\n2,us\n4,ap\n10,eu\n30,eu\n"
    );
    // Only eu was rewritten: the us file is the same one.
    assert_eq!(
        csv(
            s,
            "SELECT file_path FROM events$files WHERE partition = '{region=us}'"
        )
        .await,
        us_file
    );
    assert_eq!(
        csv(
            s,
            "SELECT partition, record_count FROM events$files ORDER BY partition"
        )
        .await,
        "partition,record_count\n{region=ap},1\n{region=eu},2\n{region=us},1\n"
    );
    // A column list, and the TABLE keyword; two partitions at once.
    assert_eq!(
        csv(
            s,
            "INSERT OVERWRITE TABLE events (region, id) VALUES ('us', 7), ('ap', 8), ('ap', 9)"
        )
        .await,
        "count\n3\n"
    );
    assert_eq!(
        csv(s, "SELECT id, region FROM events ORDER BY id").await,
        "id,region\n7,us\n8,ap\n9,ap\n10,eu\n30,eu\n"
    );
    // No rows: no partition to replace, no snapshot.
    assert_eq!(
        csv(
            s,
            "INSERT OVERWRITE events SELECT id, region FROM events WHERE id > 100"
        )
        .await,
        "count\n0\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT operation FROM events$snapshots ORDER BY committed_at"
        )
        .await,
        "operation\nappend\nappend\noverwrite\noverwrite\n"
    );
    // Time travel to before the overwrite sees the old rows.
    assert_eq!(
        csv(
            s,
            &format!(
                "SELECT id FROM events VERSION AS OF {} ORDER BY id",
                before[1]
            )
        )
        .await,
        "id\n1\n2\n3\n4\n"
    );
    let err = error(
        s,
        "INSERT OVERWRITE events PARTITION (region = 'eu') SELECT 1",
    )
    .await;
    assert!(
        err.contains("Partitioned inserts not yet supported"),
        "{err}"
    );
    let err = error(
        s,
        &format!("INSERT OVERWRITE \"events@v{}\" SELECT 1, 'eu'", before[0]),
    )
    .await;
    assert!(err.contains("read-only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_overwrite_replaces_an_unpartitioned_table_whole() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');
         INSERT INTO t VALUES (3, 'c');",
    )
    .await
    .unwrap();
    assert_eq!(
        csv(
            s,
            "INSERT OVERWRITE t SELECT id + 100, upper(name) FROM t WHERE id < 3"
        )
        .await,
        "count\n2\n"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,name\n101,A\n102,B\n"
    );
    assert_eq!(
        csv(s, "SELECT count(*) AS files FROM t$files").await,
        "files\n1\n"
    );
    // No rows: the table is emptied.
    assert_eq!(
        csv(s, "INSERT OVERWRITE t SELECT * FROM t WHERE id < 0").await,
        "count\n0\n"
    );
    assert_eq!(csv(s, "SELECT count(*) AS n FROM t").await, "n\n0\n");
    assert_eq!(
        csv(s, "SELECT operation FROM t$snapshots ORDER BY committed_at").await,
        "operation\nappend\nappend\noverwrite\noverwrite\n"
    );
    let err = error(s, "INSERT OVERWRITE t VALUES (NULL, 'x')").await;
    assert!(err.contains("id"), "{err}");
    assert_eq!(csv(s, "SELECT count(*) AS n FROM t").await, "n\n0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_by_branch_or_tag_name() {
    use iceberg::spec::{SnapshotReference, SnapshotRetention};

    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1);
         INSERT INTO t VALUES (2);",
    )
    .await
    .unwrap();
    let ids = snapshot_ids(s, "t").await;
    s.run("ALTER TABLE t ADD COLUMN note VARCHAR; INSERT INTO t VALUES (3, 'x')")
        .await
        .unwrap();
    let Some(dml::Committer::Embedded(engine)) = &s.committer else {
        panic!("an embedded session");
    };
    engine
        .commit_table(floe_commit::TableChange {
            table: floe_store::TableName::new(vec!["default".to_string()], "t"),
            requirements: Vec::new(),
            updates: vec![
                iceberg::TableUpdate::SetSnapshotRef {
                    ref_name: "audit".to_string(),
                    reference: SnapshotReference::new(
                        ids[0],
                        SnapshotRetention::Tag {
                            max_ref_age_ms: None,
                        },
                    ),
                },
                iceberg::TableUpdate::SetSnapshotRef {
                    ref_name: "dev".to_string(),
                    reference: SnapshotReference::new(
                        ids[1],
                        SnapshotRetention::branch(None, None, None),
                    ),
                },
            ],
        })
        .await
        .unwrap();
    // Each ref reads its snapshot, with the schema of that snapshot.
    assert_eq!(
        csv(s, "SELECT * FROM t FOR VERSION AS OF 'audit' ORDER BY id").await,
        "id\n1\n"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t VERSION AS OF 'dev' ORDER BY id").await,
        "id\n1\n2\n"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t VERSION AS OF 'main' ORDER BY id").await,
        "id,note\n1,\n2,\n3,x\n"
    );
    assert_eq!(
        csv(s, "SELECT count(*) AS n FROM \"t@ref=audit\"").await,
        "n\n1\n"
    );
    assert_eq!(
        error(s, "SELECT * FROM t VERSION AS OF 'nope'").await,
        "table default.t has no branch or tag named \"nope\"; its refs are: audit (tag), dev \
         (branch), main (branch)"
    );
    let err = error(s, "INSERT INTO t VERSION AS OF 'dev' VALUES (9)").await;
    assert!(err.contains("read-only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_tables_in_spark_spelling() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1), (2);
         CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id BIGINT);
         INSERT INTO sales.orders VALUES (7);
         INSERT INTO sales.orders VALUES (8);",
    )
    .await
    .unwrap();
    assert_eq!(
        csv(s, "SELECT operation FROM t.snapshots").await,
        "operation\nappend\n"
    );
    assert_eq!(
        csv(s, "SELECT count(*) AS n FROM sales.orders.history").await,
        "n\n2\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT sum(record_count) AS n FROM floe.sales.orders.FILES"
        )
        .await,
        "n\n2\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT h.snapshot_id = r.snapshot_id AS same FROM sales.orders.refs r \
             JOIN \"sales\".\"orders$history\" h ON h.snapshot_id = r.snapshot_id"
        )
        .await,
        "same\ntrue\n"
    );
    let plan = csv(s, "EXPLAIN SELECT * FROM sales.orders.manifests").await;
    assert!(!plan.contains("not found"), "{plan}");
    let err = error(s, "DELETE FROM t.snapshots").await;
    assert!(err.contains("read-only"), "{err}");
    // A real table of that name wins.
    s.run(
        "CREATE SCHEMA t; CREATE TABLE t.snapshots (x BIGINT); INSERT INTO t.snapshots VALUES (42)",
    )
    .await
    .unwrap();
    assert_eq!(csv(s, "SELECT * FROM t.snapshots").await, "x\n42\n");
    assert_eq!(
        csv(s, "SELECT operation FROM \"t$snapshots\"").await,
        "operation\nappend\n"
    );
    // A name that is neither says which table is missing.
    assert_eq!(
        error(s, "SELECT * FROM sales.nope.files").await,
        "table sales.nope does not exist; tables in sales: orders"
    );
}

/// The value of metric `name` in a line of `EXPLAIN ANALYZE` output.
fn metric(line: &str, name: &str) -> Option<u64> {
    let (_, rest) = line.split_once(&format!("{name}="))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_counts_the_files_a_scan_reads() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE events (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO events VALUES (1, 'eu'), (2, 'us'), (3, 'ap');
         INSERT INTO events VALUES (4, 'eu');",
    )
    .await
    .unwrap();
    let scan_line = |plan: String| {
        plan.lines()
            .find(|line| line.contains("IcebergTableScan"))
            .unwrap_or_else(|| panic!("no scan in {plan}"))
            .to_string()
    };
    let pruned = scan_line(
        csv(
            s,
            "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE region = 'us'",
        )
        .await,
    );
    assert_eq!(
        (
            metric(&pruned, "files_scanned"),
            metric(&pruned, "files_pruned")
        ),
        (Some(1), Some(3)),
        "{pruned}"
    );
    let all = scan_line(csv(s, "EXPLAIN ANALYZE SELECT count(*) FROM events").await);
    assert_eq!(
        (metric(&all, "files_scanned"), metric(&all, "files_pruned")),
        (Some(4), Some(0)),
        "{all}"
    );
    // Time travel scans are measured too.
    let first = snapshot_ids(s, "events").await[0];
    let old = scan_line(
        csv(
            s,
            &format!(
                "EXPLAIN ANALYZE SELECT * FROM events VERSION AS OF {first} WHERE region = 'eu'"
            ),
        )
        .await,
    );
    assert_eq!(
        (metric(&old, "files_scanned"), metric(&old, "files_pruned")),
        (Some(1), Some(2)),
        "{old}"
    );
    // The rows are the same as without measuring.
    assert_eq!(
        csv(s, "SELECT id FROM events WHERE region = 'eu' ORDER BY id").await,
        "id\n1\n4\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_changed_since_the_last_write_read_at_once() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT, name VARCHAR);
         INSERT INTO t VALUES (1, 'a'), (2, 'b');",
    )
    .await
    .unwrap();
    // No write after these: the current snapshot still has the old schema.
    s.run("ALTER TABLE t ADD COLUMN note VARCHAR; ALTER TABLE t RENAME COLUMN name TO label")
        .await
        .unwrap();
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,label,note\n1,a,\n2,b,\n"
    );
    assert_eq!(
        csv(s, "SELECT id FROM t WHERE label = 'b' AND note IS NULL").await,
        "id\n2\n"
    );
    // DELETE and UPDATE read with the new schema too.
    assert_eq!(
        csv(s, "UPDATE t SET note = upper(label) WHERE label = 'a'").await,
        "count\n1\n"
    );
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,label,note\n1,a,A\n2,b,\n"
    );
    s.run("ALTER TABLE t DROP COLUMN note").await.unwrap();
    assert_eq!(
        csv(s, "DELETE FROM t WHERE label = 'b'").await,
        "count\n1\n"
    );
    assert_eq!(csv(s, "SELECT * FROM t").await, "id,label\n1,a\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_take_create_tables_types_and_fresh_ids() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE t (id BIGINT);
         INSERT INTO t VALUES (1);
         ALTER TABLE t ADD COLUMN ts TIMESTAMP, ADD COLUMN n INT;
         ALTER TABLE t ADD COLUMN price DECIMAL(10, 2);
         INSERT INTO t VALUES (2, TIMESTAMP '2024-05-01 12:00:00', 7, 1.25);",
    )
    .await
    .unwrap();
    let ident = TableIdent::from_strs(["default", "t"]).unwrap();
    let table = s.catalog().load_table(&ident).await.unwrap();
    let schema = table.metadata().current_schema();
    let field = |name: &str| schema.field_by_name(name).unwrap().clone();
    assert_eq!(
        (field("ts").id, field("ts").field_type.as_ref().clone()),
        (2, Type::Primitive(PrimitiveType::Timestamp))
    );
    assert_eq!(
        (field("n").id, field("n").field_type.as_ref().clone()),
        (3, Type::Primitive(PrimitiveType::Int))
    );
    assert_eq!(
        (
            field("price").id,
            field("price").field_type.as_ref().clone()
        ),
        (
            4,
            Type::Primitive(PrimitiveType::Decimal {
                precision: 10,
                scale: 2
            })
        )
    );
    assert_eq!(
        csv(s, "SELECT * FROM t ORDER BY id").await,
        "id,ts,n,price\n1,,,\n2,2024-05-01T12:00:00,7,1.25\n"
    );
    // Nested columns only on an empty table: iceberg-rust cannot read them from older files.
    assert_eq!(
        error(s, "ALTER TABLE t ADD COLUMN tags VARCHAR[]").await,
        "cannot add column tags of type VARCHAR[] to default.t: the table has rows, and \
         iceberg-rust cannot yet read a list, struct or map column from files written before it \
         existed; add a column of a primitive type"
    );
    s.run(
        "CREATE TABLE e (id BIGINT, n INT); ALTER TABLE e DROP COLUMN n, ADD COLUMN tags VARCHAR[]",
    )
    .await
    .unwrap();
    let table = s
        .catalog()
        .load_table(&TableIdent::from_strs(["default", "e"]).unwrap())
        .await
        .unwrap();
    let tags = table
        .metadata()
        .current_schema()
        .field_by_name("tags")
        .unwrap()
        .clone();
    // The list's element takes an id after the list's own, after every id ever used.
    let Type::List(list) = tags.field_type.as_ref().clone() else {
        panic!("tags is a list");
    };
    assert_eq!((tags.id, list.element_field.id), (3, 4));
    assert_eq!(
        *list.element_field.field_type,
        Type::Primitive(PrimitiveType::String)
    );
    assert_eq!(table.metadata().last_column_id(), 4);
    assert_eq!(
        csv(s, "SELECT count(id) AS ids, count(tags) AS tags FROM e").await,
        "ids,tags\n0,0\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_overwrite_and_a_concurrent_insert_both_land() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE events (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO events VALUES (1, 'eu'), (2, 'us');",
    )
    .await
    .unwrap();
    let options = floe_commit::open::OpenOptions::new(f._dir.path().join("data"));
    let other = Session::open_embedded(&options).await.unwrap();
    for round in 0..3 {
        let overwrite = format!("INSERT OVERWRITE events VALUES ({}, 'eu')", 10 + round);
        let insert = format!("INSERT INTO events VALUES ({}, 'us')", 20 + round);
        let (a, b) = tokio::join!(s.run(&overwrite), other.run(&insert));
        a.unwrap();
        b.unwrap();
    }
    // Whatever the order, eu holds the last overwrite's row and us every inserted one.
    assert_eq!(
        csv(s, "SELECT id, region FROM events ORDER BY id").await,
        "id,region\n2,us\n12,eu\n20,us\n21,us\n22,us\n"
    );
}
