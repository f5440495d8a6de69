//! The data directory's clean-shutdown marker (Kafka's `.kafka_cleanshutdown`): written once
//! after every log closed, removed (durably) at start before any log is opened.
//!
//! Invariant: while the broker runs, or after it stopped in any other way (crash, fatal error,
//! a log that failed to close), the marker is absent, so every partition is then recovered
//! from its recovery point whatever its own checkpoint says. This is what lets partitions be
//! opened without rewriting their checkpoints and idle ones be closed without any I/O.

use std::path::{Path, PathBuf};

/// Kafka's name for the same file.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(CLEAN_SHUTDOWN_FILE)
}

/// Whether the previous process stopped cleanly; removes the marker (and fsyncs the directory)
/// so a crash of this process is seen as unclean. A marker that cannot be removed durably
/// would vouch for logs this process changes, so that stops the broker.
pub fn take(data_dir: &Path) -> bool {
    let path = path_in(data_dir);
    if !path.exists() {
        return false;
    }
    let removed =
        std::fs::remove_file(&path).and_then(|()| std::fs::File::open(data_dir)?.sync_all());
    if let Err(e) = removed {
        shards::fatal(format!(
            "cannot remove the clean-shutdown marker {}: {e}",
            path.display()
        ));
    }
    true
}

/// Writes the marker (fsynced, with its directory entry) after every log closed.
pub fn mark(data_dir: &Path) {
    let path = path_in(data_dir);
    let written = std::fs::File::create(&path)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::File::open(data_dir)?.sync_all());
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the clean-shutdown marker; the next start recovers every partition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!take(dir.path()), "no marker: unclean");
        mark(dir.path());
        assert!(path_in(dir.path()).exists());
        assert!(take(dir.path()), "marker: clean");
        assert!(!path_in(dir.path()).exists(), "taken at start");
        assert!(
            !take(dir.path()),
            "a second start without a clean stop is unclean"
        );
    }
}
