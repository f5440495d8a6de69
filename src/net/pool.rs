//! The copy path's buffer pool: one per shard (thread-local, shards are threads), so reading
//! record bytes for a fetch reuses buffers instead of allocating per response.
//!
//! Invariants: the pool never holds more than the `bytes_max` of the last `give` in total
//! capacity (`fetch.copy.pool.bytes`); a buffer handed out is empty with capacity >= the
//! requested length.

use std::cell::RefCell;

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// An empty buffer with capacity >= `len`: the pooled buffer that fits best, or a new one.
pub fn take(len: usize) -> Vec<u8> {
    let found = POOL.with_borrow_mut(|pool| {
        let best = pool
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)
            .or_else(|| {
                // None big enough: grow the largest rather than allocate beside it.
                (0..pool.buffers.len()).max_by_key(|&i| pool.buffers.get(i).map(Vec::capacity))
            })?;
        let buf = pool.buffers.swap_remove(best);
        pool.bytes -= buf.capacity();
        Some(buf)
    });
    let mut buf = found.unwrap_or_default();
    buf.clear();
    buf.reserve_exact(len);
    buf
}

/// Returns a buffer to the pool, or frees it when the pool would exceed `bytes_max`.
pub fn give(buf: Vec<u8>, bytes_max: usize) {
    POOL.with_borrow_mut(|pool| {
        let capacity = buf.capacity();
        if capacity == 0 || pool.bytes.saturating_add(capacity) > bytes_max {
            return;
        }
        pool.bytes += capacity;
        pool.buffers.push(buf);
    });
}

#[cfg(test)]
pub fn pooled_bytes() -> usize {
    POOL.with_borrow(|pool| pool.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let a = take(1000);
        assert!(a.capacity() >= 1000 && a.is_empty());
        let ptr = a.as_ptr();
        give(a, 10_000);
        assert!(pooled_bytes() >= 1000);
        let b = take(500);
        assert_eq!(b.as_ptr(), ptr, "the pooled buffer is reused");
        assert_eq!(pooled_bytes(), 0);
        give(b, 10);
        assert_eq!(pooled_bytes(), 0, "over the bound: freed, not pooled");
        let c = take(4096);
        assert!(c.capacity() >= 4096);
    }
}
