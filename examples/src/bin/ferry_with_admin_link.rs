//! `ferry` with an operator's own mount strategy, registered in one line: `--mount
//! admin-link`, `--mount-opt admin-link.url=…` and `[mount.admin-link]` then work as they do
//! for ferry's own strategies, and `--help` lists it.

fn main() -> std::process::ExitCode {
    ferry_cli::Ferry::default()
        .with_strategy(ferry_examples::admin_link::AdminLinkFactory)
        .main()
}
