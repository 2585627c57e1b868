//! loadTable's ETag: `If-None-Match` with the current tag is a 304, a commit changes the tag, and
//! the two snapshot modes have different tags.

use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::json;

use crate::support::*;

async fn etag_of(api: &Api, url: &str) -> String {
    let response = api.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let tag = response
        .headers()
        .get(ETAG)
        .expect("loadTable returns an ETag")
        .to_str()
        .unwrap()
        .to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    tag
}

async fn status_if_none_match(api: &Api, url: &str, tag: &str) -> u16 {
    let response = api
        .client
        .get(url)
        .header(IF_NONE_MATCH, tag)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 304 {
        // The 304 names the representation's tag, one of those sent.
        let current = response.headers().get(ETAG).expect("a 304 has the ETag");
        assert!(
            tag.contains(current.to_str().unwrap()),
            "{current:?} not in {tag}"
        );
        assert!(response.bytes().await.unwrap().is_empty());
    }
    status
}

#[tokio::test]
async fn load_table_etags() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "t", json!({})).await;
    let url = api.table_url(&["ns"], "t");

    let tag = etag_of(&api, &url).await;
    assert_eq!(
        etag_of(&api, &url).await,
        tag,
        "stable while nothing changes"
    );
    assert_eq!(status_if_none_match(&api, &url, &tag).await, 304);
    assert_eq!(
        status_if_none_match(&api, &url, &format!("\"other\", {tag}")).await,
        304
    );
    assert_eq!(status_if_none_match(&api, &url, "\"other\"").await, 200);

    // snapshots=all is the default; refs is another representation with another tag.
    let all = format!("{url}?snapshots=all");
    let refs = format!("{url}?snapshots=refs");
    assert_eq!(etag_of(&api, &all).await, tag);
    let refs_tag = etag_of(&api, &refs).await;
    assert_ne!(refs_tag, tag);
    assert_eq!(status_if_none_match(&api, &refs, &refs_tag).await, 304);
    assert_eq!(status_if_none_match(&api, &refs, &tag).await, 200);
    assert_eq!(status_if_none_match(&api, &all, &refs_tag).await, 200);

    // A commit changes the tag: the old one no longer matches.
    let committed = api.set_properties(&["ns"], "t", json!({"k": "v"})).await;
    let new_tag = etag_of(&api, &url).await;
    assert_ne!(new_tag, tag);
    assert_ne!(etag_of(&api, &refs).await, refs_tag);
    assert_eq!(status_if_none_match(&api, &url, &tag).await, 200);
    assert_eq!(status_if_none_match(&api, &url, &new_tag).await, 304);
    let loaded = api.load_table(&["ns"], "t").await;
    assert_eq!(
        metadata_location_of(&loaded),
        metadata_location_of(&committed)
    );

    // An unknown table is still a 404, whatever tag is sent.
    let missing = api.table_url(&["ns"], "missing");
    assert_eq!(status_if_none_match(&api, &missing, "*").await, 404);
}
