//! Links the `ferry` executable at a fixed address on Linux (`-no-pie`).
//!
//! A position-independent executable is relocated by the dynamic loader at every start:
//! ferry's 40,000 relative relocations write to 1.4 MB of read-only-after-start data, one
//! page fault per 4 KiB page, about a millisecond of each run's start. ferry runs as many
//! short processes (`ls`, `digest`, `inspect` in scripts), where that millisecond is a fifth
//! of the wall time; BENCHMARKS.md ("Everyday commands") has the measurement.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=ferry=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
