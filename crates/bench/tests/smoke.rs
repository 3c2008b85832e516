//! CI smoke: every scenario of the harness runs end to end with tiny counts, so the harness
//! cannot rot. No timing is asserted: this machine is shared and noisy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn every_scenario_runs_with_tiny_counts() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-bench"))
        .args(["all", "--smoke"])
        .output()
        .expect("run gatehouse-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "gatehouse-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for needle in [
        "| echo baseline",
        "| auth.me | 4 |",
        "| login PASSWORD_PLAIN",
        "| login API_KEY_PLAIN cold",
        "| login API_KEY_PLAIN cached",
        "| login TOKEN_PLAIN",
        "| login SCRAM",
        "during storm",
        "| scale: 50 sessions",
        "KiB/session",
        "| auth.sessions, 50 sessions, all",
        "| write: api_key.create",
        "| write: user.update",
        "| write: auth.set_attribute",
        "| shell: gatehouse -c \"auth me\"",
    ] {
        assert!(
            stdout.contains(needle),
            "no {needle:?} row in\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert!(!stdout.contains("error replies"), "calls failed:\n{stdout}");
}
