//! The `sluice` broker binary.
fn main() {
    eprintln!("sluice: not built yet");
    std::process::exit(1);
}
