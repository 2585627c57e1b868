//! Queries that once failed inside DataFusion because of the types iceberg-rust reads columns as
//! (see `scan_types`): field-id metadata that differs between the inputs of an operator, and
//! strings too long for one batch's 32-bit offsets.

use arrow::array::{Array, Int64Array, RecordBatch};

use super::*;

struct Fixture {
    session: Session,
    _dir: tempfile::TempDir,
}

async fn session() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = floe_commit::open::OpenOptions::new(dir.path().join("data"));
    let session = Session::open_embedded(&options).await.unwrap();
    Fixture { session, _dir: dir }
}

async fn rows(session: &Session, sql: &str) -> Vec<RecordBatch> {
    let mut results = session
        .run(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    results.pop().unwrap()
}

async fn csv(session: &Session, sql: &str) -> String {
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for batch in rows(session, sql).await {
            writer.write(&batch).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}

/// Two tables written by iceberg-rust, whose Parquet files carry field ids: `t1.a` is field 2,
/// `t2.b` field 1.
async fn two_tables() -> Fixture {
    let f = session().await;
    f.session
        .run(
            "CREATE SCHEMA default;
             CREATE TABLE t1 (id BIGINT, a VARCHAR);
             CREATE TABLE t2 (b VARCHAR, n BIGINT);
             INSERT INTO t1 VALUES (1, 'x'), (2, 'y');
             INSERT INTO t2 VALUES ('y', 10), ('z', 20);",
        )
        .await
        .unwrap();
    f
}

// The failures need the planner to prune a union's columns: DataFusion then rebuilds the union's
// schema from its pruned inputs, dropping the field ids where the branches disagree, while the
// physical union keeps the first branch's (apache/datafusion#19049).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_all_of_columns_with_different_field_ids() {
    let f = two_tables().await;
    let s = &f.session;
    assert_eq!(
        csv(s, "SELECT a FROM t1 UNION ALL SELECT b FROM t2 ORDER BY 1").await,
        "a\nx\ny\ny\nz\n"
    );
    assert_eq!(
        csv(
            s,
            "SELECT a, count(*) AS n FROM (SELECT id, a FROM t1 UNION ALL SELECT n, b FROM t2) \
             GROUP BY a ORDER BY a"
        )
        .await,
        "a,n\nx,1\ny,2\nz,1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_all_of_a_column_and_a_literal_and_in_a_cte() {
    let f = two_tables().await;
    let s = &f.session;
    assert_eq!(
        csv(
            s,
            "SELECT v, count(*) AS n \
             FROM (SELECT a AS v, NULL AS w FROM t1 UNION ALL SELECT NULL, b FROM t2) \
             GROUP BY v ORDER BY v"
        )
        .await,
        "v,n\nx,1\ny,1\n,2\n"
    );
    assert_eq!(
        csv(
            s,
            "WITH u AS (SELECT a, id FROM t1 UNION ALL SELECT b, n FROM t2)
             SELECT x.a, count(*) AS n FROM u x JOIN u y ON x.a = y.a GROUP BY x.a ORDER BY x.a"
        )
        .await,
        "a,n\nx,1\ny,4\nz,1\n"
    );
}

/// A self-join that repeats long strings: 96 rows of 300,000 characters under one key make
/// 9,216 joined rows, and a batch of 8,192 of them holds about 2.46 GB of one column, past the
/// 2 GiB a `Utf8` column's 32-bit offsets can address. Memory stays small once the join copies
/// views instead of strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_output_longer_than_32_bit_offsets() {
    let f = session().await;
    let s = &f.session;
    s.run(
        "CREATE SCHEMA default;
         CREATE TABLE docs (k BIGINT, body VARCHAR);
         INSERT INTO docs SELECT 1, repeat('x', 300000) FROM generate_series(1, 96);",
    )
    .await
    .unwrap();
    let batches = rows(
        s,
        "SELECT count(*) AS n, sum(length(b.body)) AS chars \
         FROM docs a JOIN docs b ON a.k = b.k",
    )
    .await;
    let column = |name: &str| {
        batches[0]
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(column("n"), 96 * 96);
    assert_eq!(column("chars"), 96 * 96 * 300_000);
}

/// Writes take the table's own types back: rows read (as views) and written again round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_read_as_views_insert_back_as_the_tables_type() {
    let f = two_tables().await;
    let s = &f.session;
    s.run("INSERT INTO t1 SELECT n, b FROM t2; INSERT INTO t2 SELECT a, id FROM t1")
        .await
        .unwrap();
    assert_eq!(
        csv(s, "SELECT b, n FROM t2 WHERE b >= 'y' ORDER BY n, b").await,
        "b,n\ny,2\ny,10\ny,10\nz,20\nz,20\n"
    );
}
