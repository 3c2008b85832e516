//! The argument grammar, one row per case of cli.md §3.1–3.2.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use gatehouse_cli::syntax::{ParsedArgs, parse_arguments};
use serde_json::{Value, json};

fn ok(input: &str) -> ParsedArgs {
    parse_arguments(Some(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn args(input: &str) -> Vec<Value> {
    let p = ok(input);
    assert!(
        p.kwargs.is_empty(),
        "{input:?}: unexpected kwargs {:?}",
        p.kwargs
    );
    p.args
}

fn kwarg(input: &str, name: &str) -> Value {
    let p = ok(input);
    assert!(p.args.is_empty(), "{input:?}: unexpected args");
    p.kwarg(name)
        .cloned()
        .unwrap_or_else(|| panic!("{input:?}: no {name}"))
}

#[test]
fn positional_rows() {
    let rows: &[(&str, Value)] = &[
        ("", json!([])),
        ("1", json!([1])),
        ("0o10", json!([8])),
        ("0x10", json!([16])),
        ("0X1f", json!([31])),
        ("null", json!([null])),
        ("[1, 2, 3]", json!([[1, 2, 3]])),
        ("1 1,2,3", json!([1, [1, 2, 3]])),
        ("1 1,2, 3", json!([1, [1, 2, 3]])),
        (r#"1 "a,b","c, d""#, json!([1, ["a,b", "c, d"]])),
        (
            r#"1 {"key": ["nested", {"value": 2}]} 3"#,
            json!([1, {"key": ["nested", {"value": 2}]}, 3]),
        ),
        ("1 0o10", json!([1, 8])),
        ("1 null", json!([1, null])),
        ("abc def", json!(["abc", "def"])),
    ];
    for (input, expected) in rows {
        assert_eq!(&Value::Array(args(input)), expected, "{input:?}");
    }
}

#[test]
fn mixed_args_and_kwargs() {
    let p = ok("1 2 option=3,4");
    assert_eq!(p.args, vec![json!(1), json!(2)]);
    assert_eq!(p.kwargs, vec![("option".to_string(), json!([3, 4]))]);
}

#[test]
fn keyword_rows() {
    let rows: &[(&str, Value)] = &[
        ("name=ivan_ivanov123", json!("ivan_ivanov123")),
        ("name = ivan_ivanov123", json!("ivan_ivanov123")),
        ("x=/", json!("/")),
        ("x=.history", json!(".history")),
        ("x=root@localhost", json!("root@localhost")),
        (
            r#"x="force group=apps\nforce user=apps""#,
            json!("force group=apps\nforce user=apps"),
        ),
        ("x=1.5", json!(1.5)),
        ("x=-1", json!(-1)),
        ("x=+1", json!(1)),
        ("x=.5", json!(0.5)),
        ("x=1.", json!(1.0)),
        ("x=1e3", json!(1000.0)),
        ("x=007", json!(7)),
        ("x=true", json!(true)),
        ("x=True", json!("True")),
        ("x=None", json!("None")),
        ("x=truex", json!("truex")),
        ("x=a,b,c", json!(["a", "b", "c"])),
        (r#"x=a,"b""#, json!(["a", "b"])),
        ("x=1, 2", json!([1, 2])),
        (r#"x="a", "b""#, json!(["a", "b"])),
        ("x=[]", json!([])),
        ("x={}", json!({})),
        (r#"x="""#, json!("")),
        (r#"x="ü\u00fc""#, json!("üü")),
        (
            r#"allowlist=[{"method": "SUBSCRIBE", "resource": "certificate.query"}]"#,
            json!([{"method": "SUBSCRIBE", "resource": "certificate.query"}]),
        ),
        ("attrs= {}", json!({})),
    ];
    for (input, expected) in rows {
        let name = input.split('=').next().unwrap_or_default().trim();
        assert_eq!(&kwarg(input, name), expected, "{input:?}");
    }
    // 1e3 is a float, 7 an int.
    assert!(kwarg("x=1e3", "x").is_f64());
    assert!(kwarg("x=007", "x").is_i64());
}

#[test]
fn last_kwarg_wins() {
    let p = ok("x=1 y=2 x=3");
    assert_eq!(
        p.kwargs,
        vec![("x".to_string(), json!(3)), ("y".to_string(), json!(2))]
    );
}

#[test]
fn interactive_and_output() {
    for input in ["--", "1 --", "x=1\t-- "] {
        assert!(ok(input).interactive, "{input:?}");
    }
    assert_eq!(
        ok("1 option=2 > file.tar.gz").output.as_deref(),
        Some("file.tar.gz")
    );
    let p = ok("-- > /mnt/f");
    assert!(p.interactive);
    assert_eq!(p.output.as_deref(), Some("/mnt/f"));
    let p = ok("x=1 --> f");
    assert!(p.interactive);
    assert_eq!(p.output.as_deref(), Some("f"));
}

#[test]
fn exact_error_texts() {
    let rows = [
        ("1a", "Expected end of text, found '1'\n 1a\n ^"),
        (
            "1 option=2 3",
            "Expected end of text, found '3'\n 1 option=2 3\n            ^",
        ),
        ("ttl=1a", "Expected end of text, found 't'\n ttl=1a\n ^"),
        (
            "name=my-key",
            "Expected end of text, found 'n'\n name=my-key\n ^",
        ),
        ("x=1 >", "Expected end of text, found '>'\n x=1 >\n     ^"),
        (
            "x='single'",
            "Expected end of text, found 'x'\n x='single'\n ^",
        ),
    ];
    for (input, expected) in rows {
        match parse_arguments(Some(input)) {
            Err(e) => assert_eq!(e.0, expected, "{input:?}"),
            Ok(p) => panic!("{input:?} parsed: {p:?}"),
        }
    }
}

#[test]
fn rejected_inputs() {
    for input in [
        "1a",
        "1 option=2 3",
        "name=my-key",
        "name=my key",
        "name=",
        "x=a:b",
        "x=é",
        "x=[1,2",
        "x=[1,]",
        r#"x={"a":1,}"#,
        "x={'a':1}",
        "x={a:1}",
        "x='single'",
        "x=0b11",
        "x=1_000",
        "x=-",
        "_x=1",
        "na-me=1",
        "x=1 # c",
        "-- extra",
        "x=1 >",
        r#"x="a" "b""#,
        "x=a, b",
        "x=true.",
    ] {
        let r = parse_arguments(Some(input));
        assert!(r.is_err(), "{input:?} should be rejected, got {r:?}");
        let msg = r.err().map(|e| e.0).unwrap_or_default();
        assert!(
            msg.starts_with("Expected end of text, found "),
            "{input:?}: {msg}"
        );
    }
}

#[test]
fn invalid_json_escape_is_a_parse_error() {
    let e = parse_arguments(Some(r#"x="\q""#))
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert_eq!(e, "Invalid \\escape, found '\\\\'\n x=\"\\q\"\n    ^");
    assert!(parse_arguments(Some(r#"x="\u12""#)).is_err());
}

#[test]
fn quote_char_repr() {
    let e = parse_arguments(Some("'x'"))
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(e.starts_with("Expected end of text, found \"'\""), "{e}");
}
