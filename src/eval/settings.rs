//! `settings.json` beside `records.jsonl`: what each strategy's records were made with.
//!
//! Records are keyed by (problem, strategy name, seed), and a name does not carry every
//! setting (temperature, token limits, the model, the scorer). Without this file a rerun
//! into the same folder with other settings would resume, and mix two runs under one
//! name. A strategy's settings are written the first time it runs in a folder; a later run
//! whose settings differ is refused before anything is solved, naming what differs.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in an output folder.
pub const FILE: &str = "settings.json";

/// Why the settings of a run could not be checked or recorded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading the file, creating the folder or writing the file failed.
    #[error("cannot read or write {path}: {source}")]
    Io {
        /// The settings file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object of settings by strategy name.
    #[error("{path}: not a settings file ({source}); move it away")]
    Corrupt {
        /// The settings file.
        path: PathBuf,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A strategy's records in this folder were made with other settings.
    #[error(
        "{dir} holds {strategy} records made with other settings ({diff}): use another --out, \
         or run with those settings (to start over with these, move {dir}/{FILE} and records.jsonl away)"
    )]
    Mismatch {
        /// The output folder.
        dir: PathBuf,
        /// The strategy's report name.
        strategy: String,
        /// The first few keys that differ, each with its recorded and its new value.
        diff: String,
    },
}

/// Check each strategy's settings against those recorded in `dir` and record the ones
/// not seen before. `Null` settings (a strategy that does not report them) are neither
/// checked nor recorded. Returns the names recorded now.
pub fn reconcile(dir: &Path, runs: &[(String, Value)]) -> Result<Vec<String>, SettingsError> {
    let path = dir.join(FILE);
    let io = |source| SettingsError::Io {
        path: path.clone(),
        source,
    };
    let mut known: BTreeMap<String, Value> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| SettingsError::Corrupt {
            path: path.clone(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(io(e)),
    };
    let mut added = Vec::new();
    for (name, settings) in runs.iter().filter(|(_, s)| !s.is_null()) {
        match known.get(name) {
            Some(there) if !differences(there, settings).is_empty() => {
                return Err(SettingsError::Mismatch {
                    dir: dir.to_path_buf(),
                    strategy: name.clone(),
                    diff: describe(there, settings),
                })
            }
            Some(_) => {}
            None => {
                known.insert(name.clone(), settings.clone());
                added.push(name.clone());
            }
        }
    }
    if !added.is_empty() {
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_string_pretty(&known).expect("JSON values serialise") + "\n";
        // Whole or not at all: a torn settings file would refuse every later run. A
        // unique temp name, fsynced before the rename, the folder after.
        crate::durable::replace(&path, text.as_bytes()).map_err(io)?;
    }
    Ok(added)
}

/// Each setting that differs, as "KEY THERE there, HERE here". A strategy setting the
/// recorded run did not have yet (added to ponder since) matches when it is at the
/// strategy's default (`kind` names the strategy): the default keeps what ran before.
fn differences(there: &Value, here: &Value) -> Vec<String> {
    let (mut a, mut b, mut d) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    flatten("", there, &mut a);
    flatten("", here, &mut b);
    if let Some(entry) = here["kind"]
        .as_str()
        .and_then(|k| ponder_search::registry::lookup(k).ok())
    {
        flatten("strategy", &entry.defaults(), &mut d);
    }
    let show = |v: Option<&Value>| v.map_or("unset".to_string(), Value::to_string);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .filter(|k| !(!a.contains_key(*k) && b.contains_key(*k) && b.get(*k) == d.get(*k)))
        .map(|k| format!("{k} {} there, {} here", show(a.get(k)), show(b.get(k))))
        .collect()
}

/// "sampling.temperature 0.8 there, 1.0 here; max_tokens 320 there, 256 here".
fn describe(there: &Value, here: &Value) -> String {
    let diffs = differences(there, here);
    const SHOWN: usize = 4;
    match diffs.len() {
        n if n > SHOWN => format!("{}; and {} more", diffs[..SHOWN].join("; "), n - SHOWN),
        _ => diffs.join("; "),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// One strategy's settings in a run: its own, and the run's (model, prompt, scorer,
/// budget), as one object.
pub fn combine(strategy: Value, run: &Map<String, Value>) -> Value {
    if strategy.is_null() {
        return Value::Null;
    }
    let mut m = run.clone();
    m.insert("strategy".into(), strategy);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ponder-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_new_strategies_accepts_the_same_and_refuses_a_change() {
        let d = dir("cycle");
        let a = json!({"model": "m.gguf", "strategy": {"n": 8, "sampling": {"temperature": 0.8}}});
        let b = json!({"model": "m.gguf", "strategy": {"n": 4}});
        let added = reconcile(&d, &[("bon".into(), a.clone())]).unwrap();
        assert_eq!(added, ["bon"]);
        // Same settings again, plus a new strategy: only the new one is recorded.
        let added = reconcile(&d, &[("bon".into(), a.clone()), ("mcts".into(), b)]).unwrap();
        assert_eq!(added, ["mcts"]);
        let mut hot = a.clone();
        hot["strategy"]["sampling"]["temperature"] = json!(1.0);
        hot["model"] = json!("other.gguf");
        let err = reconcile(&d, &[("bon".into(), hot)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds bon records made with other settings (model \"m.gguf\" there, \"other.gguf\" here; strategy.sampling.temperature 0.8 there, 1.0 here)"),
            "{err}"
        );
        // The refusal wrote nothing: the recorded settings still accept the original.
        assert!(reconcile(&d, &[("bon".into(), a)]).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unknown_settings_are_not_checked_and_a_broken_file_is_named() {
        let d = dir("null");
        assert!(reconcile(&d, &[("custom".into(), Value::Null)])
            .unwrap()
            .is_empty());
        assert!(!d.join(FILE).exists());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(FILE), "{oops").unwrap();
        let err = reconcile(&d, &[("bon".into(), json!({}))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("settings.json: not a settings file"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn settings_are_written_under_a_unique_temp_name() {
        let d = dir("tmp");
        // Another process's temp file under the one shared name (here a folder, which a
        // write cannot replace): this run's write must not depend on that name.
        std::fs::create_dir_all(d.join(format!("{FILE}.tmp"))).unwrap();
        let added = reconcile(&d, &[("bon".into(), json!({"n": 8}))]).unwrap();
        assert_eq!(added, ["bon"]);
        let text = std::fs::read_to_string(d.join(FILE)).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["bon"]["n"], 8);
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn long_differences_are_cut_to_four() {
        let a = json!({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1});
        let b = json!({"a": 2, "b": 2, "c": 2, "d": 2, "e": 2});
        let s = describe(&a, &b);
        assert!(s.starts_with("a 1 there, 2 here; b 1 there"), "{s}");
        assert!(s.ends_with("; and 2 more"), "{s}");
        assert!(combine(Value::Null, &Map::new()).is_null());
    }

    #[test]
    fn a_setting_added_since_matches_at_its_default() {
        let d = dir("added");
        // Recorded before pot had `adaptive` and `wave`.
        let mut defaults = ponder_search::registry::lookup("pot").unwrap().defaults();
        let m = defaults.as_object_mut().unwrap();
        m.remove("adaptive");
        m.remove("wave");
        let old = json!({"kind": "pot", "strategy": defaults});
        reconcile(&d, &[("pot-8".into(), old)]).unwrap();
        let now = ponder_search::registry::lookup("pot").unwrap().defaults();
        let here = json!({"kind": "pot", "strategy": now.clone()});
        assert!(reconcile(&d, &[("pot-8".into(), here)]).unwrap().is_empty());
        // Away from its default it is a different run.
        let mut other = now;
        other["wave"] = json!(3);
        let err = reconcile(
            &d,
            &[("pot-8".into(), json!({"kind": "pot", "strategy": other}))],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("strategy.wave unset there, 3 here"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
