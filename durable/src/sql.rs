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

/// Most bytes of one bound JSON string of rows: well under the 2 MB that SQLite-backed
/// objects allow a string or BLOB ("Maximum string, BLOB or table row size", Cloudflare's
/// Durable Objects limits), whatever the rows hold. Local workerd does not enforce that
/// limit, so only this bound keeps a large append from failing once deployed.
pub const JSON_CHUNK_BYTES: usize = 1024 * 1024;

/// Packs JSON-encoded rows into JSON arrays of at most `max_bytes` each (a row larger than
/// that gets an array of its own), in order. Bound one array per parameter and read them
/// with [`chunked_rows`], so one statement inserts any number of rows all or none while no
/// single bound string has to hold them all. Always returns at least one array (`[]`).
pub fn json_array_chunks(rows: impl IntoIterator<Item = String>, max_bytes: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut chunk = String::from("[");
    for row in rows {
        if chunk.len() > 1 && chunk.len() + row.len() + 2 > max_bytes {
            chunk.push(']');
            chunks.push(std::mem::replace(&mut chunk, String::from("[")));
        }
        if chunk.len() > 1 {
            chunk.push(',');
        }
        chunk.push_str(&row);
    }
    chunk.push(']');
    chunks.push(chunk);
    chunks
}

/// Lowercase hex of `bytes`, as SQLite's `unhex` reads it back: how a BLOB travels in the
/// JSON rows of [`chunked_rows`]. Through `hex::encode_to_slice` (a byte table), where
/// `hex::encode` collects a `String` char by char — that was 4.5% of the isolate in a
/// profile of 1,000-command batches.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    // The output is exactly twice the input, the only way this can fail.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default() // ASCII digits: always valid
}

/// The `FROM` source that reads the rows of `chunks` JSON arrays bound as parameters
/// `?first`…`?first+chunks-1`: each row is a `value` of `json_each`, in order. A multi-row
/// `VALUES`, not a `UNION ALL` of `json_each` calls: workerd's SQLite refuses compound
/// SELECTs of more than a few terms, and `VALUES` is not subject to that limit.
pub fn chunked_rows(first: usize, chunks: usize) -> String {
    let params: Vec<String> = (first..first + chunks.max(1))
        .map(|n| format!("(?{n})"))
        .collect();
    format!(
        "(VALUES {}) AS chunk, json_each(chunk.column1)",
        params.join(", ")
    )
}

/// The select list that reads `columns` out of each `json_each` row of [`chunked_rows`]
/// (a JSON array in `columns` order; element `i` is column `i`), turning the hex text of
/// the `hex_blobs` columns back into BLOBs.
pub fn json_row_values(columns: &[&str], hex_blobs: &[&str]) -> String {
    let values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            if hex_blobs.contains(column) {
                format!("unhex(value ->> {i})")
            } else {
                format!("value ->> {i}")
            }
        })
        .collect();
    values.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_what_the_hex_crate_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&bytes), hex::encode(&bytes));
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn chunks_keep_every_row_in_order_and_each_within_the_bound() {
        let rows: Vec<String> = (0..1000)
            .map(|n| format!("[{n},\"{}\"]", "x".repeat(n % 97)))
            .collect();
        let chunks = json_array_chunks(rows.clone(), 4096);
        assert!(chunks.len() > 1);
        let mut back = Vec::new();
        for chunk in &chunks {
            assert!(chunk.len() <= 4096, "{}", chunk.len());
            let array: Vec<serde_json::Value> = serde_json::from_str(chunk).unwrap();
            back.extend(array.into_iter().map(|v| v.to_string()));
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn a_row_over_the_bound_gets_a_chunk_of_its_own_and_no_rows_give_one_empty_array() {
        let big = format!("[\"{}\"]", "y".repeat(100));
        let chunks = json_array_chunks(["[1]".to_owned(), big.clone(), "[2]".to_owned()], 50);
        assert_eq!(
            chunks,
            ["[[1]]".to_owned(), format!("[{big}]"), "[[2]]".to_owned()]
        );
        assert_eq!(json_array_chunks(Vec::<String>::new(), 50), ["[]"]);
    }

    #[test]
    fn json_row_values_reads_columns_by_position_and_unhexes_blobs() {
        assert_eq!(
            json_row_values(&["seq", "payload", "type"], &["payload"]),
            "value ->> 0, unhex(value ->> 1), value ->> 2"
        );
    }

    #[test]
    fn chunked_rows_numbers_its_parameters_from_first() {
        assert_eq!(
            chunked_rows(4, 2),
            "(VALUES (?4), (?5)) AS chunk, json_each(chunk.column1)"
        );
        assert_eq!(
            chunked_rows(1, 0),
            "(VALUES (?1)) AS chunk, json_each(chunk.column1)"
        );
    }
}
