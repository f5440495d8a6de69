//! Message payloads and keys.
//!
//! Every payload starts with a fixed 32-byte little-endian header so a consumer can check
//! delivery (producer id + per-producer sequence number: loss and duplicates) and measure
//! end-to-end latency (the intended send time, in nanoseconds on the run's clock). The rest is
//! filler: a configurable fraction random bytes, the remainder zeros, so compression has a
//! known amount of work. Decoding is checked: bytes read back from a broker are untrusted.

use crate::workload::{KeyDistribution, Workload};

pub const HEADER_BYTES: usize = 32;
const MAGIC: u32 = u32::from_le_bytes(*b"SLB1");
/// Random filler is cut from one pre-generated pool; the pool is larger than any message
/// window used at a time so consecutive messages differ.
const FILLER_POOL_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload of {0} bytes is shorter than the {HEADER_BYTES}-byte header")]
    TooShort(usize),
    #[error("payload magic {0:#x} is not a sluice-bench payload")]
    BadMagic(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// What the header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub producer: ProducerId,
    pub seq: Seq,
    /// Intended send time (fixed rate) or actual send time (max rate), run-clock nanoseconds.
    pub intended_ns: u64,
    /// Which broker run of the invocation wrote it; stray messages from earlier runs are
    /// counted as foreign instead of polluting loss/duplicate counts.
    pub run_tag: u32,
}

impl Header {
    pub fn write_into(&self, buf: &mut [u8]) {
        assert!(buf.len() >= HEADER_BYTES, "payload buffer holds the header");
        let mut head = [0u8; HEADER_BYTES];
        head[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        head[4..8].copy_from_slice(&self.producer.0.to_le_bytes());
        head[8..16].copy_from_slice(&self.seq.0.to_le_bytes());
        head[16..24].copy_from_slice(&self.intended_ns.to_le_bytes());
        head[24..28].copy_from_slice(&self.run_tag.to_le_bytes());
        if let Some(out) = buf.get_mut(..HEADER_BYTES) {
            out.copy_from_slice(&head);
        }
    }

    pub fn read_from(buf: &[u8]) -> Result<Header, PayloadError> {
        let head: &[u8; HEADER_BYTES] = buf
            .get(..HEADER_BYTES)
            .and_then(|s| s.try_into().ok())
            .ok_or(PayloadError::TooShort(buf.len()))?;
        let u32_at = |at: usize| {
            u32::from_le_bytes(
                head.get(at..at + 4)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 4]),
            )
        };
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(PayloadError::BadMagic(magic));
        }
        Ok(Header {
            producer: ProducerId(u32_at(4)),
            seq: Seq(u64_at(8)),
            intended_ns: u64_at(16),
            run_tag: u32_at(24),
        })
    }
}

/// Builds payloads of one size into a reused buffer.
pub struct PayloadBuilder {
    buf: Vec<u8>,
    pool: Vec<u8>,
    random_bytes: usize,
}

impl PayloadBuilder {
    pub fn new(workload: &Workload, rng: &mut fastrand::Rng) -> PayloadBuilder {
        let size = workload.message_size_bytes as usize;
        assert!(size >= HEADER_BYTES, "validated workload");
        let filler = size - HEADER_BYTES;
        let random_bytes = ((filler as f64) * workload.payload_random_fraction).round() as usize;
        let random_bytes = random_bytes.min(filler);
        let pool_len = if random_bytes == 0 {
            0
        } else {
            FILLER_POOL_BYTES + random_bytes
        };
        let mut pool = vec![0u8; pool_len];
        rng.fill(&mut pool);
        PayloadBuilder {
            buf: vec![0u8; size],
            pool,
            random_bytes,
        }
    }

    /// The payload for `header`; valid until the next call.
    pub fn build(&mut self, header: &Header) -> &[u8] {
        header.write_into(&mut self.buf);
        if self.random_bytes > 0 {
            // A multiplicative stride walks the pool so neighbours share no filler.
            let start = (header.seq.0.wrapping_mul(7919) as usize) % FILLER_POOL_BYTES;
            let end = HEADER_BYTES + self.random_bytes;
            if let (Some(out), Some(filler)) = (
                self.buf.get_mut(HEADER_BYTES..end),
                self.pool.get(start..start + self.random_bytes),
            ) {
                out.copy_from_slice(filler);
            }
        }
        &self.buf
    }
}

/// Picks message keys per the workload's key distribution.
pub struct KeyChooser {
    distribution: KeyDistribution,
    keys: Vec<String>,
    next_round_robin: usize,
    /// Zipf cumulative distribution over key ranks, for inverse-CDF sampling.
    zipf_cdf: Vec<f64>,
}

impl KeyChooser {
    pub fn new(workload: &Workload, producer: ProducerId) -> KeyChooser {
        let distribution = workload.key_distribution;
        let count = match distribution {
            KeyDistribution::None => 0,
            _ => workload.key_count as usize,
        };
        let keys = (0..count).map(|k| format!("key-{k}")).collect();
        let zipf_cdf = if distribution == KeyDistribution::Zipf {
            zipf_cdf(count, workload.zipf_exponent)
        } else {
            Vec::new()
        };
        KeyChooser {
            distribution,
            keys,
            // Producers start at different keys so round-robin does not march in lockstep.
            next_round_robin: producer.0 as usize,
            zipf_cdf,
        }
    }

    pub fn next_key(&mut self, rng: &mut fastrand::Rng) -> Option<&str> {
        let index = match self.distribution {
            KeyDistribution::None => return None,
            KeyDistribution::RoundRobin => {
                let i = self.next_round_robin % self.keys.len();
                self.next_round_robin = self.next_round_robin.wrapping_add(1);
                i
            }
            KeyDistribution::Random => rng.usize(..self.keys.len()),
            KeyDistribution::Zipf => {
                let u = rng.f64();
                self.zipf_cdf
                    .partition_point(|&c| c < u)
                    .min(self.keys.len() - 1)
            }
        };
        self.keys.get(index).map(String::as_str)
    }
}

fn zipf_cdf(count: usize, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=count)
        .map(|r| 1.0 / (r as f64).powf(exponent))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(dist: &str, fraction: f64) -> Workload {
        let text = format!(
            r#"name = "t"
            partitions_per_topic = 4
            message_size_bytes = 100
            payload_random_fraction = {fraction}
            key_distribution = "{dist}"
            key_count = 10
            producers_per_topic = 1
            consumers_per_subscription = 1
            consumer_mode = "assign"
            compression = "none"
            duration_s = 1"#
        );
        Workload::from_toml(&text, "inline").unwrap()
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            producer: ProducerId(7),
            seq: Seq(123_456_789_012),
            intended_ns: 987_654_321_000,
            run_tag: 42,
        };
        let mut buf = [0u8; 40];
        h.write_into(&mut buf);
        assert_eq!(Header::read_from(&buf), Ok(h));
    }

    #[test]
    fn foreign_bytes_are_typed_errors() {
        assert_eq!(Header::read_from(b"short"), Err(PayloadError::TooShort(5)));
        assert!(matches!(
            Header::read_from(&[0xAB; 64]),
            Err(PayloadError::BadMagic(_))
        ));
    }

    #[test]
    fn payload_has_size_and_randomness() {
        let mut rng = fastrand::Rng::with_seed(1);
        let w = workload("none", 0.5);
        let mut b = PayloadBuilder::new(&w, &mut rng);
        let h = Header {
            producer: ProducerId(1),
            seq: Seq(3),
            intended_ns: 5,
            run_tag: 0,
        };
        let p = b.build(&h).to_vec();
        assert_eq!(p.len(), 100);
        assert_eq!(Header::read_from(&p), Ok(h));
        // 68 filler bytes: first 34 random (not all zero), last 34 zero.
        assert!(p[32..66].iter().any(|&x| x != 0));
        assert!(p[66..].iter().all(|&x| x == 0));
    }

    #[test]
    fn key_distributions() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut none = KeyChooser::new(&workload("none", 1.0), ProducerId(0));
        assert_eq!(none.next_key(&mut rng), None);
        let mut rr = KeyChooser::new(&workload("round-robin", 1.0), ProducerId(0));
        let got: Vec<String> = (0..11)
            .map(|_| rr.next_key(&mut rng).unwrap().to_string())
            .collect();
        assert_eq!(got[0], "key-0");
        assert_eq!(got[9], "key-9");
        assert_eq!(got[10], "key-0");
        let mut zipf = KeyChooser::new(&workload("zipf", 1.0), ProducerId(0));
        let mut hot = 0;
        for _ in 0..10_000 {
            if zipf.next_key(&mut rng) == Some("key-0") {
                hot += 1;
            }
        }
        // Rank 1 of 10 at s=1 has probability 1/H(10) ~= 0.341.
        assert!((3_000..3_800).contains(&hot), "hot key drawn {hot} times");
    }
}
