//! Process-level stop paths, each in a child process (this binary re-executed with
//! `SHARDS_SIGNAL_CHILD` set): SIGTERM drains and exits 0, a second signal exits 130 at once,
//! and `fatal` exits 70 with its message.
//!
//! `harness = false`: `run` must be called on the main thread before other threads exist so
//! that every thread blocks the signals; libtest would run the child on a worker thread.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shards::{run, RuntimeConfig, ShardContext, ShardId};

const CHILD_ENV: &str = "SHARDS_SIGNAL_CHILD";
const WAIT: Duration = Duration::from_secs(30);
/// Bound on how long a child shard keeps busy or sleeping if the parent never signals.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn main() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("graceful") => child(Mode::Graceful),
        Ok("stubborn") => child(Mode::Stubborn),
        Ok("fatal") => child(Mode::Fatal),
        _ => parent(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Shard 0 awaits shutdown, shard 1 spins on the flag without yielding (a busy shard).
    Graceful,
    /// Both shards see shutdown but never return.
    Stubborn,
    /// Shard 1 calls `fatal`.
    Fatal,
}

fn child(mode: Mode) {
    let config = RuntimeConfig {
        shard_count: 2,
        pin_threads: false,
        ..RuntimeConfig::default()
    };
    let result = run(config, move |ctx: ShardContext<()>, _inbox| async move {
        println!("ready {}", ctx.id.0);
        match mode {
            Mode::Graceful if ctx.id == ShardId(1) => {
                let started = Instant::now();
                while !ctx.shutdown.is_triggered() && started.elapsed() < CHILD_LIFETIME {
                    std::hint::spin_loop();
                }
            }
            Mode::Fatal if ctx.id == ShardId(1) => shards::fatal("disk on fire"),
            _ => ctx.shutdown.wait().await,
        }
        println!("shutdown seen {}", ctx.id.0);
        if mode != Mode::Graceful {
            compio::time::sleep(CHILD_LIFETIME).await;
        }
        println!("cleanup {}", ctx.id.0);
    });
    match result {
        Ok(()) => println!("run returned ok"),
        Err(error) => {
            println!("run failed: {error}");
            std::process::exit(1);
        }
    }
}

/// A child process with its stdout as a stream of lines; killed if still running on drop.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    seen: Vec<String>,
}

impl ChildProcess {
    fn start(mode: &str) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .env(CHILD_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    fn wait_for_line(&mut self, expected: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.seen.iter().any(|line| line == expected) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line {expected:?}; got {:?}", self.seen),
            }
        }
    }

    fn signal(&self, signo: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signo) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for stdout to close (the child exited), then returns its status and stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("child did not exit: {:?}", self.seen)
                }
            }
        }
        let status = self.child.wait().expect("wait child");
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        (status, std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn sigterm_drains_busy_shards_and_exits_zero() {
    let mut child = ChildProcess::start("graceful");
    child.wait_for_line("ready 0");
    child.wait_for_line("ready 1");
    child.signal(libc::SIGTERM);
    let (status, lines, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "lines {lines:?}, stderr {stderr}");
    for expected in ["cleanup 0", "cleanup 1", "run returned ok"] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {lines:?}");
    }
    assert_eq!(lines.last().map(String::as_str), Some("run returned ok"));
}

fn second_signal_exits_130() {
    let mut child = ChildProcess::start("stubborn");
    child.wait_for_line("ready 0");
    child.wait_for_line("ready 1");
    child.signal(libc::SIGINT);
    child.wait_for_line("shutdown seen 0");
    child.wait_for_line("shutdown seen 1");
    child.signal(libc::SIGTERM);
    let (status, lines, stderr) = child.finish();
    assert_eq!(
        status.code(),
        Some(shards::SECOND_SIGNAL_EXIT_CODE),
        "lines {lines:?}, stderr {stderr}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("cleanup")), "{lines:?}");
}

fn fatal_exits_70_with_message() {
    let mut child = ChildProcess::start("fatal");
    child.wait_for_line("ready 1");
    let (status, lines, stderr) = child.finish();
    assert_eq!(
        status.code(),
        Some(shards::FATAL_EXIT_CODE),
        "lines {lines:?}"
    );
    assert!(stderr.contains("fatal: disk on fire"), "stderr: {stderr}");
    assert!(!lines.iter().any(|l| l == "run returned ok"), "{lines:?}");
}

fn parent() {
    let tests: [(&str, fn()); 3] = [
        (
            "sigterm_drains_busy_shards_and_exits_zero",
            sigterm_drains_busy_shards_and_exits_zero,
        ),
        ("second_signal_exits_130", second_signal_exits_130),
        ("fatal_exits_70_with_message", fatal_exits_70_with_message),
    ];
    // Honour `cargo test <filter>` like libtest does for plain names.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("running {} tests", selected.len());
    for (name, test) in selected {
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok");
}
