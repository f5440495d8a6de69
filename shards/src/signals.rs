//! SIGINT/SIGTERM handling for `run`.
//!
//! The signals are blocked in the thread that calls `run` before any shard thread exists, so
//! every shard inherits the mask and no shard is ever interrupted; one small thread reads them
//! from a `signalfd`. This works however busy the shards are, since delivery needs no
//! cooperation from their executors.
//!
//! Invariants: the first signal triggers `Shutdown` (cooperative stop); a second one exits the
//! process at once with `SECOND_SIGNAL_EXIT_CODE`. The guard restores the caller's signal mask
//! and stops the signal thread when `run` returns.
//!
//! Caveat: a thread that existed before `run` and does not block these signals may receive them
//! with the default action (terminate), so the broker calls `run` from `main` before starting
//! other threads.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;

use crate::Shutdown;

/// Exit code after a second SIGINT/SIGTERM: 128 + SIGINT, what shells report for Ctrl-C.
pub const SECOND_SIGNAL_EXIT_CODE: i32 = 130;

/// Stops the signal thread and restores the signal mask on drop.
pub(crate) struct SignalGuard {
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
    old_mask: libc::sigset_t,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT/SIGTERM in the calling thread (and so in threads it spawns afterwards) and
/// starts the thread that turns them into `shutdown.trigger()`.
pub(crate) fn install(shutdown: Shutdown) -> io::Result<SignalGuard> {
    let set = stop_signals();
    // SAFETY: plain libc calls on valid local sigset_t values.
    let old_mask = unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        old
    };
    match open_fds(&set) {
        Ok((signals, stop)) => {
            let thread_stop = stop.try_clone()?;
            let thread = std::thread::Builder::new()
                .name("sluice-signals".into())
                .spawn(move || signal_loop(&signals, &thread_stop, &shutdown))?;
            Ok(SignalGuard {
                stop,
                thread: Some(thread),
                old_mask,
            })
        }
        Err(error) => {
            restore_mask(&old_mask);
            Err(error)
        }
    }
}

fn open_fds(set: &libc::sigset_t) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: the fds are fresh and owned by the OwnedFd from here on.
    unsafe {
        let signals = check(libc::signalfd(-1, set, libc::SFD_CLOEXEC))?;
        let signals = OwnedFd::from_raw_fd(signals);
        let stop = check(libc::eventfd(0, libc::EFD_CLOEXEC))?;
        Ok((signals, OwnedFd::from_raw_fd(stop)))
    }
}

fn restore_mask(old_mask: &libc::sigset_t) {
    // SAFETY: restores a mask previously returned by pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
    }
}

fn signal_loop(signals: &OwnedFd, stop: &OwnedFd, shutdown: &Shutdown) {
    let mut seen_count = 0u32;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: signals.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!("signal thread: poll failed: {error}");
            return;
        }
        let [signal_fd, stop_fd] = fds;
        if stop_fd.revents != 0 {
            return;
        }
        if signal_fd.revents & libc::POLLIN == 0 {
            continue;
        }
        let Some(signo) = read_signal(signals) else {
            continue;
        };
        seen_count += 1;
        if seen_count == 1 {
            tracing::info!("signal {signo}: shutting down (send again to exit at once)");
            // On a thread of its own, so this loop is back reading signals at once: a second
            // signal must exit even if waking the shards were ever to block.
            let to_trigger = shutdown.clone();
            let spawned = std::thread::Builder::new()
                .name("sluice-shutdown".into())
                .spawn(move || to_trigger.trigger());
            if let Err(error) = spawned {
                tracing::warn!("cannot start the shutdown thread ({error}); triggering inline");
                shutdown.trigger();
            }
        } else {
            eprintln!("signal {signo} again: exiting now");
            std::process::exit(SECOND_SIGNAL_EXIT_CODE);
        }
    }
}

fn read_signal(signals: &OwnedFd) -> Option<u32> {
    // SAFETY: reads at most size_of::<signalfd_siginfo>() bytes into a local of that type.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let read = libc::read(
            signals.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        );
        (read == size as isize).then_some(info.ssi_signo)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local buffer to our own eventfd.
        let written = unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if written == one.len() as isize {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        restore_mask(&self.old_mask);
    }
}
