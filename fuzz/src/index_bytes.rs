//! `Index::from_bytes` on arbitrary bytes, then every query (`exercise`): check, probe,
//! lookups one by one and batched, plain and padded ranges, range lengths, and on request
//! `verify`, `info` and `for_each_entry`.
//!
//! Input: one byte of flags (1: verify, 2: info, 4: for_each_entry), then the file. An index
//! with a store holds two directories of 4 MiB, too large to reach this way: inputs that open
//! are filter-only indexes (the seeds hold the two golden ones) and the target mostly tests
//! the validation on open. `index_patch` reaches the stores.

use super::{dump_hashes, exercise, Asks};
use leakdex::Index;

/// The `index_bytes` target: one input.
pub fn index_bytes(data: &[u8]) {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let Ok(index) = Index::from_bytes(file, "fuzz.ldx") else {
        return;
    };
    let hashes = dump_hashes();
    let partition = index.partition();
    let mut prefixes: Vec<u32> = hashes
        .iter()
        .take(16)
        .map(leakdex::hash::prefix_of)
        .collect();
    prefixes.extend([
        0,
        0xF_FFFF,
        partition.first(),
        partition.last(),
        partition.first().wrapping_sub(1),
        partition.last() + 1,
    ]);
    let asks = Asks {
        verify: flags & 1 != 0,
        info: flags & 2 != 0,
        entries: flags & 4 != 0,
        seed: flags as u64,
    };
    exercise(&index, hashes, &prefixes, asks);
}
