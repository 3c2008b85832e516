//! Query commands (`cli.md` §3.6): `select [WHERE expr]`, where `expr` is a Python expression
//! (parsed here by a small Python expression parser) translated into middleware query-filters.

use serde_json::{Value, json};

use crate::syntax::format_error;

/// A parsed query command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedQuery {
    /// At most one filter (midcli wraps the single translated filter in a list).
    pub filters: Vec<Value>,
    /// Columns to keep, `None` for all (`*` or nothing).
    pub select: Option<Vec<String>>,
}

fn is_col_start(c: char) -> bool {
    c.is_ascii_alphabetic()
}
fn is_col_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Parses `select [WHERE expr]`.
pub fn parse(text: &str) -> Result<ParsedQuery, String> {
    let mut out = ParsedQuery::default();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let chars: Vec<char> = text.chars().collect();
    let ws = |mut i: usize| {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };
    let mut pos = ws(0);
    if chars.get(pos) == Some(&'*') {
        pos += 1;
    } else {
        let mut cols = Vec::new();
        loop {
            let start = if cols.is_empty() { pos } else { ws(pos) };
            if !chars.get(start).is_some_and(|&c| is_col_start(c)) {
                if cols.is_empty() {
                    return Err(format_error(
                        "Expected {column [, column]... | '*'}",
                        text,
                        start,
                    ));
                }
                break;
            }
            let mut end = start + 1;
            while chars.get(end).is_some_and(|&c| is_col_char(c)) {
                end += 1;
            }
            cols.push(chars[start..end].iter().collect::<String>());
            pos = end;
            let comma = ws(pos);
            if chars.get(comma) == Some(&',') {
                let next = ws(comma + 1);
                if chars.get(next).is_some_and(|&c| is_col_start(c)) {
                    pos = comma + 1;
                    continue;
                }
            }
            break;
        }
        out.select = Some(cols);
    }
    // Optional `WHERE <rest of line>` (case-insensitive keyword, something must follow).
    let kw = ws(pos);
    let word: String = chars
        .get(kw..kw + 5)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let after_kw = chars.get(kw + 5).copied();
    if word.eq_ignore_ascii_case("where")
        && kw > pos
        && !after_kw.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        let rest: String = chars[kw + 5..].iter().collect();
        if !rest.trim().is_empty() {
            out.filters = vec![parse_filters(rest.trim())?];
            return Ok(out);
        }
    }
    let end = ws(pos);
    if end < chars.len() {
        return Err(format_error("Expected end of text", text, end));
    }
    Ok(out)
}

/// Parses a Python expression and translates it to one query filter.
pub fn parse_filters(text: &str) -> Result<Value, String> {
    let expr = parse_python(text).map_err(|e| {
        let offset = e.offset.map_or(0, |o| o + 1);
        format!("{}\n {}\n{}^", e.msg, text, " ".repeat(offset))
    })?;
    translate(&expr)
}

// ---------------------------------------------------------------------------------------------
// Python expression AST (only what `ast.parse(mode="eval")` needs to tell apart here).

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    BoolOp(&'static str, Vec<Expr>),
    Compare(Box<Expr>, Vec<(&'static str, Expr)>),
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        keywords: usize,
    },
    Attribute(Box<Expr>, String),
    Name(String),
    Constant(Value),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    Dict,
    UnaryOp(&'static str, Box<Expr>),
    BinOp,
    Subscript,
    IfExp,
    Lambda,
}

impl Expr {
    fn class(&self) -> &'static str {
        match self {
            Self::BoolOp(..) => "BoolOp",
            Self::Compare(..) => "Compare",
            Self::Call { .. } => "Call",
            Self::Attribute(..) => "Attribute",
            Self::Name(_) => "Name",
            Self::Constant(_) => "Constant",
            Self::List(_) => "List",
            Self::Tuple(_) => "Tuple",
            Self::Set(_) => "Set",
            Self::Dict => "Dict",
            Self::UnaryOp(..) => "UnaryOp",
            Self::BinOp => "BinOp",
            Self::Subscript => "Subscript",
            Self::IfExp => "IfExp",
            Self::Lambda => "Lambda",
        }
    }
}

fn translate(op: &Expr) -> Result<Value, String> {
    match op {
        Expr::BoolOp(kind, values) => {
            let items = values
                .iter()
                .map(translate)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!([kind, items]))
        }
        Expr::Compare(left, ops) => {
            if ops.len() != 1 {
                return Err(format!(
                    "Too many comparators (expected 1, found {}",
                    ops.len()
                ));
            }
            let (cmp, comparator) = &ops[0];
            let filter_op = match *cmp {
                "Eq" => "=",
                "NotEq" => "!=",
                "Gt" => ">",
                "GtE" => ">=",
                "Lt" => "<",
                "LtE" => "<=",
                "In" => "in",
                "NotIn" => "nin",
                other => return Err(format!("Unsupported comparison operator: {other}")),
            };
            if matches!(filter_op, "in" | "nin")
                && let Expr::Constant(c) = left.as_ref()
            {
                let Expr::Name(name) = comparator else {
                    return Err(format!(
                        "Unsupported right operand for `{} {filter_op}`",
                        py_str(c)
                    ));
                };
                return Ok(json!([name, format!("r{filter_op}"), c]));
            }
            let Expr::Name(name) = left.as_ref() else {
                return Err(format!("Unsupported left operand {}", left.class()));
            };
            Ok(json!([name, filter_op, constant(comparator)?]))
        }
        Expr::Call {
            func,
            args,
            keywords,
        } => {
            let Expr::Attribute(value, attr) = func.as_ref() else {
                return Err(format!(
                    "Unsupported callee type: <ast.{} object>",
                    func.class()
                ));
            };
            let Expr::Name(name) = value.as_ref() else {
                return Err(format!("Unsupported callee {}", value.class()));
            };
            let filter_op = match attr.as_str() {
                "match" => "~",
                "startswith" => "^",
                "endswith" => "$",
                other => return Err(format!("Unknown function name '{other}'")),
            };
            if args.len() != 1 {
                return Err(format!(
                    "Function {attr} accepts 1 argument, given {}",
                    args.len()
                ));
            }
            if *keywords > 0 {
                return Err(format!("Function {attr} does not accept keyword arguments"));
            }
            Ok(json!([name, filter_op, constant(&args[0])?]))
        }
        Expr::UnaryOp("Not", operand) => Ok(json!(["NOT", translate(operand)?])),
        Expr::UnaryOp(kind, _) => Err(format!("Unknown unary expression {kind}")),
        other => Err(format!("Unsupported filter expression: {}", other.class())),
    }
}

/// Python `str()` of a constant (for the `oo in` message).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn constant(op: &Expr) -> Result<Value, String> {
    match op {
        Expr::Constant(v) => Ok(v.clone()),
        Expr::List(items) | Expr::Tuple(items) | Expr::Set(items) => Ok(Value::Array(
            items.iter().map(constant).collect::<Result<_, _>>()?,
        )),
        Expr::Name(n) if n == "true" => Ok(Value::Bool(true)),
        Expr::Name(n) if n == "false" => Ok(Value::Bool(false)),
        Expr::Name(n) if n == "null" => Ok(Value::Null),
        other => Err(format!("Unsupported right operand {}", other.class())),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and recursive-descent parser.

#[derive(Debug)]
pub struct PySyntaxError {
    pub msg: String,
    /// 0-based char offset of the offending token; `None` at end of input.
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(Value),
    Str(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "(", ")", "[", "]", "{", "}", ",", ".", ":",
    "~", "-", "+", "*", "/", "%", "&", "|", "^", "<", ">", "@", "=",
];

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, PySyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Name(chars[start..i].iter().collect()), start));
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (v, end) = number(&chars, i).ok_or(PySyntaxError {
                msg: "invalid syntax".into(),
                offset: Some(i),
            })?;
            if chars
                .get(end)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                return Err(PySyntaxError {
                    msg: "invalid decimal literal".into(),
                    offset: Some(start),
                });
            }
            out.push((Tok::Num(v), start));
            i = end;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(PySyntaxError {
                            msg: "unterminated string literal (detected at line 1)".into(),
                            offset: Some(start),
                        });
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let e = chars.get(i + 1).copied();
                        i += 2;
                        match e {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some('0') => s.push('\0'),
                            Some('\\') => s.push('\\'),
                            Some('\'') => s.push('\''),
                            Some('"') => s.push('"'),
                            Some(x @ ('x' | 'u')) => {
                                let n = if x == 'x' { 2 } else { 4 };
                                let hex: String = chars
                                    .get(i..i + n)
                                    .map(|h| h.iter().collect())
                                    .unwrap_or_default();
                                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                                    Some(ch) if hex.len() == n => {
                                        s.push(ch);
                                        i += n;
                                    }
                                    _ => {
                                        return Err(PySyntaxError {
                                            msg: "(unicode error) truncated escape".into(),
                                            offset: Some(start),
                                        });
                                    }
                                }
                            }
                            Some(other) => {
                                s.push('\\');
                                s.push(other);
                            }
                            None => {}
                        }
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            // Adjacent string literals concatenate.
            if let Some((Tok::Str(prev), _)) = out.last_mut() {
                prev.push_str(&s);
            } else {
                out.push((Tok::Str(s), start));
            }
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push((Tok::Op(op), start));
                i += op.chars().count();
            }
            None => {
                return Err(PySyntaxError {
                    msg: "invalid syntax".into(),
                    offset: Some(start),
                });
            }
        }
    }
    Ok(out)
}

fn number(chars: &[char], mut i: usize) -> Option<(Value, usize)> {
    let start = i;
    if chars[i] == '0'
        && chars
            .get(i + 1)
            .is_some_and(|c| matches!(c, 'x' | 'X' | 'o' | 'O' | 'b' | 'B'))
    {
        let radix = match chars[i + 1].to_ascii_lowercase() {
            'x' => 16,
            'o' => 8,
            _ => 2,
        };
        i += 2;
        let ds = i;
        while chars.get(i).is_some_and(|c| c.is_digit(radix) || *c == '_') {
            i += 1;
        }
        let digits: String = chars[ds..i].iter().filter(|c| **c != '_').collect();
        let n = u64::from_str_radix(&digits, radix).ok()?;
        return Some((json!(n), i));
    }
    let mut is_float = false;
    while chars
        .get(i)
        .is_some_and(|c| c.is_ascii_digit() || *c == '_')
    {
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        is_float = true;
        i += 1;
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_digit() || *c == '_')
        {
            i += 1;
        }
    }
    if chars.get(i).is_some_and(|c| matches!(c, 'e' | 'E')) {
        let mut k = i + 1;
        if chars.get(k).is_some_and(|c| matches!(c, '+' | '-')) {
            k += 1;
        }
        if chars.get(k).is_some_and(char::is_ascii_digit) {
            is_float = true;
            i = k;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
        }
    }
    let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
    let v = if is_float {
        serde_json::Number::from_f64(text.parse().ok()?).map(Value::Number)?
    } else if let Ok(n) = text.parse::<i64>() {
        json!(n)
    } else {
        json!(text.parse::<u64>().ok()?)
    };
    Some((v, i))
}

/// The deepest nesting the expression parser allows below the top level. Every bracket (`(`,
/// `[`, `{`, call, subscript), `not`, unary sign, `**` operand, lambda body and `else` branch is
/// one level. Real filters are a few levels deep; the limit keeps hostile input (`((((…`) from
/// overflowing the stack (64 levels take about 1 MiB of stack in a debug build: half of a
/// spawned thread's 2 MiB).
pub const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    /// Current recursion depth, see [`MAX_DEPTH`].
    depth: usize,
}

type PResult = Result<Expr, PySyntaxError>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn err(&self) -> PySyntaxError {
        PySyntaxError {
            msg: "invalid syntax".into(),
            offset: self.toks.get(self.i).map(|(_, p)| *p),
        }
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == kw)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<(), PySyntaxError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.err())
        }
    }

    /// Runs `f` one recursion level deeper; past [`MAX_DEPTH`] it is a syntax error pointing at
    /// the token that opened the level (the `(`, `not`, `-`, …).
    fn nested(&mut self, f: fn(&mut Self) -> PResult) -> PResult {
        // The top-level expression is depth 1.
        if self.depth > MAX_DEPTH {
            let offset = self.toks.get(self.i.saturating_sub(1)).map(|(_, p)| *p);
            return Err(PySyntaxError {
                msg: format!("expression too deeply nested (at most {MAX_DEPTH} levels)"),
                offset,
            });
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn test(&mut self) -> PResult {
        self.nested(Self::test_inner)
    }

    fn test_inner(&mut self) -> PResult {
        if self.eat_kw("lambda") {
            while !self.is_op(":") && self.peek().is_some() {
                self.i += 1;
            }
            self.expect_op(":")?;
            self.test()?;
            return Ok(Expr::Lambda);
        }
        let e = self.or_test()?;
        if self.eat_kw("if") {
            self.or_test()?;
            if !self.eat_kw("else") {
                return Err(self.err());
            }
            self.test()?;
            return Ok(Expr::IfExp);
        }
        Ok(e)
    }

    fn or_test(&mut self) -> PResult {
        let first = self.and_test()?;
        let mut values = vec![first];
        while self.eat_kw("or") {
            values.push(self.and_test()?);
        }
        Ok(if values.len() == 1 {
            values.remove(0)
        } else {
            Expr::BoolOp("OR", values)
        })
    }

    fn and_test(&mut self) -> PResult {
        let first = self.not_test()?;
        let mut values = vec![first];
        while self.eat_kw("and") {
            values.push(self.not_test()?);
        }
        Ok(if values.len() == 1 {
            values.remove(0)
        } else {
            Expr::BoolOp("AND", values)
        })
    }

    fn not_test(&mut self) -> PResult {
        if self.eat_kw("not") {
            return Ok(Expr::UnaryOp("Not", Box::new(self.nested(Self::not_test)?)));
        }
        self.comparison()
    }

    fn comp_op(&mut self) -> Option<&'static str> {
        let op = match self.peek()? {
            Tok::Op("==") => "Eq",
            Tok::Op("!=") => "NotEq",
            Tok::Op("<") => "Lt",
            Tok::Op("<=") => "LtE",
            Tok::Op(">") => "Gt",
            Tok::Op(">=") => "GtE",
            Tok::Name(n) if n == "in" => "In",
            Tok::Name(n) if n == "is" => {
                self.i += 1;
                return Some(if self.eat_kw("not") { "IsNot" } else { "Is" });
            }
            Tok::Name(n) if n == "not" => {
                if matches!(self.toks.get(self.i + 1), Some((Tok::Name(m), _)) if m == "in") {
                    self.i += 2;
                    return Some("NotIn");
                }
                return None;
            }
            _ => return None,
        };
        self.i += 1;
        Some(op)
    }

    fn comparison(&mut self) -> PResult {
        let left = self.binary()?;
        let mut ops = Vec::new();
        while let Some(op) = self.comp_op() {
            ops.push((op, self.binary()?));
        }
        Ok(if ops.is_empty() {
            left
        } else {
            Expr::Compare(Box::new(left), ops)
        })
    }

    /// Python's binary-operator levels (`|`, `^`, `&`, shifts, `+ -`, `* / // % @`) in one
    /// loop. Every binary operation becomes the same (unsupported) `BinOp`, so precedence
    /// cannot change the result, and `factor (op factor)*` accepts exactly what the ladder of
    /// six grammar rules does — in one stack frame per nesting level instead of twelve.
    fn binary(&mut self) -> PResult {
        const OPS: &[&str] = &[
            "|", "^", "&", "<<", ">>", "+", "-", "*", "/", "//", "%", "@",
        ];
        let mut left = self.factor()?;
        while OPS.iter().any(|o| self.is_op(o)) {
            self.i += 1;
            self.factor()?;
            left = Expr::BinOp;
        }
        Ok(left)
    }

    fn factor(&mut self) -> PResult {
        for (op, kind) in [("-", "USub"), ("+", "UAdd"), ("~", "Invert")] {
            if self.eat_op(op) {
                return Ok(Expr::UnaryOp(kind, Box::new(self.nested(Self::factor)?)));
            }
        }
        let base = self.primary()?;
        if self.eat_op("**") {
            self.nested(Self::factor)?;
            return Ok(Expr::BinOp);
        }
        Ok(base)
    }

    fn primary(&mut self) -> PResult {
        let mut e = self.atom()?;
        loop {
            if self.eat_op(".") {
                match self.peek().cloned() {
                    Some(Tok::Name(n)) => {
                        self.i += 1;
                        e = Expr::Attribute(Box::new(e), n);
                    }
                    _ => return Err(self.err()),
                }
            } else if self.eat_op("(") {
                let mut args = Vec::new();
                let mut keywords = 0;
                while !self.is_op(")") {
                    let is_kw = matches!(self.peek(), Some(Tok::Name(_)))
                        && matches!(self.toks.get(self.i + 1), Some((Tok::Op("="), _)));
                    if is_kw {
                        self.i += 2;
                        self.test()?;
                        keywords += 1;
                    } else {
                        args.push(self.test()?);
                    }
                    if !self.eat_op(",") {
                        break;
                    }
                }
                self.expect_op(")")?;
                e = Expr::Call {
                    func: Box::new(e),
                    args,
                    keywords,
                };
            } else if self.eat_op("[") {
                self.test()?;
                self.expect_op("]")?;
                e = Expr::Subscript;
            } else {
                return Ok(e);
            }
        }
    }

    fn seq(&mut self, close: &str) -> Result<(Vec<Expr>, bool), PySyntaxError> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        while !self.is_op(close) {
            items.push(self.test()?);
            trailing_comma = self.eat_op(",");
            if !trailing_comma {
                break;
            }
        }
        self.expect_op(close)?;
        Ok((items, trailing_comma))
    }

    /// A dict or set display, after its `{` (a separate function keeps `atom`'s stack frame,
    /// paid once per nesting level, small).
    fn braces(&mut self) -> PResult {
        if self.eat_op("}") {
            return Ok(Expr::Dict);
        }
        let first = self.test()?;
        if self.eat_op(":") {
            self.test()?;
            while self.eat_op(",") {
                if self.is_op("}") {
                    break;
                }
                self.test()?;
                self.expect_op(":")?;
                self.test()?;
            }
            self.expect_op("}")?;
            Ok(Expr::Dict)
        } else {
            let mut items = vec![first];
            if self.eat_op(",") {
                let (rest, _) = self.seq("}")?;
                items.extend(rest);
            } else {
                self.expect_op("}")?;
            }
            Ok(Expr::Set(items))
        }
    }

    fn atom(&mut self) -> PResult {
        let Some((tok, _)) = self.toks.get(self.i).cloned() else {
            return Err(self.err());
        };
        self.i += 1;
        Ok(match tok {
            Tok::Name(n) => match n.as_str() {
                "True" => Expr::Constant(Value::Bool(true)),
                "False" => Expr::Constant(Value::Bool(false)),
                "None" => Expr::Constant(Value::Null),
                "and" | "or" | "not" | "in" | "is" | "if" | "else" | "lambda" | "for"
                | "import" | "def" | "class" | "return" | "while" | "with" | "as" | "from"
                | "pass" | "del" | "global" | "assert" | "yield" | "raise" | "try" | "except"
                | "finally" | "elif" | "break" | "continue" | "nonlocal" | "await" | "async" => {
                    self.i -= 1;
                    return Err(self.err());
                }
                _ => Expr::Name(n),
            },
            Tok::Num(v) => Expr::Constant(v),
            Tok::Str(s) => Expr::Constant(Value::String(s)),
            Tok::Op("(") => {
                let (mut items, trailing) = self.seq(")")?;
                if items.len() == 1 && !trailing {
                    items.remove(0)
                } else {
                    Expr::Tuple(items)
                }
            }
            Tok::Op("[") => Expr::List(self.seq("]")?.0),
            Tok::Op("{") => return self.braces(),
            Tok::Op(_) => {
                self.i -= 1;
                return Err(self.err());
            }
        })
    }
}

/// Parses a Python expression (`ast.parse(text, mode="eval").body`).
pub fn parse_python(text: &str) -> Result<Expr, PySyntaxError> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.test()?;
    // A top-level tuple: `a, b`.
    if p.eat_op(",") {
        let mut items = vec![e];
        while p.i < p.toks.len() {
            items.push(p.test()?);
            if !p.eat_op(",") {
                break;
            }
        }
        if p.i < p.toks.len() {
            return Err(p.err());
        }
        return Ok(Expr::Tuple(items));
    }
    if p.i < p.toks.len() {
        return Err(p.err());
    }
    Ok(e)
}
