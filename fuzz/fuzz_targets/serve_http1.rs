#![no_main]
//! The `serve_http1` fuzz target: see `fuzz/src/serve_http1.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leakdex_fuzz::serve_http1(data));
