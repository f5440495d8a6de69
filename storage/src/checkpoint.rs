//! The small persistent state of a partition (`partition.checkpoint` in its directory):
//! log start offset, recovery point and whether the last shutdown was clean.
//!
//! File format: crc32c u32 BE of the payload, payload length u32 BE, then the payload
//! (rkyv archive of `Checkpoint`). Written atomically: temp file, fsync, rename, fsync dir;
//! so a reader sees either the old or the new state, never a mix. A file that fails its CRC
//! is reported as corrupt and the caller falls back to a full recovery.

use std::path::{Path, PathBuf};

use crate::io::{sync_dir, Fd};

/// File name of the checkpoint inside the partition directory.
pub const CHECKPOINT_FILE: &str = "partition.checkpoint";
const TEMP_SUFFIX: &str = ".tmp";
const FRAME_LEN: usize = 8;
/// No sane checkpoint is bigger; a larger length field means corruption.
const PAYLOAD_LEN_MAX: usize = 4096;

/// Persistent per-partition state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// First offset visible to readers (DeleteRecords / retention).
    pub log_start_offset: i64,
    /// Every segment wholly below this offset was fsynced (data and indexes).
    pub recovery_point: i64,
    /// Written by `close`: the active segment's indexes and tail can be trusted.
    pub clean_shutdown: bool,
}

/// Errors reading or writing the checkpoint file.
#[derive(thiserror::Error, Debug)]
pub enum CheckpointError {
    #[error("checkpoint i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("checkpoint corrupt: {0}")]
    Corrupt(String),
}

impl From<CheckpointError> for crate::error::StorageError {
    fn from(e: CheckpointError) -> Self {
        match e {
            CheckpointError::Io(io) => crate::error::StorageError::Io(io),
            CheckpointError::Corrupt(m) => crate::error::StorageError::CorruptState(m),
        }
    }
}

fn path_in(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// Encodes a checkpoint into its file bytes.
pub fn encode(cp: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(cp)
        .map_err(|e| CheckpointError::Corrupt(format!("serialize: {e}")))?;
    let mut out = Vec::with_capacity(FRAME_LEN + payload.len());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and verifies checkpoint file bytes.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let field = |at: usize| -> Result<u32, CheckpointError> {
        bytes
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| CheckpointError::Corrupt(format!("{} bytes", bytes.len())))
    };
    let crc = field(0)?;
    let len = field(4)? as usize;
    if len > PAYLOAD_LEN_MAX || bytes.len() != FRAME_LEN + len {
        return Err(CheckpointError::Corrupt(format!(
            "payload length {len}, file {} bytes",
            bytes.len()
        )));
    }
    let payload = bytes.get(FRAME_LEN..).unwrap_or(&[]);
    if crc32c::crc32c(payload) != crc {
        return Err(CheckpointError::Corrupt("crc mismatch".into()));
    }
    // rkyv needs the archive aligned; a file read gives no such guarantee.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<Checkpoint, rkyv::rancor::Error>(&aligned)
        .map_err(|e| CheckpointError::Corrupt(format!("deserialize: {e}")))
}

/// Reads the checkpoint of `dir`; `Ok(None)` when there is none.
pub async fn read(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = path_in(dir);
    let fd = match Fd::open_ro(&path).await {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bytes = fd.read_upto(0, FRAME_LEN + PAYLOAD_LEN_MAX + 1).await?;
    decode(&bytes).map(Some)
}

/// Atomically replaces the checkpoint of `dir`.
pub async fn write(dir: &Path, cp: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = encode(cp)?;
    let tmp = dir.join(format!("{CHECKPOINT_FILE}{TEMP_SUFFIX}"));
    let fd = compio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .await?;
    let fd = Fd(std::sync::Arc::new(
        std::os::fd::AsFd::as_fd(&fd).try_clone_to_owned()?,
    ));
    fd.write_all(bytes, 0).await?;
    fd.sync(true).await?;
    drop(fd);
    compio::fs::rename(&tmp, path_in(dir)).await?;
    sync_dir(dir).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_corruption() {
        let cp = Checkpoint {
            log_start_offset: 42,
            recovery_point: 1000,
            clean_shutdown: true,
        };
        let mut bytes = encode(&cp).unwrap();
        assert_eq!(decode(&bytes).unwrap(), cp);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(decode(&bytes), Err(CheckpointError::Corrupt(_))));
        assert!(matches!(
            decode(&bytes[..5]),
            Err(CheckpointError::Corrupt(_))
        ));
        assert!(matches!(decode(&[]), Err(CheckpointError::Corrupt(_))));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let rt = compio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            assert_eq!(read(dir.path()).await.unwrap(), None);
            let a = Checkpoint {
                log_start_offset: 1,
                recovery_point: 2,
                clean_shutdown: false,
            };
            write(dir.path(), &a).await.unwrap();
            assert_eq!(read(dir.path()).await.unwrap(), Some(a));
            let b = Checkpoint {
                log_start_offset: 5,
                recovery_point: 9,
                clean_shutdown: true,
            };
            write(dir.path(), &b).await.unwrap();
            assert_eq!(read(dir.path()).await.unwrap(), Some(b));
        });
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![CHECKPOINT_FILE.to_string()]);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage!garbage").unwrap();
        let rt = compio::runtime::Runtime::new().unwrap();
        assert!(matches!(
            rt.block_on(read(dir.path())),
            Err(CheckpointError::Corrupt(_))
        ));
    }
}
