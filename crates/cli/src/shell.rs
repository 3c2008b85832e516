//! Dispatch of one input line (`cli.md` §2.4–2.6, §3, §4.1, §5): builtins, namespaces,
//! commands, output and errors. Pure with respect to I/O: everything goes into an [`Output`],
//! and calls go through the [`Caller`] trait so tests can use canned answers.

use gatehouse_client::ClientError;
use serde_json::{Value, json};

use crate::query;
use crate::render::{self, Mode};
use crate::syntax;
use crate::tree::{CallPlan, Child, Command, Kind, Tree};

/// Makes one middleware call (blocking from the shell's point of view).
pub trait Caller {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError>;
}

/// The shell state.
pub struct Ctx {
    pub tree: Tree,
    /// Current namespace (node index).
    pub cwd: usize,
    pub mode: Mode,
    pub stacks: bool,
    /// Full hostname from `system.hostname`.
    pub hostname: String,
    pub caller: Box<dyn Caller>,
    /// Draw QR codes for `otpauth://` results (stdout is a terminal).
    pub qr: bool,
}

/// What one line produced. Errors are in `stderr` (the interactive loop prints them on stdout
/// followed by a blank line, like midcli).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
    /// `exit` / `quit` was run.
    pub quit: bool,
}

impl Output {
    fn print(&mut self, text: &str) {
        self.stdout.push_str(text);
        self.stdout.push('\n');
    }
    fn error(&mut self, text: &str) {
        self.stderr.push_str(text.trim_end_matches('\n'));
        self.stderr.push('\n');
        self.exit = 1;
    }
}

/// A builtin command: name, aliases, description (`cli.md` §2.4; `menu` and `shell` are not
/// implemented).
pub const BUILTINS: &[(&str, &[&str], &str)] = &[
    ("..", &[], "Go one level up"),
    ("exit", &["quit"], "Exit CLI"),
    ("ls", &[], "List available directories and commands"),
    ("man", &[], "Show help and examples for specific command"),
    ("?", &["help"], "List available built-in commands"),
    ("/", &[], "Go to the root level"),
    (".mode", &[], "Get/set output mode"),
    (
        ".stacks",
        &[],
        "Enable/disable printing stack traces for errors",
    ),
];

fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, aliases, _)| *n == name || aliases.contains(&name))
        .map(|(n, _, _)| *n)
}

impl Ctx {
    pub fn new(tree: Tree, hostname: String, caller: Box<dyn Caller>) -> Self {
        Self {
            tree,
            cwd: Tree::ROOT,
            mode: Mode::Table,
            stacks: false,
            hostname,
            caller,
            qr: false,
        }
    }

    /// `[host] ns path> `.
    pub fn prompt(&self) -> String {
        let host = self.hostname.split('.').next().unwrap_or("");
        let path = self.tree.path(self.cwd);
        if path.is_empty() {
            format!("[{host}]> ")
        } else {
            format!("[{host}] {}> ", path.join(" "))
        }
    }

    /// The namespace banner (`show_banner`).
    pub fn banner(&self) -> String {
        let path = self.tree.path(self.cwd);
        if path.is_empty() {
            return "Type \"ls\" (followed by Enter) to list available configuration options"
                .into();
        }
        let mut s = format!(
            "Type \"ls\" (followed by Enter) to list available {} configuration options",
            path.join(" ")
        );
        let commands: Vec<&Command> = self.tree.nodes[self.cwd]
            .children
            .iter()
            .filter_map(|c| match c {
                Child::Command(cmd) => Some(cmd.as_ref()),
                Child::Namespace(_) => None,
            })
            .collect();
        if let Some(first) = commands.first() {
            let example = if commands.iter().any(|c| c.name == "create") {
                "create"
            } else {
                &first.name
            };
            s.push_str(&format!(
                "\nType \"man\" (followed by Action) to get help on how to use the specific Action.\n\ni.e.\n\tman {example}"
            ));
        }
        s
    }

    fn enter(&mut self, ns: usize, out: &mut Output) {
        self.cwd = ns;
        let banner = self.banner();
        out.print(&banner);
    }
}

/// Runs one input line from the current namespace.
pub fn run_line(ctx: &mut Ctx, line: &str) -> Output {
    let mut out = Output::default();
    let cwd = ctx.cwd;
    process_input(ctx, cwd, line, &mut out);
    out
}

/// `re.split(r"\s+", text.lstrip(), maxsplit=1)`.
fn shift(text: &str) -> (&str, Option<&str>) {
    let t = text.trim_start();
    match t.find(char::is_whitespace) {
        Some(i) => (&t[..i], Some(t[i..].trim_start())),
        None => (t, None),
    }
}

fn process_input(ctx: &mut Ctx, ns: usize, text: &str, out: &mut Output) {
    if text.trim().is_empty() {
        return;
    }
    let (name, rest) = shift(text);
    if let Some(b) = builtin(name) {
        run_builtin(ctx, ns, b, rest, out);
        return;
    }
    match ctx.tree.find_child(ns, name).cloned() {
        Some(Child::Namespace(id)) => match rest {
            Some(r) if !r.is_empty() => process_input(ctx, id, r, out),
            _ => ctx.enter(id, out),
        },
        Some(Child::Command(cmd)) => run_command(ctx, &cmd, rest, out),
        None => out.print(&format!("Namespace {name} not found")),
    }
}

fn print_commands(out: &mut Output, items: &[(String, Option<String>)]) {
    let width = items
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, desc) in items {
        let padded = format!("{name:<width$}");
        match desc {
            Some(d) => out.print(&format!("{padded} - {d}")),
            None => out.print(&padded),
        }
    }
}

fn run_builtin(ctx: &mut Ctx, ns: usize, name: &str, rest: Option<&str>, out: &mut Output) {
    match name {
        ".." => {
            if let Some(parent) = ctx.tree.nodes[ns].parent {
                ctx.enter(parent, out);
            }
        }
        "exit" => out.quit = true,
        "ls" => {
            let mut items: Vec<(String, Option<String>)> = ctx.tree.nodes[ns]
                .children
                .iter()
                .map(|c| match c {
                    Child::Namespace(id) => (
                        ctx.tree.nodes[*id].name.clone(),
                        ctx.tree.nodes[*id].description.clone(),
                    ),
                    Child::Command(cmd) => (cmd.name.clone(), cmd.description.clone()),
                })
                .filter(|(n, _)| builtin(n).is_none())
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            print_commands(out, &items);
        }
        "man" => man(ctx, ns, rest, out),
        "?" => {
            let items: Vec<(String, Option<String>)> = BUILTINS
                .iter()
                .map(|(n, _, d)| (n.to_string(), Some(d.to_string())))
                .collect();
            print_commands(out, &items);
        }
        "/" => ctx.enter(Tree::ROOT, out),
        ".mode" => match rest {
            None => out.print(&format!("Current output mode: {}", ctx.mode.name())),
            Some(m) => match Mode::parse(m) {
                Some(mode) => ctx.mode = mode,
                None => out.error(&format!("Error: Mode should be one of: {}", Mode::NAMES)),
            },
        },
        ".stacks" => match rest {
            None => out.print(&format!(
                "Errors stack trace display: {}",
                if ctx.stacks { "enabled" } else { "disabled" }
            )),
            Some(v) => match v.to_lowercase().as_str() {
                "0" | "no" | "off" => ctx.stacks = false,
                "1" | "yes" | "on" => ctx.stacks = true,
                _ => out.print(&format!(
                    "Invalid value: {}. Should be 'on' or 'off'",
                    py_str_repr(v)
                )),
            },
        },
        _ => {}
    }
}

/// Python `repr(str)`.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn man(ctx: &Ctx, ns: usize, rest: Option<&str>, out: &mut Output) {
    let parts: Vec<&str> = rest.unwrap_or("").split_whitespace().collect();
    if parts.is_empty() {
        out.print("Usage: man <command>");
        return;
    }
    let path = parts.join(" ");
    enum Found<'a> {
        Ns,
        Builtin,
        Cmd(&'a Command),
    }
    let mut cur = ns;
    let mut found = None;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if builtin(part).is_some() {
            found = if last { Some(Found::Builtin) } else { None };
            break;
        }
        match ctx.tree.find_child(cur, part) {
            Some(Child::Namespace(id)) => {
                cur = *id;
                if last {
                    found = Some(Found::Ns);
                }
            }
            Some(Child::Command(cmd)) => {
                found = if last { Some(Found::Cmd(cmd)) } else { None };
                break;
            }
            None => {
                found = None;
                break;
            }
        }
    }
    match found {
        None => out.print(&format!("Command `{path}` not found")),
        Some(Found::Ns) => out.print(&format!("`{path}` is not a command")),
        Some(Found::Builtin) => out.print(&format!("No documentation found for `{path}`")),
        Some(Found::Cmd(cmd)) => {
            let mut text = cmd
                .man
                .clone()
                .unwrap_or_else(|| format!("No documentation found for `{path}`"))
                .trim_end()
                .to_string();
            if !cmd.examples.is_empty() {
                text.push_str("\n\n\x1b[1mExamples\x1b[0m\n\n");
                text.push_str(cmd.examples.concat().trim());
            }
            out.print(&text);
        }
    }
}

fn run_command(ctx: &mut Ctx, cmd: &Command, rest: Option<&str>, out: &mut Output) {
    let (params, select) = if cmd.kind == Kind::Query {
        match query::parse(rest.unwrap_or("")) {
            Ok(q) => (vec![Value::Array(q.filters), json!({})], q.select),
            Err(e) => return out.error(&e),
        }
    } else {
        let parsed = match syntax::parse_arguments(rest) {
            Ok(p) => p,
            Err(e) => return out.error(&e.0),
        };
        match cmd.call_plan(parsed) {
            Ok(CallPlan::Call(params)) => (params, None),
            Ok(CallPlan::Editor) => {
                return out.error(
                    "Interactive command execution requested, but no interactive mode is available",
                );
            }
            Err(e) => return out.error(&e),
        }
    };
    let mut rv = match ctx.caller.call(&cmd.method, params) {
        Ok(v) => v,
        Err(e) => return out.error(&error_text(&e, ctx.stacks)),
    };
    if let Some(cols) = &select {
        rv = render::select_columns(rv, cols);
    }
    if cmd.api_key_create {
        let key = match rv.get("key") {
            Some(Value::String(k)) => k.clone(),
            Some(other) => other.to_string(),
            None => "None".to_string(),
        };
        out.print(&format!("API Key: {key}"));
        return;
    }
    if !cmd.output || (rv.is_null() && !cmd.has_returns) {
        return;
    }
    out.print(&render::display(&rv, ctx.mode));
    if ctx.qr && ctx.mode == Mode::Table {
        let mut uris = Vec::new();
        render::find_otpauth(&rv, &mut uris);
        for uri in uris {
            if let Some(code) = crate::qr::render(&uri) {
                out.stdout.push_str(&code);
            }
        }
    }
}

/// The text midcli shows for a failed call (`cli.md` §5.2).
pub fn error_text(e: &ClientError, stacks: bool) -> String {
    let ClientError::Server(err) = e else {
        return format!("Error: {e}");
    };
    if err.is_validation() {
        let mut s = String::from("Validation errors:");
        let errors = err.validation_errors();
        for (attr, msg, _) in &errors {
            match attr.as_deref().filter(|a| !a.is_empty()) {
                Some(a) => s.push_str(&format!("\n* {a}: {msg}")),
                None => s.push_str(&format!("\n* {msg}")),
            }
        }
        if errors.iter().any(|(_, m, _)| m == "attribute required") {
            s.push_str(
                "\nHint: Add -- to the end of the command to open an interactive arguments editor",
            );
        }
        return s;
    }
    let reason = err.reason().map(str::to_string);
    if reason
        .as_deref()
        .is_some_and(|r| r.contains("Pipe 'output' is not open"))
    {
        return "Please, specify the output file name using ' > filename.ext'".into();
    }
    if stacks && let Some(f) = err.trace_formatted() {
        return f.to_string();
    }
    match (err.trace_class(), reason) {
        (Some("CallError"), Some(r)) => {
            let msg = r.split_once("] ").map_or(r.as_str(), |(_, m)| m);
            format!("Error: {msg}")
        }
        (Some(_), _) if err.trace_repr().is_some() => {
            format!("Error: {}", err.trace_repr().unwrap_or_default())
        }
        (_, Some(r)) => format!("Error: {r}"),
        (_, None) => format!("Error: {}", err.message),
    }
}
