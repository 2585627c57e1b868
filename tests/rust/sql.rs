//! `floe sql`, the real binary: against a running server (REST mode) and on a data dir with the
//! server stopped (embedded mode). Create, insert, exact rows, time travel to every earlier
//! snapshot by id and by timestamp, metadata tables, tables written by iceberg-rust, errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use iceberg::{Catalog, NamespaceIdent};

use crate::support::*;

/// How `floe sql` reaches the catalog.
enum Mode<'a> {
    Rest(&'a FloeServer),
    Embedded(&'a Path),
}

impl Mode<'_> {
    fn args(&self) -> Vec<String> {
        match self {
            Mode::Rest(server) => vec!["--catalog".into(), server.uri()],
            Mode::Embedded(dir) => vec!["--data-dir".into(), dir.display().to_string()],
        }
    }
}

fn floe_sql(mode: &Mode, extra: &[&str], sql: &str) -> Output {
    let mut command = Command::new(floe_testkit::floe_binary());
    command
        .arg("sql")
        .args(mode.args())
        .args(extra)
        .args(["-e", sql])
        .stdin(Stdio::null());
    command.output().expect("run floe sql")
}

/// Runs `sql` as CSV; returns standard output, failing the test with standard error otherwise.
fn csv(mode: &Mode, sql: &str) -> String {
    let output = floe_sql(mode, &["--format", "csv"], sql);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "floe sql -e {sql:?} failed: {stderr}"
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs `sql`, which must fail; returns standard error.
fn failure(mode: &Mode, sql: &str) -> String {
    let output = floe_sql(mode, &[], sql);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "floe sql -e {sql:?} succeeded");
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("Error {")
            && !stderr.contains("Backtrace"),
        "not a message for a person: {stderr}"
    );
    stderr
}

/// `(snapshot id, made-current timestamp as written by floe sql)` from `table$history`, oldest
/// first.
fn history(mode: &Mode, table: &str) -> Vec<(i64, String)> {
    let out = csv(
        mode,
        &format!(
            "SELECT snapshot_id, made_current_at FROM {table}$history ORDER BY made_current_at"
        ),
    );
    out.lines()
        .skip(1)
        .map(|line| {
            let (id, at) = line.split_once(',').expect("two columns");
            (id.parse().expect("snapshot id"), at.to_string())
        })
        .collect()
}

/// Checks time travel to every snapshot of `table`: `expected[i]` is the CSV of
/// `SELECT * FROM table ... ORDER BY id` as of the i-th snapshot.
fn check_time_travel(mode: &Mode, table: &str, expected: &[&str]) {
    let history = history(mode, table);
    assert_eq!(history.len(), expected.len(), "{history:?}");
    for ((id, at), rows) in history.iter().zip(expected) {
        let by_id = format!("SELECT * FROM {table} FOR VERSION AS OF {id} ORDER BY id");
        assert_eq!(csv(mode, &by_id), *rows, "{by_id}");
        let by_time = format!("SELECT * FROM {table} FOR SYSTEM_TIME AS OF '{at}' ORDER BY id");
        assert_eq!(csv(mode, &by_time), *rows, "{by_time}");
        let spark = format!("SELECT * FROM {table} VERSION AS OF {id} ORDER BY id");
        assert_eq!(csv(mode, &spark), *rows, "{spark}");
    }
}

fn create_and_fill(mode: &Mode) {
    csv(
        mode,
        "CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id BIGINT NOT NULL, region VARCHAR, amount DOUBLE)
           PARTITIONED BY (region);
         INSERT INTO sales.orders VALUES (1, 'eu', 10.5), (2, 'us', 20.0);",
    );
    // Separate processes, so that every snapshot has its own millisecond.
    csv(
        mode,
        "INSERT INTO sales.orders SELECT id + 10, region, amount * 2 FROM sales.orders WHERE region = 'eu'",
    );
    csv(mode, "INSERT INTO sales.orders VALUES (3, 'eu', 1.0)");
}

const SNAPSHOT_ROWS: [&str; 3] = [
    "id,region,amount\n1,eu,10.5\n2,us,20.0\n",
    "id,region,amount\n1,eu,10.5\n2,us,20.0\n11,eu,21.0\n",
    "id,region,amount\n1,eu,10.5\n2,us,20.0\n3,eu,1.0\n11,eu,21.0\n",
];

fn check_filled(mode: &Mode) {
    assert_eq!(
        csv(mode, "SELECT * FROM sales.orders ORDER BY id"),
        SNAPSHOT_ROWS[2]
    );
    assert_eq!(
        csv(
            mode,
            "SELECT region, count(*) AS n FROM sales.orders WHERE amount > 5 GROUP BY region ORDER BY region"
        ),
        "region,n\neu,2\nus,1\n"
    );
    check_time_travel(mode, "sales.orders", &SNAPSHOT_ROWS);
    assert_eq!(
        csv(
            mode,
            "SELECT operation FROM sales.orders$snapshots ORDER BY committed_at"
        ),
        "operation\nappend\nappend\nappend\n"
    );
    let current = history(mode, "sales.orders").last().unwrap().0;
    assert_eq!(
        csv(
            mode,
            "SELECT name, type, snapshot_id FROM sales.orders$refs"
        ),
        format!("name,type,snapshot_id\nmain,BRANCH,{current}\n")
    );
    assert_eq!(
        csv(
            mode,
            "SELECT count(*) AS manifests FROM sales.orders$manifests"
        ),
        "manifests\n3\n"
    );
    assert_eq!(
        csv(
            mode,
            "SELECT partition, sum(record_count) AS rows FROM sales.orders$files \
             GROUP BY partition ORDER BY partition"
        ),
        "partition,rows\n{region=eu},3\n{region=us},1\n"
    );
}

#[tokio::test]
async fn sql_against_a_running_server() {
    let server = FloeServer::start();
    let mode = Mode::Rest(&server);
    create_and_fill(&mode);
    check_filled(&mode);

    // What floe sql wrote is an ordinary Iceberg table to every other client.
    let catalog = rest_catalog(&server).await;
    let namespace = NamespaceIdent::new("sales".into());
    let table = catalog
        .load_table(&ident(&namespace, "orders"))
        .await
        .unwrap();
    assert_eq!(read_ids(&table).await, [1, 2, 3, 11]);
    check_snapshot_chain(table.metadata());
    assert_eq!(
        table.metadata().default_partition_spec().fields()[0].name,
        "region"
    );
}

#[tokio::test]
async fn sql_on_a_data_dir_with_the_server_stopped() {
    let mut server = FloeServer::start();
    let data_dir = server.data_dir().to_path_buf();
    // However the server went away; SIGKILL is the harder case for the data dir.
    server.kill();
    let mode = Mode::Embedded(&data_dir);
    create_and_fill(&mode);
    check_filled(&mode);
    csv(
        &mode,
        "DROP TABLE sales.orders; CREATE TABLE sales.kept (id BIGINT); INSERT INTO sales.kept VALUES (7)",
    );

    // The same catalog, served again: what embedded mode committed is there.
    server.restart();
    let catalog = rest_catalog(&server).await;
    let namespace = NamespaceIdent::new("sales".into());
    let tables = catalog.list_tables(&namespace).await.unwrap();
    assert_eq!(tables, [ident(&namespace, "kept")]);
    let table = catalog
        .load_table(&ident(&namespace, "kept"))
        .await
        .unwrap();
    assert_eq!(read_ids(&table).await, [7]);
}

/// `DELETE` and `UPDATE` (copy-on-write): exact rows after each, `overwrite` snapshots, and time
/// travel to before the delete.
fn delete_and_update(mode: &Mode) {
    csv(
        mode,
        "CREATE SCHEMA dml;
         CREATE TABLE dml.t (id BIGINT NOT NULL, region VARCHAR, amount DOUBLE) PARTITIONED BY (region);
         INSERT INTO dml.t VALUES (1, 'eu', 1.0), (2, 'us', 2.0), (3, 'eu', 3.0), (4, 'us', 4.0);",
    );
    let before_delete = history(mode, "dml.t").last().unwrap().0;
    assert_eq!(
        csv(mode, "DELETE FROM dml.t WHERE id = 3 OR amount > 3.5"),
        "count\n2\n"
    );
    assert_eq!(
        csv(mode, "SELECT * FROM dml.t ORDER BY id"),
        "id,region,amount\n1,eu,1.0\n2,us,2.0\n"
    );
    assert_eq!(
        csv(
            mode,
            "UPDATE dml.t SET amount = amount * 10 WHERE region = 'us'"
        ),
        "count\n1\n"
    );
    assert_eq!(
        csv(mode, "SELECT * FROM dml.t ORDER BY id"),
        "id,region,amount\n1,eu,1.0\n2,us,20.0\n"
    );
    assert_eq!(
        csv(
            mode,
            &format!("SELECT * FROM dml.t FOR VERSION AS OF {before_delete} ORDER BY id")
        ),
        "id,region,amount\n1,eu,1.0\n2,us,2.0\n3,eu,3.0\n4,us,4.0\n"
    );
    assert_eq!(
        csv(
            mode,
            "SELECT operation FROM dml.t$snapshots ORDER BY committed_at"
        ),
        "operation\nappend\noverwrite\noverwrite\n"
    );
    let err = failure(mode, "UPDATE dml.t SET region = 'x'");
    assert!(err.contains("partitioned by it"), "{err}");
}

#[tokio::test]
async fn delete_and_update_against_a_running_server() {
    let server = FloeServer::start();
    let mode = Mode::Rest(&server);
    delete_and_update(&mode);

    // Other clients read the overwritten table.
    let catalog = rest_catalog(&server).await;
    let namespace = NamespaceIdent::new("dml".into());
    let table = catalog.load_table(&ident(&namespace, "t")).await.unwrap();
    assert_eq!(read_ids(&table).await, [1, 2]);
    check_snapshot_chain(table.metadata());
}

#[tokio::test]
async fn delete_and_update_on_a_data_dir() {
    let mut server = FloeServer::start();
    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    delete_and_update(&Mode::Embedded(&data_dir));
}

#[tokio::test]
async fn tables_appended_by_iceberg_rust_are_read_by_floe_sql() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "lake").await;
    let table = create_table(&catalog, &namespace, "events").await;
    let table = append(&catalog, &table, &[1, 2]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let table = append(&catalog, &table, &[3]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    append(&catalog, &table, &[4, 5]).await.unwrap();

    let expected = [
        "id,name\n1,row-1\n2,row-2\n",
        "id,name\n1,row-1\n2,row-2\n3,row-3\n",
        "id,name\n1,row-1\n2,row-2\n3,row-3\n4,row-4\n5,row-5\n",
    ];
    let rest = Mode::Rest(&server);
    assert_eq!(
        csv(&rest, "SELECT * FROM lake.events ORDER BY id"),
        expected[2]
    );
    check_time_travel(&rest, "lake.events", &expected);
    assert_eq!(
        csv(&rest, "SELECT name FROM lake.events WHERE id = 4"),
        "name\nrow-4\n"
    );

    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    let embedded = Mode::Embedded(&data_dir);
    assert_eq!(
        csv(&embedded, "SELECT * FROM lake.events ORDER BY id"),
        expected[2]
    );
    check_time_travel(&embedded, "lake.events", &expected);
}

#[tokio::test]
async fn output_formats_and_scripts() {
    let server = FloeServer::start();
    let mode = Mode::Rest(&server);
    csv(
        &mode,
        "CREATE SCHEMA s; CREATE TABLE s.t (id BIGINT, name VARCHAR); \
         INSERT INTO s.t VALUES (1, 'a'), (2, NULL)",
    );

    let output = floe_sql(
        &mode,
        &["--format", "json"],
        "SELECT * FROM s.t ORDER BY id",
    );
    assert!(output.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(rows, serde_json::json!([{"id": 1, "name": "a"}, {"id": 2}]));
    let output = floe_sql(
        &mode,
        &["--format", "json"],
        "SELECT * FROM s.t WHERE id > 99",
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "[]\n");

    let output = floe_sql(&mode, &[], "SELECT * FROM s.t ORDER BY id");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 2  | NULL |\n+----+------+\n"
    );

    // -f FILE, and a script on standard input.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "INSERT INTO s.t VALUES (3, 'c');\nSELECT count(*) AS n FROM s.t;\n",
    )
    .unwrap();
    let output = Command::new(floe_testkit::floe_binary())
        .args(["sql", "--catalog", &server.uri(), "--format", "csv", "-f"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "count\n1\nn\n3\n"
    );

    let mut child = Command::new(floe_testkit::floe_binary())
        .args(["sql", "--catalog", &server.uri(), "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT max(id) AS top FROM s.t;")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "top\n3\n");
}

#[tokio::test]
async fn mistakes_get_messages_that_say_what_exists() {
    let server = FloeServer::start();
    let mode = Mode::Rest(&server);
    csv(
        &mode,
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id BIGINT); CREATE SCHEMA hr",
    );

    let err = failure(&mode, "SELECT * FROM sales.order");
    assert!(
        err.contains("table sales.order does not exist; tables in sales: orders"),
        "{err}"
    );
    let err = failure(&mode, "SELECT * FROM salez.orders");
    assert!(err.contains("schemas: hr, sales"), "{err}");
    let err = failure(&mode, "SELECT * FROM sales.orders VERSION AS OF 42");
    assert!(err.contains("no snapshot 42"), "{err}");
    let err = failure(&mode, "SELEC 1");
    assert!(err.contains("syntax error"), "{err}");
    let err = failure(&mode, "SELECT 1; SELECT * FROM nowhere.t");
    assert!(err.contains("statement 2 of 2"), "{err}");

    // A server that is not there.
    let mut gone = FloeServer::start();
    let uri = gone.uri();
    gone.kill();
    let output = Command::new(floe_testkit::floe_binary())
        .args(["sql", "--catalog", &uri, "-e", "SELECT * FROM a.b"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// The interactive shell on a real terminal (a pseudo-terminal from util-linux's `script`):
/// multi-line statements, `\d`, Ctrl-C cancelling a running query but not the shell, history.
#[test]
fn the_shell_runs_statements_and_survives_ctrl_c() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mode = Mode::Embedded(&data_dir);
    csv(
        &mode,
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id BIGINT)",
    );
    let history = dir.path().join("history");

    // `exec`, so that the Ctrl-C below reaches `floe` alone: script(1) runs the command through
    // $SHELL (dash when unset), and a shell left waiting would itself die of the SIGINT.
    let command = format!(
        "exec {} sql --data-dir {}",
        floe_testkit::floe_binary().display(),
        data_dir.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("FLOE_SQL_HISTORY", &history)
        .env("TERM", "dumb")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1)");
    let output = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let collected = output.clone();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if output.lock().unwrap().contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "shell never printed {text:?}; it printed:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut send = |text: &str| {
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    };

    wait_for("statements end with ';'");
    send("SELECT 1 +\r");
    send("41 AS answer;\r");
    wait_for("| 42     |");
    wait_for("1 row in");
    send("\\d\r");
    wait_for("| sales  | orders |");
    send("SELECT count(*) FROM generate_series(1, 50000000000) WHERE value % 7 = 3;\r");
    std::thread::sleep(Duration::from_millis(1500));
    send("\x03");
    wait_for("cancelled");
    send("SELECT 7 AS still_here;\r");
    wait_for("| 7          |");
    send("\x04");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "shell did not leave on Ctrl-D");
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    assert!(
        status.success(),
        "the shell left with {status}:\n{}",
        output.lock().unwrap()
    );
    let history = std::fs::read_to_string(&history).expect("history saved");
    assert!(history.contains("SELECT 1 +"), "{history}");
    assert!(history.contains("SELECT 7 AS still_here;"), "{history}");
}

/// `floe sql` in the default (table) format: the messages of statements without rows are on
/// standard output.
fn messages(mode: &Mode, sql: &str) -> String {
    let output = floe_sql(mode, &[], sql);
    assert!(
        output.status.success(),
        "floe sql -e {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// `ALTER TABLE` and `INSERT OVERWRITE` with exact rows after each, time travel to before them,
/// the errors for what cannot be done, and Spark's `t.snapshots` spelling.
fn alter_and_overwrite(mode: &Mode) {
    csv(
        mode,
        "CREATE SCHEMA evo;
         CREATE TABLE evo.t (id BIGINT NOT NULL, name VARCHAR, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO evo.t VALUES (1, 'a', 'eu'), (2, 'b', 'us');",
    );
    let first = history(mode, "evo.t").last().unwrap().0;
    assert_eq!(
        messages(mode, "ALTER TABLE evo.t ADD COLUMN score DOUBLE"),
        "altered table evo.t: added column score\n"
    );
    assert_eq!(
        csv(mode, "SELECT * FROM evo.t ORDER BY id"),
        "id,name,region,score\n1,a,eu,\n2,b,us,\n"
    );
    csv(
        mode,
        "ALTER TABLE evo.t RENAME COLUMN name TO label;
         INSERT INTO evo.t VALUES (3, 'c', 'eu', 1.5);",
    );
    assert_eq!(
        csv(mode, "SELECT * FROM evo.t ORDER BY id"),
        "id,label,region,score\n1,a,eu,\n2,b,us,\n3,c,eu,1.5\n"
    );
    assert_eq!(
        messages(mode, "ALTER TABLE evo.t DROP COLUMN score"),
        "altered table evo.t: dropped column score\n"
    );
    assert_eq!(
        csv(mode, "SELECT * FROM evo.t ORDER BY id"),
        "id,label,region\n1,a,eu\n2,b,us\n3,c,eu\n"
    );
    // The snapshot before the changes reads with its own schema.
    assert_eq!(
        csv(
            mode,
            &format!("SELECT * FROM evo.t FOR VERSION AS OF {first} ORDER BY id")
        ),
        "id,name,region\n1,a,eu\n2,b,us\n"
    );
    let err = failure(mode, "ALTER TABLE evo.t RENAME COLUMN nope TO x");
    assert!(
        err.contains("evo.t has no column nope; its columns are: id, label, region"),
        "{err}"
    );
    let err = failure(mode, "ALTER TABLE evo.t ADD COLUMN label VARCHAR");
    assert!(
        err.contains("evo.t already has a column named label"),
        "{err}"
    );
    let err = failure(mode, "ALTER TABLE evo.t DROP COLUMN region");
    assert!(
        err.contains("cannot drop region: partition field region (identity) of evo.t uses it"),
        "{err}"
    );
    let err = failure(mode, "ALTER TABLE evo.t ADD COLUMN must BIGINT NOT NULL");
    assert!(
        err.contains("cannot add NOT NULL column must to evo.t: the table has rows"),
        "{err}"
    );

    // INSERT OVERWRITE replaces the partitions its rows fall into: eu, not us.
    assert_eq!(
        csv(
            mode,
            "INSERT OVERWRITE evo.t SELECT id * 10, upper(label), region FROM evo.t WHERE region = 'eu'"
        ),
        "count\n2\n"
    );
    assert_eq!(
        csv(mode, "SELECT * FROM evo.t ORDER BY id"),
        "id,label,region\n2,b,us\n10,A,eu\n30,C,eu\n"
    );
    assert_eq!(
        csv(
            mode,
            "SELECT partition, record_count FROM evo.t$files ORDER BY partition"
        ),
        "partition,record_count\n{region=eu},2\n{region=us},1\n"
    );
    // An unpartitioned table is replaced whole.
    csv(
        mode,
        "CREATE TABLE evo.flat (id BIGINT); INSERT INTO evo.flat VALUES (1), (2)",
    );
    assert_eq!(
        csv(mode, "INSERT OVERWRITE evo.flat VALUES (5)"),
        "count\n1\n"
    );
    assert_eq!(csv(mode, "SELECT * FROM evo.flat"), "id\n5\n");
    // Spark's spelling of metadata tables.
    assert_eq!(
        csv(
            mode,
            "SELECT operation FROM evo.t.snapshots ORDER BY committed_at"
        ),
        "operation\nappend\nappend\noverwrite\n"
    );
    assert_eq!(
        csv(mode, "SELECT count(*) AS n FROM evo.t.history"),
        "n\n3\n"
    );
}

#[tokio::test]
async fn alter_and_overwrite_against_a_running_server() {
    let server = FloeServer::start();
    alter_and_overwrite(&Mode::Rest(&server));

    // Other clients see the evolved schema.
    let catalog = rest_catalog(&server).await;
    let namespace = NamespaceIdent::new("evo".into());
    let table = catalog.load_table(&ident(&namespace, "t")).await.unwrap();
    let columns: Vec<(String, i32)> = table
        .metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.id))
        .collect();
    assert_eq!(
        columns,
        [
            ("id".to_string(), 1),
            ("label".to_string(), 2),
            ("region".to_string(), 3)
        ]
    );
    check_snapshot_chain(table.metadata());
}

#[tokio::test]
async fn alter_and_overwrite_on_a_data_dir() {
    let mut server = FloeServer::start();
    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    alter_and_overwrite(&Mode::Embedded(&data_dir));
}

/// Time travel by branch and tag name: tags made through the REST API, read by `floe sql` in
/// both modes.
#[tokio::test]
async fn time_travel_by_branch_and_tag_name() {
    let mut server = FloeServer::start();
    let rest = Mode::Rest(&server);
    csv(
        &rest,
        "CREATE SCHEMA refs; CREATE TABLE refs.t (id BIGINT); INSERT INTO refs.t VALUES (1)",
    );
    csv(&rest, "INSERT INTO refs.t VALUES (2)");
    let ids: Vec<i64> = history(&rest, "refs.t").iter().map(|(id, _)| *id).collect();
    csv(
        &rest,
        "ALTER TABLE refs.t ADD COLUMN note VARCHAR; INSERT INTO refs.t VALUES (3, 'x')",
    );
    let api = Api::new(&server);
    let response = api
        .commit(
            &["refs"],
            "t",
            &serde_json::json!({
                "requirements": [],
                "updates": [
                    {"action": "set-snapshot-ref", "ref-name": "audit", "type": "tag",
                     "snapshot-id": ids[0]},
                    {"action": "set-snapshot-ref", "ref-name": "dev", "type": "branch",
                     "snapshot-id": ids[1]},
                ],
            }),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let check = |mode: &Mode| {
        assert_eq!(
            csv(
                mode,
                "SELECT * FROM refs.t FOR VERSION AS OF 'audit' ORDER BY id"
            ),
            "id\n1\n"
        );
        assert_eq!(
            csv(mode, "SELECT * FROM refs.t VERSION AS OF 'dev' ORDER BY id"),
            "id\n1\n2\n"
        );
        assert_eq!(
            csv(
                mode,
                "SELECT * FROM refs.t VERSION AS OF 'main' ORDER BY id"
            ),
            "id,note\n1,\n2,\n3,x\n"
        );
        let err = failure(mode, "SELECT * FROM refs.t VERSION AS OF 'nope'");
        assert!(
            err.contains(
                "table refs.t has no branch or tag named \"nope\"; its refs are: audit (tag), \
                 dev (branch), main (branch)"
            ),
            "{err}"
        );
    };
    check(&rest);
    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    check(&Mode::Embedded(&data_dir));
}

/// The value of metric `name` on the `IcebergTableScan` line of `EXPLAIN ANALYZE` output.
fn scan_metric(plan: &str, name: &str) -> u64 {
    let line = plan
        .lines()
        .find(|line| line.contains("IcebergTableScan"))
        .unwrap_or_else(|| panic!("no scan in {plan}"));
    let (_, rest) = line
        .split_once(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a count")
}

/// A filter on the partition column reads only that partition's files; without it every file is
/// read. Counted by the scan itself and shown by `EXPLAIN ANALYZE`.
fn pruning_is_measured(mode: &Mode) {
    csv(
        mode,
        "CREATE SCHEMA pruning;
         CREATE TABLE pruning.t (id BIGINT, region VARCHAR) PARTITIONED BY (region);
         INSERT INTO pruning.t VALUES (1, 'eu'), (2, 'us'), (3, 'ap');
         INSERT INTO pruning.t VALUES (4, 'eu'), (5, 'us');",
    );
    let pruned = csv(
        mode,
        "EXPLAIN ANALYZE SELECT count(*) FROM pruning.t WHERE region = 'eu'",
    );
    assert_eq!(scan_metric(&pruned, "files_scanned"), 2, "{pruned}");
    assert_eq!(scan_metric(&pruned, "files_pruned"), 3, "{pruned}");
    let all = csv(mode, "EXPLAIN ANALYZE SELECT count(*) FROM pruning.t");
    assert_eq!(scan_metric(&all, "files_scanned"), 5, "{all}");
    assert_eq!(scan_metric(&all, "files_pruned"), 0, "{all}");
    assert_eq!(
        csv(
            mode,
            "SELECT id FROM pruning.t WHERE region = 'eu' ORDER BY id"
        ),
        "id\n1\n4\n"
    );
}

#[tokio::test]
async fn pruned_scans_read_fewer_files() {
    let mut server = FloeServer::start();
    pruning_is_measured(&Mode::Rest(&server));
    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    let embedded = Mode::Embedded(&data_dir);
    let plan = csv(
        &embedded,
        "EXPLAIN ANALYZE SELECT * FROM pruning.t WHERE region = 'us'",
    );
    assert_eq!(scan_metric(&plan, "files_scanned"), 2, "{plan}");
    assert_eq!(scan_metric(&plan, "files_pruned"), 3, "{plan}");
}
