//! Per-shard TCP listeners on one shared address (SO_REUSEPORT), so the kernel spreads incoming
//! connections over the shards and no connection has to move between io_urings
//! (see docs/decisions/0002-connection-distribution.md).
//!
//! Invariant: every listener on an address is created with the same options, which Linux
//! requires for SO_REUSEPORT sharing (same effective uid, option set before bind).

use std::io;
use std::net::SocketAddr;

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
