//! Completion (cli.md §8) and command-line flags.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use gatehouse_cli::complete::complete;
use gatehouse_cli::{Mode, Tree, opts};

fn names(text: &str) -> (usize, Vec<String>) {
    let tree = common::auth_tree();
    let (start, cands) = complete(&tree, Tree::ROOT, text);
    (start, cands.into_iter().map(|c| c.replacement).collect())
}

#[test]
fn namespaces_and_commands_in_children_order() {
    assert_eq!(names("au"), (0, vec!["auth".to_string()]));
    let (start, got) = names("auth ");
    assert_eq!(start, 5);
    assert_eq!(
        &got[..3],
        ["api_key", "generate_onetime_password", "generate_token"]
    );
    assert_eq!(names("auth api_key c"), (13, vec!["create".to_string()]));
    assert_eq!(
        names("auth t"),
        (
            5,
            vec![
                "terminate_other_sessions".to_string(),
                "terminate_session".to_string(),
                "two_factor".to_string()
            ]
        )
    );
    assert_eq!(names("nope x").1, Vec::<String>::new());
}

#[test]
fn argument_names_and_values() {
    assert_eq!(
        names("auth api_key create "),
        (
            20,
            vec!["name=".into(), "username=".into(), "expires_at=".into()]
        )
    );
    assert_eq!(
        names("auth api_key create name=k u"),
        (27, vec!["username=".into()])
    );
    assert_eq!(
        names("auth api_key update 1 "),
        (
            22,
            vec!["name=".into(), "reset=".into(), "expires_at=".into()]
        )
    );
    let (start, got) = names("auth api_key update 1 reset=");
    assert_eq!(
        (start, got),
        (28, vec!["true".to_string(), "false".to_string()])
    );
    let (_, got) = names("auth api_key update 1 reset=t");
    assert_eq!(got, vec!["true".to_string()]);
    let (_, got) = names("auth generate_token ");
    assert_eq!(got, vec!["ttl=", "attrs=", "match_origin=", "single_use="]);
    let (_, got) = names("auth generate_token 600 ");
    assert_eq!(got, vec!["attrs=", "match_origin=", "single_use="]);
    let (_, got) = names("auth generate_token match_origin=");
    assert_eq!(got, vec!["true", "false"]);
}

#[test]
fn query_columns_and_where() {
    let (start, got) = names("auth sessions ");
    assert_eq!(start, 14);
    assert_eq!(got[0], "id");
    let (_, got) = names("auth sessions id,or");
    assert_eq!(got, vec!["origin"]);
    let (_, got) = names("auth sessions id ");
    assert_eq!(got, vec!["WHERE"]);
    let (_, got) = names("auth sessions * WHERE cu");
    assert_eq!(got, vec!["current"]);
    let (_, got) = names("auth sessions * WHERE current == true and int");
    assert_eq!(got, vec!["internal"]);
}

#[test]
fn flags() {
    let o = opts::parse(
        [
            "--url",
            "ws://h:1/api/current",
            "--user",
            "u",
            "--password",
            "p",
            "-m",
            "csv",
            "--stacks",
            "-c",
            "auth me",
            "--timeout",
            "5",
            "--vi",
        ]
        .map(String::from),
    )
    .unwrap();
    assert_eq!(o.url.as_deref(), Some("ws://h:1/api/current"));
    assert_eq!(
        (o.user.as_deref(), o.password.as_deref()),
        (Some("u"), Some("p"))
    );
    assert_eq!(
        (o.mode, o.stacks, o.timeout, o.vi),
        (Mode::Csv, true, 5, true)
    );
    assert_eq!(o.command.as_deref(), Some("auth me"));
    let o = opts::parse(["--mode=json", "--api-key=1-abc", "-cls"].map(String::from)).unwrap();
    assert_eq!(
        (o.mode, o.api_key.as_deref(), o.command.as_deref()),
        (Mode::Json, Some("1-abc"), Some("ls"))
    );
    assert_eq!(opts::parse(Vec::<String>::new()).unwrap().timeout, 1200);
    assert!(opts::parse(["-m", "yaml"].map(String::from)).is_err());
    assert!(opts::parse(["--timeout", "x"].map(String::from)).is_err());
    assert!(opts::parse(["--bogus"].map(String::from)).is_err());
    assert!(opts::parse(["-c"].map(String::from)).is_err());
}
