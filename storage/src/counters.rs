//! A set of counters kept in a `Cell` by one shard's single-threaded state (a log's early
//! writeback and zero-ahead, the shard's sync batch): read as a copy, updated in place by a
//! closure. One helper instead of a `get`/modify/`set` per module.

use std::cell::Cell;

/// Counters `T` (a `Copy` struct of totals) behind a `Cell`.
#[derive(Default)]
pub(crate) struct Counters<T: Copy>(Cell<T>);

impl<T: Copy> Counters<T> {
    /// A copy of the counters now.
    pub fn get(&self) -> T {
        self.0.get()
    }

    /// Applies `f` to the counters.
    pub fn count(&self, f: impl FnOnce(&mut T)) {
        let mut c = self.0.get();
        f(&mut c);
        self.0.set(c);
    }
}

#[cfg(test)]
mod tests {
    use super::Counters;

    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Two {
        a: u64,
        b: u64,
    }

    #[test]
    fn count_updates_in_place_and_get_copies() {
        let c = Counters::<Two>::default();
        c.count(|s| s.a += 2);
        let before = c.get();
        c.count(|s| {
            s.a += 1;
            s.b += 5;
        });
        assert_eq!(before, Two { a: 2, b: 0 });
        assert_eq!(c.get(), Two { a: 3, b: 5 });
    }
}
