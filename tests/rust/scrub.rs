//! `floe scrub` on a served data dir: a healthy table passes (exit 0); a data file deleted behind
//! the catalog's back is a finding (exit 1, printed), listed by `GET /management/v1/scrub/findings`
//! and counted in `floe maintenance history`; restored, the next scrub resolves it.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn scrub(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["scrub"];
    all.extend(args);
    let data_dir = data_dir.to_str().unwrap();
    all.extend(["--data-dir", data_dir]);
    floe(&all)
}

async fn get(server: &FloeServer, path: &str, query: &[(&str, &str)]) -> Value {
    let response = floe_testkit::http()
        .get(format!("{}{path}", server.uri()))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floe_scrub_reports_a_missing_file_until_it_is_restored() {
    let server = FloeServer::start_with_args(&["--maintenance", "false"]);
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let table = create_table(&catalog, &namespace, "t").await;
    let first = append(&catalog, &table, &[1, 2]).await.unwrap();
    append(&catalog, &first, &[3]).await.unwrap();

    let (ok, out, err) = scrub(server.data_dir(), &["ns.t"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("ns.t: 2 snapshot(s), 7 file(s) checked"),
        "{out}"
    );
    assert!(out.contains("no open findings"), "{out}");

    let parquet = files_under(&server.warehouse_dir())
        .into_iter()
        .filter(|file| file.extension().is_some_and(|ext| ext == "parquet"))
        .min()
        .unwrap();
    let name = parquet.file_name().unwrap().to_str().unwrap().to_string();
    let saved = std::fs::read(&parquet).unwrap();
    std::fs::remove_file(&parquet).unwrap();

    // Every table of the warehouse when none is named; deep reads footers too.
    let (ok, out, err) = scrub(server.data_dir(), &["--deep"]);
    assert!(!ok, "an open finding fails the command:\n{out}");
    assert!(err.contains("1 open finding(s)"), "{err}");
    let finding_line = out
        .lines()
        .find(|line| line.contains(&name))
        .unwrap_or_else(|| panic!("no line names {name}:\n{out}"));
    assert!(
        finding_line.contains("ns.t") && finding_line.contains("missing"),
        "{finding_line}"
    );

    // The server reads the same store: the management API lists it.
    let findings = get(
        &server,
        "/management/v1/scrub/findings",
        &[("open", "true")],
    )
    .await;
    let listed = findings["findings"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{findings}");
    assert_eq!(listed[0]["kind"], "missing");
    assert_eq!(listed[0]["namespace"], serde_json::json!(["ns"]));
    assert_eq!(listed[0]["table"], "t");
    assert!(listed[0]["file"].as_str().unwrap().ends_with(&name));
    assert_eq!(listed[0]["open"], true);
    assert!(!listed[0]["snapshots"].as_array().unwrap().is_empty());
    let response = floe_testkit::http()
        .get(format!("{}/management/v1/scrub/findings", server.uri()))
        .query(&[("limit", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        floe_testkit::error_model(response).await.0,
        "BadRequestException"
    );

    // The job history counts the table's open findings.
    let jobs = get(
        &server,
        "/management/v1/maintenance/jobs",
        &[("kind", "scrub")],
    )
    .await;
    let job = &jobs["jobs"][0];
    assert_eq!(job["trigger"], "manual", "{jobs}");
    assert_eq!(job["open-findings"], 1, "{jobs}");
    assert_eq!(job["stats"]["findings-new"], "1", "{jobs}");
    let (ok, out, err) = floe(&["maintenance", "history", "--catalog", &server.uri()]);
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or_default();
    assert!(header.contains("open findings"), "{out}");
    assert!(
        out.lines().any(|line| line.contains("main/ns.t")
            && line.contains("scrub")
            && line.contains("findings=1")),
        "{out}"
    );

    // Restored: the next scrub resolves the finding and succeeds.
    std::fs::write(&parquet, saved).unwrap();
    let (ok, out, err) = scrub(server.data_dir(), &["ns.t"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 resolved"), "{out}");
    let findings = get(
        &server,
        "/management/v1/scrub/findings",
        &[("open", "true")],
    )
    .await;
    assert_eq!(findings["findings"], serde_json::json!([]), "{findings}");
    let all = get(&server, "/management/v1/scrub/findings", &[]).await;
    assert_eq!(all["findings"][0]["open"], false, "{all}");
}
