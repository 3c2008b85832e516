//! The `gatehoused` binary as an operator meets it: first start, lock file, bad data
//! directories, signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gatehoused");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &Path, port: u16) -> Child {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("GATEHOUSE_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts the server on a free port and waits until it serves. Another test may grab the
/// port between `free_port` and the bind (then the child exits at once, or another server
/// answers on it): retry on a new port rather than talk to the wrong process.
/// A started server that is killed if the test panics before it stops it (no stray daemons).
struct Daemon(Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(dir: &Path) -> Daemon {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(dir, port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // exited: most likely the port was taken; try another
            }
            if dir.join("gatehoused.sock").exists()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Daemon(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("server did not start after 5 attempts");
}

/// Runs the binary to completion and returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("GATEHOUSE_ADMIN_PASSWORD", "startup-test")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn first_start_lock_and_clean_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path());

    // The generated admin password is written owner-only.
    let pw_file = dir.path().join("initial-admin-password");
    let meta = std::fs::metadata(&pw_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&pw_file).unwrap().trim().len() >= 16);
    assert!(dir.path().join("gatehoused.sock").exists());

    // A second instance on the same directory refuses with one clear line.
    let other_port = free_port().to_string();
    let (code, err) = run_to_exit(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{other_port}"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    sigterm(&first);
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    assert!(
        stderr.contains("initial-admin-password"),
        "the log says where the password is: {stderr}"
    );
    assert!(
        !stderr.contains(std::fs::read_to_string(&pw_file).unwrap().trim()),
        "password leaked to the log"
    );

    // Restart on the same directory works (lock released, stale socket replaced).
    let mut again = start(dir.path());
    sigterm(&again);
    assert_eq!(again.wait().unwrap().code(), Some(0));
}

#[test]
fn bad_environments_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // A damaged database file.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("gatehouse.db"), vec![0x42u8; 4096]).unwrap();
    // A data dir that is a file.
    let not_dir = dir.path().join("file");
    std::fs::write(&not_dir, b"x").unwrap();
    // A port in use.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let ok_dir = dir.path().join("ok");

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--data-dir".into(),
                damaged.display().to_string(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ],
            "damaged",
        ),
        (
            vec!["--data-dir".into(), not_dir.display().to_string()],
            "cannot use data directory",
        ),
        (
            vec![
                "--data-dir".into(),
                ok_dir.display().to_string(),
                "--listen".into(),
                busy_addr,
            ],
            "cannot listen on",
        ),
        (
            vec!["--config".into(), "/nonexistent/gatehoused.toml".into()],
            "cannot read config file",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = run_to_exit(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
