#![no_main]
//! The `index_patch` fuzz target: see `fuzz/src/index_patch.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leakdex_fuzz::index_patch(data));
