//! Evaluation datasets: JSONL with GSM8K fields (`question`/`answer` with `####`),
//! MATH-500 fields (`problem`/`answer`), MultiArith fields (`input`/`target`), or any
//! pair of fields the user names.

use ponder_search::answer::gsm8k_gold;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One problem with its reference answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Position in the file (0-based, counting only parsed records); seeds derive from it.
    pub index: u64,
    /// A stable id: the record's `id`/`unique_id` field if present, else `line-N`.
    pub id: String,
    /// The question text, as the model is asked it (never blank: a record whose question
    /// is empty is a bad line).
    pub question: String,
    /// The reference answer, as extracted (GSM8K's text after `####`).
    pub gold: String,
}

/// Which layout a file has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// GSM8K: `question`, and `answer` whose gold is the text after `####`.
    Gsm8k,
    /// MATH-500: `problem` and `answer`.
    Math,
    /// MultiArith: `input` and `target`.
    MultiArith,
    /// Fields the user named (`--question-field`, `--answer-field`).
    Custom {
        /// The field holding the question.
        question: String,
        /// The field holding the reference answer (its text after `####` when it has one).
        answer: String,
    },
}

impl Format {
    fn fields(&self) -> (&str, &str) {
        match self {
            Format::Gsm8k => ("question", "answer"),
            Format::Math => ("problem", "answer"),
            Format::MultiArith => ("input", "target"),
            Format::Custom { question, answer } => (question, answer),
        }
    }
}

/// What to do with a line that is not a JSON object with the fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBadLine {
    /// Stop with an error naming the line.
    #[default]
    Stop,
    /// Skip it and report it.
    Skip,
}

/// A loaded dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The layout: the user's fields, or the one detected from the first record.
    pub format: Format,
    /// Every parsed problem, in file order.
    pub items: Vec<Item>,
    /// Lines skipped under [`OnBadLine::Skip`]: (1-based line number, why).
    pub skipped: Vec<(usize, String)>,
}

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read dataset {path}: {source}")]
    Io {
        /// The dataset file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No line gave a problem: the file is empty or blank.
    #[error("dataset {path} has no records")]
    Empty {
        /// The dataset file.
        path: PathBuf,
    },
    /// Every line that is not blank was skipped as bad (under [`OnBadLine::Skip`]).
    #[error("dataset {path} has no usable records: all {skipped} were skipped as bad lines; the first: {first}")]
    AllSkipped {
        /// The dataset file.
        path: PathBuf,
        /// How many lines were skipped.
        skipped: usize,
        /// Why the first one was.
        first: String,
    },
    /// A line is not a JSON object with the fields, or its question or answer is empty
    /// (under [`OnBadLine::Stop`]).
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The dataset file.
        path: PathBuf,
        /// The line's number, 1-based.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The first record matches no known layout and no fields were named.
    #[error("{path}: unknown fields; found {found:?} — pass --question-field and --answer-field (known layouts: question/answer, problem/answer, input/target)")]
    UnknownFields {
        /// The dataset file.
        path: PathBuf,
        /// The first record's field names.
        found: Vec<String>,
    },
}

/// Load a JSONL dataset. `fields` overrides detection with (question field, answer field).
pub fn load(
    path: &Path,
    fields: Option<(&str, &str)>,
    on_bad: OnBadLine,
) -> Result<Dataset, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.into(),
        source,
    })?;
    parse(&text, path, fields, on_bad)
}

/// [`load`] for text already in memory (`path` is used in messages).
pub fn parse(
    text: &str,
    path: &Path,
    fields: Option<(&str, &str)>,
    on_bad: OnBadLine,
) -> Result<Dataset, DatasetError> {
    let mut format = fields.map(|(q, a)| Format::Custom {
        question: q.into(),
        answer: a.into(),
    });
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DatasetError::BadLine {
            path: path.into(),
            line: lineno,
            reason,
        };
        let rec = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Err(bad("not a JSON object".into()))
                .or_else(|e| skip(e, on_bad, &mut skipped, lineno))?,
            Err(e) => Err(bad(format!("malformed JSON ({e})")))
                .or_else(|e| skip(e, on_bad, &mut skipped, lineno))?,
        };
        if rec.is_empty() {
            continue; // a skipped line
        }
        let fmt = match &format {
            Some(f) => f.clone(),
            None => {
                let f = detect(&rec).ok_or_else(|| DatasetError::UnknownFields {
                    path: path.into(),
                    found: rec.keys().cloned().collect(),
                })?;
                format = Some(f.clone());
                f
            }
        };
        let (qf, af) = fmt.fields();
        let item = (|| {
            let question = field(rec.get(qf), qf, "question")?;
            let raw = field(rec.get(af), af, "answer")?;
            let gold = if raw.contains("####") {
                gsm8k_gold(&raw).ok_or_else(|| "nothing after ####".to_string())?
            } else {
                raw.trim().to_string()
            };
            let index = items.len() as u64;
            let id = ["id", "unique_id"]
                .iter()
                .find_map(|k| as_text(rec.get(*k)))
                .unwrap_or_else(|| format!("line-{lineno}"));
            Ok::<_, String>(Item {
                index,
                id,
                question,
                gold,
            })
        })();
        match item {
            Ok(it) => items.push(it),
            Err(reason) => {
                // The layout was detected from this very record: a field it has but
                // that is empty is a bad line, not an unknown layout.
                let empty = reason.starts_with("empty ");
                if fields.is_none() && items.is_empty() && !empty {
                    return Err(DatasetError::UnknownFields {
                        path: path.into(),
                        found: rec.keys().cloned().collect(),
                    });
                }
                skip(bad(reason), on_bad, &mut skipped, lineno)?;
            }
        }
    }
    if let (true, Some((_, first))) = (items.is_empty(), skipped.first()) {
        return Err(DatasetError::AllSkipped {
            path: path.into(),
            skipped: skipped.len(),
            first: first.clone(),
        });
    }
    if items.is_empty() {
        return Err(DatasetError::Empty { path: path.into() });
    }
    Ok(Dataset {
        format: format.expect("set with the first item"),
        items,
        skipped,
    })
}

fn skip(
    e: DatasetError,
    on_bad: OnBadLine,
    skipped: &mut Vec<(usize, String)>,
    line: usize,
) -> Result<serde_json::Map<String, Value>, DatasetError> {
    match on_bad {
        OnBadLine::Stop => Err(e),
        OnBadLine::Skip => {
            skipped.push((line, e.to_string()));
            Ok(serde_json::Map::new())
        }
    }
}

fn detect(rec: &serde_json::Map<String, Value>) -> Option<Format> {
    let has = |k: &str| rec.contains_key(k);
    if has("question") && has("answer") {
        Some(Format::Gsm8k)
    } else if has("problem") && has("answer") {
        Some(Format::Math)
    } else if has("input") && has("target") {
        Some(Format::MultiArith)
    } else {
        None
    }
}

/// A record's question or answer (`what`) from its field `name`: text that is not
/// blank, or a number. An empty one is refused like a malformed line (`solve` refuses an
/// empty question too).
fn field(v: Option<&Value>, name: &str, what: &str) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Err(format!("no {what} field {name:?}")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("empty {what} (field {name:?})"))
        }
        other => {
            as_text(other).ok_or_else(|| format!("{what} field {name:?} is not text or a number"))
        }
    }
}

fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Dataset, DatasetError> {
        parse(text, Path::new("t.jsonl"), None, OnBadLine::Stop)
    }

    #[test]
    fn gsm8k_gold_comes_after_the_hashes() {
        let d = p(r#"{"question": "2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}
{"question": "Big?", "answer": "so\n#### 1,000"}"#)
        .unwrap();
        assert_eq!(d.format, Format::Gsm8k);
        assert_eq!(d.items[0].gold, "4");
        assert_eq!(d.items[1].gold, "1000");
        assert_eq!(d.items[1].id, "line-2");
        assert_eq!(d.items[1].index, 1);
    }

    #[test]
    fn math500_keeps_latex_answers_and_ids() {
        let d = p(r#"{"problem": "Half?", "solution": "…", "answer": "\\frac{1}{2}", "unique_id": "test/algebra/1.json"}"#).unwrap();
        assert_eq!(d.format, Format::Math);
        assert_eq!(d.items[0].gold, "\\frac{1}{2}");
        assert_eq!(d.items[0].id, "test/algebra/1.json");
    }

    #[test]
    fn multiarith_numbers_become_text() {
        let d = p(r#"{"input": "3 apples and 4 more?", "target": 7}
{"input": "half of 5?", "target": 2.5}"#)
        .unwrap();
        assert_eq!(d.format, Format::MultiArith);
        assert_eq!(
            (d.items[0].gold.as_str(), d.items[1].gold.as_str()),
            ("7", "2.5")
        );
    }

    #[test]
    fn custom_fields_override_detection() {
        let d = parse(
            r#"{"q": "1+1?", "a": "2", "question": "x"}"#,
            Path::new("t"),
            Some(("q", "a")),
            OnBadLine::Stop,
        )
        .unwrap();
        assert_eq!(d.items[0].question, "1+1?");
        assert_eq!(d.items[0].gold, "2");
    }

    #[test]
    fn unknown_fields_are_listed() {
        let e = p(r#"{"prompt": "x", "label": "y"}"#).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"label\"")
                && msg.contains("\"prompt\"")
                && msg.contains("--question-field"),
            "{msg}"
        );
    }

    #[test]
    fn empty_files_and_bad_lines() {
        assert!(matches!(p("\n\n"), Err(DatasetError::Empty { .. })));
        let text =
            "{\"input\": \"a\", \"target\": 1}\n{not json\n{\"input\": \"b\", \"target\": 2}\n";
        match p(text) {
            Err(DatasetError::BadLine { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        let d = parse(text, Path::new("t"), None, OnBadLine::Skip).unwrap();
        assert_eq!(d.items.len(), 2);
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped[0].0, 2);
        assert_eq!(d.items[1].index, 1, "indices count parsed records only");
    }

    #[test]
    fn an_empty_question_is_a_bad_line_named_by_number() {
        let text = "{\"input\": \"  \", \"target\": 1}\n{\"input\": \"a\", \"target\": 2}\n{\"input\": \"\", \"target\": 3}\n";
        match p(text) {
            Err(DatasetError::BadLine {
                line: 1, reason, ..
            }) if reason.contains("empty question (field \"input\")") => {}
            other => panic!("{other:?}"),
        }
        let d = parse(text, Path::new("t"), None, OnBadLine::Skip).unwrap();
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].question, "a");
        let lines: Vec<usize> = d.skipped.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3]);
        assert!(
            d.skipped[1].1.starts_with("t:3: empty question"),
            "{:?}",
            d.skipped
        );
    }

    #[test]
    fn the_shipped_datasets_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for (f, n, fmt) in [
            ("gsm8k/test.jsonl", 1319, Format::Gsm8k),
            ("math500/test.jsonl", 500, Format::Math),
            ("multiarith/test.jsonl", 600, Format::MultiArith),
        ] {
            let d = load(&root.join(f), None, OnBadLine::Stop).unwrap();
            assert_eq!(d.items.len(), n, "{f}");
            assert_eq!(d.format, fmt);
            assert!(d
                .items
                .iter()
                .all(|i| !i.gold.is_empty() && !i.question.is_empty()));
        }
    }
}
