//! `ferry`: copy OCI content between registries and image layouts, mounting instead of copying.

fn main() -> std::process::ExitCode {
    ferry_cli::Ferry::default().main()
}
