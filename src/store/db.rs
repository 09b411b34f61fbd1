//! One SQL for both backends: the projection tables, the outbox, the revocation checks and the
//! signed checkpoints are read and written by the same functions whether the store is SQLite or
//! PostgreSQL ([`Db`]).
//!
//! Why not two copies of each statement: the tables are the desk's memory (what is due, what
//! was sent, what was checked). Two hand-kept copies would drift, and a desk that moves from
//! one backend to the other (`cprwatch store copy`) would then find other answers in the same
//! rows. So the statements are written once, in the SQL both servers speak (`?1` parameters,
//! `ON CONFLICT`, `COALESCE`, no `INSERT OR`), and each backend only executes them:
//! - SQLite ([`Lite`]) runs them as they are, through rusqlite's statement cache;
//! - PostgreSQL ([`Pg`]) rewrites `?n` to `$n` once per statement and prepares it once per
//!   connection. Its schema declares every integer `BIGINT`, so a column reads back as the
//!   `i64` SQLite gives, and [`Param`] adapts itself to the type the server infers.
//!
//! Only what differs in kind stays per backend: the DDL (types, `WITHOUT ROWID`), SQLite's
//! page and WAL housekeeping, and the event log itself (`sqlite.rs`, `postgres.rs`).

use std::collections::HashMap;

use super::StoreError;

/// A statement's parameter, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

impl<'a, T: Copy + Into<Param<'a>>> From<&Option<T>> for Param<'a> {
    fn from(v: &Option<T>) -> Self {
        (*v).map_or(Param::Null, Into::into)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Param::Null, Param::Text)
    }
}

impl<'a> From<&'a Option<Vec<u8>>> for Param<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        v.as_deref().map_or(Param::Null, Param::Blob)
    }
}

/// `params![a, b]`: a statement's parameters, each converted with `Param::from`.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$($crate::store::db::Param::from($p)),*] as &[$crate::store::db::Param<'_>]
    };
}
pub(crate) use params;

/// One column of a row as the server gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// Why a statement failed: the server's error, or a value of a type the code does not expect.
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    Value(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Value(e.to_string())
    }
}

impl DbError {
    /// The store error a user sees, naming what was being done.
    pub(crate) fn at(self, action: &'static str) -> StoreError {
        match self {
            DbError::Sqlite(source) => StoreError::Sql { action, source },
            DbError::Postgres(source) => StoreError::Postgres {
                action,
                detail: super::postgres_connect::describe(&source),
                source,
            },
            DbError::Value(detail) => StoreError::Value { action, detail },
        }
    }
}

/// `.map_err(at(ACTION))`.
pub(crate) fn at(action: &'static str) -> impl FnOnce(DbError) -> StoreError {
    move |e| e.at(action)
}

/// A row being read.
pub trait Row {
    fn cell(&self, i: usize) -> Result<Cell<'_>, DbError>;
}

impl dyn Row + '_ {
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(v)),
            other => Err(unexpected(i, "an integer", other)),
        }
    }
    pub(crate) fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?
            .ok_or_else(|| DbError::Value(format!("column {i} is NULL, not an integer")))
    }
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v.to_string())),
            other => Err(unexpected(i, "text", other)),
        }
    }
    pub(crate) fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?
            .ok_or_else(|| DbError::Value(format!("column {i} is NULL, not text")))
    }
    pub(crate) fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Blob(v) => Ok(Some(v.to_vec())),
            other => Err(unexpected(i, "bytes", other)),
        }
    }
    pub(crate) fn blob(&self, i: usize) -> Result<Vec<u8>, DbError> {
        self.opt_blob(i)?
            .ok_or_else(|| DbError::Value(format!("column {i} is NULL, not bytes")))
    }
}

fn unexpected(i: usize, wanted: &str, got: Cell<'_>) -> DbError {
    let kind = match got {
        Cell::Null => "NULL",
        Cell::Int(_) => "an integer",
        Cell::Text(_) => "text",
        Cell::Blob(_) => "bytes",
    };
    DbError::Value(format!("column {i} holds {kind}, not {wanted}"))
}

/// What both backends can do with a statement. Statements are written with `?1`, `?2`, …
pub trait Db {
    /// Run a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Run a query, handing each row to `f` until it answers `false`.
    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError>;
}

impl dyn Db + '_ {
    /// Every row, each made into a `T` by `f`.
    pub(crate) fn query<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut out = Vec::new();
        self.each(sql, params, &mut |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The first row, if there is one.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        let mut out = None;
        self.each(sql, params, &mut |r| {
            out = Some(f(r)?);
            Ok(false)
        })?;
        Ok(out)
    }
}

/// A SQLite connection (or transaction, through `Deref`) as a [`Db`].
pub(crate) struct Lite<'c>(pub(crate) &'c rusqlite::Connection);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(v) => ValueRef::Integer(v),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl Row for rusqlite::Row<'_> {
    fn cell(&self, i: usize) -> Result<Cell<'_>, DbError> {
        use rusqlite::types::ValueRef;
        Ok(match self.get_ref(i)? {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Int(v),
            ValueRef::Real(v) => {
                return Err(DbError::Value(format!(
                    "column {i} holds the number {v}, not an integer"
                )));
            }
            ValueRef::Text(t) => Cell::Text(
                std::str::from_utf8(t)
                    .map_err(|_| DbError::Value(format!("column {i} is not UTF-8 text")))?,
            ),
            ValueRef::Blob(b) => Cell::Blob(b),
        })
    }
}

fn lite_execute(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, DbError> {
    let mut st = conn.prepare_cached(sql)?;
    Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

fn lite_each(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
    f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
) -> Result<(), DbError> {
    let mut st = conn.prepare_cached(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        if !f(r)? {
            break;
        }
    }
    Ok(())
}

impl Db for Lite<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        lite_execute(self.0, sql, params)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        lite_each(self.0, sql, params, f)
    }
}

/// An owned connection (a reader of its own) as a [`Db`].
impl Db for rusqlite::Connection {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        lite_execute(self, sql, params)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        lite_each(self, sql, params, f)
    }
}

/// Prepared statements of one PostgreSQL connection, by their `?n` text. Cleared when the
/// connection is replaced: a statement belongs to the session that prepared it.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, postgres::Statement>);

impl Statements {
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    fn get(
        &mut self,
        client: &mut impl postgres::GenericClient,
        sql: &str,
    ) -> Result<postgres::Statement, DbError> {
        if let Some(st) = self.0.get(sql) {
            return Ok(st.clone());
        }
        let st = client.prepare(&dollar_params(sql))?;
        self.0.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

/// `?12` → `$12`, outside string literals: PostgreSQL's placeholders for SQLite's.
pub(crate) fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A PostgreSQL client or transaction, with its connection's statements, as a [`Db`].
pub(crate) struct Pg<'a, C: postgres::GenericClient> {
    pub(crate) client: &'a mut C,
    pub(crate) statements: &'a mut Statements,
}

impl postgres::types::ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match *self {
            Param::Null => Ok(postgres::types::IsNull::Yes),
            Param::Int(v) if *ty == Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
            Param::Int(v) if *ty == Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
            Param::Int(v) if *ty == Type::BOOL => (v != 0).to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            // A hash kept as its bytes in a column SQLite lets hold either (`case_items.item`)
            // is text here: the lowercase hex it was made from.
            Param::Blob(v) if *ty == Type::TEXT || *ty == Type::VARCHAR => {
                hex::encode(v).to_sql(ty, out)
            }
            Param::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        // Each value checks the type the server inferred in `to_sql`.
        true
    }

    postgres::types::to_sql_checked!();
}

impl Row for postgres::Row {
    fn cell(&self, i: usize) -> Result<Cell<'_>, DbError> {
        use postgres::types::Type;
        let Some(column) = self.columns().get(i) else {
            return Err(DbError::Value(format!("no column {i}")));
        };
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            self.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            self.try_get::<_, Option<i32>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::INT2 {
            self.try_get::<_, Option<i16>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::BOOL {
            self.try_get::<_, Option<bool>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::BYTEA {
            self.try_get::<_, Option<&[u8]>>(i)?.map(Cell::Blob)
        } else {
            self.try_get::<_, Option<&str>>(i)?.map(Cell::Text)
        };
        Ok(cell.unwrap_or(Cell::Null))
    }
}

impl<C: postgres::GenericClient> Db for Pg<'_, C> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let st = self.statements.get(self.client, sql)?;
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        Ok(self.client.execute(&st, &refs)?)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let st = self.statements.get(self.client, sql)?;
        let mut rows = self.client.query_raw(&st, params.iter())?;
        while let Some(r) = rows.next()? {
            if !f(&r)? {
                break;
            }
        }
        Ok(())
    }
}

/// A PostgreSQL connection of its own (a projector's reader), connecting again when the
/// server closed it: a restarted server costs the statement that found it gone, not the
/// reader.
pub(crate) struct PgConn {
    client: Option<postgres::Client>,
    statements: Statements,
    connect: Box<dyn Fn() -> Result<postgres::Client, DbError> + Send>,
}

impl PgConn {
    pub(crate) fn new(
        connect: Box<dyn Fn() -> Result<postgres::Client, DbError> + Send>,
    ) -> Result<PgConn, DbError> {
        Ok(PgConn {
            client: Some(super::postgres_connect::blocking(&connect)?),
            statements: Statements::default(),
            connect,
        })
    }

    /// The live connection, with its statements.
    pub(crate) fn live(&mut self) -> Result<Pg<'_, postgres::Client>, DbError> {
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            self.statements.clear();
            self.client = None;
            self.client = Some((self.connect)()?);
        }
        match self.client.as_mut() {
            Some(client) => Ok(Pg {
                client,
                statements: &mut self.statements,
            }),
            None => Err(DbError::Value("no connection".into())),
        }
    }
}

impl Db for PgConn {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        super::postgres_connect::blocking(|| self.live()?.execute(sql, params))
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        f: &mut dyn FnMut(&dyn Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        super::postgres_connect::blocking(|| self.live()?.each(sql, params, f))
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            super::postgres_connect::blocking(|| drop(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        assert_eq!(
            dollar_params("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d IN (?10, ?3)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d IN ($10, $3)"
        );
        assert_eq!(dollar_params("SELECT '?' , ?"), "SELECT '?' , ?");
    }

    #[test]
    fn sqlite_rows_read_as_cells() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let db: &mut dyn Db = &mut Lite(&conn);
        db.execute("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)", &[])
            .unwrap();
        let blob = vec![1u8, 2];
        db.execute(
            "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3), (?4, ?5, ?6)",
            params![7i64, "x", &blob, None::<i64>, None::<&str>, None::<&[u8]>],
        )
        .unwrap();
        let rows = db
            .query("SELECT a, b, c FROM t ORDER BY a", &[], |r| {
                Ok((r.opt_int(0)?, r.opt_text(1)?, r.opt_blob(2)?))
            })
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (None, None, None),
                (Some(7), Some("x".to_string()), Some(vec![1, 2]))
            ]
        );
        let first = db
            .query_opt("SELECT a FROM t WHERE a IS NOT NULL", &[], |r| r.int(0))
            .unwrap();
        assert_eq!(first, Some(7));
        let wrong = db.query_opt("SELECT b FROM t WHERE a = 7", &[], |r| r.int(0));
        assert!(matches!(wrong, Err(DbError::Value(_))));
    }
}
