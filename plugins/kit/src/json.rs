//! A borrowed JSON tree: serde_json does the (strict, RFC 8259) parsing, and strings and keys
//! without escapes borrow from the input instead of being copied. Objects are small `Vec`s of
//! `(key, value)` pairs: events have a handful of keys, so a linear scan beats a map.
//!
//! Numbers keep serde_json's distinction: a literal without fraction or exponent that fits 64
//! bits is an integer (`30`, `-3`); `30.0`, `1e3` and integers beyond 64 bits are floats.
//!
//! Duplicate keys: the **last** occurrence wins (as with `serde_json::Value` and PostgreSQL
//! `jsonb`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON number as serde_json classifies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A non-negative integer literal that fits `u64`.
    PosInt(u64),
    /// A negative integer literal that fits `i64`.
    NegInt(i64),
    /// Anything else: a fraction, an exponent, or an integer too large for 64 bits.
    Float(f64),
}

impl Number {
    /// The value if the literal is a JSON integer (`30`, not `30.0`, not `1e3`).
    pub fn as_integer(self) -> Option<i128> {
        match self {
            Number::PosInt(n) => Some(i128::from(n)),
            Number::NegInt(n) => Some(i128::from(n)),
            Number::Float(_) => None,
        }
    }

    /// The value as a float (any JSON number).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::PosInt(n) => n as f64,
            Number::NegInt(n) => n as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::PosInt(n) => write!(f, "{n}"),
            Number::NegInt(n) => write!(f, "{n}"),
            // `{:?}` keeps the fraction visible: 30.0 prints as "30.0", not "30".
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// A JSON value borrowing from the input text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// A JSON object: its members in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a> {
    pub members: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Object<'a> {
    /// The member named `key` (the last one if the key is repeated).
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| short_eq(k, key))
            .map(|(_, v)| v)
    }
}

/// `a == b` for the short strings of the hot path (object keys, enum values), compared inline:
/// lengths first, then 8 bytes at a time. On wasm32 `==` on slices calls the out-of-line
/// `memcmp` even for a 6-byte key, which showed up in guest profiles.
#[inline]
pub(crate) fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut chunks_a = a.chunks_exact(8);
    let mut chunks_b = b.chunks_exact(8);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if word(x) != word(y) {
            return false;
        }
    }
    let (ra, rb) = (chunks_a.remainder(), chunks_b.remainder());
    ra.iter().zip(rb).all(|(x, y)| x == y)
}

impl Value<'_> {
    /// A short human description for issue messages: `30.0`, `"30"`, `true`, `null`,
    /// `an array`, `an object`. Long strings are cut.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => {
                const MAX: usize = 64;
                let cut = if s.len() > MAX {
                    let mut end = MAX;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    &s[..end]
                } else {
                    s.as_ref()
                };
                let quoted = serde_json::to_string(cut).unwrap_or_else(|_| "a string".to_owned());
                if cut.len() < s.len() {
                    format!("{quoted}…")
                } else {
                    quoted
                }
            }
            Value::Array(_) => "an array".to_owned(),
            Value::Object(_) => "an object".to_owned(),
        }
    }
}

/// Parses one JSON document. Errors carry serde_json's message (with line and column).
pub fn parse(text: &str) -> Result<Value<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor(PhantomData))
    }
}

struct ValueVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
    type Value = Value<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Value::Number(Number::PosInt(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Number(match u64::try_from(v) {
            Ok(u) => Number::PosInt(u),
            Err(_) => Number::NegInt(v),
        }))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Number(Number::Float(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Value::Object(Object { members }))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor(PhantomData))
    }
}

struct KeyVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
    type Value = Key<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_integer_vs_float() {
        let v = parse(r#"[30, 30.0, 1e3, -3, 18446744073709551616, -0]"#).unwrap();
        let Value::Array(items) = v else { panic!() };
        let nums: Vec<Option<i128>> = items
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_integer(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(nums, vec![Some(30), None, None, Some(-3), None, None]);
        assert_eq!(items[1].describe(), "30.0");
        assert_eq!(items[2].describe(), "1000.0");
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let v = parse(r#"{"a":"plain","b\u0041":"esc\"aped"}"#).unwrap();
        let Value::Object(o) = v else { panic!() };
        assert!(matches!(o.members[0].0, Cow::Borrowed("a")));
        assert!(matches!(
            o.get("a"),
            Some(Value::String(Cow::Borrowed("plain")))
        ));
        assert_eq!(o.get("bA"), Some(&Value::String("esc\"aped".into())));
    }

    #[test]
    fn short_eq_is_string_equality() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "eventId",
            "eventIe",
            "funnelStage",
            "funnelStagf",
            "clickPosition",
            "clickPositioN",
            "é",
            "e\u{301}",
            "percentageWatched",
        ];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn last_duplicate_key_wins() {
        let Value::Object(o) = parse(r#"{"k":1,"k":2}"#).unwrap() else {
            panic!()
        };
        assert_eq!(o.get("k"), Some(&Value::Number(Number::PosInt(2))));
    }

    #[test]
    fn invalid_json_is_an_error() {
        for bad in [
            "",
            "{",
            "{\"a\":1}x",
            "[1,]",
            "{'a':1}",
            "01",
            "NaN",
            "\"\u{1}\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn describe_cuts_long_strings() {
        let long = "é".repeat(100);
        let text = serde_json::to_string(&long).unwrap();
        let d = parse(&text).unwrap().describe();
        assert!(d.ends_with('…') && d.chars().count() < 40, "{d}");
    }
}
