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

/// A value shared by every shard and kept in one file: readers take the published copy;
/// changes are serialised, applied to a copy, written atomically, and only then published
/// (the ACL and SCRAM credential stores).
#[derive(Debug)]
pub struct Persisted<T> {
    path: PathBuf,
    value: std::sync::RwLock<T>,
    /// Serialises changes (persist, then publish) across shards.
    change_lock: futures_util::lock::Mutex<()>,
}

impl<T: Clone> Persisted<T> {
    pub fn new(path: PathBuf, value: T) -> Self {
        Self {
            path,
            value: std::sync::RwLock::new(value),
            change_lock: futures_util::lock::Mutex::new(()),
        }
    }

    /// Runs `f` on the published value.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn snapshot(&self) -> T {
        self.read(T::clone)
    }

    /// Applies `change` to a copy, writes `render(copy)`, then publishes the copy; nothing is
    /// written when `change` reports no change (`false`).
    pub async fn modify<R>(
        &self,
        change: impl FnOnce(&mut T) -> (R, bool),
        render: impl FnOnce(&T) -> String,
    ) -> io::Result<R> {
        let _serialised = self.change_lock.lock().await;
        let mut next = self.snapshot();
        let (result, changed) = change(&mut next);
        if changed {
            write_off_thread(self.path.clone(), render(&next).into_bytes()).await?;
            *self.value.write().unwrap_or_else(|e| e.into_inner()) = next;
        }
        Ok(result)
    }
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
