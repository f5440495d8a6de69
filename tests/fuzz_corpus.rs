//! Stable replay of the committed fuzz corpus: every file under `fuzz/corpus/<target>/` goes
//! through the same target body the cargo-fuzz binary runs (`fuzz/src/lib.rs`, included
//! here), so CI without nightly still checks every seed and every past finding.
//!
//! `FUZZ_WRITE_SEEDS=1 cargo test --test fuzz_corpus storage_seeds` (re)writes the storage
//! targets' generated seeds (the request seeds are captured from real clients,
//! `fuzz/capture_requests.py`).

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every corpus file of `target` through `body`; returns how many there were.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        eprintln!("{target}: {}", file.display());
        body(&data);
    }
    files.len()
}

#[test]
fn request_decode_corpus() {
    assert!(replay("request_decode", targets::request_decode) >= 20);
}

#[test]
fn batch_validation_corpus() {
    assert!(replay("batch_validation", targets::batch_validation) >= 20);
}

#[test]
fn recovery_scan_corpus() {
    assert!(replay("recovery_scan", targets::recovery_scan) >= 10);
}

/// The generated storage seeds are all committed (with `FUZZ_WRITE_SEEDS=1` they are written
/// first). Names, not bytes, are compared: a codec library update may change compressed bytes.
#[test]
fn storage_seeds_are_committed() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    let seeds = targets::storage_seeds();
    assert!(seeds.len() >= 30);
    for (target, name, bytes) in seeds {
        let dir = corpus_dir(&target);
        let file = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(&file, bytes).expect("seed file");
        }
        assert!(file.is_file(), "seed {} is not committed", file.display());
    }
}

#[test]
fn producer_snapshot_corpus() {
    assert!(replay("producer_snapshot", targets::producer_snapshot) >= 4);
}

#[test]
fn txn_index_corpus() {
    assert!(replay("txn_index", targets::txn_index) >= 4);
}

/// The generated transaction seeds are all committed (written first with `FUZZ_WRITE_SEEDS=1`).
#[test]
fn txn_seeds_are_committed() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    for (target, name, bytes) in targets::txn_seeds() {
        let dir = corpus_dir(&target);
        let file = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(&file, bytes).expect("seed file");
        }
        assert!(file.is_file(), "seed {} is not committed", file.display());
    }
}
