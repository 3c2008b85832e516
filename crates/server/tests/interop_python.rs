//! Interoperability with a TrueNAS client library nobody here wrote: runs
//! `tests/interop/test_pytruenas.py` (pytest, pytruenas 0.7.1) against this build's
//! `gatehoused`, with the interpreter in `GATEHOUSE_PYTHON` (`.ci/run` creates `.ci/venv` from
//! `tests/interop/requirements.txt` and sets it). Without `GATEHOUSE_PYTHON` the test says why
//! it skipped and passes.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn pytruenas_logs_in_with_api_keys() {
    let Some(python) = std::env::var_os("GATEHOUSE_PYTHON").filter(|p| !p.is_empty()) else {
        eprintln!(
            "skipped: GATEHOUSE_PYTHON is not set (a Python with tests/interop/requirements.txt \
             installed; .ci/run sets it)"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/interop/test_pytruenas.py",
        ])
        .current_dir(&root)
        .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehoused"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&python).display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every test ran; none was skipped for want of a dependency.
    assert!(stdout.contains(" passed"), "{stdout}");
    eprintln!("{stdout}");
}
