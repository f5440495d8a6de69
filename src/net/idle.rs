//! Kafka's `connections.max.idle.ms` for one client connection: when bytes last moved on it,
//! and whether a response is being written, so the reader can close a connection that stayed
//! idle too long (Kafka's `Selector` idle expiry, default 10 minutes).
//!
//! Invariants: a connection counts as active whenever bytes were read, a request was handled or
//! a response written within the limit, and while a response is being written only as long as
//! the peer keeps taking its bytes (a slow reader draining a large fetch is not idle; a client
//! that never reads its responses is, as Kafka's selector counts only bytes moved): a blocked
//! write is sampled through the socket's acknowledged byte count (`TCP_INFO`) four times per
//! limit, so it is closed between one and 1.25 limits after its last progress. Without the
//! socket (or where the kernel does not say) a write counts as active throughout. A negative
//! limit never expires, as Kafka's (no idle expiry manager). Without it, connections whose client vanished without a FIN (a dropped NAT
//! entry, a powered-off host) would be held forever and, once `max.connections.per.shard` of
//! them piled up, every new client would be refused.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// The shortest wait between two looks at the connection (a zero limit must not spin).
const SAMPLE_MIN: Duration = Duration::from_millis(1);

pub struct Activity {
    last: Cell<Instant>,
    writing: Cell<bool>,
    max_idle: Option<Duration>,
    /// The connection's socket: its acknowledged byte count shows a blocked write's progress.
    socket: Option<RawFd>,
    /// The socket's acknowledged byte count when last sampled.
    acked: Cell<u64>,
}

impl Activity {
    /// `max_idle_ms` as Kafka's `connections.max.idle.ms`: negative = never idle.
    pub fn new(max_idle_ms: i64) -> Self {
        Self {
            last: Cell::new(Instant::now()),
            writing: Cell::new(false),
            max_idle: u64::try_from(max_idle_ms).ok().map(Duration::from_millis),
            socket: None,
            acked: Cell::new(0),
        }
    }

    /// A write counts as activity only while the peer acknowledges bytes on `socket` (which
    /// must outlive this `Activity`).
    pub fn with_socket(mut self, socket: RawFd) -> Self {
        self.socket = Some(socket);
        self
    }

    /// Bytes moved or a request was handled just now.
    pub fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// A response write starts (`true`) or ends (`false`, which also counts as activity).
    pub fn set_writing(&self, writing: bool) {
        self.writing.set(writing);
        self.touch();
    }

    /// Completes once the connection has been idle for the limit (never without one). One
    /// future may be polled again and again over the connection's life: it re-reads the last
    /// activity each time its timer fires.
    pub async fn expired(&self) {
        let Some(max_idle) = self.max_idle else {
            return std::future::pending().await;
        };
        loop {
            let writing = self.writing.get();
            if writing && self.peer_took_bytes() {
                self.touch();
            }
            let idle = self.last.get().elapsed();
            let left = max_idle.saturating_sub(idle);
            let left = match (writing, self.socket) {
                (false, _) if left.is_zero() => return,
                (false, _) => left,
                (true, Some(_)) if left.is_zero() => return,
                (true, Some(_)) => left.min(max_idle / 4),
                (true, None) => max_idle,
            };
            compio::time::sleep(left.max(SAMPLE_MIN)).await;
        }
    }

    /// Whether the peer acknowledged bytes since the last look (true where it cannot be told).
    fn peer_took_bytes(&self) -> bool {
        let Some(acked) = self.socket.and_then(bytes_acked) else {
            return true;
        };
        acked != self.acked.replace(acked)
    }
}

/// The bytes the peer acknowledged on a TCP socket (`tcpi_bytes_acked`, Linux 4.1+), None
/// where the kernel does not say.
fn bytes_acked(socket: RawFd) -> Option<u64> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let size = std::mem::size_of::<libc::tcp_info>();
    let mut len = libc::socklen_t::try_from(size).ok()?;
    // SAFETY: `info` is a writable, zeroed `tcp_info` of `len` bytes; the kernel writes at
    // most `len` bytes and reports how many in `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let filled = usize::try_from(len).unwrap_or(0);
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
    if rc != 0 || filled < needed {
        return None;
    }
    // SAFETY: zero-initialised, then (partly) written by the kernel: every field is plain data.
    Some(unsafe { info.assume_init() }.tcpi_bytes_acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_limit_never_expires_and_zero_expires_at_once() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let never = Activity::new(-1);
            let waited = compio::time::timeout(Duration::from_millis(50), never.expired()).await;
            assert!(waited.is_err(), "a negative limit must never expire");
            let at_once = Activity::new(0);
            let waited = compio::time::timeout(Duration::from_millis(50), at_once.expired()).await;
            assert!(waited.is_ok(), "a zero limit expires at once");
        });
    }

    /// A loopback connection whose client side has a 4 KiB receive buffer: (client, server).
    fn small_window_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        (client.into(), server)
    }

    /// Kafka's selector counts only bytes moved: a response write the client never reads
    /// expires after the limit; one the client keeps reading (slowly) does not.
    #[test]
    fn a_write_counts_as_activity_only_while_the_peer_takes_bytes() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let (_stalled_client, stalled) = small_window_pair();
        stalled.set_nonblocking(true).unwrap();
        let chunk = [7u8; 64 * 1024];
        while (&stalled).write(&chunk).is_ok() {}
        let (mut slow_client, slow) = small_window_pair();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (mut slow, done) = (slow.try_clone().unwrap(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if slow.write_all(&chunk).is_err() {
                        return;
                    }
                }
            })
        };
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let until = Instant::now() + Duration::from_millis(700);
            while Instant::now() < until {
                let _ = slow_client.read(&mut buf).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            slow_client
        });
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let stalled_activity = Activity::new(100).with_socket(stalled.as_raw_fd());
            stalled_activity.set_writing(true);
            let started = Instant::now();
            let waited =
                compio::time::timeout(Duration::from_secs(5), stalled_activity.expired()).await;
            assert!(waited.is_ok(), "a write the peer never reads must expire");
            assert!(
                started.elapsed() >= Duration::from_millis(100),
                "expired after {:?}",
                started.elapsed()
            );
            let slow_activity = Activity::new(100).with_socket(slow.as_raw_fd());
            slow_activity.set_writing(true);
            let waited =
                compio::time::timeout(Duration::from_millis(500), slow_activity.expired()).await;
            assert!(
                waited.is_err(),
                "a write the peer keeps reading must not expire"
            );
        });
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(reader.join().unwrap());
        writer.join().unwrap();
    }

    #[test]
    fn activity_and_writing_push_the_expiry_back() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let activity = Activity::new(60);
            let started = Instant::now();
            activity.set_writing(true);
            let writer = async {
                compio::time::sleep(Duration::from_millis(150)).await;
                activity.set_writing(false);
            };
            let (_, ()) = futures_util::join!(writer, activity.expired());
            // Not before the write ended (150 ms) plus the limit (60 ms).
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "expired after {:?}",
                started.elapsed()
            );
        });
    }
}
