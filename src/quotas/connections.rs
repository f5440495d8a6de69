//! Connection-creation rate quotas (KIP-612, Kafka's `ConnectionQuotas`): per IP address
//! (`connection_creation_rate` of an `ip` entity or of the default IP entity, set with
//! AlterClientQuotas), per listener (`listener.name.<l>.max.connection.creation.rate`, else the
//! broker's value) and per broker (`max.connection.creation.rate`).
//!
//! As Kafka: a new connection is first recorded in its listener's and the broker's rates; over
//! either, it waits the larger throttle time before it is served (Kafka's acceptor waits before
//! accepting). Then its IP's rate: over it, the connection is not served; it is closed after
//! the throttle time (Kafka's delayed close of a `ConnectionThrottledException`), and its
//! creation is taken back out of the IP's rate, so refused attempts do not lengthen the
//! penalty. Every throttle is at most one quota window (`quota.window.size.seconds`).
//!
//! Invariants: measured in `quotas::rate::Rate`s of the quota windows; at most
//! `quota.sensors.max` IP rates exist (idle ones for an hour go first, then the least recently
//! used); with no IP quota and an unlimited broker rate nothing is recorded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use super::rate::{self, Rate, WindowConfig};

/// Kafka's default of `max.connection.creation.rate` and of an IP's `connection_creation_rate`:
/// no limit.
pub const UNLIMITED_RATE: i32 = i32::MAX;

/// The IP quotas in force: per address, and the default IP entity's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IpLimits {
    pub named: HashMap<IpAddr, f64>,
    pub default: Option<f64>,
}

impl IpLimits {
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.default.is_none()
    }

    /// `ConnectionQuotas.connectionRateForIp`: the address's own quota, else the default.
    pub fn limit(&self, ip: IpAddr) -> Option<f64> {
        self.named.get(&ip).copied().or(self.default)
    }
}

/// The connection-creation rates, shared by every shard.
#[derive(Debug, Default)]
pub struct ConnectionRates {
    ips: Mutex<HashMap<IpAddr, Rate>>,
    /// One per listener name (as many as configured listeners).
    listeners: Mutex<HashMap<String, Rate>>,
    broker: Mutex<Rate>,
}

/// Records one event in `rate` against `max` per second; the throttle time in ms.
fn record_one(rate: &mut Rate, max: i32, window: &WindowConfig, now_ms: u64) -> u64 {
    let bound = f64::from(max.max(0));
    rate::record_and_throttle_ms(rate, window, 1.0, bound, now_ms, window.window_ms)
}

impl ConnectionRates {
    /// Records a new connection on `listener` against its rate (`listener_max`) and the
    /// broker's (`broker_max`; `UNLIMITED_RATE`: not measured); returns how long to wait
    /// before serving it (the larger throttle, 0 within both).
    pub fn record_listener(
        &self,
        listener: &str,
        listener_max: i32,
        broker_max: i32,
        window: &WindowConfig,
        now_ms: u64,
    ) -> u64 {
        let mut delay_ms = 0;
        if listener_max != UNLIMITED_RATE {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            let rate = listeners.entry(listener.to_owned()).or_default();
            delay_ms = record_one(rate, listener_max, window, now_ms);
        }
        if broker_max != UNLIMITED_RATE {
            let mut broker = self.broker.lock().unwrap_or_else(|e| e.into_inner());
            delay_ms = delay_ms.max(record_one(&mut broker, broker_max, window, now_ms));
        }
        delay_ms
    }

    /// Records a new connection from `ip` against its IP quota; `Some(close_after_ms)` when it
    /// is over it (the connection is refused and not counted), None when it may be served.
    pub fn record_ip(
        &self,
        limits: &IpLimits,
        ip: IpAddr,
        window: &WindowConfig,
        sensors_max: usize,
        now_ms: u64,
    ) -> Option<u64> {
        let bound = limits.limit(ip)?;
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        if !ips.contains_key(&ip) {
            make_room(&mut ips, sensors_max, now_ms);
        }
        let rate = ips.entry(ip).or_default();
        let throttle =
            rate::record_and_throttle_ms(rate, window, 1.0, bound, now_ms, window.window_ms);
        if throttle == 0 {
            return None;
        }
        // Kafka: "unrecord the connection since we won't accept the connection".
        rate.record(window, -1.0, now_ms);
        Some(throttle)
    }

    #[cfg(test)]
    fn ip_rates(&self) -> usize {
        self.ips.lock().unwrap().len()
    }
}

/// Drops IP rates idle for an hour; at the cap, also the least recently used one.
fn make_room(ips: &mut HashMap<IpAddr, Rate>, sensors_max: usize, now_ms: u64) {
    if ips.len() < sensors_max {
        return;
    }
    ips.retain(|_, r| {
        now_ms.saturating_sub(r.last_start_ms()) < super::INACTIVE_SENSOR_EXPIRATION_MS
    });
    if ips.len() >= sensors_max {
        let oldest = ips
            .iter()
            .min_by_key(|(_, r)| r.last_start_ms())
            .map(|(ip, _)| *ip);
        if let Some(ip) = oldest {
            ips.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_ip_over_its_rate_is_refused_and_its_attempts_do_not_count() {
        let rates = ConnectionRates::default();
        let limits = IpLimits {
            named: [(ip(1), 2.0)].into_iter().collect(),
            default: None,
        };
        // 2/s over a young sensor's 10 s window: 20 connections fit, the 21st is refused.
        for _ in 0..20 {
            assert_eq!(rates.record_ip(&limits, ip(1), &WINDOW, 10, 5_000), None);
        }
        let close_after_ms = rates.record_ip(&limits, ip(1), &WINDOW, 10, 5_000).unwrap();
        assert!(close_after_ms > 0 && close_after_ms <= WINDOW.window_ms);
        // Refused attempts were taken back: exactly as far over each time.
        for _ in 0..5 {
            assert_eq!(
                rates.record_ip(&limits, ip(1), &WINDOW, 10, 5_000),
                Some(close_after_ms)
            );
        }
        // Another address without its own quota and no default: not limited.
        assert_eq!(rates.record_ip(&limits, ip(2), &WINDOW, 10, 5_000), None);
        // Later, the rate has room again.
        assert_eq!(rates.record_ip(&limits, ip(1), &WINDOW, 10, 20_000), None);
    }

    #[test]
    fn the_default_ip_quota_applies_per_address_and_rates_are_bounded() {
        let rates = ConnectionRates::default();
        let limits = IpLimits {
            named: HashMap::new(),
            default: Some(1.0),
        };
        for last in 0..50 {
            rates.record_ip(&limits, ip(last), &WINDOW, 8, 1_000);
        }
        assert!(rates.ip_rates() <= 8, "{}", rates.ip_rates());
    }

    #[test]
    fn listener_and_broker_rates_delay() {
        let rates = ConnectionRates::default();
        // Broker rate 1/s: ten connections in a young 10 s window, then a delay.
        let delays: Vec<u64> = (0..12)
            .map(|_| rates.record_listener("A", UNLIMITED_RATE, 1, &WINDOW, 3_000))
            .collect();
        assert_eq!(delays[..10], [0; 10]);
        assert!(delays[10] > 0 && delays[11] <= WINDOW.window_ms);
        // A listener's own rate counts only its connections.
        let rates = ConnectionRates::default();
        for _ in 0..20 {
            assert_eq!(
                rates.record_listener("B", UNLIMITED_RATE, UNLIMITED_RATE, &WINDOW, 0),
                0
            );
        }
        let a: Vec<u64> = (0..11)
            .map(|_| rates.record_listener("A", 1, UNLIMITED_RATE, &WINDOW, 0))
            .collect();
        assert_eq!(a[..10], [0; 10]);
        assert!(a[10] > 0);
    }
}
