//! Python's `json` module output, reproduced byte for byte (spec §1.6).
//!
//! LeRobot writes `info.json` and `stats.json` with `json.dump(indent=4, ensure_ascii=False)`
//! and the parquet `huggingface` metadata with `json.dumps` (default separators). Python floats
//! are printed with `repr` (shortest round-trip digits, exponent form outside 1e-4 ≤ |x| < 1e16,
//! bare `NaN`/`Infinity`).
//!
//! `serde_json::Value` cannot hold NaN or infinities, so this module has its own value type,
//! [`PyValue`]; `stats_json` builds `PyValue`s directly. [`to_string`] converts a
//! `serde_json::Value` (whose floats are always finite) into the same output.

/// A JSON value as Python's `json` module sees it (floats may be NaN or infinite).
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    /// Members in insertion order.
    Dict(Vec<(String, PyValue)>),
}

impl From<&serde_json::Value> for PyValue {
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => PyValue::Null,
            J::Bool(b) => PyValue::Bool(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    PyValue::Int(i as i128)
                } else if let Some(u) = n.as_u64() {
                    PyValue::Int(u as i128)
                } else {
                    PyValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => PyValue::Str(s.clone()),
            J::Array(a) => PyValue::List(a.iter().map(PyValue::from).collect()),
            J::Object(o) => PyValue::Dict(
                o.iter()
                    .map(|(k, v)| (k.clone(), PyValue::from(v)))
                    .collect(),
            ),
        }
    }
}

/// `json.dump(v, indent=4, ensure_ascii=False)` of a `serde_json::Value`, no trailing newline.
pub fn to_string(v: &serde_json::Value) -> String {
    to_string_py(&PyValue::from(v))
}

/// `json.dump(v, indent=4, ensure_ascii=False)` of a [`PyValue`], no trailing newline.
pub fn to_string_py(v: &PyValue) -> String {
    let mut out = String::new();
    write_indented(v, 0, &mut out);
    out
}

/// `json.dumps(v)` with default separators (`", "` and `": "`), `ensure_ascii=False`.
pub fn dumps_compact(v: &PyValue) -> String {
    let mut out = String::new();
    write_compact(v, &mut out);
    out
}

/// Python `repr(float)`: `0.1`, `1e-10`, `1.5e-05`, `1e+16`, `30.0`, `NaN`, `Infinity`, `-Infinity`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Shortest round-trip digits in scientific form, e.g. "-1.5e-5".
    let sci = format!("{x:e}");
    let (mant, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let nd = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= nd {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - nd) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let es = if exp < 0 { "-" } else { "+" };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    }
}

/// A JSON string literal as Python writes it with `ensure_ascii=False`.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(v: &PyValue, out: &mut String) -> bool {
    match v {
        PyValue::Null => out.push_str("null"),
        PyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PyValue::Int(i) => out.push_str(&i.to_string()),
        PyValue::Float(f) => out.push_str(&float_repr(*f)),
        PyValue::Str(s) => out.push_str(&string_literal(s)),
        PyValue::List(_) | PyValue::Dict(_) => return false,
    }
    true
}

fn write_indented(v: &PyValue, level: usize, out: &mut String) {
    if scalar(v, out) {
        return;
    }
    let pad = |n: usize, out: &mut String| {
        out.push('\n');
        out.push_str(&" ".repeat(4 * n));
    };
    match v {
        PyValue::List(items) if items.is_empty() => out.push_str("[]"),
        PyValue::Dict(items) if items.is_empty() => out.push_str("{}"),
        PyValue::List(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(level + 1, out);
                write_indented(it, level + 1, out);
            }
            pad(level, out);
            out.push(']');
        }
        PyValue::Dict(items) => {
            out.push('{');
            for (i, (k, it)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(level + 1, out);
                out.push_str(&string_literal(k));
                out.push_str(": ");
                write_indented(it, level + 1, out);
            }
            pad(level, out);
            out.push('}');
        }
        _ => {}
    }
}

fn write_compact(v: &PyValue, out: &mut String) {
    if scalar(v, out) {
        return;
    }
    match v {
        PyValue::List(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact(it, out);
            }
            out.push(']');
        }
        PyValue::Dict(items) => {
            out.push('{');
            for (i, (k, it)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&string_literal(k));
                out.push_str(": ");
                write_compact(it, out);
            }
            out.push('}');
        }
        _ => {}
    }
}

/// Deepest nesting of lists and objects [`parse_py`] accepts (LeRobot's files nest 4 deep).
pub const MAX_DEPTH: usize = 128;

/// Memory per JSON value that [`check_value_budget`] assumes for a [`PyValue`] tree: the
/// value, and as much again for the spare capacity of the list holding it.
pub const PY_VALUE_COST: usize = 2 * std::mem::size_of::<PyValue>();

/// The same for a `serde_json::Value` tree (objects keep their order: an index map).
pub const SERDE_VALUE_COST: usize = 2 * std::mem::size_of::<serde_json::Value>();

/// Refuses a JSON document whose parsed tree would take more than 8 × its text + 1 MiB of
/// memory, assuming `cost` bytes per value (the `*_VALUE_COST` constants).
///
/// A value costs far more as a tree than as text (`0,` is 2 bytes of text, 32 bytes as a
/// [`PyValue`], 80 as a `serde_json::Value`), so a small dense file could take gigabytes.
/// This counts the values in one pass without allocating (every `[`, `{`, `,` and `:` outside
/// strings starts one). Files written by Python's `json.dump(indent=4)`, as LeRobot writes
/// its metadata, hold a value per 10 bytes or more and stay far below the limit.
pub fn check_value_budget(text: &str, cost: usize) -> Result<(), String> {
    let mut values = 1u64;
    let (mut in_str, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' | b',' | b':' => values += 1,
            _ => {}
        }
    }
    let need = values.saturating_mul(cost as u64);
    let allowed = 8 * text.len() as u64 + (1 << 20);
    if need > allowed {
        return Err(format!(
            "{values} JSON values in {} bytes would take about {need} bytes of memory (more than 8 × the text + 1 MiB)",
            text.len()
        ));
    }
    Ok(())
}

/// Parses JSON written by Python, which may contain the bare tokens `NaN`, `Infinity` and
/// `-Infinity` (not valid JSON for `serde_json`). Returns `None` on malformed input, on
/// input nested deeper than [`MAX_DEPTH`] (the parser recurses once per level), and on input
/// too dense for its size ([`check_value_budget`]).
pub fn parse_py(text: &str) -> Option<PyValue> {
    check_value_budget(text, PY_VALUE_COST).ok()?;
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self
            .s
            .get(self.i..)
            .is_some_and(|r| r.starts_with(lit.as_bytes()))
        {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Option<PyValue> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self) -> Option<PyValue> {
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Some(PyValue::Dict(items));
                }
                loop {
                    self.ws();
                    let k = match self.value()? {
                        PyValue::Str(k) => k,
                        _ => return None,
                    };
                    self.ws();
                    if !self.eat(":") {
                        return None;
                    }
                    let v = self.value()?;
                    items.push((k, v));
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Some(PyValue::Dict(items));
                    }
                    return None;
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Some(PyValue::List(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Some(PyValue::List(items));
                    }
                    return None;
                }
            }
            b'"' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'\\' => self.i += 2,
                        b'"' => {
                            self.i += 1;
                            let lit = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                            return serde_json::from_str::<String>(lit).ok().map(PyValue::Str);
                        }
                        _ => self.i += 1,
                    }
                }
                None
            }
            b'n' if self.eat("null") => Some(PyValue::Null),
            b't' if self.eat("true") => Some(PyValue::Bool(true)),
            b'f' if self.eat("false") => Some(PyValue::Bool(false)),
            b'N' if self.eat("NaN") => Some(PyValue::Float(f64::NAN)),
            b'I' if self.eat("Infinity") => Some(PyValue::Float(f64::INFINITY)),
            b'-' if self.eat("-Infinity") => Some(PyValue::Float(f64::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                let mut is_float = false;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'0'..=b'9' | b'-' | b'+' => {}
                        b'.' | b'e' | b'E' => is_float = true,
                        _ => break,
                    }
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                if is_float {
                    t.parse::<f64>().ok().map(PyValue::Float)
                } else {
                    t.parse::<i128>().ok().map(PyValue::Int)
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: [(f64, &str); 22] = [
            (0.1, "0.1"),
            (1e-10, "1e-10"),
            (-1e-10, "-1e-10"),
            (1.5e-05, "1.5e-05"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (30.0, "30.0"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (123.456, "123.456"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (0.6666666666666666, "0.6666666666666666"),
            (1.1666666666666665, "1.1666666666666665"),
            (8.428571428571429, "8.428571428571429"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.033333335_f32 as f64, "0.03333333507180214"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "repr of {x:e}");
        }
    }

    #[test]
    fn indent_and_compact_layout() {
        let v = serde_json::json!({"a": [1, 2.5], "b": {}, "c": [], "d": null, "é\"": "x\ny\u{1}"});
        assert_eq!(
            to_string(&v),
            "{\n    \"a\": [\n        1,\n        2.5\n    ],\n    \"b\": {},\n    \"c\": [],\n    \"d\": null,\n    \"é\\\"\": \"x\\ny\\u0001\"\n}"
        );
        assert_eq!(
            dumps_compact(&PyValue::from(&v)),
            "{\"a\": [1, 2.5], \"b\": {}, \"c\": [], \"d\": null, \"é\\\"\": \"x\\ny\\u0001\"}"
        );
    }

    #[test]
    fn parse_accepts_python_tokens() {
        let v = parse_py("{\"a\": [NaN, Infinity, -Infinity, -1.5e-05, 3], \"s\": \"\\u00e9\"}")
            .unwrap();
        let PyValue::Dict(items) = v else { panic!() };
        let PyValue::List(a) = &items[0].1 else {
            panic!()
        };
        assert!(matches!(a[0], PyValue::Float(x) if x.is_nan()));
        assert_eq!(a[1], PyValue::Float(f64::INFINITY));
        assert_eq!(a[2], PyValue::Float(f64::NEG_INFINITY));
        assert_eq!(a[3], PyValue::Float(-1.5e-05));
        assert_eq!(a[4], PyValue::Int(3));
        assert_eq!(items[1].1, PyValue::Str("é".into()));
        assert!(parse_py("{\"a\": }").is_none());
        assert!(parse_py("garbage").is_none());
    }
}
