#![no_main]
//! Fuzz target `payload`: see `noxy_fuzz::payload`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| noxy_fuzz::payload::run(data));
