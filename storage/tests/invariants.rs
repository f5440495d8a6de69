//! A violated storage invariant stops the process (exit 70, like `shards::fatal`) with a
//! message naming where and what; a held one costs nothing visible. The violation runs in a
//! child process (this test binary re-run with an environment variable), since it exits.

// Test code: a failed expectation should fail the test loudly (docs/decisions/0014).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

const CHILD_ENV: &str = "STORAGE_TEST_VIOLATE_INVARIANT";

#[test]
fn violated_invariant_stops_the_process_with_its_message() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let log_end = 41;
        storage::invariant!(
            log_end == 40,
            "append at offset 40 but the log ends at {log_end}"
        );
        // Never reached: the check above ends the process.
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "violated_invariant_stops_the_process_with_its_message",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    assert_eq!(
        out.status.code(),
        Some(storage::invariant::INVARIANT_EXIT_CODE),
        "child: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage invariant violated at")
            && stderr.contains("invariants.rs")
            && stderr.contains("append at offset 40 but the log ends at 41"),
        "stderr: {stderr}"
    );
}

#[test]
fn held_invariant_is_a_no_op() {
    let mut evaluated = 0;
    storage::invariant!(
        {
            evaluated += 1;
            true
        },
        "never shown"
    );
    assert_eq!(evaluated, 1, "the condition is evaluated exactly once");
}
