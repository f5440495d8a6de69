//! The test harness's port reservations (`common::ports`) hold across processes: two test
//! processes picking ports at the same moment, from the same start, never get the same port,
//! and a reservation whose holder exited is taken again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ports::{free_port, DIR_ENV, SEED_ENV};

/// Ports each child reserves.
const PORTS_PER_CHILD: usize = 40;
/// The child waits for this file before it picks ports (both start together).
const START_ENV: &str = "SLUICE_TEST_PORTS_START";

/// Run by [`two_processes_never_hold_the_same_port`] as a child process: waits for the start
/// file, reserves ports, prints them, and holds them until its stdin closes.
#[test]
#[ignore = "a child of two_processes_never_hold_the_same_port"]
fn ports_child() {
    let start = std::env::var(START_ENV).expect("the start file");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&start).exists() {
        assert!(Instant::now() < deadline, "no start file");
        std::thread::sleep(Duration::from_millis(1));
    }
    let ports: Vec<String> = (0..PORTS_PER_CHILD)
        .map(|_| free_port().to_string())
        .collect();
    println!("ports: {}", ports.join(" "));
    // Holds the reservations until the parent lets go.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn spawn_child(seed: u32, dir: &Path, start: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ports_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SEED_ENV, seed.to_string())
        .env(DIR_ENV, dir)
        .env(START_ENV, start)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The ports a child printed (it holds them until its stdin is closed).
fn ports_of(child: &mut Child) -> Vec<u16> {
    let mut lines = BufReader::new(child.stdout.as_mut().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest printed "test ports_child ... " before it, on the same line.
        if let Some((_, ports)) = line.split_once("ports: ") {
            return ports.split(' ').map(|p| p.parse().unwrap()).collect();
        }
    }
    panic!("the child printed no ports");
}

fn finish(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "child: {status}");
}

/// Both children search from the same start (the same seed), the worst case: without the
/// cross-process reservation, both probe and release the same ports in the same order and
/// get nearly the same list.
#[test]
fn two_processes_never_hold_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let reservations = dir.path().join("ports");
    let start = dir.path().join("start");
    let seed = std::process::id();
    let mut children = [
        spawn_child(seed, &reservations, &start),
        spawn_child(seed, &reservations, &start),
    ];
    std::fs::write(&start, b"go").unwrap();
    let [a, b] = children.each_mut().map(ports_of);
    for ports in [&a, &b] {
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), PORTS_PER_CHILD, "{ports:?}");
    }
    let a_set: HashSet<u16> = a.iter().copied().collect();
    let shared: Vec<u16> = b.iter().copied().filter(|p| a_set.contains(p)).collect();
    assert!(shared.is_empty(), "both processes hold {shared:?}");
    let [first, second] = children;
    finish(first);
    finish(second);

    // Their holders gone, the same start finds the same ports again.
    let mut third = spawn_child(seed, &reservations, &start);
    let c = ports_of(&mut third);
    finish(third);
    let both: HashSet<u16> = a.iter().chain(&b).copied().collect();
    assert!(
        c.iter().all(|p| both.contains(p)),
        "{c:?} not among {both:?}"
    );
}
