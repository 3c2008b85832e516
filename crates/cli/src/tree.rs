//! The namespace tree, built from `core.get_methods(null, "CLI")` and `core.get_services("CLI")`
//! exactly as midcli's `Namespaces.build_namespaces` does (`cli.md` §2.2–2.3), and the mapping of
//! parsed arguments to call parameters (§3.3).

use serde_json::{Map, Value, json};

use crate::syntax::ParsedArgs;

/// How a command turns its input into a call and its result into output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GenericCallCommand`.
    Generic,
    /// `QueryCommand` (filterable methods).
    Query,
    /// `UpdateCommand` (crud `update`).
    Update,
}

/// One server method as a CLI command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// Full method name (`api_key.create`).
    pub method: String,
    /// `cli_description` (None when empty).
    pub description: Option<String>,
    /// The full docstring (`man`).
    pub man: Option<String>,
    pub examples: Vec<String>,
    pub kind: Kind,
    pub accepts: Vec<Value>,
    /// `returns` is non-empty: a null result prints `<null>`.
    pub has_returns: bool,
    pub filterable_schema: Option<Value>,
    /// False for crud create/update/delete and config update: the result is not printed.
    pub output: bool,
    /// `splice_kwargs`: number of positionals before the kwargs object.
    pub splice: Option<usize>,
    pub job: bool,
    /// `auth.api_key.create`: prints `API Key: <key>`.
    pub api_key_create: bool,
}

/// A namespace node; `children` are in server order (builtins are not stored).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Namespace {
    pub name: String,
    pub description: Option<String>,
    pub parent: Option<usize>,
    pub children: Vec<Child>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    Namespace(usize),
    Command(Box<Command>),
}

/// The whole tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Namespace>,
}

impl Default for Tree {
    fn default() -> Self {
        Self {
            nodes: vec![Namespace::default()],
        }
    }
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn schema_type_is(schema: &Value, ty: &str) -> bool {
    schema.get("type").and_then(Value::as_str) == Some(ty)
}

impl Tree {
    pub const ROOT: usize = 0;

    /// Builds the tree from the two metadata answers. Methods whose service is unknown are
    /// skipped.
    pub fn build(methods: &Value, services: &Value) -> Self {
        let mut tree = Self::default();
        let (Some(methods), Some(services)) = (methods.as_object(), services.as_object()) else {
            return tree;
        };
        for (fullname, method) in methods {
            let Some((service_name, name)) = fullname.rsplit_once('.') else {
                continue;
            };
            let Some(service) = services.get(service_name) else {
                continue;
            };
            let config = service.get("config").cloned().unwrap_or(Value::Null);
            let Some(cli_namespace) = config.get("cli_namespace").and_then(Value::as_str) else {
                continue;
            };
            let service_type = service
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("service");
            let path: Vec<&str> = cli_namespace.split('.').collect();
            let mut ns = Self::ROOT;
            for (i, item) in path.iter().enumerate() {
                ns = match tree.find_namespace(ns, item) {
                    Some(child) => child,
                    None => tree.add_namespace(ns, item),
                };
                if i + 1 == path.len() {
                    tree.nodes[ns].description = non_empty(config.get("cli_description"));
                }
            }
            let key = format!("{cli_namespace}.{name}");
            let command = make_command(name, fullname, method, service_type, &key);
            tree.nodes[ns]
                .children
                .push(Child::Command(Box::new(command)));
        }
        tree
    }

    fn add_namespace(&mut self, parent: usize, name: &str) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Namespace {
            name: name.to_string(),
            description: None,
            parent: Some(parent),
            children: vec![],
        });
        self.nodes[parent].children.push(Child::Namespace(id));
        id
    }

    /// A direct child namespace named `name`.
    pub fn find_namespace(&self, ns: usize, name: &str) -> Option<usize> {
        self.nodes[ns].children.iter().find_map(|c| match c {
            Child::Namespace(id) if self.nodes[*id].name == name => Some(*id),
            _ => None,
        })
    }

    /// The first direct child (namespace or command) named `name`.
    pub fn find_child(&self, ns: usize, name: &str) -> Option<&Child> {
        self.nodes[ns]
            .children
            .iter()
            .find(|c| self.child_name(c) == name)
    }

    pub fn child_name<'a>(&'a self, c: &'a Child) -> &'a str {
        match c {
            Child::Namespace(id) => &self.nodes[*id].name,
            Child::Command(cmd) => &cmd.name,
        }
    }

    /// The path of names from the root to `ns` (root excluded).
    pub fn path(&self, ns: usize) -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = ns;
        while let Some(parent) = self.nodes[cur].parent {
            out.push(self.nodes[cur].name.as_str());
            cur = parent;
        }
        out.reverse();
        out
    }

    /// Finds a command by its full method name.
    pub fn command_for_method(&self, method: &str) -> Option<&Command> {
        self.nodes
            .iter()
            .flat_map(|n| &n.children)
            .find_map(|c| match c {
                Child::Command(cmd) if cmd.method == method => Some(cmd.as_ref()),
                _ => None,
            })
    }
}

fn make_command(
    name: &str,
    fullname: &str,
    method: &Value,
    service_type: &str,
    key: &str,
) -> Command {
    let filterable = method
        .get("filterable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let crud = service_type == "crud";
    let config = service_type == "config";
    let kind = if key == "auth.api_key.create" {
        Kind::Generic
    } else if filterable {
        Kind::Query
    } else if crud && name == "update" {
        Kind::Update
    } else {
        Kind::Generic
    };
    let output =
        !((crud && matches!(name, "create" | "update" | "delete")) || (config && name == "update"));
    let splice = if (crud && name == "create") || (config && name == "update") {
        Some(0)
    } else if crud && name == "update" {
        Some(1)
    } else {
        None
    };
    let mut accepts: Vec<Value> = method
        .get("accepts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(n) = splice {
        // An anyOf/oneOf of objects is replaced by an empty object schema (no completion).
        if let Some(schema) = accepts.get_mut(n)
            && !schema_type_is(schema, "object")
        {
            let name = schema.get("_name_").cloned().unwrap_or(Value::Null);
            *schema =
                json!({"type": "object", "_name_": name, "properties": {}, "_attrs_order_": []});
        }
    }
    let examples = match method.get("examples").and_then(|e| e.get("cli")) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Command {
        name: name.to_string(),
        method: fullname.to_string(),
        description: non_empty(method.get("cli_description")),
        man: non_empty(method.get("description")),
        examples,
        kind,
        accepts,
        has_returns: method
            .get("returns")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty()),
        filterable_schema: method
            .get("filterable_schema")
            .filter(|s| s.is_object())
            .cloned(),
        output,
        splice,
        job: method.get("job").and_then(Value::as_bool).unwrap_or(false),
        api_key_create: key == "auth.api_key.create",
    }
}

/// What to do with a command line once its arguments are mapped.
#[derive(Debug, Clone, PartialEq)]
pub enum CallPlan {
    /// Call the method with these parameters.
    Call(Vec<Value>),
    /// The arguments editor is needed (`--`, or an update given only its id).
    Editor,
}

fn param_name(schema: &Value) -> &str {
    schema.get("_name_").and_then(Value::as_str).unwrap_or("")
}

/// midcli `_call_arg`: wraps a scalar into a list where the schema says `type: "array"`,
/// recursing into object properties.
pub fn coerce(schema: &Value, value: Value) -> Value {
    if schema_type_is(schema, "array") && !value.is_array() && !value.is_null() {
        return Value::Array(vec![value]);
    }
    if schema_type_is(schema, "object")
        && let (Value::Object(map), Some(Value::Object(props))) = (&value, schema.get("properties"))
    {
        let coerced: Map<String, Value> = map
            .iter()
            .map(|(k, v)| match props.get(k) {
                Some(s) => (k.clone(), coerce(s, v.clone())),
                None => (k.clone(), v.clone()),
            })
            .collect();
        return Value::Object(coerced);
    }
    value
}

impl Command {
    /// Maps parsed arguments to call parameters (`_call_args`), with midcli's error texts.
    pub fn call_plan(&self, parsed: ParsedArgs) -> Result<CallPlan, String> {
        if parsed.interactive {
            return Ok(CallPlan::Editor);
        }
        match self.splice {
            None => self.plain_params(parsed).map(CallPlan::Call),
            Some(n) => self.spliced_params(parsed, n),
        }
    }

    fn plain_params(&self, parsed: ParsedArgs) -> Result<Vec<Value>, String> {
        let mut params: Vec<Option<Value>> = parsed.args.into_iter().map(Some).collect();
        let given = params.len();
        for (k, v) in parsed.kwargs {
            let Some(i) = self.accepts.iter().position(|a| param_name(a) == k) else {
                return Err(format!("Unknown keyword argument {k}"));
            };
            if i < given {
                return Err(format!(
                    "Keyword argument {k} already given as positional argument {}",
                    i + 1
                ));
            }
            if params.len() <= i {
                params.resize(i + 1, None);
            }
            params[i] = Some(v);
        }
        let mut out = Vec::with_capacity(params.len());
        for (i, p) in params.into_iter().enumerate() {
            let Some(v) = p else {
                let name = self.accepts.get(i).map(param_name).unwrap_or("");
                return Err(format!("Missing positional argument {} ({name})", i + 1));
            };
            out.push(match self.accepts.get(i) {
                Some(schema) => coerce(schema, v),
                None => v,
            });
        }
        Ok(out)
    }

    fn spliced_params(&self, mut parsed: ParsedArgs, n: usize) -> Result<CallPlan, String> {
        if parsed.args.len() > n {
            return Err(format!(
                "Too many positional arguments ({n} supported, {} given)",
                parsed.args.len()
            ));
        }
        if self.kind == Kind::Update
            && parsed.args.is_empty()
            && let Some(first) = self.accepts.first().map(param_name)
            && let Some(i) = parsed.kwargs.iter().position(|(k, _)| k == first)
        {
            let (_, v) = parsed.kwargs.remove(i);
            parsed.args.push(v);
        }
        if parsed.args.len() < n {
            return Err(format!(
                "Too few positional arguments ({n} required, {} given)",
                parsed.args.len()
            ));
        }
        if self.kind == Kind::Update && parsed.kwargs.is_empty() {
            return Ok(CallPlan::Editor);
        }
        let mut params: Vec<Value> = parsed
            .args
            .into_iter()
            .enumerate()
            .map(|(i, v)| match self.accepts.get(i) {
                Some(schema) => coerce(schema, v),
                None => v,
            })
            .collect();
        let object: Map<String, Value> = parsed.kwargs.into_iter().collect();
        let object = Value::Object(object);
        params.push(match self.accepts.get(n) {
            Some(schema) => coerce(schema, object),
            None => object,
        });
        Ok(CallPlan::Call(params))
    }

    /// Argument names offered by completion: positionals' names, or for splice commands the
    /// spliced object's properties in `_attrs_order_` in that item's place.
    pub fn argument_schemas(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (i, schema) in self.accepts.iter().enumerate() {
            if self.splice == Some(i) {
                let props = schema.get("properties").and_then(Value::as_object);
                let order: Vec<String> = match schema.get("_attrs_order_").and_then(Value::as_array)
                {
                    Some(o) => o
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    None => props
                        .map(|p| p.keys().cloned().collect())
                        .unwrap_or_default(),
                };
                for name in order {
                    let s = props
                        .and_then(|p| p.get(&name))
                        .cloned()
                        .unwrap_or(Value::Null);
                    out.push((name, s));
                }
            } else {
                out.push((param_name(schema).to_string(), schema.clone()));
            }
        }
        out
    }
}
