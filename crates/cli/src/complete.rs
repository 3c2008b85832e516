//! Completion (`cli.md` §8): namespaces and commands in children order, `name=` for arguments
//! (spliced object properties for create/update), values for booleans/enums/defaults, and
//! columns / `WHERE` for query commands.

use serde_json::Value;

use crate::syntax::{self, Autocomplete};
use crate::tree::{Child, Command, Kind, Tree};

/// One completion: `replacement` replaces `text[start..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub display: String,
    pub replacement: String,
}

/// Completes `text` (the line up to the cursor) from namespace `ns`. Returns the byte offset
/// where the replaced word starts.
pub fn complete(tree: &Tree, ns: usize, text: &str) -> (usize, Vec<Candidate>) {
    let trimmed = text.trim_start();
    let offset = text.len() - trimmed.len();
    match trimmed.find(char::is_whitespace) {
        None => {
            let cands = tree.nodes[ns]
                .children
                .iter()
                .map(|c| tree.child_name(c))
                .filter(|n| n.starts_with(trimmed))
                .map(|n| Candidate {
                    display: n.to_string(),
                    replacement: n.to_string(),
                })
                .collect();
            (offset, cands)
        }
        Some(i) => {
            let name = &trimmed[..i];
            let rest_start = offset + i + (trimmed[i..].len() - trimmed[i..].trim_start().len());
            let rest = &text[rest_start..];
            match tree.find_child(ns, name) {
                Some(Child::Namespace(id)) => {
                    let (s, c) = complete(tree, *id, rest);
                    (rest_start + s, c)
                }
                Some(Child::Command(cmd)) => {
                    let (s, c) = if cmd.kind == Kind::Query {
                        query_completions(cmd, rest)
                    } else {
                        command_completions(cmd, rest)
                    };
                    (rest_start + s, c)
                }
                None => (text.len(), Vec::new()),
            }
        }
    }
}

fn is_simple_string(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '\\' | '.' | '/' | '_' | '@'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '\\' | '.' | '/' | '_' | '@'))
}

fn value_candidates(schema: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"boolean") {
        out.push(Value::Bool(true));
        out.push(Value::Bool(false));
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        out.extend(values.iter().cloned());
    }
    if let Some(default) = schema.get("default")
        && !out.contains(default)
    {
        out.push(default.clone());
    }
    if types.len() > 1
        && types.contains(&"null")
        && schema.get("default").is_some_and(|d| !d.is_null())
        && !out.contains(&Value::Null)
    {
        out.push(Value::Null);
    }
    out
}

/// Completions for a common-syntax command; the offset is relative to `rest`.
pub fn command_completions(cmd: &Command, rest: &str) -> (usize, Vec<Candidate>) {
    let arguments = cmd.argument_schemas();
    match syntax::autocomplete(rest) {
        Some(Autocomplete::Name {
            args,
            kwargs,
            prefix,
        }) => {
            let cands = arguments
                .iter()
                .skip(args)
                .filter(|(name, _)| !kwargs.contains(name) && name.starts_with(&prefix))
                .map(|(name, _)| Candidate {
                    display: name.clone(),
                    replacement: format!("{name}="),
                })
                .collect();
            (rest.len() - prefix.len(), cands)
        }
        Some(Autocomplete::Value { name, prefix }) => {
            let Some((_, schema)) = arguments.iter().find(|(n, _)| *n == name) else {
                return (rest.len(), Vec::new());
            };
            let cands = value_candidates(schema)
                .into_iter()
                .map(|v| match v {
                    Value::String(s) if is_simple_string(&s) && !prefix.starts_with('"') => s,
                    other => other.to_string(),
                })
                .filter(|s| s.starts_with(&prefix))
                .map(|s| Candidate {
                    display: s.clone(),
                    replacement: s,
                })
                .collect();
            (rest.len() - prefix.len(), cands)
        }
        None => (rest.len(), Vec::new()),
    }
}

/// Completions for a query command: columns, then `WHERE`, then columns again.
pub fn query_completions(cmd: &Command, rest: &str) -> (usize, Vec<Candidate>) {
    let columns: Vec<String> = match &cmd.filterable_schema {
        Some(schema) => match schema.get("_attrs_order_").and_then(Value::as_array) {
            Some(order) => order
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            None => schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
        },
        None => Vec::new(),
    };
    let word_start = rest
        .rfind(|c: char| c.is_whitespace() || matches!(c, ',' | '('))
        .map_or(0, |i| i + 1);
    let prefix = &rest[word_start..];
    let before = &rest[..word_start];
    let upper = before.to_ascii_uppercase();
    let in_where = upper.split_whitespace().any(|w| w == "WHERE");
    let mut cands: Vec<String> = Vec::new();
    if in_where {
        let t = before.trim_end();
        if t.ends_with(|c: char| c.eq_ignore_ascii_case(&'e'))
            && upper.trim_end().ends_with("WHERE")
            || t.ends_with(" and")
            || t.ends_with(" or")
            || t.ends_with('(')
        {
            cands = columns;
        }
    } else if before.trim().is_empty() || before.trim_end().ends_with(',') {
        let listed: Vec<&str> = before.split([',', ' ']).map(str::trim).collect();
        cands = columns
            .into_iter()
            .filter(|c| !listed.contains(&c.as_str()))
            .collect();
    } else {
        cands.push("WHERE".to_string());
    }
    if rest.trim() == "*" && prefix == "*" {
        return (
            rest.len(),
            vec![Candidate {
                display: "WHERE".into(),
                replacement: " WHERE".into(),
            }],
        );
    }
    let cands = cands
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| Candidate {
            display: c.clone(),
            replacement: c,
        })
        .collect();
    (word_start, cands)
}
