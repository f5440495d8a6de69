//! Atomic replacement of small files (the topic registry, the producer-id block): write a temp
//! file next to the target, fsync it, rename it over the target, fsync the directory.
//!
//! Invariants: a reader, or a restart after a crash at any point, sees the old contents or the
//! new ones, never a mix; the temp file is `<file name>.tmp` in the target's directory, because
//! rename is atomic only within one filesystem.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically, creating its directory when missing. Blocks: call
/// it from a blocking thread (`write_off_thread`) when on a shard.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?
        .to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// `write` on a blocking thread, so the calling shard keeps serving meanwhile.
pub async fn write_off_thread(path: PathBuf, bytes: Vec<u8>) -> io::Result<()> {
    compio::runtime::spawn_blocking(move || write(&path, &bytes))
        .await
        .unwrap_or_else(|_| Err(io::Error::other("writer thread failed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.toml");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.toml")]);
    }
}
