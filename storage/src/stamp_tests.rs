//! `stamp.rs`: a shared append writes exactly what a stamped contiguous copy would hold,
//! leaves the received buffer untouched and copies only the headers.

use bytes::{Bytes, BytesMut};
use compio::buf::IoVectoredBuf;

use super::{AppendBytes, WriteBufs, SHARED_BATCHES_MAX};
use crate::batch::{self, BatchHeader, BatchInfo, BatchInfos, BATCH_HEADER_LEN};
use crate::builder::BatchBuilder;
use crate::config::{LogConfig, TimestampType};
use crate::log::{rewrite, AppendOptions};

/// `count` batches back to back; each one's header claims a max timestamp below its records'
/// (so a CreateTime append must correct it and recompute the CRC), every second one with a
/// producer id.
fn batches(count: usize) -> (Bytes, BatchInfos) {
    let mut buf = BytesMut::new();
    for n in 0..count {
        let mut b = BatchBuilder::new(1_000 + n as i64);
        if n % 2 == 1 {
            b = b.producer(7, 0, n as i32);
        }
        for i in 0..=n % 3 {
            let value = format!("value-{n}-{i}");
            b = b.record(Some(b"k"), Some(value.as_bytes()), &[]);
        }
        let mut one = b.build();
        // A producer's wrong max timestamp (Kafka corrects it): the CRC must then be redone.
        one[35..43].copy_from_slice(&1i64.to_be_bytes());
        let crc = batch::compute_crc(&one);
        one[17..21].copy_from_slice(&crc.to_be_bytes());
        buf.extend_from_slice(&one);
    }
    let bytes = buf.freeze();
    let infos = batch::validate_all(&bytes, u32::MAX, u64::MAX).expect("valid batches");
    (bytes, infos)
}

/// What the log stores: the batches copied and stamped one by one, contiguously (the
/// behaviour before `stamp.rs`, with the functions that stamp a whole batch).
fn stamped_copy(
    received: &[u8],
    infos: &[BatchInfo],
    cfg: &LogConfig,
    opts: AppendOptions,
) -> Vec<u8> {
    let mut out = received.to_vec();
    let (mut at, mut next) = (0usize, 500i64);
    for info in infos {
        let one = &mut out[at..at + info.size];
        batch::set_base_offset(one, next);
        batch::set_leader_epoch(one, opts.leader_epoch);
        match cfg.timestamp_type {
            TimestampType::LogAppendTime => batch::set_log_append_time(one, opts.now_ms),
            TimestampType::CreateTime => batch::set_create_time_max(one, info.max_timestamp),
        }
        next += i64::from(info.header.last_offset_delta) + 1;
        at += info.size;
    }
    out
}

fn written(bytes: AppendBytes) -> Vec<u8> {
    WriteBufs(smallvec::smallvec![bytes])
        .iter_slice()
        .flatten()
        .copied()
        .collect()
}

#[test]
fn shared_batches_are_written_as_a_stamped_copy_would_be_without_copying_them() {
    let opts = AppendOptions {
        leader_epoch: 9,
        now_ms: 77_000,
    };
    for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let cfg = LogConfig {
            timestamp_type,
            ..LogConfig::default()
        };
        for count in [1usize, 2, 5] {
            let (received, infos) = batches(count);
            let held = received.clone();
            let (mut bytes, copied) = AppendBytes::from_received(received, &infos);
            assert!(
                matches!(bytes, AppendBytes::Shared { .. }),
                "a held buffer is shared"
            );
            assert_eq!(
                copied,
                (count * BATCH_HEADER_LEN) as u64,
                "only headers copied"
            );
            assert_eq!(bytes.iovec_count(), 2 * count);
            let metas = rewrite(&mut bytes, &infos, 500, &cfg, opts);
            assert_eq!(metas.len(), count);
            let want = stamped_copy(&held, &infos, &cfg, opts);
            // The received buffer is not stamped: others hold it.
            let original = batches(count).0;
            assert_eq!(held, original, "{timestamp_type:?}, {count} batches");
            let got = written(bytes);
            assert_eq!(got, want, "{timestamp_type:?}, {count} batches");
            for (one, info) in batch::split_batches(&got).zip(&infos) {
                let one = one.expect("framed");
                let header = BatchHeader::parse(one).expect("header");
                assert_eq!(header.partition_leader_epoch, 9);
                batch::validate_batch(one, u32::MAX).expect("the CRC matches what is written");
                assert_eq!(one.len(), info.size);
            }
        }
    }
}

#[test]
fn an_unshared_buffer_is_stamped_in_place_and_a_huge_shared_one_copied_once() {
    let cfg = LogConfig::default();
    let opts = AppendOptions {
        leader_epoch: 3,
        now_ms: 1,
    };
    let (received, infos) = batches(3);
    let want = stamped_copy(&received, &infos, &cfg, opts);
    let (mut bytes, copied) = AppendBytes::from_received(received, &infos);
    assert!(
        matches!(bytes, AppendBytes::Owned(_)),
        "nobody else holds it"
    );
    assert_eq!((copied, bytes.iovec_count()), (0, 1));
    rewrite(&mut bytes, &infos, 500, &cfg, opts);
    assert_eq!(written(bytes), want);

    // More batches than a shared append writes from the received buffer: one copy.
    let (received, infos) = batches(SHARED_BATCHES_MAX + 1);
    let held = received.clone();
    let want = stamped_copy(&held, &infos, &cfg, opts);
    let (mut bytes, copied) = AppendBytes::from_received(received, &infos);
    assert_eq!(copied, held.len() as u64);
    assert_eq!(bytes.iovec_count(), 1);
    rewrite(&mut bytes, &infos, 500, &cfg, opts);
    assert_eq!(written(bytes), want);
}

#[test]
fn batches_split_each_form_at_the_header() {
    let (received, infos) = batches(3);
    let held = received.clone();
    let (shared, _) = AppendBytes::from_received(received, &infos);
    let owned = AppendBytes::Owned(BytesMut::from(&held[..]));
    for bytes in [shared, owned] {
        let parts: Vec<(&[u8], &[u8])> = bytes.batches(&infos).collect();
        assert_eq!(parts.len(), 3);
        let mut at = 0usize;
        for ((header, rest), info) in parts.iter().zip(&infos) {
            assert_eq!(header.len(), BATCH_HEADER_LEN);
            assert_eq!(*header, &held[at..at + BATCH_HEADER_LEN]);
            assert_eq!(*rest, &held[at + BATCH_HEADER_LEN..at + info.size]);
            at += info.size;
        }
        assert_eq!(bytes.len(), held.len());
    }
}

/// No copy, by address: a shared append's iovecs after each header, and a follower's one
/// iovec, point into the received buffer itself.
#[test]
fn the_write_points_into_the_received_buffer() {
    let (received, infos) = batches(3);
    let held = received.clone();
    let (shared, _) = AppendBytes::from_received(received, &infos);
    let mut at = 0usize;
    for ((header, rest), info) in shared.batches(&infos).zip(&infos) {
        assert_ne!(header.as_ptr(), held[at..].as_ptr(), "the header is a copy");
        assert_eq!(rest.as_ptr(), held[at + BATCH_HEADER_LEN..].as_ptr());
        at += info.size;
    }
    let follower = AppendBytes::Unstamped(held.clone());
    let bufs = WriteBufs(smallvec::smallvec![follower]);
    let slices: Vec<&[u8]> = bufs.iter_slice().collect();
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].as_ptr(), held.as_ptr());
    assert_eq!(slices[0].len(), held.len());
    assert_eq!(bufs.0[0].batches(&infos).count(), 3);
}
