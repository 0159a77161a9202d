//! `edgeloop replay`: export the tenant's global stream to NDJSON, CSV or Parquet, resumably.
//!
//! What gets exported is a snapshot: every event of the chosen partitions up to their heads
//! when the export started (recorded in the resume file, so a resumed export ends at the
//! same place), through the server-side filters. Each partition is read in order by its
//! own task, one page ahead of the writer; the writer takes pages as they come, so the
//! output holds each partition's events in offset order, with partitions interleaved page
//! by page. `(partition, offset)` identifies an event.
//!
//! Interruptions lose nothing and repeat nothing: see [`resume`] for the checkpoint
//! protocol and [`parquet`] for how Parquet, which cannot be appended to, fits it.

pub mod output;
pub mod parquet;
pub mod resume;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use client::{Client, EventEnvelope, StreamPage, StreamQuery};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::server::{ServerArgs, explain};
use resume::{ExportSpec, ResumeState};

/// The scope reading the stream needs.
const SCOPE: &str = "replay";

/// A checkpoint at least this often while pages arrive, whatever the sink prefers, so an
/// interrupted export never repeats more than this much work.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// Pages each partition's reader may hold ready beyond the one being written.
const PAGES_AHEAD: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One envelope per line, as the server sends it.
    Ndjson,
    /// A header row, then one row per event; `data` as JSON text.
    Csv,
    /// Typed columns (Snappy); `data` as JSON text.
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Output format
    #[arg(long, value_enum)]
    format: Format,

    /// File to write (Parquet also uses PATH.parts/ while it runs)
    #[arg(long, value_name = "PATH")]
    output: PathBuf,

    /// Resume file: where the export records its progress [default: PATH.resume.json]
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,

    /// Partitions to export, comma-separated [default: all]
    #[arg(long, value_delimiter = ',', value_name = "P,…")]
    partitions: Option<Vec<u32>>,

    /// Only events of aggregates of this type
    #[arg(long, value_name = "TYPE")]
    aggregate_type: Option<String>,

    /// Only events of these types, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    types: Vec<String>,

    /// Only events recorded at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,

    /// Only events recorded before this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,

    /// Events per request (1-10000)
    #[arg(long, default_value_t = client::MAX_PAGE, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(client::MAX_PAGE)))]
    page_size: u32,

    /// Replace PATH if it exists and no resume file says it is a partial export
    #[arg(long)]
    overwrite: bool,
}

/// An RFC 3339 time, any offset: `2026-05-01T12:00:00Z`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time such as 2026-05-01T12:00:00Z ({e})"))
}

impl Args {
    fn spec(&self) -> ExportSpec {
        let time = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        ExportSpec {
            url: self.server.url().to_owned(),
            format: self.format,
            partitions: self.partitions.clone(),
            aggregate_type: self.aggregate_type.clone(),
            types: self.types.clone(),
            since: time(&self.since),
            until: time(&self.until),
        }
    }

    fn query(&self, partition: u32, after: u64) -> StreamQuery {
        StreamQuery {
            partition,
            after,
            limit: Some(self.page_size),
            aggregate_type: self.aggregate_type.clone(),
            types: self.types.clone(),
            since: self.since,
            until: self.until,
        }
    }

    fn resume_path(&self) -> PathBuf {
        self.resume
            .clone()
            .unwrap_or_else(|| resume::sibling(&self.output, ".resume.json"))
    }
}

/// Ctrl-C stopped the export; its progress is saved.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted after {events} events; run the same command again to continue (progress is in {resume})"
)]
pub struct Interrupted {
    events: u64,
    resume: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let client = args.server.client()?;
    let url = args.server.url().to_owned();
    let resume_path = args.resume_path();
    let spec = args.spec();

    let (mut state, resumed) = match resume::load(&resume_path)? {
        Some(state) => {
            state.check_resumable_as(&spec, &resume_path)?;
            (state, true)
        }
        None => {
            if args.output.exists() && !args.overwrite {
                bail!(
                    "{} exists and no resume file ({}) says it is a partial export: pass \
                     --overwrite to replace it",
                    args.output.display(),
                    resume_path.display()
                );
            }
            let heads = heads(&client, &url, args.partitions.as_deref()).await?;
            (ResumeState::new(spec, &heads), false)
        }
    };
    // A bad filter is refused before any file is touched: one cheap page at the head.
    if let Some(first) = state.partitions.first() {
        let probe = args.query(first.partition, first.target).limit(1);
        client
            .stream_page(&probe)
            .await
            .map_err(|e| explain(e, &url, SCOPE))?;
    }
    if !resumed {
        // The resume file first: an output without one is never mistaken for a partial export.
        resume::save(&resume_path, &state)?;
    }
    let mut sink = output::open(args.format, &args.output, state.mark)?;
    let before = state.events();

    let bar = progress_bar(&state);
    let mut pages = spawn_readers(&client, &args, &state);
    let mut last_checkpoint = Instant::now();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let page = tokio::select! {
            biased;
            _ = &mut interrupt => {
                bar.finish_and_clear();
                save_checkpoint(&mut *sink, &mut state, &resume_path)?;
                return Err(Interrupted {
                    events: state.events(),
                    resume: resume_path.display().to_string(),
                }
                .into());
            }
            page = pages.next() => page,
        };
        let Some(page) = page else { break };
        let page = page.map_err(|e| explain(e, &url, SCOPE))?;
        page.events.write_to(&mut *sink)?;
        let cursor = state
            .cursor_mut(page.partition)
            .context("a page of a partition not exported")?;
        let scanned = page.after - cursor.after;
        cursor.after = page.after;
        cursor.events += page.events.len() as u64;
        bar.inc(scanned);
        bar.set_message(format!("{} events", state.events()));
        if sink.wants_checkpoint() || last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            save_checkpoint(&mut *sink, &mut state, &resume_path)?;
            last_checkpoint = Instant::now();
        }
    }
    save_checkpoint(&mut *sink, &mut state, &resume_path)?;
    bar.finish_and_clear();
    sink.finish()?;
    resume::remove(&resume_path)?;
    if args.format == Format::Parquet {
        parquet::ParquetSink::remove_parts(&args.output)?;
    }
    print!("{}", summary(&state, &args, before, started.elapsed()));
    Ok(())
}

/// Makes the output durable, then records how far it goes.
fn save_checkpoint(
    sink: &mut dyn output::Sink,
    state: &mut ResumeState,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    state.mark = sink.checkpoint()?;
    resume::save(path, state)
}

/// The partitions to export and their heads now.
async fn heads(
    client: &Client,
    url: &str,
    asked: Option<&[u32]>,
) -> anyhow::Result<Vec<(u32, u64)>> {
    let statuses = client
        .partitions()
        .await
        .map_err(|e| explain(e, url, SCOPE))?;
    let heads: BTreeMap<u32, u64> = statuses.iter().map(|s| (s.partition, s.head)).collect();
    let Some(asked) = asked else {
        return Ok(heads.into_iter().collect());
    };
    let mut chosen = BTreeMap::new();
    for partition in asked {
        let head = heads.get(partition).with_context(|| {
            format!(
                "--partitions: there is no partition {partition}; the stream has {} (0 to {})",
                heads.len(),
                heads.len().saturating_sub(1)
            )
        })?;
        chosen.insert(*partition, *head);
    }
    Ok(chosen.into_iter().collect())
}

/// One page of one partition, cut to the export's target.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub partition: u32,
    /// The events at or below the target.
    pub events: Rows,
    /// Every offset up to this one is read (the next page starts after it).
    pub after: u64,
}

/// A page's events, as its sink takes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// Decoded envelopes (CSV and Parquet).
    Envelopes(Vec<EventEnvelope>),
    /// NDJSON: `count` lines transcoded from the page's MessagePack ([`advance_raw`]).
    Lines { text: Vec<u8>, count: usize },
}

impl Rows {
    /// How many events.
    pub fn len(&self) -> usize {
        match self {
            Rows::Envelopes(events) => events.len(),
            Rows::Lines { count, .. } => *count,
        }
    }

    /// Appends them to `sink` (not yet durable).
    fn write_to(&self, sink: &mut dyn output::Sink) -> anyhow::Result<()> {
        match self {
            Rows::Envelopes(events) => sink.write(events),
            Rows::Lines { text, .. } => sink.write_lines(text),
        }
    }
}

/// The cursor after a page read `after` that names `next_after`, for an export up to
/// `target`; `None` for a cursor that did not move (the server would have the reader ask
/// for the same page forever).
fn next_cursor(after: u64, target: u64, next_after: Option<u64>) -> Option<u64> {
    let next = match next_after {
        // The page reached the head, which is at or past the target.
        None => target,
        Some(next) => next.min(target),
    };
    (next > after || next >= target).then_some(next)
}

/// Where a page read `after` leaves a partition exported up to `target`: the events to
/// write and the new cursor. `None` for a cursor that did not move (the server would have
/// the reader ask for the same page forever).
pub fn advance(partition: u32, after: u64, target: u64, mut page: StreamPage) -> Option<Fetched> {
    page.events
        .retain(|e| e.position.is_some_and(|p| p.offset <= target));
    Some(Fetched {
        partition,
        events: Rows::Envelopes(page.events),
        after: next_cursor(after, target, page.next_after)?,
    })
}

/// [`advance`] for an NDJSON export: each envelope at or below the target transcoded from
/// the page's MessagePack into its JSON line, which is the line `serde_json` writes for the
/// decoded envelope (the same fields in the same order: the server encodes the one
/// `EventEnvelope` type both ways) without building it. `None` as for [`advance`];
/// [`client::Error::Decode`] for an envelope that does not transcode.
pub fn advance_raw(
    partition: u32,
    after: u64,
    target: u64,
    page: &client::RawPage<'_>,
) -> Result<Option<Fetched>, client::Error> {
    let Some(next) = next_cursor(after, target, page.next_after) else {
        return Ok(None);
    };
    let mut text = Vec::with_capacity(page.events.iter().map(|(_, e)| e.len() * 2).sum());
    let mut count = 0;
    for (position, envelope) in &page.events {
        if position.offset > target {
            break; // offsets ascend (checked by the client)
        }
        let mut from = rmp_serde::Deserializer::from_read_ref(envelope);
        from.set_max_depth(domain::codec::MAX_DEPTH);
        serde_transcode::transcode(&mut from, &mut serde_json::Serializer::new(&mut text))
            .map_err(|e| {
                client::Error::Decode(format!(
                    "the envelope at offset {} of partition {partition}: {e}",
                    position.offset
                ))
            })?;
        text.push(b'\n');
        count += 1;
    }
    Ok(Some(Fetched {
        partition,
        events: Rows::Lines { text, count },
        after: next,
    }))
}

/// The readers: one task per unfinished partition, each paging in order, at most
/// [`PAGES_AHEAD`] pages ahead of the writer. A reader takes the next cursor from the
/// page's header and asks for the next page at once, while the page it has is decoded on a
/// blocking thread: fetching, decoding and writing each keep a core busy. Dropping it stops
/// them.
struct Readers {
    pages: mpsc::Receiver<Result<Decoding, client::Error>>,
    _tasks: JoinSet<()>,
}

/// A page being decoded on a blocking thread.
type Decoding = tokio::task::JoinHandle<Result<Fetched, client::Error>>;

impl Readers {
    /// The next page of any partition, `None` when every partition is read to its target.
    async fn next(&mut self) -> Option<Result<Fetched, client::Error>> {
        let decoding = match self.pages.recv().await? {
            Ok(decoding) => decoding,
            Err(e) => return Some(Err(e)),
        };
        Some(decoding.await.unwrap_or_else(|e| {
            Err(client::Error::Protocol(format!(
                "decoding a page failed: {e}"
            )))
        }))
    }
}

fn spawn_readers(client: &Client, args: &Args, state: &ResumeState) -> Readers {
    let unfinished: Vec<_> = state.partitions.iter().filter(|p| !p.done()).collect();
    let (tx, rx) = mpsc::channel(unfinished.len().max(1) * PAGES_AHEAD);
    let mut tasks = JoinSet::new();
    for cursor in unfinished {
        let (client, tx) = (client.clone(), tx.clone());
        let (partition, target, mut after) = (cursor.partition, cursor.target, cursor.after);
        let query = args.query(partition, after);
        let ndjson = args.format == Format::Ndjson;
        tasks.spawn(async move {
            while after < target {
                let read_after = after;
                let result = client
                    .stream_page_bytes(&query.clone().after(read_after))
                    .await
                    .and_then(|bytes| {
                        let next = bytes.next_after().map_or(target, |n| n.min(target));
                        if next <= read_after && next < target {
                            return Err(client::Error::Protocol(format!(
                                "partition {partition}: a page after {read_after} did not move the cursor"
                            )));
                        }
                        after = next;
                        Ok(tokio::task::spawn_blocking(move || {
                            let fetched = if ndjson {
                                advance_raw(partition, read_after, target, &bytes.envelopes()?)?
                            } else {
                                advance(partition, read_after, target, bytes.decode()?)
                            };
                            fetched.ok_or_else(|| {
                                client::Error::Protocol(format!(
                                    "partition {partition}: a page after {read_after} did not move the cursor"
                                ))
                            })
                        }))
                    });
                let stop = result.is_err();
                if tx.send(result).await.is_err() || stop {
                    return;
                }
            }
        });
    }
    Readers {
        pages: rx,
        _tasks: tasks,
    }
}

fn progress_bar(state: &ResumeState) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(state.total()), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} offsets, {per_sec}, ETA {eta} — {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_position(state.scanned());
    bar.reset_eta();
    bar.set_message(format!("{} events", state.events()));
    bar
}

/// The closing report: events in all and per partition, time, rate.
fn summary(state: &ResumeState, args: &Args, before: u64, elapsed: Duration) -> String {
    let total = state.events();
    let this_run = total - before;
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        this_run as f64 / seconds
    } else {
        0.0
    };
    let format = clap::ValueEnum::to_possible_value(&args.format)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let mut text = format!(
        "exported {total} events from {} partitions to {} ({format})\n",
        state.partitions.len(),
        args.output.display(),
    );
    for p in &state.partitions {
        let read = match p.target {
            0 => "empty".to_owned(),
            target => format!("offsets 1-{target}"),
        };
        text.push_str(&format!(
            "  partition {}: {} events ({read})\n",
            p.partition, p.events
        ));
    }
    if before > 0 {
        text.push_str(&format!(
            "resumed: {before} events were exported before this run\n"
        ));
    }
    text.push_str(&format!(
        "this run: {this_run} events in {seconds:.1} s, {rate:.0} events/s\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::output::tests::events;

    fn page(
        partition: u32,
        offsets: std::ops::RangeInclusive<u64>,
        next: Option<u64>,
    ) -> StreamPage {
        StreamPage {
            events: events(partition, offsets),
            next_after: next,
            head: 1000,
        }
    }

    #[test]
    fn a_page_advances_the_cursor_to_its_next_after() {
        let fetched = advance(1, 10, 100, page(1, 11..=20, Some(20))).unwrap();
        assert_eq!(fetched.after, 20);
        assert_eq!(fetched.events.len(), 10);
        // A filtered page: nothing to write, the cursor still moves.
        let empty = advance(
            1,
            20,
            100,
            StreamPage {
                events: vec![],
                next_after: Some(60),
                head: 1000,
            },
        )
        .unwrap();
        assert_eq!((empty.after, empty.events.len()), (60, 0));
    }

    #[test]
    fn the_export_stops_at_the_target_even_as_the_stream_grows() {
        // Events committed after the export started are not part of it.
        let fetched = advance(0, 90, 95, page(0, 91..=99, Some(99))).unwrap();
        assert_eq!(fetched.after, 95);
        let Rows::Envelopes(events) = fetched.events else {
            panic!("decoded pages give envelopes")
        };
        let offsets: Vec<u64> = events.iter().map(|e| e.position.unwrap().offset).collect();
        assert_eq!(offsets, [91, 92, 93, 94, 95]);
        // The head (`next_after: null`) is at or past the target: done.
        let last = advance(0, 90, 95, page(0, 91..=93, None)).unwrap();
        assert_eq!(last.after, 95);
    }

    /// An NDJSON page transcoded from MessagePack is, line for line, what `serde_json`
    /// writes for the decoded envelopes (awkward text, nested data, numbers of each kind,
    /// absent and present metadata), cut at the target like a decoded page.
    #[test]
    fn transcoded_lines_are_the_json_of_the_decoded_envelopes() {
        let mut envelopes = events(0, 91..=99);
        envelopes[1].data = serde_json::json!({
            "text": "é ✓ \"q\" \\ \u{1}\n", "n": [0, -1, -200, 70000, u64::MAX, 1.5, -0.25, 1e300],
            "deep": {"a": [null, true, false, {"b": []}]}
        });
        let bytes: Vec<Vec<u8>> = envelopes.iter().map(domain::codec::encode).collect();
        let raw = client::RawPage {
            events: envelopes
                .iter()
                .zip(&bytes)
                .map(|(e, b)| (e.position.unwrap(), b.as_slice()))
                .collect(),
            next_after: Some(99),
            head: 1000,
        };
        let fetched = advance_raw(0, 90, 95, &raw).unwrap().unwrap();
        assert_eq!(fetched.after, 95);
        let expected: String = envelopes[..5]
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let Rows::Lines { text, count } = fetched.events else {
            panic!("raw pages give lines")
        };
        assert_eq!((String::from_utf8(text).unwrap(), count), (expected, 5));
        let stuck = client::RawPage {
            events: vec![],
            next_after: Some(50),
            head: 1000,
        };
        assert_eq!(advance_raw(0, 50, 100, &stuck).unwrap(), None);
        let broken = client::RawPage {
            events: vec![(envelopes[0].position.unwrap(), &bytes[0][..10])],
            next_after: Some(91),
            head: 1000,
        };
        assert!(matches!(
            advance_raw(0, 90, 100, &broken),
            Err(client::Error::Decode(_))
        ));
    }

    #[test]
    fn a_cursor_that_does_not_move_is_refused() {
        assert_eq!(
            advance(
                0,
                50,
                100,
                StreamPage {
                    events: vec![],
                    next_after: Some(50),
                    head: 1000,
                }
            ),
            None
        );
    }

    /// The whole resume protocol over a fake stream: pages are written, checkpoints saved,
    /// the process "dies" between a write and a checkpoint at every possible page, and the
    /// resumed export's output equals an uninterrupted one — no event lost or repeated.
    #[test]
    fn an_export_killed_anywhere_resumes_to_the_same_output() {
        // Two partitions, 5 pages of 3 events each, read in an interleaved order.
        let pages: Vec<(u32, u64)> = (0..5u64).flat_map(|i| [(0, i * 3), (1, i * 3)]).collect();
        let run = |dir: &std::path::Path, format: Format, kill_after: Option<usize>| {
            let output = dir.join("out");
            let resume_path = dir.join("out.resume.json");
            let spec = ExportSpec {
                url: "http://x".into(),
                format,
                partitions: None,
                aggregate_type: None,
                types: vec![],
                since: None,
                until: None,
            };
            let mut state = match resume::load(&resume_path).unwrap() {
                Some(state) => state,
                None => {
                    let state = ResumeState::new(spec, &[(0, 15), (1, 15)]);
                    resume::save(&resume_path, &state).unwrap();
                    state
                }
            };
            let mut sink = output::open(format, &output, state.mark).unwrap();
            for (n, &(partition, after)) in pages.iter().enumerate() {
                let cursor = state.cursor_mut(partition).unwrap();
                if cursor.after > after {
                    continue; // read before the restart
                }
                let fetched = advance(
                    partition,
                    after,
                    15,
                    page(partition, after + 1..=after + 3, Some(after + 3)),
                )
                .unwrap();
                fetched.events.write_to(&mut *sink).unwrap();
                let cursor = state.cursor_mut(partition).unwrap();
                cursor.after = fetched.after;
                cursor.events += fetched.events.len() as u64;
                if kill_after == Some(n) {
                    return None; // written, not checkpointed: SIGKILL
                }
                if n % 2 == 1 {
                    save_checkpoint(&mut *sink, &mut state, &resume_path).unwrap();
                }
            }
            save_checkpoint(&mut *sink, &mut state, &resume_path).unwrap();
            sink.finish().unwrap();
            resume::remove(&resume_path).unwrap();
            Some(state.events())
        };
        for format in [Format::Ndjson, Format::Csv, Format::Parquet] {
            let clean = tempfile::tempdir().unwrap();
            assert_eq!(run(clean.path(), format, None), Some(30));
            let expected = std::fs::read(clean.path().join("out")).unwrap();
            for kill_after in 0..pages.len() {
                let dir = tempfile::tempdir().unwrap();
                assert_eq!(run(dir.path(), format, Some(kill_after)), None);
                assert_eq!(run(dir.path(), format, None), Some(30), "{format:?}");
                let path = dir.path().join("out");
                let output = std::fs::read(&path).unwrap();
                if format == Format::Parquet {
                    // Row groups may split differently; the rows must not.
                    assert_eq!(
                        parquet_rows(&path),
                        parquet_rows(&clean.path().join("out")),
                        "{format:?} killed after page {kill_after}"
                    );
                } else {
                    assert!(
                        output == expected,
                        "{format:?} killed after page {kill_after}"
                    );
                }
            }
        }
    }

    /// (partition, offset) of every row of a Parquet file, in order.
    fn parquet_rows(path: &std::path::Path) -> Vec<(i32, i64)> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Int32Type, Int64Type};
        let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let p = batch.column(0).as_primitive::<Int32Type>();
            let o = batch.column(1).as_primitive::<Int64Type>();
            rows.extend((0..batch.num_rows()).map(|i| (p.value(i), o.value(i))));
        }
        rows
    }

    #[test]
    fn times_must_be_rfc_3339() {
        assert!(parse_time("2026-05-01T12:00:00Z").is_ok());
        assert_eq!(
            parse_time("2026-05-01T14:00:00+02:00").unwrap(),
            parse_time("2026-05-01T12:00:00Z").unwrap()
        );
        assert!(parse_time("yesterday").is_err());
    }
}
