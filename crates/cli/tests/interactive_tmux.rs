//! The interactive shell driven in tmux, as a person would use it, against a real gatehoused:
//! the prompt, Tab completion of a namespace, a command and a property name, history recall
//! with Up, Ctrl-C clearing the line and Ctrl-D exiting. Skipped (with a message) when tmux is
//! not installed; `.ci/run` installs it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{HOSTNAME, Live};

/// A tmux server of our own (`-L`), so a user's tmux is never touched.
struct Tmux {
    socket_name: String,
    conf: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket_name)
            .arg("-f")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "gh"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// Types `text` literally (no key-name lookup).
    fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "gh", "-l", text]);
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "gh"])
    }

    /// The last non-empty line of the pane (the one with the cursor, here).
    fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_string()
    }

    /// Polls the pane until `pred` holds; panics with the screen after 15 s.
    fn wait(&self, what: &str, pred: impl Fn(&Tmux) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if pred(self) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_last_line(&self, want: &str) {
        self.wait(&format!("last line {want:?}"), |t| t.last_line() == want);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn interactive_shell_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
        return;
    }
    if !support::is_root() {
        eprintln!("skipped: the shell logs in automatically on the UNIX socket only as uid 0");
        return;
    }
    let live = Live::start();
    let conf = live.dir.path().join("tmux.conf");
    std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n").unwrap();
    let tmux = Tmux {
        socket_name: format!("gatehouse-e2e-{}", std::process::id()),
        conf,
    };
    let home = live.dir.path().to_str().unwrap().to_string();
    // tmux runs this through `sh -c`; the shell reports the exit status itself. (tmux's own
    // `pane_dead_status` stayed empty about one run in ten: the pane died on the pty's EOF
    // while tmux had not yet reaped the process, and the test waited forever.)
    let shell = format!(
        "env HOME={home} TERM=xterm {} --socket {}; echo \"[exit status $?]\"",
        env!("CARGO_BIN_EXE_gatehouse"),
        live.socket.display()
    );
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "gh",
        "-x",
        "160",
        "-y",
        "50",
        &shell,
    ]);

    // The banner and the prompt `[hostname]> ` (root namespace).
    let root = format!("[{HOSTNAME}]>");
    tmux.wait_last_line(&root);
    assert!(
        tmux.screen()
            .contains("Type \"ls\" (followed by Enter) to list available configuration options"),
        "{}",
        tmux.screen()
    );

    // Tab completes a namespace, a command, then a property name of the spliced object.
    tmux.type_text("au");
    tmux.keys(&["Tab"]);
    tmux.wait_last_line(&format!("{root} auth"));
    tmux.type_text(" api_key cr");
    tmux.keys(&["Tab"]);
    tmux.wait_last_line(&format!("{root} auth api_key create"));
    tmux.type_text(" na");
    tmux.keys(&["Tab"]);
    tmux.wait_last_line(&format!("{root} auth api_key create name="));

    // Ctrl-C abandons the line: a fresh, empty prompt.
    tmux.keys(&["C-c"]);
    tmux.wait_last_line(&root);

    // A command runs; Up recalls it from history.
    tmux.type_text("auth me");
    tmux.keys(&["Enter"]);
    tmux.wait("auth me output", |t| {
        t.screen().contains("|            pw_name | root ") && t.last_line() == root
    });
    tmux.keys(&["Up"]);
    tmux.wait_last_line(&format!("{root} auth me"));
    tmux.keys(&["C-c"]);
    tmux.wait_last_line(&root);

    // Entering a namespace changes the prompt; completion works relative to it.
    tmux.type_text("auth");
    tmux.keys(&["Enter"]);
    let auth = format!("[{HOSTNAME}] auth>");
    tmux.wait_last_line(&auth);
    tmux.type_text("sess");
    tmux.keys(&["Tab"]);
    tmux.wait_last_line(&format!("{auth} sessions"));
    // A query command completes column names.
    tmux.type_text(" crea");
    tmux.keys(&["Tab"]);
    tmux.wait_last_line(&format!("{auth} sessions created_at"));
    tmux.keys(&["Enter"]);
    tmux.wait("sessions output", |t| {
        t.screen().contains("| created_at                |") && t.last_line() == auth
    });

    // The history file holds the accepted lines.
    let history = std::fs::read_to_string(live.dir.path().join(".gatehouse_history")).unwrap();
    assert!(history.contains("auth me"), "{history}");

    // Ctrl-D on an empty line exits with status 0.
    tmux.keys(&["C-d"]);
    tmux.wait("the shell to exit", |t| {
        t.screen().contains("[exit status ")
    });
    assert!(
        tmux.screen().contains("[exit status 0]"),
        "{}",
        tmux.screen()
    );
}
