//! The quorum's state machine (openraft's `RaftStateMachine`): committed entries go, record by
//! record and in order, to the [`MetadataApplier`] and to the subscribers; snapshots are the
//! applier's bytes, persisted as `<metadata dir>/snapshot-<last index, 20 digits>.snap`.
//!
//! Snapshot file: `magic "SLQS"`, `version u8 (0)`, `meta length u32`, postcard of openraft's
//! snapshot meta, `data length u64`, data, `crc32c u32` of everything before it. Written to a
//! temp file, fsynced, renamed, directory fsynced; older snapshots are deleted after.
//!
//! Invariants:
//! - The applier state is in memory only; what survives a restart is the newest snapshot plus
//!   the log. openraft restores the snapshot at start, then re-applies the log up to the saved
//!   committed id, so start-up does not replay the whole log.
//! - Subscribers get every record applied after they subscribed, in offset order, through
//!   bounded channels: a full channel makes `apply` wait (back-pressure up to the proposer); a
//!   dropped receiver is forgotten. A snapshot install (the whole state replaced) is announced
//!   as [`MetadataEvent::SnapshotInstalled`].

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};

use super::applier::MetadataApplier;
use super::records::MetadataRecord;
use super::{LogIdOf, QuorumTypes, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use crate::cluster::records::BROKER_EPOCH_AT_COMMIT;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SLQS";
const SNAPSHOT_V0: u8 = 0;

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataEvent {
    /// A committed record at `offset` (the raft log index of its batch).
    Record { offset: u64, record: MetadataRecord },
    /// The applier's state was replaced by a snapshot up to `offset` (a follower that fell
    /// behind the leader's purged log): re-read the image rather than expect the records.
    SnapshotInstalled { offset: Option<u64> },
}

/// The subscribers' senders, shared with the handle that adds them.
pub(crate) type Subscribers = Arc<Mutex<Vec<flume::Sender<MetadataEvent>>>>;

struct Inner {
    applier: Box<dyn MetadataApplier>,
    last_applied: Option<LogIdOf>,
    last_membership: StoredMembershipOf,
    dir: PathBuf,
    /// The newest snapshot on disk: its meta and path.
    current: Option<(SnapshotMetaOf, PathBuf)>,
}

/// The state machine; clones share one state (the snapshot builder is a clone).
pub struct StateMachine {
    inner: Rc<RefCell<Inner>>,
    subscribers: Subscribers,
}

impl Clone for StateMachine {
    fn clone(&self) -> Self {
        StateMachine {
            inner: self.inner.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl StateMachine {
    /// Opens the state machine over `dir`, finding the newest snapshot there (not yet loaded:
    /// openraft installs it at start through `get_current_snapshot`).
    pub fn open(
        dir: &Path,
        applier: Box<dyn MetadataApplier>,
        subscribers: Subscribers,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut newest: Option<(u64, PathBuf)> = None;
        for dirent in fs::read_dir(dir)? {
            let path = dirent?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(index) = name.as_deref().and_then(snapshot_index) else {
                continue;
            };
            if newest.as_ref().is_none_or(|(i, _)| index > *i) {
                newest = Some((index, path));
            }
        }
        let current = match newest {
            Some((_, path)) => {
                let (meta, _) = read_snapshot(&path)?;
                Some((meta, path))
            }
            None => None,
        };
        Ok(StateMachine {
            inner: Rc::new(RefCell::new(Inner {
                applier,
                last_applied: None,
                last_membership: StoredMembershipOf::default(),
                dir: dir.to_owned(),
                current,
            })),
            subscribers,
        })
    }

    async fn publish(&self, event: MetadataEvent) {
        let senders: Vec<_> = lock(&self.subscribers).clone();
        if senders.is_empty() {
            return;
        }
        let mut gone = false;
        for sender in &senders {
            gone |= sender.send_async(event.clone()).await.is_err();
        }
        if gone {
            lock(&self.subscribers).retain(|s| !s.is_disconnected());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock only ever interrupted a Vec push/retain: the list is
    // still a valid list.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn snapshot_index(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

fn snapshot_path(dir: &Path, meta: &SnapshotMetaOf) -> PathBuf {
    let index = meta.last_log_id.map_or(0, |l| l.index);
    dir.join(format!("snapshot-{index:020}.snap"))
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("metadata snapshot {} is corrupt: {what}", path.display()),
    )
}

/// Writes a snapshot file atomically and deletes the older ones.
fn write_snapshot(dir: &Path, meta: &SnapshotMetaOf, data: &[u8]) -> io::Result<PathBuf> {
    let meta_bytes = postcard::to_allocvec(meta).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(data.len() + meta_bytes.len() + 32);
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.push(SNAPSHOT_V0);
    bytes.extend_from_slice(&(meta_bytes.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&meta_bytes);
    bytes.extend_from_slice(&(data.len() as u64).to_be_bytes());
    bytes.extend_from_slice(data);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let path = snapshot_path(dir, meta);
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    for dirent in fs::read_dir(dir)? {
        let old = dirent?.path();
        let is_snapshot = old
            .file_name()
            .and_then(|n| snapshot_index(&n.to_string_lossy()))
            .is_some();
        if is_snapshot && old != path {
            fs::remove_file(&old)?;
        }
    }
    Ok(path)
}

fn read_snapshot(path: &Path) -> io::Result<(SnapshotMetaOf, Vec<u8>)> {
    let bytes = fs::read(path)?;
    if bytes.len() < 4 + 1 + 4 + 8 + 4
        || bytes.get(..4) != Some(SNAPSHOT_MAGIC)
        || bytes.get(4) != Some(&SNAPSHOT_V0)
    {
        return Err(corrupt(path, "bad header"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let meta_len = super::be_u32_at(body, 5).ok_or_else(|| corrupt(path, "meta length"))? as usize;
    let meta_end = 9usize
        .checked_add(meta_len)
        .filter(|end| end + 8 <= body.len())
        .ok_or_else(|| corrupt(path, "meta length"))?;
    let meta_bytes = body.get(9..meta_end).ok_or_else(|| corrupt(path, "meta"))?;
    let meta: SnapshotMetaOf =
        postcard::from_bytes(meta_bytes).map_err(|_| corrupt(path, "meta"))?;
    let len = super::be_u64_at(body, meta_end).ok_or_else(|| corrupt(path, "data length"))?;
    let data = body.get(meta_end + 8..).unwrap_or_default();
    if len != data.len() as u64 {
        return Err(corrupt(path, "data length"));
    }
    Ok((meta, data.to_vec()))
}

impl RaftSnapshotBuilder<QuorumTypes> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf, io::Error> {
        let mut inner = self.inner.borrow_mut();
        let data = inner.applier.snapshot();
        let meta = SnapshotMetaOf {
            last_log_id: inner.last_applied,
            last_membership: inner.last_membership.clone(),
        };
        let path = write_snapshot(&inner.dir, &meta, &data)?;
        tracing::info!(
            last_index = ?meta.last_log_id.map(|l| l.index),
            bytes = data.len(),
            "metadata snapshot written"
        );
        inner.current = Some((meta.clone(), path));
        Ok(SnapshotOf {
            meta,
            snapshot: data,
        })
    }
}

/// Kafka's broker epoch is the offset of the broker's `RegisterBrokerRecord`: a record
/// proposed with [`BROKER_EPOCH_AT_COMMIT`] gets the index of the entry it committed in. A
/// record with an epoch already (written by an older Sluice, or replayed from a snapshot) keeps
/// it. Deterministic, so every member and every broker applies the same epoch.
pub fn stamp_broker_epochs(records: &mut [MetadataRecord], offset: u64) {
    for record in records {
        if let MetadataRecord::RegisterBroker(r) = record {
            if r.broker_epoch == BROKER_EPOCH_AT_COMMIT {
                r.broker_epoch = i64::try_from(offset).unwrap_or(i64::MAX);
            }
        }
    }
}

impl RaftStateMachine<QuorumTypes> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf>, StoredMembershipOf), io::Error> {
        let inner = self.inner.borrow();
        Ok((inner.last_applied, inner.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<QuorumTypes>, io::Error>> + Unpin,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let offset = entry.log_id.index;
            let records = {
                let mut inner = self.inner.borrow_mut();
                inner.last_applied = Some(entry.log_id);
                let records = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(mut batch) => {
                        stamp_broker_epochs(&mut batch.0, offset);
                        for record in &batch.0 {
                            inner.applier.apply(offset, record);
                        }
                        batch.0
                    }
                    EntryPayload::Membership(membership) => {
                        inner.last_membership =
                            StoredMembershipOf::new(Some(entry.log_id), membership);
                        Vec::new()
                    }
                };
                inner.applier.applied(offset);
                records
            };
            for record in records {
                self.publish(MetadataEvent::Record { offset, record }).await;
            }
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        {
            let mut inner = self.inner.borrow_mut();
            inner
                .applier
                .restore(&snapshot)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            inner.last_applied = meta.last_log_id;
            inner.last_membership = meta.last_membership.clone();
            // At start openraft installs the snapshot it just read from disk: no rewrite.
            let on_disk = inner.current.as_ref().is_some_and(|(m, _)| m == meta);
            if !on_disk {
                let path = write_snapshot(&inner.dir, meta, &snapshot)?;
                inner.current = Some((meta.clone(), path));
            }
        }
        let offset = meta.last_log_id.map(|l| l.index);
        self.publish(MetadataEvent::SnapshotInstalled { offset })
            .await;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf>, io::Error> {
        let path = match &self.inner.borrow().current {
            Some((_, path)) => path.clone(),
            None => return Ok(None),
        };
        let (meta, data) = read_snapshot(&path)?;
        Ok(Some(SnapshotOf {
            meta,
            snapshot: data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_files_round_trip_and_detect_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = SnapshotMetaOf {
            last_log_id: Some(openraft::LogId::new(
                openraft::impls::leader_id_adv::LeaderId {
                    term: 2,
                    node_id: 1,
                },
                17,
            )),
            last_membership: StoredMembershipOf::default(),
        };
        let old = SnapshotMetaOf {
            last_log_id: None,
            last_membership: StoredMembershipOf::default(),
        };
        let old_path = write_snapshot(dir.path(), &old, b"old").expect("write old");
        let path = write_snapshot(dir.path(), &meta, b"image bytes").expect("write");
        assert!(!old_path.exists(), "older snapshots are deleted");
        let (read_meta, data) = read_snapshot(&path).expect("read");
        assert_eq!(read_meta, meta);
        assert_eq!(data, b"image bytes");
        let mut bytes = fs::read(&path).expect("read file");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        fs::write(&path, &bytes).expect("write file");
        assert_eq!(
            read_snapshot(&path).expect_err("corrupt").kind(),
            io::ErrorKind::InvalidData
        );
        fs::write(&path, &bytes[..3]).expect("write file");
        assert!(read_snapshot(&path).is_err());
    }
}
