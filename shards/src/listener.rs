//! Per-shard TCP listeners on one shared address (SO_REUSEPORT), so the kernel spreads incoming
//! connections over the shards and no connection has to move between io_urings
//! (see docs/decisions/0002-connection-distribution.md).
//!
//! Invariant: every listener on an address is created with the same options, which Linux
//! requires for SO_REUSEPORT sharing (same effective uid, option set before bind).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue length per listener.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A TCP listener bound with SO_REUSEADDR + SO_REUSEPORT, so every shard can bind the same
/// address and the kernel spreads accepted connections. Must be called on a shard thread.
///
/// Port 0 picks a fresh port for this one listener; to share an ephemeral port, bind port 0 on
/// one shard first and pass `local_addr()` to the others.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<compio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    compio::net::TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(async {
                let first =
                    reuseport_listener("127.0.0.1:0".parse().expect("addr")).expect("first bind");
                let addr = first.local_addr().expect("local addr");
                assert_ne!(addr.port(), 0);
                let second = reuseport_listener(addr).expect("second bind on same port");
                assert_eq!(second.local_addr().expect("local addr"), addr);
            });
    }

    #[test]
    fn plain_listener_blocks_reuseport_bind() {
        // A socket without SO_REUSEPORT owns its port: sharing is opt-in on both sides.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("plain bind");
        let addr = plain.local_addr().expect("local addr");
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(async {
                let error = reuseport_listener(addr).expect_err("port is taken");
                assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
            });
    }
}

/// The first wait after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between accepts while they keep failing: once descriptors free up, a
/// waiting client is accepted within this.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for a listener's failing accepts.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One listener's failing accepts (EMFILE, ENFILE, ENOBUFS: the error stays while the
/// connection waits in the backlog): the wait before the next accept, doubling from
/// [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`] while they keep failing, and which failures
/// to log (one per [`ACCEPT_LOG_INTERVAL`], with the count of those not logged), so a full
/// descriptor table neither spins the shard nor floods the log (10,000 lines a minute).
#[derive(Debug)]
pub struct AcceptFailures {
    backoff: Duration,
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl Default for AcceptFailures {
    fn default() -> Self {
        Self {
            backoff: ACCEPT_BACKOFF_MIN,
            logged_at: None,
            unlogged: 0,
        }
    }
}

impl AcceptFailures {
    /// An accept failed at `now`: how long to wait before the next one, and `Some(n)` when this
    /// failure is to be logged (`n` failures since the last logged one were not).
    pub fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= ACCEPT_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return (wait, None);
        }
        self.logged_at = Some(now);
        (wait, Some(std::mem::take(&mut self.unlogged)))
    }

    /// An accept succeeded: the next failure waits the shortest time again (the log interval
    /// still holds, so failures alternating with successes stay rate-limited).
    pub fn accepted(&mut self) {
        self.backoff = ACCEPT_BACKOFF_MIN;
    }
}

#[cfg(test)]
mod accept_failures_tests {
    use super::*;

    #[test]
    fn failures_back_off_to_the_bound_and_log_once_per_interval_with_a_count() {
        let mut failures = AcceptFailures::default();
        let start = Instant::now();
        let mut waits = Vec::new();
        let mut logged = Vec::new();
        let mut now = start;
        // A minute of failures, each after the wait the previous one asked for.
        while now < start + Duration::from_secs(60) {
            let (wait, log) = failures.failed(now);
            waits.push(wait);
            if let Some(unlogged) = log {
                logged.push((now - start, unlogged));
            }
            now += wait;
        }
        assert_eq!(
            waits[..3],
            [
                ACCEPT_BACKOFF_MIN,
                2 * ACCEPT_BACKOFF_MIN,
                4 * ACCEPT_BACKOFF_MIN
            ]
        );
        assert!(waits.iter().all(|w| *w <= ACCEPT_BACKOFF_MAX));
        assert_eq!(waits.last(), Some(&ACCEPT_BACKOFF_MAX));
        // About 66 attempts in a minute instead of 6,000; 6 lines instead of one per attempt.
        assert!(waits.len() < 80, "{} attempts", waits.len());
        assert_eq!(logged.len(), 6, "{logged:?}");
        assert_eq!(logged[0], (Duration::ZERO, 0));
        assert!(logged
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= ACCEPT_LOG_INTERVAL));
        let counted: u64 = logged.iter().map(|(_, n)| n + 1).sum();
        assert!(counted <= waits.len() as u64);
        assert!(
            counted + 12 >= waits.len() as u64,
            "failures not counted: {logged:?}"
        );
    }

    #[test]
    fn a_success_resets_the_backoff_but_not_the_log_interval() {
        let mut failures = AcceptFailures::default();
        let now = Instant::now();
        assert_eq!(failures.failed(now), (ACCEPT_BACKOFF_MIN, Some(0)));
        assert_eq!(failures.failed(now).1, None);
        failures.accepted();
        let later = now + Duration::from_millis(50);
        assert_eq!(failures.failed(later), (ACCEPT_BACKOFF_MIN, None));
        let due = now + ACCEPT_LOG_INTERVAL;
        assert_eq!(failures.failed(due).1, Some(2));
    }
}
