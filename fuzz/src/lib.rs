//! The bodies of Sluice's fuzz targets, one function per target, shared by the cargo-fuzz
//! binaries (`fuzz/fuzz_targets/`, nightly, libFuzzer) and by the stable replay of the
//! committed corpus (`tests/fuzz_corpus.rs` in the root package includes this file), so a
//! finding turned into a corpus file is checked by every `cargo test`.
//!
//! Each body panics on a broken property; anything else the input causes (an error value) is
//! the expected answer to bad input. A violated storage invariant ends the process
//! (`storage::invariant!`), which libFuzzer reports as a crash too.
//!
//! - [`request_decode`]: a request frame (without its 4-byte size prefix) through the
//!   broker's header parse and the body decode of every API and version it serves.
//! - [`batch_validation`]: produce-side validation of record batches, compressed ones
//!   included, and what an accepted batch must then satisfy.
//! - [`recovery_scan`]: a segment file of valid batches followed by fuzzed bytes, opened as a
//!   log: no panic, the valid prefix kept, the result what a plain in-memory walk predicts.
//! - [`producer_snapshot`]: a producer-state `.snapshot` file decoded; what decodes survives
//!   an encode/decode round trip.
//! - [`txn_index`]: a `.txnindex` file decoded and searched as read_committed fetches do.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use storage::batch::{self, BatchHeader, BATCH_HEADER_LEN};
use storage::cleaner::records::validate_for_recovery;
use storage::{BatchBuilder, Log, LogConfig, Offset};

/// `max.message.bytes` for the batch target: Kafka's default (1 MiB + 12).
pub const MAX_MESSAGE_BYTES: u32 = 1024 * 1024 + 12;
/// Inflation bound for the batch target: the broker's bound is 128 MiB
/// (`log.batch.inflated.max.bytes`); 1 MiB keeps an execution fast and exercises the same
/// cut-off code.
pub const INFLATED_MAX_BYTES: u64 = 1024 * 1024;

/// Bit 0 of a storage input's first byte: recompute the CRC of every batch the fuzzed bytes
/// frame, so mutations reach record parsing and decompression instead of stopping at the
/// CRC check (with the bit clear the CRC check itself is fuzzed).
const FIX_CRCS: u8 = 0x01;

/// Request decoding: header parse (`net::frame::parse_request`) and the body decode of the
/// registry's handler for that API and version (`handlers::decode_any`). Must never panic,
/// abort or allocate without bound (docs/decisions/0003).
pub fn request_decode(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    if let Ok(parsed) = sluice::net::frame::parse_request(frame) {
        let version = parsed.header.request_api_version;
        sluice::handlers::decode_any(parsed.api_key, version, parsed.body);
    }
}

/// Produce-side batch validation (`batch::validate_all`, what `Log::append` runs first).
/// First input byte: flags ([`FIX_CRCS`]); the rest: the produce request's records field.
/// What validation accepts must be storable: the batches tile the buffer, each one passes the
/// recovery scan's check, a compressed one can be walked again by the timestamp look-up, and
/// each still validates after the log's rewrite of base offset, leader epoch and
/// LogAppendTime.
pub fn batch_validation(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if flags & FIX_CRCS != 0 {
        fix_crcs(&mut buf);
    }
    let Ok(infos) = batch::validate_all(&buf, MAX_MESSAGE_BYTES, INFLATED_MAX_BYTES) else {
        return;
    };
    let mut at = 0usize;
    for info in &infos {
        let Some(bytes) = buf.get(at..at + info.size) else {
            panic!(
                "validated batch at {at} of {} bytes runs past the buffer",
                info.size
            );
        };
        if let Err(e) = validate_for_recovery(bytes) {
            panic!("a batch produce accepts fails the recovery check: {e}");
        }
        if info.header.is_compressed() {
            let walked =
                storage::inflate::find_record(bytes, &info.header, INFLATED_MAX_BYTES, |_| false);
            assert!(
                matches!(walked, Ok(None)),
                "an accepted compressed batch does not walk again: {walked:?}"
            );
        }
        let mut rewritten = bytes.to_vec();
        batch::set_base_offset(&mut rewritten, 1_000);
        batch::set_leader_epoch(&mut rewritten, 7);
        batch::set_log_append_time(&mut rewritten, 1_700_000_000_000);
        match batch::validate_produced(&rewritten, MAX_MESSAGE_BYTES, INFLATED_MAX_BYTES) {
            Ok(again) => assert_eq!(again.header.record_count, info.header.record_count),
            Err(e) => panic!("a rewritten accepted batch no longer validates: {e}"),
        }
        at += info.size;
    }
    assert_eq!(at, buf.len(), "validated batches do not cover the buffer");
}

/// Log recovery: first input byte: flags (bit 0 [`FIX_CRCS`] for the fuzzed tail, bits 1-3
/// the number of valid batches written first, bits 4-6 their codec); the rest is appended to
/// the segment file after them. The log is opened without a checkpoint (so the whole segment
/// is scanned, as after a crash) and must: open; keep every valid batch written first; end
/// exactly where a plain in-memory walk of the file says the valid batches end; return the
/// prefix unchanged from a read; and reopen to the same end without truncating again.
pub fn recovery_scan(data: &[u8]) {
    let Some((&flags, tail)) = data.split_first() else {
        return;
    };
    let valid_batches = usize::from((flags >> 1) & 0x07);
    let codec = i16::from((flags >> 4) & 0x07) % 5;
    let mut file = Vec::new();
    let mut next_offset = 0i64;
    for i in 0..valid_batches {
        let mut b = BatchBuilder::new(1_000 + i as i64)
            .base_offset(next_offset)
            .compression(codec);
        for r in 0..=i {
            b = b.record(Some(format!("k{r}").as_bytes()), Some(&[r as u8; 20]), &[]);
        }
        let bytes = b.build();
        next_offset += i as i64 + 1;
        file.extend_from_slice(&bytes);
    }
    let prefix_len = file.len();
    let prefix_end = next_offset;
    let mut tail = tail.to_vec();
    if flags & FIX_CRCS != 0 {
        fix_crcs(&mut tail);
    }
    file.extend_from_slice(&tail);
    let (expected_size, expected_end) = reference_walk(&file);
    assert!(expected_size >= prefix_len as u64 && expected_end >= prefix_end);

    let dir = tempfile::tempdir().expect("temp dir");
    let part = dir.path().join("fuzz-0");
    std::fs::create_dir_all(&part).expect("partition dir");
    std::fs::write(part.join(format!("{}.log", storage::file_stem(0))), &file)
        .expect("segment file");
    runtime().block_on(async {
        let log = open(&part).await;
        let end = log.log_end_offset().0;
        assert_eq!(
            end, expected_end,
            "recovered log end vs. the in-memory walk"
        );
        assert_eq!(
            log.size_bytes(),
            expected_size,
            "recovered size vs. the in-memory walk"
        );
        if prefix_len > 0 {
            let slice = log
                .read(Offset(0), u32::MAX, true, Offset(i64::MAX))
                .await
                .expect("read the recovered log");
            let bytes = slice.read_bytes().await.expect("read bytes");
            assert_eq!(
                bytes.get(..prefix_len),
                file.get(..prefix_len),
                "the valid prefix reads back unchanged"
            );
        }
        log.close().await.expect("close");
        let again = open(&part).await;
        assert_eq!(again.log_end_offset().0, end, "reopen moves the log end");
        assert!(
            again.recovery_report().truncated.is_none(),
            "a recovered log was truncated again: {:?}",
            again.recovery_report()
        );
        again.close().await.expect("close");
    });
}

async fn open(dir: &Path) -> Log {
    match Log::open(dir.to_path_buf(), LogConfig::default()).await {
        Ok(log) => log,
        Err(e) => panic!("a damaged segment must be recovered, not refused: {e}"),
    }
}

/// What recovery must find, computed the simple way: whole batches from the start, each
/// passing the recovery check, not going back in offsets and leaving room for a next offset
/// (no batch may reach `i64::MAX`); returns the bytes they cover
/// and the offset after the last one (0 when there is none).
fn reference_walk(file: &[u8]) -> (u64, i64) {
    let mut pos = 0usize;
    let mut next = 0i64;
    while let Some(rest) = file.get(pos..) {
        let Ok(h) = BatchHeader::parse(rest) else {
            break;
        };
        let Some(bytes) = rest.get(..h.total_size()) else {
            break;
        };
        if validate_for_recovery(bytes).is_err()
            || h.base_offset < next
            || h.last_offset() == i64::MAX
        {
            break;
        }
        next = h.last_offset() + 1;
        pos += h.total_size();
    }
    (pos as u64, next)
}

/// Recomputes the CRC of every batch framed in `buf` (as far as the length fields frame it).
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(rest) = buf.get_mut(pos..) {
        let Ok(h) = BatchHeader::parse(rest) else {
            return;
        };
        let size = h.total_size();
        let Some(bytes) = rest.get_mut(..size) else {
            return;
        };
        let crc = batch::compute_crc(bytes);
        if let Some(field) = bytes.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        pos += size.max(BATCH_HEADER_LEN);
    }
}

thread_local! {
    static RUNTIME: std::rc::Rc<compio::runtime::Runtime> = std::rc::Rc::new(
        compio::runtime::Runtime::new().expect("compio runtime")
    );
}

/// One compio runtime (one io_uring) per thread, reused by every execution.
fn runtime() -> std::rc::Rc<compio::runtime::Runtime> {
    RUNTIME.with(|rt| rt.clone())
}

/// Seed inputs for the two storage targets, built from real batches: every codec, keys,
/// headers, idempotent producer fields, several batches per buffer, and (for recovery)
/// torn and damaged tails. Returned as (file name, bytes); `tests/fuzz_corpus.rs` writes them
/// under `fuzz/corpus/<target>/` when asked to (`FUZZ_WRITE_SEEDS=1`).
pub fn storage_seeds() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let batch = |codec: i16, records: usize, producer: bool, base: i64| -> BytesMut {
        let mut b = BatchBuilder::new(1_700_000_000_000)
            .compression(codec)
            .base_offset(base);
        if producer {
            b = b.producer(4_000, 0, 0);
        }
        let header: &[(&[u8], &[u8])] = &[(b"h", b"v")];
        for r in 0..records {
            let value = format!("value {r} of a record batch, a little repetitive, repetitive");
            let key = format!("key-{r}");
            b = b.record_at(
                1_700_000_000_000 + (r as i64 % 4),
                (r % 3 != 2).then_some(key.as_bytes()),
                Some(value.as_bytes()),
                header.get(..(r % 2)).unwrap_or(&[]),
            );
        }
        b.build()
    };
    for codec in 0..5i16 {
        for (records, producer) in [(1usize, false), (5, true), (40, false)] {
            let b = batch(codec, records, producer, 0);
            let mut input = vec![0u8];
            input.extend_from_slice(&b);
            out.push((
                "batch_validation".to_owned(),
                format!("codec{codec}-records{records}"),
                input,
            ));
        }
        // Two batches in one request, CRCs to be fixed by the target.
        let mut input = vec![FIX_CRCS];
        input.extend_from_slice(&batch(codec, 3, false, 0));
        input.extend_from_slice(&batch(codec, 2, true, 3));
        out.push((
            "batch_validation".to_owned(),
            format!("codec{codec}-two"),
            input,
        ));
        // Recovery: valid prefix of 1-3 batches with this codec, then a tail.
        let whole = batch(codec, 4, false, 6);
        let flags = |n: u8| FIX_CRCS | (n << 1) | ((codec as u8) << 4);
        let mut torn = vec![flags(2)];
        torn.extend_from_slice(whole.get(..whole.len() / 2).unwrap_or(&[]));
        out.push((
            "recovery_scan".to_owned(),
            format!("codec{codec}-torn"),
            torn,
        ));
        let mut continued = vec![flags(3)];
        continued.extend_from_slice(&whole);
        out.push((
            "recovery_scan".to_owned(),
            format!("codec{codec}-continued"),
            continued,
        ));
        let mut damaged = vec![flags(1) & !FIX_CRCS];
        let mut bad = whole.to_vec();
        if let Some(last) = bad.last_mut() {
            *last ^= 0xff;
        }
        damaged.extend_from_slice(&bad);
        out.push((
            "recovery_scan".to_owned(),
            format!("codec{codec}-bad-crc"),
            damaged,
        ));
    }
    out.push(("recovery_scan".to_owned(), "empty".to_owned(), vec![0]));
    out.push((
        "recovery_scan".to_owned(),
        "garbage".to_owned(),
        b"\x06 not a batch at all, just bytes".to_vec(),
    ));
    out
}

/// A producer-state `.snapshot` file (`producers::snapshot`, read at a partition's open):
/// first input byte: flags ([`FIX_CRCS`]: recompute the file's CRC, so mutations reach the
/// entry parsing); the rest is the file. Decoding must not panic; a snapshot that decodes
/// must encode to one that decodes to the same encoding (what is restored is what is written
/// back at the next snapshot).
pub fn producer_snapshot(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    if flags & FIX_CRCS != 0 {
        if let Some(body) = file.get(6..) {
            let crc = crc32c_of(body);
            if let Some(field) = file.get_mut(2..6) {
                field.copy_from_slice(&crc.to_be_bytes());
            }
        }
    }
    let limits = sluice::config::BrokerConfig::default()
        .producer_rebuild_limits()
        .state;
    let Some(states) = sluice::producers::snapshot::decode(&file, limits) else {
        return;
    };
    let written = sluice::producers::snapshot::encode(&states);
    let Some(again) = sluice::producers::snapshot::decode(&written, limits) else {
        panic!("an encoded snapshot does not decode");
    };
    assert_eq!(
        sluice::producers::snapshot::encode(&again),
        written,
        "a snapshot does not survive a decode/encode round trip"
    );
}

/// A `.txnindex` file (`partition::txn_index`, read by read_committed fetches and the log
/// cleaner): first 16 input bytes: a fetch offset and an upper bound; the rest is the file.
/// Decoding must not panic; the entries decoded re-encode to the file's prefix byte for byte;
/// the aborted transactions collected for [fetch, bound) are exactly the entries overlapping
/// it up to the first whose LSO reaches the bound; the cleaner's look-up does not panic.
pub fn txn_index(data: &[u8]) {
    use sluice::partition::txn_index::{collect_into, decode_entries, is_aborted_in, ENTRY_BYTES};
    let Some((bounds, file)) = data.split_at_checked(16) else {
        return;
    };
    let word = |i: usize| -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(bounds.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        i64::from_be_bytes(b)
    };
    let (fetch, bound) = (word(0), word(1));
    let (entries, _bad) = decode_entries(file);
    let encoded: Vec<u8> = entries.iter().flat_map(|t| t.encode()).collect();
    assert_eq!(encoded.len(), entries.len() * ENTRY_BYTES);
    assert_eq!(
        file.get(..encoded.len()),
        Some(&encoded[..]),
        "decoded entries do not re-encode to the file's bytes"
    );
    let mut collected = Vec::new();
    let complete = collect_into(&entries, fetch, bound, &mut collected);
    let mut expected = Vec::new();
    let mut stopped = false;
    for t in &entries {
        if t.last_offset >= fetch && t.first_offset < bound {
            expected.push((t.producer_id, t.first_offset));
        }
        if t.last_stable_offset >= bound {
            stopped = true;
            break;
        }
    }
    assert_eq!((collected, complete), (expected, stopped));
    let mut sorted = entries.clone();
    sorted.sort_by_key(|t| t.last_offset);
    for t in &sorted {
        let _ = is_aborted_in(&sorted, t.producer_id, t.first_offset);
        let _ = is_aborted_in(&sorted, t.producer_id, fetch);
    }
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Seeds of the transaction targets: snapshots of a few producers (idempotent, an open
/// transaction, sequence wrap-around) and `.txnindex` files (entries, a torn tail, a bad
/// version), each with the flag byte / bounds the target reads first.
pub fn txn_seeds() -> Vec<(String, String, Vec<u8>)> {
    // (producer, epoch, last seq, last offset, offset delta, last ms, coordinator epoch,
    // txn first offset)
    type Row = (i64, i16, i32, i64, i32, i64, i32, i64);
    let snapshot = |rows: &[Row]| -> Vec<u8> {
        let mut body = (rows.len() as i32).to_be_bytes().to_vec();
        for r in rows {
            body.extend_from_slice(&r.0.to_be_bytes());
            body.extend_from_slice(&r.1.to_be_bytes());
            body.extend_from_slice(&r.2.to_be_bytes());
            body.extend_from_slice(&r.3.to_be_bytes());
            body.extend_from_slice(&r.4.to_be_bytes());
            body.extend_from_slice(&r.5.to_be_bytes());
            body.extend_from_slice(&r.6.to_be_bytes());
            body.extend_from_slice(&r.7.to_be_bytes());
        }
        let mut file = vec![FIX_CRCS, 0, 1];
        file.extend_from_slice(&crc32c_of(&body).to_be_bytes());
        file.extend_from_slice(&body);
        file
    };
    let mut out = Vec::new();
    let snapshots: [(&str, Vec<Row>); 4] = [
        ("empty", vec![]),
        (
            "idempotent",
            vec![(1_000, 0, 4, 9, 4, 1_700_000_000_000, -1, -1)],
        ),
        (
            "open-txn",
            vec![
                (1_000, 2, 9, 19, 4, 1_700_000_000_000, 3, 15),
                (1_000, 2, 14, 24, 4, 1_700_000_000_001, 3, 15),
                (2_000, 0, -1, -1, 0, 1_700_000_000_002, 5, -1),
            ],
        ),
        ("seq-wrap", vec![(7, 1, 2, 100, 9, 1, 0, -1)]),
    ];
    for (name, rows) in snapshots {
        out.push((
            "producer_snapshot".to_owned(),
            name.to_owned(),
            snapshot(&rows),
        ));
    }
    let entry = |p: i64, first: i64, last: i64, lso: i64| -> Vec<u8> {
        let mut e = 0i16.to_be_bytes().to_vec();
        for f in [p, first, last, lso] {
            e.extend_from_slice(&f.to_be_bytes());
        }
        e
    };
    let bounds = |fetch: i64, bound: i64| -> Vec<u8> {
        let mut b = fetch.to_be_bytes().to_vec();
        b.extend_from_slice(&bound.to_be_bytes());
        b
    };
    let two = [entry(1, 0, 10, 0), entry(2, 5, 30, 11)].concat();
    let mut torn = two.clone();
    torn.extend_from_slice(&entry(3, 31, 40, 41)[..20]);
    let mut bad_version = entry(4, 1, 2, 3);
    bad_version[1] = 9;
    let files: [(&str, Vec<u8>); 4] = [
        ("two-entries", [bounds(3, 20), two.clone()].concat()),
        ("torn-tail", [bounds(0, i64::MAX), torn].concat()),
        ("bad-version", [bounds(0, 100), two, bad_version].concat()),
        ("empty", bounds(-1, 0)),
    ];
    for (name, bytes) in files {
        out.push(("txn_index".to_owned(), name.to_owned(), bytes));
    }
    out
}
