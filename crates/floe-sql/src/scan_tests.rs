//! Scans spread a table's files over the session's partitions, cutting a large file into byte
//! ranges, and read every row exactly once (see `scan`).

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;

use super::*;

struct Fixture {
    session: Session,
    _dir: tempfile::TempDir,
}

/// A session with table `t (id BIGINT, part BIGINT)` and `target_partitions` set.
async fn session(partitions: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = floe_commit::open::OpenOptions::new(dir.path().join("data"));
    let session = Session::open_embedded(&options).await.unwrap();
    session
        .run(&format!(
            "CREATE SCHEMA default;
             CREATE TABLE t (id BIGINT, part BIGINT);
             SET datafusion.execution.target_partitions = {partitions};"
        ))
        .await
        .unwrap();
    Fixture { session, _dir: dir }
}

/// The table scan of `sql`'s physical plan.
async fn scan_of(session: &Session, sql: &str) -> Arc<dyn ExecutionPlan> {
    let plan = session
        .context()
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut pending = vec![plan];
    while let Some(node) = pending.pop() {
        if node.name() == "IcebergTableScan" {
            return node;
        }
        pending.extend(node.children().into_iter().cloned());
    }
    panic!("no table scan in the plan of {sql}");
}

/// The first column's values each partition of `scan` yields, partition by partition.
async fn ids_per_partition(session: &Session, scan: &Arc<dyn ExecutionPlan>) -> Vec<Vec<i64>> {
    let partitions = scan.properties().partitioning.partition_count();
    let mut all = Vec::new();
    for partition in 0..partitions {
        let batches: Vec<RecordBatch> = scan
            .execute(partition, session.context().task_ctx())
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let ids = batches
            .iter()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        all.push(ids);
    }
    all
}

/// Every partition read something, and together they read `expected`, each value once.
fn assert_read_once(per_partition: &[Vec<i64>], expected: impl Iterator<Item = i64>) {
    for (partition, ids) in per_partition.iter().enumerate() {
        assert!(!ids.is_empty(), "partition {partition} read nothing");
    }
    let mut read: Vec<i64> = per_partition.concat();
    read.sort_unstable();
    assert_eq!(read, expected.collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tables_files_are_spread_over_the_partitions() {
    let f = session(4).await;
    let s = &f.session;
    for i in 0..8 {
        let rows: Vec<String> = (i * 100..(i + 1) * 100)
            .map(|id| format!("({id}, {})", id % 3))
            .collect();
        s.run(&format!("INSERT INTO t VALUES {}", rows.join(", ")))
            .await
            .unwrap();
    }

    let scan = scan_of(s, "SELECT id FROM t").await;
    assert_eq!(scan.properties().partitioning.partition_count(), 4);
    assert_read_once(&ids_per_partition(s, &scan).await, 0..800);
    // The planner knows the rows from the manifests, per partition too.
    let rows = |partition| {
        scan.partition_statistics(partition)
            .unwrap()
            .num_rows
            .get_value()
            .copied()
    };
    assert_eq!(rows(None), Some(800));
    assert_eq!((0..4).map(|p| rows(Some(p)).unwrap()).sum::<usize>(), 800);

    // More partitions than files: one file each, none empty.
    s.run("SET datafusion.execution.target_partitions = 16")
        .await
        .unwrap();
    let scan = scan_of(s, "SELECT id FROM t").await;
    assert_eq!(scan.properties().partitioning.partition_count(), 8);
    assert_read_once(&ids_per_partition(s, &scan).await, 0..800);

    // EXPLAIN says how the scan is spread; queries over it answer as before.
    let explain = to_csv_text(&s.run("EXPLAIN SELECT id FROM t").await.unwrap());
    assert!(explain.contains("partitions=8"), "{explain}");
    let sums = to_csv_text(
        &s.run("SELECT part, count(*), sum(id) FROM t GROUP BY part ORDER BY part")
            .await
            .unwrap(),
    );
    let expected: String = (0..3)
        .map(|part| {
            let ids = (0..800).filter(|id| id % 3 == part);
            format!("{part},{},{}\n", ids.clone().count(), ids.sum::<i64>())
        })
        .collect();
    assert!(sums.ends_with(&expected), "{sums}");

    // An empty table: one partition that reads nothing.
    s.run("CREATE TABLE e (id BIGINT)").await.unwrap();
    let scan = scan_of(s, "SELECT id FROM e").await;
    assert_eq!(scan.properties().partitioning.partition_count(), 1);
    assert_eq!(ids_per_partition(s, &scan).await, vec![Vec::<i64>::new()]);
}

/// One file of 2.2 million rows (three row groups of at most 1,048,576 rows): cut into two byte
/// ranges, each read on its own partition, every row read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_cut_into_ranges_and_each_row_read_once() {
    // Written by one writer, into one file.
    let f = session(1).await;
    let s = &f.session;
    const ROWS: i64 = 2_200_000;
    s.run(&format!(
        "INSERT INTO t SELECT value, value % 7 FROM generate_series(0, {})",
        ROWS - 1
    ))
    .await
    .unwrap();
    let files = to_csv_text(&s.run("SELECT count(*) FROM t$files").await.unwrap());
    assert!(files.ends_with("\n1\n"), "one data file: {files}");
    s.run("SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();

    let scan = scan_of(s, "SELECT id FROM t").await;
    assert_eq!(scan.properties().partitioning.partition_count(), 2);
    assert_read_once(&ids_per_partition(s, &scan).await, 0..ROWS);

    // A filter that keeps rows of every row group.
    let scan = scan_of(s, "SELECT id FROM t WHERE part = 3").await;
    let per_partition = ids_per_partition(s, &scan).await;
    assert_read_once(&per_partition, (0..ROWS).filter(|id| id % 7 == 3));
}

fn to_csv_text(results: &[Vec<RecordBatch>]) -> String {
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for batch in results.iter().flatten() {
            writer.write(batch).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}
