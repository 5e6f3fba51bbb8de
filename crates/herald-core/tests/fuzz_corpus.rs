//! Replays the corpus of the `signatures` fuzz target (`fuzz/corpus/signatures/`) through the very
//! harness function the fuzz target calls, so every input fuzzing ever kept is checked on stable
//! in CI.

#[path = "../../../fuzz/harness/signatures.rs"]
mod signatures;

use std::path::{Path, PathBuf};

#[test]
fn the_signatures_corpus_replays_cleanly() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/signatures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the signatures corpus is empty");
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| signatures::run(&data)).is_err() {
            panic!("signatures: {} fails", file.display());
        }
    }
}
