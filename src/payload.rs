//! The decision payload: a JSON object, checked before encryption, encrypted byte for byte.
//!
//! JSON text the host passes ([`Payload::from_json_bytes`], [`Payload::from_json_str`], and
//! every payload of the C ABI) is validated and then encrypted **exactly as given**: nothing is
//! re-serialised, so the SHA-256 a send result reports is the digest of the host's own bytes,
//! which the host can compute itself. Validation refuses what would make the person and the
//! host read different things: text that is not UTF-8 JSON, a top level that is not an object
//! (devices drop those), and duplicate keys in any object at any depth (`{"amount":"1",
//! "amount":"1000"}`: one parser shows the first value, another executes the last).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;

use crate::error::{Error, Result};

/// The largest payload accepted, in bytes of UTF-8 JSON as given (64 KiB). Devices show a
/// decision on a phone; anything larger is almost certainly a mistake, and every byte is
/// encrypted once per device.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A validated decision payload: the exact UTF-8 JSON bytes that will be encrypted.
///
/// By convention an object with `kind`, `tool`, `args`, `title`, `summary`.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    json: Vec<u8>,
}

impl Payload {
    /// Validates JSON text and keeps it exactly as given (whitespace included).
    ///
    /// # Errors
    /// [`ErrorCode::InvalidPayload`](crate::ErrorCode::InvalidPayload) for text that is not
    /// JSON, a top level that is not an object, a duplicate key in any object, nesting deeper
    /// than 128 levels, or more than [`MAX_PAYLOAD_BYTES`] bytes.
    pub fn from_json_str(text: &str) -> Result<Payload> {
        Payload::from_json_bytes(text.as_bytes())
    }

    /// Like [`Payload::from_json_str`], for bytes that must also be valid UTF-8.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Payload> {
        validate_json_object(bytes)?;
        Ok(Payload {
            json: bytes.to_vec(),
        })
    }

    /// From a JSON value, which must be an object; serialised compactly.
    pub fn from_value(value: &serde_json::Value) -> Result<Payload> {
        if !value.is_object() {
            return Err(not_an_object(json_kind(value)));
        }
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::invalid_payload(format!("payload cannot be serialised: {e}")))?;
        check_size(json.len())?;
        Ok(Payload { json })
    }

    /// From any serialisable type whose JSON form is an object; serialised compactly.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Payload> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::invalid_payload(format!("payload cannot be serialised: {e}")))?;
        Payload::from_value(&value)
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

impl fmt::Debug for Payload {
    // Payloads may hold secrets of the host's own: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

fn check_size(len: usize) -> Result<()> {
    if len > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid_payload(format!(
            "payload is {len} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}"
        )));
    }
    Ok(())
}

fn not_an_object(kind: &str) -> Error {
    Error::invalid_payload(format!(
        "payload must be a JSON object at the top level, not {kind} (devices drop those)"
    ))
}

/// The whole check of host-given JSON text, without building a value.
fn validate_json_object(bytes: &[u8]) -> Result<()> {
    check_size(bytes.len())?;
    std::str::from_utf8(bytes)
        .map_err(|e| Error::invalid_payload(format!("payload is not valid UTF-8: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    UniqueKeys::deserialize(&mut deserializer)
        .and_then(|_| deserializer.end())
        .map_err(|e| Error::invalid_payload(format!("payload is not valid JSON: {e}")))?;
    // The shape is read from the text itself once it is known to be valid JSON: with serde_json's
    // `arbitrary_precision` a bare number reaches a visitor as a map, so a visitor cannot tell.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(b'[') => Err(not_an_object("an array")),
        Some(b'"') => Err(not_an_object("a string")),
        Some(b't' | b'f') => Err(not_an_object("a boolean")),
        Some(b'n') => Err(not_an_object("null")),
        _ => Err(not_an_object("a number")),
    }
}

/// Walks any JSON value, failing on the first object that repeats a key. Keys are compared
/// after unescaping (`"a"` and `"\u0061"` are the same key). serde_json bounds the depth.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UniqueKeys, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            map.next_value::<UniqueKeys>()?;
            if let Some(repeated) = seen.replace(key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {repeated:?} in an object"
                )));
            }
        }
        Ok(UniqueKeys)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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

    fn invalid(text: &[u8]) -> Error {
        let err = Payload::from_json_bytes(text).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::InvalidPayload,
            "{:?}",
            String::from_utf8_lossy(text)
        );
        err
    }

    #[test]
    fn host_text_is_kept_byte_for_byte() {
        let text = "{ \"kind\" : \"tool\",\n \"args\": [1, 2.50, 1e3], \"big\": 123456789012345678901234567890 }\n";
        let payload = Payload::from_json_str(text).unwrap();
        assert_eq!(payload.as_bytes(), text.as_bytes());
        assert_eq!(payload.sha256(), crate::crypto::sha256(text.as_bytes()));
    }

    #[test]
    fn values_and_serialisable_types_are_serialised_compactly() {
        let from_value = Payload::from_value(&serde_json::json!({"a": "é"})).unwrap();
        assert_eq!(from_value.as_bytes(), "{\"a\":\"é\"}".as_bytes());
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
        for (bad, kind) in [
            ("[]", "an array"),
            ("[1]", "an array"),
            ("1", "a number"),
            ("-1.5e3", "a number"),
            ("123456789012345678901234567890", "a number"),
            ("\"s\"", "a string"),
            ("true", "a boolean"),
            (" null ", "null"),
        ] {
            let err = invalid(bad.as_bytes());
            assert!(err.message().contains(kind), "{bad}: {err}");
        }
        for bad in [
            "",
            " ",
            "{",
            "{\"a\":}",
            "{} {}",
            "{\"a\":1,}",
            "{'a':1}",
            "\u{feff}{}",
        ] {
            invalid(bad.as_bytes());
        }
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        for bad in [
            r#"{"to":"0xabc","amount":"1","amount":"1000"}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"outer":{"x":1,"y":{"k":[{"z":1,"z":2}]}}}"#,
            r#"{"list":[1,{"b":true,"b":false}]}"#,
        ] {
            let err = invalid(bad.as_bytes());
            assert!(err.message().contains("duplicate key"), "{bad}: {err}");
        }
        // The same key in different objects is fine.
        Payload::from_json_str(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).unwrap();
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        invalid(deep.as_bytes());
        let fine = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        Payload::from_json_str(&fine).unwrap();
    }

    #[test]
    fn invalid_utf8_and_lone_surrogates_are_rejected() {
        let err = invalid(b"{\"a\":\"\xff\"}");
        assert!(err.message().contains("UTF-8"));
        invalid(br#"{"a":"\ud800"}"#);
        invalid(b"{\"a\":\"x\x00\"}");
        Payload::from_json_str(r#"{"a":"\ud83d\ude00"}"#).unwrap();
    }

    #[test]
    fn size_limit_is_enforced_on_the_bytes_given() {
        let fits = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES - 8));
        assert_eq!(
            Payload::from_json_str(&fits).unwrap().as_bytes().len(),
            MAX_PAYLOAD_BYTES
        );
        let too_big = format!("{{\"a\":\"{}\"}} ", "x".repeat(MAX_PAYLOAD_BYTES - 8));
        let err = invalid(too_big.as_bytes());
        assert!(err.message().contains("limit"));
    }
}
