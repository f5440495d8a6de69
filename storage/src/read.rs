//! Fetch results: byte ranges of segment files, plus the read algorithm that picks them.
//!
//! A `ReadSlice` owns shared fds, so it stays valid (and `Send`) after the segment is rolled,
//! truncated or deleted, and can be spliced or copied by another shard. Reads work from a
//! snapshot of the committed sizes, so they never wait for (or see half of) an append.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::batch::BatchHeader;
use crate::error::StorageError;
use crate::io::Fd;
use crate::segment::{HeaderReader, Segment};

/// A byte range of one segment file.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: u32,
}

/// Whole batches, as ranges of segment files, in offset order.
#[derive(Clone, Debug, Default)]
pub struct ReadSlice {
    pub ranges: Vec<FileRange>,
    pub total_bytes: u32,
}

impl ReadSlice {
    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.total_bytes == 0
    }

    /// Copy path: reads the ranges into one buffer (io_uring on the current thread).
    pub async fn read_bytes(&self) -> Result<Bytes, StorageError> {
        let mut out = BytesMut::with_capacity(self.total_bytes as usize);
        for r in &self.ranges {
            out = Fd(r.fd.clone())
                .read_exact_append(out, r.position, r.len as usize)
                .await?;
        }
        Ok(out.freeze())
    }
}

/// One segment as seen when the read started.
pub(crate) struct SegmentView {
    pub seg: Rc<Segment>,
    pub size: u64,
}

/// Read limits.
pub(crate) struct ReadRequest {
    pub offset: i64,
    pub max_bytes: u32,
    pub min_one_batch: bool,
    /// Exclusive end offset.
    pub upper_bound: i64,
    pub index_interval_bytes: u32,
}

/// Collects whole batches starting at the one holding `req.offset`, across segments.
///
/// A damaged segment never hides what precedes the damage: batches collected before it are
/// returned; a torn segment ends where its last whole batch ends (an offset beyond it is
/// looked for in the next segment, as Kafka does); only a read whose very first batch is
/// unreadable fails (`DamagedSegment`, CORRUPT_MESSAGE to the client).
pub(crate) async fn read_segments(
    views: &[SegmentView],
    req: &ReadRequest,
) -> Result<ReadSlice, StorageError> {
    let mut slice = ReadSlice::default();
    let mut first = true;
    for view in views {
        if view.seg.base >= req.upper_bound {
            break;
        }
        match read_segment(view, req, first, &mut slice).await {
            Ok(Some(stop)) => {
                first = false;
                if stop {
                    break;
                }
            }
            Ok(None) => {}
            Err(e @ StorageError::DamagedSegment { .. }) if !slice.is_empty() => {
                tracing::debug!(error = %e, "read stops at a damaged batch");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(slice)
}

/// Adds the batches of one segment to `slice`; `None` when the segment holds nothing at or
/// after the offset (the read goes on in the next one), else whether the read must stop.
async fn read_segment(
    view: &SegmentView,
    req: &ReadRequest,
    first: bool,
    slice: &mut ReadSlice,
) -> Result<Option<bool>, StorageError> {
    {
        view.seg.ensure_indexes(req.index_interval_bytes).await?;
        let start = if first {
            match view.seg.locate(req.offset, view.size).await? {
                Some((pos, h)) => {
                    if h.base_offset < req.offset {
                        verify_crc(&view.seg, pos, &h).await?;
                    }
                    pos
                }
                None => return Ok(None),
            }
        } else {
            0
        };
        let budget = u64::from(req.max_bytes).saturating_sub(u64::from(slice.total_bytes));
        let one_forced = req.min_one_batch && slice.total_bytes == 0;
        let (end, stop) = batch_end(view, start, budget, one_forced, req.upper_bound).await?;
        if end > start {
            slice.ranges.push(FileRange {
                fd: view.seg.log.get().await?.0,
                position: start,
                len: (end - start) as u32,
            });
            slice.total_bytes = slice.total_bytes.saturating_add((end - start) as u32);
        }
        Ok(Some(stop))
    }
}

/// A fetch from inside a batch is what a client does when it could not decode all of that
/// batch (it asks again from the first record it lacks); Kafka would hand it the same bytes
/// forever. So that batch's CRC is checked (one read of one batch, only for such fetches):
/// a mismatch is damage on disk, refused as CORRUPT_MESSAGE and logged.
async fn verify_crc(seg: &Segment, pos: u64, h: &BatchHeader) -> Result<(), StorageError> {
    let bytes = seg.log.get().await?.read_exact(pos, h.total_size()).await?;
    check_read_crc(seg, pos, h, &bytes)
}

/// The CRC check of a batch read back from `seg` at `pos` before anything decodes it (the
/// read-side pair of the check `Log::append` asserts before writing): a mismatch is damage on
/// disk, `DamagedSegment` (CORRUPT_MESSAGE to a client), logged once per segment.
pub(crate) fn check_read_crc(
    seg: &Segment,
    pos: u64,
    h: &BatchHeader,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let crc = crate::batch::compute_crc(bytes);
    if crc == h.crc {
        return Ok(());
    }
    let file = crate::segment::log_path(&seg.dir, seg.base);
    let reason = format!("crc mismatch: header {:#010x}, computed {crc:#010x}", h.crc);
    if !seg.damage_logged.replace(true) {
        tracing::warn!(file = %file.display(), position = pos, bytes = h.total_size(),
            offsets = %format!("{}..={}", h.base_offset, h.last_offset()), %reason,
            "damaged segment: a stored batch fails its CRC");
    }
    Err(StorageError::DamagedSegment {
        file: file.display().to_string(),
        position: pos,
        reason,
    })
}

/// End position of the run of whole batches from `start` that fits `budget` bytes (or the
/// first batch when `one_forced`) and stays below `upper_bound`; also whether the read must
/// stop here (budget or bound reached) rather than continue in the next segment.
async fn batch_end(
    view: &SegmentView,
    start: u64,
    budget: u64,
    one_forced: bool,
    upper_bound: i64,
) -> Result<(u64, bool), StorageError> {
    let seg = &view.seg;
    let mut reader = HeaderReader::new(seg, view.size);
    let mut pos = start;
    // The first batch decides `one_forced`.
    match reader.header_at(pos).await? {
        None => return Ok((pos, false)),
        Some(h) => {
            let size = h.total_size() as u64;
            if h.last_offset() >= upper_bound {
                return Ok((pos, true));
            }
            if size > budget && !one_forced {
                return Ok((pos, true));
            }
            pos += size;
        }
    }
    // Jump over batches the index proves are in range: everything before an indexed batch
    // whose last offset is below the bound and whose position fits the budget.
    let jump = seg.indexes.borrow().as_ref().map_or(0, |idx| {
        let limit = (start + budget).min(view.size.saturating_sub(1));
        let n = idx.offsets.partition_point(|&(o, p)| {
            u64::from(p) <= limit && seg.base + i64::from(o) < upper_bound
        });
        n.checked_sub(1)
            .and_then(|i| idx.offsets.get(i))
            .map_or(0, |&(_, p)| u64::from(p))
    });
    if jump > pos {
        pos = jump;
    }
    loop {
        match reader.header_at(pos).await {
            // Damage after the first batch: serve what precedes it (logged by the reader).
            Err(StorageError::DamagedSegment { .. }) => return Ok((pos, true)),
            Err(e) => return Err(e),
            Ok(None) => return Ok((pos, false)),
            Ok(Some(h)) => {
                let size = h.total_size() as u64;
                if h.last_offset() >= upper_bound || pos + size - start > budget {
                    return Ok((pos, true));
                }
                pos += size;
            }
        }
    }
}
