//! Command-line flags (`cli.md` §1.1, plus `--api-key`, `--token`, `--vi`, `-m json`).

use crate::render::Mode;

pub const USAGE: &str = "usage: gatehouse [-h] [--url URL] [--socket PATH] [--user USER]
                 [--password PASSWORD] [--api-key KEY] [--token TOKEN]
                 [--timeout TIMEOUT] [-c COMMAND] [-m {table,csv,json}]
                 [--stacks] [--vi] [--version]";

pub const HELP: &str = "
Interactive shell for gatehoused (compatible with the TrueNAS CLI).

options:
  -h, --help            show this help message and exit
  --url URL             middleware URL: ws://HOST:PORT/api/current (JSON-RPC),
                        ws://HOST:PORT/websocket (legacy protocol) or
                        ws+unix:///path/to.sock; default: the local UNIX socket
  --socket PATH         UNIX socket of a local gatehoused (same as
                        --url ws+unix://PATH)
  --user USER           user name (with --password, or with --api-key)
  --password PASSWORD   password (auth.login_ex PASSWORD_PLAIN; asks for a
                        two-factor code on the terminal when required)
  --api-key KEY         API key (API_KEY_PLAIN with --user, else
                        auth.login_with_api_key)
  --token TOKEN         authentication token (TOKEN_PLAIN)
  --timeout TIMEOUT     timeout for executing commands (in seconds, default 1200)
  -c, --command COMMAND
                        run one command line and exit
  -m, --mode {table,csv,json}
                        output mode (default: table)
  --stacks              print server tracebacks instead of short errors
  --vi                  vi key bindings (default: emacs)
  --version             print the version and exit";

/// Parsed flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    pub url: Option<String>,
    /// `--socket PATH`: a UNIX socket other than the default one.
    pub socket: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub token: Option<String>,
    pub timeout: u64,
    pub mode: Mode,
    pub stacks: bool,
    pub command: Option<String>,
    pub vi: bool,
    pub help: bool,
    pub version: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            url: None,
            socket: None,
            user: None,
            password: None,
            api_key: None,
            token: None,
            timeout: 1200,
            mode: Mode::Table,
            stacks: false,
            command: None,
            vi: false,
            help: false,
            version: false,
        }
    }
}

/// Parses `args` (without the program name). Errors are argparse-style messages.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .ok_or_else(|| format!("argument {name}: expected one argument")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => o.help = true,
            "--version" => o.version = true,
            "--url" => o.url = Some(value("--url")?),
            "--socket" => o.socket = Some(value("--socket")?),
            "--user" => o.user = Some(value("--user")?),
            "--password" => o.password = Some(value("--password")?),
            "--api-key" => o.api_key = Some(value("--api-key")?),
            "--token" => o.token = Some(value("--token")?),
            "--timeout" => {
                let v = value("--timeout")?;
                o.timeout = v
                    .parse()
                    .map_err(|_| format!("argument --timeout: invalid int value: '{v}'"))?;
            }
            "-c" | "--command" => o.command = Some(value("-c/--command")?),
            "-m" | "--mode" => {
                let v = value("-m/--mode")?;
                o.mode = Mode::parse(&v).ok_or_else(|| {
                    format!("argument -m/--mode: invalid choice: '{v}' (choose from 'table', 'csv', 'json')")
                })?;
            }
            "--stacks" => o.stacks = true,
            "--vi" => o.vi = true,
            f if f.starts_with("-c") && f.len() > 2 => o.command = Some(f[2..].to_string()),
            f if f.starts_with("-m") && f.len() > 2 => {
                let v = &f[2..];
                o.mode = Mode::parse(v).ok_or_else(|| {
                    format!("argument -m/--mode: invalid choice: '{v}' (choose from 'table', 'csv', 'json')")
                })?;
            }
            _ => return Err(format!("unrecognized arguments: {arg}")),
        }
    }
    if o.url.is_some() && o.socket.is_some() {
        return Err("argument --socket: not allowed with argument --url".into());
    }
    Ok(o)
}
