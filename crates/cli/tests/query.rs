//! Query command grammar and WHERE translation (cli.md §3.6, midcli's test_query_parse.py).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use gatehouse_cli::query::{ParsedQuery, parse};
use serde_json::{Value, json};

fn q(filters: Value, select: Option<&[&str]>) -> ParsedQuery {
    ParsedQuery {
        filters: filters.as_array().cloned().unwrap_or_default(),
        select: select.map(|s| s.iter().map(|c| c.to_string()).collect()),
    }
}

#[test]
fn parse_rows() {
    let rows: Vec<(&str, ParsedQuery)> = vec![
        ("", q(json!([]), None)),
        ("uid", q(json!([]), Some(&["uid"]))),
        ("uid,username", q(json!([]), Some(&["uid", "username"]))),
        ("uid, username", q(json!([]), Some(&["uid", "username"]))),
        (
            "uid,username WHERE uid > 0",
            q(json!([["uid", ">", 0]]), Some(&["uid", "username"])),
        ),
        (
            "* WHERE uid > 0 and username != 'ivan'",
            q(
                json!([["AND", [["uid", ">", 0], ["username", "!=", "ivan"]]]]),
                None,
            ),
        ),
        (
            "* WHERE uid in [1, 2, 3]",
            q(json!([["uid", "in", [1, 2, 3]]]), None),
        ),
        (
            "* WHERE uid in (1, 2, 3)",
            q(json!([["uid", "in", [1, 2, 3]]]), None),
        ),
        (
            "* WHERE uid in {1, 2, 3}",
            q(json!([["uid", "in", [1, 2, 3]]]), None),
        ),
        (
            "* WHERE uid not in [1]",
            q(json!([["uid", "nin", [1]]]), None),
        ),
        (
            "* WHERE username.match('^i')",
            q(json!([["username", "~", "^i"]]), None),
        ),
        (
            "* WHERE username.startswith('i')",
            q(json!([["username", "^", "i"]]), None),
        ),
        (
            "* WHERE not username.startswith('i')",
            q(json!([["NOT", ["username", "^", "i"]]]), None),
        ),
        (
            "* WHERE username.endswith('i')",
            q(json!([["username", "$", "i"]]), None),
        ),
        (
            "* WHERE 'oo' in username",
            q(json!([["username", "rin", "oo"]]), None),
        ),
        (
            "* WHERE 'oo' not in username",
            q(json!([["username", "rnin", "oo"]]), None),
        ),
        (
            "* WHERE smb_account == null",
            q(json!([["smb_account", "=", null]]), None),
        ),
        (
            "* where a == True or b <= 1.5 or c >= 0x1f",
            q(
                json!([["OR", [["a", "=", true], ["b", "<=", 1.5], ["c", ">=", 31]]]]),
                None,
            ),
        ),
        (
            "* WHERE a < 1_000 and (b == \"x\" or c == false)",
            q(
                json!([[
                    "AND",
                    [
                        ["a", "<", 1000],
                        ["OR", [["b", "=", "x"], ["c", "=", false]]]
                    ]
                ]]),
                None,
            ),
        ),
        ("WHERE", q(json!([]), Some(&["WHERE"]))),
        ("created_at,id", q(json!([]), Some(&["created_at", "id"]))),
    ];
    for (text, expected) in rows {
        assert_eq!(parse(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn error_rows() {
    let rows = [
        ("* WHERE uid &", "invalid syntax\n uid &\n^"),
        ("* WHERE uid && 1", "invalid syntax\n uid && 1\n      ^"),
        ("* WHERE id = 1", "invalid syntax\n id = 1\n    ^"),
        (
            "WHERE uid == 1",
            "Expected end of text, found 'u'\n WHERE uid == 1\n       ^",
        ),
        (
            "#test",
            "Expected {column [, column]... | '*'}, found '#'\n #test\n ^",
        ),
        ("* WHERE", "Expected end of text, found 'W'\n * WHERE\n   ^"),
        (
            "* WHERE smb_account is not None",
            "Unsupported comparison operator: IsNot",
        ),
        ("* WHERE 'oo' in 1", "Unsupported right operand for `oo in`"),
        ("* WHERE 1 > uid", "Unsupported left operand Constant"),
        ("* WHERE a.b == 1", "Unsupported left operand Attribute"),
        ("* WHERE -1 == id", "Unsupported left operand UnaryOp"),
        ("* WHERE gid > uid", "Unsupported right operand Name"),
        ("* WHERE id == -1", "Unsupported right operand UnaryOp"),
        ("* WHERE 'OO'.upper()", "Unsupported callee Constant"),
        (
            "* WHERE username.isdigit()",
            "Unknown function name 'isdigit'",
        ),
        (
            "* WHERE username.match('ROOT', re.IGNORECASE)",
            "Function match accepts 1 argument, given 2",
        ),
        (
            "* WHERE username.match('ROOT', flags=re.IGNORECASE)",
            "Function match does not accept keyword arguments",
        ),
        ("* WHERE ~uid", "Unknown unary expression Invert"),
        ("* WHERE uid", "Unsupported filter expression: Name"),
        (
            "* WHERE 1 < a < 2",
            "Too many comparators (expected 1, found 2",
        ),
    ];
    for (text, expected) in rows {
        assert_eq!(parse(text), Err(expected.to_string()), "{text:?}");
    }
}
