//! `gatehouse` binary.

fn main() {
    let code = gatehouse_cli::app::main_with_args(std::env::args().skip(1));
    std::process::exit(code);
}
