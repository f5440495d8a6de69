//! The bytes one append writes, without copying the batches it received: a leader's batches
//! get the fields the broker owns (base offset, partition leader epoch, and max timestamp /
//! LogAppendTime with the CRC) stamped into their fixed 61-byte headers only.
//!
//! Three forms. `Unstamped`: a follower's batches, written as the leader stamped them, as one
//! iovec into the received buffer (nothing to stamp, nothing copied). `Owned`: a buffer only
//! this append holds (the caller's `BytesMut`, or a received `Bytes` nobody else references):
//! stamped in place, written as one iovec. `Shared`: a slice of a buffer others still hold (in the broker, always: a Produce request's
//! records are a slice of the connection's read buffer): each batch's header is copied (61
//! bytes, the only bytes copied) and stamped, and the write takes two iovecs per batch, the
//! stamped header and the received rest, which stays referenced (a `Bytes`) until the write
//! completes. Either way the file receives exactly the bytes a stamped contiguous copy would
//! hold (`stamp_tests` below).
//!
//! Invariants: records (everything after a batch's header) are written as received; a
//! stamped field covered by the CRC (attributes to end) comes with the CRC recomputed over
//! the stamped header and the untouched rest (`batch::compute_crc_parts`). Bounded: an
//! append of more than `SHARED_BATCHES_MAX` shared batches is copied once instead (counted
//! like any copy), so a write never needs more than `APPEND_IOVECS_MAX` iovecs.

use bytes::{Bytes, BytesMut};
use compio::buf::IoVectoredBuf;
use smallvec::SmallVec;

use crate::batch::{BatchInfo, BATCH_HEADER_LEN};

/// Most iovecs one segment write takes (io_uring WRITEV and `pwritev` refuse more than
/// `UIO_MAXIOV`, 1024; the inline `pwritev` takes them from a stack array of this size).
pub(crate) const APPEND_IOVECS_MAX: usize = 256;
/// Most batches of one shared append written from the received buffer (two iovecs each).
/// Produce v3+ carries one batch per partition, so client appends stay far below it.
const SHARED_BATCHES_MAX: usize = APPEND_IOVECS_MAX / 2;

/// One batch's fixed header, copied out of a shared buffer to be stamped.
type Header = [u8; BATCH_HEADER_LEN];

/// One batch of a shared append: its stamped header copy and its size as validation parsed
/// it (the write and the pre-write check take the size from here, not from the header).
#[derive(Clone, Copy)]
pub(crate) struct SharedBatch {
    header: Header,
    size: usize,
}

/// See the module documentation.
pub(crate) enum AppendBytes {
    Unstamped(Bytes),
    Owned(BytesMut),
    Shared { body: Bytes, headers: Headers },
}

/// The stamped headers of a shared append: inline for the usual single batch (no heap
/// allocation per produced batch).
pub(crate) enum Headers {
    One(SharedBatch),
    Many(Vec<SharedBatch>),
}

impl Headers {
    fn as_slice(&self) -> &[SharedBatch] {
        match self {
            Headers::One(h) => std::slice::from_ref(h),
            Headers::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [SharedBatch] {
        match self {
            Headers::One(h) => std::slice::from_mut(h),
            Headers::Many(v) => v,
        }
    }
}

impl AppendBytes {
    /// A received buffer of validated batches (`infos` describe it): taken as `Owned` when
    /// nobody else holds it, else `Shared` with each header copied. Returns the bytes copied
    /// (61 per shared batch; all of them past `SHARED_BATCHES_MAX` batches).
    pub(crate) fn from_received(bytes: Bytes, infos: &[BatchInfo]) -> (AppendBytes, u64) {
        let bytes = match bytes.try_into_mut() {
            Ok(owned) => return (AppendBytes::Owned(owned), 0),
            Err(shared) => shared,
        };
        if infos.len() > SHARED_BATCHES_MAX {
            let copied = bytes.len() as u64;
            return (AppendBytes::Owned(BytesMut::from(&bytes[..])), copied);
        }
        let batch_at = |at: usize, size: usize| {
            let mut header = [0u8; BATCH_HEADER_LEN];
            if let Some(src) = bytes.get(at..at + BATCH_HEADER_LEN) {
                header.copy_from_slice(src);
            }
            SharedBatch { header, size }
        };
        let headers = match infos {
            [one] => Headers::One(batch_at(0, one.size)),
            _ => {
                let mut at = 0usize;
                let mut many = Vec::with_capacity(infos.len());
                for info in infos {
                    many.push(batch_at(at, info.size));
                    at += info.size;
                }
                Headers::Many(many)
            }
        };
        let copied = (infos.len() * BATCH_HEADER_LEN) as u64;
        let body = bytes;
        (AppendBytes::Shared { body, headers }, copied)
    }

    /// Bytes the append writes.
    pub(crate) fn len(&self) -> usize {
        match self {
            AppendBytes::Unstamped(b) => b.len(),
            AppendBytes::Owned(b) => b.len(),
            AppendBytes::Shared { body, .. } => body.len(),
        }
    }

    /// Iovecs the append's write takes.
    pub(crate) fn iovec_count(&self) -> usize {
        match self {
            AppendBytes::Unstamped(_) | AppendBytes::Owned(_) => 1,
            AppendBytes::Shared { headers, .. } => headers.as_slice().len() * 2,
        }
    }

    /// Calls `stamp` with each batch as its mutable fixed header and its (unchanged) rest,
    /// in order; `sizes` are the batches' sizes (from validation; a shared append kept them
    /// with its headers). Only a leader's append is stamped: an `Unstamped` one reaching here
    /// is a broken invariant.
    pub(crate) fn stamp_each(
        &mut self,
        sizes: impl Iterator<Item = usize>,
        mut stamp: impl FnMut(&mut [u8], &[u8]),
    ) {
        let mut at = 0usize;
        match self {
            AppendBytes::Unstamped(_) => crate::invariant::violated(
                file!(),
                line!(),
                format_args!("a follower's batches were given to the leader's stamp"),
            ),
            AppendBytes::Owned(buf) => {
                for size in sizes {
                    let Some(batch) = buf.get_mut(at..at + size) else {
                        break;
                    };
                    let (header, rest) = batch.split_at_mut(BATCH_HEADER_LEN.min(size));
                    stamp(header, rest);
                    at += size;
                }
            }
            AppendBytes::Shared { body, headers } => {
                for one in headers.as_mut_slice() {
                    let rest = body
                        .get(at + BATCH_HEADER_LEN..at + one.size)
                        .unwrap_or(&[]);
                    stamp(&mut one.header, rest);
                    at += one.size;
                }
            }
        }
    }

    /// Each batch as its fixed header and the rest, as they will be written, cut at the
    /// sizes validation parsed (`infos`: this append's batches, in order; a shared append
    /// kept the same sizes with its headers). Ends early where the bytes run out.
    pub(crate) fn batches<'a>(
        &'a self,
        infos: &'a [BatchInfo],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let (owned, shared) = self.parts();
        let owned = owned.into_iter().flat_map(move |buf| {
            let mut at = 0usize;
            infos.iter().map_while(move |info| {
                let batch = buf.get(at..at + info.size)?;
                at += info.size;
                Some(batch.split_at(BATCH_HEADER_LEN.min(info.size)))
            })
        });
        owned.chain(shared)
    }

    /// The slices the write takes, in order.
    fn slices(&self) -> impl Iterator<Item = &[u8]> {
        let (owned, shared) = self.parts();
        let shared = shared.flat_map(|(header, rest)| [header, rest]);
        owned.into_iter().chain(shared)
    }

    /// The whole buffer (owned or unstamped), or the shared batches as (stamped header,
    /// received rest).
    fn parts(&self) -> (Option<&[u8]>, SharedBatches<'_>) {
        match self {
            AppendBytes::Unstamped(b) => (Some(b), SharedBatches::default()),
            AppendBytes::Owned(b) => (Some(b), SharedBatches::default()),
            AppendBytes::Shared { body, headers } => (
                None,
                SharedBatches {
                    headers: headers.as_slice(),
                    body,
                    at: 0,
                },
            ),
        }
    }
}

/// Iterator over a shared append's batches.
#[derive(Default)]
struct SharedBatches<'a> {
    headers: &'a [SharedBatch],
    body: &'a [u8],
    at: usize,
}

impl<'a> Iterator for SharedBatches<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (one, others) = self.headers.split_first()?;
        self.headers = others;
        let rest = self
            .body
            .get(self.at + BATCH_HEADER_LEN..self.at + one.size)
            .unwrap_or(&[]);
        self.at += one.size;
        Some((&one.header[..], rest))
    }
}

/// The appends of one segment write, as the vectored write takes them (inline for one).
pub(crate) struct WriteBufs(pub SmallVec<[AppendBytes; 1]>);

impl IoVectoredBuf for WriteBufs {
    fn iter_slice(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().flat_map(AppendBytes::slices)
    }
}

#[cfg(test)]
#[path = "stamp_tests.rs"]
mod stamp_tests;
