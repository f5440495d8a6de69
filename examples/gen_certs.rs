//! Writes the test PKI (tests/common/certs.rs) into the directory given as the only argument:
//! ca.pem, broker.pem, client.crt/.key, rogue.crt/.key. Used by scripts/compat/security.sh.

// A tool, not the broker: a failed step should stop it loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/common/certs.rs"]
#[allow(dead_code)]
mod certs;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: gen_certs DIR");
        std::process::exit(2);
    };
    let pki = certs::generate(std::path::Path::new(&dir));
    println!("{pki:?}");
}
