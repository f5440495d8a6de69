//! Produce-time timestamp bounds (Kafka's `LogValidator.validateTimestamp`): on a CreateTime
//! topic a record whose timestamp is more than `message.timestamp.before.max.ms` behind or
//! `message.timestamp.after.max.ms` ahead of the broker's clock makes the whole append fail
//! with INVALID_TIMESTAMP. Records without a timestamp (-1) are not checked.
//!
//! Uncompressed batches are checked record by record; for compressed batches the records are
//! not inflated here, so the header's first and max timestamps are checked (the max is exact
//! for "ahead"; "behind" sees the first record's timestamp).

use storage::BatchHeader;

/// Kafka's NO_TIMESTAMP.
const NO_TIMESTAMP: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLimits {
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl Default for TimestampLimits {
    /// Kafka's defaults: no bound either way.
    fn default() -> Self {
        Self {
            before_max_ms: i64::MAX,
            after_max_ms: i64::MAX,
        }
    }
}

impl TimestampLimits {
    fn unbounded(&self) -> bool {
        self.before_max_ms == i64::MAX && self.after_max_ms == i64::MAX
    }

    fn check_one(&self, timestamp: i64, now_ms: i64) -> Result<(), String> {
        if timestamp == NO_TIMESTAMP {
            return Ok(());
        }
        if timestamp.saturating_sub(now_ms) > self.after_max_ms {
            return Err(format!(
                "Timestamp {timestamp} of message is out of range. The timestamp should be \
                 within [{}, {}]",
                now_ms.saturating_sub(self.before_max_ms),
                now_ms.saturating_add(self.after_max_ms)
            ));
        }
        if now_ms.saturating_sub(timestamp) > self.before_max_ms {
            return Err(format!(
                "Timestamp {timestamp} of message is out of range. The timestamp should be \
                 within [{}, {}]",
                now_ms.saturating_sub(self.before_max_ms),
                now_ms.saturating_add(self.after_max_ms)
            ));
        }
        Ok(())
    }

    /// Checks every batch of a produce payload (CreateTime topics only: the caller skips
    /// LogAppendTime topics, whose timestamps the broker sets). Malformed batches pass here:
    /// the log's own validation refuses them with the right error.
    pub fn check(&self, records: &[u8], now_ms: i64) -> Result<(), String> {
        if self.unbounded() {
            return Ok(());
        }
        for batch in storage::split_batches(records) {
            let Ok(batch) = batch else { return Ok(()) };
            let Ok(header) = BatchHeader::parse(batch) else {
                return Ok(());
            };
            if header.is_compressed() {
                self.check_one(header.base_timestamp, now_ms)?;
                self.check_one(header.max_timestamp, now_ms)?;
                continue;
            }
            let Ok(records) = storage::batch::records(batch) else {
                return Ok(());
            };
            for record in records {
                let Ok(record) = record else { return Ok(()) };
                let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
                self.check_one(timestamp, now_ms)?;
            }
        }
        Ok(())
    }
}

/// Kafka's `LogValidator.validateTimestamp`: a producer may not set the LogAppendTime type.
/// A batch carrying it is refused (INVALID_TIMESTAMP) on a LogAppendTime topic, and on a
/// CreateTime topic when it has no timestamp (its records then read the header's max
/// timestamp, -1); on a CreateTime topic a timestamped one is accepted and stored as
/// CreateTime (the log's stamp clears the bit, as Kafka's `setMaxTimestamp(CREATE_TIME, ..)`).
pub fn check_timestamp_type(
    infos: &[storage::batch::BatchInfo],
    log_append_time_topic: impl FnOnce() -> bool,
) -> Result<(), String> {
    let Some(set) = infos.iter().find(|i| i.header.is_log_append_time()) else {
        return Ok(());
    };
    if set.header.max_timestamp == NO_TIMESTAMP || log_append_time_topic() {
        return Err(format!(
            "Invalid timestamp type in record batch with base sequence {}. Producer should not \
             set timestamp type to LogAppendTime.",
            set.header.base_sequence
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(timestamps: &[i64]) -> Vec<u8> {
        let first = timestamps.first().copied().unwrap_or(0);
        let mut b = storage::BatchBuilder::new(first);
        for ts in timestamps {
            b = b.record_at(*ts, None, Some(b"v"), &[]);
        }
        b.build().to_vec()
    }

    #[test]
    fn records_outside_the_window_are_refused() {
        let now = 1_000_000;
        let limits = TimestampLimits {
            before_max_ms: 1_000,
            after_max_ms: 100,
        };
        assert!(limits
            .check(&batch(&[now, now - 1_000, now + 100]), now)
            .is_ok());
        assert!(limits.check(&batch(&[now, now - 1_001]), now).is_err());
        assert!(limits.check(&batch(&[now + 101]), now).is_err());
        // A later record out of range fails the whole payload.
        let mut two = batch(&[now]);
        two.extend(batch(&[now, now + 5_000]));
        assert!(limits.check(&two, now).is_err());
        assert!(TimestampLimits::default()
            .check(&batch(&[0, i64::MAX / 2]), now)
            .is_ok());
    }
}
