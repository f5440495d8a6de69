//! `sluice-bench`: load generator (to come).
fn main() {}
