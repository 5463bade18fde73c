//! The seam between the repositories and the two SQL engines: the only code that names a sqlx
//! driver type (pools, rows, transactions, connections) or speaks a dialect.
//!
//! Repositories write each statement once, with `?` placeholders, build it as a [`Sql`] with
//! typed binds ([`Arg`]) and read rows through [`Row`]'s typed getters. What differs between the
//! engines is decided here, once:
//!
//! | concern | SQLite | PostgreSQL |
//! |---|---|---|
//! | placeholders | `?` as written | rewritten to `$1..$N` outside quotes |
//! | times ([`Arg::Time`], [`Row::time`]) | `INTEGER` milliseconds since the epoch | `TIMESTAMPTZ`, truncated to milliseconds |
//! | JSON ([`Arg::Json`], [`Row::json`]) | `TEXT` | `JSONB` |
//! | booleans | `INTEGER` 0/1 (sqlx's `bool`) | `BOOLEAN` |
//! | write transaction ([`Db::write_tx`]) | `BEGIN IMMEDIATE`: the single writer | `BEGIN` |
//! | row lock ([`Dialect::for_update`]) | nothing: the writer holds the database | `FOR UPDATE` |
//! | insertion order ([`Dialect::insertion_order`]) | `rowid` | the `seq` identity column |
//! | lease pick ([`Dialect::skip_locked`]) | nothing: the writer holds the database | `FOR UPDATE SKIP LOCKED` |
//! | planner hint ([`Dialect::unindexed`]) | `+column`: no index for that term | the column |
//! | notifications ([`Listener`]) | none: workers poll | `LISTEN` on a dedicated connection |
//! | [`Tx::lock_key`] (check-then-insert) | nothing: the writer holds the database | `pg_advisory_xact_lock` |
//! | [`db_err`] retryable errors | `database is locked` | statement timeout, serialization failure, deadlock, shutdown |
//!
//! A statement is an owned text and a list of [`Arg`]s; it is turned into a sqlx query of the
//! pool's engine when it runs, so one repository function serves both. The cost per statement is
//! the argument vector and, on PostgreSQL, one pass over the text (measured in `bench/store`).

use std::borrow::Cow;
use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};
use docent_domain::{Error, Result};
use serde_json::Value;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, ColumnIndex, Row as _};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: one writer at a time, times as integer milliseconds, JSON as text.
    Sqlite,
    /// PostgreSQL: row and advisory locks, `TIMESTAMPTZ`, `JSONB`.
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Dialect {
    /// ` FOR UPDATE` on PostgreSQL, to append to a `SELECT` whose rows the transaction goes on to
    /// change; nothing on SQLite, whose write transaction already excludes other writers.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            #[cfg(feature = "postgres")]
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// The column that orders a table's rows by insertion, to break ties between equal
    /// timestamps: SQLite's `rowid`, the `seq` identity column of the PostgreSQL schema.
    pub fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            #[cfg(feature = "postgres")]
            Dialect::Postgres => "seq",
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL (concurrent workers pass over each other's
    /// rows); nothing on SQLite.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            #[cfg(feature = "postgres")]
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// `column` as an expression SQLite's planner will not answer from an index (`+column`,
    /// SQLite's documented way to disqualify a term), to keep it off an index that would make a
    /// worse plan; the column itself on PostgreSQL.
    pub fn unindexed(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("+{column}"),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => column.to_owned(),
        }
    }
}

/// The engines a store can be built over: sqlx's database types, sealed.
pub trait Engine: sqlx::Database + sealed::Sealed {}

pub(crate) mod sealed {
    use super::Db;

    /// What the seam needs of an engine, out of reach of other crates.
    pub trait Sealed {
        /// The seam's handle on a pool of this engine.
        fn db(pool: sqlx::Pool<Self>) -> Db
        where
            Self: sqlx::Database;
    }
}

impl Engine for Sqlite {}
impl sealed::Sealed for Sqlite {
    fn db(pool: SqlitePool) -> Db {
        Db::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl Engine for Postgres {}
#[cfg(feature = "postgres")]
impl sealed::Sealed for Postgres {
    fn db(pool: PgPool) -> Db {
        Db::Postgres(pool)
    }
}

/// A connection pool of either engine.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A transaction that will write: on SQLite `BEGIN IMMEDIATE`, so concurrent writers queue
    /// on the busy timeout instead of failing to upgrade a read lock; on PostgreSQL a plain
    /// `BEGIN` (conflicting rows are locked by the statements themselves).
    pub(crate) async fn write_tx(&self) -> Result<Tx> {
        match self {
            Db::Sqlite(p) => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Sqlite),
            #[cfg(feature = "postgres")]
            Db::Postgres(p) => p.begin().await.map(Tx::Postgres),
        }
        .map_err(db_err)
    }

    /// Waits for connections to be returned and closes the pool.
    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            #[cfg(feature = "postgres")]
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// An open transaction of either engine; rolled back when dropped uncommitted.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            #[cfg(feature = "postgres")]
            Tx::Postgres(t) => t.commit().await,
        }
        .map_err(db_err)
    }

    /// Serializes this transaction with every other one taking the same key, until it ends:
    /// what makes a check-then-insert sequence atomic. PostgreSQL takes a transaction-scoped
    /// advisory lock on a hash of the key; SQLite needs nothing, as a write transaction
    /// ([`Db::write_tx`]) already holds the single writer's lock.
    pub(crate) async fn lock_key(&mut self, key: &str) -> Result<()> {
        match self {
            Tx::Sqlite(_) => {
                let _ = key;
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Tx::Postgres(t) => sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut **t)
                .await
                .map(|_| ())
                .map_err(db_err),
        }
    }
}

/// A dedicated connection receiving the notifications of one channel (PostgreSQL `LISTEN`;
/// SQLite has none).
#[cfg(feature = "postgres")]
pub(crate) struct Listener(sqlx::postgres::PgListener);

#[cfg(feature = "postgres")]
impl Listener {
    /// Opens a connection with `db`'s pool's options and listens on `channel`.
    pub(crate) async fn connect(db: &Db, channel: &str) -> Result<Self> {
        match db {
            Db::Postgres(p) => {
                let mut l = sqlx::postgres::PgListener::connect_with(p)
                    .await
                    .map_err(db_err)?;
                l.listen(channel).await.map_err(db_err)?;
                Ok(Self(l))
            }
            Db::Sqlite(_) => Err(Error::internal("SQLite has no notifications")),
        }
    }

    /// Waits for the next notification.
    pub(crate) async fn recv(&mut self) -> Result<()> {
        self.0.recv().await.map(|_| ()).map_err(db_err)
    }
}

/// Where a statement runs: on a pooled connection or inside a transaction.
pub(crate) enum On<'a> {
    Pool(&'a Db),
    Tx(&'a mut Tx),
}

impl On<'_> {
    /// The same target for one more statement, leaving `self` usable after it.
    pub(crate) fn reborrow(&mut self) -> On<'_> {
        match self {
            On::Pool(db) => On::Pool(db),
            On::Tx(tx) => On::Tx(tx),
        }
    }
}

impl<'a> From<&'a Db> for On<'a> {
    fn from(db: &'a Db) -> Self {
        On::Pool(db)
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        On::Tx(tx)
    }
}

/// A bound value, in the domain's terms; each engine stores it in its own column type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
    /// SQLite: integer milliseconds; PostgreSQL: `TIMESTAMPTZ` at millisecond precision.
    Time(Option<DateTime<Utc>>),
    /// SQLite: the serialized text; PostgreSQL: `JSONB`.
    Json(Option<Value>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(
            impl From<$t> for Arg {
                fn from($v: $t) -> Self {
                    $e
                }
            }
        )*
    };
}

arg_from! {
    String => |v| Arg::Text(Some(v));
    &String => |v| Arg::Text(Some(v.clone()));
    &str => |v| Arg::Text(Some(v.to_owned()));
    Option<String> => |v| Arg::Text(v);
    &Option<String> => |v| Arg::Text(v.clone());
    Option<&str> => |v| Arg::Text(v.map(str::to_owned));
    i64 => |v| Arg::Int(Some(v));
    Option<i64> => |v| Arg::Int(v);
    f64 => |v| Arg::Real(Some(v));
    Option<f64> => |v| Arg::Real(v);
    bool => |v| Arg::Bool(Some(v));
    Option<bool> => |v| Arg::Bool(v);
    Vec<u8> => |v| Arg::Bytes(Some(v));
    Option<Vec<u8>> => |v| Arg::Bytes(v);
    DateTime<Utc> => |v| Arg::Time(Some(v));
    Option<DateTime<Utc>> => |v| Arg::Time(v);
    Value => |v| Arg::Json(Some(v));
    Option<Value> => |v| Arg::Json(v);
}

/// Truncates a time to whole milliseconds, the precision both schemas keep.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or(t)
}

/// Now, at millisecond precision.
pub(crate) fn now() -> DateTime<Utc> {
    ms(Utc::now())
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Binds every [`Arg`] to a sqlx query in its engine's representation: the same for both but
/// for times and JSON, which `time` (a non-null time) and `json` convert.
macro_rules! bind_all {
    ($query:expr, $args:expr, time: $time:expr, json: $json:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Real(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Time(v) => q.bind(v.map($time)),
                Arg::Json(v) => q.bind(($json)(v)),
            };
        }
        q
    }};
}
/// One statement: its text, written with `?` placeholders, and the values bound to them in
/// order. Built whole ([`Sql::new`] + [`Sql::bind`]) or piece by piece ([`Sql::push`],
/// [`Sql::push_bind`]) for dynamic filters.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    text: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next `?`.
    pub(crate) fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Appends text (no placeholders of its own unless bound with [`Sql::arg`]).
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.to_mut().push_str(text);
        self
    }

    /// Binds a value for a `?` already pushed.
    pub(crate) fn arg(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.args.push(v.into());
        self
    }

    /// Appends a placeholder and binds `v` to it.
    pub(crate) fn push_bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.text.to_mut().push('?');
        self.args.push(v.into());
        self
    }

    /// Appends `?, ?, …` binding each of `values`, separated by commas.
    pub(crate) fn push_list<A: Into<Arg>>(
        &mut self,
        values: impl IntoIterator<Item = A>,
    ) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.to_mut().push_str(", ");
            }
            self.push_bind(v);
        }
        self
    }

    /// Appends ` AND {column} IN (…)` with `values` bound; nothing when there are none.
    pub(crate) fn push_in(&mut self, column: &str, values: Vec<String>) -> &mut Self {
        if !values.is_empty() {
            self.push(&format!(" AND {column} IN ("));
            self.push_list(values);
            self.push(")");
        }
        self
    }

    /// Appends ` AND lower({column}) LIKE lower(?) ESCAPE '\'`: rows whose `column` contains
    /// `text` literally (`%`, `_` and `\` in it match only themselves), ignoring case as the
    /// engine's `lower` does (ASCII on SQLite). No text, or an empty one, adds nothing.
    pub(crate) fn push_contains(&mut self, column: &str, text: Option<String>) -> &mut Self {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return self;
        };
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        self.push(&format!(" AND lower({column}) LIKE lower("));
        self.push_bind(pattern);
        self.push(") ESCAPE '\\'")
    }

    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn execute<'a>(self, on: impl Into<On<'a>>) -> sqlx::Result<u64> {
        match on.into() {
            On::Pool(Db::Sqlite(p)) => self.sqlite().execute(p).await.map(|r| r.rows_affected()),
            On::Tx(Tx::Sqlite(t)) => self
                .sqlite()
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
            #[cfg(feature = "postgres")]
            On::Pool(Db::Postgres(p)) => {
                self.postgres().execute(p).await.map(|r| r.rows_affected())
            }
            #[cfg(feature = "postgres")]
            On::Tx(Tx::Postgres(t)) => self
                .postgres()
                .execute(&mut **t)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    pub(crate) async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> sqlx::Result<Option<Row>> {
        match on.into() {
            On::Pool(Db::Sqlite(p)) => self
                .sqlite()
                .fetch_optional(p)
                .await
                .map(|r| r.map(Row::Sqlite)),
            On::Tx(Tx::Sqlite(t)) => self
                .sqlite()
                .fetch_optional(&mut **t)
                .await
                .map(|r| r.map(Row::Sqlite)),
            #[cfg(feature = "postgres")]
            On::Pool(Db::Postgres(p)) => self
                .postgres()
                .fetch_optional(p)
                .await
                .map(|r| r.map(Row::Postgres)),
            #[cfg(feature = "postgres")]
            On::Tx(Tx::Postgres(t)) => self
                .postgres()
                .fetch_optional(&mut **t)
                .await
                .map(|r| r.map(Row::Postgres)),
        }
    }

    pub(crate) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> sqlx::Result<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of the first row, if there is a row.
    pub(crate) async fn scalar_optional<'a, T: Column>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<T>> {
        match self.fetch_optional(on).await.map_err(db_err)? {
            Some(row) => row.get(0).map(Some),
            None => Ok(None),
        }
    }

    /// The first column of the one row the statement returns.
    pub(crate) async fn scalar<'a, T: Column>(self, on: impl Into<On<'a>>) -> Result<T> {
        self.fetch_one(on).await.map_err(db_err)?.get(0)
    }

    /// The first column of every row.
    pub(crate) async fn scalars<'a, T: Column>(self, on: impl Into<On<'a>>) -> Result<Vec<T>> {
        let rows = self.fetch_all(on).await.map_err(db_err)?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    pub(crate) async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> sqlx::Result<Vec<Row>> {
        match on.into() {
            On::Pool(Db::Sqlite(p)) => self.sqlite().fetch_all(p).await.map(wrap(Row::Sqlite)),
            On::Tx(Tx::Sqlite(t)) => self
                .sqlite()
                .fetch_all(&mut **t)
                .await
                .map(wrap(Row::Sqlite)),
            #[cfg(feature = "postgres")]
            On::Pool(Db::Postgres(p)) => {
                self.postgres().fetch_all(p).await.map(wrap(Row::Postgres))
            }
            #[cfg(feature = "postgres")]
            On::Tx(Tx::Postgres(t)) => self
                .postgres()
                .fetch_all(&mut **t)
                .await
                .map(wrap(Row::Postgres)),
        }
    }

    fn sqlite(self) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        bind_all!(
            sqlx::query(AssertSqlSafe(self.text)),
            self.args,
            time: |t: DateTime<Utc>| t.timestamp_millis(),
            json: |v: Option<Value>| v.map(|v| v.to_string())
        )
    }

    #[cfg(feature = "postgres")]
    fn postgres(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        bind_all!(
            sqlx::query(AssertSqlSafe(numbered(&self.text))),
            self.args,
            time: ms,
            json: |v: Option<Value>| v
        )
    }
}

fn wrap<R>(f: fn(R) -> Row) -> impl FnOnce(Vec<R>) -> Vec<Row> {
    move |rows| rows.into_iter().map(f).collect()
}

/// `text` with each `?` outside quoted literals and identifiers numbered `$1, $2, …`, as
/// PostgreSQL wants them. (Statements never use PostgreSQL's `?` JSONB operators; the
/// `jsonb_exists` functions say the same.)
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // the tests run it on either build
pub(crate) fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The types a column can be read as on either engine, unchanged.
#[cfg(not(feature = "postgres"))]
pub(crate) trait Column: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> {}
#[cfg(not(feature = "postgres"))]
impl<T> Column for T where T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> {}

/// The types a column can be read as on either engine, unchanged.
#[cfg(feature = "postgres")]
pub(crate) trait Column:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}
#[cfg(feature = "postgres")]
impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// A column name or position, on either engine.
#[cfg(not(feature = "postgres"))]
pub(crate) trait Index: ColumnIndex<SqliteRow> + Copy + Debug {}
#[cfg(not(feature = "postgres"))]
impl<I: ColumnIndex<SqliteRow> + Copy + Debug> Index for I {}
/// A column name or position, on either engine.
#[cfg(feature = "postgres")]
pub(crate) trait Index: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy + Debug {}
#[cfg(feature = "postgres")]
impl<I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + Copy + Debug> Index for I {}

/// A result row of either engine, read through typed getters that undo the engine's column
/// representation.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    #[cfg(feature = "postgres")]
    Postgres(PgRow),
}

impl Row {
    /// A column stored the same way on both engines (text, 64-bit integers, floats, booleans,
    /// bytes, and their `Option`s).
    pub(crate) fn get<T: Column>(&self, col: impl Index) -> Result<T> {
        match self {
            Row::Sqlite(r) => r.try_get(col),
            #[cfg(feature = "postgres")]
            Row::Postgres(r) => r.try_get(col),
        }
        .map_err(db_err)
    }

    /// A time column.
    pub(crate) fn time(&self, col: impl Index) -> Result<DateTime<Utc>> {
        self.opt_time(col)?
            .ok_or_else(|| Error::internal(format!("column {col:?} is null")))
    }

    /// A nullable time column.
    pub(crate) fn opt_time(&self, col: impl Index) -> Result<Option<DateTime<Utc>>> {
        match self {
            Row::Sqlite(r) => r.try_get::<Option<i64>, _>(col).map(|v| v.map(from_ms)),
            #[cfg(feature = "postgres")]
            Row::Postgres(r) => r.try_get(col),
        }
        .map_err(db_err)
    }

    /// A JSON column. Text that is not JSON (SQLite) reads as `null`, which every decoder treats
    /// as its empty or corrupt case.
    pub(crate) fn json(&self, col: impl Index) -> Result<Value> {
        Ok(self.opt_json(col)?.unwrap_or(Value::Null))
    }

    /// A nullable JSON column.
    pub(crate) fn opt_json(&self, col: impl Index) -> Result<Option<Value>> {
        match self {
            Row::Sqlite(r) => r
                .try_get::<Option<String>, _>(col)
                .map(|s| s.map(|s| serde_json::from_str(&s).unwrap_or(Value::Null))),
            #[cfg(feature = "postgres")]
            Row::Postgres(r) => r.try_get(col),
        }
        .map_err(db_err)
    }

    /// An id stored as text, parsed.
    pub(crate) fn id<T: std::str::FromStr>(&self, col: &str) -> Result<T> {
        let s: String = self.get(col)?;
        s.parse()
            .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
    }

    /// A nullable id stored as text, parsed.
    pub(crate) fn opt_id<T: std::str::FromStr>(&self, col: &str) -> Result<Option<T>> {
        let s: Option<String> = self.get(col)?;
        s.map(|s| {
            s.parse()
                .map_err(|_| Error::internal(format!("corrupt id in column {col}: {s}")))
        })
        .transpose()
    }
}

/// Maps a database error: connection trouble and the errors an engine says are worth retrying
/// (SQLite: the database is locked past the busy timeout; PostgreSQL: statement timeout,
/// serialization failure, deadlock, shutdown) are `service_unavailable`, anything else
/// internal. Callers handle constraint violations they expect before this.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::unavailable("the database", e)
        }
        sqlx::Error::Database(d) if is_retryable(d.as_ref()) => {
            Error::unavailable("the database", e)
        }
        _ => Error::internal(e),
    }
}

fn is_retryable(d: &dyn sqlx::error::DatabaseError) -> bool {
    // SQLite's result codes are numbers (SQLITE_BUSY 5 and its extended forms); PostgreSQL's
    // SQLSTATEs are five characters: query_canceled (statement_timeout),
    // serialization_failure, deadlock_detected, admin/crash shutdown, cannot_connect_now.
    d.message().contains("database is locked")
        || matches!(
            d.code().as_deref(),
            Some("57014" | "40001" | "40P01" | "57P01" | "57P02" | "57P03")
        )
}

/// A unique constraint failed (either engine).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A foreign-key constraint failed (either engine).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered("SELECT '?', \"a?\" FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(numbered("SELECT 'it''s ?' , ?"), "SELECT 'it''s ?' , $1");
    }

    /// What the seam assumes of each engine, checked on the real thing (sqlx as locked): `?`
    /// placeholders bind in order on SQLite and, numbered, on PostgreSQL, a quoted `?` is
    /// text, and every [`Arg`] comes back through the matching [`Row`] getter unchanged.
    async fn round_trip(db: Db, ddl: &'static str) {
        let mut tx = db.write_tx().await.unwrap();
        Sql::new(ddl).execute(&mut tx).await.unwrap();
        let at = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        let json = serde_json::json!({"a": [1, "two", null], "b": {"c": true}});
        Sql::new("INSERT INTO seam_probe (t, i, r, b, x, at, j) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind("it's")
            .bind(-5_i64)
            .bind(0.25_f64)
            .bind(true)
            .bind(vec![0_u8, 255])
            .bind(at + chrono::Duration::microseconds(456))
            .bind(json.clone())
            .execute(&mut tx)
            .await
            .unwrap();
        Sql::new("INSERT INTO seam_probe (t) VALUES (?)")
            .bind(Option::<String>::None)
            .execute(&mut tx)
            .await
            .unwrap();
        let row =
            Sql::new("SELECT t, i, r, b, x, at, j, '?' AS q FROM seam_probe WHERE t = ? AND i = ?")
                .bind("it's")
                .bind(-5_i64)
                .fetch_one(&mut tx)
                .await
                .unwrap();
        assert_eq!(row.get::<String>("t").unwrap(), "it's");
        assert_eq!(row.get::<i64>("i").unwrap(), -5);
        assert_eq!(row.get::<f64>("r").unwrap(), 0.25);
        assert!(row.get::<bool>("b").unwrap());
        assert_eq!(row.get::<Vec<u8>>("x").unwrap(), vec![0, 255]);
        assert_eq!(
            row.time("at").unwrap(),
            at,
            "times keep milliseconds, no finer"
        );
        assert_eq!(row.json("j").unwrap(), json);
        assert_eq!(row.get::<String>("q").unwrap(), "?");
        let empty = Sql::new("SELECT i, at, j FROM seam_probe WHERE t IS NULL")
            .fetch_one(&mut tx)
            .await
            .unwrap();
        assert_eq!(empty.get::<Option<i64>>("i").unwrap(), None);
        assert_eq!(empty.opt_time("at").unwrap(), None);
        assert_eq!(empty.opt_json("j").unwrap(), None);
        let n: i64 = Sql::new("SELECT COUNT(*) FROM seam_probe")
            .scalar(&mut tx)
            .await
            .unwrap();
        assert_eq!(n, 2);
        let dup = Sql::new("INSERT INTO seam_probe (t, i) VALUES (?, ?)")
            .bind("it's")
            .bind(1_i64)
            .execute(&mut tx)
            .await
            .unwrap_err();
        assert!(is_unique_violation(&dup), "{dup}");
    }

    #[tokio::test]
    async fn statements_round_trip_on_sqlite() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        round_trip(
            Db::Sqlite(pool),
            "CREATE TEMP TABLE seam_probe (t TEXT UNIQUE, i INTEGER, r REAL, b INTEGER, x BLOB, at INTEGER, j TEXT)",
        )
        .await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn statements_round_trip_on_postgres() {
        let Some(url) = std::env::var("DOCENT_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: DOCENT_TEST_POSTGRES_URL not set");
            return;
        };
        let pool = PgPool::connect(&url).await.unwrap();
        round_trip(
            Db::Postgres(pool),
            "CREATE TEMP TABLE seam_probe (t TEXT UNIQUE, i BIGINT, r DOUBLE PRECISION, b BOOLEAN, x BYTEA, at TIMESTAMPTZ, j JSONB) ON COMMIT DROP",
        )
        .await;
    }
}
