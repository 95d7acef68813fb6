//! A small streaming JSON writer for no_std: no allocation, a fixed-depth stack, and errors
//! (never panics) for misuse such as a value without a key or nesting too deep.
//!
//! Output is pure ASCII: non-ASCII characters are written as `\uXXXX` escapes (surrogate
//! pairs above U+FFFF), so a serial console or Xen's byte-oriented console ring cannot mangle
//! it, and control characters are escaped, so one document is always one line.

use core::fmt;

/// The deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 32;

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// The underlying writer failed.
    Fmt,
    /// More than [`MAX_DEPTH`] nested containers.
    TooDeep,
    /// `key` outside an object.
    KeyOutsideObject,
    /// `key` twice in a row, or an object closed after a key without its value.
    KeyWithoutValue,
    /// A value inside an object without a `key` first.
    ValueWithoutKey,
    /// `end_object`/`end_array` that does not match the open container (or none is open).
    Unbalanced,
    /// A second value at the top level.
    AfterEnd,
    /// [`JsonWriter::finish`] with containers still open, or nothing written.
    Incomplete,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonError::Fmt => "the output writer failed",
            JsonError::TooDeep => "JSON nesting deeper than 32 levels",
            JsonError::KeyOutsideObject => "JSON key outside an object",
            JsonError::KeyWithoutValue => "JSON key without a value",
            JsonError::ValueWithoutKey => "JSON value in an object without a key",
            JsonError::Unbalanced => "JSON end of a container that is not open",
            JsonError::AfterEnd => "second JSON value at the top level",
            JsonError::Incomplete => "JSON document not complete",
        })
    }
}

impl From<fmt::Error> for JsonError {
    fn from(_: fmt::Error) -> Self {
        JsonError::Fmt
    }
}

impl From<JsonError> for fmt::Error {
    fn from(_: JsonError) -> Self {
        fmt::Error
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object { first: bool, key_pending: bool },
    Array { first: bool },
}

/// Writes one JSON document to a [`fmt::Write`], keeping track of commas and nesting.
pub struct JsonWriter<'a> {
    out: &'a mut dyn fmt::Write,
    stack: [Frame; MAX_DEPTH],
    depth: usize,
    top_written: bool,
}

impl fmt::Debug for JsonWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonWriter")
            .field("depth", &self.depth)
            .field("top_written", &self.top_written)
            .finish_non_exhaustive()
    }
}

impl<'a> JsonWriter<'a> {
    pub fn new(out: &'a mut dyn fmt::Write) -> Self {
        JsonWriter {
            out,
            stack: [Frame::Array { first: true }; MAX_DEPTH],
            depth: 0,
            top_written: false,
        }
    }

    /// Current nesting depth (0 at the top level).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Check that exactly one complete value was written.
    pub fn finish(&self) -> Result<(), JsonError> {
        if self.depth == 0 && self.top_written {
            Ok(())
        } else {
            Err(JsonError::Incomplete)
        }
    }

    fn top(&mut self) -> Option<&mut Frame> {
        self.depth.checked_sub(1).map(|i| &mut self.stack[i])
    }

    /// Bookkeeping before any value: key present in objects, comma in arrays.
    fn before_value(&mut self) -> Result<(), JsonError> {
        if self.depth == 0 {
            if self.top_written {
                return Err(JsonError::AfterEnd);
            }
            self.top_written = true;
            return Ok(());
        }
        let comma = match self.top() {
            None => false,
            Some(Frame::Object { key_pending, .. }) => {
                if !*key_pending {
                    return Err(JsonError::ValueWithoutKey);
                }
                *key_pending = false;
                false
            }
            Some(Frame::Array { first }) => !core::mem::replace(first, false),
        };
        if comma {
            self.out.write_char(',')?;
        }
        Ok(())
    }

    fn begin(&mut self, frame: Frame, open: char) -> Result<(), JsonError> {
        if self.depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.before_value()?;
        self.out.write_char(open)?;
        self.stack[self.depth] = frame;
        self.depth += 1;
        Ok(())
    }

    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.begin(
            Frame::Object {
                first: true,
                key_pending: false,
            },
            '{',
        )
    }

    pub fn end_object(&mut self) -> Result<(), JsonError> {
        match self.top() {
            Some(Frame::Object {
                key_pending: false, ..
            }) => {}
            Some(Frame::Object {
                key_pending: true, ..
            }) => {
                return Err(JsonError::KeyWithoutValue);
            }
            _ => return Err(JsonError::Unbalanced),
        }
        self.depth -= 1;
        self.out.write_char('}')?;
        Ok(())
    }

    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        self.begin(Frame::Array { first: true }, '[')
    }

    pub fn end_array(&mut self) -> Result<(), JsonError> {
        if !matches!(self.top(), Some(Frame::Array { .. })) {
            return Err(JsonError::Unbalanced);
        }
        self.depth -= 1;
        self.out.write_char(']')?;
        Ok(())
    }

    /// An object member's name; the next call must write its value.
    pub fn key(&mut self, name: &str) -> Result<(), JsonError> {
        let comma = match self.top() {
            Some(Frame::Object {
                key_pending: true, ..
            }) => {
                return Err(JsonError::KeyWithoutValue);
            }
            Some(Frame::Object { first, key_pending }) => {
                *key_pending = true;
                !core::mem::replace(first, false)
            }
            _ => return Err(JsonError::KeyOutsideObject),
        };
        if comma {
            self.out.write_char(',')?;
        }
        write_escaped(self.out, name)?;
        self.out.write_char(':')?;
        Ok(())
    }

    pub fn str(&mut self, value: &str) -> Result<(), JsonError> {
        self.before_value()?;
        write_escaped(self.out, value)?;
        Ok(())
    }

    pub fn u64(&mut self, value: u64) -> Result<(), JsonError> {
        self.before_value()?;
        write!(self.out, "{value}")?;
        Ok(())
    }

    pub fn i64(&mut self, value: i64) -> Result<(), JsonError> {
        self.before_value()?;
        write!(self.out, "{value}")?;
        Ok(())
    }

    /// A finite number; NaN and infinities (which JSON cannot express) become `null`.
    pub fn f64(&mut self, value: f64) -> Result<(), JsonError> {
        self.before_value()?;
        if value.is_finite() {
            // Rust's shortest round-trip forms ("{}" and "{:e}") are valid JSON numbers. Very
            // large or small magnitudes use the exponent form: "{}" would write all 309 digits
            // of f64::MAX, which some parsers refuse.
            let magnitude = value.abs();
            if magnitude != 0.0 && !(1e-6..1e16).contains(&magnitude) {
                write!(self.out, "{value:e}")?;
            } else {
                write!(self.out, "{value}")?;
            }
        } else {
            self.out.write_str("null")?;
        }
        Ok(())
    }

    pub fn bool(&mut self, value: bool) -> Result<(), JsonError> {
        self.before_value()?;
        self.out.write_str(if value { "true" } else { "false" })?;
        Ok(())
    }

    pub fn null(&mut self) -> Result<(), JsonError> {
        self.before_value()?;
        self.out.write_str("null")?;
        Ok(())
    }

    /// `"name":"value"`.
    pub fn str_field(&mut self, name: &str, value: &str) -> Result<(), JsonError> {
        self.key(name)?;
        self.str(value)
    }

    /// `"name":value`.
    pub fn u64_field(&mut self, name: &str, value: u64) -> Result<(), JsonError> {
        self.key(name)?;
        self.u64(value)
    }

    /// `"name":true|false`.
    pub fn bool_field(&mut self, name: &str, value: bool) -> Result<(), JsonError> {
        self.key(name)?;
        self.bool(value)
    }
}

/// Write `s` as a JSON string literal, ASCII only.
pub fn write_escaped(out: &mut dyn fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let plain = c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\';
        if plain {
            continue;
        }
        out.write_str(&s[plain_from..i])?;
        plain_from = i + c.len_utf8();
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}")?;
                }
            }
        }
    }
    out.write_str(&s[plain_from..])?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(f: impl FnOnce(&mut JsonWriter<'_>) -> Result<(), JsonError>) -> String {
        let mut s = String::new();
        let mut w = JsonWriter::new(&mut s);
        f(&mut w).unwrap();
        w.finish().unwrap();
        s
    }

    fn err(f: impl FnOnce(&mut JsonWriter<'_>) -> Result<(), JsonError>) -> JsonError {
        let mut s = String::new();
        let mut w = JsonWriter::new(&mut s);
        f(&mut w).unwrap_err()
    }

    #[test]
    fn nested_document() {
        let s = doc(|w| {
            w.begin_object()?;
            w.str_field("a", "x")?;
            w.key("b")?;
            w.begin_array()?;
            w.u64(1)?;
            w.i64(-2)?;
            w.f64(0.5)?;
            w.bool(true)?;
            w.null()?;
            w.begin_object()?;
            w.end_object()?;
            w.begin_array()?;
            w.end_array()?;
            w.end_array()?;
            w.u64_field("c", u64::MAX)?;
            w.key("d")?;
            w.i64(i64::MIN)?;
            w.bool_field("e", false)?;
            w.end_object()
        });
        assert_eq!(
            s,
            r#"{"a":"x","b":[1,-2,0.5,true,null,{},[]],"c":18446744073709551615,"d":-9223372036854775808,"e":false}"#
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["c"].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn scalars_at_top_level() {
        assert_eq!(doc(|w| w.u64(7)), "7");
        assert_eq!(doc(|w| w.str("")), r#""""#);
        assert_eq!(doc(|w| w.null()), "null");
    }

    #[test]
    fn floats() {
        for (v, text) in [
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (f64::NEG_INFINITY, "null"),
            (1.0, "1"),
            (-0.0, "-0"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1e16, "1e16"),
            (-2.5e300, "-2.5e300"),
            (123456789.5, "123456789.5"),
        ] {
            assert_eq!(doc(|w| w.f64(v)), text);
        }
        for v in [f64::MAX, f64::MIN_POSITIVE, 1.5e300, -3.25, 5e-324] {
            let s = doc(|w| w.f64(v));
            let back: f64 = serde_json::from_str(&s).unwrap();
            assert_eq!(back, v, "{s}");
        }
    }

    #[test]
    fn escaping() {
        let hostile = "q\"b\\s/\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1f600}</script>";
        let s = doc(|w| w.str(hostile));
        assert_eq!(
            s,
            r#""q\"b\\s/\n\r\t\b\f\u0000\u001f\u007f\u00e9\u2028\ud83d\ude00</script>""#
        );
        assert!(s.is_ascii() && !s.contains('\n'));
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, hostile);
        // Keys are escaped the same way.
        let s = doc(|w| {
            w.begin_object()?;
            w.str_field("k\"\n", "v")?;
            w.end_object()
        });
        assert_eq!(s, r#"{"k\"\n":"v"}"#);
        // Every char below 0x80 round-trips.
        let all: String = (0u8..0x80).map(char::from).collect();
        let back: String = serde_json::from_str(&doc(|w| w.str(&all))).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn depth_limit() {
        let mut s = String::new();
        let mut w = JsonWriter::new(&mut s);
        for _ in 0..MAX_DEPTH {
            w.begin_array().unwrap();
        }
        assert_eq!(w.begin_array(), Err(JsonError::TooDeep));
        assert_eq!(w.begin_object(), Err(JsonError::TooDeep));
        assert_eq!(w.depth(), MAX_DEPTH);
        for _ in 0..MAX_DEPTH {
            w.end_array().unwrap();
        }
        w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v.is_array());
    }

    #[test]
    fn misuse_is_an_error() {
        assert_eq!(err(|w| w.end_object()), JsonError::Unbalanced);
        assert_eq!(err(|w| w.end_array()), JsonError::Unbalanced);
        assert_eq!(err(|w| w.key("a")), JsonError::KeyOutsideObject);
        assert_eq!(
            err(|w| {
                w.begin_array()?;
                w.key("a")
            }),
            JsonError::KeyOutsideObject
        );
        assert_eq!(
            err(|w| {
                w.begin_object()?;
                w.u64(1)
            }),
            JsonError::ValueWithoutKey
        );
        assert_eq!(
            err(|w| {
                w.begin_object()?;
                w.key("a")?;
                w.key("b")
            }),
            JsonError::KeyWithoutValue
        );
        assert_eq!(
            err(|w| {
                w.begin_object()?;
                w.key("a")?;
                w.end_object()
            }),
            JsonError::KeyWithoutValue
        );
        assert_eq!(
            err(|w| {
                w.begin_object()?;
                w.end_array()
            }),
            JsonError::Unbalanced
        );
        assert_eq!(
            err(|w| {
                w.begin_array()?;
                w.end_object()
            }),
            JsonError::Unbalanced
        );
        assert_eq!(
            err(|w| {
                w.u64(1)?;
                w.u64(2)
            }),
            JsonError::AfterEnd
        );
        let mut s = String::new();
        let mut w = JsonWriter::new(&mut s);
        assert_eq!(w.finish(), Err(JsonError::Incomplete));
        w.begin_object().unwrap();
        assert_eq!(w.finish(), Err(JsonError::Incomplete));
        assert_eq!(
            JsonError::TooDeep.to_string(),
            "JSON nesting deeper than 32 levels"
        );
    }

    #[test]
    fn writer_failure_propagates() {
        struct Full(usize);
        impl fmt::Write for Full {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 = self.0.checked_sub(s.len()).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut out = Full(3);
        let mut w = JsonWriter::new(&mut out);
        w.begin_array().unwrap();
        assert_eq!(w.str("long string"), Err(JsonError::Fmt));
        assert!(format!("{:?}", w).contains("depth: 1"));
    }
}
