//! Replays the fuzz corpora of the catalog's targets (`fuzz/corpus/envelope/` and
//! `fuzz/corpus/json_body/`) through the very harness functions the fuzz targets call, so every
//! input fuzzing ever kept (crashes found and fixed included) is checked on stable in CI.

#[path = "../../../fuzz/harness/envelope.rs"]
mod envelope;
#[path = "../../../fuzz/harness/json_body.rs"]
mod json_body;

use std::path::{Path, PathBuf};

/// Runs every file of `fuzz/corpus/<target>/` through `run`; a panic names the file.
fn replay(target: &str, run: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} fails", file.display());
        }
    }
}

#[test]
fn the_envelope_corpus_replays_cleanly() {
    replay("envelope", envelope::run);
}

#[test]
fn the_json_body_corpus_replays_cleanly() {
    replay("json_body", json_body::run);
}
