//! Connection-creation rate quotas (KIP-612, Kafka's `ConnectionQuotas`): per IP address
//! (`connection_creation_rate` of an `ip` entity or of the default IP entity, set with
//! AlterClientQuotas) and per broker (`max.connection.creation.rate`).
//!
//! As Kafka: a connection from an IP over its rate is not served; it is closed after the
//! throttle time (Kafka's delayed close of a `ConnectionThrottledException`), and its creation
//! is taken back out of the rate, so refused attempts do not lengthen the penalty. A connection
//! over the broker-wide rate is served after the throttle time (Kafka's acceptor waits before
//! accepting more). Both throttles are at most one quota window (`quota.window.size.seconds`).
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

/// What the acceptor does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionVerdict {
    /// Serve it after `delay_ms` (0: at once; over the broker-wide rate: the throttle time).
    Serve { delay_ms: u64 },
    /// Its IP is over its rate: close it, unserved, after `close_after_ms`.
    Refuse { close_after_ms: u64 },
}

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
    broker: Mutex<Rate>,
}

impl ConnectionRates {
    /// Records one new connection from `ip` (see the module documentation). `broker_max` is
    /// `max.connection.creation.rate` (`UNLIMITED_RATE`: not measured).
    pub fn record(
        &self,
        limits: &IpLimits,
        broker_max: i32,
        ip: IpAddr,
        window: &WindowConfig,
        sensors_max: usize,
        now_ms: u64,
    ) -> ConnectionVerdict {
        let max_throttle_ms = window.window_ms;
        if let Some(bound) = limits.limit(ip) {
            let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
            if !ips.contains_key(&ip) {
                make_room(&mut ips, sensors_max, now_ms);
            }
            let rate = ips.entry(ip).or_default();
            let throttle =
                rate::record_and_throttle_ms(rate, window, 1.0, bound, now_ms, max_throttle_ms);
            if throttle > 0 {
                // Kafka: "unrecord the connection since we won't accept the connection".
                rate.record(window, -1.0, now_ms);
                return ConnectionVerdict::Refuse {
                    close_after_ms: throttle,
                };
            }
        }
        if broker_max == UNLIMITED_RATE {
            return ConnectionVerdict::Serve { delay_ms: 0 };
        }
        let mut broker = self.broker.lock().unwrap_or_else(|e| e.into_inner());
        let delay_ms = rate::record_and_throttle_ms(
            &mut broker,
            window,
            1.0,
            f64::from(broker_max.max(0)),
            now_ms,
            max_throttle_ms,
        );
        ConnectionVerdict::Serve { delay_ms }
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
        let mut served = 0;
        for _ in 0..20 {
            let v = rates.record(&limits, UNLIMITED_RATE, ip(1), &WINDOW, 10, 5_000);
            assert_eq!(v, ConnectionVerdict::Serve { delay_ms: 0 });
            served += 1;
        }
        assert_eq!(served, 20);
        let refused = rates.record(&limits, UNLIMITED_RATE, ip(1), &WINDOW, 10, 5_000);
        let ConnectionVerdict::Refuse { close_after_ms } = refused else {
            panic!("{refused:?}")
        };
        assert!(close_after_ms > 0 && close_after_ms <= WINDOW.window_ms);
        // Refused attempts were taken back: still exactly one over.
        for _ in 0..5 {
            assert!(matches!(
                rates.record(&limits, UNLIMITED_RATE, ip(1), &WINDOW, 10, 5_000),
                ConnectionVerdict::Refuse { .. }
            ));
        }
        // Another address without its own quota and no default: not limited.
        assert_eq!(
            rates.record(&limits, UNLIMITED_RATE, ip(2), &WINDOW, 10, 5_000),
            ConnectionVerdict::Serve { delay_ms: 0 }
        );
        // Later, the rate has room again.
        assert_eq!(
            rates.record(&limits, UNLIMITED_RATE, ip(1), &WINDOW, 10, 20_000),
            ConnectionVerdict::Serve { delay_ms: 0 }
        );
    }

    #[test]
    fn the_default_ip_quota_applies_per_address_and_rates_are_bounded() {
        let rates = ConnectionRates::default();
        let limits = IpLimits {
            named: HashMap::new(),
            default: Some(1.0),
        };
        for last in 0..50 {
            rates.record(&limits, UNLIMITED_RATE, ip(last), &WINDOW, 8, 1_000);
        }
        assert!(rates.ip_rates() <= 8, "{}", rates.ip_rates());
    }

    #[test]
    fn the_broker_rate_delays_but_serves() {
        let rates = ConnectionRates::default();
        let none = IpLimits::default();
        let mut delays = Vec::new();
        for _ in 0..12 {
            match rates.record(&none, 1, ip(1), &WINDOW, 10, 3_000) {
                ConnectionVerdict::Serve { delay_ms } => delays.push(delay_ms),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays[..10], [0; 10]);
        assert!(delays[10] > 0 && delays[11] <= WINDOW.window_ms);
    }
}
