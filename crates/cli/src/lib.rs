//! `gatehouse`: a shell for gatehoused that behaves like the TrueNAS CLI (midcli).
//!
//! The command tree is built from the server's own metadata (`core.get_methods`,
//! `core.get_services`); see `shell::run_line` for the testable entry point that runs one input
//! line and returns its stdout, stderr and exit status.

pub mod app;
pub mod complete;
pub mod interactive;
pub mod opts;
pub mod qr;
pub mod query;
pub mod render;
pub mod shell;
pub mod syntax;
pub mod tree;

pub use render::Mode;
pub use shell::{Caller, Ctx, Output, run_line};
pub use tree::Tree;
