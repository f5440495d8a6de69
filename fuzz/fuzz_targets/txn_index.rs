//! cargo-fuzz target; the body is `sluice_fuzz::txn_index` (shared with the stable corpus replay).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::txn_index(data));
