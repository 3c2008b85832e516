//! The TrueNAS generic query engine: `query-filters` + `query-options` (reference §6).
//!
//! Used by every `*.query` method, `auth.sessions` and `privilege.roles` on records that are
//! JSON objects. The semantics are those of the 25.x pure-Python `filter_list`
//! (`middlewared/utils/filter_list.py`), including its quirks:
//!
//! * values are compared with Python semantics (`1 == 1.0 == true`, `'<'` between mismatched
//!   types raises `TypeError`, whose text is reproduced);
//! * a path that does not exist makes a condition false for every operator;
//! * `order_by` keys are applied as successive stable sorts, so the **last** key is the most
//!   significant; the sort itself is a port of CPython 3.11's `list.sort` so that the pairs
//!   compared, and therefore which `TypeError` is raised, match;
//! * `get` without `order_by` short-circuits on the first match (and then ignores `count`).
//!
//! Extended-JSON values (`{"$date": ms}`, `{"$set": [...]}`, `{"$type": "date", ...}`,
//! `{"$time": ...}`) behave like the Python objects they decode to: a datetime compares with
//! datetimes, is not a dict, and a path component applied to it is ignored (so
//! `"created_at.$date"` resolves to the datetime itself).
//!
//! Error mapping: structural errors of the arguments that pydantic reports (`filters` not a
//! list, `options.limit` not an integer, unknown option keys, ...) are
//! [`ApiError::Validation`]; everything `filter_list` raises (`ValueError`, `TypeError`,
//! `re.error`, ...) is [`ApiError::Other`] with the Python message; `get` without a match is
//! [`ApiError::MatchNotFound`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use gatehouse_proto::{ApiError, ValidationError};
use serde_json::{Map, Value};

/// Largest accepted `limit` (`MAX_LIMIT` in `filter_list`).
pub const MAX_LIMIT: usize = 10_000;
/// Deepest accepted nesting of `OR` filters (`MAX_FILTERS_DEPTH`).
pub const MAX_FILTERS_DEPTH: usize = 3;
const TIMESTAMP_DESIGNATOR: &str = ".$date";
const NULLS_FIRST: &str = "nulls_first:";
const NULLS_LAST: &str = "nulls_last:";
/// `str_max_length` of the TrueNAS pydantic `BaseModel` config.
const STR_MAX_LENGTH: usize = 1024;

const ERR_GET_SINGLE: &str = "Invalid options combination. `get` implies a single result.";
const ERR_OR_EMPTY: &str = "OR filter requires at least one branch.";
const ERR_DEPTH: &str = "query-filters max recursion depth exceeded";
const ERR_SELECT_INDEX: &str = "Selecting by list index is not supported";
const ERR_STR_INDEX: &str = "string index out of range";

fn other(msg: impl Into<String>) -> ApiError {
    ApiError::Other(msg.into())
}

// ------------------------------------------------------------------------------------------
// Public API
// ------------------------------------------------------------------------------------------

/// One `select` entry: a (dotted) field, or `[source path, alias]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    Field(String),
    Alias(String, String),
}

/// Validated `query-options` (model `QueryOptions`, strict, `extra="forbid"`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOptions {
    /// Per-method options, passed through untouched.
    pub extra: Map<String, Value>,
    pub order_by: Vec<String>,
    pub select: Vec<Select>,
    pub count: bool,
    pub get: bool,
    pub offset: usize,
    /// 0 = unlimited.
    pub limit: usize,
    pub force_sql_filters: bool,
}

impl QueryOptions {
    /// Validates `query-options` like the pydantic model and then `validate_options`.
    ///
    /// `null` and `{}` give the defaults. Type errors are collected into one
    /// [`ApiError::Validation`] (attributes `options.<field>`); option-combination and
    /// `select` shape errors are [`ApiError::Other`] with the Python `ValueError` text.
    pub fn from_value(v: &Value) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let raw = if v.is_null() {
            Some(RawOptions::default())
        } else {
            parse_options_model(v, &mut errors)
        };
        match raw {
            Some(raw) if errors.is_empty() => raw.validate(),
            _ => Err(ApiError::Validation(errors)),
        }
    }

    /// The `ValueError`s `validate_options` raises for options that are well-typed.
    pub fn check(&self) -> Result<(), ApiError> {
        check_combination(self.get, self.limit, self.offset)
    }
}

/// Compiled `query-filters`: validated once, cheap to evaluate per record.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    nodes: Vec<Node>,
}

impl Filters {
    /// Validates and compiles `query-filters` (`validate_filters`).
    ///
    /// `null` is treated as `[]`; any other non-list is a pydantic error on attribute `filters`.
    pub fn parse(v: &Value) -> Result<Self, ApiError> {
        match v {
            Value::Null => Ok(Self::default()),
            Value::Array(items) => Self::compile(items),
            _ => Err(ApiError::validation(
                "filters",
                "Input should be a valid list",
            )),
        }
    }

    fn compile(items: &[Value]) -> Result<Self, ApiError> {
        let mut ctx = CompileCtx::default();
        let mut nodes = compile_list(items.iter(), 0, &mut ctx).map_err(other)?;
        if !ctx.maps.is_empty() {
            for node in &mut nodes {
                node.apply_value_maps(&ctx.maps);
            }
        }
        Ok(Self { nodes })
    }

    /// True when there are no conditions (every record matches).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The top-level record keys the conditions read (the first component of each field
    /// path), or `None` when a condition looks at the record as a whole (a falsy field name,
    /// or a path without components).
    ///
    /// When it is `Some(keys)`, evaluating on an object holding only those keys of a record
    /// (with the same values, none of the keys starting with `$`) gives the same result, or
    /// the same error, as evaluating on the whole record: callers may build just those fields
    /// to filter, and the full record only for the matches.
    pub fn top_level_keys(&self) -> Option<Vec<&str>> {
        fn walk<'a>(node: &'a Node, out: &mut Vec<&'a str>) -> bool {
            match node {
                Node::Cond(c) => match &c.target {
                    Target::Root => false,
                    Target::Path(p) => match p.comps.first() {
                        Some(comp) => {
                            if !out.contains(&&*comp.key) {
                                out.push(&comp.key);
                            }
                            true
                        }
                        None => false,
                    },
                },
                Node::Or(branches) => branches.iter().all(|b| match b {
                    Branch::And(nodes) => nodes.iter().all(|n| walk(n, out)),
                    Branch::One(n) => walk(n, out),
                }),
            }
        }
        let mut out = Vec::new();
        self.nodes.iter().all(|n| walk(n, &mut out)).then_some(out)
    }

    /// Whether `record` satisfies every condition. A condition that raises (e.g. `'>' not
    /// supported between ...`) counts as not matching; use [`Filters::try_matches`] to see
    /// the error.
    pub fn matches(&self, record: &Value) -> bool {
        self.try_matches(record).unwrap_or(false)
    }

    /// Like [`Filters::matches`] but reports the Python exception a condition raises.
    pub fn try_matches(&self, record: &Value) -> Result<bool, ApiError> {
        for node in &self.nodes {
            if !node.eval(record).map_err(other)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Validates both query arguments as the `QueryArgs` model does: `None` means the positional
/// parameter was not sent (default); an explicit `null` is a type error, as in TrueNAS.
///
/// Order of checks: pydantic type errors of both arguments (one [`ApiError::Validation`]),
/// then `validate_options`, then `validate_filters` ([`ApiError::Other`]).
pub fn parse_args(
    filters: Option<&Value>,
    options: Option<&Value>,
) -> Result<(Filters, QueryOptions), ApiError> {
    let mut errors = Vec::new();
    let filter_items: &[Value] = match filters {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(ValidationError::new(
                "filters",
                "Input should be a valid list",
            ));
            &[]
        }
    };
    let raw = match options {
        None => Some(RawOptions::default()),
        Some(v) => parse_options_model(v, &mut errors),
    };
    let raw = match raw {
        Some(raw) if errors.is_empty() => raw,
        _ => return Err(ApiError::Validation(errors)),
    };
    let options = raw.validate()?;
    let filters = Filters::compile(filter_items)?;
    Ok((filters, options))
}

/// Full pipeline in TrueNAS order: validate → filter → select → count → order → get → offset →
/// limit. `null` for either argument means "not sent" (defaults).
///
/// Returns a list, one object (`get`), or an integer (`count`).
pub fn query(records: Vec<Value>, filters: &Value, options: &Value) -> Result<Value, ApiError> {
    let (filters, options) = parse_args(
        (!filters.is_null()).then_some(filters),
        (!options.is_null()).then_some(options),
    )?;
    query_with(records, &filters, &options)
}

/// The pipeline with already-validated arguments (`filter_list` after validation).
pub fn query_with(
    records: Vec<Value>,
    filters: &Filters,
    options: &QueryOptions,
) -> Result<Value, ApiError> {
    options.check()?;
    let select = compile_select(&options.select);
    let shortcircuit = options.get && options.order_by.is_empty();

    let mut rv: Vec<Value>;
    if !filters.is_empty() {
        rv = Vec::new();
        for record in records {
            if !filters.try_matches(&record)? {
                continue;
            }
            let entry = if select.is_empty() {
                record
            } else {
                do_select(&record, &select)?
            };
            rv.push(entry);
            if shortcircuit {
                break;
            }
        }
        if shortcircuit {
            return rv.into_iter().next().ok_or(ApiError::MatchNotFound);
        }
    } else if !select.is_empty() {
        rv = records
            .iter()
            .map(|r| do_select(r, &select))
            .collect::<Result<_, _>>()?;
    } else {
        rv = records;
    }

    if options.count {
        return Ok(Value::from(rv.len()));
    }

    let rv = do_order(rv, &options.order_by)?;

    if options.get {
        return rv.into_iter().next().ok_or(ApiError::MatchNotFound);
    }
    let mut rv = rv;
    if options.offset > 0 {
        rv.drain(..options.offset.min(rv.len()));
    }
    if options.limit > 0 {
        rv.truncate(options.limit);
    }
    Ok(Value::Array(rv))
}

/// Python's `get(obj, path)`: the value at a dotted path (`\.` escapes a dot, numeric
/// components index lists, `*` returns the list), `None` when it does not exist.
pub fn get_path<'a>(record: &'a Value, path: &str) -> Result<Option<&'a Value>, ApiError> {
    let path = FieldPath::new(path);
    match path.resolve(record, 0).map_err(other)? {
        Resolved::Undefined => Ok(None),
        Resolved::Found(v) | Resolved::Wild(v, _) => Ok(Some(v)),
    }
}

// ------------------------------------------------------------------------------------------
// Options: pydantic layer and validate_options
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct RawOptions {
    extra: Map<String, Value>,
    order_by: Vec<String>,
    select: Vec<Value>,
    count: bool,
    get: bool,
    offset: usize,
    limit: usize,
    force_sql_filters: bool,
}

fn parse_options_model(v: &Value, errors: &mut Vec<ValidationError>) -> Option<RawOptions> {
    let m = match v {
        Value::Object(m) if !is_ejson(m) => m,
        _ => {
            errors.push(ValidationError::new(
                "options",
                "Input should be a valid dictionary or instance of QueryOptions",
            ));
            return None;
        }
    };
    let start = errors.len();
    let mut union_errors: Vec<ValidationError> = Vec::new();
    let mut raw = RawOptions::default();
    let err = |errors: &mut Vec<ValidationError>, attr: &str, msg: &str| {
        errors.push(ValidationError::new(attr, msg));
    };

    if let Some(extra) = m.get("extra") {
        match extra {
            Value::Object(e) if !is_ejson(e) => raw.extra = e.clone(),
            _ => err(
                errors,
                "options.extra",
                "Input should be a valid dictionary",
            ),
        }
    }
    if let Some(order_by) = m.get("order_by") {
        match order_by {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if s.chars().count() <= STR_MAX_LENGTH => {
                            raw.order_by.push(s.clone());
                        }
                        Value::String(_) => err(
                            errors,
                            &format!("options.order_by.{i}"),
                            "String should have at most 1024 characters",
                        ),
                        _ => err(
                            errors,
                            &format!("options.order_by.{i}"),
                            "Input should be a valid string",
                        ),
                    }
                }
            }
            _ => err(errors, "options.order_by", "Input should be a valid list"),
        }
    }
    if let Some(select) = m.get("select") {
        match select {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if s.chars().count() <= STR_MAX_LENGTH => {
                            raw.select.push(item.clone());
                        }
                        Value::Array(_) => raw.select.push(item.clone()),
                        _ => {
                            let msg = if item.is_string() {
                                "String should have at most 1024 characters"
                            } else {
                                "Input should be a valid string"
                            };
                            err(errors, &format!("options.select.{i}.constrained-str"), msg);
                            union_errors.push(ValidationError::new(
                                format!("options.select.{i}"),
                                "Input should be a valid list",
                            ));
                        }
                    }
                }
            }
            _ => err(errors, "options.select", "Input should be a valid list"),
        }
    }
    for (key, slot) in [("count", &mut raw.count), ("get", &mut raw.get)] {
        if let Some(v) = m.get(key) {
            match v {
                Value::Bool(b) => *slot = *b,
                _ => err(
                    errors,
                    &format!("options.{key}"),
                    "Input should be a valid boolean",
                ),
            }
        }
    }
    for (key, slot) in [("offset", &mut raw.offset), ("limit", &mut raw.limit)] {
        if let Some(v) = m.get(key) {
            match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_u64() {
                    Some(u) => *slot = usize::try_from(u).unwrap_or(usize::MAX),
                    None => err(
                        errors,
                        &format!("options.{key}"),
                        "Input should be greater than or equal to 0",
                    ),
                },
                _ => err(
                    errors,
                    &format!("options.{key}"),
                    "Input should be a valid integer",
                ),
            }
        }
    }
    if let Some(v) = m.get("force_sql_filters") {
        match v {
            Value::Bool(b) => raw.force_sql_filters = *b,
            _ => err(
                errors,
                "options.force_sql_filters",
                "Input should be a valid boolean",
            ),
        }
    }
    const KNOWN: [&str; 8] = [
        "extra",
        "order_by",
        "select",
        "count",
        "get",
        "offset",
        "limit",
        "force_sql_filters",
    ];
    for key in m.keys() {
        if !KNOWN.contains(&key.as_str()) {
            err(
                errors,
                &format!("options.{key}"),
                "Extra inputs are not permitted",
            );
        }
    }
    errors.extend(union_errors);
    (errors.len() == start).then_some(raw)
}

fn check_combination(get: bool, limit: usize, offset: usize) -> Result<(), ApiError> {
    if get && limit > 1 {
        return Err(other(ERR_GET_SINGLE));
    }
    if get && offset != 0 {
        return Err(other(ERR_GET_SINGLE));
    }
    if limit > MAX_LIMIT {
        return Err(other(format!(
            "Options limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(())
}

impl RawOptions {
    /// `validate_options`: combination checks, then `validate_select`.
    fn validate(self) -> Result<QueryOptions, ApiError> {
        check_combination(self.get, self.limit, self.offset)?;
        let mut select = Vec::with_capacity(self.select.len());
        for s in &self.select {
            match s {
                Value::String(f) => select.push(Select::Field(f.clone())),
                Value::Array(items) => {
                    if items.len() != 2 {
                        return Err(other(format!(
                            "{}: A select as list may only contain two parameters: the name of \
                             the parameter being selected, and the name to which to assign it in \
                             resulting data.",
                            py_str(s)
                        )));
                    }
                    match (&items[0], &items[1]) {
                        (Value::String(a), Value::String(b)) => {
                            select.push(Select::Alias(a.clone(), b.clone()));
                        }
                        (Value::String(_), _) => {
                            return Err(other(format!(
                                "{}: second item must be a string.",
                                py_str(s)
                            )));
                        }
                        _ => {
                            return Err(other(format!(
                                "{}: first item must be a string.",
                                py_str(s)
                            )));
                        }
                    }
                }
                // The pydantic layer only lets strings and lists through.
                _ => {
                    return Err(other(format!(
                        "{}: selectors must be either a parameter name as a string or a list \
                         containing two items [<parameter name>, <as name>] to emulate SELECT \
                         <parameter name> AS <as name>.",
                        py_str(s)
                    )));
                }
            }
        }
        Ok(QueryOptions {
            extra: self.extra,
            order_by: self.order_by,
            select,
            count: self.count,
            get: self.get,
            offset: self.offset,
            limit: self.limit,
            force_sql_filters: self.force_sql_filters,
        })
    }
}

// ------------------------------------------------------------------------------------------
// Python value model
// ------------------------------------------------------------------------------------------

/// A JSON value seen as the Python object TrueNAS would hold.
#[derive(Debug, Clone, Copy)]
enum Py<'a> {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    List(&'a [Value]),
    Dict(&'a Map<String, Value>),
    /// Microseconds since the epoch, UTC.
    DateTime(i64),
    Set(&'a [Value]),
    Date(&'a str),
    Time(&'a str),
}

fn py(v: &Value) -> Py<'_> {
    match v {
        Value::Null => Py::None,
        Value::Bool(b) => Py::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Py::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Py::Int(i128::from(u))
            } else {
                Py::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Py::Str(s),
        Value::Array(a) => Py::List(a),
        Value::Object(m) => ejson(m).unwrap_or(Py::Dict(m)),
    }
}

/// The extended-JSON decoding of an object (`truenas_api_client.ejson.object_hook`).
fn ejson(m: &Map<String, Value>) -> Option<Py<'_>> {
    match m.len() {
        1 => {
            let (k, v) = m.iter().next()?;
            match (k.as_str(), v) {
                ("$date", Value::Number(n)) => Some(Py::DateTime(ejson_ms_to_us(n))),
                ("$set", Value::Array(a)) => Some(Py::Set(a)),
                ("$time", Value::String(s)) => Some(Py::Time(s)),
                _ => None,
            }
        }
        2 => match (m.get("$type"), m.get("$value")) {
            (Some(Value::String(t)), Some(Value::String(v))) if t == "date" => Some(Py::Date(v)),
            _ => None,
        },
        _ => None,
    }
}

fn is_ejson(m: &Map<String, Value>) -> bool {
    ejson(m).is_some()
}

/// `fromtimestamp(ms / 1000) + timedelta(milliseconds=ms % 1000)`: the ejson decoder adds the
/// sub-second part twice; harmless for the whole-second values TrueNAS itself produces.
fn ejson_ms_to_us(n: &serde_json::Number) -> i64 {
    if let Some(ms) = n.as_i64() {
        ms.saturating_mul(1000)
            .saturating_add(ms.rem_euclid(1000) * 1000)
    } else {
        let ms = n.as_f64().unwrap_or(0.0);
        let us = (ms * 1000.0).round() + (ms.rem_euclid(1000.0) * 1000.0).round();
        us as i64
    }
}

fn tn(p: Py<'_>) -> &'static str {
    match p {
        Py::None => "NoneType",
        Py::Bool(_) => "bool",
        Py::Int(_) => "int",
        Py::Float(_) => "float",
        Py::Str(_) => "str",
        Py::List(_) => "list",
        Py::Dict(_) => "dict",
        Py::DateTime(_) => "datetime.datetime",
        Py::Set(_) => "set",
        Py::Date(_) => "datetime.date",
        Py::Time(_) => "datetime.time",
    }
}

fn truthy(p: Py<'_>) -> bool {
    match p {
        Py::None => false,
        Py::Bool(b) => b,
        Py::Int(i) => i != 0,
        Py::Float(f) => f != 0.0,
        Py::Str(s) => !s.is_empty(),
        Py::List(a) | Py::Set(a) => !a.is_empty(),
        Py::Dict(m) => !m.is_empty(),
        Py::DateTime(_) | Py::Date(_) | Py::Time(_) => true,
    }
}

fn hashable(p: Py<'_>) -> bool {
    !matches!(p, Py::List(_) | Py::Dict(_) | Py::Set(_))
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i128),
    F(f64),
}

fn as_num(p: Py<'_>) -> Option<Num> {
    match p {
        Py::Bool(b) => Some(Num::I(i128::from(b))),
        Py::Int(i) => Some(Num::I(i)),
        Py::Float(f) => Some(Num::F(f)),
        _ => None,
    }
}

fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    let fl = f.floor();
    if fl >= 1.0e38 {
        return Some(Ordering::Less);
    }
    if fl <= -1.0e38 {
        return Some(Ordering::Greater);
    }
    let fi = fl as i128;
    match i.cmp(&fi) {
        Ordering::Equal if f > fl => Some(Ordering::Less),
        o => Some(o),
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => int_float_cmp(x, y),
        (Num::F(x), Num::I(y)) => int_float_cmp(y, x).map(Ordering::reverse),
    }
}

/// Python `a == b`.
fn py_eq(a: Py<'_>, b: Py<'_>) -> bool {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return num_cmp(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Py::None, Py::None) => true,
        (Py::Str(x), Py::Str(y)) | (Py::Date(x), Py::Date(y)) | (Py::Time(x), Py::Time(y)) => {
            x == y
        }
        (Py::List(x), Py::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(py(p), py(q)))
        }
        (Py::Dict(x), Py::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| py_eq(py(v), py(w))))
        }
        (Py::DateTime(x), Py::DateTime(y)) => x == y,
        (Py::Set(x), Py::Set(y)) => set_subset(x, y) && set_subset(y, x),
        _ => false,
    }
}

fn set_subset(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| b.iter().any(|y| py_eq(py(x), py(y))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn sym(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Lt => o == Ordering::Less,
            Self::Le => o != Ordering::Greater,
            Self::Gt => o == Ordering::Greater,
            Self::Ge => o != Ordering::Less,
        }
    }
}

/// Python `a <op> b` for the ordering operators; `Err` is the `TypeError` text.
fn py_cmp(op: CmpOp, a: Py<'_>, b: Py<'_>) -> Result<bool, String> {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return Ok(num_cmp(x, y).is_some_and(|o| op.holds(o)));
    }
    match (a, b) {
        (Py::Str(x), Py::Str(y)) | (Py::Date(x), Py::Date(y)) | (Py::Time(x), Py::Time(y)) => {
            Ok(op.holds(x.cmp(y)))
        }
        (Py::DateTime(x), Py::DateTime(y)) => Ok(op.holds(x.cmp(&y))),
        (Py::List(x), Py::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                let (p, q) = (py(p), py(q));
                if !py_eq(p, q) {
                    return py_cmp(op, p, q);
                }
            }
            Ok(op.holds(x.len().cmp(&y.len())))
        }
        (Py::Set(x), Py::Set(y)) => {
            let (sub, sup) = (set_subset(x, y), set_subset(y, x));
            Ok(match op {
                CmpOp::Lt => sub && !sup,
                CmpOp::Le => sub,
                CmpOp::Gt => sup && !sub,
                CmpOp::Ge => sup,
            })
        }
        _ => Err(format!(
            "'{}' not supported between instances of '{}' and '{}'",
            op.sym(),
            tn(a),
            tn(b)
        )),
    }
}

/// Python `item in container`.
fn py_contains(container: Py<'_>, item: Py<'_>) -> Result<bool, String> {
    match container {
        Py::List(v) => Ok(v.iter().any(|e| py_eq(py(e), item))),
        Py::Str(s) => match item {
            Py::Str(t) => Ok(s.contains(t)),
            _ => Err(format!(
                "'in <string>' requires string as left operand, not {}",
                tn(item)
            )),
        },
        Py::Dict(m) => {
            if !hashable(item) {
                return Err(format!("unhashable type: '{}'", tn(item)));
            }
            Ok(matches!(item, Py::Str(k) if m.contains_key(k)))
        }
        Py::Set(v) => {
            if !hashable(item) {
                return Err(format!("unhashable type: '{}'", tn(item)));
            }
            Ok(v.iter().any(|e| py_eq(py(e), item)))
        }
        _ => Err(format!(
            "argument of type '{}' is not iterable",
            tn(container)
        )),
    }
}

fn py_affix(x: Py<'_>, y: Py<'_>, ends: bool) -> Result<bool, String> {
    let name = if ends { "endswith" } else { "startswith" };
    let Py::Str(s) = x else {
        return Err(format!("'{}' object has no attribute '{name}'", tn(x)));
    };
    let Py::Str(t) = y else {
        return Err(format!(
            "{name} first arg must be str or a tuple of str, not {}",
            tn(y)
        ));
    };
    Ok(if ends {
        s.ends_with(t)
    } else {
        s.starts_with(t)
    })
}

// ---- repr / str --------------------------------------------------------------------------

/// Python `str(v)` of the decoded value (used in f-string error messages).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => match py(other) {
            Py::DateTime(us) => datetime_str(us),
            Py::Date(d) => d.to_string(),
            Py::Time(t) => t.to_string(),
            _ => py_repr(other),
        },
    }
}

/// Python `repr(v)` of the decoded value.
fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    repr_into(v, &mut out);
    out
}

fn repr_into(v: &Value, out: &mut String) {
    match py(v) {
        Py::None => out.push_str("None"),
        Py::Bool(b) => out.push_str(if b { "True" } else { "False" }),
        Py::Int(i) => out.push_str(&i.to_string()),
        Py::Float(f) => out.push_str(&float_repr(f)),
        Py::Str(s) => str_repr_into(s, out),
        Py::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(item, out);
            }
            out.push(']');
        }
        Py::Dict(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                str_repr_into(k, out);
                out.push_str(": ");
                repr_into(item, out);
            }
            out.push('}');
        }
        Py::Set(items) => {
            if items.is_empty() {
                out.push_str("set()");
                return;
            }
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(item, out);
            }
            out.push('}');
        }
        Py::DateTime(us) => out.push_str(&datetime_repr(us)),
        Py::Date(d) => {
            let parts: Vec<String> = d
                .split('-')
                .map(|p| p.trim_start_matches('0').to_string())
                .collect();
            out.push_str(&format!("datetime.date({})", parts.join(", ")));
        }
        Py::Time(t) => {
            let parts: Vec<String> = t
                .split(':')
                .map(|p| {
                    let p = p.trim_start_matches('0');
                    if p.is_empty() {
                        "0".to_string()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            out.push_str(&format!("datetime.time({})", parts.join(", ")));
        }
    }
}

fn str_repr_into(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Approximation of Python's `str.isprintable()` for one character.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let n = u32::from(c);
    !(c.is_control()
        || c.is_whitespace()
        || n == 0xAD
        || (0x200B..=0x200F).contains(&n)
        || (0x202A..=0x202E).contains(&n)
        || (0x2060..=0x206F).contains(&n)
        || n == 0xFEFF
        || (0xE000..=0xF8FF).contains(&n)
        || (0xFFF9..=0xFFFB).contains(&n)
        || n >= 0xF0000)
}

/// Python `repr(float)`.
fn float_repr(f: f64) -> String {
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
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    let decpt = exp + 1;
    let nd = digits.len() as i32;
    let body = if !(-3..=16).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        let m = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let e = decpt - 1;
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else if decpt <= 0 {
        format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
    } else if decpt >= nd {
        format!("{}{}.0", digits, "0".repeat((decpt - nd) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

// ---- datetimes -----------------------------------------------------------------------------

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

struct Dt {
    y: i64,
    mo: u32,
    d: u32,
    h: i64,
    mi: i64,
    s: i64,
    us: i64,
}

fn split_us(us: i64) -> Dt {
    let days = us.div_euclid(US_PER_DAY);
    let rem = us.rem_euclid(US_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let secs = rem / US_PER_SEC;
    Dt {
        y,
        mo,
        d,
        h: secs / 3600,
        mi: secs / 60 % 60,
        s: secs % 60,
        us: rem % US_PER_SEC,
    }
}

/// `str(datetime)` of an aware UTC datetime.
fn datetime_str(us: i64) -> String {
    let t = split_us(us);
    let frac = if t.us != 0 {
        format!(".{:06}", t.us)
    } else {
        String::new()
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{frac}+00:00",
        t.y, t.mo, t.d, t.h, t.mi, t.s
    )
}

/// `repr(datetime)` of an aware UTC datetime.
fn datetime_repr(us: i64) -> String {
    let t = split_us(us);
    let mut parts = format!("{}, {}, {}, {}, {}", t.y, t.mo, t.d, t.h, t.mi);
    if t.s != 0 || t.us != 0 {
        parts.push_str(&format!(", {}", t.s));
    }
    if t.us != 0 {
        parts.push_str(&format!(", {}", t.us));
    }
    format!("datetime.datetime({parts}, tzinfo=datetime.timezone.utc)")
}

/// `datetime.fromisoformat` of Python 3.11 (a port of its C parser, quirks included) → µs
/// since the epoch. A naive value is taken as UTC.
///
/// Accepts `YYYY-MM-DD`, `YYYYMMDD`, ISO week dates (`YYYY-Www[-D]`, `YYYYWww[D]`), then
/// optionally any one separator byte and `HH[[:]MM[[:]SS[(.|,)fraction]]]`, then optionally `Z`
/// or `±HH[[:]MM[[:]SS[.ffffff]]]`.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    if s.chars().count() < 7 {
        return None;
    }
    let b = s.as_bytes();
    let sep = iso_separator(b)?;
    let days = iso_date(b, sep)?;
    let (mut time_us, mut offset_us) = (0, 0);
    if b.len() > sep {
        (time_us, offset_us) = iso_time(&b[sep + 1..])?;
    }
    days.checked_mul(US_PER_DAY)?
        .checked_add(time_us)?
        .checked_sub(offset_us)
}

/// The byte at `i`, or NUL past the end (the C code reads the terminator).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// `parse_digits`: exactly `n` ASCII digits at `p`.
fn iso_digits(b: &[u8], p: usize, n: usize) -> Option<(i64, usize)> {
    let mut v = 0i64;
    for i in 0..n {
        let c = at(b, p + i);
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some((v, p + n))
}

/// `_find_isoformat_datetime_separator`.
fn iso_separator(b: &[u8]) -> Option<usize> {
    let len = b.len();
    if len == 7 {
        return Some(7);
    }
    if at(b, 4) == b'-' {
        if at(b, 5) == b'W' {
            if len < 8 {
                return None;
            }
            if len > 8 && at(b, 8) == b'-' {
                if len == 9 {
                    return None;
                }
                if len > 10 && at(b, 10).is_ascii_digit() {
                    return Some(8);
                }
                return Some(10);
            }
            return Some(8);
        }
        return Some(10);
    }
    if at(b, 4) == b'W' {
        let mut idx = 7;
        while idx < len && b[idx].is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

/// `parse_isoformat_date` plus the range checks of the `datetime` constructor → days.
fn iso_date(b: &[u8], len: usize) -> Option<i64> {
    let (year, mut p) = iso_digits(b, 0, 4)?;
    let uses_sep = at(b, p) == b'-';
    if uses_sep {
        p += 1;
    }
    let days = if at(b, p) == b'W' {
        let (week, q) = iso_digits(b, p + 1, 2)?;
        p = q;
        let mut day = 1;
        if p < len {
            if uses_sep {
                if at(b, p) != b'-' {
                    return None;
                }
                p += 1;
            }
            day = iso_digits(b, p, 1)?.0;
        }
        let jan4 = days_from_civil(year, 1, 4);
        let week1 = jan4 - (jan4 + 3).rem_euclid(7);
        let weeks = (days_from_civil(year, 12, 28) - week1) / 7 + 1;
        if !(1..=weeks).contains(&week) || !(1..=7).contains(&day) {
            return None;
        }
        let days = week1 + (week - 1) * 7 + (day - 1);
        if !(1..=9999).contains(&civil_from_days(days).0) {
            return None;
        }
        days
    } else {
        let (month, q) = iso_digits(b, p, 2)?;
        p = q;
        if uses_sep {
            if at(b, p) != b'-' {
                return None;
            }
            p += 1;
        }
        let (day, _) = iso_digits(b, p, 2)?;
        let (month, day) = (u32::try_from(month).ok()?, u32::try_from(day).ok()?);
        if !(1..=9999).contains(&year)
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
        {
            return None;
        }
        days_from_civil(year, month, day)
    };
    Some(days)
}

/// `parse_hh_mm_ss_ff` over `b[start..end]`: (not-at-end flag, h, m, s, µs).
fn iso_hms(b: &[u8], start: usize, end: usize) -> Option<(bool, [i64; 3], i64)> {
    let mut p = start;
    let mut vals = [0i64; 3];
    let mut has_sep = true;
    let mut i = 0;
    while i < 3 {
        let (v, q) = iso_digits(b, p, 2)?;
        vals[i] = v;
        p = q;
        let c = at(b, p);
        p += 1;
        if i == 0 {
            has_sep = c == b':';
        }
        if p >= end {
            return Some((c != 0, vals, 0));
        } else if has_sep && c == b':' {
            i += 1;
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_sep {
            p -= 1;
        } else {
            return None;
        }
        i += 1;
    }
    let to_parse = end.saturating_sub(p).min(6);
    let (mut us, q) = iso_digits(b, p, to_parse)?;
    p = q;
    for _ in to_parse..6 {
        us *= 10;
    }
    while at(b, p).is_ascii_digit() {
        p += 1;
    }
    Some((at(b, p) != 0, vals, us))
}

/// `parse_isoformat_time` → (µs since midnight, UTC offset in µs).
fn iso_time(t: &[u8]) -> Option<(i64, i64)> {
    let end = t.len();
    let mut tz = 0;
    loop {
        if matches!(at(t, tz), b'Z' | b'+' | b'-') {
            break;
        }
        tz += 1;
        if tz >= end {
            break;
        }
    }
    let (rest, [h, m, s], us) = iso_hms(t, 0, tz)?;
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let time = (h * 3600 + m * 60 + s) * US_PER_SEC + us;
    if tz == end {
        return if rest { None } else { Some((time, 0)) };
    }
    if at(t, tz) == b'Z' {
        return if at(t, tz + 1) != 0 {
            None
        } else {
            Some((time, 0))
        };
    }
    let sign = if at(t, tz) == b'-' { -1 } else { 1 };
    let (rest, [th, tm, ts], tus) = iso_hms(t, tz + 1, end)?;
    if rest {
        return None;
    }
    let offset = sign * ((th * 3600 + tm * 60 + ts) * US_PER_SEC + tus);
    if offset.abs() >= US_PER_DAY {
        return None;
    }
    Some((time, offset))
}

// ------------------------------------------------------------------------------------------
// Case folding
// ------------------------------------------------------------------------------------------

/// Characters whose `str.casefold()` differs from their lowercase mapping (Unicode 14, as in
/// Python 3.11), except Cherokee, which is handled arithmetically.
const CASEFOLD_SPECIAL: &[(u32, &str)] = &[
    (0x00b5, "\u{3bc}"),
    (0x00df, "ss"),
    (0x0149, "\u{2bc}n"),
    (0x017f, "s"),
    (0x01f0, "j\u{30c}"),
    (0x0345, "\u{3b9}"),
    (0x0390, "\u{3b9}\u{308}\u{301}"),
    (0x03b0, "\u{3c5}\u{308}\u{301}"),
    (0x03c2, "\u{3c3}"),
    (0x03d0, "\u{3b2}"),
    (0x03d1, "\u{3b8}"),
    (0x03d5, "\u{3c6}"),
    (0x03d6, "\u{3c0}"),
    (0x03f0, "\u{3ba}"),
    (0x03f1, "\u{3c1}"),
    (0x03f5, "\u{3b5}"),
    (0x0587, "\u{565}\u{582}"),
    (0x1c80, "\u{432}"),
    (0x1c81, "\u{434}"),
    (0x1c82, "\u{43e}"),
    (0x1c83, "\u{441}"),
    (0x1c84, "\u{442}"),
    (0x1c85, "\u{442}"),
    (0x1c86, "\u{44a}"),
    (0x1c87, "\u{463}"),
    (0x1c88, "\u{a64b}"),
    (0x1e96, "h\u{331}"),
    (0x1e97, "t\u{308}"),
    (0x1e98, "w\u{30a}"),
    (0x1e99, "y\u{30a}"),
    (0x1e9a, "a\u{2be}"),
    (0x1e9b, "\u{1e61}"),
    (0x1e9e, "ss"),
    (0x1f50, "\u{3c5}\u{313}"),
    (0x1f52, "\u{3c5}\u{313}\u{300}"),
    (0x1f54, "\u{3c5}\u{313}\u{301}"),
    (0x1f56, "\u{3c5}\u{313}\u{342}"),
    (0x1f80, "\u{1f00}\u{3b9}"),
    (0x1f81, "\u{1f01}\u{3b9}"),
    (0x1f82, "\u{1f02}\u{3b9}"),
    (0x1f83, "\u{1f03}\u{3b9}"),
    (0x1f84, "\u{1f04}\u{3b9}"),
    (0x1f85, "\u{1f05}\u{3b9}"),
    (0x1f86, "\u{1f06}\u{3b9}"),
    (0x1f87, "\u{1f07}\u{3b9}"),
    (0x1f88, "\u{1f00}\u{3b9}"),
    (0x1f89, "\u{1f01}\u{3b9}"),
    (0x1f8a, "\u{1f02}\u{3b9}"),
    (0x1f8b, "\u{1f03}\u{3b9}"),
    (0x1f8c, "\u{1f04}\u{3b9}"),
    (0x1f8d, "\u{1f05}\u{3b9}"),
    (0x1f8e, "\u{1f06}\u{3b9}"),
    (0x1f8f, "\u{1f07}\u{3b9}"),
    (0x1f90, "\u{1f20}\u{3b9}"),
    (0x1f91, "\u{1f21}\u{3b9}"),
    (0x1f92, "\u{1f22}\u{3b9}"),
    (0x1f93, "\u{1f23}\u{3b9}"),
    (0x1f94, "\u{1f24}\u{3b9}"),
    (0x1f95, "\u{1f25}\u{3b9}"),
    (0x1f96, "\u{1f26}\u{3b9}"),
    (0x1f97, "\u{1f27}\u{3b9}"),
    (0x1f98, "\u{1f20}\u{3b9}"),
    (0x1f99, "\u{1f21}\u{3b9}"),
    (0x1f9a, "\u{1f22}\u{3b9}"),
    (0x1f9b, "\u{1f23}\u{3b9}"),
    (0x1f9c, "\u{1f24}\u{3b9}"),
    (0x1f9d, "\u{1f25}\u{3b9}"),
    (0x1f9e, "\u{1f26}\u{3b9}"),
    (0x1f9f, "\u{1f27}\u{3b9}"),
    (0x1fa0, "\u{1f60}\u{3b9}"),
    (0x1fa1, "\u{1f61}\u{3b9}"),
    (0x1fa2, "\u{1f62}\u{3b9}"),
    (0x1fa3, "\u{1f63}\u{3b9}"),
    (0x1fa4, "\u{1f64}\u{3b9}"),
    (0x1fa5, "\u{1f65}\u{3b9}"),
    (0x1fa6, "\u{1f66}\u{3b9}"),
    (0x1fa7, "\u{1f67}\u{3b9}"),
    (0x1fa8, "\u{1f60}\u{3b9}"),
    (0x1fa9, "\u{1f61}\u{3b9}"),
    (0x1faa, "\u{1f62}\u{3b9}"),
    (0x1fab, "\u{1f63}\u{3b9}"),
    (0x1fac, "\u{1f64}\u{3b9}"),
    (0x1fad, "\u{1f65}\u{3b9}"),
    (0x1fae, "\u{1f66}\u{3b9}"),
    (0x1faf, "\u{1f67}\u{3b9}"),
    (0x1fb2, "\u{1f70}\u{3b9}"),
    (0x1fb3, "\u{3b1}\u{3b9}"),
    (0x1fb4, "\u{3ac}\u{3b9}"),
    (0x1fb6, "\u{3b1}\u{342}"),
    (0x1fb7, "\u{3b1}\u{342}\u{3b9}"),
    (0x1fbc, "\u{3b1}\u{3b9}"),
    (0x1fbe, "\u{3b9}"),
    (0x1fc2, "\u{1f74}\u{3b9}"),
    (0x1fc3, "\u{3b7}\u{3b9}"),
    (0x1fc4, "\u{3ae}\u{3b9}"),
    (0x1fc6, "\u{3b7}\u{342}"),
    (0x1fc7, "\u{3b7}\u{342}\u{3b9}"),
    (0x1fcc, "\u{3b7}\u{3b9}"),
    (0x1fd2, "\u{3b9}\u{308}\u{300}"),
    (0x1fd3, "\u{3b9}\u{308}\u{301}"),
    (0x1fd6, "\u{3b9}\u{342}"),
    (0x1fd7, "\u{3b9}\u{308}\u{342}"),
    (0x1fe2, "\u{3c5}\u{308}\u{300}"),
    (0x1fe3, "\u{3c5}\u{308}\u{301}"),
    (0x1fe4, "\u{3c1}\u{313}"),
    (0x1fe6, "\u{3c5}\u{342}"),
    (0x1fe7, "\u{3c5}\u{308}\u{342}"),
    (0x1ff2, "\u{1f7c}\u{3b9}"),
    (0x1ff3, "\u{3c9}\u{3b9}"),
    (0x1ff4, "\u{3ce}\u{3b9}"),
    (0x1ff6, "\u{3c9}\u{342}"),
    (0x1ff7, "\u{3c9}\u{342}\u{3b9}"),
    (0x1ffc, "\u{3c9}\u{3b9}"),
    (0xfb00, "ff"),
    (0xfb01, "fi"),
    (0xfb02, "fl"),
    (0xfb03, "ffi"),
    (0xfb04, "ffl"),
    (0xfb05, "st"),
    (0xfb06, "st"),
    (0xfb13, "\u{574}\u{576}"),
    (0xfb14, "\u{574}\u{565}"),
    (0xfb15, "\u{574}\u{56b}"),
    (0xfb16, "\u{57e}\u{576}"),
    (0xfb17, "\u{574}\u{56d}"),
];

/// Python `str.casefold()`.
fn casefold_str(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let n = u32::from(c);
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if (0x13a0..=0x13f5).contains(&n) {
            out.push(c);
        } else if (0x13f8..=0x13fd).contains(&n) {
            out.push(char::from_u32(n - 8).unwrap_or(c));
        } else if (0xab70..=0xabbf).contains(&n) {
            out.push(char::from_u32(n - 0xab70 + 0x13a0).unwrap_or(c));
        } else if let Ok(i) = CASEFOLD_SPECIAL.binary_search_by_key(&n, |&(k, _)| k) {
            out.push_str(CASEFOLD_SPECIAL[i].1);
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Cow::Owned(out)
}

/// `filter_list.casefold(obj)`.
fn casefold_value(v: &Value) -> Result<Cow<'_, Value>, String> {
    match v {
        Value::Null => Ok(Cow::Borrowed(v)),
        Value::String(s) => Ok(match casefold_str(s) {
            Cow::Borrowed(_) => Cow::Borrowed(v),
            Cow::Owned(f) => Cow::Owned(Value::String(f)),
        }),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(Value::String(casefold_str(s).into_owned())),
                    _ => {
                        return Err(format!(
                            "'{}' object has no attribute 'casefold'",
                            tn(py(item))
                        ));
                    }
                }
            }
            Ok(Cow::Owned(Value::Array(out)))
        }
        _ => Err(casefold_type_error(py(v))),
    }
}

fn casefold_type_error(p: Py<'_>) -> String {
    format!(
        "<class '{}'>: support for casefolding object type not implemented.",
        tn(p)
    )
}

// ------------------------------------------------------------------------------------------
// Paths
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum ListStep {
    Index(usize),
    /// A numeric index too large for `usize`: always out of range.
    OutOfRange,
    Wildcard,
    Invalid,
}

#[derive(Debug, Clone)]
struct Comp {
    key: Box<str>,
    list: ListStep,
}

/// A dotted path split exactly like `filter_list.partition`, once.
#[derive(Debug, Clone)]
struct FieldPath {
    comps: Vec<Comp>,
    /// `partition` raises `IndexError` on an empty component (`"a..b"`, `".a"`); it is raised
    /// when navigation reaches it.
    broken: bool,
}

fn split_path(path: &str) -> (Vec<String>, bool) {
    let mut comps = Vec::new();
    let mut right = path;
    while !right.is_empty() {
        let mut rv = String::new();
        let mut s = right;
        loop {
            match s.find('.') {
                None => {
                    rv.push_str(s);
                    right = "";
                    break;
                }
                Some(i) => {
                    let left = &s[..i];
                    if left.is_empty() {
                        return (comps, true);
                    }
                    if let Some(stripped) = left.strip_suffix('\\') {
                        rv.push_str(stripped);
                        rv.push('.');
                        s = &s[i + 1..];
                        if s.is_empty() {
                            right = "";
                            break;
                        }
                    } else {
                        rv.push_str(left);
                        right = &s[i + 1..];
                        break;
                    }
                }
            }
        }
        comps.push(rv);
    }
    (comps, false)
}

impl FieldPath {
    fn new(path: &str) -> Self {
        let (parts, broken) = split_path(path);
        let comps = parts
            .into_iter()
            .map(|key| {
                let list = if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
                    key.parse::<usize>()
                        .map_or(ListStep::OutOfRange, ListStep::Index)
                } else if key == "*" {
                    ListStep::Wildcard
                } else {
                    ListStep::Invalid
                };
                Comp {
                    key: key.into_boxed_str(),
                    list,
                }
            })
            .collect();
        Self { comps, broken }
    }

    /// `get_impl` starting at component `from`.
    fn resolve<'a>(&self, root: &'a Value, from: usize) -> Result<Resolved<'a>, String> {
        static NONE: Value = Value::Null;
        let mut cur: Option<&'a Value> = Some(root);
        for (i, comp) in self.comps.iter().enumerate().skip(from) {
            match cur {
                Some(Value::Object(m)) if !is_ejson(m) => cur = m.get(&*comp.key),
                Some(list @ Value::Array(items)) => match comp.list {
                    ListStep::Index(n) => cur = Some(items.get(n).unwrap_or(&NONE)),
                    ListStep::OutOfRange => cur = Some(&NONE),
                    ListStep::Wildcard => return Ok(Resolved::Wild(list, i + 1)),
                    ListStep::Invalid => {
                        return Err(format!(
                            "{}: must be array index or wildcard character",
                            comp.key
                        ));
                    }
                },
                _ => {}
            }
        }
        if self.broken {
            return Err(ERR_STR_INDEX.into());
        }
        Ok(cur.map_or(Resolved::Undefined, Resolved::Found))
    }
}

enum Resolved<'a> {
    Undefined,
    Found(&'a Value),
    /// A `*` met a list: the list, and the index of the first component after the `*`.
    Wild(&'a Value, usize),
}

// ------------------------------------------------------------------------------------------
// Filters: compilation (validate_filters)
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Cmp(CmpOp),
    Re,
    In,
    Nin,
    Rin,
    Rnin,
    Starts,
    NotStarts,
    Ends,
    NotEnds,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            ">" => Self::Cmp(CmpOp::Gt),
            ">=" => Self::Cmp(CmpOp::Ge),
            "<" => Self::Cmp(CmpOp::Lt),
            "<=" => Self::Cmp(CmpOp::Le),
            "~" => Self::Re,
            "in" => Self::In,
            "nin" => Self::Nin,
            "rin" => Self::Rin,
            "rnin" => Self::Rnin,
            "^" => Self::Starts,
            "!^" => Self::NotStarts,
            "$" => Self::Ends,
            "!$" => Self::NotEnds,
            _ => return None,
        })
    }

    fn timestamp_ok(self) -> bool {
        matches!(self, Self::Eq | Self::Ne | Self::Cmp(_))
    }
}

#[derive(Debug, Clone)]
enum Node {
    Cond(Box<Cond>),
    Or(Vec<Branch>),
}

#[derive(Debug, Clone)]
enum Branch {
    And(Vec<Node>),
    One(Node),
}

/// The filter operand: JSON, or a datetime produced from an ISO-8601 string by `.$date`.
#[derive(Debug, Clone)]
enum Operand {
    Json(Value),
    DateTime(i64),
}

impl Operand {
    fn py(&self) -> Py<'_> {
        match self {
            Self::Json(v) => py(v),
            Self::DateTime(us) => Py::DateTime(*us),
        }
    }
}

#[derive(Debug, Clone)]
enum Target {
    Path(FieldPath),
    /// A falsy non-string field name: `get_impl` returns the record itself.
    Root,
}

#[derive(Debug, Clone)]
struct Cond {
    name: Value,
    target: Target,
    op: Op,
    case_insensitive: bool,
    value: Operand,
    /// For `C` operators: `casefold(value)`, or the exception it raises.
    folded: Option<Result<Operand, String>>,
    /// An exception raised before the record is even looked at (e.g. `unhashable type`).
    poison: Option<String>,
    /// For `~`: the compiled pattern, or the exception compiling it raises.
    regex: Option<Result<re::Regex, String>>,
    /// For `in`/`nin` with a list operand: its string members, for O(1) lookups.
    members: Option<Members>,
}

#[derive(Debug, Clone)]
struct Members {
    strings: HashSet<Box<str>>,
    others: Vec<Value>,
}

impl Members {
    fn build(v: &Value) -> Option<Self> {
        let Value::Array(items) = v else { return None };
        let mut strings = HashSet::new();
        let mut others = Vec::new();
        for item in items {
            match item {
                Value::String(s) => {
                    strings.insert(s.clone().into_boxed_str());
                }
                other => others.push(other.clone()),
            }
        }
        Some(Self { strings, others })
    }

    fn contains(&self, item: Py<'_>) -> bool {
        match item {
            Py::Str(s) => self.strings.contains(s),
            _ => self.others.iter().any(|o| py_eq(py(o), item)),
        }
    }
}

#[derive(Default)]
struct CompileCtx {
    /// `value_maps`: ISO string → datetime, filled by `.$date` conditions.
    maps: HashMap<String, i64>,
}

/// What `len(f)`, `op, value = f` and `f[i]` see.
enum SeqKind {
    List,
    Str,
    Dict,
    Set,
}

fn as_seq(f: &Value) -> Result<(SeqKind, Vec<Value>), String> {
    match f {
        Value::Array(items) => Ok((SeqKind::List, items.clone())),
        Value::String(s) => Ok((
            SeqKind::Str,
            s.chars().map(|c| Value::String(c.into())).collect(),
        )),
        Value::Object(m) => match py(f) {
            Py::Dict(_) => Ok((
                SeqKind::Dict,
                m.keys().map(|k| Value::String(k.clone())).collect(),
            )),
            Py::Set(items) => Ok((SeqKind::Set, items.to_vec())),
            p => Err(format!("object of type '{}' has no len()", tn(p))),
        },
        _ => Err(format!("object of type '{}' has no len()", tn(py(f)))),
    }
}

/// `for x in value` over an `OR` operand.
fn iterate(v: &Value) -> Result<Vec<Value>, String> {
    match as_seq(v) {
        Ok((_, items)) => Ok(items),
        Err(_) => Err(format!("'{}' object is not iterable", tn(py(v)))),
    }
}

/// `x[0]` is a list?
fn first_is_list(branch: &Value) -> Result<bool, String> {
    match branch {
        Value::Array(items) => match items.first() {
            Some(first) => Ok(first.is_array()),
            None => Err("list index out of range".into()),
        },
        Value::String(s) => {
            if s.is_empty() {
                Err(ERR_STR_INDEX.into())
            } else {
                Ok(false)
            }
        }
        Value::Object(_) => match py(branch) {
            Py::Dict(_) => Err("0".into()),
            p => Err(format!("'{}' object is not subscriptable", tn(p))),
        },
        _ => Err(format!("'{}' object is not subscriptable", tn(py(branch)))),
    }
}

fn compile_list<'v>(
    items: impl Iterator<Item = &'v Value>,
    depth: usize,
    ctx: &mut CompileCtx,
) -> Result<Vec<Node>, String> {
    if depth > MAX_FILTERS_DEPTH {
        return Err(ERR_DEPTH.into());
    }
    let mut nodes = Vec::new();
    for f in items {
        nodes.push(compile_one(f, depth, ctx)?);
    }
    Ok(nodes)
}

fn compile_one(f: &Value, depth: usize, ctx: &mut CompileCtx) -> Result<Node, String> {
    let (kind, items) = as_seq(f)?;
    if let [op, value] = items.as_slice() {
        if op.as_str() != Some("OR") {
            return Err(format!("Invalid operation: {}", py_str(op)));
        }
        if !truthy(py(value)) {
            return Err(ERR_OR_EMPTY.into());
        }
        let mut branches = Vec::new();
        for branch in iterate(value)? {
            if first_is_list(&branch)? {
                let Value::Array(conds) = &branch else {
                    return Err("list index out of range".into());
                };
                branches.push(Branch::And(compile_list(conds.iter(), depth + 1, ctx)?));
            } else {
                let mut nodes = compile_list(std::iter::once(&branch), depth + 1, ctx)?;
                match nodes.pop() {
                    Some(node) => branches.push(Branch::One(node)),
                    None => return Err(ERR_OR_EMPTY.into()),
                }
            }
        }
        return Ok(Node::Or(branches));
    }
    if items.len() != 3 {
        return Err(format!("Invalid filter {}", py_str(f)));
    }
    match kind {
        SeqKind::Dict => return Err("1".into()),
        SeqKind::Set => return Err("'set' object is not subscriptable".into()),
        SeqKind::List | SeqKind::Str => {}
    }
    let mut items = items.into_iter();
    let (Some(name), Some(op), Some(value)) = (items.next(), items.next(), items.next()) else {
        return Err(format!("Invalid filter {}", py_str(f)));
    };
    compile_cond(name, &op, value, ctx).map(|c| Node::Cond(Box::new(c)))
}

fn compile_cond(
    name: Value,
    op: &Value,
    value: Value,
    ctx: &mut CompileCtx,
) -> Result<Cond, String> {
    let op_s = match op {
        Value::String(s) => s.as_str(),
        Value::Array(items) if items.is_empty() => return Err("list index out of range".into()),
        Value::Array(_) => return Err("unhashable type: 'list'".into()),
        _ => {
            return Err(match py(op) {
                Py::Dict(_) => "0".to_string(),
                p => format!("'{}' object is not subscriptable", tn(p)),
            });
        }
    };
    if op_s.is_empty() {
        return Err(ERR_STR_INDEX.into());
    }
    let (case_insensitive, base) = match op_s.strip_prefix('C') {
        Some(rest) => (true, rest),
        None => (false, op_s),
    };
    if case_insensitive && base == "~" {
        return Err(format!("Invalid case-insensitive operation: {op_s}"));
    }
    let Some(parsed) = Op::parse(base) else {
        return Err(format!("Invalid operation: {op_s}"));
    };

    // Timestamps: either operand may carry the `.$date` suffix; the other must be ISO-8601.
    for (is_name, operand) in [(true, &name), (false, &value)] {
        let Value::String(s) = operand else { continue };
        if !s.ends_with(TIMESTAMP_DESIGNATOR) {
            continue;
        }
        if !parsed.timestamp_ok() {
            return Err(format!("{base}: invalid timestamp operation."));
        }
        let other_operand = if is_name || py_eq(py(operand), py(&name)) {
            &value
        } else {
            &name
        };
        match other_operand {
            Value::String(iso) => match parse_iso8601(iso) {
                Some(us) => {
                    ctx.maps.insert(iso.clone(), us);
                }
                None => {
                    return Err(format!(
                        "{iso}: must be an ISO-8601 formatted timestamp string"
                    ));
                }
            },
            v => {
                return Err(format!(
                    "{}: must be an ISO-8601 formatted timestamp string",
                    py_str(v)
                ));
            }
        }
    }

    // A non-string name: falsy ones make `get_impl` return the record itself, truthy ones
    // fail in `partition`.
    let (target, poison) = match &name {
        Value::String(path) => (Target::Path(FieldPath::new(path)), None),
        v if !truthy(py(v)) => (Target::Root, None),
        v => (
            Target::Root,
            Some(format!(
                "'{}' object has no attribute 'partition'",
                tn(py(v))
            )),
        ),
    };
    let mut cond = Cond {
        name,
        target,
        op: parsed,
        case_insensitive,
        value: Operand::Json(value),
        folded: None,
        poison,
        regex: None,
        members: None,
    };
    cond.prepare();
    Ok(cond)
}

impl Cond {
    /// Pre-computes everything that depends only on the operand.
    fn prepare(&mut self) {
        let operand = if self.case_insensitive {
            let folded = match &self.value {
                Operand::Json(v) => casefold_value(v).map(|c| Operand::Json(c.into_owned())),
                Operand::DateTime(us) => Err(casefold_type_error(Py::DateTime(*us))),
            };
            self.folded = Some(folded.clone());
            folded.ok()
        } else {
            Some(self.value.clone())
        };
        self.regex = None;
        self.members = None;
        match (self.op, &operand) {
            (Op::Re, Some(Operand::Json(Value::String(p)))) => self.regex = Some(re::Regex::new(p)),
            (Op::Re, operand) => {
                // `re._compile` looks the pattern up in its cache first: unhashable → TypeError.
                let p = operand.as_ref().map_or(Py::None, Operand::py);
                self.regex = Some(Err(if hashable(p) {
                    "first argument must be string or compiled pattern".to_string()
                } else {
                    format!("unhashable type: '{}'", tn(p))
                }));
            }
            (Op::In | Op::Nin, Some(Operand::Json(v))) => self.members = Members::build(v),
            _ => {}
        }
    }

    /// `eval_filter` with non-empty `value_maps`: `value_maps.get(f[0]) or f[0]`, same for f[2].
    fn apply_value_maps(&mut self, maps: &HashMap<String, i64>) {
        let name_py = py(&self.name);
        if !hashable(name_py) {
            self.poison = Some(format!("unhashable type: '{}'", tn(name_py)));
            return;
        }
        let Operand::Json(value) = &self.value else {
            return;
        };
        let value_py = py(value);
        if !hashable(value_py) {
            self.poison = Some(format!("unhashable type: '{}'", tn(value_py)));
            return;
        }
        if let Value::String(s) = value
            && let Some(us) = maps.get(s)
        {
            self.value = Operand::DateTime(*us);
            self.prepare();
        }
        if let Value::String(s) = &self.name
            && maps.contains_key(s)
        {
            self.poison = Some("'datetime.datetime' object has no attribute 'partition'".into());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Filters: evaluation (eval_filter / filterop)
// ------------------------------------------------------------------------------------------

impl Node {
    fn eval(&self, record: &Value) -> Result<bool, String> {
        match self {
            Self::Cond(c) => c.eval(record),
            Self::Or(branches) => {
                for branch in branches {
                    let hit = match branch {
                        Branch::And(nodes) => {
                            let mut all = true;
                            for node in nodes {
                                if !node.eval(record)? {
                                    all = false;
                                    break;
                                }
                            }
                            all
                        }
                        Branch::One(node) => node.eval(record)?,
                    };
                    if hit {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn apply_value_maps(&mut self, maps: &HashMap<String, i64>) {
        match self {
            Self::Cond(c) => c.apply_value_maps(maps),
            Self::Or(branches) => {
                for branch in branches {
                    match branch {
                        Branch::And(nodes) => {
                            nodes.iter_mut().for_each(|n| n.apply_value_maps(maps))
                        }
                        Branch::One(node) => node.apply_value_maps(maps),
                    }
                }
            }
        }
    }
}

impl Cond {
    fn eval(&self, record: &Value) -> Result<bool, String> {
        if let Some(p) = &self.poison {
            return Err(p.clone());
        }
        match &self.target {
            Target::Root => self.apply(record),
            Target::Path(path) => self.eval_at(path, record, 0),
        }
    }

    fn eval_at(&self, path: &FieldPath, v: &Value, from: usize) -> Result<bool, String> {
        match path.resolve(v, from)? {
            Resolved::Undefined => Ok(false),
            Resolved::Found(x) => self.apply(x),
            Resolved::Wild(list, next) => {
                let Value::Array(items) = list else {
                    return Ok(false);
                };
                for item in items {
                    if self.eval_at(path, item, next)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn apply(&self, source: &Value) -> Result<bool, String> {
        if self.case_insensitive {
            let source = casefold_value(source)?;
            let value = match &self.folded {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(e.clone()),
                None => &self.value,
            };
            self.op_apply(py(&source), value.py())
        } else {
            self.op_apply(py(source), self.value.py())
        }
    }

    fn op_apply(&self, x: Py<'_>, y: Py<'_>) -> Result<bool, String> {
        match self.op {
            Op::Eq => Ok(py_eq(x, y)),
            Op::Ne => Ok(!py_eq(x, y)),
            Op::Cmp(op) => py_cmp(op, x, y),
            Op::Re => {
                let regex = match &self.regex {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => return Err(e.clone()),
                    None => return Err("first argument must be string or compiled pattern".into()),
                };
                let subject = match x {
                    Py::Str(s) => s,
                    p if !truthy(p) => "",
                    p => {
                        return Err(format!(
                            "expected string or bytes-like object, got '{}'",
                            tn(p)
                        ));
                    }
                };
                regex.is_match(subject)
            }
            Op::In => self.contains_in_operand(y, x),
            Op::Nin => {
                if matches!(x, Py::None) {
                    return Ok(false);
                }
                Ok(!self.contains_in_operand(y, x)?)
            }
            Op::Rin | Op::Rnin => {
                if matches!(x, Py::None) {
                    return Ok(false);
                }
                let hit = py_contains(x, y)?;
                Ok(if self.op == Op::Rin { hit } else { !hit })
            }
            Op::Starts | Op::NotStarts | Op::Ends | Op::NotEnds => {
                if matches!(x, Py::None) {
                    return Ok(false);
                }
                let ends = matches!(self.op, Op::Ends | Op::NotEnds);
                let hit = py_affix(x, y, ends)?;
                Ok(if matches!(self.op, Op::Starts | Op::Ends) {
                    hit
                } else {
                    !hit
                })
            }
        }
    }

    fn contains_in_operand(&self, container: Py<'_>, item: Py<'_>) -> Result<bool, String> {
        match (&self.members, container) {
            (Some(m), Py::List(_)) => Ok(m.contains(item)),
            _ => py_contains(container, item),
        }
    }
}

// ------------------------------------------------------------------------------------------
// select
// ------------------------------------------------------------------------------------------

struct SelectSpec {
    path: FieldPath,
    alias: Option<String>,
}

fn compile_select(select: &[Select]) -> Vec<SelectSpec> {
    select
        .iter()
        .map(|s| match s {
            Select::Field(f) => SelectSpec {
                path: FieldPath::new(f),
                alias: None,
            },
            Select::Alias(f, a) => SelectSpec {
                path: FieldPath::new(f),
                alias: Some(a.clone()),
            },
        })
        .collect()
}

/// `select_path`: the keys walked through dicts and the value (`None` = not found).
fn select_path<'a>(
    record: &'a Value,
    path: &'a FieldPath,
) -> Result<(Vec<&'a str>, Option<&'a Value>), String> {
    let mut keys = Vec::new();
    let mut cur = Some(record);
    for comp in &path.comps {
        match cur {
            Some(Value::Object(m)) if !is_ejson(m) => {
                cur = m.get(&*comp.key);
                keys.push(&*comp.key);
            }
            Some(Value::Array(_)) => return Err(ERR_SELECT_INDEX.into()),
            _ => {}
        }
    }
    if path.broken {
        return Err(ERR_STR_INDEX.into());
    }
    Ok((keys, cur))
}

fn do_select(record: &Value, select: &[SelectSpec]) -> Result<Value, ApiError> {
    let mut entry = Value::Object(Map::new());
    for spec in select {
        let (keys, value) = select_path(record, &spec.path).map_err(other)?;
        let Some(value) = value else { continue };
        if let Some(alias) = &spec.alias {
            if let Value::Object(m) = &mut entry {
                m.insert(alias.clone(), value.clone());
            }
            continue;
        }
        let Some((last, init)) = keys.split_last() else {
            return Err(other("pop from empty list"));
        };
        let mut obj = &mut entry;
        for k in init {
            let type_name = tn(py(obj));
            obj = match obj {
                Value::Object(m) if type_name == "dict" => m
                    .entry((*k).to_string())
                    .or_insert_with(|| Value::Object(Map::new())),
                _ => {
                    return Err(other(format!(
                        "'{type_name}' object has no attribute 'setdefault'"
                    )));
                }
            };
        }
        match obj {
            Value::Object(m) if !is_ejson(m) => {
                m.insert((*last).to_string(), value.clone());
            }
            Value::Array(_) => {
                return Err(other("list indices must be integers or slices, not str"));
            }
            o => {
                return Err(other(format!(
                    "'{}' object does not support item assignment",
                    tn(py(o))
                )));
            }
        }
    }
    Ok(entry)
}

// ------------------------------------------------------------------------------------------
// order_by
// ------------------------------------------------------------------------------------------

fn do_order(mut rv: Vec<Value>, order_by: &[String]) -> Result<Vec<Value>, ApiError> {
    for o in order_by {
        if let Some(rest) = o.strip_prefix(NULLS_FIRST) {
            let (mut nulls, non_nulls) = order_nulls(rv, rest)?;
            nulls.extend(non_nulls);
            rv = nulls;
        } else if let Some(rest) = o.strip_prefix(NULLS_LAST) {
            let (nulls, mut non_nulls) = order_nulls(rv, rest)?;
            non_nulls.extend(nulls);
            rv = non_nulls;
        } else {
            let (order, reverse) = match o.strip_prefix('-') {
                Some(rest) => (rest, true),
                None => (o.as_str(), false),
            };
            rv = sorted_by_path(rv, order, reverse)?;
        }
    }
    Ok(rv)
}

fn order_nulls(list: Vec<Value>, order: &str) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let (order, reverse) = match order.strip_prefix('-') {
        Some(rest) => (rest, true),
        None => (order, false),
    };
    let mut nulls = Vec::new();
    let mut non_nulls = Vec::new();
    for entry in list {
        let is_null = match &entry {
            Value::Object(m) if !is_ejson(m) => m.get(order).is_none_or(Value::is_null),
            other_entry => {
                return Err(other(format!(
                    "'{}' object has no attribute 'get'",
                    tn(py(other_entry))
                )));
            }
        };
        if is_null {
            nulls.push(entry)
        } else {
            non_nulls.push(entry)
        }
    }
    let non_nulls = sorted_by_path(non_nulls, order, reverse)?;
    Ok((nulls, non_nulls))
}

/// `sorted(list, key=lambda x: get(x, path), reverse=reverse)`.
fn sorted_by_path(list: Vec<Value>, path: &str, reverse: bool) -> Result<Vec<Value>, ApiError> {
    if list.len() < 2 {
        // Keys are still computed (and may raise) for a single element.
        let path = FieldPath::new(path);
        for v in &list {
            path.resolve(v, 0).map_err(other)?;
        }
        return Ok(list);
    }
    let path = FieldPath::new(path);
    let mut keys: Vec<Py<'_>> = Vec::with_capacity(list.len());
    for v in &list {
        keys.push(match path.resolve(v, 0).map_err(other)? {
            Resolved::Undefined => Py::None,
            Resolved::Found(x) | Resolved::Wild(x, _) => py(x),
        });
    }
    let mut order: Vec<usize> = (0..list.len()).collect();
    if reverse {
        order.reverse();
    }
    timsort::sort(&mut order, &mut |a, b| py_cmp(CmpOp::Lt, keys[a], keys[b])).map_err(other)?;
    if reverse {
        order.reverse();
    }
    let mut slots: Vec<Option<Value>> = list.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// A port of CPython 3.11's `list.sort` (timsort with powersort merge policy), so that the
/// sequence of `<` comparisons, and hence any `TypeError`, is the one Python performs.
mod timsort {
    const MIN_GALLOP: usize = 7;

    type Lt<'f> = dyn FnMut(usize, usize) -> Result<bool, String> + 'f;

    #[derive(Clone, Copy)]
    struct Run {
        base: usize,
        len: usize,
        power: u32,
    }

    struct State<'f, 'g> {
        lt: &'f mut Lt<'g>,
        min_gallop: usize,
        pending: Vec<Run>,
        tmp: Vec<usize>,
        listlen: usize,
    }

    pub(super) fn sort(a: &mut [usize], lt: &mut Lt<'_>) -> Result<(), String> {
        let n = a.len();
        if n < 2 {
            return Ok(());
        }
        let mut st = State {
            lt,
            min_gallop: MIN_GALLOP,
            pending: Vec::new(),
            tmp: Vec::new(),
            listlen: n,
        };
        let minrun = compute_minrun(n);
        let mut lo = 0;
        let mut nremaining = n;
        while nremaining > 0 {
            let (mut run, descending) = st.count_run(a, lo, lo + nremaining)?;
            if descending {
                a[lo..lo + run].reverse();
            }
            if run < minrun {
                let force = nremaining.min(minrun);
                st.binarysort(a, lo, lo + force, lo + run)?;
                run = force;
            }
            st.found_new_run(a, run)?;
            st.pending.push(Run {
                base: lo,
                len: run,
                power: 0,
            });
            lo += run;
            nremaining -= run;
        }
        st.merge_force_collapse(a)
    }

    fn compute_minrun(mut n: usize) -> usize {
        let mut r = 0;
        while n >= 64 {
            r |= n & 1;
            n >>= 1;
        }
        n + r
    }

    fn powerloop(s1: usize, n1: usize, n2: usize, n: usize) -> u32 {
        let mut result = 0;
        let mut a = 2 * s1 + n1;
        let mut b = a + n1 + n2;
        loop {
            result += 1;
            if a >= n {
                a -= n;
                b -= n;
            } else if b >= n {
                break;
            }
            a <<= 1;
            b <<= 1;
        }
        result
    }

    impl State<'_, '_> {
        fn lt(&mut self, x: usize, y: usize) -> Result<bool, String> {
            (self.lt)(x, y)
        }

        fn count_run(
            &mut self,
            a: &[usize],
            lo: usize,
            hi: usize,
        ) -> Result<(usize, bool), String> {
            let mut i = lo + 1;
            if i == hi {
                return Ok((1, false));
            }
            let mut n = 2;
            if self.lt(a[i], a[i - 1])? {
                i += 1;
                while i < hi {
                    if !self.lt(a[i], a[i - 1])? {
                        break;
                    }
                    i += 1;
                    n += 1;
                }
                Ok((n, true))
            } else {
                i += 1;
                while i < hi {
                    if self.lt(a[i], a[i - 1])? {
                        break;
                    }
                    i += 1;
                    n += 1;
                }
                Ok((n, false))
            }
        }

        fn binarysort(
            &mut self,
            a: &mut [usize],
            lo: usize,
            hi: usize,
            mut start: usize,
        ) -> Result<(), String> {
            if lo == start {
                start += 1;
            }
            while start < hi {
                let pivot = a[start];
                let mut l = lo;
                let mut r = start;
                loop {
                    let p = l + ((r - l) >> 1);
                    if self.lt(pivot, a[p])? {
                        r = p;
                    } else {
                        l = p + 1;
                    }
                    if l >= r {
                        break;
                    }
                }
                a.copy_within(l..start, l + 1);
                a[l] = pivot;
                start += 1;
            }
            Ok(())
        }

        /// Index in `a` (sorted) where `key` belongs, leftmost among equals.
        fn gallop_left(&mut self, key: usize, a: &[usize], hint: usize) -> Result<usize, String> {
            let n = a.len() as isize;
            let hint = hint as isize;
            let mut lastofs: isize = 0;
            let mut ofs: isize = 1;
            if self.lt(a[hint as usize], key)? {
                let maxofs = n - hint;
                while ofs < maxofs {
                    if self.lt(a[(hint + ofs) as usize], key)? {
                        lastofs = ofs;
                        ofs = (ofs << 1) + 1;
                    } else {
                        break;
                    }
                }
                if ofs > maxofs {
                    ofs = maxofs;
                }
                lastofs += hint;
                ofs += hint;
            } else {
                let maxofs = hint + 1;
                while ofs < maxofs {
                    if self.lt(a[(hint - ofs) as usize], key)? {
                        break;
                    }
                    lastofs = ofs;
                    ofs = (ofs << 1) + 1;
                }
                if ofs > maxofs {
                    ofs = maxofs;
                }
                let k = lastofs;
                lastofs = hint - ofs;
                ofs = hint - k;
            }
            lastofs += 1;
            while lastofs < ofs {
                let m = lastofs + ((ofs - lastofs) >> 1);
                if self.lt(a[m as usize], key)? {
                    lastofs = m + 1;
                } else {
                    ofs = m;
                }
            }
            Ok(ofs as usize)
        }

        /// Index in `a` (sorted) where `key` belongs, rightmost among equals.
        fn gallop_right(&mut self, key: usize, a: &[usize], hint: usize) -> Result<usize, String> {
            let n = a.len() as isize;
            let hint = hint as isize;
            let mut lastofs: isize = 0;
            let mut ofs: isize = 1;
            if self.lt(key, a[hint as usize])? {
                let maxofs = hint + 1;
                while ofs < maxofs {
                    if self.lt(key, a[(hint - ofs) as usize])? {
                        lastofs = ofs;
                        ofs = (ofs << 1) + 1;
                    } else {
                        break;
                    }
                }
                if ofs > maxofs {
                    ofs = maxofs;
                }
                let k = lastofs;
                lastofs = hint - ofs;
                ofs = hint - k;
            } else {
                let maxofs = n - hint;
                while ofs < maxofs {
                    if self.lt(key, a[(hint + ofs) as usize])? {
                        break;
                    }
                    lastofs = ofs;
                    ofs = (ofs << 1) + 1;
                }
                if ofs > maxofs {
                    ofs = maxofs;
                }
                lastofs += hint;
                ofs += hint;
            }
            lastofs += 1;
            while lastofs < ofs {
                let m = lastofs + ((ofs - lastofs) >> 1);
                if self.lt(key, a[m as usize])? {
                    ofs = m;
                } else {
                    lastofs = m + 1;
                }
            }
            Ok(ofs as usize)
        }

        fn found_new_run(&mut self, a: &mut [usize], n2: usize) -> Result<(), String> {
            if let Some(top) = self.pending.last().copied() {
                let power = powerloop(top.base, top.len, n2, self.listlen);
                while self.pending.len() > 1 && self.pending[self.pending.len() - 2].power > power {
                    self.merge_at(a, self.pending.len() - 2)?;
                }
                if let Some(top) = self.pending.last_mut() {
                    top.power = power;
                }
            }
            Ok(())
        }

        fn merge_force_collapse(&mut self, a: &mut [usize]) -> Result<(), String> {
            while self.pending.len() > 1 {
                let mut n = self.pending.len() - 2;
                if n > 0 && self.pending[n - 1].len < self.pending[n + 1].len {
                    n -= 1;
                }
                self.merge_at(a, n)?;
            }
            Ok(())
        }

        fn merge_at(&mut self, a: &mut [usize], i: usize) -> Result<(), String> {
            let Run {
                base: mut base_a,
                len: mut na,
                ..
            } = self.pending[i];
            let Run {
                base: base_b,
                len: nb,
                ..
            } = self.pending[i + 1];
            self.pending[i].len = na + nb;
            self.pending.remove(i + 1);

            let k = self.gallop_right(a[base_b], &a[base_a..base_a + na], 0)?;
            base_a += k;
            na -= k;
            if na == 0 {
                return Ok(());
            }
            let nb = self.gallop_left(a[base_a + na - 1], &a[base_b..base_b + nb], nb - 1)?;
            if nb == 0 {
                return Ok(());
            }
            if na <= nb {
                self.merge_lo(a, base_a, na, base_b, nb)
            } else {
                self.merge_hi(a, base_a, na, base_b, nb)
            }
        }

        fn merge_lo(
            &mut self,
            a: &mut [usize],
            base_a: usize,
            mut na: usize,
            base_b: usize,
            mut nb: usize,
        ) -> Result<(), String> {
            enum Exit {
                Succeed,
                CopyB,
            }
            let mut tmp = std::mem::take(&mut self.tmp);
            tmp.clear();
            tmp.extend_from_slice(&a[base_a..base_a + na]);
            let mut pa = 0usize;
            let mut pb = base_b;
            let mut dest = base_a;

            a[dest] = a[pb];
            dest += 1;
            pb += 1;
            nb -= 1;
            let exit = 'body: {
                if nb == 0 {
                    break 'body Exit::Succeed;
                }
                if na == 1 {
                    break 'body Exit::CopyB;
                }
                let mut min_gallop = self.min_gallop;
                loop {
                    let mut acount = 0usize;
                    let mut bcount = 0usize;
                    loop {
                        if self.lt(a[pb], tmp[pa])? {
                            a[dest] = a[pb];
                            dest += 1;
                            pb += 1;
                            bcount += 1;
                            acount = 0;
                            nb -= 1;
                            if nb == 0 {
                                break 'body Exit::Succeed;
                            }
                            if bcount >= min_gallop {
                                break;
                            }
                        } else {
                            a[dest] = tmp[pa];
                            dest += 1;
                            pa += 1;
                            acount += 1;
                            bcount = 0;
                            na -= 1;
                            if na == 1 {
                                break 'body Exit::CopyB;
                            }
                            if acount >= min_gallop {
                                break;
                            }
                        }
                    }
                    min_gallop += 1;
                    loop {
                        min_gallop -= usize::from(min_gallop > 1);
                        self.min_gallop = min_gallop;
                        let k = self.gallop_right(a[pb], &tmp[pa..pa + na], 0)?;
                        acount = k;
                        if k > 0 {
                            a[dest..dest + k].copy_from_slice(&tmp[pa..pa + k]);
                            dest += k;
                            pa += k;
                            na -= k;
                            if na == 1 {
                                break 'body Exit::CopyB;
                            }
                            if na == 0 {
                                break 'body Exit::Succeed;
                            }
                        }
                        a[dest] = a[pb];
                        dest += 1;
                        pb += 1;
                        nb -= 1;
                        if nb == 0 {
                            break 'body Exit::Succeed;
                        }
                        let k = self.gallop_left(tmp[pa], &a[pb..pb + nb], 0)?;
                        bcount = k;
                        if k > 0 {
                            a.copy_within(pb..pb + k, dest);
                            dest += k;
                            pb += k;
                            nb -= k;
                            if nb == 0 {
                                break 'body Exit::Succeed;
                            }
                        }
                        a[dest] = tmp[pa];
                        dest += 1;
                        pa += 1;
                        na -= 1;
                        if na == 1 {
                            break 'body Exit::CopyB;
                        }
                        if acount < MIN_GALLOP && bcount < MIN_GALLOP {
                            break;
                        }
                    }
                    min_gallop += 1;
                    self.min_gallop = min_gallop;
                }
            };
            match exit {
                Exit::Succeed => {
                    if na > 0 {
                        a[dest..dest + na].copy_from_slice(&tmp[pa..pa + na]);
                    }
                }
                Exit::CopyB => {
                    a.copy_within(pb..pb + nb, dest);
                    a[dest + nb] = tmp[pa];
                }
            }
            self.tmp = tmp;
            Ok(())
        }

        fn merge_hi(
            &mut self,
            a: &mut [usize],
            base_a: usize,
            mut na: usize,
            base_b: usize,
            mut nb: usize,
        ) -> Result<(), String> {
            enum Exit {
                Succeed,
                CopyA,
            }
            let mut tmp = std::mem::take(&mut self.tmp);
            tmp.clear();
            tmp.extend_from_slice(&a[base_b..base_b + nb]);
            // Signed cursors: they may step one below their base just before exiting.
            let mut dest = (base_b + nb - 1) as isize;
            let mut pa = (base_a + na - 1) as isize;
            let mut pb = (nb - 1) as isize;
            let u = |i: isize| i as usize;

            a[u(dest)] = a[u(pa)];
            dest -= 1;
            pa -= 1;
            na -= 1;
            let exit = 'body: {
                if na == 0 {
                    break 'body Exit::Succeed;
                }
                if nb == 1 {
                    break 'body Exit::CopyA;
                }
                let mut min_gallop = self.min_gallop;
                loop {
                    let mut acount = 0usize;
                    let mut bcount = 0usize;
                    loop {
                        if self.lt(tmp[u(pb)], a[u(pa)])? {
                            a[u(dest)] = a[u(pa)];
                            dest -= 1;
                            pa -= 1;
                            acount += 1;
                            bcount = 0;
                            na -= 1;
                            if na == 0 {
                                break 'body Exit::Succeed;
                            }
                            if acount >= min_gallop {
                                break;
                            }
                        } else {
                            a[u(dest)] = tmp[u(pb)];
                            dest -= 1;
                            pb -= 1;
                            bcount += 1;
                            acount = 0;
                            nb -= 1;
                            if nb == 1 {
                                break 'body Exit::CopyA;
                            }
                            if bcount >= min_gallop {
                                break;
                            }
                        }
                    }
                    min_gallop += 1;
                    loop {
                        min_gallop -= usize::from(min_gallop > 1);
                        self.min_gallop = min_gallop;
                        let k = self.gallop_right(tmp[u(pb)], &a[base_a..base_a + na], na - 1)?;
                        let k = na - k;
                        acount = k;
                        if k > 0 {
                            let ki = k as isize;
                            dest -= ki;
                            pa -= ki;
                            a.copy_within(u(pa + 1)..u(pa + 1 + ki), u(dest + 1));
                            na -= k;
                            if na == 0 {
                                break 'body Exit::Succeed;
                            }
                        }
                        a[u(dest)] = tmp[u(pb)];
                        dest -= 1;
                        pb -= 1;
                        nb -= 1;
                        if nb == 1 {
                            break 'body Exit::CopyA;
                        }
                        let k = self.gallop_left(a[u(pa)], &tmp[..nb], nb - 1)?;
                        let k = nb - k;
                        bcount = k;
                        if k > 0 {
                            let ki = k as isize;
                            dest -= ki;
                            pb -= ki;
                            a[u(dest + 1)..u(dest + 1 + ki)]
                                .copy_from_slice(&tmp[u(pb + 1)..u(pb + 1 + ki)]);
                            nb -= k;
                            if nb == 1 {
                                break 'body Exit::CopyA;
                            }
                            if nb == 0 {
                                break 'body Exit::Succeed;
                            }
                        }
                        a[u(dest)] = a[u(pa)];
                        dest -= 1;
                        pa -= 1;
                        na -= 1;
                        if na == 0 {
                            break 'body Exit::Succeed;
                        }
                        if acount < MIN_GALLOP && bcount < MIN_GALLOP {
                            break;
                        }
                    }
                    min_gallop += 1;
                    self.min_gallop = min_gallop;
                }
            };
            match exit {
                Exit::Succeed => {
                    if nb > 0 {
                        let start = u(dest - (nb as isize - 1));
                        a[start..start + nb].copy_from_slice(&tmp[..nb]);
                    }
                }
                Exit::CopyA => {
                    let nai = na as isize;
                    a.copy_within(u(pa + 1 - nai)..u(pa + 1), u(dest + 1 - nai));
                    dest -= nai;
                    a[u(dest)] = tmp[u(pb)];
                }
            }
            self.tmp = tmp;
            Ok(())
        }
    }
}

// ------------------------------------------------------------------------------------------
// Regular expressions: `re.match` for the common subset, linear time
// ------------------------------------------------------------------------------------------

/// A small regular-expression engine with Python `re` syntax for the common subset.
///
/// Supported: literals, `.`, classes `[...]`/`[^...]` with ranges and `\d \w \s \D \W \S`,
/// anchors `^ $ \A \Z \b \B`, groups `(...)`, `(?:...)`, `(?P<name>...)`, comments `(?#...)`,
/// alternation, quantifiers `* + ? {m} {m,} {,n} {m,n}` (greedy or lazy), inline flags
/// `(?aimsu)` at the start and scoped `(?i:...)`, escapes `\n \t \xhh \uhhhh \0` etc.
/// Not supported (rejected with an error): backreferences, lookaround, atomic groups,
/// possessive quantifiers, conditionals, verbose mode, `\N{...}`.
///
/// Matching is a Thompson-NFA simulation anchored at the start (like `re.match`): it only
/// answers whether a match exists, in O(len(text) × len(program)), with no recursion and a hard
/// step budget, so no input can hang it or overflow the stack.
mod re {
    const MAX_PROGRAM: usize = 20_000;
    const MAX_NESTING: usize = 200;
    const MAX_STEPS: usize = 20_000_000;

    #[derive(Debug, Clone, Copy, Default)]
    struct Flags {
        i: bool,
        m: bool,
        s: bool,
        a: bool,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Look {
        Start,
        End,
        Dollar,
        LineStart,
        LineEnd,
        WordB { ascii: bool },
        NotWordB { ascii: bool },
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Perl {
        Digit,
        Word,
        Space,
    }

    #[derive(Debug, Clone)]
    enum Item {
        Range(char, char),
        Perl(Perl, bool),
    }

    #[derive(Debug, Clone)]
    struct Class {
        negated: bool,
        icase: bool,
        ascii: bool,
        items: Vec<Item>,
    }

    #[derive(Debug, Clone)]
    enum Ast {
        Empty,
        Lit(char, bool),
        Dot(bool),
        Class(Class),
        Look(Look),
        Concat(Vec<Ast>),
        Alt(Vec<Ast>),
        Rep(Box<Ast>, u32, Option<u32>),
        Group(Box<Ast>),
    }

    #[derive(Debug, Clone)]
    enum Inst {
        Char(char),
        CharI(char),
        Any,
        AnyNoNl,
        Class(usize),
        Assert(Look),
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    #[derive(Debug, Clone)]
    pub(super) struct Regex {
        prog: Vec<Inst>,
        classes: Vec<Class>,
    }

    fn is_word(c: char, ascii: bool) -> bool {
        if ascii {
            c.is_ascii_alphanumeric() || c == '_'
        } else {
            c.is_alphanumeric() || c == '_'
        }
    }

    fn perl_match(p: Perl, c: char, ascii: bool) -> bool {
        match p {
            Perl::Digit => {
                if ascii {
                    c.is_ascii_digit()
                } else {
                    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
                }
            }
            Perl::Word => is_word(c, ascii),
            Perl::Space => {
                if ascii {
                    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
                } else {
                    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
                }
            }
        }
    }

    fn simple_lower(c: char) -> char {
        let mut it = c.to_lowercase();
        match (it.next(), it.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    }

    fn simple_upper(c: char) -> char {
        let mut it = c.to_uppercase();
        match (it.next(), it.next()) {
            (Some(u), None) => u,
            _ => c,
        }
    }

    fn fold(c: char) -> char {
        match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => simple_lower(c),
        }
    }

    impl Class {
        fn contains_exact(&self, c: char) -> bool {
            self.items.iter().any(|item| match *item {
                Item::Range(lo, hi) => lo <= c && c <= hi,
                Item::Perl(p, neg) => perl_match(p, c, self.ascii) != neg,
            })
        }

        fn matches(&self, c: char) -> bool {
            let hit = self.contains_exact(c)
                || (self.icase
                    && (self.contains_exact(simple_lower(c))
                        || self.contains_exact(simple_upper(c))
                        || self.contains_exact(fold(c))));
            hit != self.negated
        }
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
        flags: Flags,
        depth: usize,
        /// `state.groups`: the next capture group number.
        next_group: u32,
        /// Per group number (index 0 unused): closed yet?
        closed: Vec<bool>,
        names: Vec<(String, u32)>,
    }

    fn error(msg: &str, pos: usize) -> String {
        format!("{msg} at position {pos}")
    }

    /// `repr(str)` for names in messages.
    fn repr(s: &str) -> String {
        let mut out = String::new();
        super::str_repr_into(s, &mut out);
        out
    }

    /// `str.isidentifier()`, approximately.
    fn is_identifier(s: &str) -> bool {
        let mut it = s.chars();
        it.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && it.all(|c| c.is_alphanumeric() || c == '_')
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(c) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        /// `source.get()`: one character, or a backslash with the character after it.
        fn token(&mut self) -> Option<String> {
            let c = self.peek()?;
            self.pos += 1;
            let mut t = String::from(c);
            if c == '\\'
                && let Some(n) = self.peek()
            {
                t.push(n);
                self.pos += 1;
            }
            Some(t)
        }

        fn tok_len(t: &str) -> usize {
            t.chars().count()
        }

        /// `source.getuntil(terminator, "group name")`.
        fn name_until(&mut self, terminator: char) -> Result<String, String> {
            let mut result = String::new();
            loop {
                let Some(t) = self.token() else {
                    if result.is_empty() {
                        return Err(error("missing group name", self.pos));
                    }
                    let n = Self::tok_len(&result);
                    return Err(error(
                        &format!("missing {terminator}, unterminated name"),
                        self.pos - n,
                    ));
                };
                if t.len() == terminator.len_utf8() && t.starts_with(terminator) {
                    if result.is_empty() {
                        return Err(error("missing group name", self.pos - 1));
                    }
                    return Ok(result);
                }
                result.push_str(&t);
            }
        }

        fn group_by_name(&self, name: &str) -> Option<u32> {
            self.names.iter().find(|(n, _)| n == name).map(|(_, g)| *g)
        }

        fn parse_alt(&mut self, top: bool) -> Result<Ast, String> {
            let mut alts = vec![self.parse_seq(top)?];
            while self.eat('|') {
                alts.push(self.parse_seq(false)?);
            }
            Ok(if alts.len() == 1 {
                alts.pop().unwrap_or(Ast::Empty)
            } else {
                Ast::Alt(alts)
            })
        }

        fn parse_seq(&mut self, first: bool) -> Result<Ast, String> {
            let mut items: Vec<Ast> = Vec::new();
            // Whether the last item is a repeat (for "multiple repeat").
            let mut last_was_rep = false;
            while let Some(c) = self.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                let start = self.pos;
                self.pos += 1;
                match c {
                    '*' | '+' | '?' => {
                        let (min, max) = match c {
                            '*' => (0, None),
                            '+' => (1, None),
                            _ => (0, Some(1)),
                        };
                        self.repeat(&mut items, &mut last_was_rep, start, min, max)?;
                        continue;
                    }
                    '{' => {
                        if let Some((min, max)) = self.counted()? {
                            self.repeat(&mut items, &mut last_was_rep, start, min, max)?;
                            continue;
                        }
                        items.push(Ast::Lit('{', self.flags.i));
                    }
                    '.' => items.push(Ast::Dot(self.flags.s)),
                    '^' => items.push(Ast::Look(if self.flags.m {
                        Look::LineStart
                    } else {
                        Look::Start
                    })),
                    '$' => items.push(Ast::Look(if self.flags.m {
                        Look::LineEnd
                    } else {
                        Look::Dollar
                    })),
                    '[' => {
                        let class = self.class(start)?;
                        items.push(Ast::Class(class));
                    }
                    '\\' => {
                        let ast = self.escape(start)?;
                        items.push(ast);
                    }
                    '(' => match self.group(start, first && items.is_empty())? {
                        Some(ast) => items.push(ast),
                        // Global flags or a comment: no item.
                        None => continue,
                    },
                    c => items.push(Ast::Lit(c, self.flags.i)),
                }
                last_was_rep = false;
            }
            Ok(match items.len() {
                0 => Ast::Empty,
                1 => items.pop().unwrap_or(Ast::Empty),
                _ => Ast::Concat(items),
            })
        }

        fn repeat(
            &mut self,
            items: &mut Vec<Ast>,
            last_was_rep: &mut bool,
            start: usize,
            min: u32,
            max: Option<u32>,
        ) -> Result<(), String> {
            let Some(last) = items.pop() else {
                return Err(error("nothing to repeat", start));
            };
            if matches!(last, Ast::Look(_)) {
                return Err(error("nothing to repeat", start));
            }
            if *last_was_rep {
                return Err(error("multiple repeat", start));
            }
            if self.eat('?') {
                // Lazy: the same language, and only existence of a match matters.
            } else if self.peek() == Some('+') {
                return Err(error("possessive quantifiers are not supported", self.pos));
            }
            items.push(Ast::Rep(Box::new(last), min, max));
            *last_was_rep = true;
            Ok(())
        }

        /// After `{`: a counted repetition, or `None` if the brace is a literal.
        fn counted(&mut self) -> Result<Option<(u32, Option<u32>)>, String> {
            let here = self.pos;
            if self.peek() == Some('}') {
                return Ok(None);
            }
            let mut lo = String::new();
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                lo.push(c);
                self.pos += 1;
            }
            let hi = if self.eat(',') {
                let mut hi = String::new();
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    hi.push(c);
                    self.pos += 1;
                }
                hi
            } else {
                lo.clone()
            };
            if !self.eat('}') {
                self.pos = here;
                return Ok(None);
            }
            let parse = |s: &str| -> Result<Option<u32>, String> {
                if s.is_empty() {
                    return Ok(None);
                }
                s.parse::<u32>()
                    .ok()
                    .filter(|&n| n < u32::MAX)
                    .map(Some)
                    .ok_or_else(|| "the repetition number is too large".to_string())
            };
            let min = parse(&lo)?.unwrap_or(0);
            let max = parse(&hi)?;
            if max.is_some_and(|max| max < min) {
                return Err(error("min repeat greater than max repeat", here));
            }
            Ok(Some((min, max)))
        }

        fn hex(&mut self, n: usize, start: usize, esc: char) -> Result<char, String> {
            let mut s = String::new();
            for _ in 0..n {
                match self.peek().filter(char::is_ascii_hexdigit) {
                    Some(c) => {
                        s.push(c);
                        self.pos += 1;
                    }
                    None => return Err(error(&format!("incomplete escape \\{esc}{s}"), start)),
                }
            }
            u32::from_str_radix(&s, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| error(&format!("bad escape \\{esc}{s}"), start))
        }

        fn octal_digits(&mut self, mut n: u32, max: usize) -> u32 {
            for _ in 0..max {
                match self.peek().filter(|d| ('0'..='7').contains(d)) {
                    Some(d) => {
                        n = n * 8 + (u32::from(d) - u32::from('0'));
                        self.pos += 1;
                    }
                    None => break,
                }
            }
            n
        }

        /// Escapes valid both inside and outside classes that produce one character.
        fn char_escape(&mut self, c: char, start: usize) -> Result<Option<char>, String> {
            Ok(Some(match c {
                'a' => '\x07',
                'f' => '\x0c',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\x0b',
                '\\' => '\\',
                'x' => self.hex(2, start, 'x')?,
                'u' => self.hex(4, start, 'u')?,
                'U' => self.hex(8, start, 'U')?,
                'N' => return Err(error("\\N{...} escapes are not supported", start)),
                _ => return Ok(None),
            }))
        }

        fn octal_char(n: u32, text: &str, start: usize) -> Result<char, String> {
            if n > 0o377 {
                return Err(error(
                    &format!("octal escape value {text} outside of range 0-0o377"),
                    start,
                ));
            }
            Ok(char::from_u32(n).unwrap_or('\0'))
        }

        fn escape(&mut self, start: usize) -> Result<Ast, String> {
            let Some(c) = self.peek() else {
                return Err(error("bad escape (end of pattern)", start));
            };
            self.pos += 1;
            let ascii = self.flags.a;
            let perl = |p: Perl, neg: bool| {
                Ast::Class(Class {
                    negated: false,
                    icase: false,
                    ascii,
                    items: vec![Item::Perl(p, neg)],
                })
            };
            Ok(match c {
                'A' => Ast::Look(Look::Start),
                'Z' => Ast::Look(Look::End),
                'b' => Ast::Look(Look::WordB { ascii }),
                'B' => Ast::Look(Look::NotWordB { ascii }),
                'd' => perl(Perl::Digit, false),
                'D' => perl(Perl::Digit, true),
                'w' => perl(Perl::Word, false),
                'W' => perl(Perl::Word, true),
                's' => perl(Perl::Space, false),
                'S' => perl(Perl::Space, true),
                '0' => {
                    let n = self.octal_digits(0, 2);
                    Ast::Lit(char::from_u32(n).unwrap_or('\0'), self.flags.i)
                }
                '1'..='9' => {
                    let mut text = format!("\\{c}");
                    if let Some(d) = self.peek().filter(char::is_ascii_digit) {
                        self.pos += 1;
                        text.push(d);
                        let octal = |x: char| ('0'..='7').contains(&x);
                        if let Some(e) = self.peek().filter(|&e| octal(c) && octal(d) && octal(e)) {
                            self.pos += 1;
                            text.push(e);
                            let v = text[1..]
                                .chars()
                                .fold(0, |acc, x| acc * 8 + (u32::from(x) - u32::from('0')));
                            return Ok(Ast::Lit(Self::octal_char(v, &text, start)?, self.flags.i));
                        }
                    }
                    let group: u32 = text[1..].parse().unwrap_or(u32::MAX);
                    if group < self.next_group {
                        if !self.closed.get(group as usize).copied().unwrap_or(false) {
                            return Err(error("cannot refer to an open group", start));
                        }
                        return Err(error("backreferences are not supported", start));
                    }
                    return Err(error(
                        &format!("invalid group reference {group}"),
                        start + 1,
                    ));
                }
                c => match self.char_escape(c, start)? {
                    Some(ch) => Ast::Lit(ch, self.flags.i),
                    None if c.is_ascii_alphabetic() => {
                        return Err(error(&format!("bad escape \\{c}"), start));
                    }
                    None => Ast::Lit(c, self.flags.i),
                },
            })
        }

        /// One class member: a character or a `\d`-style set, with its source text.
        fn class_atom(&mut self) -> Result<(Result<char, Item>, String), String> {
            let start = self.pos;
            let Some(c) = self.peek() else {
                return Err(String::new());
            };
            self.pos += 1;
            if c != '\\' {
                return Ok((Ok(c), c.to_string()));
            }
            let Some(e) = self.peek() else {
                return Err(error("bad escape (end of pattern)", start));
            };
            self.pos += 1;
            let atom = match e {
                'd' => Err(Item::Perl(Perl::Digit, false)),
                'D' => Err(Item::Perl(Perl::Digit, true)),
                'w' => Err(Item::Perl(Perl::Word, false)),
                'W' => Err(Item::Perl(Perl::Word, true)),
                's' => Err(Item::Perl(Perl::Space, false)),
                'S' => Err(Item::Perl(Perl::Space, true)),
                'b' => Ok('\x08'),
                '0'..='7' => {
                    let n = self.octal_digits(u32::from(e) - u32::from('0'), 2);
                    let text: String = self.chars[start..self.pos].iter().collect();
                    Ok(Self::octal_char(n, &text, start)?)
                }
                '8' | '9' => return Err(error(&format!("bad escape \\{e}"), start)),
                e => match self.char_escape(e, start)? {
                    Some(ch) => Ok(ch),
                    None if e.is_ascii_alphabetic() => {
                        return Err(error(&format!("bad escape \\{e}"), start));
                    }
                    None => Ok(e),
                },
            };
            Ok((atom, self.chars[start..self.pos].iter().collect()))
        }

        fn class(&mut self, open: usize) -> Result<Class, String> {
            let unterminated = || error("unterminated character set", open);
            let negated = self.eat('^');
            let mut items = Vec::new();
            loop {
                let Some(c) = self.peek() else {
                    return Err(unterminated());
                };
                if c == ']' && !items.is_empty() {
                    self.pos += 1;
                    break;
                }
                let atom_start = self.pos;
                let (lo, lo_text) = self
                    .class_atom()
                    .map_err(|e| if e.is_empty() { unterminated() } else { e })?;
                if self.eat('-') {
                    match self.peek() {
                        None => return Err(unterminated()),
                        Some(']') => {
                            self.pos += 1;
                            items.push(match lo {
                                Ok(ch) => Item::Range(ch, ch),
                                Err(item) => item,
                            });
                            items.push(Item::Range('-', '-'));
                            break;
                        }
                        Some(_) => {
                            let (hi, hi_text) = self
                                .class_atom()
                                .map_err(|e| if e.is_empty() { unterminated() } else { e })?;
                            match (lo, hi) {
                                (Ok(l), Ok(h)) if l <= h => items.push(Item::Range(l, h)),
                                _ => {
                                    return Err(error(
                                        &format!("bad character range {lo_text}-{hi_text}"),
                                        atom_start,
                                    ));
                                }
                            }
                            continue;
                        }
                    }
                }
                items.push(match lo {
                    Ok(ch) => Item::Range(ch, ch),
                    Err(item) => item,
                });
            }
            Ok(Class {
                negated,
                icase: self.flags.i,
                ascii: self.flags.a,
                items,
            })
        }

        fn flag_of(t: &str) -> Option<char> {
            match t {
                "i" | "m" | "s" | "a" | "u" | "x" | "L" | "t" => t.chars().next(),
                _ => None,
            }
        }

        /// `_parse_flags`, the first flag token being `first`: (added, removed, global).
        fn parse_flags(&mut self, first: String) -> Result<(Flags, Flags, bool), String> {
            let mut add = Flags::default();
            let mut del = Flags::default();
            let mut type_flags = 0u8;
            let mut t = first;
            if t != "-" {
                while let Some(f) = Self::flag_of(&t) {
                    match f {
                        'i' => add.i = true,
                        'm' => add.m = true,
                        's' => add.s = true,
                        'a' | 'u' => {
                            let bit = if f == 'a' { 1 } else { 2 };
                            type_flags |= bit;
                            if type_flags != bit {
                                return Err(error(
                                    "bad inline flag: flags 'a', 'u' and 'L' are incompatible",
                                    self.pos,
                                ));
                            }
                            add.a |= f == 'a';
                        }
                        'L' => {
                            return Err(error(
                                "bad inline flag: cannot use 'L' flag with a str pattern",
                                self.pos,
                            ));
                        }
                        _ => {
                            return Err(error(
                                "verbose and template flags are not supported",
                                self.pos,
                            ));
                        }
                    }
                    let Some(next) = self.token() else {
                        return Err(error("missing -, : or )", self.pos));
                    };
                    t = next;
                    if t == ")" || t == "-" || t == ":" {
                        break;
                    }
                    if Self::flag_of(&t).is_none() {
                        let n = Self::tok_len(&t);
                        let msg = if t.chars().all(char::is_alphabetic) {
                            "unknown flag"
                        } else {
                            "missing -, : or )"
                        };
                        return Err(error(msg, self.pos - n));
                    }
                }
            }
            if t == ")" {
                return Ok((add, del, true));
            }
            if t == "-" {
                let Some(next) = self.token() else {
                    return Err(error("missing flag", self.pos));
                };
                t = next;
                if Self::flag_of(&t).is_none() {
                    let n = Self::tok_len(&t);
                    let msg = if t.chars().all(char::is_alphabetic) {
                        "unknown flag"
                    } else {
                        "missing flag"
                    };
                    return Err(error(msg, self.pos - n));
                }
                loop {
                    match Self::flag_of(&t) {
                        Some('i') => del.i = true,
                        Some('m') => del.m = true,
                        Some('s') => del.s = true,
                        Some('a' | 'u' | 'L') => {
                            return Err(error(
                                "bad inline flag: cannot turn off flags 'a', 'u' and 'L'",
                                self.pos,
                            ));
                        }
                        _ => {
                            return Err(error(
                                "verbose and template flags are not supported",
                                self.pos,
                            ));
                        }
                    }
                    let Some(next) = self.token() else {
                        return Err(error("missing :", self.pos));
                    };
                    t = next;
                    if t == ":" {
                        break;
                    }
                    if Self::flag_of(&t).is_none() {
                        let n = Self::tok_len(&t);
                        let msg = if t.chars().all(char::is_alphabetic) {
                            "unknown flag"
                        } else {
                            "missing :"
                        };
                        return Err(error(msg, self.pos - n));
                    }
                }
            }
            if (add.i && del.i) || (add.m && del.m) || (add.s && del.s) {
                return Err(error(
                    "bad inline flag: flag turned on and off",
                    self.pos - 1,
                ));
            }
            Ok((add, del, false))
        }

        /// After `(`. `None` for global flags and comments (no item).
        fn group(&mut self, open: usize, at_start: bool) -> Result<Option<Ast>, String> {
            if self.depth >= MAX_NESTING {
                return Err(error("too many nested groups", open));
            }
            let saved = self.flags;
            let mut capture = true;
            let mut name: Option<(String, usize)> = None;
            if self.eat('?') {
                let qpos = self.pos - 1;
                let Some(t) = self.token() else {
                    return Err(error("unexpected end of pattern", self.pos));
                };
                match t.as_str() {
                    "P" => {
                        if self.eat('<') {
                            let name_start = self.pos;
                            let n = self.name_until('>')?;
                            if !is_identifier(&n) {
                                return Err(error(
                                    &format!("bad character in group name {}", repr(&n)),
                                    name_start,
                                ));
                            }
                            name = Some((n, name_start));
                        } else if self.eat('=') {
                            let name_start = self.pos;
                            let n = self.name_until(')')?;
                            if !is_identifier(&n) {
                                return Err(error(
                                    &format!("bad character in group name {}", repr(&n)),
                                    name_start,
                                ));
                            }
                            let Some(g) = self.group_by_name(&n) else {
                                return Err(error(
                                    &format!("unknown group name {}", repr(&n)),
                                    name_start,
                                ));
                            };
                            if !self.closed.get(g as usize).copied().unwrap_or(false) {
                                return Err(error("cannot refer to an open group", name_start));
                            }
                            return Err(error("backreferences are not supported", qpos));
                        } else {
                            let Some(c) = self.token() else {
                                return Err(error("unexpected end of pattern", self.pos));
                            };
                            return Err(error(&format!("unknown extension ?P{c}"), qpos));
                        }
                    }
                    ":" => capture = false,
                    "#" => {
                        loop {
                            if self.peek().is_none() {
                                return Err(error("missing ), unterminated comment", open));
                            }
                            if self.token().as_deref() == Some(")") {
                                break;
                            }
                        }
                        return Ok(None);
                    }
                    "=" | "!" | "<" => {
                        return Err(error("lookaround assertions are not supported", qpos));
                    }
                    ">" => return Err(error("atomic groups are not supported", qpos)),
                    "(" => {
                        let name_start = self.pos;
                        let n = self.name_until(')')?;
                        if is_identifier(&n) {
                            if self.group_by_name(&n).is_none() {
                                return Err(error(
                                    &format!("unknown group name {}", repr(&n)),
                                    name_start,
                                ));
                            }
                        } else if !n.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(error(
                                &format!("bad character in group name {}", repr(&n)),
                                name_start,
                            ));
                        } else if n.bytes().all(|b| b == b'0') {
                            return Err(error("bad group number", name_start));
                        }
                        return Err(error("conditional groups are not supported", qpos));
                    }
                    f if Self::flag_of(f).is_some() || f == "-" => {
                        let (add, del, global) = self.parse_flags(t.clone())?;
                        if global && !at_start {
                            return Err(error(
                                "global flags not at the start of the expression",
                                open,
                            ));
                        }
                        self.flags.i = (self.flags.i || add.i) && !del.i;
                        self.flags.m = (self.flags.m || add.m) && !del.m;
                        self.flags.s = (self.flags.s || add.s) && !del.s;
                        self.flags.a |= add.a;
                        if global {
                            // At the very start, so they apply to the whole pattern.
                            return Ok(None);
                        }
                        capture = false;
                    }
                    other => return Err(error(&format!("unknown extension ?{other}"), qpos)),
                }
            }
            let mut group = None;
            if capture {
                let gid = self.next_group;
                if let Some((n, name_start)) = &name {
                    if let Some(old) = self.group_by_name(n) {
                        return Err(error(
                            &format!(
                                "redefinition of group name {} as group {gid}; was group {old}",
                                repr(n)
                            ),
                            *name_start,
                        ));
                    }
                    self.names.push((n.clone(), gid));
                }
                self.next_group += 1;
                self.closed.push(false);
                group = Some(gid);
            }
            self.depth += 1;
            let inner = self.parse_alt(false)?;
            self.depth -= 1;
            self.flags = saved;
            if !self.eat(')') {
                return Err(error("missing ), unterminated subpattern", open));
            }
            if let Some(gid) = group
                && let Some(slot) = self.closed.get_mut(gid as usize)
            {
                *slot = true;
            }
            Ok(Some(Ast::Group(Box::new(inner))))
        }
    }

    struct Compiler {
        prog: Vec<Inst>,
        classes: Vec<Class>,
    }

    impl Compiler {
        fn push(&mut self, inst: Inst) -> Result<usize, String> {
            if self.prog.len() >= MAX_PROGRAM {
                return Err("regular expression is too large".into());
            }
            self.prog.push(inst);
            Ok(self.prog.len() - 1)
        }

        fn emit(&mut self, ast: &Ast) -> Result<(), String> {
            match ast {
                Ast::Empty => {}
                Ast::Lit(c, false) => {
                    self.push(Inst::Char(*c))?;
                }
                Ast::Lit(c, true) => {
                    self.push(Inst::CharI(fold(*c)))?;
                }
                Ast::Dot(true) => {
                    self.push(Inst::Any)?;
                }
                Ast::Dot(false) => {
                    self.push(Inst::AnyNoNl)?;
                }
                Ast::Class(c) => {
                    self.classes.push(c.clone());
                    self.push(Inst::Class(self.classes.len() - 1))?;
                }
                Ast::Look(l) => {
                    self.push(Inst::Assert(*l))?;
                }
                Ast::Concat(items) => {
                    for item in items {
                        self.emit(item)?;
                    }
                }
                Ast::Group(inner) => self.emit(inner)?,
                Ast::Alt(alts) => {
                    let mut jumps = Vec::new();
                    for (i, alt) in alts.iter().enumerate() {
                        if i + 1 < alts.len() {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(alt)?;
                            jumps.push(self.push(Inst::Jmp(0))?);
                            let next = self.prog.len();
                            self.prog[split] = Inst::Split(split + 1, next);
                        } else {
                            self.emit(alt)?;
                        }
                    }
                    let end = self.prog.len();
                    for j in jumps {
                        self.prog[j] = Inst::Jmp(end);
                    }
                }
                Ast::Rep(inner, min, max) => {
                    // An operand that compiles to nothing (e.g. `(?:)`) repeats to nothing;
                    // checking first keeps `(?:){4000000000}` from looping.
                    let before = self.prog.len();
                    self.emit(inner)?;
                    if self.prog.len() == before {
                        return Ok(());
                    }
                    self.prog.truncate(before);
                    for _ in 0..*min {
                        self.emit(inner)?;
                    }
                    match max {
                        None => {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(inner)?;
                            self.push(Inst::Jmp(split))?;
                            let out = self.prog.len();
                            self.prog[split] = Inst::Split(split + 1, out);
                        }
                        Some(max) => {
                            let mut splits = Vec::new();
                            for _ in *min..*max {
                                splits.push(self.push(Inst::Split(0, 0))?);
                                self.emit(inner)?;
                            }
                            let out = self.prog.len();
                            for s in splits {
                                self.prog[s] = Inst::Split(s + 1, out);
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// Sparse set of program counters.
    struct Set {
        dense: Vec<usize>,
        sparse: Vec<usize>,
    }

    impl Set {
        fn new(n: usize) -> Self {
            Self {
                dense: Vec::with_capacity(n),
                sparse: vec![0; n],
            }
        }

        fn contains(&self, pc: usize) -> bool {
            let i = self.sparse[pc];
            i < self.dense.len() && self.dense[i] == pc
        }

        fn insert(&mut self, pc: usize) {
            self.sparse[pc] = self.dense.len();
            self.dense.push(pc);
        }

        fn clear(&mut self) {
            self.dense.clear();
        }
    }

    #[derive(Clone, Copy)]
    struct Ctx {
        at_start: bool,
        prev: Option<char>,
        next: Option<char>,
        next_is_last: bool,
    }

    impl Ctx {
        fn holds(&self, look: Look) -> bool {
            match look {
                Look::Start => self.at_start,
                Look::End => self.next.is_none(),
                Look::Dollar => {
                    self.next.is_none() || (self.next == Some('\n') && self.next_is_last)
                }
                Look::LineStart => self.at_start || self.prev == Some('\n'),
                Look::LineEnd => self.next.is_none() || self.next == Some('\n'),
                Look::WordB { ascii } | Look::NotWordB { ascii } => {
                    // sre: neither matches in an empty string.
                    if self.at_start && self.next.is_none() {
                        return false;
                    }
                    let a = self.prev.is_some_and(|c| is_word(c, ascii));
                    let b = self.next.is_some_and(|c| is_word(c, ascii));
                    (a != b) == matches!(look, Look::WordB { .. })
                }
            }
        }
    }

    impl Regex {
        pub(super) fn new(pattern: &str) -> Result<Self, String> {
            let mut p = Parser {
                chars: pattern.chars().collect(),
                pos: 0,
                flags: Flags::default(),
                depth: 0,
                next_group: 1,
                closed: vec![true],
                names: Vec::new(),
            };
            let ast = p.parse_alt(true)?;
            if p.pos < p.chars.len() {
                // Only an unmatched `)` stops the top-level parse early.
                return Err(error("unbalanced parenthesis", p.pos));
            }
            let mut c = Compiler {
                prog: Vec::new(),
                classes: Vec::new(),
            };
            c.emit(&ast)?;
            c.push(Inst::Match)?;
            Ok(Self {
                prog: c.prog,
                classes: c.classes,
            })
        }

        /// Adds `pc` and its epsilon closure; true if `Match` is reachable.
        fn add(
            &self,
            set: &mut Set,
            stack: &mut Vec<usize>,
            pc: usize,
            ctx: Ctx,
            steps: &mut usize,
        ) -> bool {
            let mut matched = false;
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                *steps += 1;
                if set.contains(pc) {
                    continue;
                }
                set.insert(pc);
                match self.prog[pc] {
                    Inst::Jmp(t) => stack.push(t),
                    Inst::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    Inst::Assert(look) if ctx.holds(look) => stack.push(pc + 1),
                    Inst::Match => matched = true,
                    _ => {}
                }
            }
            matched
        }

        /// `re.match(pattern, text) is not None`.
        pub(super) fn is_match(&self, text: &str) -> Result<bool, String> {
            let n = self.prog.len();
            let mut clist = Set::new(n);
            let mut nlist = Set::new(n);
            let mut stack = Vec::new();
            let mut steps = 0usize;
            let ctx_at = |pos: usize, prev: Option<char>| {
                let mut rest = text[pos..].chars();
                let next = rest.next();
                Ctx {
                    at_start: pos == 0,
                    prev,
                    next,
                    next_is_last: next.is_some() && rest.next().is_none(),
                }
            };
            if self.add(&mut clist, &mut stack, 0, ctx_at(0, None), &mut steps) {
                return Ok(true);
            }
            let mut pos = 0;
            for ch in text.chars() {
                if clist.dense.is_empty() {
                    return Ok(false);
                }
                let next_pos = pos + ch.len_utf8();
                let ctx = ctx_at(next_pos, Some(ch));
                nlist.clear();
                for i in 0..clist.dense.len() {
                    let pc = clist.dense[i];
                    let ok = match &self.prog[pc] {
                        Inst::Char(c) => *c == ch,
                        Inst::CharI(c) => fold(ch) == *c,
                        Inst::Any => true,
                        Inst::AnyNoNl => ch != '\n',
                        Inst::Class(k) => self.classes[*k].matches(ch),
                        _ => false,
                    };
                    if ok && self.add(&mut nlist, &mut stack, pc + 1, ctx, &mut steps) {
                        return Ok(true);
                    }
                }
                if steps > MAX_STEPS {
                    return Err("regular expression match exceeded the work limit".into());
                }
                std::mem::swap(&mut clist, &mut nlist);
                pos = next_pos;
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_level_keys_of_filters() {
        let keys = |f: serde_json::Value| {
            Filters::parse(&f)
                .unwrap()
                .top_level_keys()
                .map(|k| k.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(keys(serde_json::json!([])), Some(vec![]));
        assert_eq!(
            keys(serde_json::json!([
                ["current", "=", true],
                ["a.b", "=", 1],
                ["a\\.b.c", "!=", 2]
            ])),
            Some(vec!["current".into(), "a".into(), "a.b".into()])
        );
        assert_eq!(
            keys(serde_json::json!([[
                "OR",
                [["x", "=", 1], [["y", "=", 2], ["z.0", "=", 3]]]
            ]])),
            Some(vec!["x".into(), "y".into(), "z".into()])
        );
        // The record as a whole: a falsy name, an empty path.
        assert_eq!(keys(serde_json::json!([[null, "=", 1]])), None);
        assert_eq!(keys(serde_json::json!([["", "=", 1]])), None);
        assert_eq!(
            keys(serde_json::json!([["OR", [["x", "=", 1], ["", "=", 2]]]])),
            None
        );
    }

    use super::*;
    use serde_json::json;

    fn q(records: Value, filters: Value, options: Value) -> Result<Value, ApiError> {
        let Value::Array(records) = records else {
            panic!("records must be a list")
        };
        query(records, &filters, &options)
    }

    #[test]
    fn basic_equality_and_missing_keys() {
        let recs = json!([{"a": 1}, {"a": 1.0}, {"a": true}, {"b": 1}]);
        assert_eq!(
            q(recs.clone(), json!([["a", "=", 1]]), json!({"count": true})).unwrap(),
            json!(3)
        );
        assert_eq!(
            q(recs, json!([["a", "!=", 2]]), json!({"count": true})).unwrap(),
            json!(3)
        );
    }

    #[test]
    fn paths_split_like_python() {
        assert_eq!(
            split_path("a.b"),
            (vec!["a".to_string(), "b".to_string()], false)
        );
        assert_eq!(split_path("a\\.b"), (vec!["a.b".to_string()], false));
        assert_eq!(split_path("a."), (vec!["a".to_string()], false));
        assert_eq!(split_path("a..b"), (vec!["a".to_string()], true));
        assert_eq!(split_path("\\."), (vec![".".to_string()], false));
        assert_eq!(split_path("a\\\\.b"), (vec!["a\\.b".to_string()], false));
    }

    #[test]
    fn iso_parse() {
        assert_eq!(parse_iso8601("1970-01-01"), Some(0));
        assert_eq!(parse_iso8601("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_iso8601("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso8601("1970-01-01 00:00:00.5"), Some(500_000));
        assert_eq!(parse_iso8601("2024-02-30"), None);
        assert_eq!(parse_iso8601("2024-01-01T"), None);
        assert_eq!(parse_iso8601("2024-01-01T24:00"), None);
        assert_eq!(parse_iso8601("2024-W01-2"), parse_iso8601("2024-01-02"));
        assert_eq!(
            parse_iso8601("20240101T103015"),
            parse_iso8601("2024-01-01T10:30:15")
        );
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e15), "1000000000000000.0");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(-2.5), "-2.5");
        assert_eq!(float_repr(1.5e-7), "1.5e-07");
    }

    #[test]
    fn regex_basics() {
        let m = |p: &str, s: &str| re::Regex::new(p).unwrap().is_match(s).unwrap();
        assert!(m("ab", "abc"));
        assert!(!m("bc", "abc"));
        assert!(m("a.c$", "abc"));
        assert!(m("a.c$", "abc\n"));
        assert!(!m("a.c\\Z", "abc\n"));
        assert!(m("(ab|cd)+e", "abcdabe"));
        assert!(m("[^0-9]{2,3}x", "abx"));
        assert!(m("\\d+\\s\\w", "123 x"));
        assert!(m("(?i)ABC", "abc"));
        assert!(m("a(?i:B)c", "abc"));
        assert!(!m("a(?i:B)C", "abc"));
        assert!(m("x*", ""));
        assert!(m("\\bfoo\\b", "foo bar"));
        assert!(!m("(a*)*b", &"a".repeat(5000)));
        assert!(re::Regex::new("a**").is_err());
        assert!(re::Regex::new("(a").is_err());
        assert_eq!(
            re::Regex::new("*a").unwrap_err(),
            "nothing to repeat at position 0"
        );
        assert_eq!(
            re::Regex::new("a)").unwrap_err(),
            "unbalanced parenthesis at position 1"
        );
        assert_eq!(
            re::Regex::new("[z-a]").unwrap_err(),
            "bad character range z-a at position 1"
        );
    }

    #[test]
    fn casefold() {
        assert_eq!(casefold_str("Straße"), "strasse");
        assert_eq!(casefold_str("ΣΑΣ"), "σασ");
        assert!(matches!(casefold_str("abc"), Cow::Borrowed(_)));
    }
}
