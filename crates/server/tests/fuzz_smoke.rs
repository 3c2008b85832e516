//! CI smoke for the fuzz targets (issue 6): the same entry points as `fuzz/fuzz_targets/*`
//! (the file is shared), run over the committed corpora and over random inputs, in seconds.
//! The long runs use cargo-fuzz; see `fuzz/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use proptest::prelude::*;

fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn committed_corpora_run_clean() {
    let mut total = 0;
    for (name, run) in targets::TARGETS {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            run(&data);
            n += 1;
        }
        assert!(n > 0, "empty corpus for {name}");
        total += n;
    }
    assert!(total >= targets::TARGETS.len());
}

/// Mutations of corpus files: the cheap stand-in for the fuzzer's own mutations.
fn mutate(seed: &[u8], ops: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(op, pos, byte) in ops {
        let at = if v.is_empty() { 0 } else { pos % (v.len() + 1) };
        match op % 4 {
            0 => v.insert(at, byte),
            1 if at < v.len() => {
                v.remove(at);
            }
            2 if at < v.len() => v[at] = byte,
            _ => {
                let tail = v[at..].to_vec();
                v.extend_from_slice(&tail[..tail.len().min(16)]);
            }
        }
    }
    v
}

/// Every target's corpus, read once.
fn corpora() -> &'static Vec<Vec<Vec<u8>>> {
    static C: std::sync::OnceLock<Vec<Vec<Vec<u8>>>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        targets::TARGETS
            .iter()
            .map(|(name, _)| {
                let mut files: Vec<_> = std::fs::read_dir(corpus_dir(name))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                files
                    .into_iter()
                    .map(|p| std::fs::read(p).unwrap())
                    .collect()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for (_, run) in targets::TARGETS {
            run(&data);
        }
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        for (_, run) in targets::TARGETS {
            run(s.as_bytes());
        }
    }

    #[test]
    fn mutated_corpus_never_panics(
        pick in any::<usize>(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        for ((_, run), files) in targets::TARGETS.iter().zip(corpora()) {
            let seed = &files[pick % files.len()];
            run(&mutate(seed, &ops));
        }
    }
}

/// Found by the `cli_line` fuzz target: the shell's argument / `WHERE` parsers recursed once per
/// nesting level without a limit, so a deeply nested line (`[[[[…`, `((((…`) overflowed the
/// stack. `gatehouse-cli` now bounds the nesting (`syntax::MAX_NESTING`, `query::MAX_DEPTH`);
/// the fuzzer's crash inputs are in `fuzz/corpus/cli_line/` (replayed by
/// `committed_corpora_run_clean`) and the named regression test is
/// `crates/cli/tests/deep_nesting.rs`.
#[test]
fn cli_parser_survives_deep_nesting() {
    for open in ["[", "{\"a\":", "(", "not ", "-", "f("] {
        let line = format!("x WHERE a == {}", open.repeat(100_000));
        targets::cli_line(line.as_bytes());
        targets::cli_line(open.repeat(100_000).as_bytes());
    }
}
