//! `validate_bench`: CPU cost of validating produced batches (`batch::validate_all`, what
//! `Log::append` runs once per batch before writing), per codec. Compressed batches are
//! walked record by record through a streaming decoder (issue 8 item 7); uncompressed ones
//! were always walked. Builds batches of 1 KiB records (text-like values that compress about
//! 3-4x) of `--batch-kib` uncompressed bytes, then times validation of `--total-mib` of
//! records per codec on one thread. Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`),
//! so other load on the machine does not inflate them (wall time is printed too). Output: one
//! `RESULT <codec> <CPU ms per GB inflated> <CPU ms per GB stored>` line per codec (GB = 10^9
//! bytes), after human-readable lines.

use std::time::Instant;

use clap::Parser;
use storage::batch::validate_all;
use storage::BatchBuilder;

#[derive(Parser, Debug)]
#[command(
    name = "validate_bench",
    about = "CPU cost of produce-time batch validation"
)]
struct Args {
    /// Uncompressed records validated per codec, in MiB.
    #[arg(long, default_value_t = 1024)]
    total_mib: usize,
    /// Uncompressed size of one batch, in KiB.
    #[arg(long, default_value_t = 256)]
    batch_kib: usize,
    /// Value size of one record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
}

/// A value that compresses like log lines: words from a small vocabulary, varied by `seed`.
fn value(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "user",
        "GET",
        "/api/v1/orders",
        "200",
        "latency_ms",
        "region=eu-west",
        "id",
        "ok",
        "session",
        "POST",
        "cart",
        "404",
        "trace",
        "span",
        "checkout",
        "payment",
    ];
    let mut out = Vec::with_capacity(len + 32);
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // x >> 60 < 16 == WORDS.len()
        let word = WORDS.get((x >> 60) as usize).copied().unwrap_or_default();
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(format!(" {} ", (x >> 40) % 10_000).as_bytes());
    }
    out.truncate(len);
    out
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let args = Args::parse();
    let per_batch = (args.batch_kib * 1024 / args.record_bytes).max(1);
    let batches = (args.total_mib * 1024 * 1024 / (per_batch * args.record_bytes)).max(1);
    let inflated = (batches * per_batch * args.record_bytes) as f64;
    for (name, codec) in [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        // A pool of distinct batches, cycled (building is not timed).
        let pool: Vec<bytes::BytesMut> = (0..8u64)
            .map(|p| {
                let mut b = BatchBuilder::new(1_700_000_000_000).compression(codec);
                for i in 0..per_batch as u64 {
                    b = b.record(
                        None,
                        Some(&value(args.record_bytes, p * 1_000_003 + i)),
                        &[],
                    );
                }
                b.build()
            })
            .collect();
        let stored: usize = pool.iter().cycle().take(batches).map(|b| b.len()).sum();
        let started = Instant::now();
        let cpu_started = thread_cpu_secs();
        for batch in pool.iter().cycle().take(batches) {
            match validate_all(batch, u32::MAX, 1 << 30) {
                Ok(infos) => assert_eq!(infos.len(), 1),
                Err(e) => {
                    eprintln!("{name}: a built batch does not validate: {e}");
                    std::process::exit(1);
                }
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let secs = thread_cpu_secs() - cpu_started;
        let per_gb_inflated = secs * 1e3 / (inflated / 1e9);
        let per_gb_stored = secs * 1e3 / (stored as f64 / 1e9);
        println!(
            "{name}: {batches} batches of {per_batch} x {} B records, {:.1} MB stored, {:.3} s CPU ({:.3} s wall): {:.0} ms CPU per GB of records, {:.0} ms per GB stored",
            args.record_bytes,
            stored as f64 / 1e6,
            secs,
            wall,
            per_gb_inflated,
            per_gb_stored
        );
        println!("RESULT {name} {per_gb_inflated:.0} {per_gb_stored:.0}");
    }
}
