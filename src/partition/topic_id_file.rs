//! Kafka's `partition.metadata` (`PartitionMetadataFile`): the id of the topic a partition
//! directory was created for, so a directory left behind by another topic of the same name (the
//! registry lost or emptied, a deletion that did not finish) is never handed to a new topic.
//! Kafka treats such a log as stray; Sluice moves it aside as `<topic>-<p>.<id>-stray` (kept for
//! the operator, never opened again) and the new topic starts empty.
//!
//! Invariants: after `claim` the directory exists and names `topic_id`; only a directory whose
//! file names another topic id is moved aside; one without the file (written before Sluice kept
//! it) or with a damaged one is adopted, as Kafka adopted logs from before topic ids;
//! the file is replaced atomically (`atomic_file`), and everything here runs on a blocking thread.

use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The file's name in the partition directory (Kafka's).
pub const FILE: &str = "partition.metadata";

/// Longest file name Linux file systems take, in bytes.
const FILE_NAME_BYTES_MAX: usize = 255;

/// Kafka's contents: `version: 0` and the topic id as Kafka prints a `Uuid` (URL-safe Base64 of
/// its 16 bytes, no padding).
fn render(topic_id: u128) -> String {
    let id = URL_SAFE_NO_PAD.encode(topic_id.to_be_bytes());
    format!("version: 0\ntopic_id: {id}\n")
}

/// The topic id the file names; `None` when it does not parse (then it names no topic: stray).
fn parse(text: &str) -> Option<u128> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "version: 0" {
        return None;
    }
    let id = lines.next()?.trim().strip_prefix("topic_id:")?.trim();
    let bytes: [u8; 16] = URL_SAFE_NO_PAD.decode(id).ok()?.try_into().ok()?;
    Some(u128::from_be_bytes(bytes))
}

/// What `claim` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The directory is this topic's (new, adopted, or already marked).
    Ours,
    /// It belonged to another topic and was moved to this path.
    MovedAside(PathBuf),
}

/// Makes `dir` the directory of topic `topic_id`: a directory marked with another topic's id is
/// renamed to `stray_name` next to it first.
pub fn claim(dir: &Path, topic_id: u128, stray_name: &str) -> io::Result<Claimed> {
    let file = dir.join(FILE);
    let mut outcome = Claimed::Ours;
    let named = match std::fs::read_to_string(&file) {
        Ok(text) => parse(&text),
        // No file, or one that names no topic (damaged): adopted and marked, never moved away
        // on a guess, so a damaged mark cannot hide a live topic's records.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidData
            ) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    match named {
        Some(id) if id == topic_id => return Ok(Claimed::Ours),
        Some(_) => {
            let aside = dir.with_file_name(stray_name);
            std::fs::rename(dir, &aside)?;
            outcome = Claimed::MovedAside(aside);
        }
        None => {}
    }
    std::fs::create_dir_all(dir)?;
    crate::atomic_file::write(&file, render(topic_id).as_bytes())?;
    Ok(outcome)
}

/// `<topic>-<partition>.<id>-stray` (Kafka's `LocalLog.logStrayDirName`), the topic part cut so
/// the name fits in 255 bytes.
pub fn stray_dir_name(topic: &str, partition: u32, unique: u128) -> String {
    let suffix = format!("-{partition}.{unique:032x}-stray");
    let mut keep = topic
        .len()
        .min(FILE_NAME_BYTES_MAX.saturating_sub(suffix.len()));
    while !topic.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", topic.get(..keep).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_kafkas_and_round_trips() {
        let id = 0x0123_4567_89ab_cdef_0011_2233_4455_6677_u128;
        let text = render(id);
        assert!(text.starts_with("version: 0\ntopic_id: "), "{text}");
        assert_eq!(parse(&text), Some(id));
        assert_eq!(
            parse("version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n"),
            None
        );
        assert_eq!(parse(""), None);
    }

    #[test]
    fn another_topics_directory_is_moved_aside() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0");
        // New directory: created and marked.
        assert_eq!(claim(&dir, 1, "x").unwrap(), Claimed::Ours);
        std::fs::write(dir.join("00000000000000000000.log"), b"old").unwrap();
        // Same topic again: kept as it is.
        assert_eq!(claim(&dir, 1, "x").unwrap(), Claimed::Ours);
        assert!(dir.join("00000000000000000000.log").exists());
        // Another topic of the same name: the old directory goes aside, the new one is empty.
        let stray = stray_dir_name("t", 0, 7);
        let aside = data.path().join(&stray);
        assert_eq!(
            claim(&dir, 2, &stray).unwrap(),
            Claimed::MovedAside(aside.clone())
        );
        assert!(aside.join("00000000000000000000.log").exists());
        assert!(!dir.join("00000000000000000000.log").exists());
        assert_eq!(claim(&dir, 2, "y").unwrap(), Claimed::Ours);
        // A directory from before the file existed is adopted.
        let old = data.path().join("u-0");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("00000000000000000000.log"), b"kept").unwrap();
        assert_eq!(claim(&old, 3, "z").unwrap(), Claimed::Ours);
        assert!(old.join("00000000000000000000.log").exists());
        // A damaged mark is not another topic's: adopted, not moved away.
        std::fs::write(old.join(FILE), b"").unwrap();
        assert_eq!(claim(&old, 4, "w").unwrap(), Claimed::Ours);
        assert!(old.join("00000000000000000000.log").exists());
    }

    #[test]
    fn stray_names_fit_in_255_bytes() {
        let name = stray_dir_name(&"a".repeat(249), 99_999, u128::MAX);
        assert!(name.len() <= 255 && name.ends_with("-stray"), "{name}");
    }
}
