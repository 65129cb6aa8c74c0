#![no_main]
//! The `index_bytes` fuzz target: see `fuzz/src/index_bytes.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leakdex_fuzz::index_bytes(data));
