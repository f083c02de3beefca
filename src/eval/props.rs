//! Property tests (proptest) of the files `ponder eval` reads: record repair after a
//! write torn at any byte, and dataset loading of any text.

use super::dataset::{parse, OnBadLine};
use super::records::{tests::rec, RecordLog, FILE};
use proptest::prelude::*;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// A fresh folder per case.
fn folder() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ponder-props-{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Records with any ids (any Unicode), then the line of one more cut at any byte
    /// (inside a multi-byte character too): reopening keeps exactly the whole records,
    /// and the file takes appends again.
    #[test]
    fn a_torn_last_record_is_cut_whatever_byte_it_stops_at(
        ids in prop::collection::vec("\\PC{0,12}", 0..6),
        torn_id in "\\PC{1,12}",
        cut in any::<prop::sample::Index>(),
    ) {
        let d = folder();
        let mut log = RecordLog::open(&d).unwrap();
        for id in &ids {
            log.append(rec(id, "greedy", true)).unwrap();
        }
        drop(log);
        let whole = std::fs::read(d.join(FILE)).unwrap();
        let line = serde_json::to_vec(&rec(&torn_id, "greedy", false)).unwrap();
        let cut = cut.index(line.len()); // 0 ..= len - 1: never the newline
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(FILE))
            .unwrap()
            .write_all(&line[..cut])
            .unwrap();
        let mut log = RecordLog::open(&d).unwrap();
        let got: Vec<&str> = log.records.iter().map(|r| r.id.as_str()).collect();
        prop_assert_eq!(&got, &ids.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(std::fs::read(d.join(FILE)).unwrap(), whole);
        log.append(rec("after", "greedy", true)).unwrap();
        drop(log);
        let log = RecordLog::open(&d).unwrap();
        prop_assert_eq!(log.records.len(), ids.len() + 1);
        prop_assert_eq!(&log.records.last().unwrap().id, "after");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Any text at all: loading never panics, and every problem it yields has a
    /// question that is not blank and a line it came from.
    #[test]
    fn any_text_loads_or_is_refused_with_a_line(
        lines in prop::collection::vec(prop_oneof![
            "\\PC{0,40}",
            "\\{\"input\": \"\\PC{0,10}\", \"target\": [0-9]{1,3}\\}",
            "\\{\"question\": \"\\PC{0,10}\", \"answer\": \"\\PC{0,5}#### [0-9]{1,3}\"\\}",
            Just("{\"input\": \"  \", \"target\": 1}".to_string()),
            Just("[1, 2]".to_string()),
        ], 0..8),
        skip in any::<bool>(),
    ) {
        let text = lines.join("\n");
        let on_bad = if skip { OnBadLine::Skip } else { OnBadLine::Stop };
        if let Ok(ds) = parse(&text, Path::new("d.jsonl"), None, on_bad) {
            prop_assert!(!ds.items.is_empty());
            prop_assert!(ds.items.len() + ds.skipped.len() <= lines.len());
            for it in &ds.items {
                prop_assert!(!it.question.trim().is_empty());
            }
            for (line, _) in &ds.skipped {
                prop_assert!(*line >= 1 && *line <= lines.len());
            }
        }
    }

    /// Well-formed MultiArith records, any Unicode questions: loaded exactly, in order.
    #[test]
    fn well_formed_records_load_exactly(
        qs in prop::collection::vec(("\\PC{0,20}[a-z]", 0u32..1000), 1..8),
    ) {
        let text: String = qs
            .iter()
            .map(|(q, a)| {
                let rec = serde_json::json!({"input": q, "target": a});
                format!("{rec}\n")
            })
            .collect();
        let ds = parse(&text, Path::new("d.jsonl"), None, OnBadLine::Stop).unwrap();
        prop_assert_eq!(ds.items.len(), qs.len());
        for (it, (q, a)) in ds.items.iter().zip(&qs) {
            prop_assert_eq!(&it.question, q);
            prop_assert_eq!(&it.gold, &a.to_string());
        }
    }
}
