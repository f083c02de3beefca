//! Checking a model file against its spec, and remembering that it was checked.

use super::{FetchError, ModelSpec};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What to do about a cached file that is not the pinned model.
const CACHED: &str = "the cached file is not the model ponder pins (damaged, or replaced): \
                      delete it and run again to fetch it anew, or pass --model PATH";

/// What to do about a fetched file that is not the pinned model.
pub(super) const FETCHED: &str = "the registry served other files than the ones pinned, so \
                                  the download was not cached (nothing was kept); try again \
                                  later, or pass --model PATH";

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Bytes as lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuse a file whose size or checksum differs from the spec's (`path` names it in
/// the error, `advice` says what to do).
pub(super) fn check(
    path: &Path,
    spec: &ModelSpec,
    size: u64,
    sha256: Option<&str>,
    advice: &'static str,
) -> Result<(), FetchError> {
    let refuse = |what, expected: String, got: String| FetchError::Checksum {
        path: path.to_path_buf(),
        what,
        expected,
        got,
        advice,
    };
    if size != spec.size {
        return Err(refuse(
            "size",
            format!("{} bytes", spec.size),
            format!("{size} bytes"),
        ));
    }
    match sha256 {
        Some(h) if !spec.sha256.matches(h) => {
            Err(refuse("sha256", spec.sha256.to_string(), h.to_string()))
        }
        _ => Ok(()),
    }
}

/// The marker beside a model file: `FILE.sha256`.
fn marker(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    path.with_file_name(name)
}

/// "SIZE MTIME_NS": what a file was checked at.
fn stamp(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{} {mtime}", meta.len())
}

/// Check a cached file: trusted without reading it when its marker was written for
/// this size and modification time and holds a checksum the spec accepts; otherwise
/// its size, then its checksum, are checked and the marker written.
pub(super) fn cached(path: &Path, spec: &ModelSpec) -> Result<(), FetchError> {
    let io = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    check(path, spec, meta.len(), None, CACHED)?;
    if let Ok(text) = std::fs::read_to_string(marker(path)) {
        if let Some((hash, at)) = text.trim().split_once(' ') {
            if at == stamp(&meta) && spec.sha256.matches(hash) {
                return Ok(());
            }
        }
    }
    eprintln!("ponder: checking {} (once)…", path.display());
    let hash = sha256_file(path).map_err(io)?;
    check(path, spec, meta.len(), Some(&hash), CACHED)?;
    remember(path, &hash)
}

/// A file's SHA-256: from its marker when one was written for its current size and
/// modification time (a cached model's), else read in full (nothing is written beside
/// a file ponder did not fetch).
pub fn checksum(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if let Ok(text) = std::fs::read_to_string(marker(path)) {
        if let Some((hash, at)) = text.trim().split_once(' ') {
            if at == stamp(&meta) && hash.len() == 64 {
                return Ok(hash.to_string());
            }
        }
    }
    sha256_file(path)
}

/// Write the marker for a file just checked to have checksum `hash`.
pub(super) fn remember(path: &Path, hash: &str) -> Result<(), FetchError> {
    let m = marker(path);
    let io = |source| FetchError::Io {
        path: m.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    crate::durable::replace(&m, format!("{hash} {}\n", stamp(&meta)).as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ensure_in, Sha256, Wheel};

    fn spec(size: u64, sha256: Sha256) -> ModelSpec {
        ModelSpec {
            file: "m.gguf",
            packages: &[Wheel {
                name: "never-fetched",
                version: "0",
            }],
            member_suffix: ".gguf",
            size,
            sha256,
        }
    }

    #[test]
    fn a_cached_file_is_checked_once_and_refused_when_it_differs() {
        let d = std::env::temp_dir().join(format!("ponder-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("m.gguf");
        std::fs::write(&path, b"GGUF model").unwrap();
        let sum = sha256_file(&path).unwrap();
        // As `sha256sum` computes it.
        assert_eq!(
            sum,
            "9db13e71daf5e552a3e1c719d5c574905919115b84226bc4230108aced11699f"
        );
        let good: &'static str = Box::leak(sum.clone().into_boxed_str());
        assert_eq!(ensure_in(&d, &spec(10, Sha256::Known(good))).unwrap(), path);
        let m = std::fs::read_to_string(marker(&path)).unwrap();
        assert!(m.starts_with(&format!("{sum} 10 ")), "{m}");
        // Same size and modification time: the marker is trusted, the file not read
        // (here changed behind ponder's back with its time put back).
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, b"GGUF mode!").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        ensure_in(&d, &spec(10, Sha256::Known(good))).expect("trusted by its marker");
        // Touched: checked again, and refused with both checksums and what to do.
        let later = mtime + std::time::Duration::from_secs(5);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(later).unwrap();
        drop(f);
        let msg = ensure_in(&d, &spec(10, Sha256::Known(good)))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("expected {good}")) && msg.contains("delete it"),
            "{msg}"
        );
        assert!(path.exists(), "the user's file is not deleted");
        // The wrong size is refused without reading the file.
        let msg = ensure_in(&d, &spec(11, Sha256::Known(good)))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("size is 10 bytes, expected 11 bytes"), "{msg}");
        // A partly known checksum: its ends are checked.
        let s = sha256_file(&path).unwrap();
        let ends = Sha256::Unknown {
            starts: Box::leak(s[..8].to_string().into_boxed_str()),
            ends: Box::leak(s[60..].to_string().into_boxed_str()),
        };
        ensure_in(&d, &spec(10, ends)).unwrap();
        let wrong = Sha256::Unknown {
            starts: "cc324af0",
            ends: "b046",
        };
        let msg = ensure_in(&d, &spec(10, wrong)).unwrap_err().to_string();
        assert!(msg.contains("expected cc324af0…b046"), "{msg}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
