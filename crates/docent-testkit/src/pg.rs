//! A PostgreSQL database of a test's own: [`TestDatabase::create`] makes a fresh, uniquely
//! named database on the server of a URL (e.g. `DOCENT_TEST_PGVECTOR_URL`) and dropping the
//! value drops the database, closing whatever connections the test left open.

use sqlx::Connection;

/// The URL in the environment variable `var` (a test server's), or `None` after printing
/// `skipped: VAR not set`: the test passes without running.
pub fn env_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// A fresh database, dropped (`WITH (FORCE)`) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `{prefix}_{uuid}` on the server of `admin_url` (a URL naming any database the
    /// test may connect to). Panics when the server cannot be reached: the test asked for it.
    pub async fn create(admin_url: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        Self {
            url: with_database(admin_url, &name),
            admin: admin_url.to_owned(),
            name,
        }
    }

    /// The URL of the new database (the admin URL with its database replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `url` with its database path replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    format!("{root}/{name}{query}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u@h:5433/test?sslmode=disable", "x"),
            "postgres://u@h:5433/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/test", "y"),
            "postgres://u@h/y"
        );
    }
}
