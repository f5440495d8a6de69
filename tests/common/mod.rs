//! Test harness: runs the real `sluice` binary as a child process, one broker per test.
//!
//! Invariants:
//! - every broker gets its own fresh temp dir (data dir `data/`, optional `sluice.toml`) and a
//!   loopback port the kernel picks (`--listen 127.0.0.1:0`); the port is read back from the
//!   broker's `ready listening=<ip:port>` log line, never guessed;
//! - readiness and shutdown are waited for with deadlines, never with fixed sleeps;
//! - the child's stderr is drained for its whole life (so the broker never blocks on a full
//!   pipe) into a bounded tail that is printed when a test fails;
//! - on drop the process is killed and reaped and the temp dir removed.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

pub mod certs;
pub mod checker;
pub mod cluster;
pub mod faults;
pub mod kafka;
pub mod load;
pub mod ports;
pub mod proxy;
pub mod sasl;
pub mod split;
pub mod txn;
pub mod wire;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker may take from spawn to its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a broker may take to exit after SIGTERM (flush and close every log).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of broker stderr kept for failure reports.
const LOG_TAIL_LINES_MAX: usize = 4_000;
/// Poll interval of [`wait_until`] and of waiting for a child to exit.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerOpts {
    pub cores: usize,
    /// TOML written to `<tmp>/sluice.toml` and passed with `--config`.
    pub config_toml: Option<String>,
    /// Extra environment variables of the broker process (e.g. test hooks).
    pub env: Vec<(String, String)>,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        Self {
            cores: default_cores(),
            config_toml: None,
            env: Vec::new(),
        }
    }
}

impl BrokerOpts {
    pub fn cores(mut self, cores: usize) -> Self {
        self.cores = cores;
        self
    }

    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.to_owned());
        self
    }

    /// Sets `key=value` in the broker's environment (every start, until `Broker::clear_env`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Two shards exercise cross-shard routing; never more than the machine has, because the
/// broker pins one shard per core. `SLUICE_TEST_CORES` overrides it (to bisect a failure).
pub fn default_cores() -> usize {
    if let Some(n) = std::env::var("SLUICE_TEST_CORES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 2)
}

type LogTail = Arc<Mutex<VecDeque<String>>>;

/// A running (or stopped, between `kill9`/`stop` and `start_again`) broker process.
pub struct Broker {
    opts: BrokerOpts,
    dir: TempDir,
    child: Option<Child>,
    reader: Option<JoinHandle<()>>,
    addr: SocketAddr,
    log: LogTail,
}

impl Broker {
    /// Starts a broker on a fresh data dir; panics (with the broker's log) if it is not ready
    /// within [`READY_TIMEOUT`].
    pub fn start(opts: BrokerOpts) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create temp dir: {e}"));
        std::fs::create_dir_all(dir.path().join("data"))
            .unwrap_or_else(|e| panic!("create data dir: {e}"));
        if let Some(toml) = &opts.config_toml {
            std::fs::write(dir.path().join("sluice.toml"), toml)
                .unwrap_or_else(|e| panic!("write config: {e}"));
        }
        let mut broker = Broker {
            opts,
            dir,
            child: None,
            reader: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: Arc::new(Mutex::new(VecDeque::new())),
        };
        broker.start_again();
        broker
    }

    /// `host:port` for `bootstrap.servers`; may change across restarts.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The captured stderr tail, for assertions on log content and for failure reports.
    pub fn log_text(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// With `SLUICE_TEST_LOG_DIR` set, the file every line of this broker's stderr is also
    /// appended to (`<dir>/<temp dir name>.log`, across restarts): the whole log of a flaky
    /// run, where the failure report only prints the tail.
    fn full_log_file(&self) -> Option<std::fs::File> {
        let dir = PathBuf::from(std::env::var_os("SLUICE_TEST_LOG_DIR")?);
        let name = self.dir.path().file_name()?.to_string_lossy().into_owned();
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .ok()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the broker process again on the same data dir (after `stop` or `kill9`).
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again while the broker still runs"
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--cores")
            .arg(self.opts.cores.to_string())
            // Never the fixed default 9644: brokers of concurrent tests would collide on it.
            .arg("--admin-listen")
            .arg("127.0.0.1:0");
        if self.opts.config_toml.is_some() {
            cmd.arg("--config").arg(self.dir.path().join("sluice.toml"));
        }
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        let filter = std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        cmd.env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_sluice")));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        let log = Arc::clone(&self.log);
        let copy = self.full_log_file();
        let reader = thread::spawn(move || drain_stderr(stderr, log, copy, ready_tx));
        self.child = Some(child);
        self.reader = Some(reader);
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => self.addr = addr,
            Err(why) => {
                let status = self.kill_and_reap();
                panic!(
                    "broker not ready ({why:?}; exit status {status:?}); log:\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// SIGTERM, then waits for a clean exit and asserts exit code 0.
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "broker exit status after SIGTERM: {status:?}; log:\n{}",
            self.log_text()
        );
    }

    /// Graceful restart on the same data dir. The port may change: re-read [`Broker::addr`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILL: the broker gets no chance to flush. Leaves it stopped.
    pub fn kill9(&mut self) {
        let status = self.kill_and_reap();
        assert!(status.is_some(), "kill9 on a broker that is not running");
    }

    /// Sends SIGTERM and waits for exit; panics with the log if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self
            .pid()
            .expect("terminate on a broker that is not running");
        signal(pid, libc::SIGTERM);
        match self.wait_exit(SHUTDOWN_TIMEOUT) {
            Some(status) => status,
            None => {
                self.kill_and_reap();
                panic!(
                    "broker did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; reaps it and joins the log reader.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    if let Some(reader) = self.reader.take() {
                        // The pipe closes with the process, so this returns promptly.
                        let _ = reader.join();
                    }
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) => return None,
                Err(e) => panic!("wait for broker: {e}"),
            }
        }
    }

    fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        let pid = self.pid()?;
        signal(pid, libc::SIGKILL);
        self.wait_exit(SHUTDOWN_TIMEOUT)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("---- sluice log ({}) ----\n{}", self.addr, self.log_text());
        }
        self.kill_and_reap();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child,
    // so it cannot have been recycled for another process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

fn drain_stderr(
    stderr: std::process::ChildStderr,
    log: LogTail,
    mut copy: Option<std::fs::File>,
    ready_tx: mpsc::Sender<SocketAddr>,
) {
    use std::io::Write;
    let mut ready_tx = Some(ready_tx);
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let line = strip_ansi(&String::from_utf8_lossy(&line));
        if let Some(file) = copy.as_mut() {
            let _ = writeln!(file, "{line}");
        }
        if let Some(addr) = parse_ready(&line) {
            if let Some(tx) = ready_tx.take() {
                let _ = tx.send(addr);
            }
        }
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_TAIL_LINES_MAX {
            log.pop_front();
        }
        log.push_back(line);
    }
}

/// Finds `ready listening=<ip:port>` (regex `ready listening=(\S+)`) in a log line.
pub fn parse_ready(line: &str) -> Option<SocketAddr> {
    const MARK: &str = "ready listening=";
    let at = line.find(MARK)?;
    let rest = &line[at + MARK.len()..];
    let token = rest.split_whitespace().next()?;
    token.trim_matches('"').parse().ok()
}

/// Removes ANSI escape sequences, in case the broker colours its log despite `NO_COLOR`.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' params... final byte in '@'..='~'.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `cond` until it is true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs a future (the AdminClient's) to completion on a private current-thread runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        .block_on(fut)
}

/// Names unique within a test process, so concurrent tests never collide in a shared broker
/// (they do not share one today, but names also show up in broker logs).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Lists files under `dir` recursively (diagnostics for recovery tests).
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

impl Broker {
    /// The admin HTTP address (`/metrics`) of the running process, from its latest
    /// `admin listening=<ip:port>` log line (logged before the ready line, so it is there once
    /// `start`/`start_again` returned).
    pub fn admin_addr(&self) -> SocketAddr {
        const MARK: &str = "admin listening=";
        let log = self.log_text();
        let addr = log.lines().rev().find_map(|line| {
            let rest = &line[line.find(MARK)? + MARK.len()..];
            rest.split_whitespace()
                .next()?
                .trim_matches('"')
                .parse()
                .ok()
        });
        addr.unwrap_or_else(|| panic!("no `{MARK}` line in the broker log:\n{log}"))
    }
}

impl Broker {
    /// Drops the extra environment variables of [`BrokerOpts::env`] for later starts.
    pub fn clear_env(&mut self) {
        self.opts.env.clear();
    }

    /// Waits up to `timeout` for the process to exit on its own (e.g. a fatal error); `None`
    /// if it still runs. Leaves it stopped, so `start_again` may follow.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait_exit(timeout)
    }
}

#[cfg(test)]
mod harness_tests {
    use super::*;

    #[test]
    fn parses_ready_line() {
        let line = "2025-01-01T00:00:00Z  INFO sluice: ready listening=127.0.0.1:40123 cores=2";
        assert_eq!(parse_ready(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(parse_ready("INFO starting"), None);
        let coloured = "\u{1b}[32m INFO\u{1b}[0m ready listening=127.0.0.1:9";
        assert_eq!(
            parse_ready(&strip_ansi(coloured)),
            Some("127.0.0.1:9".parse().unwrap())
        );
    }
}
