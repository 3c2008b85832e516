//! Regression for the `cli_line` fuzz crashes: the argument grammar and the `WHERE` expression
//! parser recursed once per nesting level without a limit, so a deeply nested line overflowed
//! the stack. Now nesting past `syntax::MAX_NESTING` / `query::MAX_DEPTH` is a parse error shown
//! like the others.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use gatehouse_cli::query::{self, MAX_DEPTH};
use gatehouse_cli::syntax::{MAX_NESTING, autocomplete, parse_arguments};

/// Far past any stack: without the limits every row below overflows it.
const HUGE: usize = 20_000;

fn nest(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let too_deep_args = format!("Expected at most {MAX_NESTING} levels of nesting");
    let too_deep_expr = format!("expression too deeply nested (at most {MAX_DEPTH} levels)");

    // Argument grammar: (line, Ok(number of positional args) | Err(message prefix)).
    let arg_rows: Vec<(String, Result<usize, &str>)> = vec![
        (nest("[", "]", MAX_NESTING, "1"), Ok(1)),
        (nest("{\"a\":", "}", MAX_NESTING, "1"), Ok(1)),
        (format!("x={}", nest("[", "]", MAX_NESTING, "")), Ok(0)),
        (nest("[", "]", MAX_NESTING + 1, "1"), Err(&too_deep_args)),
        (
            nest("{\"a\":", "}", MAX_NESTING + 1, "1"),
            Err(&too_deep_args),
        ),
        (
            format!("x={}", nest("[", "]", MAX_NESTING + 1, "")),
            Err(&too_deep_args),
        ),
        ("[".repeat(HUGE), Err(&too_deep_args)),
        ("{\"a\":".repeat(HUGE), Err(&too_deep_args)),
        ("[{\"a\":".repeat(HUGE), Err(&too_deep_args)),
        (format!("1 x={}", "[".repeat(HUGE)), Err(&too_deep_args)),
        (nest("[", "]", HUGE, "1"), Err(&too_deep_args)),
    ];
    for (line, expected) in &arg_rows {
        let got = parse_arguments(Some(line));
        let short = &line[..line.len().min(40)];
        match (expected, got) {
            (Ok(n), Ok(p)) => assert_eq!(p.args.len(), *n, "{short:?}"),
            (Err(prefix), Err(e)) => {
                assert!(e.0.starts_with(prefix), "{short:?}: {}", &e.0[..80]);
                // pyparsing's shape: `…, found '['` (or `'{'`), the line, a caret.
                assert!(
                    e.0.contains(", found '['\n") || e.0.contains(", found '{'\n"),
                    "{short:?}"
                );
                assert_eq!(e.0.lines().count(), 3, "{short:?}");
            }
            (expected, got) => panic!("{short:?}: expected {expected:?}, got {got:?}"),
        }
        // Completion runs the same grammar on every keystroke.
        let _ = autocomplete(line);
    }

    // The caret points at the first `[` past the limit.
    let line = "[".repeat(MAX_NESTING + 1);
    let e = parse_arguments(Some(&line)).unwrap_err().0;
    assert_eq!(
        e,
        format!(
            "{too_deep_args}, found '['\n {line}\n{}^",
            " ".repeat(MAX_NESTING + 1)
        )
    );

    // `WHERE` expressions: (filter text, accepted?). Accepted means the parser got through; the
    // translation may still reject the expression (e.g. a nested list operand).
    let expr_rows: Vec<(String, bool)> = vec![
        (format!("a == {}", nest("(", ")", MAX_DEPTH, "1")), true),
        (format!("a in {}", nest("[", "]", MAX_DEPTH, "1")), true),
        (format!("{}a == 1", "not ".repeat(MAX_DEPTH)), true),
        (
            format!("a == {}", nest("(", ")", MAX_DEPTH + 1, "1")),
            false,
        ),
        (
            format!("a in {}", nest("[", "]", MAX_DEPTH + 1, "1")),
            false,
        ),
        (
            format!("a in {}", nest("{", "}", MAX_DEPTH + 1, "1")),
            false,
        ),
        (format!("{}a == 1", "not ".repeat(MAX_DEPTH + 1)), false),
        (format!("a == {}", "(".repeat(HUGE)), false),
        (format!("a == {}", "[".repeat(HUGE)), false),
        (format!("a == {}", "{".repeat(HUGE)), false),
        (format!("a == {}", "{1:".repeat(HUGE)), false),
        (format!("a == {}", "f(".repeat(HUGE)), false),
        (format!("a == {}", "x[".repeat(HUGE)), false),
        (format!("a == {}", "-".repeat(HUGE)), false),
        (format!("a == {}", "~(".repeat(HUGE)), false),
        (format!("a == {}1", "2**".repeat(HUGE)), false),
        (format!("{}a == 1", "not ".repeat(HUGE)), false),
        (format!("{}1", "lambda: ".repeat(HUGE)), false),
        (format!("{}1", "1 if 1 else ".repeat(HUGE)), false),
        (nest("(", ")", HUGE, "a == 1"), false),
    ];
    for (filter, accepted) in &expr_rows {
        let short = &filter[..filter.len().min(40)];
        let line = format!("* WHERE {filter}");
        for got in [
            query::parse(&line).map(|_| ()),
            query::parse_filters(filter).map(|_| ()),
        ] {
            let too_deep = got.as_ref().is_err_and(|e| e.starts_with(&too_deep_expr));
            assert_eq!(!too_deep, *accepted, "{short:?}: {got:?}");
            if let Err(e) = &got
                && too_deep
            {
                // Python's shape: message, the expression, a caret.
                assert_eq!(e.lines().count(), 3, "{short:?}");
                assert!(e.ends_with('^'), "{short:?}");
            }
        }
        // The argument grammar sees the same line (the shell tries both).
        let _ = parse_arguments(Some(&line));
        let _ = autocomplete(&line);
    }

    // The caret points at the bracket that opened one level too many.
    let filter = format!("a == {}", "(".repeat(MAX_DEPTH + 1));
    let e = query::parse_filters(&filter).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{too_deep_expr}\n {filter}\n{}^",
            " ".repeat("a == ".len() + MAX_DEPTH + 1)
        )
    );
}
