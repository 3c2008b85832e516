//! The "common syntax" argument grammar of midcli (`cli.md` §3.1–3.2):
//!
//! ```text
//! command   := args kwargs ["--"] [">" PRINTABLES+]
//! args      := ( value &WHITESPACE !"=" )*
//! kwargs    := ( NAME "=" value &WHITESPACE )*
//! value     := baseValue ( "," baseValue )+  |  baseValue
//! baseValue := OCT | HEX | JSON | STRING          (first match wins, no backtracking)
//! ```
//!
//! Errors are reported like pyparsing: `Expected end of text, found 'x'` plus the echoed line
//! and a caret under the first character that could not be consumed.
//!
//! JSON values are parsed recursively, so their nesting is bounded by [`MAX_NESTING`]: a deeper
//! `[`/`{` is a parse error, not a stack overflow.

use serde_json::{Map, Number, Value};

/// The parsed arguments of one command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedArgs {
    pub args: Vec<Value>,
    /// Keyword arguments in first-seen order; a repeated key keeps its first position and the
    /// last value (Python `dict(zip(...))`).
    pub kwargs: Vec<(String, Value)>,
    /// A trailing `--` (open the arguments editor).
    pub interactive: bool,
    /// `> file` (download target).
    pub output: Option<String>,
}

impl ParsedArgs {
    pub fn kwarg(&self, name: &str) -> Option<&Value> {
        self.kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// The deepest JSON nesting (`[`/`{` levels) an argument may have. Real arguments are a few
/// levels deep; the limit only keeps hostile input (`[[[[…`) from overflowing the stack.
pub const MAX_NESTING: usize = 64;

/// A parse error, already formatted for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Python `repr()` of a one-character string.
pub fn py_char_repr(c: char) -> String {
    match c {
        '\'' => "\"'\"".to_string(),
        '\\' => "'\\\\'".to_string(),
        '\n' => "'\\n'".to_string(),
        '\r' => "'\\r'".to_string(),
        '\t' => "'\\t'".to_string(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// `{msg}, found {repr(char)}` / `, found end of text`, then the line and a caret
/// (`cli.md` §3.2). `pos` is a char index into `text`.
pub fn format_error(msg: &str, text: &str, pos: usize) -> String {
    let found = match text.chars().nth(pos) {
        Some(c) => format!(", found {}", py_char_repr(c)),
        None => ", found end of text".to_string(),
    };
    // pyparsing reports the line containing `pos` and a 1-based column.
    let chars: Vec<char> = text.chars().collect();
    let line_start = chars[..pos.min(chars.len())]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    let line_end = chars[line_start..]
        .iter()
        .position(|&c| c == '\n')
        .map_or(chars.len(), |i| line_start + i);
    let line: String = chars[line_start..line_end].iter().collect();
    let column = pos - line_start + 1;
    format!("{msg}{found}\n {line}\n{}^", " ".repeat(column))
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_string_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '.' | '/' | '_' | '@')
}

fn is_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '_' | '@')
}

/// A failure inside a JSON string that must be reported (not merely "no match").
#[derive(Debug)]
struct Fatal {
    pos: usize,
    msg: String,
}

type Res<T> = Result<Option<(T, usize)>, Fatal>;

struct Scanner<'a> {
    s: &'a [char],
}

impl<'a> Scanner<'a> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while self.at(i).is_some_and(is_ws) {
            i += 1;
        }
        i
    }

    fn starts_with(&self, i: usize, lit: &str) -> bool {
        lit.chars()
            .enumerate()
            .all(|(k, c)| self.at(i + k) == Some(c))
    }

    fn name(&self, i: usize) -> Option<(String, usize)> {
        if !self.at(i)?.is_ascii_alphabetic() {
            return None;
        }
        let mut j = i + 1;
        while self
            .at(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            j += 1;
        }
        Some((self.s[i..j].iter().collect(), j))
    }

    fn radix_int(&self, i: usize, marker: char, radix: u32) -> Option<(Value, usize)> {
        if self.at(i) != Some('0') || self.at(i + 1).map(|c| c.to_ascii_lowercase()) != Some(marker)
        {
            return None;
        }
        let mut j = i + 2;
        while self.at(j).is_some_and(|c| c.is_digit(radix)) {
            j += 1;
        }
        if j == i + 2 {
            return None;
        }
        let digits: String = self.s[i + 2..j].iter().collect();
        let v = match u64::from_str_radix(&digits, radix) {
            Ok(n) => Value::Number(n.into()),
            Err(_) => float_value(digits.chars().fold(0f64, |acc, d| {
                acc * f64::from(radix) + f64::from(d.to_digit(radix).unwrap_or(0))
            })),
        };
        Some((v, j))
    }

    fn unquoted(&self, i: usize) -> Option<(Value, usize)> {
        if !self.at(i).is_some_and(is_string_start) {
            return None;
        }
        let mut j = i + 1;
        while self.at(j).is_some_and(is_string_char) {
            j += 1;
        }
        Some((Value::String(self.s[i..j].iter().collect()), j))
    }

    /// pyparsing's number: `[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`; int unless `.`/exponent.
    fn number(&self, i: usize) -> Option<(Value, usize)> {
        let mut j = i;
        if matches!(self.at(j), Some('+' | '-')) {
            j += 1;
        }
        let int_start = j;
        while self.at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        let int_digits = j - int_start;
        let mut is_float = false;
        if self.at(j) == Some('.') {
            let mut k = j + 1;
            while self.at(k).is_some_and(|c| c.is_ascii_digit()) {
                k += 1;
            }
            if int_digits > 0 || k > j + 1 {
                is_float = true;
                j = k;
            }
        }
        if int_digits == 0 && !is_float {
            return None;
        }
        if matches!(self.at(j), Some('e' | 'E')) {
            let mut k = j + 1;
            if matches!(self.at(k), Some('+' | '-')) {
                k += 1;
            }
            let exp_start = k;
            while self.at(k).is_some_and(|c| c.is_ascii_digit()) {
                k += 1;
            }
            if k > exp_start {
                is_float = true;
                j = k;
            }
        }
        let text: String = self.s[i..j].iter().collect();
        let text = text.strip_prefix('+').unwrap_or(&text);
        let v = if is_float {
            float_value(text.parse::<f64>().unwrap_or(0.0))
        } else if let Ok(n) = text.parse::<i64>() {
            Value::Number(n.into())
        } else if let Ok(n) = text.parse::<u64>() {
            Value::Number(n.into())
        } else {
            float_value(text.parse::<f64>().unwrap_or(0.0))
        };
        Some((v, j))
    }

    fn keyword(&self, i: usize, kw: &str) -> Option<usize> {
        if !self.starts_with(i, kw) {
            return None;
        }
        let end = i + kw.chars().count();
        // pyparsing Keyword: not followed by an identifier character.
        if self
            .at(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return None;
        }
        Some(end)
    }

    fn json_string(&self, i: usize) -> Res<Value> {
        if self.at(i) != Some('"') {
            return Ok(None);
        }
        let mut out = String::new();
        let mut j = i + 1;
        loop {
            match self.at(j) {
                None | Some('\n' | '\r') => return Ok(None),
                Some('"') => return Ok(Some((Value::String(out), j + 1))),
                Some('\\') => {
                    let esc = self.at(j + 1);
                    match esc {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('/') => out.push('/'),
                        Some('b') => out.push('\u{8}'),
                        Some('f') => out.push('\u{c}'),
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('u') => {
                            let hex = |k: usize| -> Option<u32> {
                                let h: String = self.s.get(k..k + 4)?.iter().collect();
                                if h.len() == 4 {
                                    u32::from_str_radix(&h, 16).ok()
                                } else {
                                    None
                                }
                            };
                            let Some(cp) = hex(j + 2) else {
                                return Err(Fatal {
                                    pos: j,
                                    msg: "Invalid \\uXXXX escape".into(),
                                });
                            };
                            let mut consumed = 6;
                            let ch = if (0xD800..0xDC00).contains(&cp)
                                && self.at(j + 6) == Some('\\')
                                && self.at(j + 7) == Some('u')
                            {
                                match hex(j + 8) {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                        consumed = 12;
                                        char::from_u32(
                                            0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00),
                                        )
                                    }
                                    _ => None,
                                }
                            } else {
                                char::from_u32(cp)
                            };
                            out.push(ch.unwrap_or('\u{FFFD}'));
                            j += consumed;
                            continue;
                        }
                        Some(_) => {
                            return Err(Fatal {
                                pos: j,
                                msg: "Invalid \\escape".into(),
                            });
                        }
                        None => return Ok(None),
                    }
                    j += 2;
                }
                Some(c) => {
                    out.push(c);
                    j += 1;
                }
            }
        }
    }

    /// A JSON value; leading whitespace is skipped (pyparsing default). `depth` is the number
    /// of enclosing `[`/`{`; opening one more than [`MAX_NESTING`] is a fatal error.
    fn json(&self, i: usize, depth: usize) -> Res<Value> {
        let i = self.skip_ws(i);
        if matches!(self.at(i), Some('[' | '{')) && depth >= MAX_NESTING {
            return Err(Fatal {
                pos: i,
                msg: format!("Expected at most {MAX_NESTING} levels of nesting"),
            });
        }
        match self.at(i) {
            Some('"') => self.json_string(i),
            Some('{') => {
                let mut map = Map::new();
                let mut j = self.skip_ws(i + 1);
                if self.at(j) == Some('}') {
                    return Ok(Some((Value::Object(map), j + 1)));
                }
                loop {
                    let Some((key, k)) = self.json_string(j)? else {
                        return Ok(None);
                    };
                    let k = self.skip_ws(k);
                    if self.at(k) != Some(':') {
                        return Ok(None);
                    }
                    let Some((val, k)) = self.json(k + 1, depth + 1)? else {
                        return Ok(None);
                    };
                    if let Value::String(key) = key {
                        map.insert(key, val);
                    }
                    let k = self.skip_ws(k);
                    match self.at(k) {
                        Some(',') => j = self.skip_ws(k + 1),
                        Some('}') => return Ok(Some((Value::Object(map), k + 1))),
                        _ => return Ok(None),
                    }
                }
            }
            Some('[') => {
                let mut items = Vec::new();
                let j = self.skip_ws(i + 1);
                if self.at(j) == Some(']') {
                    return Ok(Some((Value::Array(items), j + 1)));
                }
                let mut j = j;
                loop {
                    let Some((val, k)) = self.json(j, depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(val);
                    let k = self.skip_ws(k);
                    match self.at(k) {
                        Some(',') => j = k + 1,
                        Some(']') => return Ok(Some((Value::Array(items), k + 1))),
                        _ => return Ok(None),
                    }
                }
            }
            _ => {
                if let Some(e) = self.keyword(i, "true") {
                    return Ok(Some((Value::Bool(true), e)));
                }
                if let Some(e) = self.keyword(i, "false") {
                    return Ok(Some((Value::Bool(false), e)));
                }
                if let Some(e) = self.keyword(i, "null") {
                    return Ok(Some((Value::Null, e)));
                }
                Ok(self.number(i))
            }
        }
    }

    /// `OCT | HEX | JSON | STRING`. With `skip` false only JSON may skip leading whitespace
    /// (the items of a comma list: pyparsing's `leaveWhitespace` does not reach into JSON).
    fn base_value(&self, i: usize, skip: bool) -> Res<Value> {
        let i0 = if skip { self.skip_ws(i) } else { i };
        if let Some(r) = self.radix_int(i0, 'o', 8) {
            return Ok(Some(r));
        }
        if let Some(r) = self.radix_int(i0, 'x', 16) {
            return Ok(Some(r));
        }
        if let Some(r) = self.json(i0, 0)? {
            return Ok(Some(r));
        }
        Ok(self.unquoted(i0))
    }

    /// `baseValue ("," baseValue)+ | baseValue`.
    fn value(&self, i: usize) -> Res<Value> {
        // List form: no whitespace before a comma; after a comma only a JSON item may be
        // preceded by whitespace.
        let i = self.skip_ws(i);
        if let Some((first, mut j)) = self.base_value(i, false)? {
            let mut items = vec![first];
            while self.at(j) == Some(',') {
                match self.base_value(j + 1, false)? {
                    Some((v, k)) => {
                        items.push(v);
                        j = k;
                    }
                    None => break,
                }
            }
            if items.len() > 1 {
                return Ok(Some((Value::Array(items), j)));
            }
        }
        self.base_value(i, true)
    }

    fn followed_by_ws(&self, i: usize) -> bool {
        self.at(i).is_some_and(is_ws)
    }
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Parses the argument text of a command (`None` or empty: no arguments).
pub fn parse_arguments(text: Option<&str>) -> Result<ParsedArgs, ParseError> {
    let mut out = ParsedArgs::default();
    let Some(text) = text else { return Ok(out) };
    let padded: Vec<char> = text.chars().chain(std::iter::once(' ')).collect();
    let sc = Scanner { s: &padded };
    let fatal = |f: Fatal| ParseError(format_error(&f.msg, text, f.pos));
    let mut pos = 0;
    // Positional arguments.
    loop {
        let Some((v, end)) = sc.value(pos).map_err(fatal)? else {
            break;
        };
        if !sc.followed_by_ws(end) {
            break;
        }
        // `~FollowedBy("=")`: a value followed (after whitespace) by `=` is a kwarg name.
        if sc.at(sc.skip_ws(end)) == Some('=') {
            break;
        }
        out.args.push(v);
        pos = end;
    }
    // Keyword arguments.
    loop {
        let start = sc.skip_ws(pos);
        let Some((name, after)) = sc.name(start) else {
            break;
        };
        let eq = sc.skip_ws(after);
        if sc.at(eq) != Some('=') {
            break;
        }
        let Some((v, end)) = sc.value(eq + 1).map_err(fatal)? else {
            break;
        };
        if !sc.followed_by_ws(end) {
            break;
        }
        match out.kwargs.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = v,
            None => out.kwargs.push((name, v)),
        }
        pos = end;
    }
    // Optional "--".
    let p = sc.skip_ws(pos);
    if sc.starts_with(p, "--") {
        out.interactive = true;
        pos = p + 2;
    }
    // Optional "> file".
    let p = sc.skip_ws(pos);
    if sc.at(p) == Some('>') {
        let f = sc.skip_ws(p + 1);
        let mut e = f;
        while sc.at(e).is_some_and(|c| !c.is_whitespace()) {
            e += 1;
        }
        if e > f {
            out.output = Some(padded[f..e].iter().collect());
            pos = e;
        }
    }
    let end = sc.skip_ws(pos);
    if end < padded.len() {
        return Err(ParseError(format_error("Expected end of text", text, end)));
    }
    Ok(out)
}

/// The result of analysing a partially typed argument text, for completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Autocomplete {
    /// Typing a name: `args` positionals and `kwargs` keywords are complete.
    Name {
        args: usize,
        kwargs: Vec<String>,
        prefix: String,
    },
    /// Typing the value of `name=`.
    Value { name: String, prefix: String },
}

/// midcli's `get_autocomplete`: what is being typed at the end of `text`.
pub fn autocomplete(text: &str) -> Option<Autocomplete> {
    let padded: Vec<char> = text.chars().chain(std::iter::once(' ')).collect();
    let sc = Scanner { s: &padded };
    let mut pos = 0;
    let mut args = 0usize;
    let mut last_arg: Option<String> = None;
    loop {
        let Ok(Some((v, end))) = sc.value(pos) else {
            break;
        };
        if !sc.followed_by_ws(end) || sc.at(sc.skip_ws(end)) == Some('=') {
            break;
        }
        args += 1;
        last_arg = Some(match v {
            Value::String(s) => s,
            other => other.to_string(),
        });
        pos = end;
    }
    let mut kwargs = Vec::new();
    let mut last_kw: Option<(String, String)> = None;
    loop {
        let start = sc.skip_ws(pos);
        let Some((name, after)) = sc.name(start) else {
            break;
        };
        let eq = sc.skip_ws(after);
        if sc.at(eq) != Some('=') {
            break;
        }
        let Ok(Some((v, end))) = sc.value(eq + 1) else {
            break;
        };
        if !sc.followed_by_ws(end) {
            break;
        }
        kwargs.push(name.clone());
        last_kw = Some((name, padded[sc.skip_ws(eq + 1)..end].iter().collect()));
        let _ = v;
        pos = end;
    }
    // `rest` is everything after the parsed arguments, minus the padding space.
    let rest: String = padded[pos.min(text.chars().count())..text.chars().count()]
        .iter()
        .collect();
    let rest_trimmed = rest.trim_start();
    if kwargs.is_empty() && args == 0 && rest_trimmed.is_empty() {
        return Some(Autocomplete::Name {
            args: 0,
            kwargs,
            prefix: String::new(),
        });
    }
    if rest.is_empty() {
        if let Some((name, value)) = last_kw {
            return Some(Autocomplete::Value {
                name,
                prefix: value,
            });
        }
        if text.ends_with(' ') {
            return Some(Autocomplete::Name {
                args,
                kwargs,
                prefix: String::new(),
            });
        }
        return Some(Autocomplete::Name {
            args: args.saturating_sub(1),
            kwargs,
            prefix: last_arg.unwrap_or_default(),
        });
    }
    let word: String = rest_trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after = &rest_trimmed[word.len()..];
    if after.is_empty() {
        return Some(Autocomplete::Name {
            args,
            kwargs,
            prefix: word,
        });
    }
    let after = after.trim_start();
    if let Some(value) = after.strip_prefix('=')
        && !word.is_empty()
    {
        return Some(Autocomplete::Value {
            name: word,
            prefix: value.trim_start().to_string(),
        });
    }
    Some(Autocomplete::Name {
        args,
        kwargs,
        prefix: String::new(),
    })
}
