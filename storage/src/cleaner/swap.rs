//! Installing cleaned segments atomically, and finishing or undoing an interrupted install
//! when a partition opens (Kafka's `.cleaned` / `.swap` protocol).
//!
//! Install of one group of old segments `[S1..Sn]` replaced by one new segment based at `S1`:
//! 1. write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync them;
//! 2. rename the two index files to `.swap`, then `B.log.cleaned` -> `B.log.swap`; fsync the
//!    directory. **The rename of the log file is the commit point.**
//! 3. unlink the old segments' files (`.log`, `.index`, `.timeindex` of S1..Sn);
//! 4. rename the index `.swap` files to their final names, then `B.log.swap` -> `B.log`;
//!    fsync the directory (after the log's append lock is released: appends need not wait).
//!
//! Recovery (`recover_dir`, before the segments are listed): `.cleaned` files are an
//! uncommitted clean and are deleted (the old segments are whole). A `B.log.swap` is a
//! committed clean: every old `.log` whose base lies in `[B, last offset of the swap]` is
//! removed, then steps 3-4 are completed. Because the cleaner always keeps the group's last
//! batch (empty if need be), the swap's last offset is the group's last offset, so no old
//! segment of the group survives a crash next to the new one. An index `.swap` without a log
//! `.swap` belongs to an uncommitted clean and is deleted. So a crash at any moment leaves
//! either all the old segments or the new one, never both and never neither.

use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::io::{sync_dir, Fd};
use crate::segment::file_stem;

pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";
const KINDS: [&str; 3] = ["index", "timeindex", "log"];

/// A step after which the cleaner can be made to stop as if the process died (tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `.cleaned` files written and fsynced, nothing renamed.
    CleanedWritten,
    /// Index files renamed to `.swap`, log file still `.cleaned`.
    IndexSwapRenamed,
    /// `B.log.swap` exists (committed), old segments still present.
    SwapCommitted,
    /// Old segments unlinked, `.swap` files not yet renamed.
    OldDeleted,
    /// Index files renamed to their final names, `B.log.swap` not yet.
    IndexInstalled,
    /// Installed; the cleaner checkpoint not yet advanced.
    Installed,
}

fn name(base: i64, kind: &str, suffix: &str) -> String {
    format!("{}.{kind}{suffix}", file_stem(base))
}

pub(crate) fn path(dir: &Path, base: i64, kind: &str, suffix: &str) -> PathBuf {
    dir.join(name(base, kind, suffix))
}

fn crash(at: Option<CrashPoint>, here: CrashPoint) -> Result<(), StorageError> {
    if at == Some(here) {
        return Err(StorageError::Io(std::io::Error::other(format!(
            "simulated crash after {here:?}"
        ))));
    }
    Ok(())
}

async fn remove_if_present(p: &Path) -> Result<(), StorageError> {
    match compio::fs::remove_file(p).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the `.cleaned` files of `base` (an abandoned clean).
pub(crate) async fn discard_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    for kind in KINDS {
        remove_if_present(&path(dir, base, kind, CLEANED_SUFFIX)).await?;
    }
    Ok(())
}

/// Steps 2-4 for a group whose `.cleaned` files are written and fsynced; `old_bases` are the
/// segments it replaces (the first equals `base`).
pub(crate) async fn install(
    dir: &Path,
    base: i64,
    old_bases: &[i64],
    crash_at: Option<CrashPoint>,
) -> Result<(), StorageError> {
    crash(crash_at, CrashPoint::CleanedWritten)?;
    for kind in ["index", "timeindex"] {
        compio::fs::rename(
            path(dir, base, kind, CLEANED_SUFFIX),
            path(dir, base, kind, SWAP_SUFFIX),
        )
        .await?;
    }
    crash(crash_at, CrashPoint::IndexSwapRenamed)?;
    compio::fs::rename(
        path(dir, base, "log", CLEANED_SUFFIX),
        path(dir, base, "log", SWAP_SUFFIX),
    )
    .await?;
    sync_dir(dir).await?;
    crash(crash_at, CrashPoint::SwapCommitted)?;
    for &old in old_bases {
        for kind in KINDS {
            remove_if_present(&path(dir, old, kind, "")).await?;
        }
    }
    crash(crash_at, CrashPoint::OldDeleted)?;
    // The final names need no fsync of their own here: until they are durable a crash leaves
    // the `.swap` names, which recovery completes. The caller fsyncs the directory after
    // releasing the log's append lock.
    finish_swap(dir, base, crash_at, false).await
}

/// Step 4: index `.swap` files, then the log `.swap`, to their final names.
async fn finish_swap(
    dir: &Path,
    base: i64,
    crash_at: Option<CrashPoint>,
    sync: bool,
) -> Result<(), StorageError> {
    for kind in ["index", "timeindex"] {
        let from = path(dir, base, kind, SWAP_SUFFIX);
        if std::fs::exists(&from).unwrap_or(false) {
            compio::fs::rename(&from, path(dir, base, kind, "")).await?;
        }
    }
    crash(crash_at, CrashPoint::IndexInstalled)?;
    compio::fs::rename(
        path(dir, base, "log", SWAP_SUFFIX),
        path(dir, base, "log", ""),
    )
    .await?;
    if sync {
        sync_dir(dir).await?;
    }
    Ok(())
}

fn parse_base(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Last offset of the last batch of a segment file (`None` when empty or unreadable).
async fn last_offset(file: &Path) -> Result<Option<i64>, StorageError> {
    let fd = Fd::open_ro(file).await?;
    let (size, _) = fd.stat().await?;
    let header_len = crate::batch::BATCH_HEADER_LEN as u64;
    let mut pos = 0u64;
    let mut last = None;
    // Header by header; a torn or unparsable tail ends the walk (recovery handles it).
    while pos + header_len <= size {
        let Ok(bytes) = fd.read_exact(pos, header_len as usize).await else {
            break;
        };
        let Ok(h) = BatchHeader::parse(&bytes) else {
            break;
        };
        if pos + h.total_size() as u64 > size {
            break;
        }
        last = Some(h.last_offset());
        pos += h.total_size() as u64;
    }
    Ok(last)
}

/// Finishes committed swaps and removes uncommitted clean files in `dir` (called by
/// `Log::open` before it lists the segments). Returns the bases of completed swaps.
pub(crate) async fn recover_dir(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        if file.ends_with(CLEANED_SUFFIX) {
            cleaned.push(file);
        } else if let Some(stem) = file.strip_suffix(".log.swap") {
            swaps.extend(parse_base(stem));
        } else if file.ends_with(SWAP_SUFFIX) {
            index_swaps.push(file);
        } else if let Some(stem) = file.strip_suffix(".log") {
            logs.extend(parse_base(stem));
        }
    }
    for file in cleaned {
        tracing::warn!(dir = %dir.display(), %file, "removing the files of an unfinished clean");
        remove_if_present(&dir.join(file)).await?;
    }
    for file in index_swaps {
        let base = file.split('.').next().and_then(parse_base);
        if base.is_none_or(|b| !swaps.contains(&b)) {
            tracing::warn!(dir = %dir.display(), %file, "removing an uncommitted index swap");
            remove_if_present(&dir.join(file)).await?;
        }
    }
    for &base in &swaps {
        let swap_log = path(dir, base, "log", SWAP_SUFFIX);
        let Some(last) = last_offset(&swap_log).await? else {
            return Err(StorageError::CorruptState(format!(
                "{} holds no batch",
                swap_log.display()
            )));
        };
        for &old in logs.iter().filter(|&&b| b >= base && b <= last) {
            for kind in KINDS {
                remove_if_present(&path(dir, old, kind, "")).await?;
            }
        }
        tracing::warn!(dir = %dir.display(), segment = base, last_offset = last,
            "completing an interrupted cleaned-segment swap");
        finish_swap(dir, base, None, true).await?;
    }
    if !swaps.is_empty() {
        sync_dir(dir).await?;
    }
    Ok(swaps)
}
