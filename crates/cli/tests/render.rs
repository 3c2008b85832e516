//! Renderer golden files: `tests/golden/NAME.json` holds `{"mode": ..., "value": ...}`, the
//! expected output is `tests/golden/NAME.txt` (exactly what is printed, final newline
//! included). `UPDATE_GOLDEN=1` rewrites the .txt files.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use gatehouse_cli::Mode;
use gatehouse_cli::render::display;
use serde_json::Value;

#[test]
fn golden_files() {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "golden cases missing: {names:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for name in names {
        let case: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let mode = Mode::parse(case["mode"].as_str().unwrap_or("table")).unwrap_or(Mode::Table);
        let got = format!("{}\n", display(&case["value"], mode));
        let path = format!("{dir}/{name}.txt");
        if update {
            std::fs::write(&path, &got).unwrap_or_else(|e| panic!("{path}: {e}"));
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if got != want {
            failures.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
