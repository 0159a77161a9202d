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

/// Most bytes of one bound JSON string of rows, and of one bound BLOB beside it: well under
/// the 2 MB that SQLite-backed objects allow a string or BLOB ("Maximum string, BLOB or
/// table row size", Cloudflare's Durable Objects limits), whatever the rows hold. Local
/// workerd does not enforce that limit, so only this bound keeps a large append from
/// failing once deployed.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The rows of one `INSERT … SELECT … FROM` [`chunked_rows`], bound in chunks: per chunk a
/// JSON array of the rows' plain columns and one BLOB holding the rows' BLOB columns, each
/// row naming its bytes by position and length. So one statement inserts any number of
/// rows all or none, while no bound string or BLOB passes [`CHUNK_BYTES`] (a row larger
/// than that gets a chunk of its own); and BLOBs travel as bytes, cut out with `substr`,
/// not as hex inside the JSON that SQLite parses row by row (`json_each`, then `->>` per
/// column).
#[derive(Debug)]
pub struct RowChunks {
    /// Per chunk: its JSON array so far (the closing `]` comes in [`Self::into_bindings`])
    /// and its BLOB.
    chunks: Vec<(String, Vec<u8>)>,
    max_bytes: usize,
}

impl RowChunks {
    /// No rows yet; chunks of at most `max_bytes` of JSON and of BLOB each.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            chunks: vec![(String::from("["), Vec::new())],
            max_bytes,
        }
    }

    /// Appends a row: `plain` is the JSON array of its plain columns (as `serde_json`
    /// writes a tuple), `blobs` its BLOB columns (`None` is NULL), in the order
    /// [`row_values`] reads them. In the chunk's JSON the row becomes `plain`'s elements
    /// followed by each BLOB's 1-based start in the chunk's BLOB and its length (`null`,
    /// `null` for NULL).
    pub fn push(&mut self, plain: &str, blobs: &[Option<&[u8]>]) {
        let elements = plain
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .unwrap_or(plain);
        let blob_bytes: usize = blobs.iter().flatten().map(|b| b.len()).sum();
        // Positions and lengths take at most 2 × 20 digits and 2 separators per BLOB.
        let row_bytes = elements.len() + 2 + blobs.len() * 42;
        let (json, bytes) = self
            .chunks
            .last()
            .map_or((0, 0), |(j, b)| (j.len(), b.len()));
        if json > 1
            && (json + row_bytes + 2 > self.max_bytes || bytes + blob_bytes > self.max_bytes)
        {
            self.chunks.push((String::from("["), Vec::new()));
        }
        let Some((json, bytes)) = self.chunks.last_mut() else {
            return; // never: there is always a chunk
        };
        if json.len() > 1 {
            json.push(',');
        }
        json.push('[');
        json.push_str(elements);
        let mut first = elements.is_empty();
        for blob in blobs {
            if !first {
                json.push(',');
            }
            first = false;
            match blob {
                Some(blob) => {
                    json.push_str(&format!("{},{}", bytes.len() + 1, blob.len()));
                    bytes.extend_from_slice(blob);
                }
                None => json.push_str("null,null"),
            }
        }
        json.push(']');
    }

    /// How many chunks the rows take (at least one, `[]` with an empty BLOB when there are
    /// no rows): [`chunked_rows`]'s `chunks`.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.chunks.len() == 1 && self.chunks[0].0.len() == 1
    }

    /// The values to bind, two per chunk in order: its JSON array, then its BLOB.
    pub fn into_bindings(self) -> Vec<SqlStorageValue> {
        self.chunks
            .into_iter()
            .flat_map(|(mut json, bytes)| {
                json.push(']');
                [SqlStorageValue::from(json), SqlStorageValue::Blob(bytes)]
            })
            .collect()
    }
}

/// The `FROM` source that reads the rows of `chunks` [`RowChunks`] bound as parameters
/// `?first`… (two per chunk: JSON array, BLOB): one row per element of the chunks' arrays,
/// with columns `fields` (the element as JSONB) and `chunk_no` (its chunk, from 0), which
/// [`row_values`] reads. A multi-row `VALUES`, not a `UNION ALL` of `json_each` calls:
/// workerd's SQLite refuses compound SELECTs of more than a few terms, and `VALUES` is not
/// subject to that limit.
///
/// Each element is converted to JSONB once, in a `MATERIALIZED` CTE (SQLite 3.45+).
/// `json_each` hands an array element out as JSON text, and each `->>` on text parses it
/// again: with a dozen columns that was most of the statement (rusqlite, 100,000 partition
/// rows in batches of 1,000: 8.1 µs a row, against 4.8 µs with the element made JSONB
/// once; `->>` on JSONB parses nothing). Without `MATERIALIZED`, SQLite may flatten the
/// CTE and convert once per column again. The BLOBs stay out of the CTE (which would copy
/// the chunk's BLOB into every row): [`row_values`] names them as parameters.
pub fn chunked_rows(first: usize, chunks: usize) -> String {
    let params: Vec<String> = (0..chunks.max(1))
        .map(|i| format!("(?{}, {i})", first + 2 * i))
        .collect();
    format!(
        "(WITH chunk_rows AS MATERIALIZED (\
            SELECT jsonb(value) AS fields, chunk.column2 AS chunk_no \
            FROM (VALUES {}) AS chunk, json_each(chunk.column1)) \
         SELECT fields, chunk_no FROM chunk_rows)",
        params.join(", ")
    )
}

/// `columns` but the `blobs`, comma-separated: the plain columns of an append, in the order
/// its rows' JSON carries them (the BLOB columns follow, in the order the caller names them).
pub fn plain_columns(columns: &[&str], blobs: &[&str]) -> String {
    columns
        .iter()
        .filter(|c| !blobs.contains(c))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The select list that reads a [`RowChunks`] row out of each row of the same
/// [`chunked_rows`]`(first, chunks)`: its `plain` columns (`fields ->> i`), then its `blobs`
/// BLOB columns, each cut out of its chunk's BLOB (parameter `?first + 2 × chunk + 1`) by
/// the start and length that follow (`substr` on a BLOB counts bytes, from 1; a NULL start
/// gives NULL).
pub fn row_values(plain: usize, blobs: usize, first: usize, chunks: usize) -> String {
    let chunk_blob = if chunks <= 1 {
        format!("?{}", first + 1)
    } else {
        let arms: String = (0..chunks)
            .map(|i| format!(" WHEN {i} THEN ?{}", first + 2 * i + 1))
            .collect();
        format!("CASE chunk_no{arms} END")
    };
    let plain_columns = (0..plain).map(|i| format!("fields ->> {i}"));
    let blob_columns = (0..blobs).map(|k| {
        let start = plain + 2 * k;
        format!(
            "substr({chunk_blob}, fields ->> {start}, fields ->> {})",
            start + 1
        )
    });
    plain_columns
        .chain(blob_columns)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as the statement reads it: its plain columns, then its BLOBs.
    type Row = (Vec<serde_json::Value>, Vec<Option<Vec<u8>>>);

    /// The rows back out of the bindings, as SQLite's statement reads them: per row its
    /// plain JSON elements and its BLOBs cut out of the chunk's BLOB.
    fn read_back(bindings: &[SqlStorageValue], plain: usize) -> Vec<Row> {
        let mut rows = Vec::new();
        for pair in bindings.chunks(2) {
            let (SqlStorageValue::String(json), SqlStorageValue::Blob(blob)) = (&pair[0], &pair[1])
            else {
                panic!("a chunk is a JSON string and a BLOB: {pair:?}");
            };
            let array: Vec<Vec<serde_json::Value>> = serde_json::from_str(json).unwrap();
            for row in array {
                let blobs = row[plain..]
                    .chunks(2)
                    .map(|at| match (at[0].as_u64(), at[1].as_u64()) {
                        (Some(start), Some(len)) => {
                            let start = start as usize - 1;
                            Some(blob[start..start + len as usize].to_vec())
                        }
                        _ => None,
                    })
                    .collect();
                rows.push((row[..plain].to_vec(), blobs));
            }
        }
        rows
    }

    #[test]
    fn chunks_keep_every_row_in_order_and_each_string_and_blob_within_the_bound() {
        let mut chunks = RowChunks::new(4096);
        let mut expected = Vec::new();
        for n in 0..1000usize {
            let text = "x".repeat(n % 97);
            let payload: Vec<u8> = (0..(n % 301) as u8).collect();
            let envelope = (n % 5 != 0).then(|| vec![n as u8; n % 53]);
            chunks.push(
                &serde_json::to_string(&(n, &text)).unwrap(),
                &[Some(&payload), envelope.as_deref()],
            );
            expected.push((vec![n.into(), text.into()], vec![Some(payload), envelope]));
        }
        assert!(chunks.len() > 1);
        let bindings = chunks.into_bindings();
        for value in &bindings {
            match value {
                SqlStorageValue::String(s) => assert!(s.len() <= 4096, "{}", s.len()),
                SqlStorageValue::Blob(b) => assert!(b.len() <= 4096, "{}", b.len()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(read_back(&bindings, 2), expected);
    }

    #[test]
    fn a_row_over_the_bound_gets_a_chunk_of_its_own_and_no_rows_give_one_empty_chunk() {
        let mut chunks = RowChunks::new(50);
        let big = vec![7u8; 100];
        chunks.push("[1]", &[Some(b"ab")]);
        chunks.push("[2]", &[Some(&big)]);
        chunks.push("[3]", &[None]);
        assert_eq!(chunks.len(), 3);
        let bindings = chunks.into_bindings();
        assert_eq!(bindings[0], SqlStorageValue::from("[[1,1,2]]".to_owned()));
        assert_eq!(
            bindings[4],
            SqlStorageValue::from("[[3,null,null]]".to_owned())
        );
        assert_eq!(
            read_back(&bindings, 1)[1],
            (vec![2.into()], vec![Some(big)])
        );
        let empty = RowChunks::new(50);
        assert!(empty.is_empty());
        assert_eq!(
            empty.into_bindings(),
            [
                SqlStorageValue::from("[]".to_owned()),
                SqlStorageValue::Blob(Vec::new())
            ]
        );
    }

    #[test]
    fn row_values_reads_plain_columns_then_cuts_each_blob_out_of_its_chunk() {
        assert_eq!(
            row_values(2, 2, 1, 1),
            "fields ->> 0, fields ->> 1, \
             substr(?2, fields ->> 2, fields ->> 3), \
             substr(?2, fields ->> 4, fields ->> 5)"
        );
        // Several chunks: each row's BLOBs come from its own chunk's BLOB parameter.
        assert_eq!(
            row_values(1, 1, 4, 2),
            "fields ->> 0, \
             substr(CASE chunk_no WHEN 0 THEN ?5 WHEN 1 THEN ?7 END, fields ->> 1, fields ->> 2)"
        );
    }

    #[test]
    fn plain_columns_keep_their_order_without_the_blobs() {
        assert_eq!(
            plain_columns(
                &["seq", "payload", "type", "envelope"],
                &["payload", "envelope"]
            ),
            "seq, type"
        );
    }

    #[test]
    fn chunked_rows_reads_each_chunks_json_from_first_and_numbers_the_chunks() {
        let from = chunked_rows(4, 2);
        assert!(
            from.contains("FROM (VALUES (?4, 0), (?6, 1)) AS chunk, json_each(chunk.column1)"),
            "{from}"
        );
        assert!(from.contains("MATERIALIZED"), "{from}");
        assert!(from.contains("jsonb(value) AS fields"), "{from}");
        assert!(
            chunked_rows(1, 0).contains("FROM (VALUES (?1, 0)) AS chunk"),
            "no rows still read one (empty) chunk"
        );
    }
}
