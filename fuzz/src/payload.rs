//! Target `payload`: `noxy::Payload::from_json_bytes` on arbitrary bytes, checked against its
//! contract and against a second parser ([`crate::json_check`]):
//! - accepted ⇒ the bytes are kept exactly, at most 64 KiB, UTF-8, serde_json parses them as
//!   an object, and the second parser finds an object with no repeated key at any depth;
//! - rejected ⇒ the code is INVALID_PAYLOAD, and the second parser agrees that the text is not
//!   an acceptable object (or nests near serde_json's depth limit, which it leaves undecided);
//! - the same text padded with spaces past 64 KiB is rejected by the size check, before any
//!   parsing (its message is the size message, whatever the text).

use std::cell::RefCell;

use noxy::{ErrorCode, Payload, MAX_PAYLOAD_BYTES};

use crate::json_check::{self, Verdict};

/// Below this nesting the second parser's verdict must match the library's; serde_json stops
/// at 128 levels, and the few levels before that are left undecided.
const DECIDED_DEPTH: usize = 120;

thread_local! {
    /// MAX_PAYLOAD_BYTES + 1 spaces, to pad an input past the limit without a new allocation.
    static OVERSIZED: RefCell<Vec<u8>> = RefCell::new(vec![b' '; MAX_PAYLOAD_BYTES + 1]);
}

/// The target's body.
pub fn run(data: &[u8]) {
    check_one(data);
    if data.len() <= MAX_PAYLOAD_BYTES {
        check_oversized(data);
    }
}

fn check_one(data: &[u8]) {
    let verdict = std::str::from_utf8(data).ok().map(json_check::check);
    match Payload::from_json_bytes(data) {
        Ok(payload) => {
            assert_eq!(
                payload.as_bytes(),
                data,
                "the payload bytes were not kept exactly"
            );
            assert!(
                data.len() <= MAX_PAYLOAD_BYTES,
                "accepted {} bytes",
                data.len()
            );
            assert_eq!(payload.sha256(), noxy::crypto::sha256(data));
            let text = std::str::from_utf8(data).expect("accepted a payload that is not UTF-8");
            let value: serde_json::Value =
                serde_json::from_str(text).expect("accepted a payload serde_json cannot parse");
            assert!(
                value.is_object(),
                "accepted a top level that is not an object"
            );
            match verdict {
                Some(Verdict::Object { .. }) => {}
                other => panic!("accepted, but the second parser says {other:?}"),
            }
            // The &str entry point agrees.
            assert!(Payload::from_json_str(text).is_ok());
        }
        Err(error) => {
            assert_eq!(
                error.code(),
                ErrorCode::InvalidPayload,
                "rejected with {:?}: {}",
                error.code(),
                error.message()
            );
            assert!(!error.message().is_empty());
            if let Some(Verdict::Object { depth }) = verdict {
                assert!(
                    data.len() > MAX_PAYLOAD_BYTES || depth >= DECIDED_DEPTH,
                    "rejected an object of {} bytes, nesting {depth}, without a repeated key: {}",
                    data.len(),
                    error.message()
                );
            }
        }
    }
}

/// `data` followed by spaces up to MAX_PAYLOAD_BYTES + 1 bytes: rejected for its size alone.
fn check_oversized(data: &[u8]) {
    OVERSIZED.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer[..data.len()].copy_from_slice(data);
        let result = Payload::from_json_bytes(&buffer);
        buffer[..data.len()].fill(b' ');
        let error = result.expect_err("accepted a payload over 64 KiB");
        assert_eq!(error.code(), ErrorCode::InvalidPayload);
        assert!(
            error.message().contains("limit"),
            "an oversized payload was parsed before its size was checked: {}",
            error.message()
        );
    });
}
