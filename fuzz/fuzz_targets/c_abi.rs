#![no_main]
//! Fuzz target `c_abi`: see `noxy_fuzz::c_abi`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| noxy_fuzz::c_abi::run(data));
