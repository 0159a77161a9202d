//! The resume file: how far an export got, durably.
//!
//! An export is a loop of "read a page, write it, checkpoint". A checkpoint first makes
//! the output durable (fsync) and then atomically replaces the resume file (write a
//! temporary file, fsync it, rename it over the old one, fsync the directory). So at any
//! instant — a Ctrl-C, a SIGKILL, a power cut — the resume file describes a prefix of the
//! output that is on disk: per partition the offset read up to, and the output's [`Mark`]
//! (its length in bytes, or the number of Parquet part files). A resumed export cuts the
//! output back to the mark and reads on from the offsets: whatever was written after the
//! last checkpoint is dropped and read again, so nothing is lost or written twice.
//!
//! The file also records what is being exported ([`ExportSpec`]): resuming with other
//! arguments would splice two different exports together, so it is refused.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::Format;

/// The resume file's format version.
const VERSION: u32 = 1;

/// What an export reads and how it writes it. Two runs may share a resume file only if
/// their specs are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    pub url: String,
    pub format: Format,
    /// As asked (`--partitions`), `None` for all of them.
    pub partitions: Option<Vec<u32>>,
    pub aggregate_type: Option<String>,
    pub types: Vec<String>,
    /// RFC 3339, as given.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// How much of the output a checkpoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// NDJSON and CSV: the output's first `n` bytes.
    Bytes(u64),
    /// Parquet: part files `0..n` in the parts directory.
    Parts(u64),
}

/// Where one partition's export stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCursor {
    pub partition: u32,
    /// Every offset up to this one has been read and its events written (and covered by
    /// the mark, in a saved state).
    pub after: u64,
    /// The partition's head when the export started: the export ends there, so it is a
    /// snapshot, and a resumed export ends at the same place as an uninterrupted one.
    pub target: u64,
    /// Events written from this partition.
    pub events: u64,
}

impl PartitionCursor {
    pub fn done(&self) -> bool {
        self.after >= self.target
    }
}

/// The resume file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    pub version: u32,
    pub spec: ExportSpec,
    pub partitions: Vec<PartitionCursor>,
    pub mark: Mark,
}

impl ResumeState {
    /// A new export of `partitions` (number, head) from the start.
    pub fn new(spec: ExportSpec, partitions: &[(u32, u64)]) -> Self {
        let mark = match spec.format {
            Format::Parquet => Mark::Parts(0),
            Format::Ndjson | Format::Csv => Mark::Bytes(0),
        };
        Self {
            version: VERSION,
            spec,
            partitions: partitions
                .iter()
                .map(|&(partition, target)| PartitionCursor {
                    partition,
                    after: 0,
                    target,
                    events: 0,
                })
                .collect(),
            mark,
        }
    }

    /// Events written, all partitions together.
    pub fn events(&self) -> u64 {
        self.partitions.iter().map(|p| p.events).sum()
    }

    /// Offsets read, all partitions together.
    pub fn scanned(&self) -> u64 {
        self.partitions.iter().map(|p| p.after).sum()
    }

    /// Offsets the export reads in all.
    pub fn total(&self) -> u64 {
        self.partitions.iter().map(|p| p.target).sum()
    }

    pub fn cursor_mut(&mut self, partition: u32) -> Option<&mut PartitionCursor> {
        self.partitions
            .iter_mut()
            .find(|p| p.partition == partition)
    }

    /// Refuses to continue `self` with the arguments of `spec`.
    pub fn check_resumable_as(&self, spec: &ExportSpec, path: &Path) -> anyhow::Result<()> {
        if self.spec != *spec {
            bail!(
                "{} belongs to another export ({}); run that one again to finish it, or delete \
                 the file (and the partial output) to start over",
                path.display(),
                difference(&self.spec, spec)
            );
        }
        Ok(())
    }
}

/// What differs between the recorded spec and the asked one, for the message.
fn difference(recorded: &ExportSpec, asked: &ExportSpec) -> String {
    let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let fields = [
        ("--url", show(&recorded.url), show(&asked.url)),
        ("--format", show(&recorded.format), show(&asked.format)),
        (
            "--partitions",
            show(&recorded.partitions),
            show(&asked.partitions),
        ),
        (
            "--aggregate-type",
            show(&recorded.aggregate_type),
            show(&asked.aggregate_type),
        ),
        ("--types", show(&recorded.types), show(&asked.types)),
        ("--since", show(&recorded.since), show(&asked.since)),
        ("--until", show(&recorded.until), show(&asked.until)),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("{name} was {a}, now {b}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The resume file at `path`, or `None` when there is none.
pub fn load(path: &Path) -> anyhow::Result<Option<ResumeState>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let state: ResumeState = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a resume file of this version of edgeloop",
            path.display()
        )
    })?;
    if state.version != VERSION {
        bail!(
            "{} has format version {}, this edgeloop reads {VERSION}",
            path.display(),
            state.version
        );
    }
    Ok(Some(state))
}

/// Replaces the resume file at `path` with `state`, atomically and durably: a reader (or a
/// resumed run after a crash) sees the old state or the new one, never a mix.
pub fn save(path: &Path, state: &ResumeState) -> anyhow::Result<()> {
    let tmp = sibling(path, ".tmp");
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut file, state)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    };
    write().with_context(|| format!("cannot write the resume file {}", path.display()))
}

/// Removes the resume file at the end of an export (durably: a crash afterwards does not
/// bring it back).
pub fn remove(path: &Path) -> anyhow::Result<()> {
    fs::remove_file(path)
        .and_then(|()| sync_dir(path))
        .with_context(|| format!("cannot remove {}", path.display()))
}

/// `path` with `suffix` appended to its file name (`out.csv` → `out.csv.resume.json`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// fsyncs the directory holding `path`, so that a rename or a new file in it survives a
/// crash (POSIX makes directory entries durable only through the directory itself).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(format: Format) -> ExportSpec {
        ExportSpec {
            url: "http://127.0.0.1:8787".into(),
            format,
            partitions: None,
            aggregate_type: Some("board".into()),
            types: vec![],
            since: None,
            until: None,
        }
    }

    #[test]
    fn saved_states_load_back_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv.resume.json");
        assert_eq!(load(&path).unwrap(), None, "no file, no state");
        let mut state = ResumeState::new(spec(Format::Csv), &[(0, 10), (2, 0)]);
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap().as_ref(), Some(&state));
        state.cursor_mut(0).unwrap().after = 7;
        state.cursor_mut(0).unwrap().events = 5;
        state.mark = Mark::Bytes(900);
        save(&path, &state).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(
            (loaded.events(), loaded.scanned(), loaded.total()),
            (5, 7, 10)
        );
        assert!(!loaded.partitions[0].done() && loaded.partitions[1].done());
        assert!(
            !sibling(&path, ".tmp").exists(),
            "the temporary file is renamed away"
        );
        remove(&path).unwrap();
        assert_eq!(load(&path).unwrap(), None);
    }

    #[test]
    fn another_export_cannot_resume_from_the_file() {
        let state = ResumeState::new(spec(Format::Ndjson), &[(0, 1)]);
        let path = Path::new("x.resume.json");
        assert!(
            state
                .check_resumable_as(&spec(Format::Ndjson), path)
                .is_ok()
        );
        let mut other = spec(Format::Parquet);
        other.types = vec!["CardAdded".into()];
        let error = state.check_resumable_as(&other, path).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("--format was Ndjson, now Parquet"),
            "{message}"
        );
        assert!(message.contains("--types was [], now"), "{message}");
        assert!(!message.contains("--url"), "{message}");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        fs::write(&path, "{\"version\": 1, \"spec\": ").unwrap();
        assert!(load(&path).is_err());
        let mut state = serde_json::to_value(ResumeState::new(spec(Format::Csv), &[])).unwrap();
        state["version"] = 99.into();
        fs::write(&path, state.to_string()).unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("format version 99"), "{error}");
    }

    #[test]
    fn marks_are_named_in_the_file() {
        let state = ResumeState::new(spec(Format::Parquet), &[(1, 3)]);
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["mark"], serde_json::json!({"parts": 0}));
        assert_eq!(json["spec"]["format"], "parquet");
    }
}
