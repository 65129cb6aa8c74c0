#![no_main]
//! The `dump_lines` fuzz target: see `fuzz/src/dump_lines.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leakdex_fuzz::dump_lines(data));
