#![no_main]
//! Fuzz target `devrelay_http`: see `noxy_fuzz::devrelay_http`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| noxy_fuzz::devrelay_http::run(data));
