//! `records.jsonl`: one line per (problem, strategy), appended as each finishes, so a
//! killed run loses at most the problems in flight. On reopen a torn last line (a write
//! cut short) is cut off before anything new is appended.
//!
//! One writer per folder: [`RecordLog::open`] holds an exclusive lock on
//! [`LOCK_FILE`] in the folder for as long as the log lives (the whole run), and a
//! second writer is refused at once ([`RecordError::Busy`]) instead of solving the same
//! problems and appending them twice. Readers ([`read`], what `--summary-only` uses)
//! take no lock: they neither create nor repair anything, and ignore a torn last line,
//! so they may read a folder while a run appends to it.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The record file's name in an output folder.
pub const FILE: &str = "records.jsonl";

/// The lock file a writer holds in its output folder (left in place after the run: a
/// lock file removed while another process waits on it would let two writers in).
pub const LOCK_FILE: &str = "eval.lock";

/// The outcome of one strategy on one problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The problem's dataset id (its `id`/`unique_id` field, else `line-N`).
    pub id: String,
    /// The problem's 0-based position in the dataset (its seeds derive from it).
    pub index: u64,
    /// The strategy's report name (with the seed and id, the key of done work).
    pub strategy: String,
    /// The reference answer.
    pub gold: String,
    /// The chosen answer, extracted and normalised (None: none was found).
    pub answer: Option<String>,
    /// The answer is equivalent to the gold (false when there is none).
    pub correct: bool,
    /// Tokens the policy model sampled.
    pub generated_tokens: u64,
    /// Prompt tokens the policy model evaluated (each prompt once).
    pub prompt_tokens: u64,
    /// Every token the policy model evaluated: prompts, sampled tokens fed back,
    /// appended text.
    pub decoded_tokens: u64,
    /// Policy decode calls this problem's work took part in.
    pub decode_calls: u64,
    /// Wall time of the solve, in ms.
    pub wall_ms: f64,
    /// The run's seed.
    pub seed: u64,
    /// A budget, deadline or cancel cut the search short.
    pub truncated: bool,
    /// Candidates the strategy produced.
    pub candidates: usize,
    /// Candidates whose answer matches the gold (any-of-N correct when > 0).
    pub candidates_correct: usize,
    /// Tokens a model-backed scorer (PRM, judge) evaluated, counted apart.
    #[serde(default)]
    pub scorer_tokens: u64,
    /// Wall time spent in the scorer, in ms.
    #[serde(default)]
    pub scoring_ms: f64,
    /// The chosen candidate's score (None: it has none, or nothing was chosen).
    #[serde(default)]
    pub chosen_score: Option<f64>,
    /// The best score among the candidates (with `chosen_score`, what speculative
    /// rejection is measured by); None when no candidate has a score.
    #[serde(default)]
    pub best_score: Option<f64>,
    /// RSD: the draft model's generated tokens; `generated_tokens` is then what the
    /// target generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_tokens: Option<u64>,
    /// RSD: draft tokens kept / draft tokens generated, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance_rate: Option<f64>,
    /// The token budget a `token-budget` prompt stated (with whether the model's estimate
    /// gave it, or the fallback did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_budget: Option<ponder_search::PromptBudget>,
    /// A cascade's stages as they ran (empty for other strategies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<ponder_search::StageReport>,
    /// Every candidate, in the strategy's order (empty in records from before they were
    /// kept): what `--summary-only` re-votes at smaller N and measures AUROC on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_candidate: Vec<CandidateRecord>,
}

/// One candidate of a record: its answer, whether it is right, what it cost and every
/// score it has, by signal name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// The extracted, normalised answer (None: none was found, or its program failed).
    pub answer: Option<String>,
    /// The answer is equivalent to the gold.
    pub correct: bool,
    /// Tokens the candidate's completion has.
    pub tokens: usize,
    /// How its generation ended (None: a search dropped it before an end).
    pub finish: Option<ponder_engine::Finish>,
    /// Its scores by signal: the model-free signals every sample carries (`logprob`,
    /// `self-certainty`, `verifier`, and `agreement` in `mixed`), and the run's scorer's
    /// score under the scorer's name.
    pub scores: std::collections::BTreeMap<String, f64>,
    /// Why it has no answer when that is known: its program's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// The key that identifies done work.
    pub fn key(&self) -> (String, String, u64) {
        (self.id.clone(), self.strategy.clone(), self.seed)
    }
}

/// The append-only record file.
pub struct RecordLog {
    path: PathBuf,
    file: std::fs::File,
    /// Every record in the file, in file order: those read on open, then those appended.
    pub records: Vec<Record>,
    /// The folder's lock file, locked exclusively until the log is dropped.
    _lock: std::fs::File,
    /// The first append that failed: every later append is refused with it, so nothing
    /// lands after a torn line (the next open cuts that line off).
    failed: Option<Failure>,
    /// Test-only: a write error to inject (see [`RecordLog::inject_fault`]).
    #[cfg(test)]
    fault: Option<Fault>,
}

/// A failed append's error, kept to refuse every later append with the same error.
#[derive(Clone, Debug)]
struct Failure {
    os: Option<i32>,
    kind: std::io::ErrorKind,
    message: String,
}

impl Failure {
    fn of(e: &std::io::Error) -> Self {
        Self {
            os: e.raw_os_error(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// The same error again (an OS error as itself, any other with its message).
    fn error(&self) -> std::io::Error {
        match self.os {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.message.clone()),
        }
    }
}

/// Test-only: an injected write error, standing for a full disk.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
struct Fault {
    /// Appends that still succeed before the faulty one.
    after: usize,
    /// Bytes of the faulty append's line written before the error (a torn write).
    torn: usize,
}

/// Why the record file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Creating, reading, truncating or appending to the folder or file failed.
    #[error("cannot write to {path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Appending a record failed (a full disk, an I/O error): the run stops there, and
    /// every later append of this log is refused with the same error. The records
    /// before it stay; at worst the file ends in a torn line, which the next open cuts.
    #[error(
        "cannot append to {path}: {source}; the run stopped at the first failed write \
         (the records before it are kept: fix the cause, e.g. free disk space, and rerun to resume)"
    )]
    Append {
        /// The record file.
        path: PathBuf,
        /// The first append's I/O error.
        source: std::io::Error,
    },
    /// Another process (another `ponder eval`) is writing into the folder.
    #[error(
        "{dir} is in use: another ponder eval holds its lock ({dir}/{LOCK_FILE}) and is \
         writing records there; wait for it to finish, or use another --out"
    )]
    Busy {
        /// The output folder.
        dir: PathBuf,
    },
    /// A complete line of the file is not a record.
    #[error("{path}:{line}: not a record ({reason}); move the file away or fix the line")]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// The line's number, 1-based.
        line: usize,
        /// Why it does not parse.
        reason: String,
    },
}

/// The records in `dir` without writing: no lock, no folder or file created (none is no
/// records), and a torn last line (a run appending to it now, or killed) ignored, not
/// cut. For reading a folder that a run may be writing to (`--summary-only`).
pub fn read(dir: &Path) -> Result<Vec<Record>, RecordError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RecordError::Io { path, source }),
    };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    parse(&path, &bytes[..keep])
}

/// The records of complete lines (each ending in a newline), in file order.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
    let mut records = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r = serde_json::from_slice(line).map_err(|e| RecordError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        records.push(r);
    }
    Ok(records)
}

impl RecordLog {
    /// Open (creating the folder and file) and read the records already there.
    pub fn open(dir: &Path) -> Result<Self, RecordError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RecordError::Busy {
                    dir: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        // A writer killed while replacing settings or summaries left its temporary file.
        crate::durable::remove_stale_temporaries(dir).map_err(io(dir))?;
        let path = dir.join(FILE);
        let new = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        // Bytes, not text: a write cut short may end inside a multi-byte character.
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        // Everything after the last newline is a torn write: drop it.
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            file.set_len(keep as u64).map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
            file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        }
        if new {
            crate::durable::sync_dir(dir).map_err(io(dir))?;
        }
        let records = parse(&path, &bytes[..keep])?;
        Ok(Self {
            path,
            file,
            records,
            _lock: lock,
            failed: None,
            #[cfg(test)]
            fault: None,
        })
    }

    /// Test-only error hook (compiled only into this crate's unit tests): after `after`
    /// more appends succeed, the next one writes the first `torn` bytes of its line and
    /// fails as a full disk does (`StorageFull`). It fires once: later writes reach the
    /// file again, as they may when space is freed meanwhile.
    #[cfg(test)]
    pub(crate) fn inject_fault(&mut self, after: usize, torn: usize) {
        self.fault = Some(Fault { after, torn });
    }

    /// Write one line, through the test-only fault when one is armed.
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(f) = &mut self.fault {
            if f.after == 0 {
                let torn = f.torn.min(line.len());
                self.fault = None;
                self.file.write_all(&line[..torn])?;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (injected)",
                ));
            }
            f.after -= 1;
        }
        self.file.write_all(line)?;
        // On disk before the record counts as done: a power cut loses no record that
        // was reported (the cost is measured in `append`'s doc).
        self.file.sync_data()
    }

    /// Keys of the work already done.
    pub fn done(&self) -> HashSet<(String, String, u64)> {
        self.records.iter().map(Record::key).collect()
    }

    /// Append one record as one write of one line, synced to disk (`fdatasync`) before
    /// it returns. After a failed append every later one is refused with the first
    /// error ([`RecordError::Append`]). Measured here (ext4): the sync costs about 3 ms
    /// an append, so the mock-backed eval and record tests (about 70 appends, each
    /// solve well under a millisecond) went from 0.04–0.05 s to 0.22–0.30 s; next to a
    /// solve on a real model (hundreds of ms to seconds) it is lost in the noise.
    pub fn append(&mut self, r: Record) -> Result<(), RecordError> {
        let err = |path: &Path, source| RecordError::Append {
            path: path.to_path_buf(),
            source,
        };
        if let Some(f) = &self.failed {
            return Err(err(&self.path, f.error()));
        }
        let mut line = serde_json::to_string(&r).expect("records serialise");
        line.push('\n');
        if let Err(e) = self.write_line(line.as_bytes()) {
            self.failed = Some(Failure::of(&e));
            return Err(err(&self.path, e));
        }
        self.records.push(r);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rec(id: &str, strategy: &str, correct: bool) -> Record {
        Record {
            id: id.into(),
            index: 0,
            strategy: strategy.into(),
            gold: "1".into(),
            answer: Some(if correct { "1" } else { "2" }.into()),
            correct,
            generated_tokens: 10,
            prompt_tokens: 5,
            decoded_tokens: 14,
            decode_calls: 10,
            wall_ms: 100.0,
            seed: 0,
            truncated: false,
            candidates: 1,
            candidates_correct: correct as usize,
            scorer_tokens: 0,
            scoring_ms: 0.0,
            chosen_score: None,
            best_score: None,
            draft_tokens: None,
            acceptance_rate: None,
            prompt_budget: None,
            stages: Vec::new(),
            per_candidate: Vec::new(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ponder-rec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_survive_reopen_and_torn_lines_are_cut() {
        let d = tmp("torn");
        let mut log = RecordLog::open(&d).unwrap();
        log.append(rec("a", "greedy", true)).unwrap();
        log.append(rec("b", "greedy", false)).unwrap();
        drop(log);
        // A write killed half-way.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("records.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\": \"c\", \"strat").unwrap();
        drop(f);
        let mut log = RecordLog::open(&d).unwrap();
        assert_eq!(log.records.len(), 2);
        assert!(log.done().contains(&("b".into(), "greedy".into(), 0)));
        log.append(rec("c", "greedy", true)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(d.join("records.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<Record>(l).is_ok()));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_tear_inside_a_multibyte_character_is_cut() {
        let d = tmp("utf8");
        let mut log = RecordLog::open(&d).unwrap();
        let mut r = rec("é-1", "greedy", true);
        r.answer = Some("½".into());
        log.append(r.clone()).unwrap();
        drop(log);
        // The next line cut after the first byte of 'é' (0xC3 0xA9): not UTF-8 text.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("records.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\": \"\xC3").unwrap();
        drop(f);
        let mut log = RecordLog::open(&d).unwrap();
        assert_eq!(log.records, [r]);
        log.append(rec("b", "greedy", true)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(d.join("records.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn after_a_failed_append_every_later_one_is_refused_and_the_file_stays_readable() {
        let d = tmp("fail");
        let mut log = RecordLog::open(&d).unwrap();
        log.append(rec("a", "greedy", true)).unwrap();
        log.inject_fault(0, 9);
        let first = log
            .append(rec("b", "greedy", true))
            .unwrap_err()
            .to_string();
        assert!(
            first.contains("records.jsonl") && first.contains("No space left on device"),
            "{first}"
        );
        // The disk has room again: still refused, with the first error, not a line
        // appended after the torn one.
        let later = log
            .append(rec("c", "greedy", true))
            .unwrap_err()
            .to_string();
        assert_eq!(later, first);
        assert_eq!(log.records.len(), 1);
        drop(log);
        let log = RecordLog::open(&d).expect("at worst a torn last line, cut on open");
        let ids: Vec<&str> = log.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_second_writer_of_one_folder_is_refused_at_once() {
        let d = tmp("lock");
        let mut log = RecordLog::open(&d).unwrap();
        log.append(rec("a", "greedy", true)).unwrap();
        let t = std::time::Instant::now();
        let e = RecordLog::open(&d)
            .err()
            .expect("two writers of one folder");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "not waited for"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&d.display().to_string()) && msg.contains("another ponder eval"),
            "{msg}"
        );
        // A reader shares the folder, and ignores a line being written.
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(FILE))
            .unwrap()
            .write_all(b"{\"id\":")
            .unwrap();
        assert_eq!(read(&d).unwrap().len(), 1);
        assert!(read(&d.join("none")).unwrap().is_empty());
        assert!(!d.join("none").exists(), "a reader creates nothing");
        drop(log);
        assert_eq!(RecordLog::open(&d).unwrap().records.len(), 1, "free again");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unwritable_folder_is_an_error_naming_it() {
        let d = tmp("file");
        std::fs::create_dir_all(&d).unwrap();
        let blocker = d.join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let e = RecordLog::open(&blocker.join("out"))
            .err()
            .expect("cannot create a folder under a file");
        assert!(e.to_string().contains("not-a-dir"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_complete_line_is_reported_with_its_number() {
        let d = tmp("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("records.jsonl"),
            format!(
                "{}\nnonsense\n",
                serde_json::to_string(&rec("a", "g", true)).unwrap()
            ),
        )
        .unwrap();
        match RecordLog::open(&d) {
            Err(RecordError::Corrupt { line: 2, .. }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted a corrupt file"),
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
