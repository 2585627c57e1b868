//! Concurrent writers: many appends racing on one table all land exactly once, in one unbroken
//! snapshot chain; writers on different tables never conflict with each other.

use std::sync::Arc;

use iceberg::{Catalog, TableIdent};

use crate::support::*;

const WRITERS: i64 = 16;
const APPENDS_PER_WRITER: i64 = 5;
const ROWS_PER_APPEND: i64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_table_all_land_once() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    // Client back-off long enough that 16 writers do not burn the CPU on doomed attempts.
    let table = create_table_with(
        &catalog,
        &namespace,
        "hot",
        &[
            ("commit.retry.num-retries", "20"),
            ("commit.retry.min-wait-ms", "50"),
            ("commit.retry.max-wait-ms", "2000"),
        ],
    )
    .await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let catalog = rest_catalog(&server).await;
        let table = table.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for append in 0..APPENDS_PER_WRITER {
                let first = (writer * APPENDS_PER_WRITER + append) * ROWS_PER_APPEND;
                let ids: Vec<i64> = (first..first + ROWS_PER_APPEND).collect();
                append_until_acknowledged(&catalog, &table, &ids).await;
                acknowledged.push(ids);
            }
            acknowledged
        }));
    }
    let mut appends = 0;
    let mut expected = Vec::new();
    for writer in writers {
        for ids in writer.await.expect("writer") {
            appends += 1;
            expected.extend(ids);
        }
    }
    expected.sort_unstable();

    let loaded = catalog.load_table(&table).await.unwrap();
    assert_eq!(
        read_ids(&loaded).await,
        expected,
        "the table must hold every acknowledged row exactly once"
    );
    assert_eq!(check_snapshot_chain(loaded.metadata()).len(), appends);
    assert_eq!(appends, (WRITERS * APPENDS_PER_WRITER) as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_different_tables_never_conflict() {
    const TABLES: usize = 64;
    const TABLE_WRITERS: usize = 8;
    let server = FloeServer::start();
    let catalog = Arc::new(rest_catalog(&server).await);
    let namespace = create_namespace(&catalog, "ns").await;
    let mut tables = Vec::new();
    for i in 0..TABLES {
        // No client retries: a 409 here would be a false conflict between unrelated tables.
        tables.push(
            create_table_with(
                &catalog,
                &namespace,
                &format!("t{i:02}"),
                &[("commit.retry.num-retries", "0")],
            )
            .await,
        );
    }

    let writers: Vec<_> = (0..TABLE_WRITERS)
        .map(|writer| {
            let catalog = catalog.clone();
            let mine: Vec<(usize, TableIdent)> = tables
                .iter()
                .cloned()
                .enumerate()
                .filter(|(i, _)| i % TABLE_WRITERS == writer)
                .collect();
            tokio::spawn(async move {
                for round in 0..2 {
                    for (i, table) in &mine {
                        let current = catalog.load_table(table).await.unwrap();
                        let id = (*i * 10 + round) as i64;
                        append(&catalog, &current, &[id])
                            .await
                            .unwrap_or_else(|err| panic!("append to {table}: {err}"));
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }

    for (i, table) in tables.iter().enumerate() {
        let loaded = catalog.load_table(table).await.unwrap();
        let id = (i * 10) as i64;
        assert_eq!(read_ids(&loaded).await, vec![id, id + 1], "{table}");
        assert_eq!(check_snapshot_chain(loaded.metadata()).len(), 2, "{table}");
    }
}
