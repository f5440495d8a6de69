#!/usr/bin/env python3
"""Broker CPU by layer from a flamegraph's collapsed stacks (issue 16, session 9).

    python3 perf/cpu_layers.py perf/out/<workload>-cpu.folded

Input: the `<w>-cpu.folded` file perf/flamegraph.sh writes (cpu-clock samples of every broker
thread, the thread name first in each stack). Each stack is put in the first layer whose rule
matches (thread kind, then a frame substring), in the order below: io-wq workers' early
writeback, page-cache copy and the rest of ext4's buffered write, the shard's inline writes,
TCP receive and send, the rest of io_uring_enter, CRC32C, record validation, allocation,
encode/decode, faults, other syscalls. Prints each layer's share of all samples.
"""
import sys, collections
rules = [
 ("iou-wrk", "io_sync_file_range", "io-wq: early writeback (SYNC_FILE_RANGE)"),
 ("iou-wrk", "copy_folio_from_iter", "io-wq: page-cache copy (copy_folio_from_iter_atomic)"),
 ("iou-wrk", "ext4_buffered_write_iter", "io-wq: ext4 buffered write minus the copy (delalloc, folios)"),
 ("iou-wrk", "io_openat", "io-wq: openat"),
 ("iou-wrk", "", "io-wq: worker wake/sleep/switch (no I/O under it)"),
 ("", "copy_folio_from_iter", "shard: page-cache copy (inline pwritev)"),
 ("", "ext4_buffered_write_iter", "shard: ext4 buffered write minus the copy (inline)"),
 ("", "io_recv", "shard: TCP receive (io_recv, copy to user + tcp)"),
 ("", "tcp_recvmsg", "shard: TCP receive (io_recv, copy to user + tcp)"),
 ("", "io_send", "shard: TCP send (responses + loopback delivery)"),
 ("", "tcp_sendmsg", "shard: TCP send (responses + loopback delivery)"),
 ("", "io_uring_enter", "shard: io_uring_enter other (submit, task work, wait)"),
 ("", "crc32c", "shard: CRC32C"),
 ("", "storage::batch", "shard: record/batch validation"),
 ("", "malloc", "shard: allocation"), ("", "free", "shard: allocation"), ("", "__rust_alloc", "shard: allocation"), ("", "__rust_dealloc", "shard: allocation"), ("", "realloc", "shard: allocation"), ("", "cfree", "shard: allocation"),
 ("", "encode", "shard: response encode"),
 ("", "kafka_protocol", "shard: request decode"),
 ("", "asm_exc_page_fault", "shard: page faults"),
 ("", "asm_sysvec", "shard: interrupts"),
 ("", "entry_SYSCALL", "shard: other syscalls"),
 ("", "__schedule", "shard: schedule"),
 ("", "sluice", "shard: Sluice/library code (other)"),
 ("", "", "shard: other"),
]
c = collections.Counter(); tot = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n); tot += n
    thread = stack.split(";", 1)[0]
    for t, pat, cat in rules:
        if t and not thread.startswith(t): continue
        if not t and thread.startswith("iou-wrk"): continue
        if pat in stack:
            c[cat] += n; break
for cat, n in sorted(c.items(), key=lambda x: -x[1]):
    print(f"{100*n/tot:5.1f}%  {cat}")
