#![no_main]
//! The `serve_request` fuzz target: see `fuzz/src/serve_request.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| leakdex_fuzz::serve_request(data));
