//! Result rendering (`cli.md` §4): PTable 0.9.2-compatible tables, Python `csv` output, and
//! pretty JSON (`-m json`, an extension).

use serde_json::{Map, Value};
use unicode_width::UnicodeWidthStr;

/// Output mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    Csv,
    Json,
}

impl Mode {
    pub const NAMES: &'static str = "csv, json, table";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "table" => Some(Self::Table),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// Table cells and bare scalars longer than this (in code points) are truncated.
pub const MAX_CELL: usize = 64;

/// What a decoded ejson value is, in Python terms.
enum Kind<'a> {
    Null,
    Bool(bool),
    Num(&'a serde_json::Number),
    Str(&'a str),
    /// datetime / date / time, already in `isoformat()`.
    Date(String),
    List(&'a [Value]),
    Set,
    Dict(&'a Map<String, Value>),
}

fn kind(v: &Value) -> Kind<'_> {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(b) => Kind::Bool(*b),
        Value::Number(n) => Kind::Num(n),
        Value::String(s) => Kind::Str(s),
        Value::Array(a) => Kind::List(a),
        Value::Object(m) => {
            if m.len() == 1 {
                if let Some(ms) = m.get("$date")
                    && let Some(ms) = ms.as_i64().or_else(|| ms.as_f64().map(|f| f as i64))
                {
                    return Kind::Date(iso_datetime(ms));
                }
                if let Some(Value::String(t)) = m.get("$time") {
                    return Kind::Date(t.clone());
                }
                if matches!(m.get("$set"), Some(Value::Array(_))) {
                    return Kind::Set;
                }
            }
            if m.len() == 2
                && m.get("$type").and_then(Value::as_str) == Some("date")
                && let Some(Value::String(d)) = m.get("$value")
            {
                return Kind::Date(d.clone());
            }
            Kind::Dict(m)
        }
    }
}

/// `datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()`.
pub fn iso_datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let micros = ms.rem_euclid(1000) * 1000;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if micros != 0 {
        format!(".{micros:06}")
    } else {
        String::new()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}+00:00",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// Python `repr(float)`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let m = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    if exp >= 0 {
        let point = exp as usize + 1;
        let (int, frac) = if digits.len() > point {
            (digits[..point].to_string(), digits[point..].to_string())
        } else {
            (
                format!("{digits}{}", "0".repeat(point - digits.len())),
                "0".to_string(),
            )
        };
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

/// A JSON number as Python prints it.
pub fn py_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        n.as_f64().map_or_else(|| n.to_string(), py_float)
    } else {
        n.to_string()
    }
}

/// midcli's "readable" conversion (§4.2); `None` for values shown as `<type>` / JSON.
fn readable(v: &Value) -> Option<String> {
    match kind(v) {
        Kind::Null => Some("<null>".into()),
        Kind::Bool(b) => Some(if b { "true" } else { "false" }.into()),
        Kind::Num(n) => Some(py_number(n)),
        Kind::Str(s) => Some(s.to_string()),
        Kind::Date(d) => Some(d),
        Kind::List([]) => Some("<empty list>".into()),
        Kind::List(items) => {
            let parts: Option<Vec<String>> = items.iter().map(readable).collect();
            parts.map(|p| p.join("\n"))
        }
        Kind::Set | Kind::Dict(_) => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match kind(v) {
        Kind::Set => "<set>",
        Kind::List(_) => "<list>",
        _ => "<dict>",
    }
}

/// Truncates every line longer than 64 code points to 61 plus `...`.
pub fn truncate_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            if line.chars().count() > MAX_CELL {
                let mut s: String = line.chars().take(MAX_CELL - 3).collect();
                s.push_str("...");
                s
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A value as a table cell (readable, else `<dict>`/`<list>`/`<set>`), truncated.
pub fn table_cell(v: &Value) -> String {
    truncate_lines(&readable(v).unwrap_or_else(|| type_name(v).to_string()))
}

/// A value as a CSV cell (readable, else Python-style JSON).
pub fn csv_cell(v: &Value) -> String {
    readable(v).unwrap_or_else(|| py_json(v))
}

/// Python `json.dumps(v)` (separators `", "`/`": "`, `ensure_ascii=True`).
pub fn py_json(v: &Value) -> String {
    let mut out = String::new();
    write_py_json(v, &mut out);
    out
}

fn write_py_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => py_json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_json(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_json_str(k, out);
                out.push_str(": ");
                write_py_json(item, out);
            }
            out.push('}');
        }
    }
}

fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && c as u32 != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Keeps only `columns` (server key order) in every dict of `v` and of a list `v`.
pub fn select_columns(v: Value, columns: &[String]) -> Value {
    let filter = |m: Map<String, Value>| -> Map<String, Value> {
        m.into_iter()
            .filter(|(k, _)| columns.iter().any(|c| c == k))
            .collect()
    };
    match v {
        Value::Object(m) => Value::Object(filter(m)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(m) => Value::Object(filter(m)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

/// midcli `_prepare_header`: union of keys; a new key goes right after its predecessor in its
/// own object, or at the end if it is the object's first key.
pub fn prepare_header(rows: &[&Map<String, Value>]) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    for row in rows {
        let mut prev: Option<&str> = None;
        for key in row.keys() {
            if !header.iter().any(|h| h == key) {
                match prev.and_then(|p| header.iter().position(|h| h == p)) {
                    Some(i) => header.insert(i + 1, key.clone()),
                    None => header.push(key.clone()),
                }
            }
            prev = Some(key);
        }
    }
    header
}

fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

fn rule(widths: &[usize]) -> String {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    s
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

fn pad(text: &str, w: usize, align: Align) -> String {
    let fill = " ".repeat(w.saturating_sub(width(text)));
    match align {
        Align::Left => format!("{text}{fill}"),
        Align::Right => format!("{fill}{text}"),
    }
}

fn table_rows(out: &mut Vec<String>, rows: &[Vec<String>], widths: &[usize], aligns: &[Align]) {
    for row in rows {
        let cells: Vec<Vec<&str>> = row.iter().map(|c| c.split('\n').collect()).collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            let mut s = String::from("|");
            for (i, cell) in cells.iter().enumerate() {
                let text = cell.get(line).copied().unwrap_or("");
                s.push(' ');
                s.push_str(&pad(text, widths[i], aligns[i]));
                s.push_str(" |");
            }
            out.push(s);
        }
    }
}

fn column_widths(header: Option<&[String]>, rows: &[Vec<String>], n: usize) -> Vec<usize> {
    let mut widths = vec![0usize; n];
    if let Some(h) = header {
        for (i, name) in h.iter().enumerate() {
            widths[i] = widths[i].max(name.split('\n').map(width).max().unwrap_or(0));
        }
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.split('\n').map(width).max().unwrap_or(0));
        }
    }
    widths
}

/// A list table: framed header, left-aligned columns.
pub fn list_table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths = column_widths(Some(header), rows, header.len());
    let aligns = vec![Align::Left; header.len()];
    let mut out = vec![rule(&widths)];
    table_rows(&mut out, &[header.to_vec()], &widths, &aligns);
    out.push(rule(&widths));
    table_rows(&mut out, rows, &widths, &aligns);
    out.push(rule(&widths));
    out.join("\n")
}

/// A vertical key/value table: keys right-aligned, no header row.
pub fn vertical_table(rows: &[Vec<String>]) -> String {
    let widths = column_widths(None, rows, 2);
    let mut out = vec![rule(&widths)];
    table_rows(&mut out, rows, &widths, &[Align::Right, Align::Left]);
    out.push(rule(&widths));
    out.join("\n")
}

/// Python `csv.writer` (QUOTE_MINIMAL, `\r\n`).
pub fn csv_rows(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for row in rows {
        let fields: Vec<String> = if row.len() == 1 && row[0].is_empty() {
            vec!["\"\"".to_string()]
        } else {
            row.iter()
                .map(|f| {
                    if f.contains([',', '"', '\r', '\n']) {
                        format!("\"{}\"", f.replace('"', "\"\""))
                    } else {
                        f.clone()
                    }
                })
                .collect()
        };
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Renders a result as midcli's display modes do. The text has no final newline (the caller
/// prints it with one, like Python `print`).
pub fn display(v: &Value, mode: Mode) -> String {
    if mode == Mode::Json {
        return serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    }
    let table = mode == Mode::Table;
    let cell = |v: &Value| if table { table_cell(v) } else { csv_cell(v) };
    match kind(v) {
        Kind::List([]) => {
            if table {
                "(empty list)".into()
            } else {
                String::new()
            }
        }
        Kind::List(items) => {
            if !matches!(kind(&items[0]), Kind::Dict(_)) {
                return items.iter().map(cell).collect::<Vec<_>>().join("\n");
            }
            let dicts: Vec<&Map<String, Value>> = items
                .iter()
                .filter_map(|i| match kind(i) {
                    Kind::Dict(m) => Some(m),
                    _ => None,
                })
                .collect();
            let header = prepare_header(&dicts);
            if header.is_empty() {
                return if table {
                    format!(
                        "(none of the specified fields found among {} object(s))",
                        items.len()
                    )
                } else {
                    format!(
                        "None of the specified fields found among {} object(s)",
                        items.len()
                    )
                };
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| {
                    header
                        .iter()
                        .map(|h| match item.get(h) {
                            Some(v) => cell(v),
                            None => "<undefined>".to_string(),
                        })
                        .collect()
                })
                .collect();
            if table {
                list_table(&header, &rows)
            } else {
                let mut all = vec![header];
                all.extend(rows);
                csv_rows(&all)
            }
        }
        Kind::Dict(m) if m.is_empty() => {
            if table {
                "(empty object)".into()
            } else {
                String::new()
            }
        }
        Kind::Dict(m) => {
            if table {
                let rows: Vec<Vec<String>> =
                    m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
                vertical_table(&rows)
            } else {
                let header: Vec<String> = m.keys().cloned().collect();
                let row: Vec<String> = m.values().map(cell).collect();
                csv_rows(&[header, row])
            }
        }
        _ => cell(v),
    }
}

/// Every string in `v` that starts with `otpauth://`.
pub fn find_otpauth(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("otpauth://") => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| find_otpauth(i, out)),
        Value::Object(m) => m.values().for_each(|i| find_otpauth(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_float_repr() {
        for (f, s) in [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-2.5, "-2.5"),
            (1000.0, "1000.0"),
            (0.1, "0.1"),
        ] {
            assert_eq!(py_float(f), s, "{f}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_datetime(1_697_637_268_000), "2023-10-18T13:54:28+00:00");
        assert_eq!(iso_datetime(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso_datetime(1_500), "1970-01-01T00:00:01.500000+00:00");
    }

    #[test]
    fn python_json() {
        assert_eq!(
            py_json(&json!({"ssh": false, "a": [1, "ü"]})),
            r#"{"ssh": false, "a": [1, "\u00fc"]}"#
        );
    }
}
