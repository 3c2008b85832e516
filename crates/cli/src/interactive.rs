//! The interactive loop (`cli.md` §8): rustyline with history in `~/.gatehouse_history`,
//! completion, Ctrl-C clears the line, Ctrl-D exits, `--vi` for vi key bindings.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, EditMode, Editor, Helper};

use crate::shell::{self, Ctx};
use crate::tree::Tree;

/// History file name in `$HOME`.
pub const HISTORY_FILE: &str = ".gatehouse_history";

struct ShellHelper {
    tree: Tree,
    cwd: usize,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let text = line.get(..pos).unwrap_or(line);
        let (start, cands) = crate::complete::complete(&self.tree, self.cwd, text);
        Ok((
            start,
            cands
                .into_iter()
                .map(|c| Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(HISTORY_FILE))
}

/// Runs the interactive shell until `exit` or Ctrl-D; returns the exit code.
pub fn run(mut ctx: Ctx, vi: bool) -> i32 {
    let config = Config::builder()
        .edit_mode(if vi { EditMode::Vi } else { EditMode::Emacs })
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut rl: Editor<ShellHelper, FileHistory> = match Editor::with_config(config) {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("cannot start the line editor: {e}");
            return 1;
        }
    };
    rl.set_helper(Some(ShellHelper {
        tree: ctx.tree.clone(),
        cwd: ctx.cwd,
    }));
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = rl.load_history(path)
    {
        println!("INFO: Unable to open history file: {e} (Using in memory history).");
    }
    println!("{}", ctx.banner());
    loop {
        if let Some(h) = rl.helper_mut() {
            h.cwd = ctx.cwd;
        }
        match rl.readline(&ctx.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        let _ = rl.append_history(path);
                    }
                }
                let out = shell::run_line(&mut ctx, &line);
                crate::app::emit_interactive(&out);
                if out.quit {
                    return 0;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return 0,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        }
    }
}
