//! Where exported events go: the three output formats behind one [`Sink`] interface.
//!
//! A sink is opened at a [`Mark`] from the resume file: everything past the mark is from a
//! run that stopped before its next checkpoint, and is cut away. Then pages are written,
//! and [`Sink::checkpoint`] makes what was written durable and returns the new mark.
//!
//! * NDJSON — one envelope per line, exactly the JSON the server sends (the same
//!   `EventEnvelope` type serializes it, `position` included).
//! * CSV — a header row, then [`COLUMNS`]: absent metadata is an empty field, `data` is its
//!   JSON text, `recorded_at` the server's RFC 3339 text.
//! * Parquet — see [`super::parquet`].
//!
//! NDJSON and CSV are appended to in place, so their mark is a byte length.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use client::EventEnvelope;

use super::Format;
use super::parquet::ParquetSink;
use super::resume::Mark;

/// The columns of the CSV and Parquet outputs, in order.
pub const COLUMNS: [&str; 14] = [
    "partition",
    "offset",
    "aggregate_type",
    "aggregate_id",
    "seq",
    "event_id",
    "type",
    "schema_version",
    "recorded_at",
    "command_id",
    "correlation_id",
    "causation_id",
    "actor",
    "data",
];

/// An export's output.
pub trait Sink {
    /// Appends events (not yet durable).
    fn write(&mut self, events: &[EventEnvelope]) -> anyhow::Result<()>;

    /// Appends NDJSON lines, each ending in `\n` (not yet durable); only the NDJSON sink
    /// takes them.
    fn write_lines(&mut self, _text: &[u8]) -> anyhow::Result<()> {
        bail!("only an NDJSON export writes lines as they are")
    }

    /// Whether enough is written since the last checkpoint that one is worth its cost.
    fn wants_checkpoint(&self) -> bool;

    /// Makes everything written so far durable; returns the mark that covers it.
    fn checkpoint(&mut self) -> anyhow::Result<Mark>;

    /// After the last checkpoint: puts the output in its final form at its path.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Opens the output of `format` at `path`, cut back to `mark`.
pub fn open(format: Format, path: &Path, mark: Mark) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match (format, mark) {
        (Format::Ndjson, Mark::Bytes(len)) => Box::new(TextSink::open(path, len, Text::Ndjson)?),
        (Format::Csv, Mark::Bytes(len)) => Box::new(TextSink::open(path, len, Text::Csv)?),
        (Format::Parquet, Mark::Parts(parts)) => Box::new(ParquetSink::open(path, parts)?),
        (format, mark) => bail!("a {format:?} export cannot continue from {mark:?}"),
    })
}

/// The envelope's position, which every event read from the stream has.
pub fn position(event: &EventEnvelope) -> anyhow::Result<(u32, u64)> {
    let position = event
        .position
        .with_context(|| format!("event {} came without its stream position", event.event_id))?;
    Ok((position.partition, position.offset))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Ndjson,
    Csv,
}

/// NDJSON or CSV, appended to in place.
struct TextSink {
    path: PathBuf,
    out: BufWriter<File>,
    kind: Text,
    /// Reused per CSV row: the record's fields.
    row: Vec<String>,
}

impl TextSink {
    fn open(path: &Path, len: u64, kind: Text) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let found = file.metadata()?.len();
        if found < len {
            bail!(
                "{} holds {found} bytes, fewer than the {len} the resume file records as \
                 written: it was changed since; delete both to start over",
                path.display()
            );
        }
        file.set_len(len)?;
        file.seek(SeekFrom::End(0))?;
        let mut sink = Self {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 20, file),
            kind,
            row: Vec::with_capacity(COLUMNS.len()),
        };
        if len == 0 && kind == Text::Csv {
            sink.csv_row(COLUMNS.iter().map(|c| (*c).to_owned()))?;
        }
        Ok(sink)
    }

    fn csv_row(&mut self, fields: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
        self.row.clear();
        self.row.extend(fields);
        let mut line = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut self.out);
        line.write_record(&self.row)?;
        line.flush()?;
        Ok(())
    }
}

/// An envelope's CSV fields, in [`COLUMNS`] order.
fn csv_fields(event: &EventEnvelope) -> anyhow::Result<[String; 14]> {
    let (partition, offset) = position(event)?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok([
        partition.to_string(),
        offset.to_string(),
        event.aggregate_type.clone(),
        event.aggregate_id.clone(),
        event.seq.to_string(),
        event.event_id.clone(),
        event.event_type.clone(),
        event.schema_version.to_string(),
        event.recorded_at.clone(),
        text(&event.command_id),
        text(&event.correlation_id),
        text(&event.causation_id),
        text(&event.actor),
        serde_json::to_string(&event.data)?,
    ])
}

impl Sink for TextSink {
    fn write(&mut self, events: &[EventEnvelope]) -> anyhow::Result<()> {
        match self.kind {
            Text::Ndjson => {
                for event in events {
                    serde_json::to_writer(&mut self.out, event)?;
                    self.out.write_all(b"\n")?;
                }
            }
            Text::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut self.out);
                for event in events {
                    csv.write_record(csv_fields(event)?)?;
                }
                csv.flush()?;
            }
        }
        Ok(())
    }

    fn write_lines(&mut self, text: &[u8]) -> anyhow::Result<()> {
        if self.kind != Text::Ndjson {
            bail!("a CSV export does not take NDJSON lines");
        }
        Ok(self.out.write_all(text)?)
    }

    /// After every page: appending costs one fsync.
    fn wants_checkpoint(&self) -> bool {
        true
    }

    fn checkpoint(&mut self) -> anyhow::Result<Mark> {
        self.out.flush()?;
        let file = self.out.get_ref();
        file.sync_data()
            .with_context(|| format!("cannot sync {}", self.path.display()))?;
        Ok(Mark::Bytes(file.metadata()?.len()))
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.checkpoint().map(drop)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use serde_json::json;

    use super::*;

    /// An envelope at `partition`/`offset`, with awkward text in `data` and metadata.
    pub(crate) fn event(partition: u32, offset: u64) -> EventEnvelope {
        serde_json::from_value(json!({
            "aggregate_type": "board", "aggregate_id": format!("b{}", offset % 3),
            "seq": offset, "event_id": format!("0190-{partition}-{offset}"),
            "type": "CardAdded", "schema_version": 1,
            "data": {"card_id": format!("c{offset}"), "title": "a, \"quoted\"\nline"},
            "recorded_at": "2026-01-01T00:00:00.123Z", "command_id": "cmd-1",
            "correlation_id": null, "causation_id": null,
            "actor": if offset.is_multiple_of(2) { json!("alice") } else { json!(null) },
            "position": {"partition": partition, "offset": offset}
        }))
        .unwrap()
    }

    pub(crate) fn events(
        partition: u32,
        offsets: std::ops::RangeInclusive<u64>,
    ) -> Vec<EventEnvelope> {
        offsets.map(|o| event(partition, o)).collect()
    }

    #[test]
    fn ndjson_is_one_envelope_per_line_as_the_server_sends_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = open(Format::Ndjson, &path, Mark::Bytes(0)).unwrap();
        sink.write(&events(1, 1..=3)).unwrap();
        let mark = sink.checkpoint().unwrap();
        sink.finish().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(mark, Mark::Bytes(text.len() as u64));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], serde_json::to_string(&event(1, 1)).unwrap());
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["position"], json!({"partition": 1, "offset": 1}));
        assert_eq!(
            first["correlation_id"],
            json!(null),
            "null metadata is kept"
        );
    }

    #[test]
    fn csv_has_a_header_and_the_columns_quoted_as_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = open(Format::Csv, &path, Mark::Bytes(0)).unwrap();
        sink.write(&events(2, 7..=8)).unwrap();
        sink.checkpoint().unwrap();
        sink.finish().unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(reader.headers().unwrap(), COLUMNS.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        let row = &rows[1];
        assert_eq!(&row[0], "2");
        assert_eq!(&row[1], "8");
        assert_eq!(&row[5], "0190-2-8");
        assert_eq!(&row[8], "2026-01-01T00:00:00.123Z");
        assert_eq!(&row[10], "", "null metadata is an empty field");
        assert_eq!(&row[12], "alice");
        let data: serde_json::Value = serde_json::from_str(&row[13]).unwrap();
        assert_eq!(data["title"], "a, \"quoted\"\nline");
    }

    /// The crash the resume file exists for: pages written after the last checkpoint are
    /// on disk when the process dies; the next run cuts them off and writes them again.
    #[test]
    fn reopening_at_a_mark_drops_what_was_written_after_it() {
        for format in [Format::Ndjson, Format::Csv] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out");
            let mut sink = open(format, &path, Mark::Bytes(0)).unwrap();
            sink.write(&events(0, 1..=10)).unwrap();
            let mark = sink.checkpoint().unwrap();
            sink.write(&events(0, 11..=15)).unwrap();
            sink.checkpoint().unwrap(); // durable, but the resume file never heard of it
            drop(sink); // SIGKILL

            let mut sink = open(format, &path, mark).unwrap();
            sink.write(&events(0, 11..=20)).unwrap();
            sink.checkpoint().unwrap();
            sink.finish().unwrap();

            let clean = dir.path().join("clean");
            let mut sink = open(format, &clean, Mark::Bytes(0)).unwrap();
            sink.write(&events(0, 1..=20)).unwrap();
            sink.checkpoint().unwrap();
            sink.finish().unwrap();
            assert_eq!(
                fs::read(&path).unwrap(),
                fs::read(&clean).unwrap(),
                "{format:?}: a resumed export equals an uninterrupted one"
            );
        }
    }

    #[test]
    fn an_output_shorter_than_its_mark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        fs::write(&path, "{}\n").unwrap();
        let error = open(Format::Ndjson, &path, Mark::Bytes(100))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("fewer than the 100"), "{error}");
        assert!(open(Format::Ndjson, &path, Mark::Parts(1)).is_err());
    }
}
