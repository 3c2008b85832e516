//! Process start: flags, connection, login, metadata, then `-c`, a script on stdin, or the
//! interactive loop.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use gatehouse_client::{Client, ClientError, ConnectOptions, Target};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use crate::opts::{self, Opts};
use crate::shell::{self, Caller, Ctx, py_str_repr};
use crate::tree::Tree;

/// The real [`Caller`]: one connection, reused for the whole run.
pub struct ClientCaller {
    pub rt: Runtime,
    pub client: Client,
}

impl Caller for ClientCaller {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.rt.block_on(self.client.call(method, params))
    }
}

/// A startup failure: the message (without the final period) for stderr.
#[derive(Debug)]
pub struct Fatal(pub String);

fn unknown(e: impl std::fmt::Display) -> Fatal {
    Fatal(format!(
        "Unknown middleware error: {}",
        exception_repr(&e.to_string())
    ))
}

fn exception_repr(msg: &str) -> String {
    format!("Exception({})", py_str_repr(msg))
}

/// §1.2 classification of a connection or startup error.
fn classify(e: &ClientError) -> Fatal {
    match e {
        ClientError::NotRunning { .. } => Fatal("middleware is not running".into()),
        ClientError::ConnectTimeout(_) | ClientError::Timeout { .. } => {
            Fatal("middleware is not responding".into())
        }
        ClientError::Handshake(_) => Fatal("Failed connection handshake".into()),
        ClientError::Server(err) if err.errno() == Some(207) => {
            Fatal("You are not authorized to use TrueNAS CLI".into())
        }
        other => unknown(other),
    }
}

/// Reads one line from the controlling terminal (falls back to stdin).
fn prompt_line(prompt: &str) -> Option<String> {
    let mut line = String::new();
    if let Ok(mut tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        let _ = tty.write_all(prompt.as_bytes());
        let _ = tty.flush();
        let mut reader = std::io::BufReader::new(tty);
        reader.read_line(&mut line).ok()?;
    } else {
        eprint!("{prompt}");
        std::io::stdin().read_line(&mut line).ok()?;
    }
    Some(line.trim().to_string())
}

async fn login(client: &Client, opts: &Opts) -> Result<(), Fatal> {
    let check = |resp: &Value, what: &str| -> Result<(), Fatal> {
        match resp.get("response_type").and_then(Value::as_str) {
            Some("SUCCESS") => Ok(()),
            Some("EXPIRED") => Err(unknown("Password expired")),
            Some("DENIED") => Err(unknown("Access denied")),
            Some("REDIRECT") => Err(unknown("Login redirected to another node")),
            _ => Err(unknown(what)),
        }
    };
    if let Some(token) = &opts.token {
        let resp = client.login_token(token).await.map_err(|e| classify(&e))?;
        return check(&resp, "Invalid token");
    }
    if let Some(key) = &opts.api_key {
        return match &opts.user {
            Some(user) => {
                let resp = client
                    .login_api_key(user, key)
                    .await
                    .map_err(|e| classify(&e))?;
                check(&resp, "Invalid API key")
            }
            None => {
                let ok = client
                    .call("auth.login_with_api_key", vec![json!(key)])
                    .await
                    .map_err(|e| classify(&e))?;
                if truthy(&ok) {
                    Ok(())
                } else {
                    Err(unknown("Invalid API key"))
                }
            }
        };
    }
    let (Some(user), Some(password)) = (&opts.user, &opts.password) else {
        return Ok(());
    };
    let resp = match client.login_password(user, password).await {
        Ok(r) => r,
        // A server without auth.login_ex: fall back to the legacy auth.login.
        Err(ClientError::Server(e)) if e.code == -32601 => {
            let ok = client
                .call("auth.login", vec![json!(user), json!(password)])
                .await
                .map_err(|e| classify(&e))?;
            return if truthy(&ok) {
                Ok(())
            } else {
                Err(unknown("Invalid username or password"))
            };
        }
        Err(e) => return Err(classify(&e)),
    };
    if resp.get("response_type").and_then(Value::as_str) == Some("OTP_REQUIRED") {
        let Some(otp) = prompt_line("Two-factor authentication code: ") else {
            return Err(unknown("Invalid username or password"));
        };
        let resp = client.login_otp(&otp).await.map_err(|e| classify(&e))?;
        return check(&resp, "Invalid username or password");
    }
    check(&resp, "Invalid username or password")
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Connects, logs in, loads metadata and builds the shell context.
pub fn connect(opts: &Opts) -> Result<Ctx, Fatal> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("cannot start runtime: {e}")))?;
    let target = match (&opts.url, &opts.socket) {
        (Some(url), _) => Target::Url(url.clone()),
        (None, Some(path)) => Target::unix(path),
        (None, None) => Target::unix(gatehouse_proto::defaults::default_socket()),
    };
    let options = ConnectOptions {
        call_timeout: Some(Duration::from_secs(opts.timeout)),
        connect_timeout: Duration::from_secs(opts.timeout.clamp(1, 10)),
        protocol: None,
    };
    let (client, hostname, methods, services) = rt.block_on(async {
        let client = Client::connect_with(target, options)
            .await
            .map_err(|e| classify(&e))?;
        login(&client, opts).await?;
        let (hostname, methods, services) = tokio::join!(
            client.call("system.hostname", vec![]),
            client.call("core.get_methods", vec![Value::Null, json!("CLI")]),
            client.call("core.get_services", vec![json!("CLI")]),
        );
        let methods = methods.map_err(|e| classify(&e))?;
        let services = services.map_err(|e| classify(&e))?;
        let hostname = match hostname {
            Ok(Value::String(h)) => h,
            Ok(other) => other.to_string(),
            Err(e) => return Err(classify(&e)),
        };
        Ok::<_, Fatal>((client, hostname, methods, services))
    })?;
    let tree = Tree::build(&methods, &services);
    let mut ctx = Ctx::new(tree, hostname, Box::new(ClientCaller { rt, client }));
    ctx.mode = opts.mode;
    ctx.stacks = opts.stacks;
    ctx.qr = std::io::stdout().is_terminal();
    Ok(ctx)
}

fn emit(out: &shell::Output, interactive: bool) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.stdout.as_bytes());
    if !out.stderr.is_empty() {
        if interactive {
            // midcli prints errors on stdout, followed by a blank line.
            let _ = stdout.write_all(out.stderr.as_bytes());
            let _ = stdout.write_all(b"\n");
        } else {
            let _ = stdout.flush();
            let _ = std::io::stderr().write_all(out.stderr.as_bytes());
        }
    }
    let _ = stdout.flush();
}

/// The whole program; returns the exit code.
pub fn main_with_args<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let opts = match opts::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}\ngatehouse: error: {e}", opts::USAGE);
            return 2;
        }
    };
    if opts.help {
        println!("{}\n{}", opts::USAGE, opts::HELP);
        return 0;
    }
    if opts.version {
        println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let mut ctx = match connect(&opts) {
        Ok(c) => c,
        Err(Fatal(msg)) => {
            eprintln!("{msg}.");
            return 1;
        }
    };
    if let Some(cmd) = &opts.command {
        let out = shell::run_line(&mut ctx, cmd);
        emit(&out, false);
        return out.exit;
    }
    if std::io::stdin().is_terminal() {
        return crate::interactive::run(ctx, opts.vi);
    }
    // A script on stdin: one command line per line, errors on stderr.
    let mut status = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let out = shell::run_line(&mut ctx, &line);
        emit(&out, false);
        if out.exit != 0 {
            status = out.exit;
        }
        if out.quit {
            break;
        }
    }
    status
}

pub(crate) fn emit_interactive(out: &shell::Output) {
    emit(out, true);
}
