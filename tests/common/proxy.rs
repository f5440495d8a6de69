//! A fault-injecting TCP proxy for network-partition tests: brokers reach each other through
//! one `Proxy` per (route) on a loopback port, and the test cuts and heals the route.
//!
//! Cut: every connection through the proxy is closed at once (both sides see the peer go
//! away, as with a firewall that rejects) and new connections are accepted and closed at
//! once, so nothing crosses until `heal`. Healed: connections are forwarded byte for byte.
//!
//! Invariants: one accept thread and two pump threads per live connection, each polling the
//! cut and stop flags at least every `POLL`, so a cut takes effect within that bound and
//! dropping the proxy ends every thread; the proxy never alters or reorders bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How often pump and accept threads look at the flags.
const POLL: Duration = Duration::from_millis(20);
/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Flags {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Bumped by every cut, so a connection opened before a cut never carries on after it.
    generation: AtomicU64,
}

/// See the module documentation.
pub struct Proxy {
    port: u16,
    target: SocketAddr,
    flags: Arc<Flags>,
}

impl Proxy {
    /// A proxy on a fresh loopback port forwarding to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        let flags = Arc::new(Flags::default());
        let accept_flags = Arc::clone(&flags);
        thread::spawn(move || accept_loop(&listener, target, &accept_flags));
        Proxy {
            port,
            target,
            flags,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        self.flags.generation.fetch_add(1, Ordering::SeqCst);
        self.flags.cut.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.flags.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.flags.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, flags: &Arc<Flags>) {
    while !flags.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if flags.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                connect_pumps(client, server, flags);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn connect_pumps(client: TcpStream, server: TcpStream, flags: &Arc<Flags>) {
    let generation = flags.generation.load(Ordering::SeqCst);
    let streams = [&client, &server];
    for s in streams {
        let _ = s.set_nonblocking(false);
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(POLL));
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    for (from, to) in [(client, server2), (server, client2)] {
        let flags = Arc::clone(flags);
        thread::spawn(move || pump(from, to, &flags, generation));
    }
}

/// Copies `from` to `to` until either side closes, the route is cut or the proxy stops;
/// then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, flags: &Flags, generation: u64) {
    let mut buf = vec![0_u8; 64 * 1024];
    let alive = || {
        !flags.stop.load(Ordering::SeqCst)
            && !flags.cut.load(Ordering::SeqCst)
            && flags.generation.load(Ordering::SeqCst) == generation
    };
    while alive() {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !alive() || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
