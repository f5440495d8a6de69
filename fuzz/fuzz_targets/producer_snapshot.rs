//! cargo-fuzz target; the body is `sluice_fuzz::producer_snapshot` (shared with the stable corpus replay).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::producer_snapshot(data));
