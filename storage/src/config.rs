//! Per-log configuration (Kafka topic configs) with Kafka's defaults.

/// Which timestamp a topic stores: the producer's (`CreateTime`) or the broker's at append.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Log configuration; `set_config` applies a new one live (next roll / flush / retention).
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// segment.bytes: roll when the active segment would exceed this.
    pub segment_bytes_max: u64,
    /// segment.ms: roll when the active segment's first batch is older than this.
    pub segment_ms: u64,
    /// index.interval.bytes: bytes of batches between two sparse index entries.
    pub index_interval_bytes: u32,
    /// segment.index.bytes: roll when an index file would exceed this.
    pub segment_index_bytes_max: u32,
    /// retention.ms: -1 = unlimited.
    pub retention_ms: i64,
    /// retention.bytes: -1 = unlimited.
    pub retention_bytes: i64,
    /// flush.messages: fsync after this many records; 1 = every append; u64::MAX = never.
    pub flush_messages: u64,
    /// flush.ms: fsync once the oldest unflushed append is this old; u64::MAX = never.
    pub flush_ms: u64,
    /// max.message.bytes: largest accepted batch.
    pub max_message_bytes: u32,
    /// message.timestamp.type.
    pub timestamp_type: TimestampType,
    /// log.write.inline.max.bytes (a Sluice broker setting, not a topic config): appends of
    /// at most this many bytes, made while no fsync of the log is in flight, are written with
    /// a `pwrite` on the shard thread instead of an io_uring WRITE (which ext4 always punts
    /// to a kernel worker: 1.5-5x slower for 4-64 KiB appends, no gain at 1 MiB; see
    /// perf/README.md); 0 = always io_uring.
    pub write_inline_max_bytes: u32,
    /// log.batch.inflated.max.bytes (a Sluice broker setting; Kafka has no such bound): the
    /// most a produced compressed batch may inflate to while its records are validated.
    /// Beyond it the batch is refused (CORRUPT_MESSAGE): this is what bounds the CPU and
    /// memory a decompression bomb costs.
    pub inflated_batch_bytes_max: u64,
    /// log.writeback.start.bytes (a Sluice broker setting): once this many bytes were
    /// appended to the active segment since the last start, start their writeback
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` through io_uring, not awaited), so a later
    /// fdatasync finds less dirty data; 0 = never (`writeback.rs`). Default 1 MiB: measured
    /// 1.2-4.3x for 16 KiB appends with one fsync at the end and 1.2-1.5x for acks=1 at broker
    /// level, neutral for acks=all (decision 0031).
    pub writeback_start_bytes: u64,
    /// log.zero.ahead.bytes (a Sluice broker setting): keep the blocks up to this many bytes
    /// past the active segment's end written with zeros (once the end comes within half of
    /// it), so appends overwrite allocated blocks and their fdatasync writes no extent-tree
    /// block or file size; 0 = off (`prealloc.rs`, decision 0034). Never past
    /// `segment_bytes_max`.
    pub zero_ahead_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: u64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            segment_index_bytes_max: 10 * 1024 * 1024,
            retention_ms: 7 * DAY_MS as i64,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
            write_inline_max_bytes: 64 * 1024,
            inflated_batch_bytes_max: 128 * 1024 * 1024,
            writeback_start_bytes: 1024 * 1024,
            zero_ahead_bytes: 0,
        }
    }
}
