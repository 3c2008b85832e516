//! A real `gatehoused` (in process, temp data dir, free loopback port, temp UNIX socket) and the
//! `gatehouse` binary run against it; golden-file comparison with volatile fields masked.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_server::{Config, Server};
use regex_lite::{Captures, Regex};

pub const ADMIN_PASSWORD: &str = "admin-pass-for-e2e";
pub const HOSTNAME: &str = "gatehouse-e2e";

/// Whether we run as uid 0 (read from /proc: unsafe code, and so `geteuid`, is forbidden).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A running server; shut down on drop.
pub struct Live {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// `ws://127.0.0.1:PORT/api/current`
    pub url: String,
}

impl Live {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gatehoused.sock");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".into(),
            socket: Some(socket.clone()),
            login_failure_delay_ms: [0, 0],
            hostname: Some(HOSTNAME.into()),
            initial_admin_password: Some(ADMIN_PASSWORD.into()),
            // TrueNAS uses 500,000 PBKDF2 rounds; a debug build needs ~10 s per key at that cost.
            api_key_iterations: 1000,
            ..Config::default()
        };
        config.rate_limit.penalty_ms = [0, 0];
        let server = rt.block_on(Server::start(config)).unwrap();
        let url = format!("ws://{}/api/current", server.tcp_addr.unwrap());
        Self {
            rt,
            server: Some(server),
            dir,
            socket,
            url,
        }
    }

    /// `gatehouse --socket S ARGS…` with stdin closed and `HOME` in the temp dir.
    pub fn gatehouse(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("--socket").arg(&self.socket);
        self.run(cmd, args)
    }

    /// `gatehouse ARGS…` without `--socket` (for `--url`).
    pub fn gatehouse_raw(&self, args: &[&str]) -> Run {
        self.run(Command::new(env!("CARGO_BIN_EXE_gatehouse")), args)
    }

    fn run(&self, mut cmd: Command, args: &[&str]) -> Run {
        let out = cmd
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit: out.status.code().unwrap_or(-1),
        }
    }

    /// `gatehouse --socket S -c LINE`
    pub fn c(&self, line: &str) -> Run {
        self.gatehouse(&["-c", line])
    }

    /// Number of live sessions on the server.
    pub fn sessions(&self) -> usize {
        self.server.as_ref().unwrap().app.sessions.len()
    }

    /// Waits until the server holds at most `n` sessions (earlier `gatehouse` processes have
    /// exited, but the server notices their closed sockets asynchronously).
    pub fn wait_sessions(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sessions() > n {
            assert!(Instant::now() < deadline, "sessions did not drop to {n}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub args: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
}

impl Run {
    pub fn ok(&self) -> &str {
        assert_eq!(self.exit, 0, "{self:?}");
        &self.stdout
    }

    /// The golden-file text: the command line, exit status, stdout and stderr, masked.
    pub fn transcript(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| shell_quote(a)).collect();
        format!(
            "$ gatehouse {}\n--- exit: {}\n--- stdout\n{}--- stderr\n{}",
            mask(&args.join(" ")),
            self.exit,
            mask(&self.stdout),
            mask(&self.stderr),
        )
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn fill(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// Masks volatile values, keeping every length so table frames stay aligned: API keys, tokens,
/// UUIDs (session ids, login ids), timestamps (except the fixed year-2100 expiry the tests
/// use), SCRAM salts and keys, pids and TCP ports.
pub fn mask(text: &str) -> String {
    type Rule = (&'static str, fn(&Captures) -> String);
    let rules: [Rule; 8] = [
        // <id>-<64 alphanumerics>: a raw API key.
        (r"\b(\d+-)([A-Za-z0-9]{64})\b", |c| {
            format!("{}{}", &c[1], fill('K', c[2].len()))
        }),
        // A whole line of 64 URL-safe characters: an authentication token.
        (r"(?m)^[A-Za-z0-9_-]{64}$", |c| fill('T', c[0].len())),
        (r"(--token )([A-Za-z0-9_-]{64})", |c| {
            format!("{}{}", &c[1], fill('T', c[2].len()))
        }),
        (
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            |_| "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into(),
        ),
        (r"\b(\d{4})-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", |c| {
            if &c[1] == "2100" {
                c[0].to_string()
            } else {
                let frac = c.get(2).map_or(0, |m| m.as_str().len());
                format!("YYYY-MM-DDThh:mm:ss{}+00:00", fill('f', frac))
            }
        }),
        (r"(\$scram-sha512\$\d+\$)([A-Za-z0-9+/=$]+)", |c| {
            format!("{}{}", &c[1], fill('#', c[2].len()))
        }),
        (r"\bpid=(\d+)", |c| format!("pid={}", fill('#', c[1].len()))),
        (r"\b127\.0\.0\.1:(\d+)", |c| {
            format!("127.0.0.1:{}", fill('#', c[1].len()))
        }),
    ];
    let mut out = text.to_string();
    for (re, f) in rules {
        out = Regex::new(re).unwrap().replace_all(&out, f).into_owned();
    }
    out
}

/// Table lines without their padding, and masked digits of variable count collapsed: used when
/// a value of variable width (a pid, a port) may have changed the column widths since the
/// golden file was written.
pub fn reflow(text: &str) -> String {
    let border = Regex::new(r"^\+[-+]*\+$").unwrap();
    let dashes = Regex::new(r"-+").unwrap();
    let text = Regex::new(r"#+").unwrap().replace_all(text, "#");
    text.lines()
        .map(|l| {
            if border.is_match(l) {
                dashes.replace_all(l, "-").into_owned()
            } else if l.starts_with('|') && l.ends_with('|') {
                l.split('|').map(str::trim).collect::<Vec<_>>().join("|")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects golden comparisons; `UPDATE_GOLDEN=1` rewrites the files instead.
pub struct Golden {
    dir: PathBuf,
    update: bool,
    failures: Vec<String>,
    names: Vec<String>,
}

impl Golden {
    pub fn new() -> Self {
        Self {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/e2e"),
            update: std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0"),
            failures: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Compares `run` with `tests/golden/e2e/NAME.txt`.
    pub fn check(&mut self, name: &str, run: &Run) {
        assert!(
            !self.names.iter().any(|n| n == name),
            "golden name {name} used twice"
        );
        self.names.push(name.to_string());
        let got = run.transcript();
        let path = self.dir.join(format!("{name}.txt"));
        if self.update {
            std::fs::create_dir_all(&self.dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            return;
        }
        let want = match std::fs::read_to_string(&path) {
            Ok(w) => w,
            Err(e) => {
                self.failures.push(format!(
                    "{}: {e} (run with UPDATE_GOLDEN=1 to create it)\n{got}",
                    path.display()
                ));
                return;
            }
        };
        if want == got || (has_variable_width(&want) && reflow(&want) == reflow(&got)) {
            return;
        }
        self.failures.push(format!(
            "{} differs\n=== want\n{want}=== got\n{got}",
            path.display()
        ));
    }

    /// Panics with every mismatch.
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} golden mismatch(es) (UPDATE_GOLDEN=1 regenerates):\n\n{}",
                self.failures.len(),
                self.failures.join("\n")
            );
        }
    }
}

fn has_variable_width(text: &str) -> bool {
    text.contains("pid=#") || text.contains("127.0.0.1:#")
}
