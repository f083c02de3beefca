//! Writing files so that a crash or a power cut leaves the old content or the new one,
//! never a torn mix, and so that two processes writing the same file never share a
//! temporary name.

use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes` atomically: written to a uniquely named temporary file
/// in the same folder (`.NAME.XXXXXX.tmp`, so two processes never share one), flushed
/// to disk, renamed over `path`, then the folder flushed (see [`sync_dir`]). On any
/// error the temporary file is removed and `path` is left as it was.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // What std::fs::write gives (less the umask), not tempfile's private 0600.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Remove the temporary files [`replace`] left in `dir` when its process was killed
/// mid-write (`.NAME.XXXXXX.tmp`). Only for a folder the caller holds exclusively (an
/// eval folder under its lock): another writer's temporary file would go too.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Flush a folder's entries (a rename, a new file) to disk. On Unix a folder opens and
/// syncs like a file; elsewhere (Windows cannot open a folder this way) this does
/// nothing, and a rename there is as durable as the OS makes it.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder holding `path` ("." for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_whole_files_and_leaves_no_temp() {
        let d = std::env::temp_dir().join(format!("ponder-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("a.json");
        replace(&p, b"one").unwrap();
        replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_ne!(mode & 0o044, 0, "readable by others like any written file");
        }
        // A folder in the way: an error, and still no temp file.
        let blocked = d.join("sub");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(replace(&blocked, b"x").is_err());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let d = std::env::temp_dir().join(format!("ponder-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        // What a writer killed inside `replace` leaves, beside files that must stay.
        for name in [
            ".settings.json.aB3xYz.tmp",
            "settings.json",
            "notes.tmp",
            ".hidden",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&d).unwrap(), 1);
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden", "notes.tmp", "settings.json"]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
