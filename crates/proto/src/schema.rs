//! Method schemas: one definition per method that both validates call arguments (like TrueNAS'
//! strict pydantic models) and produces the `core.get_methods` metadata the TrueNAS CLI builds
//! its command tree from. Because both come from the same [`MethodSpec`], they cannot disagree.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ValidationError};

/// TrueNAS caps every string at 1024 characters unless a field says otherwise.
pub const DEFAULT_STR_MAX: usize = 1024;

/// The type of one parameter or field.
#[derive(Debug, Clone)]
pub enum Ty {
    /// Any JSON value.
    Any,
    Bool,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// A string of `min..=max` characters.
    Str {
        min: usize,
        max: usize,
    },
    /// A secret: validated like the inner type, redacted in results and audit records.
    Secret(Box<Ty>),
    /// A datetime, sent as `{"$date": ms}` (strict: an ISO string is rejected).
    DateTime,
    List(Box<Ty>),
    /// A free-form object.
    Dict,
    /// A strict model: unknown keys rejected.
    Object(Obj),
    Nullable(Box<Ty>),
    /// One of these strings.
    Literal(Vec<&'static str>),
    /// Any of these types (first that validates wins).
    Union(Vec<Ty>),
    /// A union discriminated by the string field `tag` (e.g. `auth.login_ex`'s `mechanism`).
    Tagged {
        tag: &'static str,
        variants: Vec<(&'static str, Obj)>,
    },
}

/// One named field of an object, or one positional parameter of a method.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// `None`: required. `Some(v)`: optional, `v` is filled in when absent.
    pub default: Option<Value>,
    pub description: &'static str,
}

/// A strict object model.
#[derive(Debug, Clone)]
pub struct Obj {
    /// The pydantic class name, used in type error texts.
    pub title: &'static str,
    pub fields: Vec<Field>,
    /// `ForUpdateMetaclass`: every field optional and no defaults filled in (PATCH semantics).
    pub update: bool,
}

impl Ty {
    pub fn str() -> Ty {
        Ty::Str {
            min: 0,
            max: DEFAULT_STR_MAX,
        }
    }
    pub fn non_empty_str() -> Ty {
        Ty::Str {
            min: 1,
            max: DEFAULT_STR_MAX,
        }
    }
    pub fn str_len(min: usize, max: usize) -> Ty {
        Ty::Str { min, max }
    }
    pub fn int() -> Ty {
        Ty::Int {
            min: None,
            max: None,
        }
    }
    pub fn int_range(min: Option<i64>, max: Option<i64>) -> Ty {
        Ty::Int { min, max }
    }
    pub fn secret(inner: Ty) -> Ty {
        Ty::Secret(Box::new(inner))
    }
    pub fn list(inner: Ty) -> Ty {
        Ty::List(Box::new(inner))
    }
    pub fn nullable(inner: Ty) -> Ty {
        Ty::Nullable(Box::new(inner))
    }
    pub fn object(title: &'static str, fields: Vec<Field>) -> Ty {
        Ty::Object(Obj {
            title,
            fields,
            update: false,
        })
    }
    /// The same model with every field optional and no defaults (an `*_update` model).
    pub fn for_update(self) -> Ty {
        match self {
            Ty::Object(o) => Ty::Object(Obj { update: true, ..o }),
            other => other,
        }
    }
}

impl Field {
    pub fn required(name: &'static str, ty: Ty) -> Self {
        Self {
            name,
            ty,
            default: None,
            description: "",
        }
    }
    pub fn optional(name: &'static str, ty: Ty, default: Value) -> Self {
        Self {
            name,
            ty,
            default: Some(default),
            description: "",
        }
    }
    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }
}

/// Who may call a method (§1.7 of the reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `authentication_required=False`; `rate_limit` applies to unauthenticated callers.
    Public { rate_limit: bool },
    /// `authorization_required=False`: any authenticated user session.
    AnyUser,
    /// Callers holding any of these roles (FULL_ADMIN always qualifies). Empty: FULL_ADMIN only.
    Roles(Vec<&'static str>),
}

/// Everything the server knows about a method apart from its handler.
#[derive(Debug, Clone)]
pub struct MethodSpec {
    /// Full name, e.g. `api_key.create`.
    pub name: &'static str,
    pub params: Vec<Field>,
    pub access: Access,
    /// The docstring; its first sentence becomes the CLI description.
    pub description: &'static str,
    /// `query`-style method taking `filters` and `options`.
    pub filterable: bool,
    /// Entry schema of a filterable method (CLI column completion).
    pub entry: Option<Ty>,
    /// Audit text for METHOD_CALL records (`None`: not audited).
    pub audit: Option<&'static str>,
    /// Hidden from `core.get_methods`' CLI view.
    pub cli_private: bool,
    /// Private methods are callable but never listed.
    pub private: bool,
    pub examples: Vec<&'static str>,
    /// The result's type, for the `returns` schema (`None`: a generic schema, see
    /// [`MethodSpec::returns_schema`]).
    pub result: Option<Ty>,
}

impl MethodSpec {
    pub fn new(name: &'static str, access: Access) -> Self {
        Self {
            name,
            params: Vec::new(),
            access,
            description: "",
            filterable: false,
            entry: None,
            audit: None,
            cli_private: false,
            private: false,
            examples: Vec::new(),
            result: None,
        }
    }
    pub fn param(mut self, field: Field) -> Self {
        self.params.push(field);
        self
    }
    pub fn doc(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }
    pub fn audited(mut self, text: &'static str) -> Self {
        self.audit = Some(text);
        self
    }
    pub fn cli_private(mut self) -> Self {
        self.cli_private = true;
        self
    }
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }
    pub fn example(mut self, text: &'static str) -> Self {
        self.examples.push(text);
        self
    }
    /// The result's type (only the `returns` metadata uses it; results are not validated).
    pub fn returns(mut self, ty: Ty) -> Self {
        self.result = Some(ty);
        self
    }
    /// Adds the standard `filters` / `options` parameters of a query method.
    pub fn query(mut self, entry: Ty) -> Self {
        self.params
            .push(Field::optional("filters", Ty::list(Ty::Any), json!([])));
        self.params
            .push(Field::optional("options", Ty::Dict, json!({})));
        self.filterable = true;
        self.entry = Some(entry);
        self
    }

    /// The `(role)` names this method is registered under (empty for public / any-user).
    pub fn roles(&self) -> &[&'static str] {
        match &self.access {
            Access::Roles(r) => r,
            _ => &[],
        }
    }

    /// Validates positional `params`, returning them with defaults filled in.
    pub fn validate(&self, params: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        if params.len() > self.params.len() {
            return Err(ApiError::Validation(vec![ValidationError::new(
                "",
                format!(
                    "Too many arguments (expected {}, found {})",
                    self.params.len(),
                    params.len()
                ),
            )]));
        }
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(self.params.len());
        let mut given = params.into_iter();
        for field in &self.params {
            match given.next() {
                Some(v) => {
                    let mut path = vec![field.name.to_string()];
                    out.push(check(&field.ty, v, &mut path, &mut errors));
                }
                None => match &field.default {
                    Some(d) => out.push(d.clone()),
                    None => {
                        errors.push(ValidationError::new(field.name, "Field required"));
                        out.push(Value::Null);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// `core.get_methods` metadata for this method.
    pub fn metadata(&self) -> Value {
        let accepts: Vec<Value> = self.params.iter().map(field_schema).collect();
        let cli_description = cli_description(self.description);
        json!({
            "description": if self.description.is_empty() { Value::Null } else { json!(self.description) },
            "cli_description": cli_description,
            "examples": {"cli": self.examples},
            "accepts": accepts,
            "returns": [self.returns_schema()],
            "item_method": false,
            "no_auth_required": matches!(self.access, Access::Public { .. }),
            "no_authz_required": matches!(self.access, Access::AnyUser),
            "filterable": self.filterable,
            "filterable_schema": self.entry.as_ref().map(json_schema),
            "pass_application": false,
            "require_websocket": false,
            "job": false,
            "downloadable": false,
            "uploadable": false,
            "roles": self.roles(),
            "check_pipes": false,
        })
    }

    /// The one element of `returns`. TrueNAS 25.10 methods are pydantic models with a single
    /// `result` field, so `returns` always holds that field's schema (`_name_: "result"`, pydantic
    /// title `Result`); midcli relies on it being non-empty to print `<null>` for a `None` result
    /// (`cli.md` §4.1). Without a declared result type the schema says nothing about the value.
    pub fn returns_schema(&self) -> Value {
        let mut out = Map::new();
        out.insert("_name_".into(), json!("result"));
        out.insert("title".into(), json!("Result"));
        if let Some(Value::Object(schema)) = self.result.as_ref().map(json_schema) {
            for (k, v) in schema {
                // A model's own title (its class name) wins over the field title.
                out.insert(k, v);
            }
        }
        Value::Object(out)
    }
}

/// The middleware's `cli_description`: first paragraph, cut at its first period.
fn cli_description(doc: &str) -> Value {
    let para = doc.split("\n\n").next().unwrap_or("");
    let first = para.split('.').next().unwrap_or("").replace('\n', " ");
    if first.is_empty() {
        Value::Null
    } else {
        Value::String(first)
    }
}

fn join_path(path: &[String]) -> String {
    path.join(".")
}

fn type_error(path: &[String], errors: &mut Vec<ValidationError>, msg: &str) -> Value {
    errors.push(ValidationError::new(join_path(path), msg));
    Value::Null
}

/// Validates `v` against `ty`, recording errors under `path`. Returns the normalised value.
fn check(ty: &Ty, v: Value, path: &mut Vec<String>, errors: &mut Vec<ValidationError>) -> Value {
    match ty {
        Ty::Any => v,
        Ty::Bool => match v {
            Value::Bool(_) => v,
            _ => type_error(path, errors, "Input should be a valid boolean"),
        },
        Ty::Int { min, max } => {
            let Some(n) = v.as_i64().filter(|_| v.is_i64() || v.is_u64()) else {
                return type_error(path, errors, "Input should be a valid integer");
            };
            if let Some(m) = min.filter(|m| n < *m) {
                return type_error(
                    path,
                    errors,
                    &format!("Input should be greater than or equal to {m}"),
                );
            }
            if let Some(m) = max.filter(|m| n > *m) {
                return type_error(
                    path,
                    errors,
                    &format!("Input should be less than or equal to {m}"),
                );
            }
            v
        }
        Ty::Str { min, max } => {
            let Some(s) = v.as_str() else {
                return type_error(path, errors, "Input should be a valid string");
            };
            let len = s.chars().count();
            if len < *min {
                let unit = if *min == 1 { "character" } else { "characters" };
                return type_error(
                    path,
                    errors,
                    &format!("String should have at least {min} {unit}"),
                );
            }
            if len > *max {
                let unit = if *max == 1 { "character" } else { "characters" };
                return type_error(
                    path,
                    errors,
                    &format!("String should have at most {max} {unit}"),
                );
            }
            v
        }
        Ty::Secret(inner) => check(inner, v, path, errors),
        Ty::DateTime => {
            if crate::ejson::as_date(&v).is_some() {
                v
            } else {
                type_error(path, errors, "Input should be a valid datetime")
            }
        }
        Ty::List(inner) => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    path.push(i.to_string());
                    out.push(check(inner, item, path, errors));
                    path.pop();
                }
                Value::Array(out)
            }
            _ => type_error(path, errors, "Input should be a valid list"),
        },
        Ty::Dict => match v {
            Value::Object(_) => v,
            _ => type_error(path, errors, "Input should be a valid dictionary"),
        },
        Ty::Object(obj) => match v {
            Value::Object(map) => check_object(obj, map, path, errors),
            _ => type_error(
                path,
                errors,
                &format!(
                    "Input should be a valid dictionary or instance of {}",
                    obj.title
                ),
            ),
        },
        Ty::Nullable(inner) => {
            if v.is_null() {
                v
            } else {
                check(inner, v, path, errors)
            }
        }
        Ty::Literal(options) => match v.as_str() {
            Some(s) if options.contains(&s) => v,
            _ => type_error(
                path,
                errors,
                &format!("Input should be {}", or_list(options)),
            ),
        },
        Ty::Union(options) => {
            let mut first_errors = None;
            for option in options {
                let mut errs = Vec::new();
                let out = check(option, v.clone(), path, &mut errs);
                if errs.is_empty() {
                    return out;
                }
                first_errors.get_or_insert(errs);
            }
            errors.extend(first_errors.unwrap_or_default());
            Value::Null
        }
        Ty::Tagged { tag, variants } => {
            let Value::Object(map) = v else {
                return type_error(path, errors, "Input should be a valid dictionary");
            };
            let Some(tag_value) = map.get(*tag) else {
                path.push((*tag).to_string());
                type_error(path, errors, "Field required");
                path.pop();
                return Value::Null;
            };
            let tag_str = tag_value.as_str().unwrap_or_default().to_string();
            let Some((name, obj)) = variants.iter().find(|(n, _)| *n == tag_str) else {
                let expected: Vec<String> =
                    variants.iter().map(|(n, _)| format!("'{n}'")).collect();
                let shown = match tag_value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                return type_error(
                    path,
                    errors,
                    &format!(
                        "Input tag '{shown}' found using '{tag}' does not match any of the expected tags: {}",
                        expected.join(", ")
                    ),
                );
            };
            path.push((*name).to_string());
            let out = check_object(obj, map, path, errors);
            path.pop();
            out
        }
    }
}

fn or_list(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn check_object(
    obj: &Obj,
    mut map: Map<String, Value>,
    path: &mut Vec<String>,
    errors: &mut Vec<ValidationError>,
) -> Value {
    let mut out = Map::new();
    for field in &obj.fields {
        path.push(field.name.to_string());
        match map.remove(field.name) {
            Some(v) => {
                out.insert(field.name.to_string(), check(&field.ty, v, path, errors));
            }
            None if obj.update => {}
            None => match &field.default {
                Some(d) => {
                    out.insert(field.name.to_string(), d.clone());
                }
                None => {
                    type_error(path, errors, "Field required");
                }
            },
        }
        path.pop();
    }
    for key in map.keys() {
        path.push(key.clone());
        type_error(path, errors, "Extra inputs are not permitted");
        path.pop();
    }
    Value::Object(out)
}

fn field_schema(field: &Field) -> Value {
    let mut schema = json_schema(&field.ty);
    if let Value::Object(m) = &mut schema {
        m.insert("_name_".into(), json!(field.name));
        m.insert("title".into(), json!(title_case(field.name)));
        m.insert("_required_".into(), json!(field.default.is_none()));
        if let Some(d) = &field.default {
            m.insert("default".into(), d.clone());
        }
        if !field.description.is_empty() {
            m.insert("description".into(), json!(field.description));
        }
    }
    schema
}

fn title_case(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn object_schema(obj: &Obj) -> Value {
    let mut props = Map::new();
    let mut order = Vec::new();
    let mut required = Vec::new();
    for f in &obj.fields {
        let mut fs = field_schema(f);
        if obj.update {
            if let Value::Object(m) = &mut fs {
                m.insert("_required_".into(), json!(false));
            }
        } else if f.default.is_none() {
            required.push(json!(f.name));
        }
        props.insert(f.name.to_string(), fs);
        order.push(json!(f.name));
    }
    json!({
        "type": "object",
        "title": obj.title,
        "properties": props,
        "_attrs_order_": order,
        "required": required,
        "additionalProperties": false,
    })
}

/// The JSON schema of a type, shaped like pydantic's plus TrueNAS' `_name_`/`_required_`/
/// `_attrs_order_` annotations.
pub fn json_schema(ty: &Ty) -> Value {
    match ty {
        Ty::Any => json!({}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int { min, max } => {
            let mut m = json!({"type": "integer"});
            if let Some(min) = min {
                m["minimum"] = json!(min);
            }
            if let Some(max) = max {
                m["maximum"] = json!(max);
            }
            m
        }
        Ty::Str { min, max } => {
            let mut m = json!({"type": "string", "maxLength": max});
            if *min > 0 {
                m["minLength"] = json!(min);
            }
            m
        }
        Ty::Secret(inner) => json_schema(inner),
        Ty::DateTime => json!({"type": "string", "format": "date-time"}),
        Ty::List(inner) => json!({"type": "array", "items": json_schema(inner)}),
        Ty::Dict => json!({"type": "object", "additionalProperties": true}),
        Ty::Object(obj) => object_schema(obj),
        Ty::Nullable(inner) => json!({"anyOf": [json_schema(inner), {"type": "null"}]}),
        Ty::Literal(options) => json!({"type": "string", "enum": options}),
        Ty::Union(options) => json!({"anyOf": options.iter().map(json_schema).collect::<Vec<_>>()}),
        Ty::Tagged { tag, variants } => json!({
            "oneOf": variants.iter().map(|(_, o)| object_schema(o)).collect::<Vec<_>>(),
            "discriminator": {"propertyName": tag},
        }),
    }
}

/// Replaces every `Secret` field of `value` (shaped by `ty`) with `"********"`.
pub fn redact(ty: &Ty, value: &mut Value) {
    match (ty, value) {
        (Ty::Secret(_), v) if !v.is_null() => *v = json!("********"),
        (Ty::Object(obj), Value::Object(map)) => {
            for f in &obj.fields {
                if let Some(v) = map.get_mut(f.name) {
                    redact(&f.ty, v);
                }
            }
        }
        (Ty::Nullable(inner), v) => redact(inner, v),
        (Ty::List(inner), Value::Array(items)) => items.iter_mut().for_each(|i| redact(inner, i)),
        (Ty::Tagged { tag, variants }, Value::Object(map)) => {
            let t = map.get(*tag).and_then(Value::as_str).map(str::to_string);
            if let Some((_, obj)) = variants.iter().find(|(n, _)| Some(*n) == t.as_deref()) {
                for f in &obj.fields {
                    if let Some(v) = map.get_mut(f.name) {
                        redact(&f.ty, v);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Redacts secrets in positional parameters (for audit records and logs).
pub fn redact_params(spec: &MethodSpec, params: &mut [Value]) {
    for (field, v) in spec.params.iter().zip(params.iter_mut()) {
        redact(&field.ty, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_key_create() -> MethodSpec {
        MethodSpec::new("api_key.create", Access::Roles(vec!["API_KEY_WRITE"])).param(
            Field::required(
                "api_key_create",
                Ty::object(
                    "ApiKeyCreate",
                    vec![
                        Field::required("name", Ty::str_len(1, 200)),
                        Field::required("username", Ty::non_empty_str()),
                        Field::optional("expires_at", Ty::nullable(Ty::DateTime), Value::Null),
                    ],
                ),
            ),
        )
    }

    fn errs(r: Result<Vec<Value>, ApiError>) -> Vec<(String, String)> {
        match r {
            Err(ApiError::Validation(v)) => v
                .into_iter()
                .map(|e| (e.attribute.unwrap_or_default(), e.message))
                .collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn validation_table() {
        let spec = api_key_create();
        let long = "x".repeat(201);
        let table: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                json!([{}]),
                vec![
                    ("api_key_create.name", "Field required"),
                    ("api_key_create.username", "Field required"),
                ],
            ),
            (
                json!([{"name": "a", "username": "b", "roles": []}]),
                vec![("api_key_create.roles", "Extra inputs are not permitted")],
            ),
            (
                json!([{"name": long, "username": "b"}]),
                vec![(
                    "api_key_create.name",
                    "String should have at most 200 characters",
                )],
            ),
            (
                json!([{"name": "", "username": "b"}]),
                vec![(
                    "api_key_create.name",
                    "String should have at least 1 character",
                )],
            ),
            (
                json!([{"name": 5, "username": "b"}]),
                vec![("api_key_create.name", "Input should be a valid string")],
            ),
            (
                json!([{"name": "a", "username": "b", "expires_at": "2030-01-01"}]),
                vec![(
                    "api_key_create.expires_at",
                    "Input should be a valid datetime",
                )],
            ),
            (json!([]), vec![("api_key_create", "Field required")]),
            (
                json!([{"name": "a", "username": "b"}, 1]),
                vec![("", "Too many arguments (expected 1, found 2)")],
            ),
            (
                json!(["x"]),
                vec![(
                    "api_key_create",
                    "Input should be a valid dictionary or instance of ApiKeyCreate",
                )],
            ),
        ];
        for (params, expected) in table {
            let Value::Array(p) = params.clone() else {
                unreachable!()
            };
            let got = errs(spec.validate(p));
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(a, m)| (a.to_string(), m.to_string()))
                .collect();
            assert_eq!(got, expected, "params {params}");
        }
    }

    #[test]
    fn defaults_filled_and_strict_ints() {
        let spec = api_key_create();
        let out = spec
            .validate(vec![json!({"name": "a", "username": "b"})])
            .unwrap();
        assert_eq!(
            out[0],
            json!({"name": "a", "username": "b", "expires_at": null})
        );

        let int_spec = MethodSpec::new("x.y", Access::AnyUser).param(Field::optional(
            "ttl",
            Ty::nullable(Ty::int()),
            json!(600),
        ));
        assert_eq!(int_spec.validate(vec![]).unwrap(), vec![json!(600)]);
        for bad in [json!("1"), json!(1.5), json!(true)] {
            assert_eq!(
                errs(int_spec.validate(vec![bad])),
                vec![(
                    "ttl".to_string(),
                    "Input should be a valid integer".to_string()
                )]
            );
        }
    }

    #[test]
    fn update_models_take_only_given_fields() {
        let ty = Ty::object("X", vec![Field::optional("a", Ty::Bool, json!(false))]).for_update();
        let spec =
            MethodSpec::new("x.update", Access::Roles(vec![])).param(Field::required("x", ty));
        assert_eq!(spec.validate(vec![json!({})]).unwrap(), vec![json!({})]);
    }

    #[test]
    fn tagged_union_paths() {
        let ty = Ty::Tagged {
            tag: "mechanism",
            variants: vec![
                (
                    "PASSWORD_PLAIN",
                    Obj {
                        title: "AuthPasswordPlain",
                        fields: vec![
                            Field::required("mechanism", Ty::Literal(vec!["PASSWORD_PLAIN"])),
                            Field::required("username", Ty::str()),
                            Field::required("password", Ty::secret(Ty::str())),
                        ],
                        update: false,
                    },
                ),
                (
                    "TOKEN_PLAIN",
                    Obj {
                        title: "AuthTokenPlain",
                        fields: vec![
                            Field::required("mechanism", Ty::Literal(vec!["TOKEN_PLAIN"])),
                            Field::required("token", Ty::secret(Ty::str())),
                        ],
                        update: false,
                    },
                ),
            ],
        };
        let spec = MethodSpec::new("auth.login_ex", Access::Public { rate_limit: true })
            .param(Field::required("login_data", ty));
        let table = vec![
            (json!({}), ("login_data.mechanism", "Field required".to_string())),
            (json!({"mechanism": "FOO"}), (
                "login_data",
                "Input tag 'FOO' found using 'mechanism' does not match any of the expected tags: 'PASSWORD_PLAIN', 'TOKEN_PLAIN'".to_string(),
            )),
            (json!({"mechanism": "PASSWORD_PLAIN", "username": "a"}), (
                "login_data.PASSWORD_PLAIN.password",
                "Field required".to_string(),
            )),
            (json!({"mechanism": "TOKEN_PLAIN", "token": "t", "bogus": 1}), (
                "login_data.TOKEN_PLAIN.bogus",
                "Extra inputs are not permitted".to_string(),
            )),
        ];
        for (arg, (attr, msg)) in table {
            assert_eq!(
                errs(spec.validate(vec![arg.clone()])),
                vec![(attr.to_string(), msg)],
                "{arg}"
            );
        }
        let mut p = vec![json!({"mechanism": "PASSWORD_PLAIN", "username": "a", "password": "pw"})];
        redact_params(&spec, &mut p);
        assert_eq!(p[0]["password"], "********");
        assert_eq!(p[0]["username"], "a");
    }

    #[test]
    fn metadata_shape_for_cli() {
        let meta = api_key_create().metadata();
        let accepts = &meta["accepts"][0];
        assert_eq!(accepts["_name_"], "api_key_create");
        assert_eq!(accepts["type"], "object");
        assert_eq!(accepts["_required_"], true);
        assert_eq!(
            accepts["_attrs_order_"],
            json!(["name", "username", "expires_at"])
        );
        assert_eq!(accepts["properties"]["expires_at"]["_required_"], false);
        assert_eq!(accepts["properties"]["name"]["_name_"], "name");
        assert_eq!(meta["roles"], json!(["API_KEY_WRITE"]));
    }

    #[test]
    fn returns_is_one_result_schema() {
        // 25.10 new-style methods: always one element, so midcli prints `<null>` for None.
        let meta = api_key_create().metadata();
        assert_eq!(
            meta["returns"],
            json!([{"_name_": "result", "title": "Result"}])
        );
        let typed = MethodSpec::new("auth.terminate_session", Access::AnyUser)
            .returns(Ty::Bool)
            .metadata();
        assert_eq!(
            typed["returns"],
            json!([{"_name_": "result", "title": "Result", "type": "boolean"}])
        );
    }

    #[test]
    fn cli_description_cuts_at_first_period() {
        assert_eq!(
            cli_description("Returns currently logged-in user.\n\nMore."),
            json!("Returns currently logged-in user")
        );
        assert_eq!(cli_description(""), Value::Null);
    }
}
