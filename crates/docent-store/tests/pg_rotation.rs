//! `PgStore::set_url` (secret rotation on SIGHUP) against a real PostgreSQL
//! (`DOCENT_TEST_POSTGRES_URL`): connections opened afterwards use the new URL and keep the
//! settings made at connect time; an invalid URL is refused without echoing it.

#![cfg(feature = "postgres")]

mod common;

use docent_domain::Code;
use sqlx::Row;

/// The server's `work_mem` on a connection the pool opens now.
async fn work_mem_of_a_new_connection(pool: &sqlx::PgPool) -> (String, String) {
    // Take a pooled connection out of the pool, so the next acquire opens a new one.
    let old = pool.acquire().await.unwrap();
    let _ = old.detach();
    let mut conn = pool.acquire().await.unwrap();
    let row =
        sqlx::query("SELECT current_setting('work_mem') AS w, current_setting('search_path') AS s")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let _ = conn.detach();
    (row.get("w"), row.get("s"))
}

#[tokio::test]
async fn new_connections_use_the_new_url() {
    let Some((store, schema)) = common::postgres::store().await else {
        return;
    };
    let url = common::postgres::url().unwrap();
    let (before, path) = work_mem_of_a_new_connection(store.pool()).await;
    assert_ne!(before, "7MB");
    assert!(path.contains(&schema.name), "{path}");

    // A URL that differs in a way a new connection shows: a connection option.
    let sep = if url.contains('?') { '&' } else { '?' };
    let rotated = format!("{url}{sep}options=-c%20work_mem%3D7MB");
    store.set_url(&rotated).unwrap();
    let (after, path) = work_mem_of_a_new_connection(store.pool()).await;
    assert_eq!(after, "7MB");
    assert!(path.contains(&schema.name), "search_path kept: {path}");
    assert_eq!(
        store.pool().connect_options().get_application_name(),
        Some(schema.name.as_str()),
        "application name kept"
    );

    let err = store
        .set_url("postgres://u:s3cret-pw@[bad-host/db")
        .unwrap_err();
    assert_eq!(err.code, Code::Unavailable);
    assert!(!err.chain().contains("s3cret-pw"), "{}", err.chain());
}
