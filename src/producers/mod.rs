//! Idempotent producers (KIP-98 without transactions): producer id allocation for
//! InitProducerId (`ids`), per-partition sequence/duplicate state (`state`) and its rebuild from
//! the log when a partition opens (`rebuild`).
//!
//! Invariants: producer state lives on the partition's owning shard only; an append of batches
//! carrying a producer id is checked and written under the partition's producer lock, so no
//! other idempotent append of that partition runs between the check and the write; batches
//! without a producer id (-1) skip all of this.

pub mod ids;
pub mod rebuild;
pub mod snapshot;
pub mod state;
pub mod txn;
pub mod verify;

pub use ids::{IdAllocator, IdBlock, IdError};
pub use state::{BatchIdent, BatchMeta, Plan, ProducerId, ProducerStates, SequenceError};
pub use txn::{CompletedTxn, EndTxnMarker, MarkerError, ProducerView};

/// One batch of a produce payload as the producer check sees it.
#[derive(Debug, Clone, Copy)]
pub struct ScannedBatch {
    /// `None` for batches without a producer id (and control batches).
    pub ident: Option<BatchIdent>,
    pub offset_delta: i32,
}

/// Reads the headers of the batches in `records`; `None` when the framing or a header is bad
/// (the log's own validation then rejects the append with the precise error).
pub fn scan_batches(records: &[u8]) -> Option<Vec<ScannedBatch>> {
    let mut out = Vec::new();
    for batch in storage::split_batches(records) {
        let header = storage::BatchHeader::parse(batch.ok()?).ok()?;
        if header.last_offset_delta < 0 {
            return None;
        }
        out.push(ScannedBatch {
            ident: BatchIdent::from_header(&header),
            offset_delta: header.last_offset_delta,
        });
    }
    Some(out)
}

/// `scan_batches` of batches storage already validated: their headers as parsed then, not
/// parsed again.
pub fn scan_valid(infos: &[storage::batch::BatchInfo]) -> Vec<ScannedBatch> {
    infos
        .iter()
        .map(|i| ScannedBatch {
            ident: BatchIdent::from_header(&i.header),
            offset_delta: i.header.last_offset_delta,
        })
        .collect()
}

/// Where each appended batch landed, given the append's base offset (offsets are assigned
/// consecutively, `offset_delta + 1` per batch, as the log does).
pub fn placements(
    batches: &[ScannedBatch],
    base_offset: i64,
    log_append_time_ms: i64,
) -> Vec<(BatchIdent, BatchMeta)> {
    let mut base = base_offset;
    let mut out = Vec::new();
    for batch in batches {
        let last = base + i64::from(batch.offset_delta);
        if let Some(ident) = batch.ident {
            out.push((
                ident,
                BatchMeta {
                    first_seq: ident.first_seq,
                    last_seq: ident.last_seq(),
                    base_offset: base,
                    last_offset: last,
                    log_append_time_ms,
                },
            ));
        }
        base = last + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer: i64, seq: i32, records: usize) -> bytes::BytesMut {
        let mut b = storage::BatchBuilder::new(1_000).producer(producer, 0, seq);
        for i in 0..records {
            let value = format!("v{i}");
            b = b.record(None, Some(value.as_bytes()), &[]);
        }
        b.build()
    }

    #[test]
    fn scans_headers_and_places_batches_consecutively() {
        let mut records = batch(-1, -1, 2);
        records.extend_from_slice(&batch(5, 10, 3));
        let scanned = scan_batches(&records).unwrap();
        assert_eq!(scanned.len(), 2);
        assert!(scanned[0].ident.is_none());
        let placed = placements(&scanned, 100, -1);
        assert_eq!(placed.len(), 1);
        let (ident, meta) = placed[0];
        assert_eq!(ident.producer, ProducerId(5));
        assert_eq!((meta.first_seq, meta.last_seq), (10, 12));
        assert_eq!((meta.base_offset, meta.last_offset), (102, 104));
    }

    #[test]
    fn bad_framing_is_left_to_the_log() {
        let records = batch(5, 0, 1);
        assert!(scan_batches(records.get(..30).unwrap()).is_none());
        assert!(scan_batches(&[]).unwrap().is_empty());
    }
}
