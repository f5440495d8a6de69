//! Kafka's quota arithmetic, pure: a `Rate` over a `SampledStat` of `quota.window.num` samples
//! of `quota.window.size.seconds` each (`org.apache.kafka.common.metrics.stats.{Rate,
//! SampledStat}`), the quota check of `Sensor.checkQuotas` and the throttle time of
//! `ClientQuotaManager.throttleTime` (`QuotaUtils`).
//!
//! Invariants: at most `samples` samples are kept (a sensor is fixed-size memory); a sample
//! older than `samples * window` is reset before any measure; the window a rate is divided by
//! is never below `(samples - 1)` whole windows (Kafka's `Rate.windowSize`) nor below 1 ms.

/// `quota.window.num` and `quota.window.size.seconds`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    pub samples: usize,
    pub window_ms: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    /// Start of the sample's window (Kafka's `lastWindowMs`).
    start_ms: u64,
}

impl Sample {
    fn new(now_ms: u64) -> Self {
        Self {
            value: 0.0,
            start_ms: now_ms,
        }
    }
}

/// One quota sensor: the samples of a rate (Kafka's `Rate` with a `WindowedSum`).
#[derive(Debug, Clone)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn new() -> Self {
        Self {
            samples: Vec::new(),
            current: 0,
        }
    }

    /// Adds `value` at `now_ms` (SampledStat.record: a complete current sample advances to a
    /// new one aligned on the window grid).
    pub fn record(&mut self, config: &WindowConfig, value: f64, now_ms: u64) {
        let window = config.window_ms.max(1);
        let sample = self.current_sample(now_ms);
        let start = sample.start_ms;
        if now_ms.saturating_sub(start) >= window {
            let previous_end = start + window;
            let new_start = now_ms - ((now_ms - previous_end) % window);
            self.advance(config, new_start);
        }
        if let Some(sample) = self.samples.get_mut(self.current) {
            sample.value += value;
        }
    }

    /// The rate per second at `now_ms` (Rate.measure).
    pub fn measure(&mut self, config: &WindowConfig, now_ms: u64) -> f64 {
        self.purge_obsolete(config, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_size_ms(config, now_ms) as f64 / 1000.0)
    }

    /// Kafka's `Rate.windowSize`: time since the oldest sample's start, counted as at least
    /// `samples - 1` whole windows (a young sensor must not report a huge rate), at least 1 ms.
    pub fn window_size_ms(&mut self, config: &WindowConfig, now_ms: u64) -> u64 {
        self.purge_obsolete(config, now_ms);
        let window = config.window_ms.max(1);
        let oldest = self.oldest_start(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full_windows = elapsed / window;
        let min_full_windows = config.samples.saturating_sub(1) as u64;
        if full_windows < min_full_windows {
            elapsed += (min_full_windows - full_windows) * window;
        }
        elapsed.max(1)
    }

    /// The last time a value was recorded (for expiring idle sensors).
    pub fn last_start_ms(&self) -> u64 {
        self.samples.get(self.current).map_or(0, |s| s.start_ms)
    }

    fn current_sample(&mut self, now_ms: u64) -> Sample {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
            self.current = 0;
        }
        self.samples
            .get(self.current)
            .copied()
            .unwrap_or(Sample::new(now_ms))
    }

    fn advance(&mut self, config: &WindowConfig, start_ms: u64) {
        let samples = config.samples.max(1);
        self.current = (self.current + 1) % samples;
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(start_ms));
            self.current = self.samples.len() - 1;
        } else if let Some(sample) = self.samples.get_mut(self.current) {
            *sample = Sample::new(start_ms);
        }
        assert!(
            self.samples.len() <= samples,
            "rate keeps at most quota.window.num samples"
        );
    }

    fn oldest_start(&mut self, now_ms: u64) -> u64 {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
            self.current = 0;
        }
        self.samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms)
    }

    fn purge_obsolete(&mut self, config: &WindowConfig, now_ms: u64) {
        let expire_age = config.samples as u64 * config.window_ms.max(1);
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.start_ms) >= expire_age {
                *sample = Sample::new(now_ms);
            }
        }
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::new()
    }
}

/// Records `value` and checks the quota `bound` (per second) as Kafka's `Sensor.record` +
/// `checkQuotas` do (the value is recorded even when it violates the quota); returns the
/// throttle time in ms (0 within the quota), at most `max_throttle_ms`.
pub fn record_and_throttle_ms(
    rate: &mut Rate,
    config: &WindowConfig,
    value: f64,
    bound: f64,
    now_ms: u64,
    max_throttle_ms: u64,
) -> u64 {
    rate.record(config, value, now_ms);
    let observed = rate.measure(config, now_ms);
    if observed <= bound {
        return 0;
    }
    let window = rate.window_size_ms(config, now_ms);
    throttle_time_ms(observed, bound, window).min(max_throttle_ms)
}

/// `ClientQuotaManager.throttleTime`: the delay X that brings an observed rate O over a window
/// W down to the target T, `O * W / (W + X) = T`, so `X = (O - T) / T * W`, rounded.
pub fn throttle_time_ms(observed: f64, bound: f64, window_ms: u64) -> u64 {
    if bound <= 0.0 || observed <= bound {
        return 0;
    }
    let throttle = (observed - bound) / bound * window_ms as f64;
    if throttle.is_finite() {
        throttle.round() as u64
    } else {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_young_sensor_divides_by_ten_windows() {
        let mut rate = Rate::new();
        rate.record(&CONFIG, 1000.0, 5_000);
        assert_eq!(rate.window_size_ms(&CONFIG, 5_000), 10_000);
        assert!((rate.measure(&CONFIG, 5_000) - 100.0).abs() < 1e-9);
        // 2.5 s later: still at least ten whole windows.
        assert_eq!(rate.window_size_ms(&CONFIG, 7_500), 10_500);
    }

    #[test]
    fn samples_expire_after_the_whole_window() {
        let mut rate = Rate::new();
        rate.record(&CONFIG, 5000.0, 0);
        rate.record(&CONFIG, 10.0, 11_000);
        // The first sample (started at 0) is 11 s old at 11 000: reset, only 10 remains.
        assert!((rate.measure(&CONFIG, 11_000) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn samples_stay_bounded() {
        let mut rate = Rate::new();
        for t in 0..1000u64 {
            rate.record(&CONFIG, 1.0, t * 700);
        }
        assert!(rate.samples.len() <= CONFIG.samples);
    }

    #[test]
    fn throttle_time_is_kafkas_formula() {
        // O = 150, T = 100, W = 10 s: X = 0.5 * 10 s.
        assert_eq!(throttle_time_ms(150.0, 100.0, 10_000), 5_000);
        assert_eq!(throttle_time_ms(99.0, 100.0, 10_000), 0);
    }

    #[test]
    fn over_the_bound_is_throttled_and_still_recorded() {
        let mut rate = Rate::new();
        let bound = 100.0;
        // 1000 bytes in a fresh 10 s window is exactly 100/s: allowed.
        assert_eq!(
            record_and_throttle_ms(&mut rate, &CONFIG, 1000.0, bound, 0, u64::MAX),
            0
        );
        // 500 more: 150/s over 10 s, 5 s of throttle.
        assert_eq!(
            record_and_throttle_ms(&mut rate, &CONFIG, 500.0, bound, 0, u64::MAX),
            5_000
        );
        assert!((rate.measure(&CONFIG, 0) - 150.0).abs() < 1e-9);
        // The request quota caps the throttle at one window.
        assert_eq!(
            record_and_throttle_ms(&mut rate, &CONFIG, 1.0, bound, 0, 1000),
            1000
        );
    }

    /// A greedy client that waits out every throttle (KIP-219: both sides) is held to the quota
    /// over whole sample periods.
    #[test]
    fn a_greedy_client_converges_to_the_quota() {
        let mut rate = Rate::new();
        let bound = 100_000.0;
        let request = 16_384.0;
        let mut now = 0u64;
        let mut sent = 0.0;
        let end = 66_000; // six whole 11 s periods
        while now < end {
            let throttle =
                record_and_throttle_ms(&mut rate, &CONFIG, request, bound, now, u64::MAX);
            sent += request;
            now += throttle.max(1);
        }
        let observed = sent / (now as f64 / 1000.0);
        assert!(
            (observed - bound).abs() / bound < 0.1,
            "greedy client got {observed:.0} B/s against a {bound} B/s quota"
        );
    }
}
