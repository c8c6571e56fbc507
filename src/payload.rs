//! The decision payload: a JSON object, serialised compactly as UTF-8, checked before encryption.

use serde::Serialize;

use crate::error::{Error, Result};

/// The largest payload accepted, in bytes of compact UTF-8 JSON (64 KiB). Devices show a
/// decision on a phone; anything larger is almost certainly a mistake, and every byte is
/// encrypted once per device.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A validated decision payload: the exact compact UTF-8 JSON bytes that will be encrypted.
///
/// By convention an object with `kind`, `tool`, `args`, `title`, `summary`. It must be a JSON
/// object at the top level: the iOS device drops a decision whose payload is an array or a
/// scalar.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    json: Vec<u8>,
}

impl Payload {
    /// Parses JSON text; rejects non-JSON, a top-level array or scalar, and oversized input.
    /// The text is re-serialised compactly (insignificant whitespace removed).
    pub fn from_json_str(text: &str) -> Result<Payload> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_payload(format!("payload is not valid JSON: {e}")))?;
        Payload::from_value(&value)
    }

    /// Like [`Payload::from_json_str`], for bytes that must also be valid UTF-8.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Payload> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::invalid_payload(format!("payload is not valid UTF-8: {e}")))?;
        Payload::from_json_str(text)
    }

    /// From a JSON value, which must be an object.
    pub fn from_value(value: &serde_json::Value) -> Result<Payload> {
        if !value.is_object() {
            return Err(Error::invalid_payload(format!(
                "payload must be a JSON object at the top level, not {} (devices drop those)",
                json_kind(value)
            )));
        }
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::invalid_payload(format!("payload cannot be serialised: {e}")))?;
        Payload::from_compact(json)
    }

    /// From any serialisable type whose JSON form is an object.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Payload> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::invalid_payload(format!("payload cannot be serialised: {e}")))?;
        Payload::from_value(&value)
    }

    fn from_compact(json: Vec<u8>) -> Result<Payload> {
        if json.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::invalid_payload(format!(
                "payload is {} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}",
                json.len()
            )));
        }
        Ok(Payload { json })
    }

    /// The exact bytes that are encrypted for every device.
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// SHA-256 of [`Payload::as_bytes`]: what a host can compare with what was approved.
    pub fn sha256(&self) -> [u8; 32] {
        crate::crypto::sha256(&self.json)
    }
}

impl std::fmt::Debug for Payload {
    // Payloads may hold secrets of the host's own: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.json.len())
    }
}

impl TryFrom<&str> for Payload {
    type Error = Error;
    fn try_from(text: &str) -> Result<Payload> {
        Payload::from_json_str(text)
    }
}

impl TryFrom<serde_json::Value> for Payload {
    type Error = Error;
    fn try_from(value: serde_json::Value) -> Result<Payload> {
        Payload::from_value(&value)
    }
}

impl TryFrom<&serde_json::Value> for Payload {
    type Error = Error;
    fn try_from(value: &serde_json::Value) -> Result<Payload> {
        Payload::from_value(value)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn objects_are_serialised_compactly() {
        let payload =
            Payload::from_json_str("{ \"kind\" : \"tool\",\n \"args\": [1, 2] }").unwrap();
        assert_eq!(payload.as_bytes(), br#"{"kind":"tool","args":[1,2]}"#);
        let from_value = Payload::from_value(&serde_json::json!({"a": "é"})).unwrap();
        assert_eq!(from_value.as_bytes(), "{\"a\":\"é\"}".as_bytes());
    }

    #[test]
    fn serialisable_types_are_accepted() {
        #[derive(Serialize)]
        struct Transfer {
            kind: &'static str,
            amount: u64,
        }
        let payload = Payload::from_serialize(&Transfer {
            kind: "transfer",
            amount: 12,
        })
        .unwrap();
        assert_eq!(payload.as_bytes(), br#"{"kind":"transfer","amount":12}"#);
        let err = Payload::from_serialize(&vec![1, 2]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload);
    }

    #[test]
    fn non_objects_and_non_json_are_rejected() {
        for bad in [
            "[]", "[1]", "1", "\"s\"", "true", "null", "", "{", "{\"a\":}", "{} {}",
        ] {
            let err = Payload::from_json_str(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidPayload, "{bad:?}");
        }
        let err = Payload::from_json_str("[1]").unwrap_err();
        assert!(err.message().contains("an array"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = Payload::from_json_bytes(b"{\"a\":\"\xff\"}").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload);
        assert!(err.message().contains("UTF-8"));
    }

    #[test]
    fn size_limit_is_enforced_on_the_compact_form() {
        let fits = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES - 8));
        assert_eq!(
            Payload::from_json_str(&fits).unwrap().as_bytes().len(),
            MAX_PAYLOAD_BYTES
        );
        let too_big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES - 7));
        let err = Payload::from_json_str(&too_big).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPayload);
        assert!(err.message().contains("limit"));
    }

    #[test]
    fn digest_is_of_the_exact_bytes() {
        let payload = Payload::from_json_str("{ \"a\": 1 }").unwrap();
        assert_eq!(payload.sha256(), crate::crypto::sha256(br#"{"a":1}"#));
    }
}
