//! Loopback ports for listeners a test's nodes bind later (controller ports must be known
//! before any node starts), reserved across processes.
//!
//! A port is taken BELOW the kernel's ephemeral range (`ip_local_port_range`): a port bound to
//! 0 and released comes from that range, and an outgoing connection of an already running node
//! (a Raft or replica fetch connect) can take it as its source port before the node binds it
//! ("Address already in use").
//!
//! Probing a port (bind, release) does not keep another process from probing the same one
//! before the node binds it: two `cargo test` runs, or a test binary and
//! `compat/tools/cluster.sh`, could. So a port is handed out only once this process holds an
//! exclusive `flock` on `<temp dir>/sluice-ports/<port>.lock` (the reservation file), kept
//! until the process exits. The kernel drops a dead holder's lock, so a reservation of a
//! process that is gone is reclaimed by the next `flock`; the files are never removed (removing
//! one while another process locks it would let a third lock a new file of the same name). The
//! file holds the holder's pid, for whoever wonders who has a port. Every harness that picks
//! ports below the ephemeral range uses this scheme (`compat/tools/cluster.sh`,
//! `scripts/bench/cluster_scale.py`).
//!
//! Invariants: a port is handed out at most once per process (the in-process set) and held by
//! at most one process at a time (the lock); a reservation directory that cannot be used
//! (another user's, a read-only temp dir) falls back to the in-process set with a warning.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The lowest port handed out.
const PORTS_LOW: u32 = 10_000;
/// Test hook: the start of the search, the same in every process that sets it (so that two
/// processes probe the same ports in the same order, which the cross-process test needs).
pub const SEED_ENV: &str = "SLUICE_TEST_PORT_SEED";
/// Test hook: the reservation directory instead of `<temp dir>/sluice-ports`.
pub const DIR_ENV: &str = "SLUICE_TEST_PORT_DIR";

/// The ports this process handed out, and the locked reservation files it holds.
struct Held {
    given: HashSet<u16>,
    files: Vec<File>,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// The shared reservation directory.
pub fn reservation_dir() -> PathBuf {
    std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-ports"))
}

/// A loopback port free now and reserved for this process's lifetime (module documentation).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.clamp(PORTS_LOW + 1, 65_535);
    let span = high - PORTS_LOW;
    // Processes (test binaries, parallel cargo runs) start at different offsets.
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or_else(|| {
            std::process::id().wrapping_mul(7919)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
        });
    let dir = reservation_dir();
    let shared = match std::fs::create_dir_all(&dir) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "port reservations in {} unusable ({e}): this process only",
                dir.display()
            );
            false
        }
    };
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(PORTS_LOW + seed.wrapping_add(n.wrapping_mul(97)) % span)
        else {
            continue;
        };
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let held = held.get_or_insert_with(|| Held {
            given: HashSet::new(),
            files: Vec::new(),
        });
        if held.given.contains(&port) {
            continue;
        }
        let reservation = match shared {
            true => match reserve(&dir, port) {
                Some(file) => Some(file),
                None => continue,
            },
            false => None,
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            held.given.insert(port);
            held.files.extend(reservation);
            return port;
        }
        // Bound by someone outside the scheme: dropping the file releases the reservation.
    }
    panic!("no free loopback port below the ephemeral range")
}

/// The reservation file of `port`, exclusively locked by this process; None when another
/// process holds it (or it cannot be opened: another user's).
fn reserve(dir: &std::path::Path, port: u16) -> Option<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return None;
    }
    // Who holds it, for a person looking; errors only lose that hint.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Some(file)
}
