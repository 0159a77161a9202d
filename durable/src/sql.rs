//! Small helpers every object's SQLite code shares: schema migrations and value
//! conversions. (workers-rs hands rows out as `SqlStorageValue`s.)

use worker::{SqlStorage, SqlStorageValue};

/// A storage failure, as text (not a client mistake: HTTP 500).
pub type SqlError = String;

fn err(e: impl std::fmt::Display) -> SqlError {
    e.to_string()
}

/// Brings an object's database to the newest schema. `migrations[i]` takes a database
/// from version `i` to `i + 1`; released entries are never edited, only appended. Runs
/// with no `.await`, so a migration and its version record commit together.
pub fn migrate(sql: &SqlStorage, migrations: &[&str]) -> Result<(), SqlError> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        None,
    )
    .map_err(err)?;
    let current =
        scalar(sql, "SELECT max(version) FROM schema_migrations", vec![])?.unwrap_or(0) as usize;
    for (version, migration) in migrations.iter().enumerate().skip(current) {
        sql.exec(migration, None).map_err(err)?;
        sql.exec(
            "INSERT INTO schema_migrations (version) VALUES (?)",
            vec![int(version as u64 + 1)],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// The first column of the first row as an integer, if any.
pub fn scalar(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<SqlStorageValue>,
) -> Result<Option<i64>, SqlError> {
    let cursor = sql.exec(query, bindings).map_err(err)?;
    match cursor.raw().next() {
        Some(row) => match row.map_err(err)?.first() {
            Some(SqlStorageValue::Integer(n)) => Ok(Some(*n)),
            Some(SqlStorageValue::Float(f)) => Ok(Some(*f as i64)),
            _ => Ok(None),
        },
        None => Ok(None),
    }
}

/// An integer binding. Seqs, offsets and times stay far below 2^53 (checked at the
/// edge), so the conversion is exact.
pub fn int(v: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(v as i64)
}

/// A TEXT column, `None` for NULL.
pub fn text(v: &SqlStorageValue) -> Option<String> {
    match v {
        SqlStorageValue::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// An INTEGER column.
pub fn integer(v: &SqlStorageValue) -> Result<i64, SqlError> {
    match v {
        SqlStorageValue::Integer(n) => Ok(*n),
        SqlStorageValue::Float(f) => Ok(*f as i64),
        other => Err(format!("expected an integer column, got {other:?}")),
    }
}
