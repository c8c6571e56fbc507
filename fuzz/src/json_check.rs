//! A second, independent reading of JSON text (RFC 8259, as serde_json accepts it) that the
//! payload target compares with `noxy::Payload::from_json_bytes`: a small recursive-descent
//! parser, written apart from the library's serde visitor, that compares object keys after
//! unescaping.

use std::collections::HashSet;

/// What the text is, as far as this parser can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Well-formed JSON whose top level is an object and where no object repeats a key;
    /// `depth` is the deepest nesting of arrays and objects (1 for `{}`).
    Object { depth: usize },
    /// Well-formed JSON whose top level is not an object.
    NotAnObject,
    /// Well-formed JSON with a repeated key in some object.
    DuplicateKey(String),
    /// Not JSON (or nested deeper than this parser follows).
    Invalid(&'static str),
}

/// Nesting this parser follows before it gives up (as `Invalid`); deeper than serde_json's
/// limit, so that it never decides for serde_json near that limit.
pub const MAX_DEPTH: usize = 200;

/// Reads `text` as one JSON document.
pub fn check(text: &str) -> Verdict {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        max_depth: 0,
        duplicate: None,
    };
    parser.skip_ws();
    let first = parser.peek();
    if let Err(reason) = parser.value() {
        return Verdict::Invalid(reason);
    }
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Verdict::Invalid("trailing characters");
    }
    if let Some(key) = parser.duplicate {
        return Verdict::DuplicateKey(key);
    }
    if first == Some(b'{') {
        Verdict::Object {
            depth: parser.max_depth,
        }
    } else {
        Verdict::NotAnObject
    }
}

/// True when no object anywhere in valid JSON `text` repeats a key (false for invalid JSON).
pub fn has_unique_keys(text: &str) -> bool {
    matches!(check(text), Verdict::Object { .. } | Verdict::NotAnObject)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
    /// The first repeated key seen (parsing goes on: the text must still be valid JSON).
    duplicate: Option<String>,
}

type Step = Result<(), &'static str>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect_word(&mut self, word: &[u8]) -> Step {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err("bad literal")
        }
    }

    fn value(&mut self) -> Step {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.expect_word(b"true"),
            Some(b'f') => self.expect_word(b"false"),
            Some(b'n') => self.expect_word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err("unexpected character"),
            None => Err("unexpected end"),
        }
    }

    fn enter(&mut self) -> Step {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        if self.depth > MAX_DEPTH {
            return Err("nested too deep for this parser");
        }
        Ok(())
    }

    fn object(&mut self) -> Step {
        self.enter()?;
        self.pos += 1; // '{'
        let mut keys = HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err("expected a key");
            }
            let key = self.string()?;
            self.skip_ws();
            if self.next() != Some(b':') {
                return Err("expected ':'");
            }
            self.skip_ws();
            self.value()?;
            if !keys.insert(key.clone()) && self.duplicate.is_none() {
                self.duplicate = Some(key);
            }
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err("expected ',' or '}'"),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self) -> Step {
        self.enter()?;
        self.pos += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value()?;
            self.skip_ws();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => break,
                _ => return Err("expected ',' or ']'"),
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Step {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err("leading zero");
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("expected a digit"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err("expected a digit after '.'");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("expected a digit in the exponent");
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = match self.next() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err("bad \\u escape"),
            };
            value = value * 16 + u32::from(digit);
        }
        Ok(value)
    }

    /// A string, unescaped.
    fn string(&mut self) -> Result<String, &'static str> {
        self.pos += 1; // '"'
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'b') => out.push(0x08),
                    Some(b'f') => out.push(0x0c),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'u') => {
                        let first = self.hex4()?;
                        let scalar = match first {
                            0xD800..=0xDBFF => {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err("lone leading surrogate");
                                }
                                let second = self.hex4()?;
                                if !(0xDC00..=0xDFFF).contains(&second) {
                                    return Err("leading surrogate without a trailing one");
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            }
                            0xDC00..=0xDFFF => return Err("lone trailing surrogate"),
                            other => other,
                        };
                        let c = char::from_u32(scalar).ok_or("not a scalar value")?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err("bad escape"),
                },
                Some(b) if b < 0x20 => return Err("control character in a string"),
                Some(b) => out.push(b),
            }
        }
        // The input is UTF-8 and escapes produce scalar values, so this cannot fail.
        String::from_utf8(out).map_err(|_| "not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(check("{}"), Verdict::Object { depth: 1 });
        assert_eq!(check(" {\"a\":[{}]}\n"), Verdict::Object { depth: 3 });
        assert_eq!(check("[1]"), Verdict::NotAnObject);
        assert_eq!(check("-0.5e+3"), Verdict::NotAnObject);
        assert_eq!(
            check(r#"{"a":1,"\u0061":2}"#),
            Verdict::DuplicateKey("a".into())
        );
        assert_eq!(
            check(r#"{"x":[{"k":1,"k":2}]}"#),
            Verdict::DuplicateKey("k".into())
        );
        assert_eq!(
            check(r#"{"\ud83d\ude00":1,"😀":2}"#),
            Verdict::DuplicateKey("😀".into())
        );
        for bad in [
            "",
            "{",
            "{,}",
            "{\"a\":1,}",
            "01",
            "1.",
            "1e",
            "-",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\t\"}",
            "{} x",
            "tru",
            "{'a':1}",
            "\u{feff}{}",
        ] {
            assert!(matches!(check(bad), Verdict::Invalid(_)), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(check(&deep), Verdict::Invalid(_)));
    }
}
