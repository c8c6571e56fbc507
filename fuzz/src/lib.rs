//! The bodies of libnoxy's fuzz targets, one module per target. The libFuzzer binaries
//! (`fuzz_targets/*.rs`) and the stable corpus replay (`tests/replay.rs`) call the same
//! functions, so a corpus file means the same thing to both.
//!
//! Every target panics (a crash for libFuzzer, a failed test for the replay) when the library
//! breaks a documented contract; "no crash" alone is the weakest of its checks.

pub mod answers;
pub mod c_abi;
pub mod devrelay_http;
pub mod json_check;
pub mod payload;

/// A target: its name (and corpus folder, `corpus/<name>/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, for the replay.
pub const TARGETS: &[Target] = &[
    ("payload", payload::run),
    ("answers", answers::run),
    ("answers_structured", answers::run_structured),
    ("c_abi", c_abi::run),
    ("devrelay_http", devrelay_http::run),
];
