#![no_main]
//! Fuzz target `answers`: see `noxy_fuzz::answers`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| noxy_fuzz::answers::run(data));
