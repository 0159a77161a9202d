//! The Parquet output: typed columns, written as numbered part files and merged at the end.
//!
//! A Parquet file cannot be appended to: its footer (the schema and where every row group
//! is) comes last and is written once, when the file is closed. So an export writes each
//! checkpoint's rows as a complete little Parquet file, `PATH.parts/part-000000.parquet`,
//! `part-000001.parquet`, … — the resume file's mark is the number of parts that are
//! durable. A resumed export deletes parts at or past the mark (written by a run that died
//! before it could record them) and numbers on from there. When every partition is read,
//! the parts are merged, in order, into `PATH.tmp`, which is fsynced and renamed over
//! `PATH`; only then are the resume file and the parts removed. A crash during the merge
//! just merges again.
//!
//! Columns ([`schema`]): `partition` Int32, `offset` Int64, `aggregate_type`,
//! `aggregate_id` Utf8, `seq` Int64, `event_id`, `type` Utf8, `schema_version` Int32,
//! `recorded_at` Timestamp(ms, UTC), `command_id`, `correlation_id`, `causation_id`,
//! `actor` nullable Utf8, `data` Utf8 (the JSON text). Signed integers, because readers
//! (Spark, older pandas) handle unsigned 64-bit columns badly; values that do not fit are
//! an error rather than a wrap. Snappy compression: fast, and a pure-Rust codec.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use client::EventEnvelope;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::output::{COLUMNS, Sink, position};
use super::resume::{Mark, sibling, sync_dir};

/// Rows per part file: a checkpoint is due once this many are buffered.
const PART_ROWS: usize = 10_000;

/// Rows per row group of the merged file.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The Arrow schema of the output, columns in [`COLUMNS`] order.
pub fn schema() -> SchemaRef {
    let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let fields = vec![
        Field::new(COLUMNS[0], DataType::Int32, false),
        Field::new(COLUMNS[1], DataType::Int64, false),
        utf8(COLUMNS[2], false),
        utf8(COLUMNS[3], false),
        Field::new(COLUMNS[4], DataType::Int64, false),
        utf8(COLUMNS[5], false),
        utf8(COLUMNS[6], false),
        Field::new(COLUMNS[7], DataType::Int32, false),
        Field::new(
            COLUMNS[8],
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        utf8(COLUMNS[9], true),
        utf8(COLUMNS[10], true),
        utf8(COLUMNS[11], true),
        utf8(COLUMNS[12], true),
        utf8(COLUMNS[13], false),
    ];
    Arc::new(Schema::new(fields))
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// The rows buffered since the last checkpoint, column by column.
struct Columns {
    partition: Int32Builder,
    offset: Int64Builder,
    aggregate_type: StringBuilder,
    aggregate_id: StringBuilder,
    seq: Int64Builder,
    event_id: StringBuilder,
    event_type: StringBuilder,
    schema_version: Int32Builder,
    recorded_at: TimestampMillisecondBuilder,
    command_id: StringBuilder,
    correlation_id: StringBuilder,
    causation_id: StringBuilder,
    actor: StringBuilder,
    data: StringBuilder,
    rows: usize,
}

impl Columns {
    fn new() -> Self {
        Self {
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            aggregate_type: StringBuilder::new(),
            aggregate_id: StringBuilder::new(),
            seq: Int64Builder::new(),
            event_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            schema_version: Int32Builder::new(),
            recorded_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            command_id: StringBuilder::new(),
            correlation_id: StringBuilder::new(),
            causation_id: StringBuilder::new(),
            actor: StringBuilder::new(),
            data: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, event: &EventEnvelope) -> anyhow::Result<()> {
        let (partition, offset) = position(event)?;
        let recorded_at = chrono::DateTime::parse_from_rfc3339(&event.recorded_at)
            .with_context(|| {
                format!(
                    "event {}: recorded_at `{}` is not RFC 3339",
                    event.event_id, event.recorded_at
                )
            })?
            .timestamp_millis();
        let int32 = |name: &str, n: u32| {
            i32::try_from(n).with_context(|| format!("{name} {n} does not fit an Int32 column"))
        };
        let int64 = |name: &str, n: u64| {
            i64::try_from(n).with_context(|| format!("{name} {n} does not fit an Int64 column"))
        };
        // Convert everything first, so a refused event leaves no half-appended row.
        let row = (
            int32("partition", partition)?,
            int64("offset", offset)?,
            int64("seq", event.seq)?,
            int32("schema_version", event.schema_version)?,
            serde_json::to_string(&event.data)?,
        );
        self.partition.append_value(row.0);
        self.offset.append_value(row.1);
        self.aggregate_type.append_value(&event.aggregate_type);
        self.aggregate_id.append_value(&event.aggregate_id);
        self.seq.append_value(row.2);
        self.event_id.append_value(&event.event_id);
        self.event_type.append_value(&event.event_type);
        self.schema_version.append_value(row.3);
        self.recorded_at.append_value(recorded_at);
        self.command_id.append_option(event.command_id.as_deref());
        self.correlation_id
            .append_option(event.correlation_id.as_deref());
        self.causation_id
            .append_option(event.causation_id.as_deref());
        self.actor.append_option(event.actor.as_deref());
        self.data.append_value(row.4);
        self.rows += 1;
        Ok(())
    }

    /// The buffered rows as a batch; the builders start over empty.
    fn take(&mut self) -> anyhow::Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.aggregate_type.finish()),
            Arc::new(self.aggregate_id.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.command_id.finish()),
            Arc::new(self.correlation_id.finish()),
            Arc::new(self.causation_id.finish()),
            Arc::new(self.actor.finish()),
            Arc::new(self.data.finish()),
        ];
        self.rows = 0;
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// Parquet output: part files, merged by [`Sink::finish`].
pub struct ParquetSink {
    output: PathBuf,
    dir: PathBuf,
    /// Durable parts: `0..parts`.
    parts: u64,
    columns: Columns,
}

/// The parts directory of an output path: `PATH.parts`.
pub fn parts_dir(output: &Path) -> PathBuf {
    sibling(output, ".parts")
}

fn part_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("part-{n:06}.parquet"))
}

/// The number of a part file's name (`part-000012.parquet` → 12).
fn part_number(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

impl ParquetSink {
    /// Opens the parts directory with parts `0..parts` durable: later parts (from a run that
    /// died before recording them) are deleted; a missing earlier one is an error.
    pub fn open(output: &Path, parts: u64) -> anyhow::Result<Self> {
        let dir = parts_dir(output);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        sync_dir(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name.to_str().and_then(part_number) else {
                continue;
            };
            if n >= parts {
                fs::remove_file(entry.path())?;
            }
        }
        for n in 0..parts {
            let path = part_path(&dir, n);
            if !path.exists() {
                bail!(
                    "{} is missing, though the resume file records it as written: delete the \
                     resume file and {} to start over",
                    path.display(),
                    dir.display()
                );
            }
        }
        sync_dir(&part_path(&dir, 0))?;
        Ok(Self {
            output: output.to_owned(),
            dir,
            parts,
            columns: Columns::new(),
        })
    }

    /// Removes the parts directory (after the merged file is in place).
    pub fn remove_parts(output: &Path) -> anyhow::Result<()> {
        let dir = parts_dir(output);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, events: &[EventEnvelope]) -> anyhow::Result<()> {
        events.iter().try_for_each(|e| self.columns.push(e))
    }

    fn wants_checkpoint(&self) -> bool {
        self.columns.rows >= PART_ROWS
    }

    fn checkpoint(&mut self) -> anyhow::Result<Mark> {
        if self.columns.rows > 0 {
            let batch = self.columns.take()?;
            let path = part_path(&self.dir, self.parts);
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut writer = ArrowWriter::try_new(file, schema(), Some(properties()))?;
            writer.write(&batch)?;
            writer.into_inner()?.sync_all()?;
            sync_dir(&path)?;
            self.parts += 1;
        }
        Ok(Mark::Parts(self.parts))
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let tmp = sibling(&self.output, ".tmp");
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut writer = ArrowWriter::try_new(file, schema(), Some(properties()))?;
        for n in 0..self.parts {
            let path = part_path(&self.dir, n);
            let part =
                File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(part)
                .with_context(|| format!("{} is not a Parquet file", path.display()))?
                .with_batch_size(8192)
                .build()?;
            for batch in reader {
                writer.write(&batch?)?;
            }
        }
        writer.into_inner()?.sync_all()?;
        fs::rename(&tmp, &self.output)
            .with_context(|| format!("cannot move {} into place", tmp.display()))?;
        sync_dir(&self.output)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};

    use super::*;
    use crate::replay::Format;
    use crate::replay::output::{self, tests::events};

    fn read(path: &Path) -> Vec<RecordBatch> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        reader.map(Result::unwrap).collect()
    }

    fn offsets(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn the_merged_file_has_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut sink = output::open(Format::Parquet, &path, Mark::Parts(0)).unwrap();
        sink.write(&events(3, 1..=4)).unwrap();
        assert_eq!(sink.checkpoint().unwrap(), Mark::Parts(1));
        sink.write(&events(1, 1..=2)).unwrap();
        assert_eq!(sink.checkpoint().unwrap(), Mark::Parts(2));
        assert_eq!(
            sink.checkpoint().unwrap(),
            Mark::Parts(2),
            "nothing new, no part"
        );
        sink.finish().unwrap();

        let batches = read(&path);
        let batch = &batches[0];
        assert_eq!(batch.schema().fields(), schema().fields());
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
        assert_eq!(offsets(&batches), [1, 2, 3, 4, 1, 2]);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 3);
        let recorded = batch
            .column(8)
            .as_primitive::<TimestampMillisecondType>()
            .value(0);
        assert_eq!(
            recorded,
            chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123Z")
                .unwrap()
                .timestamp_millis()
        );
        let actor = batch.column(12).as_string::<i32>();
        assert!(actor.is_null(0), "offset 1 has no actor");
        assert_eq!(actor.value(1), "alice");
        let data: serde_json::Value =
            serde_json::from_str(batch.column(13).as_string::<i32>().value(0)).unwrap();
        assert_eq!(data["card_id"], "c1");
    }

    #[test]
    fn reopening_at_a_mark_deletes_unrecorded_parts_and_numbers_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut sink = output::open(Format::Parquet, &path, Mark::Parts(0)).unwrap();
        sink.write(&events(0, 1..=5)).unwrap();
        let mark = sink.checkpoint().unwrap();
        sink.write(&events(0, 6..=8)).unwrap();
        sink.checkpoint().unwrap(); // a part the resume file never heard of
        sink.write(&events(0, 9..=9)).unwrap(); // and rows never written at all
        drop(sink);
        fs::write(part_path(&parts_dir(&path), 7), b"half a file").unwrap();

        let mut sink = output::open(Format::Parquet, &path, mark).unwrap();
        sink.write(&events(0, 6..=12)).unwrap();
        sink.checkpoint().unwrap();
        sink.finish().unwrap();
        assert_eq!(offsets(&read(&path)), (1..=12).collect::<Vec<_>>());

        ParquetSink::remove_parts(&path).unwrap();
        assert!(!parts_dir(&path).exists());
    }

    #[test]
    fn a_missing_recorded_part_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let error = output::open(Format::Parquet, &path, Mark::Parts(2))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("part-000000.parquet is missing"), "{error}");
    }

    #[test]
    fn an_empty_export_is_a_valid_file_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        let mut sink = output::open(Format::Parquet, &path, Mark::Parts(0)).unwrap();
        sink.checkpoint().unwrap();
        sink.finish().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        assert_eq!(builder.schema().fields(), schema().fields());
        assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    }

    #[test]
    fn part_names_parse_back() {
        assert_eq!(part_number("part-000012.parquet"), Some(12));
        assert_eq!(part_number("part-x.parquet"), None);
        assert_eq!(part_number("notes.txt"), None);
    }
}
